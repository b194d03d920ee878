//! Budgets checked before planning, so that hostile SQL is refused cheaply (HARDENING.md).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Query, SetExpr, Statement, Visit, Visitor};

use crate::error::GatewayError;

/// Limits on one SQL statement.
#[derive(Debug, Clone)]
pub struct SqlLimits {
    /// Largest SQL text accepted, in bytes.
    pub max_sql_bytes: usize,
    /// Most tokens in the text.
    pub max_tokens: usize,
    /// Most expression nodes in the statement.
    pub max_expr_nodes: usize,
    /// Deepest nesting of expressions (a chain `a OR b OR c ...` nests one level per term).
    pub max_expr_depth: usize,
    /// Most set-operation branches (`UNION`, `INTERSECT`, `EXCEPT`).
    pub max_set_operations: usize,
    /// Most table references (a join's planning time grows steeply with their number).
    pub max_relations: usize,
    /// Parser recursion limit (nested parentheses and subqueries).
    pub parser_recursion_limit: usize,
    /// Stack size of planning threads, in bytes.
    pub planning_stack_bytes: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self {
            max_sql_bytes: 1 << 20,
            max_tokens: 200_000,
            max_expr_nodes: 20_000,
            max_expr_depth: 400,
            max_set_operations: 256,
            max_relations: 128,
            parser_recursion_limit: 64,
            planning_stack_bytes: 256 << 20,
        }
    }
}

/// Counts expressions, their depth and set operations of a parsed statement.
#[derive(Debug, Default)]
pub struct AstBudget {
    nodes: usize,
    depth: usize,
    max_depth: usize,
    set_ops: usize,
    relations: usize,
}

fn count_set_ops(body: &SetExpr) -> usize {
    // Set operations form a left-deep tree; walk it without recursion on the left side.
    let mut n = 0;
    let mut cur = body;
    while let SetExpr::SetOperation { left, right, .. } = cur {
        n += 1 + count_set_ops(right);
        cur = left;
    }
    n
}

impl Visitor for AstBudget {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.set_ops += count_set_ops(&query.body);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.nodes += 1;
        self.depth += 1;
        self.max_depth = self.max_depth.max(self.depth);
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(
        &mut self,
        _relation: &datafusion::sql::sqlparser::ast::ObjectName,
    ) -> ControlFlow<()> {
        self.relations += 1;
        ControlFlow::Continue(())
    }
}

impl SqlLimits {
    /// Checks the text size (before anything else is done with it).
    pub fn check_text(&self, sql: &str) -> Result<(), GatewayError> {
        if sql.len() > self.max_sql_bytes {
            return Err(GatewayError::TooComplex(format!(
                "the SQL text is {} bytes; the limit is {} bytes",
                sql.len(),
                self.max_sql_bytes
            )));
        }
        if sql.trim().is_empty() {
            return Err(GatewayError::InvalidSql("the SQL text is empty".into()));
        }
        Ok(())
    }

    /// Checks a parsed statement against the expression and set-operation budgets. Runs on
    /// a planning thread (the walk recurses).
    pub fn check_statement(&self, stmt: &Statement) -> Result<(), GatewayError> {
        let mut b = AstBudget::default();
        let _ = stmt.visit(&mut b);
        if b.nodes > self.max_expr_nodes {
            return Err(GatewayError::TooComplex(format!(
                "the statement has {} expressions; the limit is {}",
                b.nodes, self.max_expr_nodes
            )));
        }
        if b.max_depth > self.max_expr_depth {
            return Err(GatewayError::TooComplex(format!(
                "expressions nest {} levels deep (long AND/OR/+ chains count one level per term); the limit is {}",
                b.max_depth, self.max_expr_depth
            )));
        }
        if b.relations > self.max_relations {
            return Err(GatewayError::TooComplex(format!(
                "the statement references {} tables; the limit is {} (planning time grows \
                 steeply with the number of joined tables)",
                b.relations, self.max_relations
            )));
        }
        if b.set_ops > self.max_set_operations {
            return Err(GatewayError::TooComplex(format!(
                "the statement has {} UNION/INTERSECT/EXCEPT branches; the limit is {}",
                b.set_ops, self.max_set_operations
            )));
        }
        Ok(())
    }
}

/// Largest value one call of a size-amplifying function may produce, in bytes.
pub const MAX_AMPLIFIED_VALUE_BYTES: i64 = 16 << 20;
/// Most elements one call of a list-producing function may produce.
pub const MAX_GENERATED_ELEMENTS: i64 = 1_000_000;
/// Size assumed for a value that is not a constant (a column, an expression).
const ASSUMED_VALUE_BYTES: i64 = 1024;

