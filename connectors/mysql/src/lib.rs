//! The `mysql` source kind: tables and queries of MySQL or MariaDB, federated.
//!
//! Schema inference (`SHOW COLUMNS`) and the decoding of rows into Arrow come from
//! `datafusion-table-providers-mysql` 0.15; the pool (mysql_async), the statement path and
//! everything around them are ours, because its query path deletes every `"` from the SQL
//! (which corrupts string literals that contain one), its pool must connect before a table
//! can exist, and it has no acquire or statement timeouts.
//!
//! # Source options (`kind: mysql`)
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `host` | server host name or address | required |
//! | `port` | server port | `3306` |
//! | `database` | database (schema) name | required |
//! | `user` | user name | required |
//! | `password` | a secret: `{ env: NAME }` or `{ file: path }` | none |
//! | `sslmode` | `disabled`, `required` (TLS, certificate not checked), `verify_ca`, `verify_identity` | `disabled` |
//! | `sslrootcert` | CA certificate (PEM) for `verify_ca`/`verify_identity`, relative to `mesh.yaml` | system roots |
//! | `pool_size`, `connect_timeout_ms`, `acquire_timeout_ms`, `statement_timeout_ms` | see `meshgate-connector-sql` | 8, 5000, 10000, 300000 |
//!
//! Every session runs `SET SESSION TRANSACTION READ ONLY`, `time_zone = '+00:00'`, utf8mb4,
//! and the server-side statement limit (`max_statement_time` on MariaDB,
//! `max_execution_time` on MySQL) set to `statement_timeout_ms`.
//!
//! # Port keys
//!
//! `table: [database.]table` (federated) or `query: "SELECT ..."` (scanned as a derived
//! table; its column types come from its first row when the port is opened).
//!
//! # What is pushed down
//!
//! | plan part | federated (`federation: true`, default) | `federation: false` | `pushdown: off` |
//! |---|---|---|---|
//! | projection | yes | yes | yes |
//! | filters | yes, what [`meshgate_connector_sql::capability`] allows for MySQL/MariaDB | the same, per port | no |
//! | `LIMIT`, `ORDER BY ... LIMIT` | yes | `LIMIT` when every filter is pushed | no |
//! | aggregates, `GROUP BY`, `DISTINCT`, windows | yes | no | no |
//! | joins, subqueries, `UNION ALL` | between tables of sources with the same host, port, database, user and password | no | no |
//!
//! `meshgate explain-pushdown --dialect mariadb` lists every construct.
//!
//! # Collations
//!
//! Pushed statements compare strings as DataFusion does (UTF-8 bytes: case-sensitive,
//! accent-sensitive, trailing spaces significant) whatever the columns' collations: every
//! string a statement reads from a table is read as `CONVERT(col USING utf8mb4) COLLATE
//! utf8mb4_nopad_bin` (`utf8mb4_0900_bin` on MySQL 8), and sessions run with `SET NAMES
//! utf8mb4 COLLATE` that collation, so string literals compare the same way. Comparisons,
//! `LIKE`, `GROUP BY`, `DISTINCT`, joins and sorts on strings are then pushed with DataFusion's
//! answer. The cost: an index on a string column with another collation is not used for
//! pushed comparisons on that column. `ORDER BY ... NULLS FIRST/LAST` is written as
//! `ORDER BY (x IS NULL), x`; `OFFSET` alone as `LIMIT 18446744073709551615 OFFSET n`; `avg`
//! of integers over `DOUBLE` (MySQL averages into `DECIMAL(..., 4)`); `avg` of decimals, `/`
//! and `%` of integers and `||` run in the gateway. A statement the server rejects (a syntax
//! error, an unknown column) fails with `FAILED_PRECONDITION` naming the source; `pushdown:
//! off` on the source works around it.
//!
//! # Type mapping
//!
//! | MySQL / MariaDB | Arrow |
//! |---|---|
//! | `TINYINT`, `SMALLINT`, `MEDIUMINT`/`INT`, `BIGINT` | Int8, Int16, Int32, Int64 |
//! | the same `UNSIGNED` | UInt8, UInt16, UInt32, UInt64 |
//! | `TINYINT(1)` / `BOOLEAN` | Int8 (0/1; a contract column `boolean` casts it) |
//! | `FLOAT`, `DOUBLE` | Float32, Float64 |
//! | `DECIMAL(p,s)` | Decimal128(p,s) (Decimal256 above 38 digits), exact |
//! | `DATE` | Date32 |
//! | `TIME` | Time64(ns) |
//! | `DATETIME`, `TIMESTAMP` | Timestamp(µs), in UTC for `TIMESTAMP` (sessions run with `time_zone = '+00:00'`) |
//! | `CHAR`, `VARCHAR`, `TEXT` types, `JSON` | Utf8 / LargeUtf8 |
//! | `BINARY`, `VARBINARY`, `BLOB` types | Binary / LargeBinary |
//! | `ENUM`, `SET` | Dictionary(UInt16, Utf8) |
//! | `BIT` | UInt64 |
//! | `YEAR` | Int16 |
//!
//! NULL is NULL in every type.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::TableReference;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::unparser::dialect::{Dialect, MySqlDialect};
use datafusion_table_providers_common::sql::db_connection_pool::dbconnection::{
    AsyncDbConnection, Error as DbError,
};
use datafusion_table_providers_mysql::arrow_sql_gen::rows_to_arrow;
use datafusion_table_providers_mysql::conn::MySQLConnection;
use futures::StreamExt;
use meshgate_connector::{ConnectorError, ErrorClass, SourceContext};
use meshgate_connector_sql::{
    credential_fingerprint, PoolSettings, SqlBackend, SqlPool, SqlSourceFactory,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Pool, PoolConstraints, PoolOpts, Row, SslOpts};
