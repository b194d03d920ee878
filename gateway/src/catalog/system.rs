//! The `mesh` catalog: the gateway's own tables, filtered to what the caller may read.
//! `mesh.catalog.domains`, `.products` (owner, tags, status, ports, health), `.ports` (source,
//! location summary without secrets, contract version, freshness SLA, status with the reason,
//! last drift check) and `.columns` (type, required, description, classification, and whether
//! it is masked for the caller).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{CatalogProvider, MemTable, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result};

use crate::catalog::view::CatalogView;
use crate::catalog::MeshCatalog;
use crate::port::PortRef;
use crate::usage::Usage;

/// The reserved catalog and its schema.
pub const SYSTEM_CATALOG: &str = "mesh";
/// The schema of the discovery tables.
pub const SYSTEM_SCHEMA: &str = "catalog";
/// The tables served in `mesh.catalog`.
pub const SYSTEM_TABLES: &[&str] = &["domains", "products", "ports", "columns"];
/// The schema of the usage tables.
pub const USAGE_SCHEMA: &str = "usage";
/// The tables served in `mesh.usage`.
pub const USAGE_TABLES: &[&str] = &["queries", "by_product"];

/// Whether `catalog.schema.table` is one of the gateway's own tables.
pub fn is_system_table(t: &PortRef) -> bool {
    let table = t.port.as_str();
    t.domain == SYSTEM_CATALOG
        && ((t.product == SYSTEM_SCHEMA && SYSTEM_TABLES.contains(&table))
            || (t.product == USAGE_SCHEMA && USAGE_TABLES.contains(&table)))
}

fn usage_queries_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("principal", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("ports", DataType::Utf8, false),
        Field::new("source_bytes_read", DataType::Utf8, false),
        Field::new(
            "start",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("duration_ms", DataType::Int64, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("cpu_ms", DataType::Int64, false),
    ]))
}

/// `mesh.usage.queries`.
pub fn usage_queries_batch(
    usage: &Usage,
    view: &CatalogView,
) -> std::result::Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let recs = usage.recent(|r| view.sees_usage(&r.principal));
    let mut s: Vec<StringBuilder> = (0..5).map(|_| StringBuilder::new()).collect();
    let mut start = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut nums: Vec<Int64Builder> = (0..4).map(|_| Int64Builder::new()).collect();
    for r in &recs {
        let sources: Vec<String> = r
            .source_bytes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for (b, v) in s.iter_mut().zip([
            r.id.clone(),
            r.principal.clone(),
            r.status.clone(),
            r.ports
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            sources.join(","),
        ]) {
            b.append_value(v);
        }
        start.append_value(r.start_us);
        for (b, v) in nums
            .iter_mut()
            .zip([r.duration_ms, r.rows, r.bytes, r.cpu_ms])
        {
            b.append_value(v as i64);
        }
    }
    let mut cols: Vec<ArrayRef> = s
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    cols.push(Arc::new(start.finish()));
    for mut b in nums {
        cols.push(Arc::new(b.finish()));
    }
    RecordBatch::try_new(usage_queries_schema(), cols)
}

fn usage_by_product_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("day", DataType::Utf8, false),
        Field::new("principal", DataType::Utf8, false),
        Field::new("product", DataType::Utf8, false),
        Field::new("queries", DataType::Int64, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("cpu_ms", DataType::Int64, false),
    ]))
}

/// `mesh.usage.by_product`.
pub fn usage_by_product_batch(
    usage: &Usage,
    view: &CatalogView,
) -> std::result::Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let rows = usage.by_product(|who, _| view.sees_usage(who));
    let mut s: Vec<StringBuilder> = (0..3).map(|_| StringBuilder::new()).collect();
    let mut nums: Vec<Int64Builder> = (0..4).map(|_| Int64Builder::new()).collect();
    for ((day, who, product), a) in &rows {
        for (b, v) in s.iter_mut().zip([day, who, &product.to_string()]) {
            b.append_value(v);
        }
        for (b, v) in nums.iter_mut().zip([a.queries, a.rows, a.bytes, a.cpu_ms]) {
            b.append_value(v as i64);
        }
    }
    let mut cols: Vec<ArrayRef> = s
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    for mut b in nums {
        cols.push(Arc::new(b.finish()));
    }
    RecordBatch::try_new(usage_by_product_schema(), cols)
}

