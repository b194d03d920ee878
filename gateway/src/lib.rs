//! meshgate: a federated Arrow Flight SQL gateway for the data mesh.
//!
//! A mesh directory (see `config/` and DESIGN.md) names sources and data products; every
//! output port becomes a table `domain.product.port` served over Flight SQL. The pieces:
//!
//! - [`connectors`]: the registry of source kinds and static validation;
//! - [`catalog`]: ports opened into a read-only DataFusion catalog, their contracts and
//!   live checks, the `mesh` system catalog, and each principal's view of it;
//! - [`query`]: read-only, budgeted planning and execution;
//! - [`security`]: authentication, policies (grants, masks, row filters), signing, audit;
//! - [`state`]: the shared state every front end is handed; [`request`]: one call's
//!   authentication, execution and records;
//! - front ends: [`flight`] (Flight SQL), [`catalog_service`] (gRPC), [`http`];
//!   [`server`] serves them; [`cli`] is the command line; [`demo`]: the TPC-H demo mesh.
//!
//! ARCHITECTURE.md at the repository root shows the allowed direction of imports.
//!
//! ```no_run
//! # async fn run() -> Result<(), meshgate::error::GatewayError> {
//! use meshgate::{connectors::default_registry, server};
//! let opts = server::GatewayOptions::default();
//! let state = server::state_for_dir(
//!     std::path::Path::new("config/examples/demo"),
//!     &default_registry(),
//!     &opts,
//!     tokio::runtime::Handle::current(),
//! )
//! .await?;
//! let (listener, addr) = server::bind("127.0.0.1:0".parse().unwrap()).await?;
//! println!("serving on {addr}");
//! server::serve(listener, state, std::future::pending()).await
//! # }
//! ```

pub mod cancel;
pub mod catalog;
pub mod catalog_service;
pub mod cli;
pub mod connectors;
pub mod demo;
pub mod error;
pub mod flight;
pub mod http;
pub mod metrics;
pub mod port;
pub mod query;
pub mod reload;
pub mod request;
pub mod security;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod usage;
