//! The `postgres` source kind: tables and queries of a PostgreSQL database, federated.
//!
//! Connection pooling (bb8 over tokio-postgres), TLS, schema inference and the decoding of
//! rows into Arrow come from `datafusion-table-providers-postgres` 0.15; this crate wraps
//! them in typed options, meshgate's error classes and the shared SQL-source machinery of
//! `meshgate-connector-sql` (lazy pool, timeouts, federation). We do not use its
//! `SqlTable`/federation wrapper because its pool is created (and must succeed) before a
//! table can exist, its compute context ignores credentials, and its executor has no
//! timeouts; the pool and the Arrow decoding fit as they are.
//!
//! # Source options (`kind: postgres`)
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `host` | server host name or address | required |
//! | `port` | server port | `5432` |
//! | `database` | database name | required |
//! | `user` | user name | required |
//! | `password` | a secret: `{ env: NAME }` or `{ file: path }` | none (trust/peer auth) |
//! | `sslmode` | `disable`, `prefer`, `require`, `verify-ca`, `verify-full` | `prefer` |
//! | `sslrootcert` | CA certificate (PEM) for `verify-ca`/`verify-full`, relative to `mesh.yaml` | system roots |
//! | `application_name` | shown in `pg_stat_activity` | `meshgate` |
//! | `pool_size`, `connect_timeout_ms`, `acquire_timeout_ms`, `statement_timeout_ms` | see `meshgate-connector-sql` | 8, 5000, 10000, 300000 |
//!
//! Every session is opened with `default_transaction_read_only=on` and the server-side
//! `statement_timeout` set to `statement_timeout_ms`.
//!
//! # Port keys
//!
//! `table: [schema.]table` (federated) or `query: "SELECT ..."` (scanned as a derived table;
//! its column types are taken from its first row when the port is opened, so it must return
//! at least one row then).
//!
//! # What is pushed down
//!
//! | plan part | federated (`federation: true`, default) | `federation: false` | `pushdown: off` |
//! |---|---|---|---|
//! | projection | yes | yes | yes |
//! | filters | yes, what [`meshgate_connector_sql::capability`] allows for PostgreSQL | the same, per port | no |
//! | `LIMIT`, `ORDER BY ... LIMIT` | yes | `LIMIT` when every filter is pushed | no |
//! | aggregates, `GROUP BY`, `DISTINCT`, windows | yes | no | no |
//! | joins, subqueries, `UNION ALL` | between tables of sources with the same host, port, database, user and password | no | no |
//!
//! `meshgate explain-pushdown --dialect postgres` lists every construct.
//!
//! # Collations
//!
//! Columns are assumed to have deterministic collations (every built-in and libc collation,
//! and ICU collations not declared `deterministic = false`): equality, `IN`, `GROUP BY`,
//! `DISTINCT` and joins on strings then mean what they mean in DataFusion, and are pushed as
//! written. Ordering is not: `<`, `BETWEEN`, `ORDER BY`, `min` and `max` on strings are pushed
//! with `COLLATE "C"`, DataFusion's byte order, whatever the column's collation. `LIKE` is
//! case-sensitive in PostgreSQL and pushed; `ILIKE`, `lower` and `upper` follow the locale's
//! case rules and run in the gateway. `avg` of a decimal is pushed as `trunc(avg(x), s + 4)`,
//! DataFusion's result. A statement the server rejects (SQLSTATE class 42 or 0A) fails with
//! `FAILED_PRECONDITION` naming the source; `pushdown: off` on the source works around it.
//!
//! # Type mapping
//!
//! | PostgreSQL | Arrow |
//! |---|---|
//! | `boolean` | Boolean |
//! | `smallint`, `integer`, `bigint` | Int16, Int32, Int64 |
//! | `real`, `double precision` | Float32, Float64 |
//! | `numeric(p,s)` | Decimal128(p,s), decoded from the binary form (no text round trip) |
//! | `numeric` (no precision) | Decimal128(38,20) |
//! | `text`, `varchar(n)`, `char(n)`, `name` | Utf8 |
//! | `bytea` | Binary |
//! | `uuid` | Utf8 (canonical text form) |
//! | `json`, `jsonb` | Utf8 (the JSON text) |
//! | `date` | Date32 |
//! | `time` | Time64(ns) |
//! | `timestamp` | Timestamp(ns) |
//! | `timestamptz` | Timestamp(ns, "UTC") |
//! | `interval` | Interval(MonthDayNano) |
//! | `int2[]`, `int4[]`, `int8[]`, `float4[]`, `float8[]`, `text[]`, `bool[]` | List of the element type |
//!
//! NULL is NULL in every type. Other types (composite, ranges, enums as their label) follow
//! datafusion-table-providers; a column whose type cannot be mapped is served as Utf8.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::TableReference;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::unparser::dialect::{Dialect, PostgreSqlDialect};
use datafusion_table_providers_common::sql::db_connection_pool::dbconnection::Error as DbError;
use datafusion_table_providers_common::sql::db_connection_pool::DbConnectionPool;
use datafusion_table_providers_common::UnsupportedTypeAction;
use datafusion_table_providers_postgres::conn::PostgresConnection;
use datafusion_table_providers_postgres::pool::{Error as PoolError, PostgresConnectionPool};
use futures::StreamExt;
use meshgate_connector::{ConnectorError, ErrorClass, SourceContext};
use meshgate_connector_sql::cancel::{CancelOnDrop, OnEnd};
use meshgate_connector_sql::{
    credential_fingerprint, PoolSettings, SqlBackend, SqlPool, SqlSourceFactory,
};
use secrecy::SecretString;
use serde::Deserialize;

