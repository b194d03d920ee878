//! The files of a mesh directory as written (format v1). These are the public contract of
//! the configuration: keys may be added, never renamed. Every struct rejects unknown keys.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

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
    /// Who may connect: users, static tokens, JWT issuer, TLS. Without it nobody can.
    #[serde(default)]
    pub auth: Option<AuthDoc>,
    /// Mesh-wide policies: default access, masks by classification.
    #[serde(default)]
    pub policies: Option<PoliciesDoc>,
    /// Where the audit log goes (one JSON line per request).
    #[serde(default)]
    pub audit: Option<AuditDoc>,
    /// Directory for the gateway's state (usage records), relative to this file.
    #[serde(default)]
    pub state_dir: Option<String>,
    /// Admission control and query limits. Every key has a safe default.
    #[serde(default)]
    pub limits: Option<LimitsDoc>,
}

/// `limits` in `mesh.yaml`: how many queries run and wait, for how long, and per consumer.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsDoc {
    /// Most queries executing at once (default: 2 per core, at least 4).
    #[serde(default)]
    pub max_running_queries: Option<u32>,
    /// Most queries waiting for a slot; past it queries are refused at once with
    /// RESOURCE_EXHAUSTED (default: 8 times `max_running_queries`).
    #[serde(default)]
    pub max_queued_queries: Option<u32>,
    /// How long a query may wait for a slot before RESOURCE_EXHAUSTED (default 30000).
    #[serde(default)]
    pub queue_timeout_ms: Option<u64>,
    /// Most queries one principal runs at once (default: half of `max_running_queries`, at
    /// least 1), so that one consumer cannot take every slot.
    #[serde(default)]
    pub principal_max_running_queries: Option<u32>,
    /// Most queries one principal starts per minute (a token bucket; default: no rate
    /// limit). Queries that read no source port do not count.
    #[serde(default)]
    pub principal_queries_per_minute: Option<u32>,
    /// Longest a query may run, planning and streaming included (default 900); a client's
    /// shorter gRPC deadline applies too.
    #[serde(default)]
    pub max_query_time_s: Option<u64>,
    /// Most iterations of one recursive CTE (default 1000).
    #[serde(default)]
    pub max_recursion_depth: Option<u64>,
    /// Most rows the recursive part of one recursive CTE produces (default 10000000).
    #[serde(default)]
    pub max_recursive_rows: Option<u64>,
    /// Per-group overrides of `principal_max_running_queries`: a principal in several listed
    /// groups gets the largest.
    #[serde(default)]
    pub groups: Vec<GroupLimitDoc>,
}

/// One entry of `limits.groups`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupLimitDoc {
    /// The group.
    pub group: String,
    /// Most queries each member runs at once.
    pub max_running_queries: u32,
}

/// `auth` in `mesh.yaml`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthDoc {
    /// Basic credentials: `{ name, password_hash, groups }` (hash from `meshgate hash-password`).
    #[serde(default)]
    pub users: Vec<UserDoc>,
    /// Static bearer tokens: `{ name, token_hash, groups }` (from `meshgate new-token`).
    #[serde(default)]
    pub tokens: Vec<TokenDoc>,
    /// Bearer JWTs from an identity provider.
    #[serde(default)]
    pub jwt: Option<JwtDoc>,
    /// Accept clients that send no credentials, as principal `anonymous` (default `false`).
    #[serde(default)]
    pub anonymous: bool,
    /// Groups whose members may run EXPLAIN (default `[admins]`).
    #[serde(default)]
    pub admin_groups: Option<Vec<String>>,
    /// Lifetime of the session token a handshake returns, in seconds (default 3600).
    #[serde(default)]
    pub session_ttl_s: Option<u64>,
    /// TLS (and mutual TLS) on the Flight SQL endpoint.
    #[serde(default)]
    pub tls: Option<TlsDoc>,
    /// Other meshgates allowed to forward their callers' identity (a signed assertion sent
    /// with the gateway's own credentials): queries then run as the forwarded principal.
    #[serde(default)]
    pub trusted_gateways: Vec<TrustedGatewayDoc>,
}

/// A gateway whose identity assertions are accepted (`auth.trusted_gateways[]`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustedGatewayDoc {
    /// The gateway's name: the `iss` of its assertions (its `forward_identity.issuer`).
    pub name: String,
    /// The HMAC key both sides share, `{ env: NAME }` or `{ file: path }` (at least 32 bytes).
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub key: serde_json::Value,
    /// The principals (users or tokens of this mesh) the gateway authenticates as; an
    /// assertion is accepted only with their credentials.
    pub principals: Vec<String>,
}

/// A user with a password (`auth.users[]`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserDoc {
    /// The principal name.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// An argon2id PHC string (`$argon2id$v=19$...`), never the password.
    pub password_hash: String,
    /// Groups the user belongs to.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// A static bearer token (`auth.tokens[]`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenDoc {
    /// The principal name.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// `sha256:<64 hex digits>` of the token, never the token.
    pub token_hash: String,
    /// Groups of the principal.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Bearer JWTs (`auth.jwt`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtDoc {
    /// Required `iss` claim.
    pub issuer: String,
    /// Required `aud` claim.
    pub audience: String,
    /// A JWKS file (relative to the mesh directory); keys are chosen by `kid`.
    #[serde(default)]
    pub jwks_file: Option<String>,
    /// An HS256 shared secret, `{ env: NAME }` or `{ file: path }`.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub hs256_secret: Option<serde_json::Value>,
    /// Claim holding the principal's groups (default `groups`).
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Claim holding the principal's name (default `sub`).
    #[serde(default)]
    pub principal_claim: Option<String>,
    /// Accepted algorithms (default: RS256, ES256 with a JWKS file; HS256 with a secret).
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// Clock skew allowed on `exp`/`nbf`, in seconds (default 30).
    #[serde(default)]
    pub leeway_s: Option<u64>,
}

