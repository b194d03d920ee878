//! What a dialect can run: a sub-plan that datafusion-federation cut out for a source is
//! split again where a node uses something the source does not have (a function missing in
//! SQLite, integer division that means something else in MySQL, ...). Supported sub-trees
//! still go to the source; the nodes above them run in the gateway. Pushing less is slower;
//! pushing what the source does not understand, or understands differently, is wrong.

use std::any::Any;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema};
use datafusion::error::Result;
use datafusion::logical_expr::expr::{AggregateFunction, ScalarFunction, WindowFunction};
use datafusion::logical_expr::{
    BinaryExpr, Expr, ExprSchemable, Extension, LogicalPlan, Operator, WindowFunctionDefinition,
};
use datafusion_federation::sql::{SQLExecutor, SQLFederationPlanner, SQLTableSource};
use datafusion_federation::{get_table_source, FederatedPlanNode};

/// What a source's SQL dialect runs with DataFusion's meaning.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// Scalar functions (DataFusion names) the unparser writes in a form the source runs.
    pub scalar_functions: &'static [&'static str],
    /// Aggregate functions.
    pub aggregate_functions: &'static [&'static str],
    /// `int / int` truncates as in DataFusion.
    pub integer_division_truncates: bool,
    /// `a || b` concatenates strings.
    pub concat_operator: bool,
    /// `ILIKE`.
    pub ilike: bool,
}

const AGGREGATES: &[&str] = &["count", "sum", "min", "max", "avg"];

/// A DataFusion-based Flight SQL server (another meshgate, ROAPI, Spice, ...): the functions
/// the unparser writes mean the same there.
pub const DATAFUSION: Capabilities = Capabilities {
    scalar_functions: POSTGRES.scalar_functions,
    aggregate_functions: AGGREGATES,
    integer_division_truncates: true,
    concat_operator: true,
    ilike: true,
};

/// A SQL server of unknown dialect: only what every SQL database agrees on.
pub const GENERIC: Capabilities = Capabilities {
    scalar_functions: &["abs", "coalesce", "nullif", "lower", "upper"],
    aggregate_functions: AGGREGATES,
    integer_division_truncates: false,
    concat_operator: false,
    ilike: false,
};

/// PostgreSQL.
pub const POSTGRES: Capabilities = Capabilities {
    scalar_functions: &[
        "abs",
        "ceil",
        "floor",
        "round",
        "trunc",
        "sqrt",
        "power",
        "ln",
        "exp",
        "coalesce",
        "nullif",
        "lower",
        "upper",
        "substr",
        "btrim",
        "ltrim",
        "rtrim",
        "concat",
        "replace",
        "lpad",
        "rpad",
        "strpos",
        "character_length",
        "date_part",
        "date_trunc",
        "md5",
        "starts_with",
    ],
    aggregate_functions: AGGREGATES,
    integer_division_truncates: true,
    concat_operator: true,
    ilike: true,
};

/// MySQL and MariaDB.
pub const MYSQL: Capabilities = Capabilities {
    scalar_functions: &[
        "abs",
        "ceil",
        "floor",
        "sqrt",
        "power",
        "ln",
        "exp",
        "coalesce",
        "nullif",
        "lower",
        "upper",
        "substr",
        "ltrim",
        "rtrim",
        "concat",
        "replace",
        "lpad",
        "rpad",
        "date_part",
    ],
    aggregate_functions: AGGREGATES,
    integer_division_truncates: false,
    concat_operator: false,
    ilike: false,
};

/// SQLite.
pub const SQLITE: Capabilities = Capabilities {
    scalar_functions: &[
        "abs", "coalesce", "nullif", "lower", "upper", "substr", "ltrim", "rtrim", "replace",
    ],
    aggregate_functions: AGGREGATES,
    integer_division_truncates: true,
    concat_operator: true,
    ilike: false,
};

