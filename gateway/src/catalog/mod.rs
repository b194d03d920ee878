//! The served catalog: domains as SQL catalogs, products as schemas, ports as tables.

pub mod contract;
pub mod live;
pub mod principal;
pub mod system;
pub mod view;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion_federation::FederatedTableProviderAdaptor;
use meshgate_config::{Mesh, Port, Product};
use meshgate_connector::{Connector, OpenedPort, PortRequest, Registry, SourceContext};

use crate::catalog::contract::PortTable;
use crate::error::GatewayError;
use crate::port::PortRef;

/// A port that could be opened: its table and where it comes from.
#[derive(Debug, Clone)]
pub struct ServedPort {
    /// Its name.
    pub port: PortRef,
    /// The port table (contract applied): schema and metadata.
    pub table: Arc<PortTable>,
    /// What DataFusion plans with: `table`, or a federated adaptor in front of it.
    pub provider: Arc<dyn TableProvider>,
    /// Whether sub-plans over this port may be pushed to its source.
    pub federated: bool,
}

/// A port that could not be opened, and when that was last tried.
#[derive(Debug, Clone)]
struct FailedPort {
    error: GatewayError,
    tried: Instant,
}

/// Ports that failed are tried again on use, at most this often.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Every port of a mesh: opened, or failed with the reason (and tried again when queried,
/// so that a source that was down at start-up serves once it is back).
#[derive(Debug)]
pub struct MeshCatalog {
    /// The mesh it was built from.
    pub mesh: Arc<Mesh>,
    connectors: BTreeMap<String, Result<Arc<dyn Connector>, GatewayError>>,
    ports: RwLock<BTreeMap<PortRef, ServedPort>>,
    failed: Mutex<BTreeMap<PortRef, FailedPort>>,
    /// Serializes re-opening, so that a burst of queries makes one attempt.
    reopening: tokio::sync::Mutex<()>,
    /// Ports whose source no longer matches their contract, with what differs.
    degraded: RwLock<BTreeMap<PortRef, Vec<String>>>,
    /// When each port's source schema was last compared with its contract.
    drift_checked: RwLock<BTreeMap<PortRef, std::time::SystemTime>>,
    session: SessionState,
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
    /// logged and recorded; the rest serve.
    pub async fn build(
        mesh: Arc<Mesh>,
        registry: &Registry,
        session: &SessionState,
    ) -> Result<Self, GatewayError> {
        let mut connectors = BTreeMap::new();
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
                pushdown: source.pushdown,
            };
            let c = factory
                .create(ctx, source.options.clone())
                .await
                .map_err(GatewayError::from);
            connectors.insert(name.to_string(), c);
        }
        let tables = Arc::new(RwLock::new(BTreeMap::new()));
        let list = Arc::new(MeshCatalogList::new(&mesh, Arc::clone(&tables)));
        let catalog = Self {
            mesh: Arc::clone(&mesh),
            connectors,
            ports: RwLock::new(BTreeMap::new()),
            failed: Mutex::new(BTreeMap::new()),
            reopening: tokio::sync::Mutex::new(()),
            degraded: RwLock::new(BTreeMap::new()),
            drift_checked: RwLock::new(BTreeMap::new()),
            session: session.clone(),
            list,
        };
        for (_, product, port) in mesh.ports() {
            let key = PortRef::of(product, port);
            // A failure is logged and recorded; the port is tried again when queried.
            let _ = catalog.open(key, product, port).await;
        }
        Ok(catalog)
    }

    /// Opens one port and records the outcome.
    async fn open(&self, key: PortRef, product: &Product, port: &Port) -> Result<(), GatewayError> {
        let federation_on = self
            .mesh
            .sources
            .get(port.source.as_str())
            .is_some_and(|s| s.federation && s.pushdown);
        let opened = match self.connectors.get(port.source.as_str()) {
            Some(Ok(c)) => match c
                .open_port(&self.session, &port_request(product, port))
                .await
            {
                Ok(opened) => served_port(&key, port, opened, federation_on),
                Err(e) => Err(e.into()),
            },
            Some(Err(e)) => Err(GatewayError::Unavailable(e.to_string())),
            None => Err(GatewayError::internal(format!(
                "source {} vanished",
                port.source
            ))),
        };
        match opened {
            Ok(served) => {
                write(&self.list.tables).insert(key.clone(), Arc::clone(&served.provider));
                write(&self.ports).insert(key.clone(), served);
                lock(&self.failed).remove(&key);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(port = %key, error = %e, "port not served");
                lock(&self.failed).insert(
                    key,
                    FailedPort {
                        error: e.clone(),
                        tried: Instant::now(),
                    },
                );
                Err(e)
            }
        }
    }

    /// Makes sure a declared port is open: a port that failed before is tried again (at most
    /// once per second). `Ok(false)` when no such port is declared.
    pub async fn ensure_port(&self, key: &PortRef) -> Result<bool, GatewayError> {
        if read(&self.ports).contains_key(key) {
            return Ok(true);
        }
        let Some((_, product, port)) = self
            .mesh
            .ports()
            .find(|(_, p, t)| PortRef::of(p, t) == *key)
        else {
            return Ok(false);
        };
        let _one_at_a_time = self.reopening.lock().await;
        if read(&self.ports).contains_key(key) {
            return Ok(true);
        }
        if let Some(f) = lock(&self.failed).get(key) {
            if f.tried.elapsed() < RETRY_INTERVAL {
                return Err(f.error.clone());
            }
        }
        self.open(key.clone(), product, port).await?;
        tracing::info!(port = %key, "port serves again");
        Ok(true)
    }

    /// The ports that serve now.
    pub fn served(&self) -> BTreeMap<PortRef, ServedPort> {
        read(&self.ports).clone()
    }

    /// One port, when it serves.
    pub fn served_port(&self, key: &PortRef) -> Option<ServedPort> {
        read(&self.ports).get(key).cloned()
    }

    /// The ports that do not serve now, with the reason.
    pub fn unavailable(&self) -> BTreeMap<PortRef, GatewayError> {
        lock(&self.failed)
            .iter()
            .map(|(k, f)| (k.clone(), f.error.clone()))
            .collect()
    }

    /// Why a port is degraded (its source no longer matches its contract), if it is.
    pub fn degraded(&self, key: &PortRef) -> Option<Vec<String>> {
        read(&self.degraded).get(key).cloned()
    }

    /// The connection pool use of every source that keeps a pool.
    pub fn pool_stats(&self) -> Vec<(String, meshgate_connector::PoolStats)> {
        self.connectors
            .iter()
            .filter_map(|(name, c)| {
                let stats = c.as_ref().ok()?.pool_stats()?;
                Some((name.clone(), stats))
            })
            .collect()
    }

    /// Query-time reachability of every source that tracks it.
    pub fn source_health(&self) -> Vec<(String, meshgate_connector::SourceHealth)> {
        self.connectors
            .iter()
            .filter_map(|(name, c)| Some((name.clone(), c.as_ref().ok()?.health()?)))
            .collect()
    }

    /// Every degraded port with what differs.
    pub fn degraded_ports(&self) -> BTreeMap<PortRef, Vec<String>> {
        read(&self.degraded).clone()
    }

    /// When a port's schema was last checked against its contract.
    pub fn drift_checked(&self, key: &PortRef) -> Option<std::time::SystemTime> {
        read(&self.drift_checked).get(key).copied()
    }

    /// Compares every port's live source schema with its contract. An incompatible source
    /// degrades the port (its queries fail FAILED_PRECONDITION); a compatible change (extra
    /// columns, wider types) stays behind the contract and the port is re-opened with the new
    /// schema; a degraded port whose source is fixed serves again. Unreachable sources are
    /// left to the retry-on-use path.
    pub async fn check_drift(&self) {
        for (_, product, port) in self.mesh.ports() {
            let key = PortRef::of(product, port);
            let name = key.to_string();
            let Some(Ok(connector)) = self.connectors.get(port.source.as_str()) else {
                continue;
            };
            let request = port_request(product, port);
            let traits = connector.schema_traits(&request);
            // The first check of a port that just opened compares the schema it opened with,
            // instead of asking the source a second time during start-up.
            let just_opened = read(&self.drift_checked).get(&key).is_none();
            let cached = if just_opened {
                read(&self.ports).get(&key).map(|s| s.table.source_schema())
            } else {
                None
            };
            let opened = match cached {
                Some(schema) => Ok(schema),
                None => connector
                    .open_port(&self.session, &request)
                    .await
                    .map(|o| o.provider.schema()),
            };
            let problems = match opened {
                Ok(fresh) => {
                    let problems = crate::catalog::live::contract_drift(port, traits, &fresh);
                    if problems.is_empty() {
                        let stale = read(&self.ports)
                            .get(&key)
                            .is_none_or(|s| s.table.source_schema() != fresh);
                        if stale {
                            let _one_at_a_time = self.reopening.lock().await;
                            let _ = self.open(key.clone(), product, port).await;
                        }
                    }
                    problems
                }
                // A missing table or file is not drift: the port answers UNAVAILABLE on use.
                Err(e) if e.class == meshgate_connector::ErrorClass::NotFound => {
                    write(&self.degraded).remove(&key);
                    continue;
                }
                Err(_) => continue,
            };
            write(&self.drift_checked).insert(key.clone(), std::time::SystemTime::now());
            let was = write(&self.degraded).remove(&key);
            if problems.is_empty() {
                if was.is_some() {
                    tracing::info!(port = %name, "port recovered: its source matches the contract again");
                }
            } else {
                if was.as_ref() != Some(&problems) {
                    tracing::warn!(port = %name, owner = %product.owner.team, problems = %problems.join("; "), "port degraded: its source no longer matches the contract");
                }
                write(&self.degraded).insert(key, problems);
            }
        }
    }

    /// The catalog list registered in every query session.
    pub fn catalog_list(&self) -> Arc<dyn CatalogProviderList> {
        Arc::clone(&self.list) as Arc<dyn CatalogProviderList>
    }

    /// Every declared port (served or not).
    pub fn all_ports(&self) -> Vec<PortRef> {
        self.mesh
            .ports()
            .map(|(_, p, t)| PortRef::of(p, t))
            .collect()
    }
}