/// TLS on the Flight SQL endpoint (`auth.tls`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsDoc {
    /// PEM certificate chain of the gateway (relative to the mesh directory).
    pub cert_file: String,
    /// PEM private key of the gateway.
    pub key_file: String,
    /// PEM CA bundle for client certificates: turns on mutual TLS.
    #[serde(default)]
    pub client_ca_file: Option<String>,
    /// With `client_ca_file`: refuse connections without a client certificate (default `true`).
    #[serde(default)]
    pub require_client_cert: Option<bool>,
    /// Groups of principals authenticated by a client certificate, by subject CN.
    #[serde(default)]
    pub client_groups: BTreeMap<String, Vec<String>>,
}

/// `policies` in `mesh.yaml`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoliciesDoc {
    /// `deny` (default) or `allow`: access to products without an `access` section.
    #[serde(default)]
    pub default_access: DefaultAccess,
    /// Masks by column classification.
    #[serde(default)]
    pub classifications: BTreeMap<String, ClassificationDoc>,
    /// Key of the `hash` mask, `{ env: NAME }` or `{ file: path }`. Without it a random key
    /// per process: hashes then change on restart.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub hash_key: Option<serde_json::Value>,
}

/// Access to products that do not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAccess {
    /// Nobody reads them.
    #[default]
    Deny,
    /// Every authenticated principal reads them.
    Allow,
}

/// A classification policy.
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClassificationDoc {
    /// How columns of this classification are masked.
    pub mask: MaskKind,
    /// Groups that see the clear values.
    #[serde(default)]
    pub unmask_groups: Vec<String>,
}

/// A column mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MaskKind {
    /// A keyed hash: text becomes 32 hex digits, integers a hashed integer of the same width;
    /// equal inputs give equal outputs, so joins on masked keys still work. Other types: NULL.
    Hash,
    /// NULL.
    Redact,
    /// Text keeps its last 4 characters, the rest become `*`. Other types: NULL.
    Partial,
}

impl MaskKind {
    /// The lowercase name, as written in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hash => "hash",
            Self::Redact => "redact",
            Self::Partial => "partial",
        }
    }
}

/// `audit` in `mesh.yaml`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditDoc {
    /// File the JSON lines are appended to (relative to the mesh directory), or `-` for stdout.
    pub file: String,
}

/// `access` in a product file.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessDoc {
    /// Who may read the product: `group:NAME`, `user:NAME` or `*` (every authenticated principal).
    #[serde(default)]
    pub read: Vec<String>,
    /// Row filters: members of `groups` (or `users`) see only rows matching `where`.
    #[serde(default)]
    pub row_filters: Vec<RowFilterDoc>,
}

/// A row filter.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RowFilterDoc {
    /// Groups the filter applies to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Principals the filter applies to.
    #[serde(default)]
    pub users: Vec<String>,
    /// Ports the filter applies to (default: every port with the columns it names).
    #[serde(default)]
    pub ports: Option<Vec<String>>,
    /// A SQL boolean expression over the port's columns.
    #[serde(rename = "where")]
    #[schemars(with = "String")]
    pub where_sql: Spanned<String>,
}

/// A named connection (`sources[]` in `mesh.yaml`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceDoc {
    /// Unique source name, referenced by ports.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Source kind: `files`, `sqlite`, `postgres`, `mysql`, `flightsql`.
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
    /// SQL sources: `off` sends only `SELECT <columns> FROM <table>` (every filter, limit,
    /// join and aggregate runs in the gateway): the escape hatch while a pushdown bug is
    /// fixed. Default `on`.
    #[serde(default)]
    pub pushdown: Pushdown,
}

fn default_true() -> bool {
    true
}

/// Whether a source receives more than projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Pushdown {
    /// Filters, limits and whole sub-plans are pushed (with `federation`).
    #[default]
    On,
    /// Only projections are pushed.
    Off,
}

impl<'de> Deserialize<'de> for Pushdown {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Flag(true) => Ok(Self::On),
            Raw::Flag(false) => Ok(Self::Off),
            Raw::Word(w) => match w.as_str() {
                "on" => Ok(Self::On),
                "off" => Ok(Self::Off),
                other => Err(serde::de::Error::custom(format!(
                    "pushdown must be `on` or `off`, not `{other}`"
                ))),
            },
        }
    }
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

impl OwnerDoc {
    /// How to reach the owner in messages: `team <email>`, or the team alone.
    pub fn contact(&self) -> String {
        match &self.email {
            Some(e) => format!("{} <{e}>", self.team),
            None => self.team.clone(),
        }
    }
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
    /// Who may read the product, and row filters. Without it: `policies.default_access`.
    #[serde(default)]
    pub access: Option<AccessDoc>,
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
    /// The contract as an ODCS v3 document (path relative to this file), instead of `columns`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub contract: Option<Spanned<String>>,
    /// Columns that identify a row (served by GetPrimaryKeys).
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// Version of the port's contract; bump it with every breaking change (`meshgate diff`
    /// flags a breaking change without a bump).
    #[serde(default)]
    pub version: Option<u64>,
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