use serde::Deserialize;

/// Rows per Arrow batch read from the server.
const ROWS_PER_BATCH: usize = 4096;

/// Typed source options of `kind: mysql`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlOptions {
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

impl std::fmt::Debug for MysqlOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("sslmode", &self.sslmode)
            .finish_non_exhaustive()
    }
}

fn default_port() -> u16 {
    3306
}

/// TLS to the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SslMode {
    /// Plain TCP.
    #[default]
    Disabled,
    /// TLS without checking the certificate.
    Required,
    /// TLS, certificate checked against the CA, host name not.
    VerifyCa,
    /// TLS, certificate and host name checked.
    VerifyIdentity,
}

fn parse(
    ctx: &SourceContext,
    options: &serde_json::Value,
) -> Result<(Arc<dyn SqlBackend>, PoolSettings), String> {
    let opts: MysqlOptions = serde_json::from_value(options.clone())
        .map_err(|e| format!("invalid mysql options: {e}"))?;
    let settings = PoolSettings::from_options(
        opts.pool_size,
        opts.connect_timeout_ms,
        opts.acquire_timeout_ms,
        opts.statement_timeout_ms,
    )?;
    let rootcert = opts.sslrootcert.as_ref().map(|p| ctx.base_dir.join(p));
    Ok((
        Arc::new(MyBackend {
            opts,
            rootcert,
            mariadb: std::sync::OnceLock::new(),
        }),
        settings,
    ))
}

/// The factory of `kind: mysql`, for the gateway's registry.
pub fn factory() -> SqlSourceFactory {
    SqlSourceFactory::new("mysql", parse)
}

#[derive(Debug)]
struct MyBackend {
    opts: MysqlOptions,
    rootcert: Option<PathBuf>,
    /// MariaDB (`true`) or MySQL, known once a connection was made.
    mariadb: std::sync::OnceLock<bool>,
}

impl MyBackend {
    fn base_opts(&self) -> OptsBuilder {
        let o = &self.opts;
        let ssl = match o.sslmode {
            SslMode::Disabled => None,
            mode => {
                let mut ssl = SslOpts::default();
                if let Some(c) = &self.rootcert {
                    ssl = ssl.with_root_certs(vec![c.clone().into()]);
                }
                match mode {
                    SslMode::Required => Some(
                        ssl.with_danger_accept_invalid_certs(true)
                            .with_danger_skip_domain_validation(true),
                    ),
                    SslMode::VerifyCa => Some(ssl.with_danger_skip_domain_validation(true)),
                    _ => Some(ssl),
                }
            }
        };
        OptsBuilder::default()
            .ip_or_hostname(o.host.clone())
            .tcp_port(o.port)
            .user(Some(o.user.clone()))
            .pass(o.password.clone())
            .db_name(Some(o.database.clone()))
            .ssl_opts(ssl)
            .prefer_socket(false)
    }
}

