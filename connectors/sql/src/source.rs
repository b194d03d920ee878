//! A SQL source: its backend, its lazily created pool, and its federation executor.

use std::fmt::{self, Debug};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::unparser::dialect::Dialect;
use datafusion_federation::sql::{
    LogicalOptimizer, RemoteTableRef, SQLExecutor, SQLFederationProvider, SQLTableSource,
};
use datafusion_federation::FederatedTableSource;
use futures::{StreamExt, TryStreamExt};
use meshgate_connector::identity::Caller;
use meshgate_connector::{
    Connector, ConnectorError, ErrorClass, OpenedPort, PoolStats, PortFederation, PortRequest,
    SchemaTraits,
};
use sha2::{Digest, Sha256};

use crate::capability::Capabilities;
use crate::exec::conform_batch;
use crate::federate::split_federated;
use crate::sqlgen::ScanRelation;
use crate::table::{check_port, SqlScanTable};
use crate::unparse::SourceDialect;

/// Pool size and timeouts of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Connections kept per source.
    pub pool_size: u32,
    /// Opening the pool (the first connection).
    pub connect_timeout: Duration,
    /// Waiting for a free connection.
    pub acquire_timeout: Duration,
    /// Until the first batch, and between two batches.
    pub statement_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            pool_size: 8,
            connect_timeout: Duration::from_millis(5_000),
            acquire_timeout: Duration::from_millis(10_000),
            statement_timeout: Duration::from_millis(300_000),
        }
    }
}

impl PoolSettings {
    /// Settings from the optional option keys (milliseconds); missing keys keep the default.
    pub fn from_options(
        pool_size: Option<u32>,
        connect_timeout_ms: Option<u64>,
        acquire_timeout_ms: Option<u64>,
        statement_timeout_ms: Option<u64>,
    ) -> Result<Self, String> {
        let d = Self::default();
        let s = Self {
            pool_size: pool_size.unwrap_or(d.pool_size),
            connect_timeout: connect_timeout_ms.map_or(d.connect_timeout, Duration::from_millis),
            acquire_timeout: acquire_timeout_ms.map_or(d.acquire_timeout, Duration::from_millis),
            statement_timeout: statement_timeout_ms
                .map_or(d.statement_timeout, Duration::from_millis),
        };
        if s.pool_size == 0 {
            return Err("`pool_size` must be at least 1".into());
        }
        for (name, v) in [
            ("connect_timeout_ms", s.connect_timeout),
            ("acquire_timeout_ms", s.acquire_timeout),
            ("statement_timeout_ms", s.statement_timeout),
        ] {
            if v.is_zero() {
                return Err(format!("`{name}` must be more than 0"));
            }
        }
        Ok(s)
    }
}

/// One SQL source kind. Implementations hold their typed options (secrets included) and
/// must never put a secret in a message, in [`Self::address`] or in
/// [`Self::compute_context`].
#[async_trait]
pub trait SqlBackend: Send + Sync + Debug + 'static {
    /// The source kind, e.g. `"postgres"`.
    fn kind(&self) -> &'static str;

    /// Where the source is, for messages: `host:port/database`, or a file path.
    fn address(&self) -> String;

    /// Identifies "same server and same credentials" exactly: ports of sources with equal
    /// contexts may be joined in one pushed statement. Shown in EXPLAIN, so credentials
    /// enter it only through [`credential_fingerprint`].
    fn compute_context(&self) -> String;

    /// The dialect pushed SQL is written in.
    fn dialect(&self) -> Arc<dyn Dialect>;

    /// What that dialect runs with DataFusion's meaning; other parts of a plan stay in the
    /// gateway.
    fn capabilities(&self) -> Capabilities;

    /// Whether the schemas this source reports declare nullability (a NOT NULL column holds
    /// no NULL); false when every column reads as nullable (SQLite).
    fn declares_nullability(&self) -> bool;

    /// Opens a pool and checks one connection. `settings.connect_timeout` is enforced by
    /// the caller; errors should be `Unavailable` (cannot reach), `PermissionDenied` (bad
    /// credentials) or `InvalidConfig`.
    async fn connect(&self, settings: &PoolSettings) -> Result<Arc<dyn SqlPool>, ConnectorError>;
}

