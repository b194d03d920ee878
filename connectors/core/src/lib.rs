//! Connector traits, the registry, error classes, and an in-memory fake for tests.
//!
//! The gateway talks only to these traits; one crate per source kind implements them. A
//! connector never sees the mesh model: it gets its own options (as JSON, to deserialize into
//! its typed options struct) and, per port, a [`PortRequest`].
//!
//! ```
//! use std::sync::Arc;
//! use meshgate_connector::{memory::MemoryFactory, Registry};
//!
//! let mut registry = Registry::default();
//! registry.register(Arc::new(MemoryFactory::default()));
//! assert!(registry.get("memory").is_some());
//! ```

mod error;
pub mod identity;
pub mod memory;
mod registry;

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion_federation::FederatedTableSource;

pub use error::{ConnectorError, ErrorClass};
pub use registry::Registry;

/// What a factory knows about the source it builds, besides the options.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// The source's name in the mesh (for messages).
    pub name: String,
    /// Directory relative paths in options resolve against (the directory of `mesh.yaml`).
    pub base_dir: PathBuf,
    /// `false` when the source is declared `pushdown: off`: only projections reach it,
    /// filters, limits, joins and aggregates run in the gateway.
    pub pushdown: bool,
}

/// How one port is bound to its source. Which fields a kind needs is the connector's call:
/// `files` uses `location`/`format`, SQL sources use `table` or `query`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortRequest {
    /// `domain.product.port`, for messages only.
    pub display_name: String,
    /// A file, directory or glob below the source url.
    pub location: Option<String>,
    /// File format name.
    pub format: Option<String>,
    /// `[schema.]table`.
    pub table: Option<String>,
    /// A read-only query.
    pub query: Option<String>,
    /// Per-port options (a JSON object), deserialized by the connector.
    pub options: serde_json::Value,
}

/// Builds connectors of one source kind. Registered once in the gateway's registry.
#[async_trait]
pub trait ConnectorFactory: Send + Sync + Debug {
    /// The `kind` value in `mesh.yaml` this factory serves, e.g. `"files"`.
    fn kind(&self) -> &'static str;

    /// Checks source options and port bindings without connecting anywhere (local files may
    /// be looked at). Returns every problem: `(None, msg)` for the source options,
    /// `(Some(i), msg)` for `ports[i]`. Used by `meshgate validate` and before [`Self::create`].
    fn check(
        &self,
        ctx: &SourceContext,
        options: &serde_json::Value,
        ports: &[PortRequest],
    ) -> Vec<(Option<usize>, String)>;

    /// Builds the connector for one source. Must not fail because the source is unreachable:
    /// connection problems surface when a port is opened or scanned, so that a source that
    /// is down at start-up does not stop the gateway.
    async fn create(
        &self,
        ctx: SourceContext,
        options: serde_json::Value,
    ) -> Result<Arc<dyn Connector>, ConnectorError>;
}

/// A port opened by a connector.
#[derive(Debug, Clone)]
pub struct OpenedPort {
    /// Scans the port on its own (projection, and the filters and limit it declares, pushed
    /// to the source). Always present: it serves when federation is off or not possible.
    pub provider: Arc<dyn TableProvider>,
    /// Present when the source can run whole sub-plans (joins, aggregates, sorts) as one
    /// statement: the gateway then lets datafusion-federation cut the plan.
    pub federation: Option<Arc<dyn PortFederation>>,
}

impl From<Arc<dyn TableProvider>> for OpenedPort {
    fn from(provider: Arc<dyn TableProvider>) -> Self {
        Self {
            provider,
            federation: None,
        }
    }
}

/// How a port takes part in federation.
pub trait PortFederation: Send + Sync + Debug {
    /// The federated table source of the port as the gateway serves it. `schema` is a subset
    /// of the provider's columns, with the provider's names and types, in the served order
    /// (a contract may hide and reorder columns, never rename or retype them here: the
    /// gateway only federates ports whose contract is such a view). Sub-plans over sources
    /// with equal `compute_context` (same server, same credentials) are merged.
    fn table_source(&self, schema: SchemaRef) -> Arc<dyn FederatedTableSource>;
}

/// How busy a source's connection pool is, for the gateway's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Connections the pool may hold.
    pub size: u64,
    /// Statements holding a connection now.
    pub in_use: u64,
    /// Statements waiting for a free connection now.
    pub waiting: u64,
}

/// How reachable a source has been lately, for readiness and the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceHealth {
    /// Statements in a row that could not reach the source (0: the last one did).
    pub consecutive_failures: u32,
    /// The last such failure.
    pub last_error: Option<String>,
    /// When the current run of failures began.
    pub failing_since: Option<std::time::SystemTime>,
    /// Whether statements fail at once without trying (circuit breaker open).
    pub circuit_open: bool,
}

/// What a port's schema promises about its data; contract drift checks rely on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchemaTraits {
    /// The source declares column nullability: a column it reports nullable may hold NULLs,
    /// one it reports NOT NULL never does (SQL servers, Parquet, Arrow). When false, every
    /// column reads as nullable whatever the data (CSV, JSON, SQLite).
    pub declares_nullability: bool,
    /// Column types are inferred from the data (CSV, JSON): only castability to the
    /// contract's types can be checked, not that no value is lost.
    pub inferred_types: bool,
}

/// One configured source: opens its ports as DataFusion tables.
#[async_trait]
pub trait Connector: Send + Sync + Debug {
    /// What the schemas of `port` promise (each kind answers for its own formats).
    fn schema_traits(&self, port: &PortRequest) -> SchemaTraits;

    /// The connection pool's use, for sources that keep one (SQL servers); `None` otherwise.
    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }

    /// How reachable the source has been at query time, for sources that track it.
    fn health(&self) -> Option<SourceHealth> {
        None
    }

    /// Opens `port` as a table. The returned provider's schema is the source's schema of the
    /// port (before any contract); its `scan` must honour `projection` and may push `filters`
    /// and `limit` as it declares in `supports_filters_pushdown`. Errors carry an
    /// [`ErrorClass`]: `NotFound` for a missing table or file, `Unavailable` when the source
    /// cannot be reached.
    async fn open_port(
        &self,
        session: &dyn Session,
        port: &PortRequest,
    ) -> Result<OpenedPort, ConnectorError>;
}
