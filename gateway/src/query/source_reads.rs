//! Rows and bytes read from each source, per query: a metrics node above every scan of a
//! source (federated sub-plans and port scans), shown by EXPLAIN ANALYZE and summed for the
//! query's log line.
//!
//! Bytes are the Arrow size of what the source delivered (the sliced buffers of each
//! batch), the same measure for every source kind.
//!
//! Each sub-query (one execution of the node, all its partitions) also reports its latency
//! and error class to the gateway's metrics, and is a `source_query` span (child of the query's span) for tracing; both come with the task
//! context as a [`QueryObservers`] extension.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter_pushdown::{FilterDescription, FilterPushdownPhase};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;
use meshgate_connector_sql::FederatedSqlExec;

use crate::catalog::contract::ContractExec;
use crate::metrics::Metrics;

/// Name of the byte counter.
pub const BYTES_READ: &str = "bytes_read";

/// What the execution of one query reports to; a session config extension.
#[derive(Debug)]
pub struct QueryObservers {
    /// The gateway's metrics (absent in engines used without a server).
    pub metrics: Option<Arc<Metrics>>,
    /// The query's span: source sub-queries are its children.
    pub span: tracing::Span,
}

/// The error class of a failed sub-query, for the `class` label.
/// One sub-query: the partitions of one execution of a [`SourceReadExec`] share it. It ends
/// the span and reports latency when the last partition's stream ends or is dropped (a
/// cancelled query reports what ran).
struct SubQuery {
    source: String,
    span: tracing::Span,
    started: Instant,
    metrics: Option<Arc<Metrics>>,
    error: std::sync::Mutex<Option<&'static str>>,
    rows: std::sync::atomic::AtomicU64,
}

impl SubQuery {
    fn failed(&self, e: &datafusion::error::DataFusionError) {
        let mut error = self
            .error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        error.get_or_insert(crate::error::error_label(e));
    }
}

impl Drop for SubQuery {
    fn drop(&mut self) {
        let rows = self.rows.load(std::sync::atomic::Ordering::Relaxed);
        self.span.record("rows", rows);
        let error = *self
            .error
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(class) = error {
            self.span.record("error", class);
        }
        if let Some(m) = &self.metrics {
            m.source_query(&self.source, self.started.elapsed(), error);
        }
    }
}

/// Counts the rows and bytes its input (a scan of `source`) produces.
#[derive(Debug)]
pub struct SourceReadExec {
    input: Arc<dyn ExecutionPlan>,
    source: String,
    metrics: ExecutionPlanMetricsSet,
    /// The sub-query the partitions running now belong to.
    current: std::sync::Mutex<std::sync::Weak<SubQuery>>,
}

impl SourceReadExec {
    /// Wraps `input`, a scan of `source`.
    pub fn new(input: Arc<dyn ExecutionPlan>, source: String) -> Self {
        Self {
            input,
            source,
            metrics: ExecutionPlanMetricsSet::new(),
            current: std::sync::Mutex::new(std::sync::Weak::new()),
        }
    }

    /// The source.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl DisplayAs for SourceReadExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SourceReadExec: source={}", self.source)
    }
}

impl ExecutionPlan for SourceReadExec {
    fn name(&self) -> &str {
        "SourceReadExec"
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

    /// Transparent to filters: they reach the source's scan (Parquet pruning).
    fn gather_filters_for_pushdown(
        &self,
        _phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> Result<FilterDescription> {
        FilterDescription::from_children(parent_filters, &self.children())
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children.pop().ok_or_else(|| {
            datafusion::error::DataFusionError::Internal("SourceReadExec needs one child".into())
        })?;
        Ok(Arc::new(Self::new(input, self.source.clone())))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let rows: Count = MetricBuilder::new(&self.metrics).output_rows(partition);
        let bytes: Count = MetricBuilder::new(&self.metrics).counter(BYTES_READ, partition);
        // One lookup of the query's observers per partition: trace parent and metrics.
        let observers = context.session_config().get_extension::<QueryObservers>();
        let sub = {
            let mut current = self
                .current
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match current.upgrade() {
                Some(sub) => sub,
                None => {
                    let parent = observers.as_ref().and_then(|o| o.span.id());
                    let sub = Arc::new(SubQuery {
                        source: self.source.clone(),
                        span: tracing::info_span!(
                            parent: parent,
                            "source_query",
                            source = %self.source,
                            rows = tracing::field::Empty,
                            error = tracing::field::Empty,
                        ),
                        started: Instant::now(),
                        metrics: observers.as_ref().and_then(|o| o.metrics.clone()),
                        error: std::sync::Mutex::new(None),
                        rows: std::sync::atomic::AtomicU64::new(0),
                    });
                    *current = Arc::downgrade(&sub);
                    sub
                }
            }
        };
        let input = match sub.span.in_scope(|| self.input.execute(partition, context)) {
            Ok(i) => i,
            Err(e) => {
                sub.failed(&e);
                return Err(e);
            }
        };
        let schema = input.schema();
        let counted = input.map(move |b| {
            match &b {
                Ok(batch) => {
                    sub.rows.fetch_add(
                        batch.num_rows() as u64,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    rows.add(batch.num_rows());
                    bytes.add(
                        batch
                            .columns()
                            .iter()
                            .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0))
                            .sum(),
                    );
                }
                Err(e) => sub.failed(e),
            }
            b
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, counted)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Puts a [`SourceReadExec`] above every federated sub-plan and every port scan. Runs last,
/// so no other rule has to know the node.
#[derive(Debug, Default)]
pub struct CountSourceReads;

impl PhysicalOptimizerRule for CountSourceReads {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let source = if let Some(v) = node.downcast_ref::<FederatedSqlExec>() {
                Some(v.source_name().to_string())
            } else {
                node.downcast_ref::<ContractExec>()
                    .map(|c| c.source().to_string())
            };
            Ok(match source {
                Some(s) => Transformed::new(
                    Arc::new(SourceReadExec::new(node, s)) as Arc<dyn ExecutionPlan>,
                    true,
                    TreeNodeRecursion::Continue,
                ),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "count_source_reads"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Rows and bytes read per source so far by an executed plan.
pub fn source_reads(plan: &Arc<dyn ExecutionPlan>) -> BTreeMap<String, (usize, usize)> {
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let _ = plan.apply(|node| {
        if let Some(r) = node.downcast_ref::<SourceReadExec>() {
            if let Some(m) = r.metrics() {
                let e = out.entry(r.source().to_string()).or_default();
                e.0 += m.output_rows().unwrap_or(0);
                e.1 += m.sum_by_name(BYTES_READ).map(|v| v.as_usize()).unwrap_or(0);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

/// `source=rows/bytes` pairs for a log line.
pub fn format_source_reads(reads: &BTreeMap<String, (usize, usize)>) -> String {
    reads
        .iter()
        .map(|(s, (r, b))| format!("{s}:rows={r},bytes={b}"))
        .collect::<Vec<_>>()
        .join(" ")
}
