//! A port scanned on its own: projection, filters and limit in one `SELECT`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::TableReference;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::unparser::dialect::Dialect;
use meshgate_connector::PortRequest;

use crate::exec::SqlScanExec;
use crate::semantics::{Refusal, Semantics};
use crate::source::SqlSource;
use crate::sqlgen::{scan_statement, ScanRelation, Statement};

/// Checks a SQL port binding: exactly one of `table` and `query`, no per-port options.
pub fn check_port(port: &PortRequest) -> Result<(), String> {
    let binding: Result<(), String> = match (&port.table, &port.query) {
        (Some(t), None) if t.trim().is_empty() => Err("`table` is empty".into()),
        (Some(_), None) => Ok(()),
        (None, Some(q)) if q.trim().is_empty() => Err("`query` is empty".into()),
        (None, Some(_)) => Ok(()),
        _ => Err("SQL ports need exactly one of `table` or `query`".into()),
    };
    binding?;
    if port.location.is_some() || port.format.is_some() {
        return Err(
            "`location` and `format` are for files ports; SQL ports use `table` or `query`".into(),
        );
    }
    match &port.options {
        serde_json::Value::Null => Ok(()),
        serde_json::Value::Object(m) if m.is_empty() => Ok(()),
        _ => Err("SQL ports take no `options`".into()),
    }
}

/// Quotes an identifier as `dialect` does (double quotes when it says nothing).
pub fn quote_ident(dialect: &dyn Dialect, ident: &str) -> String {
    let q = dialect.identifier_quote_style(ident).unwrap_or('"');
    let escaped = ident.replace(q, &format!("{q}{q}"));
    format!("{q}{escaped}{q}")
}

/// Quotes `[catalog.][schema.]table` part by part.
pub fn quote_table(dialect: &dyn Dialect, table: &TableReference) -> String {
    let mut parts = Vec::new();
    if let Some(c) = table.catalog() {
        parts.push(quote_ident(dialect, c));
    }
    if let Some(s) = table.schema() {
        parts.push(quote_ident(dialect, s));
    }
    parts.push(quote_ident(dialect, table.table()));
    parts.join(".")
}

/// A table or query of a SQL source, scanned with projection, filters and limit pushed.
#[derive(Debug)]
pub struct SqlScanTable {
    source: Arc<SqlSource>,
    relation: ScanRelation,
    schema: SchemaRef,
}

impl SqlScanTable {
    /// A table reading `relation` with `schema`.
    pub fn new(source: Arc<SqlSource>, relation: ScanRelation, schema: SchemaRef) -> Self {
        Self {
            source,
            relation,
            schema,
        }
    }

    /// The statement reading `fields` with `filters` and `limit`, written by the same rules
    /// as federated statements.
    fn statement(
        &self,
        fields: &[datafusion::arrow::datatypes::FieldRef],
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Statement, Refusal> {
        let caps = self.source.backend().capabilities();
        scan_statement(
            &self.relation,
            &self.schema,
            fields,
            filters,
            limit,
            Semantics::new(&caps),
            &self.source.source_dialect(),
        )
    }

    /// Whether `filter` is sent to the source (with DataFusion's meaning).
    fn pushable(&self, filter: &Expr) -> bool {
        self.source.pushdown()
            && self
                .statement(&[], std::slice::from_ref(filter), None)
                .is_ok()
    }
}

#[async_trait]
impl TableProvider for SqlScanTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.pushable(f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => Arc::clone(&self.schema),
        };
        let fields: Vec<_> = schema.fields().iter().cloned().collect();
        // DataFusion passes a limit only when every filter was pushed exactly.
        let (filters, limit): (Vec<Expr>, Option<usize>) = if self.source.pushdown() {
            let pushed = filters
                .iter()
                .filter(|f| self.pushable(f))
                .cloned()
                .collect();
            (pushed, limit)
        } else {
            (vec![], None)
        };
        let statement = self
            .statement(&fields, &filters, limit)
            .map_err(|r| DataFusionError::Plan(format!("cannot scan the port: {r}")))?;
        Ok(Arc::new(SqlScanExec::new(
            Arc::clone(&self.source),
            statement,
            schema,
        )))
    }
}