fn expr_supported(e: &Expr, schema: &DFSchema, caps: &Capabilities) -> bool {
    let mut ok = true;
    let _ = e.apply(|n| {
        let here = match n {
            Expr::Column(_)
            | Expr::Literal(..)
            | Expr::Alias(_)
            | Expr::Not(_)
            | Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::IsTrue(_)
            | Expr::IsFalse(_)
            | Expr::IsNotTrue(_)
            | Expr::IsNotFalse(_)
            | Expr::Negative(_)
            | Expr::Between(_)
            | Expr::Case(_)
            | Expr::Cast(_)
            | Expr::InList(_)
            | Expr::OuterReferenceColumn(..) => true,
            Expr::Like(l) => !l.case_insensitive || caps.ilike,
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::StringConcat => caps.concat_operator,
                Operator::Divide | Operator::Modulo if !caps.integer_division_truncates => {
                    let int = |x: &Expr| x.get_type(schema).map(|t| t.is_integer()).unwrap_or(true);
                    !int(left) && !int(right)
                }
                Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq
                | Operator::And
                | Operator::Or
                | Operator::Plus
                | Operator::Minus
                | Operator::Multiply
                | Operator::Divide
                | Operator::Modulo => true,
                _ => false,
            },
            Expr::ScalarFunction(ScalarFunction { func, .. }) => {
                caps.scalar_functions.contains(&func.name())
            }
            Expr::AggregateFunction(AggregateFunction { func, params }) => {
                caps.aggregate_functions.contains(&func.name())
                    && params.filter.is_none()
                    && params.order_by.is_empty()
            }
            Expr::WindowFunction(w) => {
                let WindowFunction { fun, .. } = w.as_ref();
                match fun {
                    WindowFunctionDefinition::AggregateUDF(f) => {
                        caps.aggregate_functions.contains(&f.name())
                    }
                    WindowFunctionDefinition::WindowUDF(f) => {
                        ["row_number", "rank", "dense_rank"].contains(&f.name())
                    }
                }
            }
            Expr::Exists(s) => plan_supported(&s.subquery.subquery, caps),
            Expr::InSubquery(s) => plan_supported(&s.subquery.subquery, caps),
            Expr::ScalarSubquery(s) => plan_supported(&s.subquery, caps),
            _ => false,
        };
        if here {
            Ok(TreeNodeRecursion::Continue)
        } else {
            ok = false;
            Ok(TreeNodeRecursion::Stop)
        }
    });
    ok
}

