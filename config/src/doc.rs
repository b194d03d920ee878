//! The files of a mesh directory as written (format v1). These are the public contract of
//! the configuration: keys may be added, never renamed. Every struct rejects unknown keys.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// `apiVersion` of every file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum ApiVersion {
    /// Format v1.
    #[serde(rename = "meshgate/v1")]
    V1,
}

/// `kind: Mesh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum MeshKind {
    /// The root file, `mesh.yaml`.
    Mesh,
}

/// `kind: DataProduct`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum ProductKind {
    /// A data product file below `domains/`.
    DataProduct,
}

/// `mesh.yaml` at the root of a mesh directory.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MeshDoc {
    /// Always `meshgate/v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: ApiVersion,
    /// Always `Mesh`.
    pub kind: MeshKind,
    /// The mesh's name.
    pub name: String,
    /// What this mesh is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Named connections, referenced by ports.
    #[serde(default)]
    pub sources: Vec<SourceDoc>,
}

/// A named connection (`sources[]` in `mesh.yaml`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceDoc {
    /// Unique source name, referenced by ports.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Source kind: `files`, `sqlite`, `postgres`, `mysql` (and later `flightsql`).
    #[schemars(with = "String")]
    pub kind: Spanned<String>,
    /// Options of the source kind; each connector documents its keys. Secrets are written
    /// `{ env: NAME }` or `{ file: path }`, never inline.
    #[serde(default = "empty_options")]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub options: Spanned<serde_json::Value>,
    /// What this source is.
    #[serde(default)]
    pub description: Option<String>,
    /// SQL sources: push joins and aggregates of sub-plans that touch only this source to it
    /// as one statement (default `true`). `false` pushes only projections, filters and limits
    /// per port: a comparison point and an escape hatch.
    #[serde(default = "default_true")]
    pub federation: bool,
}

fn default_true() -> bool {
    true
}

fn empty_options() -> Spanned<serde_json::Value> {
    Spanned::new(
        serde_json::Value::Object(serde_json::Map::new()),
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

/// Lifecycle state of a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProductStatus {
    /// Work in progress.
    Draft,
    /// Served and supported.
    #[default]
    Published,
    /// Still served; consumers should move away.
    Deprecated,
}

impl ProductStatus {
    /// The lowercase name, as written in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Published => "published",
            Self::Deprecated => "deprecated",
        }
    }
}

/// Who owns a product.
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OwnerDoc {
    /// Owning team.
    pub team: String,
    /// Contact address.
    #[serde(default)]
    pub email: Option<String>,
}

/// A product file (`kind: DataProduct`) anywhere below `domains/`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductDoc {
    /// Always `meshgate/v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: ApiVersion,
    /// Always `DataProduct`.
    pub kind: ProductKind,
    /// The owning domain: the SQL catalog. `mesh` is reserved.
    #[schemars(with = "String")]
    pub domain: Spanned<String>,
    /// Product name: the SQL schema inside the domain's catalog.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// What the product offers.
    #[serde(default)]
    pub description: Option<String>,
    /// Who to ask about it.
    pub owner: OwnerDoc,
    /// Free-form tags for discovery.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `draft`, `published` (default) or `deprecated`.
    #[serde(default)]
    pub status: ProductStatus,
    /// Output ports: the SQL tables of the product.
    pub ports: Vec<PortDoc>,
}

/// An output port (`ports[]` in a product file).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortDoc {
    /// Port name: the SQL table.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// What one row is.
    #[serde(default)]
    pub description: Option<String>,
    /// Name of a source in `mesh.yaml`.
    #[schemars(with = "String")]
    pub source: Spanned<String>,
    /// `files` sources: a file, a directory or a glob under the source url.
    #[serde(default)]
    pub location: Option<String>,
    /// `files` sources: `parquet`, `csv`, `json` (newline-delimited) or `arrow` (IPC file).
    #[serde(default)]
    pub format: Option<String>,
    /// SQL sources: `[schema.]table`.
    #[serde(default)]
    pub table: Option<String>,
    /// SQL sources: a read-only query whose result is the port.
    #[serde(default)]
    pub query: Option<String>,
    /// Format or source specific options of this port (for example `{ delimiter: ";" }` for CSV).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub options: Option<Spanned<serde_json::Value>>,
    /// The contract: when present, results follow it exactly and other columns are invisible.
    #[serde(default)]
    pub columns: Option<Vec<ColumnDoc>>,
    /// Columns that identify a row (served by GetPrimaryKeys).
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// References to other ports (served by GetImportedKeys, GetExportedKeys, GetCrossReference).
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKeyDoc>,
}

/// One contract column.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnDoc {
    /// Column name, as clients see it.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// One of `boolean, tinyint, smallint, int, bigint, float, double, decimal(p,s), string,
    /// binary, date, time, timestamp, timestamp_tz`.
    #[serde(rename = "type")]
    #[schemars(with = "String")]
    pub data_type: Spanned<String>,
    /// Never NULL: the column is non-nullable and a NULL from the source fails the query.
    #[serde(default)]
    pub required: bool,
    /// Shown to clients as `ARROW:FLIGHT:SQL:REMARKS`.
    #[serde(default)]
    pub description: Option<String>,
    /// Data classification label (for example `pii`), used by policies.
    #[serde(default)]
    pub classification: Option<String>,
}

/// A foreign key of a port.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForeignKeyDoc {
    /// Columns of this port.
    pub columns: Vec<String>,
    /// The referenced port, `domain.product.port`.
    #[schemars(with = "String")]
    pub references: Spanned<String>,
    /// Columns of the referenced port, in the same order.
    pub referenced_columns: Vec<String>,
}
