//! Keeps DataFusion 55's physical filter pushdown away from projections that output two
//! columns of one name.
//!
//! `ProjectionExec::gather_filters_for_pushdown` maps a parent filter's columns back through
//! the projection by *name* (`collect_reverse_alias`, `FilterRemapper::try_remap`): with two
//! output columns called `s` (`SELECT e6.s, e7.s ...`, common above joins), a filter on the
//! first is rewritten onto the expression of the second and lands on the wrong side of a
//! join: wrong answers (a `WHERE` on the null-supplied side of an outer join, TopK and join
//! dynamic filters). Upstream: apache/datafusion#25296 and #25244. Until DataFusion fixes
//! it, [`ShieldDuplicateNames`] puts a [`NameClashBarrierExec`] above every such projection
//! before each filter pushdown pass; filters stay above it, which is always correct.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::Statistics;
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{
    replace_children_if_necessary, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties,
    StatisticsArgs,
};

/// Passes its input through; no filter is pushed below it (the default of
/// `ExecutionPlan::gather_filters_for_pushdown`).
#[derive(Debug)]
pub struct NameClashBarrierExec {
    input: Arc<dyn ExecutionPlan>,
}

impl NameClashBarrierExec {
    /// A barrier above `input`.
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        Self { input }
    }
}

impl DisplayAs for NameClashBarrierExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "NameClashBarrierExec")
    }
}

impl ExecutionPlan for NameClashBarrierExec {
    fn name(&self) -> &str {
        "NameClashBarrierExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
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

    fn supports_limit_pushdown(&self) -> bool {
        true
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children.pop().ok_or_else(|| {
            DataFusionError::Internal("NameClashBarrierExec needs one child".into())
        })?;
        Ok(Arc::new(Self::new(input)))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        input_stats.first().cloned().ok_or_else(|| {
            DataFusionError::Internal("NameClashBarrierExec needs its input's statistics".into())
        })
    }
}

fn has_duplicate_names(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if plan.downcast_ref::<ProjectionExec>().is_none() {
        return false;
    }
    let mut seen = HashSet::new();
    plan.schema()
        .fields()
        .iter()
        .any(|f| !seen.insert(f.name().as_str()))
}

/// Puts a [`NameClashBarrierExec`] between every plan node and a child projection with
/// duplicate output names. Runs before each filter pushdown pass.
#[derive(Debug, Default)]
pub struct ShieldDuplicateNames;

impl PhysicalOptimizerRule for ShieldDuplicateNames {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if node.downcast_ref::<NameClashBarrierExec>().is_some()
                || !node.children().iter().any(|c| has_duplicate_names(c))
            {
                return Ok(Transformed::no(node));
            }
            let children = node
                .children()
                .into_iter()
                .map(|c| {
                    if has_duplicate_names(c) {
                        Arc::new(NameClashBarrierExec::new(Arc::clone(c))) as Arc<dyn ExecutionPlan>
                    } else {
                        Arc::clone(c)
                    }
                })
                .collect();
            Ok(Transformed::yes(replace_children_if_necessary(
                node, children,
            )?))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "shield_duplicate_names"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// DataFusion's physical rules with [`ShieldDuplicateNames`] before each filter pushdown.
pub fn with_shields(
    rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>,
) -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut out = Vec::with_capacity(rules.len() + 2);
    for r in rules {
        if r.name().starts_with("FilterPushdown") {
            out.push(Arc::new(ShieldDuplicateNames) as Arc<dyn PhysicalOptimizerRule + Send + Sync>);
        }
        out.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
    use datafusion::prelude::{SessionConfig, SessionContext};

    async fn rows(shielded: bool, sql: &str) -> usize {
        let mut rules = PhysicalOptimizer::new().rules;
        if shielded {
            rules = with_shields(rules);
        }
        let state = SessionStateBuilder::new()
            .with_config(SessionConfig::new().with_target_partitions(2))
            .with_default_features()
            .with_physical_optimizer_rules(rules)
            .build();
        let ctx = SessionContext::new_with_state(state);
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let ids: Vec<i64> = (1..=30).collect();
        let names: Vec<Option<String>> = ids
            .iter()
            .map(|i| (i % 7 != 0).then(|| format!("v{i}")))
            .collect();
        let keys: Vec<Option<i64>> = ids.iter().map(|i| (i % 9 != 1).then_some(i % 25)).collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
                Arc::new(Int64Array::from(keys)),
            ],
        )
        .expect("batch");
        let table = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
        ctx.register_table("edge", Arc::new(table))
            .expect("register");
        let batches = ctx
            .sql(sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        batches.iter().map(RecordBatch::num_rows).sum()
    }

    #[tokio::test]
    async fn filters_do_not_cross_projections_with_duplicate_names() {
        // ILIKE '%' becomes a CASE that DataFusion does not see as rejecting NULLs, so the
        // filter stays above the outer join; the cross join makes the left side the larger
        // one, so the join's sides are swapped.
        let from =
            "FROM (SELECT 1 AS k UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4) d \
                    CROSS JOIN edge e6 RIGHT JOIN edge e7 ON e6.n = e7.n \
                    WHERE e7.id BETWEEN -2 AND 33 AND e6.s ILIKE '%'";
        // Counted without projecting two columns named `s`: the right answer.
        let want = rows(true, &format!("SELECT e7.id {from}")).await;
        assert_eq!(rows(true, &format!("SELECT e7.s {from}")).await, want);
        // DataFusion 55 alone moves the filter on `e6.s` onto `e7.s`. When this starts
        // failing, DataFusion fixed it (apache/datafusion#25296): the barrier can go.
        assert_ne!(rows(false, &format!("SELECT e7.s {from}")).await, want);
    }
}
