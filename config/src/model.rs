//! The validated mesh: what the gateway serves. Built only by [`crate::load_mesh`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::doc::{DefaultAccess, MaskKind, OwnerDoc, ProductStatus};
use crate::error::Origin;
use crate::types::ColumnType;

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The name as written (validated: lowercase identifier).
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Wraps a name that was already checked by [`check_identifier`].
            pub(crate) fn new_unchecked(s: impl Into<String>) -> Self {
                Self(s.into())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A domain name: the SQL catalog.
    DomainName
);
name_type!(
    /// A product name: the SQL schema inside its domain.
    ProductName
);
name_type!(
    /// An output port name: the SQL table inside its product.
    PortName
);
name_type!(
    /// A source name from `mesh.yaml`.
    SourceName
);

/// The reserved catalog for the gateway's own tables.
pub const RESERVED_CATALOG: &str = "mesh";

/// Checks that `s` is usable unquoted in SQL: lowercase ASCII letters, digits and `_`,
/// not starting with a digit, at most 63 characters.
pub fn check_identifier(s: &str) -> Result<(), String> {
    let ok_start = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let ok_rest = s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok_start && ok_rest && s.len() <= 63 {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a valid name: use lowercase letters, digits and `_`, starting with a \
             letter or `_`, at most 63 characters"
        ))
    }
}

/// A validated mesh directory.
#[derive(Debug, Clone)]
pub struct Mesh {
    /// `name` from `mesh.yaml`.
    pub name: String,
    /// `description` from `mesh.yaml`.
    pub description: Option<String>,
    /// The mesh directory.
    pub root: PathBuf,
    /// Sources by name.
    pub sources: BTreeMap<SourceName, Source>,
    /// Domains by name, each with its products.
    pub domains: BTreeMap<DomainName, Domain>,
    /// Authentication settings.
    pub auth: Auth,
    /// Mesh-wide policies.
    pub policies: Policies,
    /// Audit log destination (`None`: no audit log).
    pub audit: Option<AuditTarget>,
    /// State directory (usage records), resolved against the mesh directory.
    pub state_dir: Option<PathBuf>,
    /// `limits`, as written (the gateway fills in the defaults).
    pub limits: Limits,
}

/// Validated `limits`; `None` where the gateway derives the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Most queries executing at once.
    pub max_running_queries: Option<u32>,
    /// Most queries waiting for a slot.
    pub max_queued_queries: Option<u32>,
    /// Longest wait for a slot, in milliseconds.
    pub queue_timeout_ms: Option<u64>,
    /// Most queries one principal runs at once.
    pub principal_max_running_queries: Option<u32>,
    /// Most queries one principal starts per minute.
    pub principal_queries_per_minute: Option<u32>,
    /// Longest a query may run, in seconds.
    pub max_query_time_s: Option<u64>,
    /// Most iterations of one recursive CTE.
    pub max_recursion_depth: Option<u64>,
    /// Most rows of the recursive part of one recursive CTE.
    pub max_recursive_rows: Option<u64>,
    /// Per-group `(group, most running queries per member)`.
    pub groups: Vec<(String, u32)>,
}

/// Where audit records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditTarget {
    /// Standard output.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

/// Validated `auth`.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// Password users.
    pub users: Vec<User>,
    /// Static tokens.
    pub tokens: Vec<StaticToken>,
    /// JWT settings.
    pub jwt: Option<Jwt>,
    /// Whether clients without credentials are accepted as `anonymous`.
    pub anonymous: bool,
    /// Groups allowed to run EXPLAIN.
    pub admin_groups: Vec<String>,
    /// Session token lifetime in seconds.
    pub session_ttl_s: u64,
    /// TLS on the endpoint.
    pub tls: Option<Tls>,
    /// Gateways whose identity assertions are accepted.
    pub trusted_gateways: Vec<TrustedGateway>,
}

