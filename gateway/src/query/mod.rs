//! Planning and running SQL against the mesh: read-only, budgeted, on big-stack threads.

pub mod admission;
pub mod filter_barrier;
pub mod growth;
pub mod limits;
pub mod recursion;
pub mod source_reads;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatchOptions;
use datafusion::common::{ParamValues, ScalarValue, TableReference};
use datafusion::execution::context::SQLOptions;
use datafusion::execution::context::SessionState;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{execute_stream, ExecutionPlan};
use datafusion::prelude::SessionConfig;
use datafusion::sql::parser::{DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{visit_expressions_mut, Expr as SqlExpr, Statement, Value};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::Tokenizer;
use futures::StreamExt;
use tokio::sync::Semaphore;

use datafusion::optimizer::{Optimizer, OptimizerRule};
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion_federation::{FederatedPlanNode, FederatedPlanner, FederationOptimizerRule};

use crate::catalog::principal::PrincipalCatalogList;
use crate::catalog::view::CatalogView;
use crate::catalog::MeshCatalog;
use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::port::PortRef;
use crate::query::limits::{check_amplifying_functions, SqlLimits};
use crate::query::source_reads::{CountSourceReads, QueryObservers};
use crate::security::policy::{PolicyBarrierPlanner, PolicySet};
use crate::security::Principal;
use crate::usage::Usage;

/// Physical planning with the extension nodes of federation and of policies.
#[derive(Debug)]
struct MeshQueryPlanner;

#[async_trait::async_trait]
impl datafusion::execution::context::QueryPlanner for MeshQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn datafusion::catalog::Session,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
        DefaultPhysicalPlanner::with_extension_planners(vec![
            Arc::new(FederatedPlanner::new()),
            Arc::new(PolicyBarrierPlanner),
        ])
        .create_physical_plan(logical_plan, session)
        .await
    }
}

/// The ports a plan reads with the columns it reads of each; federated sub-plans included.
pub fn port_reads(plan: &LogicalPlan) -> BTreeMap<PortRef, BTreeSet<String>> {
    fn walk(plan: &LogicalPlan, out: &mut BTreeMap<PortRef, BTreeSet<String>>) {
        let _ = plan.apply_with_subqueries(|p| {
            match p {
                LogicalPlan::TableScan(scan) => {
                    let cols = out
                        .entry(PortRef::from_table_reference(&scan.table_name))
                        .or_default();
                    for f in scan.projected_schema.fields() {
                        cols.insert(f.name().clone());
                    }
                    // Columns only filtered on (row filters pushed into the scan) are read too.
                    for f in &scan.filters {
                        for c in f.column_refs() {
                            cols.insert(c.name.clone());
                        }
                    }
                }
                LogicalPlan::Extension(ext) => {
                    if let Some(f) = ext.node.as_any().downcast_ref::<FederatedPlanNode>() {
                        walk(f.plan(), out);
                    }
                }
                _ => {}
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        });
    }
    let mut out = BTreeMap::new();
    walk(plan, &mut out);
    out
}

/// A planned query, ready to execute.
#[derive(Debug)]
pub struct PlannedQuery {
    /// The physical plan.
    pub plan: Arc<dyn ExecutionPlan>,
    /// The schema clients receive (view types replaced, see [`wire_schema`]).
    pub wire_schema: SchemaRef,
    /// The task context to execute it with.
    pub task_ctx: Arc<TaskContext>,
    /// The ports read and their columns, after policy rewriting and optimization.
    pub reads: BTreeMap<PortRef, BTreeSet<String>>,
}

/// What a prepared statement looks like before execution.
#[derive(Debug, Clone)]
pub struct Described {
    /// Result schema, as it will be streamed.
    pub dataset_schema: SchemaRef,
    /// One field per parameter, `$1`, `$2`, ... in order.
    pub parameter_schema: SchemaRef,
}

/// Plans and runs statements against one mesh catalog.
#[derive(Debug)]
pub struct QueryEngine {
    catalog: Arc<MeshCatalog>,
    usage: Arc<Usage>,
    metrics: Arc<Metrics>,
    policy: Arc<PolicySet>,
    template: SessionState,
    limits: SqlLimits,
    planners: Arc<Semaphore>,
    admission: admission::Admission,
}

/// The session settings every query runs with.
pub fn session_config(target_partitions: usize) -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_information_schema(false)
        .with_create_default_catalog_and_schema(false)
        // Unqualified names resolve here and fail with a hint to write domain.product.port.
        .with_default_catalog_and_schema("mesh", "catalog")
        .with_target_partitions(target_partitions.max(1));
    config.options_mut().sql_parser.parse_float_as_decimal = false;
    // DataFusion 55 infers some expressions (a guarded CASE) non-nullable in the logical plan
    // and nullable in the physical one, and refuses to plan an aggregate over them with an
    // internal error (apache/datafusion#23844, fixed after 55). The physical side is only
    // more permissive, so the check is skipped.
    config
        .options_mut()
        .execution
        .skip_physical_aggregate_schema_check = true;
    config
}

