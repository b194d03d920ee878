//! The scan of one port (one `SELECT`), and conforming source batches to the planned schema.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatchOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};

use crate::source::SqlSource;
use crate::sqlgen::Statement;

/// Returns `batch` with `schema`: same number of columns, each cast (checked) to the planned
/// type when the source returned another one (say `Decimal128(38, 10)` for a `SUM`). A
/// zero-column `schema` keeps only the row count.
pub fn conform_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let opts = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    if schema.fields().is_empty() {
        return Ok(RecordBatch::try_new_with_options(
            Arc::clone(schema),
            vec![],
            &opts,
        )?);
    }
    if batch.num_columns() != schema.fields().len() {
        return Err(DataFusionError::Execution(format!(
            "the source returned {} columns where {} were expected",
            batch.num_columns(),
            schema.fields().len()
        )));
    }
    let cast = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut cols = Vec::with_capacity(batch.num_columns());
    for (col, field) in batch.columns().iter().zip(schema.fields()) {
        if col.data_type() == field.data_type() {
            cols.push(Arc::clone(col));
        } else {
            cols.push(
                cast_with_options(col, field.data_type(), &cast).map_err(|e| {
                    DataFusionError::Execution(format!(
                        "column `{}`: the source returned {} which does not convert to {}: {e}",
                        field.name(),
                        col.data_type(),
                        field.data_type()
                    ))
                })?,
            );
        }
    }
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        cols,
        &opts,
    )?)
}

/// Runs one `SELECT` on a SQL source; one partition.
#[derive(Debug)]
pub struct SqlScanExec {
    source: Arc<SqlSource>,
    statement: Statement,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl SqlScanExec {
    /// A scan running `statement` and producing `schema` (its columns by position).
    pub fn new(source: Arc<SqlSource>, statement: Statement, schema: SchemaRef) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            source,
            statement,
            schema,
            properties,
        }
    }

    /// The statement sent to the source.
    pub fn sql(&self) -> &str {
        &self.statement.sql
    }

    /// The source's name.
    pub fn source_name(&self) -> &str {
        self.source.name()
    }
}

impl DisplayAs for SqlScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "SqlScanExec: source={} sql={}",
            self.source.name(),
            self.statement.sql
        )
    }
}

impl ExecutionPlan for SqlScanExec {
    fn name(&self) -> &str {
        "SqlScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let decode = Arc::new(Schema::new(
            self.statement
                .columns
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let t = self
                        .schema
                        .fields()
                        .get(i)
                        .map_or(DataType::Int64, |f| f.data_type().clone());
                    Field::new(name, t, true)
                })
                .collect::<Vec<_>>(),
        ));
        Ok(self.source.stream_as(
            self.statement.sql.clone(),
            decode,
            Arc::clone(&self.schema),
            meshgate_connector::identity::caller_of(&context),
        ))
    }
}
