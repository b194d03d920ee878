//! The `sqlite` connector: a table or a query of a SQLite file, read on blocking threads so
//! the async runtime never waits on SQLite.
//!
//! # Source options (`kind: sqlite`)
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `path` | the database file, absolute or relative to `mesh.yaml`; opened read-only | required |
//! | `busy_timeout_ms` | how long to wait for a writer's lock | `5000` |
//!
//! # Port keys
//!
//! `table: name` or `query: "SELECT ..."` (exactly one).
//!
//! # What is pushed down
//!
//! Projection (only the needed columns are selected) and `LIMIT` when DataFusion passes one.
//! Filters, joins and aggregates run in the gateway (federated pushdown comes with the SQL
//! sources work).
//!
//! # Type mapping
//!
//! SQLite types are per value; the declared column type decides the Arrow type, by SQLite's
//! affinity rules:
//!
//! | declared type contains | Arrow type |
//! |---|---|
//! | `BOOL` | Boolean (0/1) |
//! | `INT` | Int64 |
//! | `CHAR`, `CLOB`, `TEXT` | Utf8 |
//! | `BLOB` | Binary |
//! | `REAL`, `FLOA`, `DOUB` | Float64 |
//! | `DECIMAL`, `NUMERIC` | Float64 (SQLite stores them as REAL or INTEGER) |
//! | `DATE`, `TIME` | Utf8 (ISO-8601 text, as SQLite keeps them) |
//! | nothing (expressions in a query) | the type of the first row's value, Utf8 when NULL |
//!
//! A value that does not fit its column's type (text in an INTEGER column) fails the query
//! with the column name. Integers read into a Float64 column are converted.

mod scan;
mod types;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use meshgate_connector::{
    Connector, ConnectorError, ConnectorFactory, ErrorClass, PortRequest, SourceContext,
};
use serde::Deserialize;

pub use scan::SqliteTable;

/// Typed source options of `kind: sqlite`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteOptions {
    /// Database file.
    pub path: String,
    /// Busy timeout in milliseconds.
    #[serde(default = "default_busy_timeout")]
    pub busy_timeout_ms: u64,
}

fn default_busy_timeout() -> u64 {
    5000
}

/// Factory for `kind: sqlite`.
#[derive(Debug, Default)]
pub struct SqliteFactory;

fn parse(
    ctx: &SourceContext,
    options: &serde_json::Value,
) -> Result<(SqliteOptions, PathBuf), String> {
    let opts: SqliteOptions = serde_json::from_value(options.clone())
        .map_err(|e| format!("invalid sqlite options: {e}"))?;
    let path = ctx.base_dir.join(&opts.path);
    Ok((opts, path))
}

/// The SQL that reads a port: its query, or `SELECT * FROM "table"`.
fn port_sql(port: &PortRequest) -> Result<String, String> {
    match (&port.table, &port.query) {
        (Some(t), None) => Ok(format!("SELECT * FROM {}", quote_table(t))),
        (None, Some(q)) => Ok(q.trim().trim_end_matches(';').to_string()),
        _ => Err("sqlite ports need exactly one of `table` or `query`".to_string()),
    }
}

/// Quotes `[schema.]table` for SQLite.
fn quote_table(t: &str) -> String {
    t.split('.')
        .map(scan::quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

#[async_trait]
impl ConnectorFactory for SqliteFactory {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn check(
        &self,
        ctx: &SourceContext,
        options: &serde_json::Value,
        ports: &[PortRequest],
    ) -> Vec<(Option<usize>, String)> {
        let mut problems = Vec::new();
        // Static checks only: whether the file exists is a question for run time (and
        // `validate --live`), since CI validates meshes without their data.
        if let Err(e) = parse(ctx, options) {
            problems.push((None, e));
        }
        for (i, p) in ports.iter().enumerate() {
            if let Err(e) = port_sql(p) {
                problems.push((Some(i), e));
            }
        }
        problems
    }

    async fn create(
        &self,
        ctx: SourceContext,
        options: serde_json::Value,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        let (opts, path) = parse(&ctx, &options).map_err(|e| {
            ConnectorError::new(
                ErrorClass::InvalidConfig,
                format!("source `{}`: {e}", ctx.name),
            )
        })?;
        Ok(Arc::new(SqliteConnector {
            name: ctx.name,
            path,
            busy_timeout_ms: opts.busy_timeout_ms,
        }))
    }
}

#[derive(Debug)]
struct SqliteConnector {
    name: String,
    path: PathBuf,
    busy_timeout_ms: u64,
}

#[async_trait]
impl Connector for SqliteConnector {
    async fn open_port(
        &self,
        _session: &dyn Session,
        port: &PortRequest,
    ) -> Result<Arc<dyn TableProvider>, ConnectorError> {
        let sql = port_sql(port).map_err(|e| ConnectorError::new(ErrorClass::InvalidConfig, e))?;
        let source = scan::SqliteSource {
            source_name: self.name.clone(),
            path: self.path.clone(),
            busy_timeout_ms: self.busy_timeout_ms,
        };
        let table = SqliteTable::open(source, sql, port.display_name.clone()).await?;
        Ok(Arc::new(table))
    }
}