/// A session state with DataFusion's functions and federation, but without table functions
/// (`range`, `generate_series` produce unbounded rows), table factories or URL tables.
pub fn build_session_state(
    config: SessionConfig,
    runtime: Arc<RuntimeEnv>,
    catalog: &MeshCatalog,
) -> SessionState {
    let mut physical_rules =
        crate::query::filter_barrier::with_shields(PhysicalOptimizer::new().rules);
    physical_rules.push(Arc::new(CountSourceReads));
    let limits = &catalog.mesh.limits;
    physical_rules.push(Arc::new(recursion::BoundRecursion(
        recursion::RecursionLimits {
            max_depth: limits.max_recursion_depth.unwrap_or(1000),
            max_rows: limits.max_recursive_rows.unwrap_or(10_000_000),
        },
    )));
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        // Sub-plans that touch only one SQL source (or several with the same server and
        // credentials) are cut out and sent to it as one statement.
        .with_optimizer_rules(optimizer_rules())
        .with_query_planner(Arc::new(MeshQueryPlanner))
        .with_physical_optimizer_rules(physical_rules)
        .with_table_functions(HashMap::new())
        .with_table_factories(HashMap::new())
        .with_catalog_list(catalog.catalog_list())
        .build();
    if let Err(e) = growth::install(&mut state) {
        tracing::error!(error = %e, "cannot install the checked string functions");
    }
    state
}

/// DataFusion's logical rules with federation last. datafusion-federation's own list puts it
/// right after `scalar_subquery_to_join`, before filters and projections are pushed into the
/// scans: a lone port was then sent as `SELECT <every column>` with its filter left in the
/// gateway. Running it last sends each source the pruned, filtered sub-plan; federated nodes
/// are opaque to the rules of later passes.
///
/// `single_distinct_aggregation_to_group_by` is left out: the plans it makes for
/// `count(DISTINCT x)` unparse to SQL that references columns of a derived table by their
/// base-table names, which MySQL and PostgreSQL reject.
fn optimizer_rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut rules: Vec<_> = Optimizer::new()
        .rules
        .into_iter()
        .filter(|r| r.name() != "single_distinct_aggregation_to_group_by")
        .collect();
    rules.push(Arc::new(FederationOptimizerRule::new()));
    // After federation: `||` computed in the gateway checks what it builds; SQL sent to a
    // source keeps the operator.
    rules.push(Arc::new(growth::CheckedConcat));
    rules
}

fn sql_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// What an engine reports to: both outlive the engines a reload swaps in.
#[derive(Debug, Clone)]
pub struct EngineObservers {
    /// The usage store, served in `mesh.usage`.
    pub usage: Arc<Usage>,
    /// The gateway's metrics: source sub-queries report latency and errors there.
    pub metrics: Arc<Metrics>,
}

impl EngineObservers {
    /// Observers that keep everything in memory (tools and tests).
    pub fn in_memory() -> Self {
        Self {
            usage: Arc::new(Usage::in_memory()),
            metrics: Arc::new(Metrics::default()),
        }
    }
}