/// Typed source options of `kind: postgres`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresOptions {
    /// Host.
    pub host: String,
    /// Port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Database.
    pub database: String,
    /// User.
    pub user: String,
    /// Password (resolved secret).
    #[serde(default)]
    pub password: Option<String>,
    /// TLS mode.
    #[serde(default)]
    pub sslmode: SslMode,
    /// CA certificate file.
    #[serde(default)]
    pub sslrootcert: Option<String>,
    /// Application name.
    #[serde(default)]
    pub application_name: Option<String>,
    /// Pool size.
    #[serde(default)]
    pub pool_size: Option<u32>,
    /// Connect timeout.
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    /// Acquire timeout.
    #[serde(default)]
    pub acquire_timeout_ms: Option<u64>,
    /// Statement timeout.
    #[serde(default)]
    pub statement_timeout_ms: Option<u64>,
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("sslmode", &self.sslmode)
            .finish_non_exhaustive()
    }
}

fn default_port() -> u16 {
    5432
}

/// PostgreSQL `sslmode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it.
    #[default]
    Prefer,
    /// TLS, certificate not checked.
    Require,
    /// TLS, certificate checked against the CA.
    VerifyCa,
    /// TLS, certificate and host name checked.
    VerifyFull,
}

impl SslMode {
    fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

fn parse(
    ctx: &SourceContext,
    options: &serde_json::Value,
) -> Result<(Arc<dyn SqlBackend>, PoolSettings), String> {
    let opts: PostgresOptions = serde_json::from_value(options.clone())
        .map_err(|e| format!("invalid postgres options: {e}"))?;
    let settings = PoolSettings::from_options(
        opts.pool_size,
        opts.connect_timeout_ms,
        opts.acquire_timeout_ms,
        opts.statement_timeout_ms,
    )?;
    let rootcert = opts.sslrootcert.as_ref().map(|p| ctx.base_dir.join(p));
    Ok((Arc::new(PgBackend { opts, rootcert }), settings))
}

/// The factory of `kind: postgres`, for the gateway's registry.
pub fn factory() -> SqlSourceFactory {
    SqlSourceFactory::new("postgres", parse)
}

/// The PostgreSQL backend.
#[derive(Debug)]
struct PgBackend {
    opts: PostgresOptions,
    rootcert: Option<PathBuf>,
}

#[async_trait]
impl SqlBackend for PgBackend {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn address(&self) -> String {
        format!(
            "{}:{}/{}",
            self.opts.host, self.opts.port, self.opts.database
        )
    }

    fn compute_context(&self) -> String {
        format!(
            "postgres://{}@{}:{}/{}#{}",
            self.opts.user,
            self.opts.host,
            self.opts.port,
            self.opts.database,
            credential_fingerprint(self.opts.password.as_deref().unwrap_or_default())
        )
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        Arc::new(PostgreSqlDialect {})
    }

    /// The catalog declares NOT NULL columns.
    fn declares_nullability(&self) -> bool {
        true
    }

    fn capabilities(&self) -> meshgate_connector_sql::capability::Capabilities {
        meshgate_connector_sql::capability::POSTGRES
    }

