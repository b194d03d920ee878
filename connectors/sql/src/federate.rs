//! Which parts of a plan go to a source as one statement, and the node that runs them.
//!
//! datafusion-federation cuts the largest sub-plan whose tables all belong to sources with
//! one compute context (same server, same credentials) and hands it to
//! [`split_federated`]. There the sub-plan is written as one statement ([`crate::sqlgen`]);
//! when a node cannot be written with DataFusion's meaning for the source's dialect, the
//! node stays in the gateway and its inputs are tried in turn. A sub-plan without a table
//! of the source (a constant `SELECT 1`) is never sent.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Statistics, TableReference};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Extension, LogicalPlan, TableScan};
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, PhysicalExpr, PhysicalSortExpr,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion_federation::sql::SQLTableSource;
use datafusion_federation::{get_table_source, FederatedPlanNode, FederationPlanner};

use crate::semantics::{Refusal, Semantics, R};
use crate::source::SqlSource;
use crate::sqlgen::{statement, Statement};

/// The table a scan of a federated port reads on its source.
pub fn remote_table(scan: &TableScan) -> R<TableReference> {
    let source = get_table_source(&scan.source)
        .map_err(|e| Refusal::new(e.to_string()))?
        .ok_or_else(|| Refusal::new("a table of another source"))?;
    (source.as_ref() as &dyn Any)
        .downcast_ref::<SQLTableSource>()
        .map(SQLTableSource::table_reference)
        .ok_or_else(|| Refusal::new("a table that is not a SQL table"))
}

/// Writes `plan` as one statement of `source`, or says why not.
pub fn plan_statement(plan: &LogicalPlan, source: &SqlSource) -> R<Statement> {
    let caps = source.backend().capabilities();
    let dialect = source.source_dialect();
    statement(plan, Semantics::new(&caps), &dialect, &remote_table)
}

/// Replaces the sub-plan that datafusion-federation cut out for `source` by the largest
/// sub-plans that can be written for it.
pub fn split_federated(plan: LogicalPlan, source: &Arc<SqlSource>) -> Result<LogicalPlan> {
    let LogicalPlan::Extension(Extension { node }) = &plan else {
        return Ok(plan);
    };
    let Some(fed) = node.as_any().downcast_ref::<FederatedPlanNode>() else {
        return Ok(plan);
    };
    federate(limits_below_projections(fed.plan().clone())?, source)
}

/// `Limit(Projection(x))` as `Projection(Limit(x))`: the same rows, and when `x` sorts by a
/// column the projection drops, the limit can then go to the source with the sort.
fn limits_below_projections(plan: LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::{Limit, Projection};
    plan.transform_up(|node| {
        let LogicalPlan::Limit(limit) = &node else {
            return Ok(Transformed::no(node));
        };
        let LogicalPlan::Projection(p) = limit.input.as_ref() else {
            return Ok(Transformed::no(node));
        };
        if p.expr.iter().any(|e| e.is_volatile()) {
            return Ok(Transformed::no(node));
        }
        let below = LogicalPlan::Limit(Limit {
            skip: limit.skip.clone(),
            fetch: limit.fetch.clone(),
            input: Arc::clone(&p.input),
        });
        let above = Projection::try_new(p.expr.clone(), Arc::new(below))?;
        Ok(Transformed::yes(LogicalPlan::Projection(above)))
    })
    .map(|t| t.data)
}

fn has_scan(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply(|p| {
        if matches!(p, LogicalPlan::TableScan(_)) {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn federate(plan: LogicalPlan, source: &Arc<SqlSource>) -> Result<LogicalPlan> {
    if has_scan(&plan) {
        match plan_statement(&plan, source) {
            Ok(statement) => {
                let planner = Arc::new(StatementPlanner {
                    source: Arc::clone(source),
                    statement,
                });
                return Ok(LogicalPlan::Extension(Extension {
                    node: Arc::new(FederatedPlanNode::new(plan, planner)),
                }));
            }
            Err(why) => {
                tracing::debug!(source = %source.name(), node = %plan.display(), reason = %why, "not pushed whole");
            }
        }
    }
    let inputs = plan
        .inputs()
        .into_iter()
        .map(|c| federate(c.clone(), source))
        .collect::<Result<Vec<_>>>()?;
    if inputs.is_empty() {
        return Ok(plan);
    }
    plan.with_new_exprs(plan.expressions(), inputs)
}

/// Plans a federated sub-plan as the statement written for it.
struct StatementPlanner {
    source: Arc<SqlSource>,
    statement: Statement,
}

#[async_trait]
impl FederationPlanner for StatementPlanner {
    async fn plan_federation(
        &self,
        node: &FederatedPlanNode,
        _session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = Arc::new(node.plan().schema().as_arrow().clone());
        Ok(Arc::new(FederatedSqlExec::new(
            Arc::clone(&self.source),
            self.statement.clone(),
            schema,
        )))
    }
}

/// Runs one statement written for a source and returns its rows with the sub-plan's
/// schema (by position). Shown in `EXPLAIN` as
/// `VirtualExecutionPlan name=<source> compute_context=... base_sql=<statement>`.
#[derive(Debug)]
pub struct FederatedSqlExec {
    source: Arc<SqlSource>,
    statement: Statement,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl FederatedSqlExec {
    /// `statement` on `source`, producing `schema`.
    pub fn new(source: Arc<SqlSource>, statement: Statement, schema: SchemaRef) -> Self {
        let mut eq = EquivalenceProperties::new(Arc::clone(&schema));
        if let Some(keys) = &statement.ordering {
            let sort: Vec<PhysicalSortExpr> = keys
                .iter()
                .map(|(i, asc, nulls_first)| PhysicalSortExpr {
                    expr: Arc::new(PhysicalColumn::new(schema.field(*i).name(), *i))
                        as Arc<dyn PhysicalExpr>,
                    options: SortOptions {
                        descending: !asc,
                        nulls_first: *nulls_first,
                    },
                })
                .collect();
            if LexOrdering::new(sort.clone()).is_some() {
                eq.add_ordering(sort);
            }
        }
        let properties = Arc::new(PlanProperties::new(
            eq,
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

    /// The source's name.
    pub fn source_name(&self) -> &str {
        self.source.name()
    }

    /// The statement sent.
    pub fn sql(&self) -> &str {
        &self.statement.sql
    }

    /// The schema rows are decoded with: the statement's column names, the plan's types.
    fn decode_schema(&self) -> SchemaRef {
        if self.schema.fields().is_empty() {
            return Arc::new(Schema::new(vec![Field::new("c0", DataType::Int64, true)]));
        }
        Arc::new(Schema::new(
            self.schema
                .fields()
                .iter()
                .zip(&self.statement.columns)
                .map(|(f, name)| Field::new(name, f.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ))
    }
}

impl DisplayAs for FederatedSqlExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "VirtualExecutionPlan name={} compute_context={} base_sql={}",
            self.source.name(),
            self.source.backend().compute_context(),
            self.statement.sql
        )
    }
}

impl ExecutionPlan for FederatedSqlExec {
    fn name(&self) -> &str {
        "FederatedSqlExec"
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
        Ok(self.source.stream_as(
            self.statement.sql.clone(),
            self.decode_schema(),
            Arc::clone(&self.schema),
            meshgate_connector::identity::caller_of(&context),
        ))
    }

    fn partition_statistics(&self, _partition: Option<usize>) -> Result<Arc<Statistics>> {
        Ok(Arc::new(Statistics::new_unknown(&self.schema)))
    }
}
