//! The SQLite backend: schemas and statements, run on blocking threads.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::sql::unparser::dialect::{Dialect, SqliteDialect};
use meshgate_connector::{ConnectorError, ErrorClass};
use meshgate_connector_sql::{quote_table, PoolSettings, SqlBackend, SqlPool};
use rusqlite::{Connection, OpenFlags};

use crate::types::{arrow_type_for_decl, arrow_type_for_value, ColumnBuilder};

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

/// The SQLite backend of the shared SQL-source machinery: one read-only connection per
/// statement, opened and read on a blocking thread.
#[derive(Debug)]
pub struct SqliteBackend {
    source: SqliteSource,
    /// `sqlite:<canonical path>`, worked out once: planning asks for it many times.
    context: String,
}

impl SqliteBackend {
    /// A backend for the file of `source`.
    pub fn new(source: SqliteSource) -> Self {
        // One file is one database: ports of sources on the same file may be joined there.
        let path = std::fs::canonicalize(&source.path).unwrap_or_else(|_| source.path.clone());
        Self {
            context: format!("sqlite:{}", path.display()),
            source,
        }
    }
}

#[async_trait]
impl SqlBackend for SqliteBackend {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn address(&self) -> String {
        self.source.path.display().to_string()
    }

    fn compute_context(&self) -> String {
        self.context.clone()
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        Arc::new(SqliteDialect {})
    }

    /// SQLite types are per value: every column reads as nullable.
    fn declares_nullability(&self) -> bool {
        false
    }

    fn capabilities(&self) -> meshgate_connector_sql::capability::Capabilities {
        meshgate_connector_sql::capability::SQLITE
    }

    async fn connect(&self, _settings: &PoolSettings) -> Result<Arc<dyn SqlPool>, ConnectorError> {
        let source = self.source.clone();
        tokio::task::spawn_blocking(move || source.open().map(|_| ()))
            .await
            .map_err(|e| ConnectorError::new(ErrorClass::Internal, e.to_string()))??;
        Ok(Arc::new(SqlitePool {
            source: self.source.clone(),
        }))
    }
}

/// Statements on a SQLite file.
#[derive(Debug)]
struct SqlitePool {
    source: SqliteSource,
}

impl SqlitePool {
    async fn schema_of(&self, sql: String, what: String) -> Result<SchemaRef, ConnectorError> {
        let src = self.source.clone();
        tokio::task::spawn_blocking(move || infer_schema(&src, &sql, &what))
            .await
            .map_err(|e| ConnectorError::new(ErrorClass::Internal, e.to_string()))?
    }
}

#[async_trait]
impl SqlPool for SqlitePool {
    async fn table_schema(&self, table: &TableReference) -> Result<SchemaRef, ConnectorError> {
        let quoted = quote_table(&SqliteDialect {}, table);
        self.schema_of(
            format!("SELECT * FROM {quoted}"),
            format!("table `{table}`"),
        )
        .await
    }

    async fn query_schema(&self, sql: &str) -> Result<SchemaRef, ConnectorError> {
        self.schema_of(sql.to_string(), "the query".to_string())
            .await
    }

    async fn query(
        &self,
        sql: &str,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream, ConnectorError> {
        Ok(read_rows(self.source.clone(), sql.to_string(), schema))
    }
}

/// The type values are collected in before the cast to the planned type: SQLite only has
/// integers, reals, text and blobs.
fn collect_type(t: &DataType) -> DataType {
    match t {
        DataType::Boolean => DataType::Boolean,
        t if t.is_integer() => DataType::Int64,
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => DataType::Float64,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        _ => DataType::Utf8,
    }
}

/// Runs `sql` on a blocking thread and sends batches through a bounded channel; stops
/// reading as soon as the consumer goes away. Batches have SQLite's natural types
/// (see [`collect_type`]); the caller casts them to `schema`.
fn read_rows(source: SqliteSource, sql: String, schema: SchemaRef) -> SendableRecordBatchStream {
    const BATCH_ROWS: usize = 8192;
    let collected: SchemaRef = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), collect_type(f.data_type()), true))
            .collect::<Vec<_>>(),
    ));
    let mut builder = RecordBatchReceiverStreamBuilder::new(Arc::clone(&collected), 2);
    let tx = builder.tx();
    builder.spawn_blocking(move || {
        let schema = collected;
        let conn = source.open().map_err(ConnectorError::into_datafusion)?;
        // Errors while stepping are the data's (an integer overflow); a statement SQLite
        // cannot prepare was written wrongly for it.
        let ext = |e: rusqlite::Error| {
            ConnectorError::new(ErrorClass::Query, format!("sqlite: {e}")).into_datafusion()
        };
        let mut stmt = conn.prepare(&sql).map_err(|e| {
            let class = if e.to_string().contains("no such table") {
                ErrorClass::NotFound
            } else {
                ErrorClass::PushdownRejected
            };
            ConnectorError::new(class, format!("sqlite: {e}")).into_datafusion()
        })?;
        let width = stmt.column_count();
        let mut rows = stmt.query([]).map_err(ext)?;
        let mut builders: Vec<ColumnBuilder> = schema
            .fields()
            .iter()
            .map(|f| ColumnBuilder::new(f.data_type(), BATCH_ROWS))
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
            for (i, b) in builders.iter_mut().enumerate().take(width) {
                let v = row.get_ref(i).map_err(ext)?;
                b.append(v).map_err(|found| {
                    DataFusionError::External(Box::new(ConnectorError::new(
                        ErrorClass::Data,
                        format!(
                            "column `{}` is declared {} but holds {found}",
                            schema.field(i).name(),
                            schema.field(i).data_type()
                        ),
                    )))
                })?;
            }
            n += 1;
            if n == BATCH_ROWS {
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
