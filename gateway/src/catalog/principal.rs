//! The DataFusion catalog one request plans against: the principal's [`CatalogView`] with
//! each port read through its policies (masks, row filters) and the `mesh` system catalog.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::common::Result as DFResult;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;

use crate::catalog::system::{SystemCatalog, SYSTEM_CATALOG};
use crate::catalog::view::CatalogView;
use crate::port::PortRef;
use crate::usage::Usage;

/// The catalog as one principal sees it.
#[derive(Debug)]
pub struct PrincipalCatalogList {
    view: CatalogView,
    usage: Arc<Usage>,
    state: SessionState,
}

impl PrincipalCatalogList {
    /// `view` as DataFusion catalogs; `state` plans row filter expressions; `usage` serves
    /// `mesh.usage`.
    pub fn new(view: CatalogView, usage: Arc<Usage>, state: SessionState) -> Self {
        Self { view, usage, state }
    }
}

impl CatalogProviderList for PrincipalCatalogList {
    fn register_catalog(
        &self,
        _name: String,
        _catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .view
            .domains()
            .into_iter()
            .map(|(d, _)| d.name.to_string())
            .collect();
        names.push(SYSTEM_CATALOG.to_string());
        names
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        if name == SYSTEM_CATALOG {
            return Some(Arc::new(SystemCatalog::new(
                self.view.clone(),
                Arc::clone(&self.usage),
            )));
        }
        let products = self.view.product_names(name);
        if products.is_empty() {
            return None;
        }
        Some(Arc::new(PrincipalDomain {
            domain: name.to_string(),
            products,
            view: self.view.clone(),
            state: self.state.clone(),
        }))
    }
}

#[derive(Debug)]
struct PrincipalDomain {
    domain: String,
    products: Vec<String>,
    view: CatalogView,
    state: SessionState,
}

impl CatalogProvider for PrincipalDomain {
    fn schema_names(&self) -> Vec<String> {
        self.products.clone()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.products.iter().any(|p| p == name).then(|| {
            Arc::new(PrincipalProduct {
                domain: self.domain.clone(),
                product: name.to_string(),
                view: self.view.clone(),
                state: self.state.clone(),
            }) as Arc<dyn SchemaProvider>
        })
    }
}

#[derive(Debug)]
struct PrincipalProduct {
    domain: String,
    product: String,
    view: CatalogView,
    state: SessionState,
}

impl PrincipalProduct {
    fn key(&self, name: &str) -> PortRef {
        PortRef::new(self.domain.as_str(), self.product.as_str(), name)
    }
}

#[async_trait]
impl SchemaProvider for PrincipalProduct {
    fn table_names(&self) -> Vec<String> {
        self.view.port_names(&self.domain, &self.product)
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        let key = self.key(name);
        let Some(served) = self.view.served_port(&key) else {
            return Ok(None);
        };
        let table = self
            .view
            .policy()
            .port_view(self.view.principal(), &key, served.provider, &self.state)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Some(table))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.view.served_port(&self.key(name)).is_some()
    }
}
