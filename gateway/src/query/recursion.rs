//! Recursive CTEs end: each recursive query may iterate at most `limits.max_recursion_depth`
//! times and produce at most `limits.max_recursive_rows` rows from its recursive term, else it
//! fails with RESOURCE_EXHAUSTED naming the limit. DataFusion re-executes the recursive term
//! once per iteration; a node above it counts the executions and the rows.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::recursive_query::RecursiveQueryExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;

use crate::error::GatewayError;

/// The bounds of one recursive query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecursionLimits {
    /// Most iterations.
    pub max_depth: u64,
    /// Most rows the recursive term produces over every iteration.
    pub max_rows: u64,
}

/// Counts the iterations and rows of the recursive term below it.
#[derive(Debug)]
pub struct RecursionLimitExec {
    input: Arc<dyn ExecutionPlan>,
    limits: RecursionLimits,
    iterations: Arc<AtomicU64>,
    rows: Arc<AtomicU64>,
}

fn exhausted(msg: String) -> DataFusionError {
    DataFusionError::External(Box::new(GatewayError::ResourceExhausted(msg)))
}

impl DisplayAs for RecursionLimitExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "RecursionLimitExec: max_depth={}, max_rows={}",
            self.limits.max_depth, self.limits.max_rows
        )
    }
}

impl ExecutionPlan for RecursionLimitExec {
    fn name(&self) -> &str {
        "RecursionLimitExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
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

    /// A new node over `children` keeps the counts: DataFusion rebuilds the recursive term
    /// before each iteration.
    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children.pop().ok_or_else(|| {
            DataFusionError::Internal("RecursionLimitExec needs one child".into())
        })?;
        Ok(Arc::new(Self {
            input,
            limits: self.limits,
            iterations: Arc::clone(&self.iterations),
            rows: Arc::clone(&self.rows),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let depth = self.iterations.fetch_add(1, Ordering::Relaxed) + 1;
        if depth > self.limits.max_depth {
            return Err(exhausted(format!(
                "a recursive query went past {} iterations (limits.max_recursion_depth)",
                self.limits.max_depth
            )));
        }
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let rows = Arc::clone(&self.rows);
        let max_rows = self.limits.max_rows;
        let counted = input.map(move |b| {
            let b = b?;
            let total = rows.fetch_add(b.num_rows() as u64, Ordering::Relaxed) + b.num_rows() as u64;
            if total > max_rows {
                return Err(exhausted(format!(
                    "a recursive query produced more than {max_rows} rows (limits.max_recursive_rows)"
                )));
            }
            Ok(b)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, counted)))
    }
}

/// Puts a [`RecursionLimitExec`] over the recursive term of every recursive query.
#[derive(Debug)]
pub struct BoundRecursion(pub RecursionLimits);

impl PhysicalOptimizerRule for BoundRecursion {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if !node.is::<RecursiveQueryExec>() {
                return Ok(Transformed::no(node));
            }
            let children: Vec<Arc<dyn ExecutionPlan>> =
                node.children().into_iter().map(Arc::clone).collect();
            let [static_term, recursive_term] = children.as_slice() else {
                return Ok(Transformed::no(node));
            };
            if recursive_term.is::<RecursionLimitExec>() {
                return Ok(Transformed::no(node));
            }
            let bounded: Arc<dyn ExecutionPlan> = Arc::new(RecursionLimitExec {
                input: Arc::clone(recursive_term),
                limits: self.0,
                iterations: Arc::new(AtomicU64::new(0)),
                rows: Arc::new(AtomicU64::new(0)),
            });
            let node = node.replace_children(
                vec![Arc::clone(static_term), bounded],
                ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep),
            )?;
            Ok(Transformed::yes(node))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "meshgate_bound_recursion"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
