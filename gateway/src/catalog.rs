//! The served catalog: domains as SQL catalogs, products as schemas, ports as tables.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, SchemaProvider, Session, TableProvider,
};
use datafusion::error::{DataFusionError, Result};
use meshgate_config::{Mesh, Port, Product};
use meshgate_connector::{Connector, PortRequest, Registry, SourceContext};

use crate::contract::PortTable;
use crate::error::GatewayError;

/// A port that could be opened: its table and where it comes from.
#[derive(Debug, Clone)]
pub struct ServedPort {
    /// `(domain, product, port)`.
    pub names: (String, String, String),
    /// The port table (contract applied).
    pub table: Arc<PortTable>,
}

/// Every port of a mesh, opened, plus the problems of those that could not be opened.
#[derive(Debug)]
pub struct MeshCatalog {
    /// The mesh it was built from.
    pub mesh: Arc<Mesh>,
    /// Ports that serve, by `(domain, product, port)`.
    pub ports: BTreeMap<(String, String, String), ServedPort>,
    /// Ports that could not be opened, with the reason (served as errors when queried).
    pub failed: BTreeMap<(String, String, String), GatewayError>,
    list: Arc<MeshCatalogList>,
}

/// Turns a mesh port into a connector request.
pub fn port_request(product: &Product, port: &Port) -> PortRequest {
    PortRequest {
        display_name: format!("{}.{}.{}", product.domain, product.name, port.name),
        location: port.binding.location.clone(),
        format: port.binding.format.clone(),
        table: port.binding.table.clone(),
        query: port.binding.query.clone(),
        options: port.binding.options.clone(),
    }
}

impl MeshCatalog {
    /// Creates a connector per source and opens every port. A source or port that fails is
    /// logged and recorded in `failed`; the rest serve.
    pub async fn build(
        mesh: Arc<Mesh>,
        registry: &Registry,
        session: &dyn Session,
    ) -> Result<Self, GatewayError> {
        let mut connectors: BTreeMap<String, Result<Arc<dyn Connector>, GatewayError>> =
            BTreeMap::new();
        for (name, source) in &mesh.sources {
            let Some(factory) = registry.get(&source.kind) else {
                return Err(GatewayError::BadRequest(format!(
                    "source `{name}` has kind `{}`, which this build does not support (supported: {})",
                    source.kind,
                    registry.kinds().join(", ")
                )));
            };
            let ctx = SourceContext {
                name: name.to_string(),
                base_dir: source.base_dir.clone(),
            };
            let c = factory
                .create(ctx, source.options.clone())
                .await
                .map_err(GatewayError::from);
            connectors.insert(name.to_string(), c);
        }
        let mut ports = BTreeMap::new();
        let mut failed = BTreeMap::new();
        for (domain, product, port) in mesh.ports() {
            let key = (
                domain.name.to_string(),
                product.name.to_string(),
                port.name.to_string(),
            );
            let opened = match connectors.get(port.source.as_str()) {
                Some(Ok(c)) => match c.open_port(session, &port_request(product, port)).await {
                    Ok(t) => PortTable::new((&key.0, &key.1, &key.2), port, t),
                    Err(e) => Err(e.into()),
                },
                Some(Err(e)) => Err(GatewayError::Unavailable(e.to_string())),
                None => Err(GatewayError::internal(format!(
                    "source {} vanished",
                    port.source
                ))),
            };
            match opened {
                Ok(table) => {
                    ports.insert(
                        key.clone(),
                        ServedPort {
                            names: key,
                            table: Arc::new(table),
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(port = %format!("{}.{}.{}", key.0, key.1, key.2), error = %e, "port not served");
                    failed.insert(key, e);
                }
            }
        }
        let list = Arc::new(MeshCatalogList::new(&ports));
        Ok(Self {
            mesh,
            ports,
            failed,
            list,
        })
    }

    /// The catalog list registered in every query session.
    pub fn catalog_list(&self) -> Arc<dyn CatalogProviderList> {
        Arc::clone(&self.list) as Arc<dyn CatalogProviderList>
    }

    /// Names of every declared port (served or not), as `domain.product.port`.
    pub fn all_port_names(&self) -> Vec<String> {
        self.mesh
            .ports()
            .map(|(d, p, t)| format!("{}.{}.{}", d.name, p.name, t.name))
            .collect()
    }
}

type Tables = BTreeMap<String, Arc<dyn TableProvider>>;

/// DataFusion view of the served ports. Immutable once built.
#[derive(Debug)]
pub struct MeshCatalogList {
    catalogs: BTreeMap<String, Arc<DomainCatalog>>,
}

impl MeshCatalogList {
    fn new(ports: &BTreeMap<(String, String, String), ServedPort>) -> Self {
        let mut tree: BTreeMap<String, BTreeMap<String, Tables>> = BTreeMap::new();
        for ((d, p, t), sp) in ports {
            tree.entry(d.clone())
                .or_default()
                .entry(p.clone())
                .or_default()
                .insert(t.clone(), Arc::clone(&sp.table) as Arc<dyn TableProvider>);
        }
        let catalogs = tree
            .into_iter()
            .map(|(d, products)| {
                let schemas = products
                    .into_iter()
                    .map(|(p, tables)| (p, Arc::new(ProductSchema { tables })))
                    .collect();
                (d, Arc::new(DomainCatalog { schemas }))
            })
            .collect();
        Self { catalogs }
    }
}

impl CatalogProviderList for MeshCatalogList {
    fn register_catalog(
        &self,
        _name: String,
        _catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        // The served catalog is read-only; DDL is rejected before planning.
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        self.catalogs.keys().cloned().collect()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        self.catalogs
            .get(name)
            .map(|c| Arc::clone(c) as Arc<dyn CatalogProvider>)
    }
}

/// A domain.
#[derive(Debug)]
struct DomainCatalog {
    schemas: BTreeMap<String, Arc<ProductSchema>>,
}

impl CatalogProvider for DomainCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.schemas.keys().cloned().collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.schemas
            .get(name)
            .map(|s| Arc::clone(s) as Arc<dyn SchemaProvider>)
    }

    fn register_schema(
        &self,
        _name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        Err(DataFusionError::Plan(
            "the mesh catalog is read-only".into(),
        ))
    }
}

/// A product.
#[derive(Debug)]
struct ProductSchema {
    tables: BTreeMap<String, Arc<dyn TableProvider>>,
}

#[async_trait::async_trait]
impl SchemaProvider for ProductSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self.tables.get(name).cloned())
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains_key(name)
    }
}
