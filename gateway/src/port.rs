//! The name of a port: `domain.product.port`, the one way the gateway refers to a port.
//!
//! SQL sees it as `catalog.schema.table` ([`PortRef::table_reference`]); logs, audit
//! records, usage and metrics print it dotted ([`Display`](std::fmt::Display)); the usage
//! store keeps it as that string (it serializes as one).

use std::fmt;

use datafusion::common::TableReference;
use meshgate_config::{Port, Product};

/// A port of the mesh, by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRef {
    /// The domain (SQL catalog).
    pub domain: String,
    /// The data product (SQL schema).
    pub product: String,
    /// The output port (SQL table).
    pub port: String,
}

/// A data product, by name: `domain.product`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProductRef {
    /// The domain (SQL catalog).
    pub domain: String,
    /// The data product (SQL schema).
    pub product: String,
}

impl PortRef {
    /// The port `domain.product.port`.
    pub fn new(
        domain: impl Into<String>,
        product: impl Into<String>,
        port: impl Into<String>,
    ) -> Self {
        Self {
            domain: domain.into(),
            product: product.into(),
            port: port.into(),
        }
    }

    /// The name of `port` of `product` in the mesh model.
    pub fn of(product: &Product, port: &Port) -> Self {
        Self::new(
            product.domain.as_str(),
            product.name.as_str(),
            port.name.as_str(),
        )
    }

    /// Reads `domain.product.port` as written on a command line or stored by the usage
    /// store; `None` unless it has exactly three non-empty parts. (Mesh names cannot hold
    /// dots: the config validator refuses them.)
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.');
        let (Some(d), Some(p), Some(t), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if d.is_empty() || p.is_empty() || t.is_empty() {
            return None;
        }
        Some(Self::new(d, p, t))
    }

    /// A fully qualified reference resolved from what SQL wrote (`None` parts are the
    /// session's defaults, `mesh.catalog`).
    pub fn from_table_reference(r: &TableReference) -> Self {
        let full = r.clone().resolve("mesh", "catalog");
        Self::new(
            full.catalog.as_ref(),
            full.schema.as_ref(),
            full.table.as_ref(),
        )
    }

    /// The SQL name: `catalog.schema.table`, each part quoted as needed.
    pub fn table_reference(&self) -> TableReference {
        TableReference::full(
            self.domain.as_str(),
            self.product.as_str(),
            self.port.as_str(),
        )
    }

    /// The product the port belongs to.
    pub fn product_ref(&self) -> ProductRef {
        ProductRef {
            domain: self.domain.clone(),
            product: self.product.clone(),
        }
    }
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.domain, self.product, self.port)
    }
}

impl fmt::Display for ProductRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.domain, self.product)
    }
}

impl serde::Serialize for PortRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PortRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not domain.product.port")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_prints() {
        let p = PortRef::new("sales", "orders", "daily");
        assert_eq!(p.to_string(), "sales.orders.daily");
        assert_eq!(PortRef::parse("sales.orders.daily"), Some(p.clone()));
        assert_eq!(p.product_ref().to_string(), "sales.orders");
        for bad in ["sales.orders", "a.b.c.d", ".b.c", "a..c", "a.b.", ""] {
            assert_eq!(PortRef::parse(bad), None, "{bad}");
        }
        let json = serde_json::to_string(&p).expect("json");
        assert_eq!(json, "\"sales.orders.daily\"");
        assert_eq!(serde_json::from_str::<PortRef>(&json).expect("parses"), p);
        assert!(serde_json::from_str::<PortRef>("\"x.y\"").is_err());
    }

    #[test]
    fn table_references_round_trip() {
        let p = PortRef::new("Sales", "orders", "daily");
        let r = p.table_reference();
        assert_eq!(PortRef::from_table_reference(&r), p);
        let bare = TableReference::bare("t");
        assert_eq!(
            PortRef::from_table_reference(&bare),
            PortRef::new("mesh", "catalog", "t")
        );
    }
}
