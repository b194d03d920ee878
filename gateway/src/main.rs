//! The `meshgate` binary: the command line is [`meshgate::cli`].

fn main() -> std::process::ExitCode {
    meshgate::cli::main()
}
