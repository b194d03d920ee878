//! The `sqlite` connector: a table or a query of a SQLite file, read on blocking threads so
//! the async runtime never waits on SQLite.
//!
//! # Source options (`kind: sqlite`)
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `path` | the database file, absolute or relative to `mesh.yaml`; opened read-only | required |
//! | `busy_timeout_ms` | how long to wait for a writer's lock | `5000` |
//! | `statement_timeout_ms` | until the first batch, and between two batches | `300000` |
//!
//! # Port keys
//!
//! `table: name` (federated) or `query: "SELECT ..."` (scanned as a derived table).
//!
//! # What is pushed down
//!
//! SQLite is a federated SQL source (`meshgate-connector-sql`): the largest sub-plan over
//! tables of one database file goes to it as one statement in the SQLite dialect.
//!
//! | plan part | federated (`federation: true`, default) | `federation: false` | `pushdown: off` |
//! |---|---|---|---|
//! | projection | yes | yes | yes |
//! | filters | yes, what [`meshgate_connector_sql::capability`] allows for SQLite | the same, per port | no |
//! | `LIMIT`, `ORDER BY ... LIMIT` | yes | `LIMIT` when every filter is pushed | no |
//! | aggregates, `GROUP BY`, `DISTINCT`, windows | yes | no | no |
//! | joins, subqueries, `UNION ALL` | between tables of sources on the same file | no | no |
//!
//! `meshgate explain-pushdown --dialect sqlite` lists every construct.
//!
//! # Collations
//!
//! Every string a pushed statement reads from a table is read as `col COLLATE BINARY`, so
//! columns declared `COLLATE NOCASE` or `RTRIM` still compare, group, join and sort as in
//! DataFusion. SQLite's `LIKE` ignores ASCII case: it is pushed as `GLOB` with the pattern
//! translated (`%` to `*`, `_` to `?`, GLOB's own special characters in brackets).
//! `ILIKE`, `lower`, `upper`, float `%` and casts from strings run in the gateway. Dates are
//! ISO text in SQLite: date literals are written as text. A statement SQLite cannot prepare
//! (other than for a missing table) fails with `FAILED_PRECONDITION` naming the source;
//! `pushdown: off` on the source works around it.
//!
//! Values of a pushed statement arrive as SQLite's integers, reals, text and blobs and are
//! cast to the types DataFusion planned (a `SUM` of an INTEGER column to Int64, say).
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

use std::sync::Arc;

use meshgate_connector::SourceContext;
use meshgate_connector_sql::{PoolSettings, SqlBackend, SqlSourceFactory};
use serde::Deserialize;

pub use scan::{SqliteBackend, SqliteSource};

/// Typed source options of `kind: sqlite`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteOptions {
    /// Database file.
    pub path: String,
    /// Busy timeout in milliseconds.
    #[serde(default = "default_busy_timeout")]
    pub busy_timeout_ms: u64,
    /// Until the first batch, and between two batches.
    #[serde(default)]
    pub statement_timeout_ms: Option<u64>,
}

fn default_busy_timeout() -> u64 {
    5000
}

fn parse(
    ctx: &SourceContext,
    options: &serde_json::Value,
) -> Result<(Arc<dyn SqlBackend>, PoolSettings), String> {
    let opts: SqliteOptions = serde_json::from_value(options.clone())
        .map_err(|e| format!("invalid sqlite options: {e}"))?;
    let settings = PoolSettings::from_options(None, None, None, opts.statement_timeout_ms)?;
    let backend = SqliteBackend::new(SqliteSource {
        source_name: ctx.name.clone(),
        path: ctx.base_dir.join(&opts.path),
        busy_timeout_ms: opts.busy_timeout_ms,
    });
    Ok((Arc::new(backend), settings))
}

/// The factory of `kind: sqlite`, for the gateway's registry. Options are checked statically:
/// whether the file exists is a question for run time (and `validate --live`), since CI
/// validates meshes without their data.
pub fn factory() -> SqlSourceFactory {
    SqlSourceFactory::new("sqlite", parse)
}