fn ports_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("domain", DataType::Utf8, false),
        Field::new("product", DataType::Utf8, false),
        Field::new("port", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("source_kind", DataType::Utf8, false),
        Field::new("location", DataType::Utf8, true),
        Field::new("description", DataType::Utf8, true),
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
    view: &CatalogView,
) -> std::result::Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let catalog = view.catalog();
    let mut s: Vec<StringBuilder> = (0..5).map(|_| StringBuilder::new()).collect();
    let mut location = StringBuilder::new();
    let mut description = StringBuilder::new();
    let mut version = Int64Builder::new();
    let mut freshness = StringBuilder::new();
    let mut status = StringBuilder::new();
    let mut problems = StringBuilder::new();
    let mut checked = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    for (d, p, port) in view.ports() {
        let key = PortRef::of(p, port);
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
        location.append_option(location_summary(port));
        description.append_option(port.description.as_deref());
        version.append_option(port.version.map(|v| v as i64));
        freshness.append_option(port.freshness.as_deref());
        let (st, why) = port_status(catalog, &key);
        status.append_value(st);
        problems.append_option((!why.is_empty()).then(|| why.join("; ")));
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
    cols.push(Arc::new(location.finish()));
    cols.push(Arc::new(description.finish()));
    cols.push(Arc::new(version.finish()));
    cols.push(Arc::new(freshness.finish()));
    cols.push(Arc::new(status.finish()));
    cols.push(Arc::new(problems.finish()));
    cols.push(Arc::new(checked.finish()));
    RecordBatch::try_new(ports_schema(), cols)
}

/// Where a port reads, without options or secrets: `table x`, `query`, `path (format)`.
pub fn location_summary(port: &meshgate_config::Port) -> Option<String> {
    let b = &port.binding;
    b.table
        .as_ref()
        .map(|t| format!("table {t}"))
        .or_else(|| b.query.as_ref().map(|_| "query".to_string()))
        .or_else(|| {
            b.location.as_ref().map(|l| match &b.format {
                Some(f) => format!("{l} ({f})"),
                None => l.clone(),
            })
        })
}

/// A port's status (`ok`, `degraded`, `unavailable`) and what is wrong, if anything.
pub fn port_status(catalog: &MeshCatalog, key: &PortRef) -> (&'static str, Vec<String>) {
    if let Some(problems) = catalog.degraded(key) {
        ("degraded", problems)
    } else if catalog.served_port(key).is_some() {
        ("ok", vec![])
    } else {
        let why = catalog
            .unavailable()
            .get(key)
            .map_or_else(|| "not opened yet".to_string(), ToString::to_string);
        ("unavailable", vec![why])
    }
}

/// A product's health: `ok` when every port is, `unavailable` when one is, else `degraded`.
pub fn product_health(catalog: &MeshCatalog, p: &meshgate_config::Product) -> &'static str {
    let statuses: Vec<&str> = p
        .ports
        .iter()
        .map(|t| port_status(catalog, &PortRef::of(p, t)).0)
        .collect();
    if statuses.iter().all(|x| *x == "ok") {
        "ok"
    } else if statuses.contains(&"unavailable") {
        "unavailable"
    } else {
        "degraded"
    }
}

fn domains_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("domain", DataType::Utf8, false),
        Field::new("products", DataType::Int64, false),
        Field::new("owners", DataType::Utf8, false),
    ]))
}

/// `mesh.catalog.domains`: domains with at least one readable product.
pub fn domains_batch(
    view: &CatalogView,
) -> std::result::Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let (mut name, mut products, mut owners) = (
        StringBuilder::new(),
        Int64Builder::new(),
        StringBuilder::new(),
    );
    for (d, readable) in view.domains() {
        let mut teams: Vec<&str> = readable.iter().map(|p| p.owner.team.as_str()).collect();
        teams.sort();
        teams.dedup();
        name.append_value(d.name.as_str());
        products.append_value(readable.len() as i64);
        owners.append_value(teams.join(", "));
    }
    RecordBatch::try_new(
        domains_schema(),
        vec![
            Arc::new(name.finish()),
            Arc::new(products.finish()),
            Arc::new(owners.finish()),
        ],
    )
}

fn products_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("domain", DataType::Utf8, false),
        Field::new("product", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, true),
        Field::new("owner", DataType::Utf8, false),
        Field::new("owner_email", DataType::Utf8, true),
        Field::new("tags", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("health", DataType::Utf8, false),
        Field::new("ports", DataType::Int64, false),
    ]))
}

/// `mesh.catalog.products`: readable products with owner, tags, status, ports and health.
pub fn products_batch(
    view: &CatalogView,
) -> std::result::Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let mut s: Vec<StringBuilder> = (0..8).map(|_| StringBuilder::new()).collect();
    let mut ports = Int64Builder::new();
    for p in view.products() {
        let health = product_health(view.catalog(), p);
        let values = [
            Some(p.domain.to_string()),
            Some(p.name.to_string()),
            p.description.clone(),
            Some(p.owner.team.clone()),
            p.owner.email.clone(),
            Some(p.tags.join(",")),
            Some(p.status.as_str().to_string()),
            Some(health.to_string()),
        ];
        for (b, v) in s.iter_mut().zip(values) {
            b.append_option(v);
        }
        ports.append_value(p.ports.len() as i64);
    }
    let mut cols: Vec<ArrayRef> = s
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    cols.push(Arc::new(ports.finish()));
    RecordBatch::try_new(products_schema(), cols)
}