/// A connected pool of one source.
#[async_trait]
pub trait SqlPool: Send + Sync + Debug {
    /// The Arrow schema of `table` (`[schema.]table`). `NotFound` when it does not exist.
    async fn table_schema(&self, table: &TableReference) -> Result<SchemaRef, ConnectorError>;

    /// The Arrow schema of the rows of a read-only query.
    async fn query_schema(&self, sql: &str) -> Result<SchemaRef, ConnectorError>;

    /// Runs `sql` and streams its rows. Batches should have `schema`'s types where the
    /// source allows; the caller casts what differs. Waiting for a connection is bounded
    /// by `acquire_timeout` inside the implementation.
    async fn query(
        &self,
        sql: &str,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream, ConnectorError>;

    /// [`Self::query`] on behalf of `caller` (the principal the gateway runs the query for).
    /// Sources that cannot forward an identity ignore it.
    async fn query_as(
        &self,
        sql: &str,
        schema: SchemaRef,
        caller: Option<Arc<Caller>>,
    ) -> Result<SendableRecordBatchStream, ConnectorError> {
        let _ = caller;
        self.query(sql, schema).await
    }
}

/// A random id for correlating a client's message with the log.
fn uuid_like() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fingerprint of a credential for [`SqlBackend::compute_context`]: equal for equal
/// secrets within this process, useless to guess the secret from (salted per process).
pub fn credential_fingerprint(secret: &str) -> String {
    static SALT: OnceLock<[u8; 16]> = OnceLock::new();
    let salt = SALT.get_or_init(rand::random);
    let mut h = Sha256::new();
    h.update(salt);
    h.update(secret.as_bytes());
    let d = h.finalize();
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// A configured SQL source: backend, settings and the pool once it exists.
pub struct SqlSource {
    name: String,
    backend: Arc<dyn SqlBackend>,
    settings: PoolSettings,
    pool: tokio::sync::Mutex<Option<Arc<dyn SqlPool>>>,
    /// Statements between asking for a connection and the end (or drop) of their rows. Each
    /// takes one connection of the pool: those beyond the pool size are waiting for one.
    active: Arc<AtomicU64>,
    /// Whether filters, limits and sub-plans are pushed (`pushdown: on`, the default).
    pushdown: bool,
    /// Fails statements at once while the source keeps failing.
    breaker: crate::breaker::Breaker,
}

/// Decrements a gauge when dropped.
struct Gauge(Arc<AtomicU64>);

impl Gauge {
    fn up(g: &Arc<AtomicU64>) -> Self {
        g.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(g))
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Debug for SqlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlSource")
            .field("name", &self.name)
            .field("kind", &self.backend.kind())
            .field("address", &self.backend.address())
            .finish()
    }
}

impl SqlSource {
    /// A source named `name` (as in the mesh), pushing filters, limits and sub-plans.
    pub fn new(name: String, backend: Arc<dyn SqlBackend>, settings: PoolSettings) -> Self {
        Self {
            name,
            backend,
            settings,
            pool: tokio::sync::Mutex::new(None),
            active: Arc::default(),
            pushdown: true,
            breaker: crate::breaker::Breaker::default(),
        }
    }

    /// With `pushdown: off` only projections reach the source: `SELECT <columns> FROM
    /// <table>`, every filter, limit, join and aggregate in the gateway.
    pub fn with_pushdown(mut self, pushdown: bool) -> Self {
        self.pushdown = pushdown;
        self
    }

    /// Whether anything besides projections is pushed.
    pub fn pushdown(&self) -> bool {
        self.pushdown
    }

    /// The dialect statements for this source are written in.
    pub fn source_dialect(&self) -> SourceDialect {
        SourceDialect::new(self.backend.dialect(), self.backend.capabilities().flavor)
    }

    /// The pool's size and use now.
    pub fn pool_stats(&self) -> PoolStats {
        let size = u64::from(self.settings.pool_size);
        let active = self.active.load(Ordering::Relaxed);
        PoolStats {
            size,
            in_use: active.min(size),
            waiting: active.saturating_sub(size),
        }
    }

    /// How reachable the source has been at query time.
    pub fn health(&self) -> meshgate_connector::SourceHealth {
        self.breaker.health()
    }