impl QueryEngine {
    /// An engine over `catalog`, reporting to `observers`.
    pub fn new(
        catalog: Arc<MeshCatalog>,
        runtime: Arc<RuntimeEnv>,
        target_partitions: usize,
        limits: SqlLimits,
        observers: EngineObservers,
    ) -> Self {
        let template = build_session_state(session_config(target_partitions), runtime, &catalog);
        let policy = Arc::new(PolicySet::new(Arc::clone(&catalog.mesh)));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let admission = admission::Admission::new(admission::AdmissionLimits::resolve(
            &catalog.mesh.limits,
            cores,
        ));
        Self {
            admission,
            usage: observers.usage,
            metrics: observers.metrics,
            policy,
            catalog,
            template,
            limits,
            planners: Arc::new(Semaphore::new(16)),
        }
    }

    /// Admission control of the queries this engine runs.
    pub fn admission(&self) -> &admission::Admission {
        &self.admission
    }

    /// The catalog served.
    pub fn catalog(&self) -> &Arc<MeshCatalog> {
        &self.catalog
    }

    /// The usage store served in `mesh.usage`.
    pub fn usage(&self) -> &Arc<Usage> {
        &self.usage
    }

    /// The policies in force.
    pub fn policy(&self) -> &Arc<PolicySet> {
        &self.policy
    }

    /// What `principal` may see: every listing reads this.
    pub fn view(&self, principal: &Arc<Principal>) -> CatalogView {
        CatalogView::new(
            Arc::clone(&self.catalog),
            Arc::clone(&self.policy),
            Arc::clone(principal),
        )
    }

    /// A session for one request of `principal`: it sees only what it may read, through
    /// its policies.
    pub fn session_for(&self, principal: &Arc<Principal>) -> SessionState {
        let list = PrincipalCatalogList::new(
            self.view(principal),
            Arc::clone(&self.usage),
            self.template.clone(),
        );
        SessionStateBuilder::new_from_existing(self.template.clone())
            .with_catalog_list(Arc::new(list))
            .build()
    }

    /// The limits in force.
    pub fn limits(&self) -> &SqlLimits {
        &self.limits
    }

    /// A fresh session state for one request.
    pub fn session(&self) -> SessionState {
        self.template.clone()
    }

    /// Runs `f` on a thread with a large stack, so that deep plans cannot overflow the
    /// stack of a runtime worker; the budgets keep the work itself bounded.
    async fn on_planner<T, F>(&self, f: F) -> Result<T, GatewayError>
    where
        T: Send + 'static,
        F: FnOnce(tokio::runtime::Handle) -> Result<T, GatewayError> + Send + 'static,
    {
        let _permit = self
            .planners
            .acquire()
            .await
            .map_err(|_| GatewayError::Unavailable("shutting down".into()))?;
        let handle = tokio::runtime::Handle::current();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("meshgate-plan".into())
            .stack_size(self.limits.planning_stack_bytes)
            .spawn(move || {
                let _ = tx.send(f(handle));
            })
            .map_err(|e| {
                GatewayError::ResourceExhausted(format!("cannot start a planning thread: {e}"))
            })?;
        rx.await
            .map_err(|_| GatewayError::internal("a planning thread ended without an answer"))?
    }

    /// Parses, checks and plans `sql` to a logical plan (parameters unbound).
    async fn logical_plan(
        &self,
        sql: &str,
        principal: &Arc<Principal>,
    ) -> Result<(SessionState, LogicalPlan), GatewayError> {
        self.limits.check_text(sql)?;
        let sql = sql.to_string();
        let limits = self.limits.clone();
        let state = self.session_for(principal);
        let view = self.view(principal);
        let principal = Arc::clone(principal);
        self.on_planner(move |handle| {
            let statement = parse_one(&sql, &limits)?;
            if is_explain(&statement) && !principal.admin {
                return Err(GatewayError::PermissionDenied(
                    "EXPLAIN is reserved to the admin groups (auth.admin_groups): plans show \
                     policy predicates and masks"
                        .into(),
                ));
            }
            check_tables(&state, &view, &statement, &handle)?;
            let plan = handle.block_on(state.statement_to_plan(statement))?;
            sql_options().verify_plan(&plan).map_err(|e| {
                GatewayError::Rejected(format!(
                    "{e}; meshgate serves read-only queries (SELECT, WITH, VALUES, EXPLAIN)"
                ))
            })?;
            Ok((state, plan))
        })
        .await
    }