/// Server errors that mean the statement itself was not understood: a syntax error, an
/// unknown column, function or collation, a clause the server does not support.
const REJECTED_STATEMENT: &[u16] = &[
    1052, 1054, 1055, 1056, 1060, 1064, 1066, 1111, 1140, 1235, 1248, 1267, 1270, 1271, 1273, 1305,
    1582, 1583, 1630, 3065, 4078,
];

fn mysql_error(e: &mysql_async::Error) -> ConnectorError {
    let class = match e {
        mysql_async::Error::Server(s) => match s.code {
            1044 | 1045 | 1142 | 1143 | 1227 => ErrorClass::PermissionDenied,
            1146 | 1049 => ErrorClass::NotFound,
            1969 | 3024 | 1317 => ErrorClass::Timeout,
            c if REJECTED_STATEMENT.contains(&c) => ErrorClass::PushdownRejected,
            _ if s.state.starts_with("22") => ErrorClass::Query,
            _ if s.state.starts_with("42") => ErrorClass::PushdownRejected,
            // Anything else is the server's trouble (too many connections, lock waits, ...).
            _ => ErrorClass::Unavailable,
        },
        _ => ErrorClass::Unavailable,
    };
    ConnectorError::new(class, e.to_string())
}

#[async_trait]
impl SqlBackend for MyBackend {
    fn kind(&self) -> &'static str {
        "mysql"
    }

    fn address(&self) -> String {
        format!(
            "{}:{}/{}",
            self.opts.host, self.opts.port, self.opts.database
        )
    }

    fn compute_context(&self) -> String {
        format!(
            "mysql://{}@{}:{}/{}#{}",
            self.opts.user,
            self.opts.host,
            self.opts.port,
            self.opts.database,
            credential_fingerprint(self.opts.password.as_deref().unwrap_or_default())
        )
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        Arc::new(MySqlDialect {})
    }

    /// Information_schema declares NOT NULL columns.
    fn declares_nullability(&self) -> bool {
        true
    }

    fn capabilities(&self) -> meshgate_connector_sql::capability::Capabilities {
        // Ports are opened (and so the server is known) before anything is planned on them.
        if self.mariadb.get() == Some(&false) {
            meshgate_connector_sql::capability::MYSQL
        } else {
            meshgate_connector_sql::capability::MARIADB
        }
    }

    async fn connect(&self, settings: &PoolSettings) -> Result<Arc<dyn SqlPool>, ConnectorError> {
        // One connection first: it proves the server is there and tells MariaDB from MySQL,
        // whose statement-time limits have different names and units.
        let mut probe = Conn::new(self.base_opts())
            .await
            .map_err(|e| mysql_error(&e))?;
        let version: Option<String> = probe
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| mysql_error(&e))?;
        let _ = probe.disconnect().await;
        let mariadb = version
            .as_deref()
            .is_some_and(|v| v.to_ascii_lowercase().contains("mariadb"));
        let _ = self.mariadb.set(mariadb);
        // String literals compare under a binary, no-pad collation like DataFusion's;
        // columns are forced to it in pushed statements (see the crate docs).
        let collation = if mariadb {
            "utf8mb4_nopad_bin"
        } else {
            "utf8mb4_0900_bin"
        };
        let limit = if mariadb {
            format!(
                "SET SESSION max_statement_time = {:.3}",
                settings.statement_timeout.as_secs_f64()
            )
        } else {
            format!(
                "SET SESSION max_execution_time = {}",
                settings.statement_timeout.as_millis()
            )
        };
        let constraints = PoolConstraints::new(0, settings.pool_size as usize)
            .ok_or_else(|| ConnectorError::new(ErrorClass::InvalidConfig, "invalid pool_size"))?;
        let opts = self
            .base_opts()
            .pool_opts(PoolOpts::default().with_constraints(constraints))
            .setup({
                let mut setup = vec![
                    "SET time_zone = '+00:00'".to_string(),
                    format!("SET NAMES utf8mb4 COLLATE {collation}"),
                    "SET SESSION TRANSACTION READ ONLY".to_string(),
                    limit,
                ];
                if mariadb {
                    // MariaDB's subquery cache keys a correlated subquery on the outer
                    // column's own collation, ignoring the binary one the pushed SQL forces:
                    // `'a '` reuses the answer cached for `'a'` (wrong answers for EXISTS).
                    setup.push("SET SESSION optimizer_switch = 'subquery_cache=off'".to_string());
                }
                setup
            });
        Ok(Arc::new(MyPool {
            pool: Pool::new(opts),
            acquire_timeout: settings.acquire_timeout,
        }))
    }
}