mod amplifiers {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::{Cast, Expr, LogicalPlan, TryCast};

    use super::{ASSUMED_VALUE_BYTES, MAX_AMPLIFIED_VALUE_BYTES, MAX_GENERATED_ELEMENTS};
    use crate::error::GatewayError;

    fn lit_i64(e: &Expr) -> Option<i64> {
        match e {
            Expr::Literal(v, _) => match v
                .cast_to(&datafusion::arrow::datatypes::DataType::Int64)
                .ok()?
            {
                ScalarValue::Int64(n) => n,
                _ => None,
            },
            Expr::Cast(Cast { expr, .. }) | Expr::TryCast(TryCast { expr, .. }) => lit_i64(expr),
            _ => None,
        }
    }

    /// An upper estimate of the bytes of one value of `e`.
    fn size(e: &Expr) -> i64 {
        match e {
            Expr::Literal(
                ScalarValue::Utf8(Some(s))
                | ScalarValue::Utf8View(Some(s))
                | ScalarValue::LargeUtf8(Some(s)),
                _,
            ) => s.len() as i64,
            Expr::Cast(Cast { expr, .. }) | Expr::TryCast(TryCast { expr, .. }) => size(expr),
            Expr::ScalarFunction(f) => match (f.name(), f.args.as_slice()) {
                ("repeat", [s, n]) => size(s).saturating_mul(lit_i64(n).unwrap_or(i64::MAX).max(0)),
                ("lpad" | "rpad", [_, n, ..]) => {
                    lit_i64(n).unwrap_or(i64::MAX).max(0).saturating_mul(4)
                }
                ("concat", args) => args.iter().map(size).fold(0i64, i64::saturating_add),
                _ => ASSUMED_VALUE_BYTES,
            },
            Expr::BinaryExpr(b) if b.op == datafusion::logical_expr::Operator::StringConcat => {
                size(&b.left).saturating_add(size(&b.right))
            }
            _ => ASSUMED_VALUE_BYTES,
        }
    }

    fn check(e: &Expr) -> Result<(), GatewayError> {
        let Expr::ScalarFunction(f) = e else {
            return Ok(());
        };
        let name = f.name();
        match (name, f.args.as_slice()) {
            ("repeat" | "lpad" | "rpad", [_, n, ..]) => {
                if lit_i64(n).is_none() {
                    return Err(GatewayError::TooComplex(format!(
                        "the length argument of {name}() must be a constant"
                    )));
                }
                let bytes = size(e);
                if bytes > MAX_AMPLIFIED_VALUE_BYTES {
                    return Err(GatewayError::TooComplex(format!(
                        "{name}() would build values of up to {bytes} bytes; the limit is {MAX_AMPLIFIED_VALUE_BYTES} bytes per value"
                    )));
                }
            }
            ("array_repeat" | "array_resize", [_, n, ..]) => match lit_i64(n) {
                Some(n) if n <= MAX_GENERATED_ELEMENTS => {}
                _ => {
                    return Err(GatewayError::TooComplex(format!(
                        "the count argument of {name}() must be a constant of at most {MAX_GENERATED_ELEMENTS}"
                    )))
                }
            },
            ("range" | "generate_series", args) => {
                let ints: Option<Vec<i64>> = args.iter().map(lit_i64).collect();
                let count = match ints.as_deref() {
                    Some([stop]) => Some(*stop),
                    Some([start, stop]) => Some(stop.saturating_sub(*start)),
                    Some([start, stop, step]) if *step != 0 => Some(stop.saturating_sub(*start) / step),
                    _ => None,
                };
                match count {
                    Some(c) if c <= MAX_GENERATED_ELEMENTS => {}
                    _ => {
                        return Err(GatewayError::TooComplex(format!(
                            "{name}() needs constant integer bounds producing at most {MAX_GENERATED_ELEMENTS} elements"
                        )))
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Refuses calls that would allocate huge values outside the memory pool (constant
    /// folding and per-row evaluation are not accounted): `repeat`, `lpad`, `rpad`,
    /// `array_repeat`, `array_resize`, `range`, `generate_series`.
    pub fn check_plan(plan: &LogicalPlan) -> Result<(), GatewayError> {
        let mut found = None;
        let _ = plan.apply_with_subqueries(|p| {
            p.apply_expressions(|e| {
                e.apply(|e| match check(e) {
                    Ok(()) => Ok(TreeNodeRecursion::Continue),
                    Err(err) => {
                        found = Some(err);
                        Ok(TreeNodeRecursion::Stop)
                    }
                })
            })
        });
        found.map_or(Ok(()), Err)
    }
}

pub use amplifiers::check_plan as check_amplifying_functions;