    /// Describes a statement for CreatePreparedStatement.
    pub async fn describe(
        &self,
        sql: &str,
        principal: &Arc<Principal>,
    ) -> Result<Described, GatewayError> {
        let (state, plan) = self.logical_plan(sql, principal).await?;
        let mut params: Vec<(String, Option<DataType>)> =
            plan.get_parameter_types()?.into_iter().collect();
        // The result schema is that of the plan after type coercion, as in `plan`.
        let plan = state
            .analyzer()
            .execute_and_check(plan.clone(), state.config_options(), |_, _| {})
            .unwrap_or(plan);
        params.sort_by_key(|(name, _)| {
            name.trim_start_matches('$')
                .parse::<usize>()
                .unwrap_or(usize::MAX)
        });
        let parameter_schema = Arc::new(Schema::new(
            params
                .into_iter()
                .map(|(name, t)| Field::new(name, t.unwrap_or(DataType::Null), true))
                .collect::<Vec<_>>(),
        ));
        Ok(Described {
            dataset_schema: wire_schema(plan.schema().as_arrow()),
            parameter_schema,
        })
    }

    /// Plans `sql` with `params` bound (positional) down to a physical plan.
    pub async fn plan(
        &self,
        sql: &str,
        params: Vec<ScalarValue>,
        principal: &Arc<Principal>,
    ) -> Result<PlannedQuery, GatewayError> {
        // Planning is a `plan` span below the caller's (the query's) span; source
        // sub-queries become children of the query's span when they run.
        let query_span = tracing::Span::current();
        let plan_span = tracing::info_span!("plan");
        let (mut state, plan) = {
            use tracing::Instrument as _;
            self.logical_plan(sql, principal)
                .instrument(plan_span.clone())
                .await?
        };
        state.config_mut().set_extension(Arc::new(QueryObservers {
            metrics: Some(Arc::clone(&self.metrics)),
            span: query_span,
        }));
        // Connectors that forward the caller (a `flightsql` source asserting it to another
        // gateway) read it from the task context they execute with.
        meshgate_connector::identity::set_caller(
            state.config_mut(),
            meshgate_connector::identity::Caller {
                name: principal.name.clone(),
                groups: principal.groups.iter().cloned().collect(),
            },
        );
        self.on_planner(move |handle| {
            let _entered = plan_span.enter();
            let plan = bind_params(plan, params)?;
            check_amplifying_functions(&plan)?;
            let optimized = state.optimize(&plan)?;
            // The result schema after type coercion: before it, a UNION has its first
            // branch's types (an integer column where the union is a float).
            let wire = wire_schema(optimized.schema().as_arrow());
            let reads = port_reads(&optimized);
            let physical = handle.block_on(
                state
                    .query_planner()
                    .create_physical_plan(&optimized, &state),
            )?;
            Ok(PlannedQuery {
                plan: physical,
                wire_schema: wire,
                task_ctx: state.task_ctx(),
                reads,
            })
        })
        .await
    }
}

/// Executes a planned query; batches are converted to the wire schema.
pub fn execute(planned: PlannedQuery) -> Result<SendableRecordBatchStream, GatewayError> {
    let wire = Arc::clone(&planned.wire_schema);
    let stream = execute_stream(planned.plan, planned.task_ctx)?;
    let schema = Arc::clone(&wire);
    let converted = stream.map(move |b| {
        let b = b?;
        to_wire(&b, &schema).map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
    });
    Ok(Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(wire, converted),
    ))
}

