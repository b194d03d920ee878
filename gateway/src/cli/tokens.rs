//! `meshgate hash-password` and `meshgate new-token`: credentials for `auth` in mesh.yaml.

use std::process::ExitCode;

/// Prints the argon2id hash of the password on standard input's first line.
pub fn hash_password() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("error: cannot read the password from standard input: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        eprintln!(
            "error: empty password; pipe it in: printf '%s' \"$PW\" | meshgate hash-password"
        );
        return ExitCode::FAILURE;
    }
    match crate::security::authn::hash_password(password) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a new random bearer token and its hash, with the mesh.yaml entry for `name`.
pub fn new_token(name: &str) -> ExitCode {
    let (token, hash) = crate::security::authn::new_token();
    println!("token: {token}");
    println!("token_hash: {hash}");
    eprintln!(
        "# give the token to the client (Authorization: Bearer <token>); in mesh.yaml:\n\
         # auth:\n#   tokens:\n#     - {{ name: {name}, token_hash: \"{hash}\", groups: [] }}"
    );
    ExitCode::SUCCESS
}
