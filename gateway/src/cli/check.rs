//! `meshgate validate`, `meshgate diff` and `meshgate contract export`: checks of a mesh
//! directory, for CI.

use std::path::Path;
use std::process::ExitCode;

use crate::connectors::{default_registry, load_and_check};

use super::{DiffFormat, ReportFormat};

/// Loads a mesh for `diff`: every problem except unresolved secrets is an error.
fn load_for_diff(dir: &Path) -> Result<meshgate_config::Mesh, String> {
    let (mesh, errors) = meshgate_config::load_mesh_lenient(dir);
    let fatal: Vec<String> = errors
        .iter()
        .filter(|e| !e.message.contains("secret `{"))
        .map(|e| format!("  {e}"))
        .collect();
    if fatal.is_empty() {
        Ok(mesh)
    } else {
        Err(format!(
            "{} is not a valid mesh:\n{}",
            dir.display(),
            fatal.join("\n")
        ))
    }
}

/// `meshgate diff OLD NEW`: exit 0 when compatible, 2 when breaking, 1 on error.
pub fn diff(old: &Path, new: &Path, format: DiffFormat) -> ExitCode {
    let (old, new) = match (load_for_diff(old), load_for_diff(new)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = meshgate_config::diff::diff_meshes(&old, &new);
    match format {
        DiffFormat::Text => print!("{}", report.text()),
        DiffFormat::Markdown => print!("{}", report.markdown()),
        DiffFormat::Json => match serde_json::to_string_pretty(&report) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    }
    if report.breaking {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// `meshgate contract export DOMAIN.PRODUCT.PORT`: the port's ODCS document.
pub fn contract_export(port: &str, config: &Path, output: Option<&Path>) -> ExitCode {
    let mesh = match load_for_diff(config) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let wanted = crate::port::PortRef::parse(port);
    let found = mesh
        .ports()
        .find(|(_, p, t)| Some(crate::port::PortRef::of(p, t)) == wanted);
    let Some((_, product, p)) = found else {
        eprintln!(
            "error: `{port}` is not a port of {} (write domain.product.port)",
            config.display()
        );
        return ExitCode::FAILURE;
    };
    if p.columns.is_none() {
        eprintln!("error: port {port} has no contract (`columns`) to export");
        return ExitCode::FAILURE;
    }
    let doc = meshgate_config::odcs::export(product, p);
    match output {
        Some(path) => match std::fs::write(path, doc) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
        None => {
            print!("{doc}");
            ExitCode::SUCCESS
        }
    }
}

/// `meshgate validate DIR [--live]`: exit 0 when valid (and, with `--live`, when every port
/// matches its source), 1 otherwise.
pub fn validate(dir: &Path, live: bool, format: ReportFormat) -> ExitCode {
    let mesh = match load_and_check(dir, &default_registry()) {
        Ok(mesh) => mesh,
        Err(errors) => {
            if format == ReportFormat::Json {
                let list: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
                println!("{}", serde_json::json!({ "valid": false, "errors": list }));
            }
            eprint!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let ports = mesh.ports().count();
    let summary = format!(
        "{}: valid ({} sources, {} domains, {ports} ports)",
        dir.display(),
        mesh.sources.len(),
        mesh.domains.len()
    );
    if !live {
        match format {
            ReportFormat::Text => println!("{summary}"),
            ReportFormat::Json => println!("{}", serde_json::json!({ "valid": true })),
        }
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let checks = runtime.block_on(crate::catalog::live::check_live(&mesh, &default_registry()));
    let all_ok = checks
        .iter()
        .all(|c| c.status == crate::catalog::live::LiveStatus::Ok);
    match format {
        ReportFormat::Text => {
            println!("{summary}");
            print!("{}", crate::catalog::live::render_text(&checks));
        }
        ReportFormat::Json => println!(
            "{}",
            serde_json::json!({ "valid": true, "live": all_ok, "ports": checks })
        ),
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