    /// Counts `e` against the source when it means the source could not be reached. When
    /// the circuit opens (and when a probe fails) the pool is dropped: connections stuck on
    /// a server that stopped answering would otherwise fail statements long after it
    /// recovered; the next statement connects afresh.
    fn observe(&self, e: &ConnectorError) {
        if crate::breaker::counts(e.class) && self.breaker.failed(&e.message) {
            if let Ok(mut pool) = self.pool.try_lock() {
                if pool.take().is_some() {
                    tracing::warn!(source = %self.name, "the source keeps failing: its connection pool is dropped and made anew on the next statement");
                }
            }
        }
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn SqlBackend> {
        &self.backend
    }

    /// `source `name` (kind at address)`, the prefix of every message about this source.
    pub fn describe(&self) -> String {
        format!(
            "source `{}` ({} at {})",
            self.name,
            self.backend.kind(),
            self.backend.address()
        )
    }

    fn wrap(&self, e: ConnectorError) -> ConnectorError {
        ConnectorError::new(e.class, format!("{}: {}", self.describe(), e.message))
    }

    /// A statement the gateway wrote for this source failed. When the source rejected the
    /// SQL itself, that is a bug of the gateway's pushdown: the statement goes to the log
    /// under a correlation id, and the message says so and how to keep serving.
    fn failed(&self, e: ConnectorError, sql: &str) -> ConnectorError {
        if e.class != ErrorClass::PushdownRejected {
            return self.wrap(e);
        }
        let id = uuid_like();
        tracing::error!(
            source = %self.name,
            correlation_id = %id,
            sql = %sql,
            error = %e.message,
            "the source rejected SQL the gateway generated (a pushdown bug)"
        );
        ConnectorError::new(
            ErrorClass::PushdownRejected,
            format!(
                "{} rejected the SQL meshgate generated for it ({}); this is a meshgate pushdown bug, \
                 the statement is in the gateway log under correlation id {id}. Setting `pushdown: off` \
                 on the source serves such queries until it is fixed",
                self.describe(),
                e.message
            ),
        )
    }

    /// The pool, connecting first if there is none yet. Attempts are serialized, so a
    /// source that is down is asked once at a time, and each attempt is bounded by
    /// `connect_timeout`.
    pub async fn pool(&self) -> Result<Arc<dyn SqlPool>, ConnectorError> {
        let mut guard = self.pool.lock().await;
        if let Some(p) = guard.as_ref() {
            return Ok(Arc::clone(p));
        }
        let attempt = tokio::time::timeout(
            self.settings.connect_timeout,
            self.backend.connect(&self.settings),
        )
        .await;
        let pool = match attempt {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                let class = match e.class {
                    ErrorClass::PermissionDenied | ErrorClass::InvalidConfig => e.class,
                    _ => ErrorClass::Unavailable,
                };
                return Err(ConnectorError::new(
                    class,
                    format!("{} is unavailable: {}", self.describe(), e.message),
                ));
            }
            Err(_) => {
                return Err(ConnectorError::new(
                    ErrorClass::Unavailable,
                    format!(
                        "{} is unavailable: no connection within {} ms",
                        self.describe(),
                        self.settings.connect_timeout.as_millis()
                    ),
                ))
            }
        };
        tracing::info!(source = %self.name, address = %self.backend.address(), "connected");
        *guard = Some(Arc::clone(&pool));
        Ok(pool)
    }

    /// Streams the rows of `sql` for `caller`, cast to `schema`; connection, acquisition
    /// and each batch are bounded by the source's timeouts. Errors name the source.
    pub fn stream(
        self: &Arc<Self>,
        sql: String,
        schema: SchemaRef,
        caller: Option<Arc<Caller>>,
    ) -> SendableRecordBatchStream {
        self.stream_as(sql, Arc::clone(&schema), schema, caller)
    }

