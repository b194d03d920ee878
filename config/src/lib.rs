//! The meshgate mesh model: format v1 of a mesh directory (see DESIGN.md), its loader and
//! validation, and the JSON schema generated from it.
//!
//! ```no_run
//! let mesh = meshgate_config::load_mesh(std::path::Path::new("config/examples/demo"))
//!     .map_err(|errors| eprintln!("{errors}"))
//!     .ok();
//! ```
//!
//! Loading reports every problem at once, each with file, line and column. Connector options
//! stay opaque here (`serde_json::Value` with secrets resolved); each connector deserializes
//! them into its own typed options.

pub mod diff;
pub mod doc;
mod error;
mod load;
mod model;
pub mod odcs;
mod schema;
mod secrets;
mod security;
mod types;

pub use error::{ConfigError, ConfigErrors, Origin};
pub use load::{load_mesh, load_mesh_lenient, DOMAINS_DIR, MESH_FILE};
pub use model::*;
pub use schema::{mesh_schema_json, product_schema_json};
pub use secrets::resolve_secrets;
pub use security::{parse_token_hash, DEFAULT_SESSION_TTL_S};
pub use types::{ColumnType, COLUMN_TYPE_NAMES};