    async fn connect(&self, settings: &PoolSettings) -> Result<Arc<dyn SqlPool>, ConnectorError> {
        let o = &self.opts;
        let mut params: HashMap<String, SecretString> = HashMap::new();
        let mut put = |k: &str, v: String| {
            params.insert(k.to_string(), SecretString::from(v));
        };
        put("host", o.host.clone());
        put("port", o.port.to_string());
        put("db", o.database.clone());
        put("user", o.user.clone());
        if let Some(p) = &o.password {
            put("pass", p.clone());
        }
        put("sslmode", o.sslmode.as_str().to_string());
        if let Some(c) = &self.rootcert {
            put("sslrootcert", c.display().to_string());
        }
        put(
            "application_name",
            o.application_name
                .clone()
                .unwrap_or_else(|| "meshgate".into()),
        );
        put("connection_pool_size", settings.pool_size.to_string());
        put(
            "options",
            format!(
                "-c default_transaction_read_only=on -c statement_timeout={}",
                settings.statement_timeout.as_millis()
            ),
        );
        let pool = PostgresConnectionPool::new(params)
            .await
            .map_err(|e| {
                let class = match &e {
                    PoolError::InvalidUsernameOrPassword { .. } => ErrorClass::PermissionDenied,
                    PoolError::InvalidParameterError { .. }
                    | PoolError::InvalidRootCertPathError { .. }
                    | PoolError::FailedToReadCertError { .. }
                    | PoolError::FailedToLoadCertError { .. } => ErrorClass::InvalidConfig,
                    _ => ErrorClass::Unavailable,
                };
                ConnectorError::new(class, one_line(&e.to_string()))
            })?
            .with_unsupported_type_action(UnsupportedTypeAction::String);
        Ok(Arc::new(PgPool {
            pool: Arc::new(pool),
            acquire_timeout: settings.acquire_timeout,
        }))
    }
}

/// Error texts of the driver span lines and point at web pages; keep the first sentence
/// of each line on one line.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For details") && !l.starts_with("Adjust"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug)]
struct PgPool {
    pool: Arc<PostgresConnectionPool>,
    acquire_timeout: Duration,
}

type PgConn = Box<datafusion_table_providers_postgres::DynPostgresConnection>;

impl PgPool {
    async fn conn(&self) -> Result<PgConn, ConnectorError> {
        match tokio::time::timeout(self.acquire_timeout, self.pool.connect()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(ConnectorError::new(
                ErrorClass::Unavailable,
                one_line(&e.to_string()),
            )),
            Err(_) => Err(ConnectorError::new(
                ErrorClass::Timeout,
                format!(
                    "no free connection within {} ms (acquire_timeout_ms)",
                    self.acquire_timeout.as_millis()
                ),
            )),
        }
    }
}

fn db_error(e: DbError) -> ConnectorError {
    let class = match &e {
        DbError::UndefinedTable { .. } => ErrorClass::NotFound,
        _ => ErrorClass::Unavailable,
    };
    ConnectorError::new(class, one_line(&e.to_string()))
}

#[async_trait]
impl SqlPool for PgPool {
    async fn table_schema(&self, table: &TableReference) -> Result<SchemaRef, ConnectorError> {
        let conn = self.conn().await?;
        let conn = conn
            .as_async()
            .ok_or_else(|| ConnectorError::new(ErrorClass::Internal, "no async connection"))?;
        let schema = conn.get_schema(table).await.map_err(db_error)?;
        if schema.fields().is_empty() {
            return Err(ConnectorError::new(
                ErrorClass::NotFound,
                format!("table `{table}` does not exist or has no columns"),
            ));
        }
        Ok(schema)
    }

    async fn query_schema(&self, sql: &str) -> Result<SchemaRef, ConnectorError> {
        let conn = self.conn().await?;
        let conn = conn
            .as_async()
            .ok_or_else(|| ConnectorError::new(ErrorClass::Internal, "no async connection"))?;
        let probe = format!("SELECT * FROM ({sql}) AS meshgate_probe LIMIT 1");
        let mut stream = conn.query_arrow(&probe, &[], None).await.map_err(|e| {
            ConnectorError::new(ErrorClass::InvalidConfig, one_line(&e.to_string()))
        })?;
        match stream.next().await {
            Some(Ok(b)) if b.num_columns() > 0 => Ok(b.schema()),
            Some(Err(e)) => Err(ConnectorError::new(
                ErrorClass::InvalidConfig,
                one_line(&e.to_string()),
            )),
            _ => Err(ConnectorError::new(
                ErrorClass::NotFound,
                "the query returned no rows, so its column types are unknown; a query port must return rows when the gateway opens it",
            )),
        }
    }

