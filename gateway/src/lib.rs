//! meshgate: a federated Arrow Flight SQL gateway for the data mesh.
//!
//! A mesh directory (see `config/` and DESIGN.md) names sources and data products; every
//! output port becomes a table `domain.product.port` served over Flight SQL. The pieces:
//!
//! - [`connectors`]: the registry of source kinds and static validation;
//! - [`catalog`]: ports opened into a read-only DataFusion catalog;
//! - [`contract`]: port contracts enforced on every scan;
//! - [`query`] and [`limits`]: read-only, budgeted planning and execution;
//! - [`security`]: authentication, grants, masks and row filters, the audit log;
//! - [`flight`]: the Flight SQL service;
//! - [`server`]: wiring and serving; [`demo`]: the TPC-H demo mesh.
//!
//! ```no_run
//! # async fn run() -> Result<(), meshgate::error::GatewayError> {
//! use meshgate::{connectors::default_registry, server};
//! let opts = server::GatewayOptions::default();
//! let service = server::service_for_dir(
//!     std::path::Path::new("config/examples/demo"),
//!     &default_registry(),
//!     &opts,
//!     tokio::runtime::Handle::current(),
//! )
//! .await?;
//! let (listener, addr) = server::bind("127.0.0.1:0".parse().unwrap()).await?;
//! println!("serving on {addr}");
//! server::serve(listener, service, std::future::pending()).await
//! # }
//! ```

pub mod catalog;
pub mod catalog_service;
pub mod cli;
pub mod connectors;
pub mod demo;
pub mod error;
pub mod flight;
pub mod metrics;
pub mod port;
pub mod query;
pub mod reload;
pub mod security;
pub mod server;
pub mod telemetry;
pub mod usage;
