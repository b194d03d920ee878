//! Port tables: a source table seen through the port's contract.
//!
//! With a contract, the port's schema is exactly the declared columns (names, order, types,
//! nullability); other source columns are invisible; values are cast with checked casts and a
//! NULL in a `required` column fails the query. Without one, the source schema is served
//! as is. Either way, fields carry the Flight SQL column metadata (catalog, schema, table,
//! type name, remarks).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{can_cast_types, cast_with_options, CastOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatchOptions;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::filter_pushdown::{
    ChildFilterDescription, FilterDescription, FilterPushdownPhase,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;
use meshgate_config::{ColumnType, Port};

use crate::error::GatewayError;
use crate::port::PortRef;

/// Metadata keys of the Flight SQL column metadata.
pub mod meta {
    /// Catalog (domain).
    pub const CATALOG_NAME: &str = "ARROW:FLIGHT:SQL:CATALOG_NAME";
    /// Schema (product).
    pub const SCHEMA_NAME: &str = "ARROW:FLIGHT:SQL:SCHEMA_NAME";
    /// Table (port).
    pub const TABLE_NAME: &str = "ARROW:FLIGHT:SQL:TABLE_NAME";
    /// Type name.
    pub const TYPE_NAME: &str = "ARROW:FLIGHT:SQL:TYPE_NAME";
    /// Decimal precision.
    pub const PRECISION: &str = "ARROW:FLIGHT:SQL:PRECISION";
    /// Decimal scale.
    pub const SCALE: &str = "ARROW:FLIGHT:SQL:SCALE";
    /// "1" or "0".
    pub const IS_AUTO_INCREMENT: &str = "ARROW:FLIGHT:SQL:IS_AUTO_INCREMENT";
    /// "1" or "0".
    pub const IS_CASE_SENSITIVE: &str = "ARROW:FLIGHT:SQL:IS_CASE_SENSITIVE";
    /// "1" or "0".
    pub const IS_READ_ONLY: &str = "ARROW:FLIGHT:SQL:IS_READ_ONLY";
    /// "1" or "0".
    pub const IS_SEARCHABLE: &str = "ARROW:FLIGHT:SQL:IS_SEARCHABLE";
    /// The column description.
    pub const REMARKS: &str = "ARROW:FLIGHT:SQL:REMARKS";
}

/// The Arrow type a contract type is served as.
pub fn arrow_type(t: ColumnType) -> DataType {
    match t {
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::TinyInt => DataType::Int8,
        ColumnType::SmallInt => DataType::Int16,
        ColumnType::Int => DataType::Int32,
        ColumnType::BigInt => DataType::Int64,
        ColumnType::Float => DataType::Float32,
        ColumnType::Double => DataType::Float64,
        ColumnType::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
        ColumnType::String => DataType::Utf8,
        ColumnType::Binary => DataType::Binary,
        ColumnType::Date => DataType::Date32,
        ColumnType::Time => DataType::Time64(TimeUnit::Microsecond),
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        ColumnType::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    }
}

/// A SQL type name for an Arrow type (for TYPE_NAME metadata and listings).
pub fn sql_type_name(t: &DataType) -> String {
    match t {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => "BIGINT".into(),
        DataType::Float16 | DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "VARBINARY".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Time32(_) | DataType::Time64(_) => "TIME".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP WITH TIME ZONE".into(),
        DataType::Dictionary(_, v) => sql_type_name(v),
        other => other.to_string().to_uppercase(),
    }
}

/// Flight SQL metadata for one column of a port.
fn column_metadata(
    names: &PortRef,
    data_type: &DataType,
    description: Option<&str>,
) -> HashMap<String, String> {
    let mut m = HashMap::new();
    m.insert(meta::CATALOG_NAME.into(), names.domain.clone());
    m.insert(meta::SCHEMA_NAME.into(), names.product.clone());
    m.insert(meta::TABLE_NAME.into(), names.port.clone());
    m.insert(meta::TYPE_NAME.into(), sql_type_name(data_type));
    if let DataType::Decimal128(p, s) = data_type {
        m.insert(meta::PRECISION.into(), p.to_string());
        m.insert(meta::SCALE.into(), s.to_string());
    }
    m.insert(meta::IS_AUTO_INCREMENT.into(), "0".into());
    let text = matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    m.insert(
        meta::IS_CASE_SENSITIVE.into(),
        if text { "1" } else { "0" }.into(),
    );
    m.insert(meta::IS_READ_ONLY.into(), "1".into());
    m.insert(meta::IS_SEARCHABLE.into(), "1".into());
    if let Some(d) = description {
        m.insert(meta::REMARKS.into(), d.into());
    }
    m
}

