//! A port scanned on its own: projection, filters and limit in one `SELECT`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, TableReference};
use datafusion::datasource::TableType;
use datafusion::error::Result;

use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::unparser::dialect::Dialect;
use datafusion::sql::unparser::Unparser;
use meshgate_connector::PortRequest;

use crate::exec::SqlScanExec;
use crate::source::SqlSource;

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
    /// What follows `FROM`: a quoted table or `(query) AS alias`.
    from: String,
    schema: SchemaRef,
}

impl SqlScanTable {
    /// A table reading `from` (already quoted for the dialect) with `schema`.
    pub fn new(source: Arc<SqlSource>, from: String, schema: SchemaRef) -> Self {
        Self {
            source,
            from,
            schema,
        }
    }

    /// The filter as SQL of the source's dialect, when it can be pushed safely.
    fn filter_sql(&self, filter: &Expr) -> Option<String> {
        if !pushable(filter) {
            return None;
        }
        let unqualified = filter
            .clone()
            .transform(|e| {
                Ok(match e {
                    Expr::Column(c) => {
                        Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
                    }
                    other => Transformed::no(other),
                })
            })
            .ok()?
            .data;
        let dialect = self.source.backend().dialect();
        let sql = Unparser::new(dialect.as_ref())
            .expr_to_sql(&unqualified)
            .ok()?;
        Some(sql.to_string())
    }
}

/// Filters made of columns, literals, comparisons, boolean logic, `IN`, `BETWEEN` and
/// `IS [NOT] NULL`: their meaning is the same in every SQL dialect (up to collations, see
/// [`crate::SqlBackend::filters_exact`]). Anything else (functions, casts, arithmetic,
/// `LIKE`) stays in the gateway.
fn pushable(e: &Expr) -> bool {
    let mut ok = true;
    let _ = e.apply(|n| {
        let allowed = match n {
            Expr::Column(_) | Expr::Literal(..) | Expr::Not(_) => true,
            Expr::IsNull(_) | Expr::IsNotNull(_) => true,
            Expr::Between(_) | Expr::InList(_) => true,
            Expr::BinaryExpr(b) => {
                use datafusion::logical_expr::Operator::*;
                matches!(b.op, Eq | NotEq | Lt | LtEq | Gt | GtEq | And | Or)
            }
            _ => false,
        };
        if allowed {
            Ok(TreeNodeRecursion::Continue)
        } else {
            ok = false;
            Ok(TreeNodeRecursion::Stop)
        }
    });
    ok
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
        let pushed = if self.source.backend().filters_exact() {
            TableProviderFilterPushDown::Exact
        } else {
            TableProviderFilterPushDown::Inexact
        };
        Ok(filters
            .iter()
            .map(|f| {
                if self.filter_sql(f).is_some() {
                    pushed.clone()
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
        let dialect = self.source.backend().dialect();
        let cols = if schema.fields().is_empty() {
            "1 AS meshgate_one".to_string()
        } else {
            schema
                .fields()
                .iter()
                .map(|f| quote_ident(dialect.as_ref(), f.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut sql = format!("SELECT {cols} FROM {}", self.from);
        let wheres: Vec<String> = filters.iter().filter_map(|f| self.filter_sql(f)).collect();
        if !wheres.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(
                &wheres
                    .iter()
                    .map(|w| format!("({w})"))
                    .collect::<Vec<_>>()
                    .join(" AND "),
            );
        }
        // DataFusion passes a limit only when every filter was pushed exactly.
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        Ok(Arc::new(SqlScanExec::new(
            Arc::clone(&self.source),
            sql,
            schema,
        )))
    }
}
