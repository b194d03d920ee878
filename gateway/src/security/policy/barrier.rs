//! The policy barrier: a node no predicate crosses, logically or physically, so that a user
//! predicate that could fail only ever sees rows the row filters let through.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::{DFSchemaRef, Result as DFResult};
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

/// A node no predicate is pushed through: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct PolicyBarrier {
    input: LogicalPlan,
}

impl PolicyBarrier {
    /// A barrier above `input`.
    pub fn new(input: LogicalPlan) -> Self {
        Self { input }
    }
}

impl UserDefinedLogicalNodeCore for PolicyBarrier {
    fn name(&self) -> &str {
        "PolicyBarrier"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PolicyBarrier")
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> DFResult<Self> {
        match inputs.pop() {
            Some(input) if inputs.is_empty() => Ok(Self { input }),
            _ => Err(DataFusionError::Internal(
                "PolicyBarrier takes one input".into(),
            )),
        }
    }

    // Columns pass through unchanged, so projections may be pushed below it; predicates
    // may not (the default of `prevent_predicate_push_down_columns`).
    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        Some(vec![output_columns.to_vec()])
    }
}

/// Physical form of [`PolicyBarrier`]: passes batches through, accepts no pushed filter.
#[derive(Debug)]
pub struct PolicyBarrierExec {
    input: Arc<dyn ExecutionPlan>,
}

impl DisplayAs for PolicyBarrierExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PolicyBarrierExec")
    }
}

impl ExecutionPlan for PolicyBarrierExec {
    fn name(&self) -> &str {
        "PolicyBarrierExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_plan::PhysicalExpr>,
        ) -> DFResult<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> DFResult<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        match children.pop() {
            Some(input) if children.is_empty() => Ok(Arc::new(Self { input })),
            _ => Err(DataFusionError::Internal(
                "PolicyBarrierExec takes one child".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}

/// Plans [`PolicyBarrier`] nodes.
#[derive(Debug, Default)]
pub struct PolicyBarrierPlanner;

#[async_trait]
impl datafusion::physical_planner::ExtensionPlanner for PolicyBarrierPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn datafusion::physical_planner::PhysicalPlanner,
        node: &dyn datafusion::logical_expr::UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn datafusion::catalog::Session,
        _planning_ctx: &datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext,
    ) -> DFResult<Option<Arc<dyn ExecutionPlan>>> {
        if node.as_any().downcast_ref::<PolicyBarrier>().is_none() {
            return Ok(None);
        }
        match physical_inputs {
            [input] => Ok(Some(Arc::new(PolicyBarrierExec {
                input: Arc::clone(input),
            }))),
            _ => Err(DataFusionError::Internal(
                "PolicyBarrier takes one input".into(),
            )),
        }
    }
}