    /// Streams the rows of a statement whose result columns are named as in `decode`, cast
    /// by position to `schema` (names and types of the plan). `caller` is who the statement
    /// runs for (from the task context), for sources that forward it.
    pub fn stream_as(
        self: &Arc<Self>,
        sql: String,
        decode: SchemaRef,
        schema: SchemaRef,
        caller: Option<Arc<Caller>>,
    ) -> SendableRecordBatchStream {
        let this = Arc::clone(self);
        let timeout = self.settings.statement_timeout;
        let target = Arc::clone(&schema);
        let first = async move {
            // The statement counts from asking for a connection until its rows are read or
            // dropped.
            let held = Gauge::up(&this.active);
            if let Err(m) = this.breaker.admit() {
                return Err(this
                    .wrap(ConnectorError::new(ErrorClass::Unavailable, m))
                    .into_datafusion());
            }
            let pool = match this.pool().await {
                Ok(p) => p,
                Err(e) => {
                    this.observe(&e);
                    return Err(e.into_datafusion());
                }
            };
            tracing::debug!(source = %this.name, sql = %sql, "query sent to source");
            let inner = match tokio::time::timeout(
                this.settings.acquire_timeout + timeout,
                pool.query_as(&sql, decode, caller),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    let e = this.failed(e, &sql);
                    this.observe(&e);
                    return Err(e.into_datafusion());
                }
                Err(_) => {
                    let e = this.wrap(ConnectorError::new(
                        ErrorClass::Timeout,
                        format!("no answer within {} ms", timeout.as_millis()),
                    ));
                    this.observe(&e);
                    return Err(e.into_datafusion());
                }
            };
            this.breaker.succeeded();
            let describe = this.describe();
            let sql = Arc::new(sql);
            let bounded = futures::stream::unfold(Some((inner, held)), move |state| {
                let describe = describe.clone();
                let target = Arc::clone(&target);
                let this = Arc::clone(&this);
                let sql = Arc::clone(&sql);
                async move {
                    let (mut s, held) = state?;
                    match tokio::time::timeout(timeout, s.next()).await {
                        Ok(None) => None,
                        Ok(Some(Ok(b))) => {
                            let conformed = conform_batch(&b, &target).map_err(|e| {
                                ConnectorError::new(ErrorClass::Data, format!("{describe}: {e}"))
                                    .into_datafusion()
                            });
                            Some((conformed, Some((s, held))))
                        }
                        Ok(Some(Err(e))) => {
                            let e = match stream_connector_error(&e) {
                                Some(c) => this.failed(c, &sql),
                                None => ConnectorError::new(
                                    classify_stream_error(&e),
                                    format!("{describe}: {e}"),
                                ),
                            };
                            this.observe(&e);
                            Some((Err(e.into_datafusion()), None))
                        }
                        Err(_) => {
                            let e = ConnectorError::new(
                                ErrorClass::Timeout,
                                format!(
                                    "{describe}: no rows for {} ms (statement_timeout_ms)",
                                    timeout.as_millis()
                                ),
                            );
                            this.observe(&e);
                            Some((Err(e.into_datafusion()), None))
                        }
                    }
                }
            });
            Ok(bounded)
        };
        let stream = futures::stream::once(first).try_flatten();
        Box::pin(RecordBatchStreamAdapter::new(schema, stream))
    }
}

/// The connector's own error inside a stream error, if it is one.
fn stream_connector_error(e: &DataFusionError) -> Option<ConnectorError> {
    match e {
        DataFusionError::External(inner) => inner.downcast_ref::<ConnectorError>().cloned(),
        DataFusionError::Context(_, inner) => stream_connector_error(inner),
        _ => None,
    }
}

/// An error in the middle of a result: lost connections are `Unavailable`, the rest a
/// failure of the pushed statement.
fn classify_stream_error(e: &DataFusionError) -> ErrorClass {
    if let DataFusionError::External(inner) = e {
        if let Some(c) = inner.downcast_ref::<ConnectorError>() {
            return c.class;
        }
    }
    let text = e.to_string().to_ascii_lowercase();
    if ["connection", "closed", "broken pipe", "reset", "eof"]
        .iter()
        .any(|w| text.contains(w))
    {
        ErrorClass::Unavailable
    } else {
        ErrorClass::Internal
    }
}

/// The federation side of a source: runs pushed sub-plans.
#[derive(Debug, Clone)]
pub struct SqlSourceExecutor {
    source: Arc<SqlSource>,
}

impl SqlSourceExecutor {
    /// An executor over `source`.
    pub fn new(source: Arc<SqlSource>) -> Self {
        Self { source }
    }
}

#[async_trait]
impl SQLExecutor for SqlSourceExecutor {
    fn name(&self) -> &str {
        &self.source.name
    }

    fn compute_context(&self) -> Option<String> {
        Some(self.source.backend.compute_context())
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        self.source.backend.dialect()
    }

    fn logical_optimizer(&self) -> Option<LogicalOptimizer> {
        let source = Arc::clone(&self.source);
        Some(Box::new(move |plan| split_federated(plan, &source)))
    }

