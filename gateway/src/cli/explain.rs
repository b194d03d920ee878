//! `meshgate explain-pushdown`: what each SQL dialect is sent, rewritten into, or left to
//! compute in the gateway, printed from the capability tables the planner itself uses
//! ([`meshgate_connector_sql::capability`]).

use std::process::ExitCode;

use super::ReportFormat;

use meshgate_connector_sql::capability::{construct_table, Flavor, Handling, ALL};

/// Which source kind (and `dialect` option) speaks each dialect, for the report's header.
fn spoken_by(f: Flavor) -> &'static str {
    match f {
        Flavor::Postgres => "kind: postgres; flightsql with dialect: postgres",
        Flavor::MariaDb => "kind: mysql on MariaDB; flightsql with dialect: mysql",
        Flavor::MySql => "kind: mysql on MySQL 8",
        Flavor::Sqlite => "kind: sqlite; flightsql with dialect: sqlite",
        Flavor::DataFusion => "flightsql with dialect: datafusion (meshgate, ROAPI)",
        Flavor::Generic => "flightsql with dialect: generic (the default)",
    }
}

/// The dialects named `filter` (every one when `None`); an error names the valid ones.
fn dialects(filter: Option<&str>) -> Result<Vec<Flavor>, String> {
    let all: Vec<Flavor> = ALL.iter().map(|c| c.flavor).collect();
    match filter {
        None => Ok(all),
        Some(name) => all
            .iter()
            .copied()
            .find(|f| f.to_string() == name)
            .map(|f| vec![f])
            .ok_or_else(|| {
                let names: Vec<String> = all.iter().map(ToString::to_string).collect();
                format!("unknown dialect `{name}`; one of: {}", names.join(", "))
            }),
    }
}

/// Prints the report; exit 2 on an unknown dialect.
pub fn run(dialect: Option<&str>, format: ReportFormat) -> ExitCode {
    let report = match format {
        ReportFormat::Text => text(dialect),
        ReportFormat::Json => json(dialect),
    };
    match report {
        Ok(r) => {
            print!("{r}");
            if format == ReportFormat::Json {
                println!();
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The report as text: per dialect, one line per construct.
pub fn text(filter: Option<&str>) -> Result<String, String> {
    let table = construct_table();
    let width = table.iter().map(|r| r.construct.len()).max().unwrap_or(0);
    let mut out = String::new();
    for flavor in dialects(filter)? {
        out.push_str(&format!("{flavor} ({})\n", spoken_by(flavor)));
        for row in &table {
            if let Some((_, h)) = row.handling.iter().find(|(f, _)| *f == flavor) {
                out.push_str(&format!("  {:width$}  {h}\n", row.construct));
            }
        }
        out.push('\n');
    }
    Ok(out)
}

/// The report as JSON: `{"dialects": [{"dialect", "sources", "constructs": [{"construct",
/// "handling": "pushed" | "rewritten" | "gateway", "detail"}]}]}`.
pub fn json(filter: Option<&str>) -> Result<String, String> {
    let table = construct_table();
    let mut dialects_json = Vec::new();
    for flavor in dialects(filter)? {
        let constructs: Vec<serde_json::Value> = table
            .iter()
            .filter_map(|row| {
                let (_, h) = row.handling.iter().find(|(f, _)| *f == flavor)?;
                let (handling, detail) = match h {
                    Handling::Pushed => ("pushed", ""),
                    Handling::Rewritten(d) => ("rewritten", *d),
                    Handling::Local(d) => ("gateway", *d),
                };
                Some(serde_json::json!({
                    "construct": row.construct,
                    "handling": handling,
                    "detail": detail,
                }))
            })
            .collect();
        dialects_json.push(serde_json::json!({
            "dialect": flavor.to_string(),
            "sources": spoken_by(flavor),
            "constructs": constructs,
        }));
    }
    serde_json::to_string_pretty(&serde_json::json!({ "dialects": dialects_json }))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dialect_is_listed_and_filtered() {
        let all = text(None).expect("report");
        for d in [
            "postgres",
            "mariadb",
            "mysql",
            "sqlite",
            "datafusion",
            "generic",
        ] {
            assert!(all.contains(&format!("{d} (")), "{d} in {all}");
        }
        let pg = text(Some("postgres")).expect("report");
        assert!(pg.contains("COLLATE \"C\""), "{pg}");
        assert!(!pg.contains("sqlite ("), "{pg}");
        assert!(text(Some("oracle")).is_err());
        let j: serde_json::Value =
            serde_json::from_str(&json(Some("sqlite")).expect("json")).expect("valid");
        let constructs = j["dialects"][0]["constructs"]
            .as_array()
            .expect("constructs");
        assert!(constructs
            .iter()
            .any(|c| c["handling"] == "rewritten"
                && c["detail"].as_str().unwrap_or("").contains("GLOB")));
    }
}