/// Validated `auth.trusted_gateways[]`.
#[derive(Clone)]
pub struct TrustedGateway {
    /// Name (`iss` of its assertions).
    pub name: String,
    /// Shared HMAC key (resolved secret).
    pub key: String,
    /// Principals it authenticates as.
    pub principals: Vec<String>,
}

impl std::fmt::Debug for TrustedGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedGateway")
            .field("name", &self.name)
            .field("principals", &self.principals)
            .finish_non_exhaustive()
    }
}

/// A password user.
#[derive(Debug, Clone)]
pub struct User {
    /// Principal name.
    pub name: String,
    /// argon2 PHC string.
    pub password_hash: String,
    /// Groups.
    pub groups: Vec<String>,
}

/// A static bearer token.
#[derive(Debug, Clone)]
pub struct StaticToken {
    /// Principal name.
    pub name: String,
    /// SHA-256 of the token.
    pub sha256: [u8; 32],
    /// Groups.
    pub groups: Vec<String>,
}

/// Validated `auth.jwt`.
#[derive(Clone)]
pub struct Jwt {
    /// Required issuer.
    pub issuer: String,
    /// Required audience.
    pub audience: String,
    /// JWKS document (JSON text), read at load.
    pub jwks_json: Option<String>,
    /// HS256 secret. Never log it.
    pub hs256_secret: Option<String>,
    /// Groups claim.
    pub groups_claim: String,
    /// Principal claim.
    pub principal_claim: String,
    /// Accepted algorithms, upper case (`RS256`, ...).
    pub algorithms: Vec<String>,
    /// Leeway on exp/nbf in seconds.
    pub leeway_s: u64,
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwt")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// Validated `auth.tls`.
#[derive(Debug, Clone)]
pub struct Tls {
    /// Certificate chain (PEM file).
    pub cert_file: PathBuf,
    /// Private key (PEM file).
    pub key_file: PathBuf,
    /// Client CA bundle: mutual TLS.
    pub client_ca_file: Option<PathBuf>,
    /// Whether a client certificate is required (with a CA).
    pub require_client_cert: bool,
    /// Groups by client certificate subject CN.
    pub client_groups: BTreeMap<String, Vec<String>>,
}

/// Validated `policies`.
#[derive(Clone, Default)]
pub struct Policies {
    /// Access to products without `access`.
    pub default_access: DefaultAccess,
    /// Masks by classification label.
    pub classifications: BTreeMap<String, Classification>,
    /// Key of the hash mask. Never log it.
    pub hash_key: Option<String>,
}

impl fmt::Debug for Policies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policies")
            .field("default_access", &self.default_access)
            .field("classifications", &self.classifications)
            .finish_non_exhaustive()
    }
}

/// A classification policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// Mask applied.
    pub mask: MaskKind,
    /// Groups that see clear values.
    pub unmask_groups: Vec<String>,
}

/// Who a grant names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    /// Members of a group.
    Group(String),
    /// One principal.
    User(String),
    /// Every authenticated principal.
    Everyone,
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Group(g) => write!(f, "group:{g}"),
            Self::User(u) => write!(f, "user:{u}"),
            Self::Everyone => f.write_str("*"),
        }
    }
}

/// Validated product `access`.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Who may read.
    pub read: Vec<Grantee>,
    /// Row filters.
    pub row_filters: Vec<RowFilter>,
}

/// A row filter.
#[derive(Debug, Clone)]
pub struct RowFilter {
    /// Groups it applies to.
    pub groups: Vec<String>,
    /// Principals it applies to.
    pub users: Vec<String>,
    /// Ports it applies to; `None`: every port with the columns it names.
    pub ports: Option<Vec<String>>,
    /// SQL boolean expression.
    pub where_sql: String,
    /// Where it is written.
    pub origin: Origin,
}