fn parse_one(sql: &str, limits: &SqlLimits) -> Result<DFStatement, GatewayError> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| GatewayError::InvalidSql(format!("SQL error: {e}")))?;
    if tokens.len() > limits.max_tokens {
        return Err(GatewayError::TooComplex(format!(
            "the statement has {} tokens; the limit is {}",
            tokens.len(),
            limits.max_tokens
        )));
    }
    let mut parser = DFParserBuilder::new(tokens)
        .with_dialect(&dialect)
        .with_recursion_limit(limits.parser_recursion_limit)
        .build()?;
    let mut statements = parser.parse_statements().map_err(|e| match e {
        datafusion::error::DataFusionError::SQL(inner, _) => {
            GatewayError::InvalidSql(format!("SQL error: {inner}"))
        }
        other => GatewayError::from(other),
    })?;
    if statements.len() != 1 {
        return Err(GatewayError::Rejected(format!(
            "send exactly one statement per request (got {})",
            statements.len()
        )));
    }
    let mut statement = statements
        .pop_front()
        .ok_or_else(|| GatewayError::InvalidSql("empty statement".into()))?;
    let inner: &mut Statement = match &mut statement {
        DFStatement::Statement(s) => s.as_mut(),
        DFStatement::Explain(e) => match e.statement.as_mut() {
            DFStatement::Statement(s) => s.as_mut(),
            other => return Err(rejected(other)),
        },
        other => return Err(rejected(other)),
    };
    let allowed = match inner {
        Statement::Query(_) => true,
        Statement::Explain { statement, .. } => matches!(statement.as_ref(), Statement::Query(_)),
        _ => false,
    };
    if !allowed {
        return Err(GatewayError::Rejected(format!(
            "`{}` statements are not allowed: meshgate serves read-only queries (SELECT, WITH, VALUES, EXPLAIN)",
            statement_kind(inner)
        )));
    }
    limits.check_statement(inner)?;
    number_question_marks(inner);
    Ok(statement)
}

fn is_explain(s: &DFStatement) -> bool {
    match s {
        DFStatement::Explain(_) => true,
        DFStatement::Statement(inner) => matches!(inner.as_ref(), Statement::Explain { .. }),
        _ => false,
    }
}

fn rejected(s: &DFStatement) -> GatewayError {
    let kind = match s {
        DFStatement::CreateExternalTable(_) => "CREATE EXTERNAL TABLE",
        DFStatement::CopyTo(_) => "COPY",
        DFStatement::Reset(_) => "RESET",
        DFStatement::Explain(_) => "EXPLAIN",
        DFStatement::Statement(_) => "this",
    };
    GatewayError::Rejected(format!(
        "`{kind}` statements are not allowed: meshgate serves read-only queries (SELECT, WITH, VALUES, EXPLAIN)"
    ))
}

