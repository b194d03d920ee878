//! An in-memory connector for unit tests of code that depends on the connector traits.
//!
//! Options: `{ "tables": ["name", ...] }`: the names of tables added with
//! [`MemoryFactory::with_table`]; ports bind with `table: name`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::MemTable;

use crate::{Connector, ConnectorError, ConnectorFactory, ErrorClass, PortRequest, SourceContext};

/// Serves tables given in code. Kind `memory`.
#[derive(Debug, Default, Clone)]
pub struct MemoryFactory {
    tables: BTreeMap<String, Vec<RecordBatch>>,
}

impl MemoryFactory {
    /// Adds a table (at least one batch, all with the same schema).
    pub fn with_table(mut self, name: &str, batches: Vec<RecordBatch>) -> Self {
        self.tables.insert(name.to_string(), batches);
        self
    }
}

#[async_trait]
impl ConnectorFactory for MemoryFactory {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn check(
        &self,
        _ctx: &SourceContext,
        _options: &serde_json::Value,
        ports: &[PortRequest],
    ) -> Vec<(Option<usize>, String)> {
        ports
            .iter()
            .enumerate()
            .filter(|(_, p)| p.table.is_none())
            .map(|(i, _)| (Some(i), "memory ports need `table`".to_string()))
            .collect()
    }

    async fn create(
        &self,
        _ctx: SourceContext,
        _options: serde_json::Value,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        Ok(Arc::new(MemoryConnector {
            tables: self.tables.clone(),
        }))
    }
}

#[derive(Debug)]
struct MemoryConnector {
    tables: BTreeMap<String, Vec<RecordBatch>>,
}

#[async_trait]
impl Connector for MemoryConnector {
    /// Tables given in code carry the nullability their batches declare.
    fn schema_traits(&self, _port: &PortRequest) -> crate::SchemaTraits {
        crate::SchemaTraits {
            declares_nullability: true,
            inferred_types: false,
        }
    }

    async fn open_port(
        &self,
        _session: &dyn Session,
        port: &PortRequest,
    ) -> Result<crate::OpenedPort, ConnectorError> {
        let name = port.table.as_deref().unwrap_or_default();
        let batches = self.tables.get(name).ok_or_else(|| {
            ConnectorError::new(
                ErrorClass::NotFound,
                format!("memory table `{name}` does not exist"),
            )
        })?;
        let schema = batches.first().map(RecordBatch::schema).ok_or_else(|| {
            ConnectorError::new(
                ErrorClass::InvalidConfig,
                format!("memory table `{name}` has no batch"),
            )
        })?;
        let table = MemTable::try_new(schema, vec![batches.clone()])
            .map_err(|e| ConnectorError::new(ErrorClass::Internal, e.to_string()))?;
        Ok((Arc::new(table) as Arc<dyn TableProvider>).into())
    }
}
