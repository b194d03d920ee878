//! The SQLite table provider and its scan, run on blocking threads.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::ExecutionPlan;
use meshgate_connector::{ConnectorError, ErrorClass};
use rusqlite::{Connection, OpenFlags};

use crate::types::{arrow_type_for_decl, arrow_type_for_value, ColumnBuilder};

/// Quotes an identifier for SQLite.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// How to open the database.
#[derive(Debug, Clone)]
pub struct SqliteSource {
    /// Source name, for messages.
    pub source_name: String,
    /// Database file.
    pub path: PathBuf,
    /// Busy timeout.
    pub busy_timeout_ms: u64,
}

impl SqliteSource {
    fn open(&self) -> Result<Connection, ConnectorError> {
        if !self.path.is_file() {
            return Err(ConnectorError::new(
                ErrorClass::NotFound,
                format!(
                    "sqlite source `{}`: database file `{}` does not exist",
                    self.source_name,
                    self.path.display()
                ),
            ));
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| {
            ConnectorError::new(
                ErrorClass::Unavailable,
                format!(
                    "sqlite source `{}`: cannot open `{}`: {e}",
                    self.source_name,
                    self.path.display()
                ),
            )
        })?;
        conn.busy_timeout(std::time::Duration::from_millis(self.busy_timeout_ms))
            .map_err(|e| ConnectorError::new(ErrorClass::Unavailable, e.to_string()))?;
        Ok(conn)
    }
}

/// A SQLite table or query as a DataFusion table.
#[derive(Debug)]
pub struct SqliteTable {
    source: SqliteSource,
    sql: String,
    schema: SchemaRef,
}

impl SqliteTable {
    /// Opens the database once to learn the port's schema.
    pub async fn open(
        source: SqliteSource,
        sql: String,
        display_name: String,
    ) -> Result<Self, ConnectorError> {
        let (src, q) = (source.clone(), sql.clone());
        let schema = tokio::task::spawn_blocking(move || infer_schema(&src, &q, &display_name))
            .await
            .map_err(|e| ConnectorError::new(ErrorClass::Internal, e.to_string()))??;
        Ok(Self {
            source,
            sql,
            schema,
        })
    }
}

fn infer_schema(
    source: &SqliteSource,
    sql: &str,
    display_name: &str,
) -> Result<SchemaRef, ConnectorError> {
    let conn = source.open()?;
    let fail = |e: rusqlite::Error| {
        let class = if e.to_string().contains("no such table") {
            ErrorClass::NotFound
        } else {
            ErrorClass::InvalidConfig
        };
        ConnectorError::new(
            class,
            format!(
                "port {display_name} (sqlite source `{}`): {e}",
                source.source_name
            ),
        )
    };
    let mut stmt = conn.prepare(sql).map_err(fail)?;
    if !stmt.readonly() {
        return Err(ConnectorError::new(
            ErrorClass::InvalidConfig,
            format!("port {display_name}: the query must be read-only"),
        ));
    }
    let decls: Vec<(String, Option<DataType>)> = stmt
        .columns()
        .into_iter()
        .map(|c| (c.name().to_string(), c.decl_type().map(arrow_type_for_decl)))
        .collect();
    let mut fields = Vec::with_capacity(decls.len());
    if decls.iter().any(|(_, t)| t.is_none()) {
        let mut rows = stmt.query([]).map_err(fail)?;
        let first = rows.next().map_err(fail)?;
        for (i, (name, t)) in decls.iter().enumerate() {
            let t = match (t, first) {
                (Some(t), _) => t.clone(),
                (None, Some(row)) => arrow_type_for_value(row.get_ref(i).map_err(fail)?),
                (None, None) => DataType::Utf8,
            };
            fields.push(Field::new(name, t, true));
        }
    } else {
        fields.extend(
            decls
                .into_iter()
                .map(|(n, t)| Field::new(n, t.unwrap_or(DataType::Utf8), true)),
        );
    }
    Ok(Arc::new(Schema::new(fields)))
}

#[async_trait]
impl TableProvider for SqliteTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => Arc::clone(&self.schema),
        };
        let cols = if schema.fields().is_empty() {
            "1".to_string()
        } else {
            schema
                .fields()
                .iter()
                .map(|f| quote_ident(f.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut sql = format!("SELECT {cols} FROM ({}) AS t", self.sql);
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        let part = SqliteScan {
            source: self.source.clone(),
            sql,
            schema: Arc::clone(&schema),
        };
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            vec![Arc::new(part)],
            None,
            vec![],
            false,
            None,
        )?))
    }
}

/// One scan: a statement run on a blocking thread, batches sent through a bounded channel.
#[derive(Debug)]
struct SqliteScan {
    source: SqliteSource,
    sql: String,
    schema: SchemaRef,
}

impl PartitionStream for SqliteScan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batch_size = ctx.session_config().batch_size();
        let mut builder = RecordBatchReceiverStreamBuilder::new(Arc::clone(&self.schema), 2);
        let tx = builder.tx();
        let (source, sql, schema) = (
            self.source.clone(),
            self.sql.clone(),
            Arc::clone(&self.schema),
        );
        builder.spawn_blocking(move || {
            let conn = source.open().map_err(ConnectorError::into_datafusion)?;
            let ext = |e: rusqlite::Error| {
                ConnectorError::new(
                    ErrorClass::Unavailable,
                    format!("sqlite source `{}`: {e}", source.source_name),
                )
                .into_datafusion()
            };
            let mut stmt = conn.prepare(&sql).map_err(ext)?;
            let mut rows = stmt.query([]).map_err(ext)?;
            let mut builders: Vec<ColumnBuilder> = schema
                .fields()
                .iter()
                .map(|f| ColumnBuilder::new(f.data_type(), batch_size))
                .collect();
            let mut n = 0usize;
            let flush = |builders: &mut Vec<ColumnBuilder>, n: usize| -> Result<RecordBatch> {
                let cols = builders.iter_mut().map(ColumnBuilder::finish).collect();
                let opts = RecordBatchOptions::new().with_row_count(Some(n));
                Ok(RecordBatch::try_new_with_options(
                    Arc::clone(&schema),
                    cols,
                    &opts,
                )?)
            };
            while let Some(row) = rows.next().map_err(ext)? {
                for (i, b) in builders.iter_mut().enumerate() {
                    let v = row.get_ref(i).map_err(ext)?;
                    b.append(v).map_err(|found| {
                        DataFusionError::External(Box::new(ConnectorError::new(
                            ErrorClass::Data,
                            format!(
                                "sqlite source `{}`: column `{}` is declared {} but holds {found}",
                                source.source_name,
                                schema.field(i).name(),
                                schema.field(i).data_type()
                            ),
                        )))
                    })?;
                }
                n += 1;
                if n == batch_size {
                    let batch = flush(&mut builders, n)?;
                    n = 0;
                    if tx.blocking_send(Ok(batch)).is_err() {
                        return Ok(()); // the consumer went away: stop reading
                    }
                }
            }
            if n > 0 {
                let batch = flush(&mut builders, n)?;
                let _ = tx.blocking_send(Ok(batch));
            }
            Ok(())
        });
        builder.build()
    }
}