fn columns_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("domain", DataType::Utf8, false),
        Field::new("product", DataType::Utf8, false),
        Field::new("port", DataType::Utf8, false),
        Field::new("column", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, true),
        Field::new("classification", DataType::Utf8, true),
        Field::new("position", DataType::Int64, false),
        Field::new("required", DataType::Boolean, false),
        Field::new("masked", DataType::Boolean, false),
        Field::new("mask", DataType::Utf8, true),
    ]))
}

/// `mesh.catalog.columns`: contract columns of readable ports, and whether each is masked
/// for the caller.
pub fn columns_batch(
    view: &CatalogView,
) -> std::result::Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    use datafusion::arrow::array::BooleanBuilder;
    let mut s: Vec<StringBuilder> = (0..7).map(|_| StringBuilder::new()).collect();
    let mut position = Int64Builder::new();
    let (mut required, mut masked) = (BooleanBuilder::new(), BooleanBuilder::new());
    let mut mask = StringBuilder::new();
    for (d, p, port) in view.ports() {
        let masks = view.masks(port);
        for (i, c) in port.columns.iter().flatten().enumerate() {
            let m = masks
                .iter()
                .find(|(n, _)| n == &c.name)
                .map(|(_, k)| k.as_str());
            let values = [
                Some(d.name.to_string()),
                Some(p.name.to_string()),
                Some(port.name.to_string()),
                Some(c.name.clone()),
                Some(c.data_type.to_string()),
                c.description.clone(),
                c.classification.clone(),
            ];
            for (b, v) in s.iter_mut().zip(values) {
                b.append_option(v);
            }
            position.append_value(i as i64 + 1);
            required.append_value(c.required);
            masked.append_value(m.is_some());
            mask.append_option(m);
        }
    }
    let mut cols: Vec<ArrayRef> = s
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    cols.push(Arc::new(position.finish()));
    cols.push(Arc::new(required.finish()));
    cols.push(Arc::new(masked.finish()));
    cols.push(Arc::new(mask.finish()));
    RecordBatch::try_new(columns_schema(), cols)
}

/// The `mesh` catalog of one request.
#[derive(Debug)]
pub struct SystemCatalog {
    schema: Arc<SystemSchema>,
    usage: Arc<UsageSchema>,
}

impl SystemCatalog {
    /// The system catalog as `view`'s principal sees it.
    pub fn new(view: CatalogView, usage: Arc<Usage>) -> Self {
        Self {
            usage: Arc::new(UsageSchema {
                usage,
                view: view.clone(),
            }),
            schema: Arc::new(SystemSchema { view }),
        }
    }
}

#[derive(Debug)]
struct UsageSchema {
    usage: Arc<Usage>,
    view: CatalogView,
}

#[async_trait]
impl SchemaProvider for UsageSchema {
    fn table_names(&self) -> Vec<String> {
        USAGE_TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let batch = match name {
            "queries" => usage_queries_batch(&self.usage, &self.view),
            "by_product" => usage_by_product_batch(&self.usage, &self.view),
            _ => return Ok(None),
        }
        .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))?;
        Ok(Some(Arc::new(MemTable::try_new(
            batch.schema(),
            vec![vec![batch]],
        )?)))
    }

    fn table_exist(&self, name: &str) -> bool {
        USAGE_TABLES.contains(&name)
    }
}

impl CatalogProvider for SystemCatalog {
    fn schema_names(&self) -> Vec<String> {
        vec![SYSTEM_SCHEMA.to_string(), USAGE_SCHEMA.to_string()]
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        match name {
            SYSTEM_SCHEMA => Some(Arc::clone(&self.schema) as Arc<dyn SchemaProvider>),
            USAGE_SCHEMA => Some(Arc::clone(&self.usage) as Arc<dyn SchemaProvider>),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct SystemSchema {
    view: CatalogView,
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        SYSTEM_TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let batch = match name {
            "domains" => domains_batch(&self.view),
            "products" => products_batch(&self.view),
            "ports" => ports_batch(&self.view),
            "columns" => columns_batch(&self.view),
            _ => return Ok(None),
        }
        .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))?;
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        Ok(Some(Arc::new(table)))
    }

    fn table_exist(&self, name: &str) -> bool {
        SYSTEM_TABLES.contains(&name)
    }
}

/// The gateway's own tables with their schemas, for GetTables.
pub fn system_tables() -> Vec<(&'static str, &'static str, SchemaRef)> {
    vec![
        (SYSTEM_SCHEMA, "domains", domains_schema()),
        (SYSTEM_SCHEMA, "products", products_schema()),
        (SYSTEM_SCHEMA, "ports", ports_schema()),
        (SYSTEM_SCHEMA, "columns", columns_schema()),
        (USAGE_SCHEMA, "queries", usage_queries_schema()),
        (USAGE_SCHEMA, "by_product", usage_by_product_schema()),
    ]
}
