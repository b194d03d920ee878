//! Integration tests against an in-process gateway bound to port 0. One test binary (one
//! link of DataFusion); one module per area.

mod contracts;
mod fuzz;
mod governance;
mod hardening;
mod metadata;
mod pushdown_classes;
mod queries;
mod remote;
mod sources;
mod sql_sources;
