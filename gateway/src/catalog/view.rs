//! What one principal may see of the mesh: the one decision point for visibility.
//!
//! Every listing (Flight SQL metadata commands, the gRPC Catalog service, the `mesh.*`
//! tables, the tables a query may name) reads from a [`CatalogView`]; none asks the policy
//! itself, so a new listing cannot forget the filter.

use std::sync::Arc;

use meshgate_config::doc::MaskKind;
use meshgate_config::{Domain, Mesh, Port, Product};

use crate::catalog::{MeshCatalog, ServedPort};
use crate::error::GatewayError;
use crate::port::{PortRef, ProductRef};
use crate::security::policy::PolicySet;
use crate::security::Principal;

/// The mesh as one principal sees it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CatalogView {
    catalog: Arc<MeshCatalog>,
    policy: Arc<PolicySet>,
    principal: Arc<Principal>,
}

impl CatalogView {
    /// `principal`'s view of `catalog` under `policy`.
    pub fn new(
        catalog: Arc<MeshCatalog>,
        policy: Arc<PolicySet>,
        principal: Arc<Principal>,
    ) -> Self {
        Self {
            catalog,
            policy,
            principal,
        }
    }

    /// Who is looking.
    pub fn principal(&self) -> &Arc<Principal> {
        &self.principal
    }

    /// The whole catalog, for the status of ports this view shows.
    pub fn catalog(&self) -> &Arc<MeshCatalog> {
        &self.catalog
    }

    /// The policies in force.
    pub fn policy(&self) -> &Arc<PolicySet> {
        &self.policy
    }

    fn mesh(&self) -> &Mesh {
        &self.catalog.mesh
    }

    fn readable(&self, product: &Product) -> bool {
        self.policy.can_read(&self.principal, product)
    }

    /// Whether the principal may read product `domain.product` (false when there is none).
    pub fn can_read(&self, domain: &str, product: &str) -> bool {
        self.mesh()
            .domains
            .get(domain)
            .and_then(|d| d.products.get(product))
            .is_some_and(|p| self.readable(p))
    }

    /// Readable products, by domain then name.
    pub fn products(&self) -> impl Iterator<Item = &Product> + '_ {
        self.mesh()
            .domains
            .values()
            .flat_map(|d| d.products.values())
            .filter(|p| self.readable(p))
    }

    /// Domains with at least one readable product, each with those products.
    pub fn domains(&self) -> Vec<(&Domain, Vec<&Product>)> {
        self.mesh()
            .domains
            .values()
            .filter_map(|d| {
                let products: Vec<&Product> =
                    d.products.values().filter(|p| self.readable(p)).collect();
                (!products.is_empty()).then_some((d, products))
            })
            .collect()
    }

    /// Readable product names of `domain`.
    pub fn product_names(&self, domain: &str) -> Vec<String> {
        self.mesh()
            .domains
            .get(domain)
            .map(|d| {
                d.products
                    .values()
                    .filter(|p| self.readable(p))
                    .map(|p| p.name.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Declared ports of readable products (served or not).
    pub fn ports(&self) -> impl Iterator<Item = (&Domain, &Product, &Port)> + '_ {
        self.mesh().ports().filter(|(_, p, _)| self.readable(p))
    }

    /// Ports of readable products that serve now.
    pub fn served(&self) -> Vec<(PortRef, ServedPort)> {
        self.catalog
            .served()
            .into_iter()
            .filter(|(k, _)| self.can_read(&k.domain, &k.product))
            .collect()
    }

    /// A readable port that serves now.
    pub fn served_port(&self, port: &PortRef) -> Option<ServedPort> {
        if !self.can_read(&port.domain, &port.product) {
            return None;
        }
        self.catalog.served_port(port)
    }

    /// Names of the served ports of readable product `domain.product`.
    pub fn port_names(&self, domain: &str, product: &str) -> Vec<String> {
        if !self.can_read(domain, product) {
            return vec![];
        }
        self.catalog
            .served()
            .into_keys()
            .filter(|k| k.domain == domain && k.product == product)
            .map(|k| k.port)
            .collect()
    }

    /// A product the principal may read: `NotFound` when there is no such product,
    /// `PermissionDenied` (naming whom to ask) when it may not read it.
    pub fn product(&self, product: &ProductRef) -> Result<&Product, GatewayError> {
        let found = self
            .mesh()
            .domains
            .get(product.domain.as_str())
            .and_then(|d| d.products.get(product.product.as_str()));
        match found {
            None => Err(GatewayError::NotFound(format!(
                "product {product} does not exist"
            ))),
            Some(p) if self.readable(p) => Ok(p),
            Some(_) => Err(self.policy.denied(&product.domain, &product.product)),
        }
    }

    /// Refuses a declared port of a product the principal may not read. Ports that are not
    /// declared pass (the caller reports them as unknown, without revealing anything).
    pub fn check_port(&self, port: &PortRef) -> Result<(), GatewayError> {
        let declared = self
            .mesh()
            .port(&port.domain, &port.product, &port.port)
            .is_some();
        if declared && !self.can_read(&port.domain, &port.product) {
            return Err(self.policy.denied(&port.domain, &port.product));
        }
        Ok(())
    }

    /// Every readable declared port, dotted: the candidates of a "did you mean" hint.
    pub fn readable_port_names(&self) -> Vec<String> {
        self.ports()
            .map(|(_, p, t)| PortRef::of(p, t).to_string())
            .collect()
    }

    /// The masks the principal reads `port` through: column name and mask.
    pub fn masks(&self, port: &Port) -> Vec<(String, MaskKind)> {
        self.policy.masks(&self.principal, port)
    }

    /// Whether the principal sees usage records of `consumer`: admins all, others their own.
    pub fn sees_usage(&self, consumer: &str) -> bool {
        self.principal.admin || self.principal.name == consumer
    }
}
