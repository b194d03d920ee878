//! The `mesh` catalog: the gateway's own tables, filtered to what the caller may read.
//! `mesh.catalog.ports` lists every port with its source, contract version, freshness SLA,
//! status (`ok`, `degraded`, `unavailable`) with the reason, and the last drift check.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{CatalogProvider, MemTable, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result};

use crate::catalog::MeshCatalog;
use crate::security::policy::PolicySet;
use crate::security::Principal;

/// The reserved catalog and its schema.
pub const SYSTEM_CATALOG: &str = "mesh";
/// The schema of the discovery tables.
pub const SYSTEM_SCHEMA: &str = "catalog";
/// The tables served in `mesh.catalog`.
pub const SYSTEM_TABLES: &[&str] = &["ports"];

fn ports_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("domain", DataType::Utf8, false),
        Field::new("product", DataType::Utf8, false),
        Field::new("port", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("source_kind", DataType::Utf8, false),
        Field::new("contract_version", DataType::Int64, true),
        Field::new("freshness", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("problems", DataType::Utf8, true),
        Field::new(
            "last_drift_check",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]))
}

/// `mesh.catalog.ports` for `principal`.
pub fn ports_batch(
    catalog: &MeshCatalog,
    policy: &PolicySet,
    principal: &Principal,
) -> std::result::Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let mut s: Vec<StringBuilder> = (0..5).map(|_| StringBuilder::new()).collect();
    let mut version = Int64Builder::new();
    let mut freshness = StringBuilder::new();
    let mut status = StringBuilder::new();
    let mut problems = StringBuilder::new();
    let mut checked = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let unavailable = catalog.unavailable();
    for (d, p, port) in catalog.mesh.ports() {
        if !policy.can_read(principal, p) {
            continue;
        }
        let key = (
            d.name.to_string(),
            p.name.to_string(),
            port.name.to_string(),
        );
        let kind = catalog
            .mesh
            .sources
            .get(port.source.as_str())
            .map(|x| x.kind.clone())
            .unwrap_or_default();
        for (b, v) in s.iter_mut().zip([
            d.name.as_str(),
            p.name.as_str(),
            port.name.as_str(),
            port.source.as_str(),
            kind.as_str(),
        ]) {
            b.append_value(v);
        }
        version.append_option(port.version.map(|v| v as i64));
        freshness.append_option(port.freshness.as_deref());
        let (st, why) = if let Some(pr) = catalog.degraded(&key) {
            ("degraded", Some(pr.join("; ")))
        } else if let Some(e) = unavailable.get(&key) {
            ("unavailable", Some(e.to_string()))
        } else if catalog.served_port(&key).is_some() {
            ("ok", None)
        } else {
            ("unavailable", Some("not opened yet".to_string()))
        };
        status.append_value(st);
        problems.append_option(why);
        checked.append_option(catalog.drift_checked(&key).and_then(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_micros() as i64)
        }));
    }
    let mut cols: Vec<ArrayRef> = s
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    cols.push(Arc::new(version.finish()));
    cols.push(Arc::new(freshness.finish()));
    cols.push(Arc::new(status.finish()));
    cols.push(Arc::new(problems.finish()));
    cols.push(Arc::new(checked.finish()));
    RecordBatch::try_new(ports_schema(), cols)
}

/// The `mesh` catalog of one request.
#[derive(Debug)]
pub struct SystemCatalog {
    schema: Arc<SystemSchema>,
}

impl SystemCatalog {
    /// The system catalog as `principal` sees it.
    pub fn new(
        catalog: Arc<MeshCatalog>,
        policy: Arc<PolicySet>,
        principal: Arc<Principal>,
    ) -> Self {
        Self {
            schema: Arc::new(SystemSchema {
                catalog,
                policy,
                principal,
            }),
        }
    }
}

impl CatalogProvider for SystemCatalog {
    fn schema_names(&self) -> Vec<String> {
        vec![SYSTEM_SCHEMA.to_string()]
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        (name == SYSTEM_SCHEMA).then(|| Arc::clone(&self.schema) as Arc<dyn SchemaProvider>)
    }
}

#[derive(Debug)]
struct SystemSchema {
    catalog: Arc<MeshCatalog>,
    policy: Arc<PolicySet>,
    principal: Arc<Principal>,
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        SYSTEM_TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if name != "ports" {
            return Ok(None);
        }
        let batch = ports_batch(&self.catalog, &self.policy, &self.principal)
            .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))?;
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        Ok(Some(Arc::new(table)))
    }

    fn table_exist(&self, name: &str) -> bool {
        SYSTEM_TABLES.contains(&name)
    }
}