/// Whether this node alone (its expressions, not its inputs) can run on the source.
fn node_supported(plan: &LogicalPlan, caps: &Capabilities) -> bool {
    let kind_ok = matches!(
        plan,
        LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Aggregate(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::Join(_)
            | LogicalPlan::TableScan(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Distinct(_)
            | LogicalPlan::Union(_)
            | LogicalPlan::Window(_)
            | LogicalPlan::EmptyRelation(_)
    );
    if !kind_ok {
        return false;
    }
    // DataFusion 55's unparser writes a join input that is a projection of a scan as a
    // derived table (`... AS derived_projection`) but keeps naming its columns by the base
    // table in the join condition and select list, which databases reject (TPC-H q02):
    // such joins run here, their inputs are still pushed.
    if let LogicalPlan::Join(j) = plan {
        fn scan_like(p: &LogicalPlan) -> bool {
            match p {
                LogicalPlan::TableScan(_) => true,
                LogicalPlan::Filter(f) => scan_like(&f.input),
                _ => false,
            }
        }
        let projected_scan =
            |p: &LogicalPlan| matches!(p, LogicalPlan::Projection(pr) if scan_like(&pr.input));
        if projected_scan(&j.left) || projected_scan(&j.right) {
            return false;
        }
    }
    // Expressions are typed against the inputs' columns (for a scan, its own).
    let mut schema = DFSchema::empty();
    for input in plan.inputs() {
        schema.merge(input.schema());
    }
    if plan.inputs().is_empty() {
        schema = plan.schema().as_ref().clone();
    }
    plan.expressions()
        .iter()
        .all(|e| expr_supported(e, &schema, caps))
}

/// Whether the whole sub-tree can run on the source.
pub fn plan_supported(plan: &LogicalPlan, caps: &Capabilities) -> bool {
    let mut ok = true;
    let _ = plan.apply(|p| {
        if node_supported(p, caps) {
            Ok(TreeNodeRecursion::Continue)
        } else {
            ok = false;
            Ok(TreeNodeRecursion::Stop)
        }
    });
    ok
}

/// Splits a federated sub-plan so that only sub-trees `caps` supports are federated.
pub fn split_federated(
    plan: LogicalPlan,
    caps: &Capabilities,
    executor: &Arc<dyn SQLExecutor>,
) -> Result<LogicalPlan> {
    let LogicalPlan::Extension(Extension { node }) = &plan else {
        return Ok(plan);
    };
    let Some(fed) = node.as_any().downcast_ref::<FederatedPlanNode>() else {
        return Ok(plan);
    };
    let inner = requalify_scan_filters(fed.plan().clone())?;
    federate_supported(inner, caps, executor)
}

/// Filters pushed into a federated scan name its columns by the port (`t.types.my.x`);
/// datafusion-federation renames the scan to the remote table but not those columns, so the
/// SQL would say `my.x` where the source has `meshgate_types.x`. Name them by the remote
/// table here.
fn requalify_scan_filters(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up(|node| {
        // Under an alias (`FROM nation AS n`) the SQL must name the alias, not the table.
        // So must a filter between the alias and the scan (the unparser writes it into the
        // same SELECT); federation would name the remote table there.
        if let LogicalPlan::SubqueryAlias(a) = &node {
            let alias = a.alias.clone();
            let input = match a.input.as_ref() {
                LogicalPlan::TableScan(scan) if !scan.filters.is_empty() => {
                    let mut scan = scan.clone();
                    scan.filters = requalify(scan.filters, &alias)?;
                    LogicalPlan::TableScan(scan)
                }
                LogicalPlan::Filter(f) if matches!(f.input.as_ref(), LogicalPlan::TableScan(_)) => {
                    let LogicalPlan::TableScan(scan) = f.input.as_ref() else {
                        return Ok(Transformed::no(node));
                    };
                    let mut scan = scan.clone();
                    scan.filters = requalify(scan.filters, &alias)?;
                    let predicate = requalify(vec![f.predicate.clone()], &alias)?
                        .pop()
                        .unwrap_or_else(|| f.predicate.clone());
                    LogicalPlan::Filter(datafusion::logical_expr::Filter::try_new(
                        predicate,
                        Arc::new(LogicalPlan::TableScan(scan)),
                    )?)
                }
                _ => return Ok(Transformed::no(node)),
            };
            let aliased = datafusion::logical_expr::SubqueryAlias::try_new(Arc::new(input), alias)?;
            return Ok(Transformed::yes(LogicalPlan::SubqueryAlias(aliased)));
        }
        let LogicalPlan::TableScan(scan) = &node else {
            return Ok(Transformed::no(node));
        };
        if scan.filters.is_empty() {
            return Ok(Transformed::no(node));
        }
        let Some(source) = get_table_source(&scan.source)? else {
            return Ok(Transformed::no(node));
        };
        let Some(remote) = (source.as_ref() as &dyn Any)
            .downcast_ref::<SQLTableSource>()
            .map(SQLTableSource::table_reference)
        else {
            return Ok(Transformed::no(node));
        };
        let mut scan = scan.clone();
        scan.filters = requalify(scan.filters, &remote)?;
        Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
    })
    .map(|t| t.data)
}

/// Qualifies every column of a scan's filters (they are all the scan's own) by `to`.
fn requalify(filters: Vec<Expr>, to: &datafusion::common::TableReference) -> Result<Vec<Expr>> {
    filters
        .into_iter()
        .map(|f| {
            f.transform(|e| {
                Ok(match e {
                    Expr::Column(c) if c.relation.is_some() && c.relation.as_ref() != Some(to) => {
                        Transformed::yes(Expr::Column(Column::new(Some(to.clone()), c.name)))
                    }
                    other => Transformed::no(other),
                })
            })
            .map(|t| t.data)
        })
        .collect()
}

fn federate_supported(
    plan: LogicalPlan,
    caps: &Capabilities,
    executor: &Arc<dyn SQLExecutor>,
) -> Result<LogicalPlan> {
    if plan_supported(&plan, caps) {
        let planner = Arc::new(SQLFederationPlanner::new(Arc::clone(executor)));
        return Ok(LogicalPlan::Extension(Extension {
            node: Arc::new(FederatedPlanNode::new(plan, planner)),
        }));
    }
    let inputs = plan
        .inputs()
        .into_iter()
        .map(|c| federate_supported(c.clone(), caps, executor))
        .collect::<Result<Vec<_>>>()?;
    plan.with_new_exprs(plan.expressions(), inputs)
}