    async fn query(
        &self,
        sql: &str,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream, ConnectorError> {
        // From here until its result has been read, the statement is cancelled in
        // PostgreSQL if the reader goes away, even while PostgreSQL is still computing the
        // first row (an aggregate answers only at its end).
        let mut guard = Statement::new(self.conn().await?);
        let stream = {
            let c = guard
                .conn()
                .as_async()
                .ok_or_else(|| ConnectorError::new(ErrorClass::Internal, "no async connection"))?;
            c.query_arrow(sql, &[], Some(Arc::clone(&schema)))
                .await
                .map_err(|e| ConnectorError::new(query_error_class(&*e), one_line(&e.to_string())))
        };
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                guard.finished();
                return Err(e);
            }
        };
        let on_end: OnEnd = Box::new(move |completed| {
            if completed {
                guard.finished();
            }
        });
        let inner: SendableRecordBatchStream =
            Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&schema), stream));
        Ok(Box::pin(CancelOnDrop::new(inner, on_end)))
    }
}

/// A statement running on a pooled connection. Dropped before [`Statement::finished`], it
/// cancels the statement in PostgreSQL (a cancel request), waits until the connection is
/// idle, then gives the connection back to the pool.
struct Statement {
    conn: Option<PgConn>,
    running: bool,
}

impl Statement {
    fn new(conn: PgConn) -> Self {
        Self {
            conn: Some(conn),
            running: true,
        }
    }

    #[allow(clippy::expect_used)]
    fn conn(&self) -> &PgConn {
        // Only `Drop` takes the connection.
        self.conn
            .as_ref()
            .expect("the connection is held until drop")
    }

    fn finished(&mut self) {
        self.running = false;
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let token = conn
            .as_any()
            .downcast_ref::<PostgresConnection>()
            .map(|c| c.conn.cancel_token());
        let (Some(token), true, Ok(rt)) =
            (token, self.running, tokio::runtime::Handle::try_current())
        else {
            return;
        };
        rt.spawn(async move {
            // Bounded: a source that stopped answering must not hold the connection (a slot
            // of the pool) forever; the pool's check on the next checkout drops it then.
            let bound = Duration::from_secs(5);
            match tokio::time::timeout(bound, token.cancel_query(tokio_postgres::NoTls)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot cancel a PostgreSQL statement"),
                Err(_) => tracing::warn!("cancelling a PostgreSQL statement timed out"),
            }
            // The connection serves again only once the cancelled statement has ended.
            if let Some(c) = conn.as_any().downcast_ref::<PostgresConnection>() {
                let _ = tokio::time::timeout(bound, c.conn.simple_query("")).await;
            }
            drop(conn);
        });
    }
}

/// The class of an error PostgreSQL raised running a statement, by SQLSTATE: data
/// exceptions (class 22: an overflow, an invalid value) are the query's fault; syntax and
/// access-rule errors (class 42) and unsupported features (0A) mean the SQL the gateway
/// wrote was rejected, except a missing table (42P01, the source changed) and a missing
/// privilege (42501); a cancelled statement (57014) is a timeout; the rest is the server's
/// trouble (connections, resources, shutdown).
fn query_error_class(e: &(dyn std::error::Error + 'static)) -> ErrorClass {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(pg) = err.downcast_ref::<tokio_postgres::Error>() {
            if let Some(code) = pg.code() {
                return sqlstate_class(code.code());
            }
        }
        cur = err.source();
    }
    // The pool's errors keep only the text of the database error.
    let text = e.to_string();
    if text.contains("division by zero") || text.contains("invalid input syntax") {
        ErrorClass::Query
    } else {
        ErrorClass::Unavailable
    }
}

fn sqlstate_class(code: &str) -> ErrorClass {
    match code {
        "42P01" => ErrorClass::NotFound,
        "42501" => ErrorClass::PermissionDenied,
        "57014" => ErrorClass::Timeout,
        c if c.starts_with("42") || c.starts_with("0A") => ErrorClass::PushdownRejected,
        c if c.starts_with("22") => ErrorClass::Query,
        _ => ErrorClass::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_classes() {
        assert_eq!(sqlstate_class("42601"), ErrorClass::PushdownRejected); // syntax error
        assert_eq!(sqlstate_class("42703"), ErrorClass::PushdownRejected); // undefined column
        assert_eq!(sqlstate_class("0A000"), ErrorClass::PushdownRejected);
        assert_eq!(sqlstate_class("42P01"), ErrorClass::NotFound);
        assert_eq!(sqlstate_class("42501"), ErrorClass::PermissionDenied);
        assert_eq!(sqlstate_class("22012"), ErrorClass::Query); // division by zero
        assert_eq!(sqlstate_class("57014"), ErrorClass::Timeout);
        assert_eq!(sqlstate_class("53300"), ErrorClass::Unavailable);
    }
}