/// A port as DataFusion sees it.
#[derive(Debug)]
pub struct PortTable {
    source: Arc<dyn TableProvider>,
    schema: SchemaRef,
    /// For each served column, the index of the source column it reads.
    mapping: Vec<usize>,
    /// For each served column, whether a filter on it means the same on the source column.
    same_type: Vec<bool>,
    display_name: String,
    source_name: String,
}

impl PortTable {
    /// Puts `port`'s contract (if any) in front of `source`, a table of the mesh source
    /// named `source_name`.
    pub fn new(
        names: &PortRef,
        port: &Port,
        source_name: &str,
        source: Arc<dyn TableProvider>,
    ) -> Result<Self, GatewayError> {
        let display_name = names.to_string();
        let src = source.schema();
        let mut fields = Vec::new();
        let mut mapping = Vec::new();
        let mut same_type = Vec::new();
        match &port.columns {
            None => {
                for (i, f) in src.fields().iter().enumerate() {
                    let md = column_metadata(names, f.data_type(), None);
                    fields.push(
                        Field::new(f.name(), f.data_type().clone(), f.is_nullable())
                            .with_metadata(md),
                    );
                    mapping.push(i);
                    same_type.push(true);
                }
            }
            Some(cols) => {
                let mut problems = Vec::new();
                for c in cols {
                    let idx = src.index_of(&c.name).ok().or_else(|| {
                        src.fields()
                            .iter()
                            .position(|f| f.name().eq_ignore_ascii_case(&c.name))
                    });
                    let Some(idx) = idx else {
                        problems.push(format!("column `{}` is missing from the source", c.name));
                        continue;
                    };
                    let target = arrow_type(c.data_type);
                    let from = src.field(idx).data_type();
                    if !can_cast_types(from, &target) {
                        problems.push(format!(
                            "column `{}` is {from} in the source and cannot become {}",
                            c.name, c.data_type
                        ));
                        continue;
                    }
                    let md = column_metadata(names, &target, c.description.as_deref());
                    same_type.push(from == &target && src.field(idx).name() == &c.name);
                    fields.push(Field::new(&c.name, target, !c.required).with_metadata(md));
                    mapping.push(idx);
                }
                if !problems.is_empty() {
                    let have: Vec<String> = src
                        .fields()
                        .iter()
                        .map(|f| format!("{} {}", f.name(), f.data_type()))
                        .collect();
                    return Err(GatewayError::ContractViolation(format!(
                        "port {display_name} does not match its contract: {}; the source has: {}",
                        problems.join("; "),
                        have.join(", ")
                    )));
                }
            }
        }
        Ok(Self {
            source,
            schema: Arc::new(Schema::new(fields)),
            mapping,
            same_type,
            display_name,
            source_name: source_name.to_string(),
        })
    }

    /// The schema of the source table behind the contract, as it was when the port opened.
    pub fn source_schema(&self) -> SchemaRef {
        self.source.schema()
    }

    /// Whether the port is a plain view of source columns: every served column is a source
    /// column of the same name and type (a contract may still hide, reorder and require
    /// columns). Only such ports are federated.
    pub fn is_view_of_source(&self) -> bool {
        self.same_type.iter().all(|s| *s)
    }

    /// The mesh source the port reads.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    fn filter_is_pushable(&self, e: &Expr) -> bool {
        e.column_refs()
            .iter()
            .all(|c| match self.schema.index_of(&c.name) {
                Ok(i) => self.same_type[i],
                Err(_) => false,
            })
    }
}