/// Puts the contract in front of an opened port and decides whether it is federated: only
/// when the source allows it and the contract is a plain view of the source's columns (same
/// names and types; hiding and reordering is fine), so that pushed SQL means what the
/// contract says.
fn served_port(
    key: &PortRef,
    port: &Port,
    opened: OpenedPort,
    federation_on: bool,
) -> Result<ServedPort, GatewayError> {
    let table = Arc::new(PortTable::new(
        key,
        port,
        port.source.as_str(),
        opened.provider,
    )?);
    let (provider, federated): (Arc<dyn TableProvider>, bool) = match (
        &opened.federation,
        federation_on && table.is_view_of_source(),
    ) {
        (Some(f), true) => {
            let source = f.table_source(table.schema());
            let adaptor = FederatedTableProviderAdaptor::new_with_provider(
                source,
                Arc::clone(&table) as Arc<dyn TableProvider>,
            );
            (Arc::new(adaptor), true)
        }
        _ => (Arc::clone(&table) as Arc<dyn TableProvider>, false),
    };
    Ok(ServedPort {
        port: key.clone(),
        table,
        provider,
        federated,
    })
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

type Tables = Arc<RwLock<BTreeMap<PortRef, Arc<dyn TableProvider>>>>;

/// DataFusion view of the mesh: every declared domain, product and port name; a port's
/// table is there once it has been opened.
#[derive(Debug)]
pub struct MeshCatalogList {
    catalogs: BTreeMap<String, Arc<DomainCatalog>>,
    tables: Tables,
}

impl MeshCatalogList {
    fn new(mesh: &Mesh, tables: Tables) -> Self {
        let mut tree: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for (d, p, t) in mesh.ports() {
            tree.entry(d.name.to_string())
                .or_default()
                .entry(p.name.to_string())
                .or_default()
                .push(t.name.to_string());
        }
        let catalogs = tree
            .into_iter()
            .map(|(d, products)| {
                let schemas = products
                    .into_iter()
                    .map(|(p, names)| {
                        let schema = ProductSchema {
                            domain: d.clone(),
                            product: p.clone(),
                            names,
                            tables: Arc::clone(&tables),
                        };
                        (p, Arc::new(schema))
                    })
                    .collect();
                (d, Arc::new(DomainCatalog { schemas }))
            })
            .collect();
        Self { catalogs, tables }
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
    domain: String,
    product: String,
    names: Vec<String>,
    tables: Tables,
}

impl ProductSchema {
    fn key(&self, name: &str) -> PortRef {
        PortRef::new(self.domain.as_str(), self.product.as_str(), name)
    }
}

#[async_trait::async_trait]
impl SchemaProvider for ProductSchema {
    fn table_names(&self) -> Vec<String> {
        let tables = read(&self.tables);
        self.names
            .iter()
            .filter(|n| tables.contains_key(&self.key(n)))
            .cloned()
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(read(&self.tables).get(&self.key(name)).cloned())
    }

    fn table_exist(&self, name: &str) -> bool {
        read(&self.tables).contains_key(&self.key(name))
    }
}
