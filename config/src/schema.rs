//! JSON schemas of the two file kinds, generated from the serde model. The checked-in copies
//! under `config/schema/` are kept current by a test.

use crate::doc::{MeshDoc, ProductDoc};

/// JSON schema of `mesh.yaml`.
pub fn mesh_schema_json() -> String {
    pretty(schemars::schema_for!(MeshDoc))
}

/// JSON schema of a product file.
pub fn product_schema_json() -> String {
    pretty(schemars::schema_for!(ProductDoc))
}

fn pretty(schema: schemars::Schema) -> String {
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}