impl Mesh {
    /// Every port with its domain and product, in name order.
    pub fn ports(&self) -> impl Iterator<Item = (&Domain, &Product, &Port)> {
        self.domains.values().flat_map(|d| {
            d.products
                .values()
                .flat_map(move |p| p.ports.iter().map(move |port| (d, p, port)))
        })
    }

    /// Looks up a port by its three-part name.
    pub fn port(&self, domain: &str, product: &str, port: &str) -> Option<&Port> {
        self.domains
            .get(domain)?
            .products
            .get(product)?
            .ports
            .iter()
            .find(|p| p.name.as_str() == port)
    }
}

/// A named connection.
#[derive(Debug, Clone)]
pub struct Source {
    /// Unique name.
    pub name: SourceName,
    /// Kind, resolved by the connector registry.
    pub kind: String,
    /// Options with every `{env}`/`{file}` secret replaced by its value. Never log these.
    pub options: serde_json::Value,
    /// Directory of `mesh.yaml`: relative paths in options resolve against it.
    pub base_dir: PathBuf,
    /// Where the source is declared.
    pub origin: Origin,
    /// Where its options start.
    pub options_origin: Origin,
    /// Description.
    pub description: Option<String>,
    /// Whether sub-plans may be pushed to this source as whole statements (SQL sources).
    pub federation: bool,
    /// Whether anything besides projections is pushed (`pushdown: off` turns it off).
    pub pushdown: bool,
}

/// A domain: the products published under one catalog.
#[derive(Debug, Clone)]
pub struct Domain {
    /// Catalog name.
    pub name: DomainName,
    /// Products by name.
    pub products: BTreeMap<ProductName, Product>,
}

/// A data product.
#[derive(Debug, Clone)]
pub struct Product {
    /// Owning domain.
    pub domain: DomainName,
    /// Schema name.
    pub name: ProductName,
    /// Description.
    pub description: Option<String>,
    /// Owner.
    pub owner: OwnerDoc,
    /// Tags.
    pub tags: Vec<String>,
    /// Lifecycle state.
    pub status: ProductStatus,
    /// Ports in file order.
    pub ports: Vec<Port>,
    /// Access rules; `None`: `policies.default_access`.
    pub access: Option<Access>,
    /// The product file.
    pub file: PathBuf,
}

/// How a port is bound to its source; each connector says which keys it needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortBinding {
    /// `location` (files).
    pub location: Option<String>,
    /// `format` (files).
    pub format: Option<String>,
    /// `table` (SQL sources).
    pub table: Option<String>,
    /// `query` (SQL sources).
    pub query: Option<String>,
    /// Extra per-port options, opaque to the model.
    pub options: serde_json::Value,
}

/// An output port.
#[derive(Debug, Clone)]
pub struct Port {
    /// Table name.
    pub name: PortName,
    /// Description.
    pub description: Option<String>,
    /// The source it reads.
    pub source: SourceName,
    /// Binding to the source.
    pub binding: PortBinding,
    /// The contract, when declared.
    pub columns: Option<Vec<Column>>,
    /// Primary key columns.
    pub primary_key: Vec<String>,
    /// Contract version (`version`), when declared.
    pub version: Option<u64>,
    /// The ODCS document the contract came from, when `contract:` names one.
    pub contract_file: Option<PathBuf>,
    /// Freshness SLA (from an ODCS document), e.g. `24h`.
    pub freshness: Option<String>,
    /// Foreign keys.
    pub foreign_keys: Vec<ForeignKey>,
    /// Where the port is declared.
    pub origin: Origin,
}

/// A contract column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Type.
    pub data_type: ColumnType,
    /// Non-nullable.
    pub required: bool,
    /// Description.
    pub description: Option<String>,
    /// Classification label.
    pub classification: Option<String>,
}

/// A foreign key to another port.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKey {
    /// Columns of this port.
    pub columns: Vec<String>,
    /// Referenced port.
    pub references: (DomainName, ProductName, PortName),
    /// Referenced columns.
    pub referenced_columns: Vec<String>,
}
