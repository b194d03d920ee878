//! The `meshgate` command line: `serve`, `demo`, `validate`, `diff`, `contract`,
//! `explain-pushdown`, `hash-password`, `new-token`. Parsing here; each command in its module.

mod check;
mod explain;
mod serve;
mod tokens;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub use serve::ServeArgs;

#[derive(Debug, Parser)]
#[command(
    name = "meshgate",
    version,
    about = "A federated Arrow Flight SQL gateway for the data mesh"
)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum ContractCommand {
    /// Write the ODCS v3 (Open Data Contract Standard) document of a port's contract.
    Export {
        /// The port, `domain.product.port`.
        port: String,
        /// The mesh directory.
        #[arg(long, env = "MESHGATE_CONFIG", default_value = ".", value_parser = mesh_dir)]
        config: PathBuf,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Human-readable lines.
    Text,
    /// JSON.
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DiffFormat {
    /// One change per line.
    Text,
    /// A pull-request comment.
    Markdown,
    /// `{ "breaking": bool, "changes": [...] }`.
    Json,
}

/// Loads a mesh for `diff`: every problem except unresolved secrets is an error.
/// A mesh is named by its directory; a path to its `mesh.yaml` names the same mesh.
pub fn mesh_dir(arg: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(arg);
    if path.is_file()
        && path
            .file_name()
            .is_some_and(|n| n == meshgate_config::MESH_FILE)
    {
        let parent = path.parent().map(PathBuf::from).unwrap_or_default();
        return Ok(if parent.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent
        });
    }
    Ok(path)
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a mesh directory over Flight SQL.
    Serve {
        /// The mesh directory (holding mesh.yaml and domains/), or its mesh.yaml.
        #[arg(long, env = "MESHGATE_CONFIG", value_parser = mesh_dir)]
        config: PathBuf,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Check a mesh directory; exit 0 when valid, 1 when not, listing every error.
    Validate {
        /// The mesh directory, or its mesh.yaml.
        #[arg(value_parser = mesh_dir)]
        dir: PathBuf,
        /// Also connect to every source and compare each port's live schema with its
        /// contract (missing tables, files and columns, incompatible types, nullable columns
        /// behind `required`); exit 0 only when every port matches.
        #[arg(long)]
        live: bool,
        /// Output format of the report.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Generate (first time) and serve the TPC-H demo mesh of three domains.
    Demo {
        /// Where the demo mesh and its data live.
        #[arg(long, default_value = "meshgate-demo")]
        data_dir: PathBuf,
        /// TPC-H scale factor (0.1 is about 100 MB of data).
        #[arg(long, default_value_t = 0.1)]
        scale: f64,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Compare two versions of a mesh (say main and a pull request) for consumers: every change
    /// classed breaking, compatible or policy. Exit 0 when compatible, 2 when breaking, 1 on
    /// error. Secrets need not be set.
    Diff {
        /// The mesh directory before the change.
        #[arg(value_parser = mesh_dir)]
        old: PathBuf,
        /// The mesh directory after the change.
        #[arg(value_parser = mesh_dir)]
        new: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
    },
    /// Data contracts: `meshgate contract export DOMAIN.PRODUCT.PORT` writes an ODCS v3
    /// document for a port.
    Contract {
        #[command(subcommand)]
        command: ContractCommand,
    },
    /// List, per SQL dialect, which constructs are pushed to a source, pushed in a rewritten
    /// form that keeps DataFusion's meaning, or computed in the gateway (from the same
    /// capability tables the planner uses).
    ExplainPushdown {
        /// Only this dialect: postgres, mariadb, mysql, sqlite, datafusion or generic.
        #[arg(long)]
        dialect: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Print the argon2id hash of a password read from standard input (first line), for
    /// `auth.users[].password_hash`. Example: `printf '%s' "$PW" | meshgate hash-password`.
    HashPassword,
    /// Print a new random bearer token and its `sha256:` hash for `auth.tokens[].token_hash`.
    /// Give the token to the client; put only the hash in mesh.yaml.
    NewToken {
        /// Principal name for the printed mesh.yaml entry.
        #[arg(long, default_value = "my-pipeline")]
        name: String,
    },
}

/// Parses the command line and runs the command; the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Diff { old, new, format } => check::diff(&old, &new, format),
        Command::Contract {
            command:
                ContractCommand::Export {
                    port,
                    config,
                    output,
                },
        } => check::contract_export(&port, &config, output.as_deref()),
        Command::ExplainPushdown { dialect, format } => explain::run(dialect.as_deref(), format),
        Command::HashPassword => tokens::hash_password(),
        Command::NewToken { name } => tokens::new_token(&name),
        Command::Validate { dir, live, format } => check::validate(&dir, live, format),
        Command::Serve { config, serve } => {
            serve::run(cli.log_format, &serve, |_| Ok(config), None)
        }
        Command::Demo {
            data_dir,
            scale,
            serve,
        } => serve::run(
            cli.log_format,
            &serve,
            move |_| {
                use std::io::IsTerminal;
                let progress = std::io::stderr().is_terminal();
                crate::demo::ensure_demo(&data_dir, scale, progress)
                    .map_err(|e| crate::error::GatewayError::Unavailable(e.to_string()))?;
                Ok(data_dir)
            },
            Some(crate::demo::connect_help),
        ),
    }
}