#[derive(Debug)]
struct MyPool {
    pool: Pool,
    acquire_timeout: Duration,
}

impl MyPool {
    async fn conn(&self) -> Result<Conn, ConnectorError> {
        match tokio::time::timeout(self.acquire_timeout, self.pool.get_conn()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(mysql_error(&e)),
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
    ConnectorError::new(class, e.to_string())
}

#[async_trait]
impl SqlPool for MyPool {
    async fn table_schema(&self, table: &TableReference) -> Result<SchemaRef, ConnectorError> {
        let conn = MySQLConnection::new(self.conn().await?);
        conn.get_schema(table).await.map_err(db_error)
    }

    async fn query_schema(&self, sql: &str) -> Result<SchemaRef, ConnectorError> {
        let mut conn = self.conn().await?;
        let probe = format!("SELECT * FROM ({sql}) AS meshgate_probe LIMIT 1");
        let rows: Vec<Row> = conn.exec(probe, ()).await.map_err(|e| mysql_error(&e))?;
        if rows.is_empty() {
            return Err(ConnectorError::new(
                ErrorClass::NotFound,
                "the query returned no rows, so its column types are unknown; a query port must return rows when the gateway opens it",
            ));
        }
        let batch = rows_to_arrow(&rows, &None)
            .map_err(|e| ConnectorError::new(ErrorClass::Data, e.to_string()))?;
        Ok(batch.schema())
    }

    async fn query(
        &self,
        sql: &str,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream, ConnectorError> {
        let mut conn = self.conn().await?;
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let sql = sql.to_string();
        let projected = Some(Arc::clone(&schema));
        let pool = self.pool.clone();
        let connection_id = conn.id();
        tokio::spawn(async move {
            let fail = |e: &mysql_async::Error| {
                let e = mysql_error(e);
                DataFusionError::External(Box::new(e))
            };
            let mut cancelled = false;
            'read: {
                // The server answers an aggregate only at its end: a reader that leaves
                // before stops the statement there too.
                let started = tokio::select! {
                    r = conn.exec_iter(sql, ()) => Some(r),
                    () = tx.closed() => None,
                };
                let mut result = match started {
                    Some(Ok(r)) => r,
                    Some(Err(e)) => {
                        let _ = tx.send(Err(fail(&e))).await;
                        return;
                    }
                    None => {
                        cancelled = true;
                        break 'read;
                    }
                };
                let mut rows: Vec<Row> = Vec::with_capacity(ROWS_PER_BATCH);
                loop {
                    // A reader that stops while the server is still computing (an aggregate,
                    // a sort) is noticed at once, not at the next row.
                    let next = tokio::select! {
                        next = result.next() => next,
                        () = tx.closed() => {
                            cancelled = true;
                            break;
                        }
                    };
                    let done = match next {
                        Ok(Some(row)) => {
                            rows.push(row);
                            false
                        }
                        Ok(None) => true,
                        Err(e) => {
                            let _ = tx.send(Err(fail(&e))).await;
                            cancelled = true;
                            break;
                        }
                    };
                    if rows.len() == ROWS_PER_BATCH || (done && !rows.is_empty()) {
                        let batch = rows_to_arrow(&rows, &projected).map_err(|e| {
                            DataFusionError::External(Box::new(ConnectorError::new(
                                ErrorClass::Data,
                                e.to_string(),
                            )))
                        });
                        rows.clear();
                        let failed = batch.is_err();
                        if tx.send(batch).await.is_err() || failed {
                            cancelled = true;
                            break;
                        }
                    }
                    if done {
                        break;
                    }
                }
            }
            if cancelled {
                // The server keeps running a statement whose client left until it has rows
                // to send: stop it from another connection, then close this one instead of
                // returning it to the pool (the rest of its result is unread).
                // Bounded: a server that stopped answering must not hold this task forever.
                let bound = std::time::Duration::from_secs(5);
                let kill = async {
                    let mut killer = pool.get_conn().await?;
                    killer
                        .query_drop(format!("KILL QUERY {connection_id}"))
                        .await
                };
                match tokio::time::timeout(bound, kill).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "cannot stop an abandoned MySQL statement")
                    }
                    Err(_) => tracing::warn!("stopping an abandoned MySQL statement timed out"),
                }
                if let Ok(Err(e)) = tokio::time::timeout(bound, conn.disconnect()).await {
                    tracing::debug!(error = %e, "closing an abandoned mysql connection");
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).boxed();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