#[async_trait]
impl TableProvider for PortTable {
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
        let pushable: Vec<&Expr> = filters
            .iter()
            .copied()
            .filter(|f| self.filter_is_pushable(f))
            .collect();
        let mut inner = self
            .source
            .supports_filters_pushdown(&pushable)?
            .into_iter();
        Ok(filters
            .iter()
            .map(|f| {
                if self.filter_is_pushable(f) {
                    inner
                        .next()
                        .unwrap_or(TableProviderFilterPushDown::Unsupported)
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let served: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let source_projection: Vec<usize> = served.iter().map(|&i| self.mapping[i]).collect();
        let pushed: Vec<Expr> = filters
            .iter()
            .filter(|f| self.filter_is_pushable(f))
            .cloned()
            .collect();
        let input = self
            .source
            .scan(state, Some(&source_projection), &pushed, limit)
            .await?;
        let out_schema = Arc::new(self.schema.project(&served)?);
        Ok(Arc::new(ContractExec::new(
            input,
            out_schema,
            self.display_name.clone(),
            self.source_name.clone(),
        )))
    }
}

/// A column name no schema has (it holds a NUL): stands for a filter not pushed to a source.
const NOT_PUSHED: &str = "\u{0}not pushed below the contract";

/// Casts the source's batches to the port schema and enforces `required` columns.
#[derive(Debug)]
pub struct ContractExec {
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    port: String,
    source: String,
    properties: Arc<PlanProperties>,
}

impl ContractExec {
    fn new(input: Arc<dyn ExecutionPlan>, schema: SchemaRef, port: String, source: String) -> Self {
        let p = input.properties();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            p.partitioning.clone(),
            p.emission_type,
            p.boundedness,
        ));
        Self {
            input,
            schema,
            port,
            source,
            properties,
        }
    }

    /// The mesh source this scan reads.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl DisplayAs for ContractExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ContractExec: port={}", self.port)
    }
}

impl ExecutionPlan for ContractExec {
    fn name(&self) -> &str {
        "ContractExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    /// Filters on columns the contract serves with the source's own type go on to the source's
    /// scan (Parquet row-group, page and file pruning); filters on cast columns stay above,
    /// where they see the contract's values.
    fn gather_filters_for_pushdown(
        &self,
        _phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> Result<FilterDescription> {
        let input = self.input.schema();
        if input.fields().len() != self.schema.fields().len() {
            return Ok(FilterDescription::all_unsupported(
                &parent_filters,
                &self.children(),
            ));
        }
        let mut to_child = Vec::with_capacity(parent_filters.len());
        for filter in &parent_filters {
            let mut pushable = true;
            let renamed = Arc::clone(filter).transform_down(|e| {
                let Some(col) = e.downcast_ref::<Column>() else {
                    return Ok(Transformed::no(e));
                };
                let i = col.index();
                match (input.fields().get(i), self.schema.fields().get(i)) {
                    (Some(src), Some(served))
                        if src.data_type() == served.data_type() && served.name() == col.name() =>
                    {
                        Ok(Transformed::yes(Arc::new(Column::new(src.name(), i))))
                    }
                    _ => {
                        pushable = false;
                        Ok(Transformed::complete(e))
                    }
                }
            })?;
            if pushable {
                to_child.push(renamed.data);
            } else {
                // A column no child has: the filter is reported unsupported for the child.
                to_child.push(Arc::new(Column::new(NOT_PUSHED, 0)) as Arc<dyn PhysicalExpr>);
            }
        }
        Ok(FilterDescription::new()
            .with_child(ChildFilterDescription::from_child(&to_child, &self.input)?))
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children
            .pop()
            .ok_or_else(|| DataFusionError::Internal("ContractExec needs one child".into()))?;
        Ok(Arc::new(Self::new(
            input,
            Arc::clone(&self.schema),
            self.port.clone(),
            self.source.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = Arc::clone(&self.schema);
        let port = self.port.clone();
        let stream = input.map(move |batch| conform(&batch?, &schema, &port));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }
}

fn conform(batch: &RecordBatch, schema: &SchemaRef, port: &str) -> Result<RecordBatch> {
    let opts = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut cols = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let col = batch.column(i);
        let col = if col.data_type() == field.data_type() {
            Arc::clone(col)
        } else {
            cast_with_options(col, field.data_type(), &opts).map_err(|e| {
                DataFusionError::External(Box::new(GatewayError::ContractViolation(format!(
                    "port {port}: a value of column `{}` does not fit its contract type {}: {e}",
                    field.name(),
                    field.data_type()
                ))))
            })?
        };
        if !field.is_nullable() && col.null_count() > 0 {
            return Err(DataFusionError::External(Box::new(GatewayError::ContractViolation(format!(
                "port {port}: column `{}` is required by the contract, but the source returned NULL; ask the port's owner",
                field.name()
            )))));
        }
        cols.push(col);
    }
    let opts = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        cols,
        &opts,
    )?)
}