    fn execute(
        &self,
        query: &str,
        schema: SchemaRef,
        _filters: &[Arc<dyn PhysicalExpr>],
    ) -> DfResult<SendableRecordBatchStream> {
        // datafusion-federation's own plan node has no task context here: no caller, so a
        // source forwarding identities refuses the statement (fail closed). The gateway
        // plans federated sub-plans as `FederatedSqlExec`, which passes the caller.
        Ok(self.source.stream(query.to_string(), schema, None))
    }

    async fn table_names(&self) -> DfResult<Vec<String>> {
        Err(DataFusionError::NotImplemented(
            "meshgate binds ports to tables explicitly".into(),
        ))
    }

    async fn get_table_schema(&self, table_name: &str) -> DfResult<SchemaRef> {
        let pool = self
            .source
            .pool()
            .await
            .map_err(ConnectorError::into_datafusion)?;
        pool.table_schema(&TableReference::from(table_name))
            .await
            .map_err(|e| self.source.wrap(e).into_datafusion())
    }
}

/// A port that is a table of a SQL source, as a federation participant.
#[derive(Debug)]
struct SqlPortFederation {
    provider: Arc<SQLFederationProvider>,
    remote: TableReference,
}

impl PortFederation for SqlPortFederation {
    fn table_source(&self, schema: SchemaRef) -> Arc<dyn FederatedTableSource> {
        Arc::new(SQLTableSource::new_with_schema(
            Arc::clone(&self.provider),
            RemoteTableRef::from(self.remote.clone()),
            schema,
        ))
    }
}

/// A [`Connector`] over any [`SqlBackend`].
#[derive(Debug)]
pub struct SqlConnector {
    source: Arc<SqlSource>,
    federation: Arc<SQLFederationProvider>,
}

impl SqlConnector {
    /// A connector for the source; nothing is connected until a port is opened.
    pub fn new(source: Arc<SqlSource>) -> Self {
        let executor = Arc::new(SqlSourceExecutor::new(Arc::clone(&source)));
        Self {
            source,
            federation: Arc::new(SQLFederationProvider::new(executor)),
        }
    }
}

#[async_trait]
impl Connector for SqlConnector {
    fn health(&self) -> Option<meshgate_connector::SourceHealth> {
        Some(self.source.health())
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        Some(self.source.pool_stats())
    }

    fn schema_traits(&self, _port: &PortRequest) -> SchemaTraits {
        SchemaTraits {
            declares_nullability: self.source.backend.declares_nullability(),
            inferred_types: false,
        }
    }

    async fn open_port(
        &self,
        _session: &dyn Session,
        port: &PortRequest,
    ) -> Result<OpenedPort, ConnectorError> {
        check_port(port).map_err(|e| {
            ConnectorError::new(
                ErrorClass::InvalidConfig,
                format!("port {}: {e}", port.display_name),
            )
        })?;
        let pool = self.source.pool().await?;
        let in_port = |e: ConnectorError| {
            ConnectorError::new(
                e.class,
                format!(
                    "port {} ({}): {}",
                    port.display_name,
                    self.source.describe(),
                    e.message
                ),
            )
        };
        if let Some(table) = &port.table {
            let reference = TableReference::from(table.as_str());
            let schema = pool.table_schema(&reference).await.map_err(in_port)?;
            let provider: Arc<dyn TableProvider> = Arc::new(SqlScanTable::new(
                Arc::clone(&self.source),
                ScanRelation::Table(reference.clone()),
                schema,
            ));
            let federation: Arc<dyn PortFederation> = Arc::new(SqlPortFederation {
                provider: Arc::clone(&self.federation),
                remote: reference,
            });
            Ok(OpenedPort {
                provider,
                federation: Some(federation),
            })
        } else {
            let query = port.query.as_deref().unwrap_or_default();
            let query = query.trim().trim_end_matches(';').trim();
            let schema = pool.query_schema(query).await.map_err(in_port)?;
            // A query port is scanned as a derived table; joins and aggregates over it run in
            // the gateway (datafusion-federation pushes named tables only).
            let provider: Arc<dyn TableProvider> = Arc::new(SqlScanTable::new(
                Arc::clone(&self.source),
                ScanRelation::Query(query.to_string()),
                schema,
            ));
            Ok(provider.into())
        }
    }
}
