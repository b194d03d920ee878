//! meshgate.v1 protobuf definitions, with the prost code generated from `proto/` checked in
//! under `src/gen/`. No `protoc` is needed: the test `generated_code_is_current` compiles the
//! `.proto` files with the pure-Rust `protox` and fails when the checked-in code drifts.
//! Regenerate with `MESHGATE_REGEN=1 cargo test -p meshgate-proto`.
//!
//! ```
//! use meshgate_proto::v1::StatementTicket;
//! use prost::Message;
//! let t = StatementTicket { sql: "SELECT 1".into(), parameters: vec![], issued_at_ms: 0, principal: "alice".into() };
//! assert_eq!(StatementTicket::decode(t.encode_to_vec().as_slice()).unwrap(), t);
//! ```

/// Package `meshgate.v1`.
#[allow(
    missing_docs,
    clippy::all,
    clippy::clone_on_ref_ptr,
    clippy::unwrap_used,
    missing_debug_implementations
)]
pub mod v1 {
    include!("gen/meshgate.v1.rs");
}

/// Encoded `FileDescriptorSet` of `meshgate.v1` and of the Arrow Flight service
/// (`arrow.flight.protocol.FlightService`, restated in `proto/arrow/flight/protocol/`), imports
/// included: what gRPC server reflection serves.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("gen/descriptor_set.bin");
