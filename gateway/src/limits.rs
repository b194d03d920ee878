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
        if b.set_ops > self.max_set_operations {
            return Err(GatewayError::TooComplex(format!(
                "the statement has {} UNION/INTERSECT/EXCEPT branches; the limit is {}",
                b.set_ops, self.max_set_operations
            )));
        }
        Ok(())
    }
}
