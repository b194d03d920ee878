//! The validated mesh: what the gateway serves. Built only by [`crate::load_mesh`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::doc::{OwnerDoc, ProductStatus};
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
