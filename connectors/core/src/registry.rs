//! The connector registry: one list, built by the gateway and passed as a value.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ConnectorFactory;

/// Factories by source kind. Built once by the gateway (feature-gated list) and passed by
/// value; there is no global registry.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    factories: BTreeMap<&'static str, Arc<dyn ConnectorFactory>>,
}

impl Registry {
    /// Adds a factory; a later one for the same kind replaces the earlier.
    pub fn register(&mut self, factory: Arc<dyn ConnectorFactory>) -> &mut Self {
        self.factories.insert(factory.kind(), factory);
        self
    }

    /// The factory for `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn ConnectorFactory>> {
        self.factories.get(kind)
    }

    /// Registered kinds, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.factories.keys().copied().collect()
    }
}
