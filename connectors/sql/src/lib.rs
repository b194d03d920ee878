//! What every SQL source kind (`postgres`, `mysql`, `sqlite`) shares.
//!
//! A kind implements [`SqlBackend`] (how to open a pool, its dialect, what identifies "same
//! server and same credentials") and [`SqlPool`] (schemas and Arrow result streams); this
//! crate turns that into a [`meshgate_connector::Connector`] whose ports
//!
//! - scan on their own with projection, filters and `LIMIT` pushed into one `SELECT`
//!   ([`SqlScanTable`]), and
//! - take part in federation: datafusion-federation cuts the largest sub-plan that touches
//!   only sources with one [`SqlBackend::compute_context`]; [`federate`] writes it as one
//!   statement in the source's dialect ([`sqlgen`]: every node's output columns are
//!   positional and aliased, so names in the plan never reach the source), and where a node
//!   cannot be written with DataFusion's meaning for the dialect ([`semantics`], from the
//!   tables in [`capability`]) it stays in the gateway while smaller sub-plans are pushed.
//!   Port scans are written by the same rules. A statement a source rejects is
//!   [`meshgate_connector::ErrorClass::PushdownRejected`] (logged with its SQL); a source
//!   declared `pushdown: off` receives only `SELECT <columns> FROM <table>`.
//!
//! A kind's [`SqlSourceFactory`] only says how to read its options.
//!
//! The pool is created on first use, not at start-up: a source that is down when the gateway
//! starts fails the queries that touch it with `Unavailable` (naming the source and its
//! address) and serves again once it is back, without a restart.
//!
//! # Timeouts (keys every SQL kind accepts in its options)
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `pool_size` | connections kept per source | `8` |
//! | `connect_timeout_ms` | opening a pool (first connection) | `5000` |
//! | `acquire_timeout_ms` | waiting for a free connection | `10000` |
//! | `statement_timeout_ms` | until the first batch, and between two batches; also set on the server where it supports one | `300000` |
//!
//! ```
//! use meshgate_connector_sql::PoolSettings;
//! let s = PoolSettings::default();
//! assert_eq!(s.pool_size, 8);
//! ```

pub mod breaker;
pub mod cancel;
pub mod capability;
mod exec;
mod factory;
pub mod federate;
pub mod semantics;
mod source;
pub mod sqlgen;
mod table;
pub mod unparse;

pub use exec::{conform_batch, SqlScanExec};
pub use factory::{ParseOptions, SqlSourceFactory};
pub use federate::FederatedSqlExec;
pub use source::{
    credential_fingerprint, PoolSettings, SqlBackend, SqlConnector, SqlPool, SqlSource,
    SqlSourceExecutor,
};
pub use table::{check_port, quote_table, SqlScanTable};