fn statement_kind(s: &Statement) -> String {
    let text = s.to_string();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

/// Turns `?` placeholders into `$1, $2, ...` in text order, so both styles work.
fn number_question_marks(stmt: &mut Statement) {
    let mut n = 0;
    let _ = visit_expressions_mut(stmt, |e| {
        if let SqlExpr::Value(v) = e {
            if let Value::Placeholder(p) = &mut v.value {
                if p == "?" {
                    n += 1;
                    *p = format!("${n}");
                }
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// Fails with `NotFound` naming the closest ports when a statement reads a table that is
/// not served.
fn check_tables(
    state: &SessionState,
    view: &CatalogView,
    stmt: &DFStatement,
    handle: &tokio::runtime::Handle,
) -> Result<(), GatewayError> {
    let catalog = view.catalog();
    for r in state.resolve_table_references(stmt)? {
        let key = PortRef::from_table_reference(&r);
        if crate::catalog::system::is_system_table(&key) {
            continue;
        }
        view.check_port(&key)?;
        if let Some(problems) = catalog.degraded(&key) {
            let owner = catalog
                .mesh
                .domains
                .get(key.domain.as_str())
                .and_then(|d| d.products.get(key.product.as_str()))
                .map(|p| p.owner.contact())
                .unwrap_or_default();
            return Err(GatewayError::ContractViolation(format!(
                "port {key} is degraded: its source no longer matches the contract ({}); \
                 its owner, {owner}, must fix the source or the contract",
                problems.join("; ")
            )));
        }
        // A port whose source was down is tried again here, so it serves once it is back.
        match handle.block_on(catalog.ensure_port(&key)) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(GatewayError::ContractViolation(m)) => {
                return Err(GatewayError::ContractViolation(m));
            }
            Err(e) => {
                return Err(GatewayError::Unavailable(format!(
                    "port {key} is not available: {e}"
                )))
            }
        }
        return Err(GatewayError::NotFound(unknown_table_message(
            &r,
            &view.readable_port_names(),
        )));
    }
    Ok(())
}

/// "table x does not exist; did you mean ...".
pub fn unknown_table_message(r: &TableReference, ports: &[String]) -> String {
    let written = r.to_string();
    let table = r.table();
    let mut scored: Vec<(f64, &String)> = ports
        .iter()
        .map(|p| {
            let last = p.rsplit('.').next().unwrap_or(p);
            let s = strsim::jaro_winkler(&written, p).max(strsim::jaro_winkler(table, last));
            (s, p)
        })
        .filter(|(s, _)| *s > 0.75)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut msg = format!("table `{written}` does not exist");
    if !scored.is_empty() {
        let names: Vec<&str> = scored.iter().take(3).map(|(_, p)| p.as_str()).collect();
        msg.push_str(&format!("; did you mean {}?", names.join(", ")));
    }
    msg.push_str(" Ports are named domain.product.port");
    if r.schema().is_none() {
        msg.push_str(" (write all three parts)");
    }
    msg
}

fn bind_params(plan: LogicalPlan, params: Vec<ScalarValue>) -> Result<LogicalPlan, GatewayError> {
    let expected = plan.get_parameter_types()?;
    if expected.is_empty() && params.is_empty() {
        return Ok(plan);
    }
    if expected.len() != params.len() {
        return Err(GatewayError::BadRequest(format!(
            "the statement has {} parameter(s) but {} value(s) were bound",
            expected.len(),
            params.len()
        )));
    }
    let mut values = Vec::with_capacity(params.len());
    for (i, v) in params.into_iter().enumerate() {
        let name = format!("${}", i + 1);
        let v = match expected.get(&name) {
            Some(Some(t)) if &v.data_type() != t && !v.is_null() => v.cast_to(t).map_err(|e| {
                GatewayError::BadRequest(format!(
                    "parameter {name}: cannot use a {} value as {t}: {e}",
                    v.data_type()
                ))
            })?,
            Some(Some(t)) if v.is_null() => ScalarValue::try_from(t).unwrap_or(v),
            _ => v,
        };
        values.push(v);
    }
    Ok(plan.with_param_values(ParamValues::from(values))?)
}

/// Extracts one row of positional parameter values from a DoPut batch. Columns may be named
/// anything (`"0"`, `$1`, `param_0`); dense unions (flightsql-dbapi) are unwrapped.
pub fn params_from_batch(batch: &RecordBatch) -> Result<Vec<ScalarValue>, GatewayError> {
    if batch.num_rows() != 1 {
        return Err(GatewayError::BadRequest(format!(
            "bind exactly one row of parameters per execution (got {} rows)",
            batch.num_rows()
        )));
    }
    batch
        .columns()
        .iter()
        .map(|c| {
            let v = ScalarValue::try_from_array(c.as_ref(), 0)?;
            Ok(match v {
                ScalarValue::Union(Some((_, inner)), _, _) => *inner,
                ScalarValue::Union(None, _, _) => ScalarValue::Null,
                other => other,
            })
        })
        .collect()
}

/// The type a client receives for an internal type: view types become their plain forms,
/// dictionaries are unpacked.
pub fn wire_type(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::Dictionary(_, v) => wire_type(v),
        DataType::List(f) => DataType::List(wire_field(f)),
        DataType::LargeList(f) => DataType::LargeList(wire_field(f)),
        DataType::ListView(f) => DataType::List(wire_field(f)),
        DataType::LargeListView(f) => DataType::LargeList(wire_field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(wire_field(f), *n),
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(wire_field).collect::<Fields>())
        }
        DataType::Map(f, sorted) => DataType::Map(wire_field(f), *sorted),
        other => other.clone(),
    }
}

fn wire_field(f: &FieldRef) -> FieldRef {
    Arc::new(f.as_ref().clone().with_data_type(wire_type(f.data_type())))
}

/// The schema clients receive for a plan schema: same names, nullability and metadata,
/// wire types.
pub fn wire_schema(s: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        s.fields().iter().map(wire_field).collect::<Fields>(),
    ))
}

/// Converts a batch to the wire schema.
pub fn to_wire(b: &RecordBatch, wire: &SchemaRef) -> Result<RecordBatch, GatewayError> {
    let cols: Vec<ArrayRef> = b
        .columns()
        .iter()
        .zip(wire.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(Arc::clone(c))
            } else {
                cast(c, f.data_type())
            }
        })
        .collect::<Result<_, _>>()?;
    let opts = RecordBatchOptions::new().with_row_count(Some(b.num_rows()));
    RecordBatch::try_new_with_options(Arc::clone(wire), cols, &opts).map_err(GatewayError::internal)
}
