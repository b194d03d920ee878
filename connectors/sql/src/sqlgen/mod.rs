//! Writes a logical sub-plan as one SQL statement in a source's dialect.
//!
//! DataFusion's unparser rebuilds SQL from optimized plans by name: it loses track of which
//! of two same-named columns a self-join means, of the scope a table alias lives in, of
//! where a filter sat relative to an outer join, and of `LIMIT`/`OFFSET` pushed into scans.
//! This writer does not rebuild names. Every plan node's output is a list of expressions,
//! by position, over the relations of one `SELECT` block; a node that cannot extend the
//! block it reads (a filter above a `GROUP BY`, a join input with a `LIMIT`) closes it as a
//! derived table `(SELECT e0 AS c0, e1 AS c1, ...) AS tN`, whose columns are then
//! `tN.c0, tN.c1, ...`. Table scans read `table AS tN`. Names the plan gives its columns
//! never reach the source; the statement's result columns are `c0, c1, ...`, matched to
//! the plan by position.
//!
//! Expressions are checked and rewritten for the dialect by [`crate::semantics`] with the
//! types of each node's input, then written by DataFusion's expression unparser
//! ([`crate::unparse::SourceDialect`]). What the dialect cannot run with DataFusion's meaning
//! is refused ([`Refusal`]); the caller then pushes smaller sub-plans.

use datafusion::arrow::datatypes::{DataType, FieldRef, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, NullEquality, ScalarValue, TableReference};
use datafusion::logical_expr::expr::{AggregateFunction, WindowFunction, WindowFunctionParams};
use datafusion::logical_expr::logical_plan::{FetchType, SkipType};
use datafusion::logical_expr::{
    BinaryExpr, Distinct, Expr, ExprSchemable, JoinType, LogicalPlan, Operator, SortExpr,
    TableScan, WindowFrameBound, WindowFrameUnits, WindowFunctionDefinition,
};

use crate::capability::{NullsOrdering, OffsetForm, StringSemantics};
use crate::semantics::{is_string, type_of, Refusal, Semantics, R};
use crate::table::quote_table;
use crate::unparse::{collate, SourceDialect};

/// One statement for a source.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The SQL text.
    pub sql: String,
    /// Names of the statement's result columns, in the plan's order (`c0`, `c1`, ...); one
    /// dummy column when the plan has none.
    pub columns: Vec<String>,
    /// The order of the statement's rows when the plan's root sorts them: per sort key, the
    /// result column, ascending, nulls first.
    pub ordering: Option<Vec<(usize, bool, bool)>>,
}

/// What a port reads on its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanRelation {
    /// A table.
    Table(TableReference),
    /// The (trimmed) query of a query port.
    Query(String),
}

/// The statement of a port scan: `fields` of `relation` (whose columns are `full`), rows
/// passing every filter of `filters`, at most `limit` of them. Errors when a filter cannot
/// be written with DataFusion's meaning.
pub fn scan_statement(
    relation: &ScanRelation,
    full: &SchemaRef,
    fields: &[FieldRef],
    filters: &[Expr],
    limit: Option<usize>,
    sem: Semantics<'_>,
    dialect: &SourceDialect,
) -> R<Statement> {
    let no_tables = |_: &TableScan| -> R<TableReference> { Err(Refusal::new("no tables here")) };
    let mut g = Gen {
        sem,
        dialect,
        resolve: &no_tables,
        next: 0,
    };
    let block = g.read(relation, full, fields, filters, limit)?;
    Ok(Statement {
        sql: g.select(&block)?,
        columns: (0..fields.len().max(1)).map(|i| format!("c{i}")).collect(),
        ordering: None,
    })
}

/// Finds the source table a scan reads.
pub type ResolveTable<'a> = &'a dyn Fn(&TableScan) -> R<TableReference>;

/// Writes `plan` as one statement, or says why it cannot be pushed with its meaning.
pub fn statement(
    plan: &LogicalPlan,
    sem: Semantics<'_>,
    dialect: &SourceDialect,
    resolve: ResolveTable<'_>,
) -> R<Statement> {
    let ordering = required_ordering(plan)?;
    let mut g = Gen {
        sem,
        dialect,
        resolve,
        next: 0,
    };
    let block = g.plan(plan)?;
    let width = plan.schema().fields().len();
    if block.items.len() != width {
        return Err(Refusal::new(
            "the statement's width differs from the plan's",
        ));
    }
    if ordering.is_some() && !block.sorted {
        return Err(Refusal::new(
            "the plan's order would be lost in a derived table",
        ));
    }
    let sql = g.select(&block)?;
    let columns = (0..width.max(1)).map(|i| format!("c{i}")).collect();
    Ok(Statement {
        sql,
        columns,
        ordering,
    })
}

/// The ordering a plan's root promises (a `Sort`, under projections, aliases and limits),
/// as result columns; `Err` when it sorts by something that is not a result column.
fn required_ordering(plan: &LogicalPlan) -> R<Option<Vec<(usize, bool, bool)>>> {
    let undeclarable = || Refusal::new("sorted by a value that is not a result column");
    match plan {
        LogicalPlan::Sort(s) => {
            let mut keys = Vec::new();
            for se in &s.expr {
                let Expr::Column(c) = strip(&se.expr) else {
                    return Err(undeclarable());
                };
                let i = s
                    .input
                    .schema()
                    .index_of_column(c)
                    .map_err(|_| undeclarable())?;
                keys.push((i, se.asc, se.nulls_first));
            }
            Ok(Some(keys))
        }
        LogicalPlan::SubqueryAlias(a) => required_ordering(&a.input),
        LogicalPlan::Limit(l) => required_ordering(&l.input),
        LogicalPlan::Projection(p) => {
            let Some(keys) = required_ordering(&p.input)? else {
                return Ok(None);
            };
            let in_schema = p.input.schema();
            let mut out = Vec::new();
            for (i, asc, nf) in keys {
                let pos = p.expr.iter().position(|e| match strip(e) {
                    Expr::Column(c) => in_schema.index_of_column(c).ok() == Some(i),
                    _ => false,
                });
                out.push((pos.ok_or_else(undeclarable)?, asc, nf));
            }
            Ok(Some(out))
        }
        _ => Ok(None),
    }
}

fn strip(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => strip(&a.expr),
        other => other,
    }
}

#[derive(Debug, Clone)]
enum Item {
    /// An expression over the block's relations.
    Expr(Expr),
    /// SQL text that later nodes cannot look into (a window function).
    Sql(String),
}

#[derive(Debug, Clone)]
enum From {
    Table {
        sql: String,
        alias: String,
    },
    Derived {
        sql: String,
        alias: String,
    },
    Join {
        left: Box<From>,
        right: Box<From>,
        kind: &'static str,
        on: Option<String>,
    },
}

/// One `ORDER BY` key: its expression over the block's relations and its SQL.
#[derive(Debug, Clone)]
struct OrderKey {
    expr: Expr,
    sql: String,
    asc: bool,
    nulls_first: bool,
}

/// A `SELECT` being built, clauses in the order SQL evaluates them.
#[derive(Debug, Clone, Default)]
struct Block {
    from: Option<From>,
    where_: Vec<String>,
    group_by: Option<Vec<(Expr, String)>>,
    window: bool,
    items: Vec<Item>,
    distinct: bool,
    order_by: Vec<OrderKey>,
    /// `order_by` comes from the plan's root `Sort`.
    sorted: bool,
    limit: Option<usize>,
    offset: usize,
}

impl Block {
    fn unlimited(&self) -> bool {
        self.limit.is_none() && self.offset == 0
    }

    /// A `WHERE` may be added.
    fn can_filter(&self) -> bool {
        self.from.is_some()
            && self.group_by.is_none()
            && !self.distinct
            && !self.window
            && self.unlimited()
    }

    /// `GROUP BY` or window functions may be added.
    fn can_group(&self) -> bool {
        self.can_filter() && self.order_by.is_empty()
    }

    /// The block reads one table or derived table and does nothing else.
    fn is_bare(&self) -> bool {
        matches!(self.from, Some(From::Table { .. } | From::Derived { .. }))
            && self.where_.is_empty()
            && self.can_group()
            && self.items.iter().all(|i| matches!(i, Item::Expr(_)))
    }

    /// The block is joins of tables and derived tables, nothing else.
    fn is_pure_join(&self) -> bool {
        matches!(self.from, Some(From::Join { .. }))
            && self.where_.is_empty()
            && self.can_group()
            && self.items.iter().all(|i| matches!(i, Item::Expr(_)))
    }
}

struct Gen<'a> {
    sem: Semantics<'a>,
    dialect: &'a SourceDialect,
    resolve: ResolveTable<'a>,
    next: usize,
}

/// Replaces every column of `e` (typed by `schema`) with the item at its position.
fn subst(e: &Expr, schema: &DFSchema, items: &[Item]) -> Option<Expr> {
    if items.len() != schema.fields().len() {
        return None;
    }
    let mut ok = true;
    let out = e
        .clone()
        .transform_up(|n| {
            Ok(match n {
                Expr::Column(c) => match schema.index_of_column(&c).ok().map(|i| &items[i]) {
                    Some(Item::Expr(x)) => Transformed::yes(x.clone()),
                    _ => {
                        ok = false;
                        Transformed::no(Expr::Column(c))
                    }
                },
                Expr::Alias(a) => Transformed::yes(*a.expr),
                other => Transformed::no(other),
            })
        })
        .ok()?
        .data;
    ok.then_some(out)
}

fn col(alias: &str, name: &str) -> Expr {
    Expr::Column(Column::new(Some(TableReference::bare(alias)), name))
}

impl Gen<'_> {
    fn alias(&mut self) -> String {
        let a = format!("t{}", self.next);
        self.next += 1;
        a
    }

    fn render(&self, e: &Expr) -> R<String> {
        self.dialect
            .expr_sql(e)
            .map_err(|err| Refusal::new(format!("cannot write {e}: {err}")))
    }

    /// Closes `b` as a derived table. Its columns are named after it (`t3_c0`): a name
    /// shared with the result columns of an outer block (`c0`) is ambiguous to DataFusion
    /// when an `ORDER BY` reads both.
    fn wrap(&mut self, b: Block) -> R<Block> {
        let alias = self.alias();
        let sql = self.select_named(&b, &|i| format!("{alias}_c{i}"))?;
        let items = (0..b.items.len())
            .map(|i| Item::Expr(col(&alias, &format!("{alias}_c{i}"))))
            .collect();
        Ok(Block {
            from: Some(From::Derived { sql, alias }),
            items,
            ..Block::default()
        })
    }

    /// Substitutes `exprs` into `b`, closing `b` first when `fits` says it must, or when an
    /// expression reads an item later nodes cannot look into.
    fn merge(
        &mut self,
        b: Block,
        fits: fn(&Block) -> bool,
        exprs: &[Expr],
        schema: &DFSchema,
    ) -> R<(Block, Vec<Expr>)> {
        if fits(&b) {
            if let Some(out) = exprs
                .iter()
                .map(|e| subst(e, schema, &b.items))
                .collect::<Option<Vec<_>>>()
            {
                return Ok((b, out));
            }
        }
        let b = self.wrap(b)?;
        let out = exprs
            .iter()
            .map(|e| subst(e, schema, &b.items))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Refusal::new("a column the plan reads is not in its input"))?;
        Ok((b, out))
    }

    fn plan(&mut self, plan: &LogicalPlan) -> R<Block> {
        match plan {
            LogicalPlan::TableScan(scan) => self.scan(scan),
            LogicalPlan::SubqueryAlias(a) => self.plan(&a.input),
            LogicalPlan::Projection(p) => {
                let schema = p.input.schema();
                let exprs = p
                    .expr
                    .iter()
                    .map(|e| self.sem.expr(e, schema))
                    .collect::<R<Vec<_>>>()?;
                let b = self.plan(&p.input)?;
                let (mut b, items) = self.merge(b, |b| !b.distinct && !b.window, &exprs, schema)?;
                b.items = items.into_iter().map(Item::Expr).collect();
                Ok(b)
            }
            LogicalPlan::Filter(f) => {
                let schema = f.input.schema();
                let pred = self.sem.expr(&f.predicate, schema)?;
                let b = self.plan(&f.input)?;
                let (mut b, pred) = self.merge(b, Block::can_filter, &[pred], schema)?;
                b.where_.push(self.render(&pred[0])?);
                Ok(b)
            }
            LogicalPlan::Aggregate(a) => {
                let schema = a.input.schema();
                let mut exprs = Vec::new();
                for g in &a.group_expr {
                    if matches!(g, Expr::GroupingSet(_)) {
                        return Err(Refusal::new("GROUPING SETS"));
                    }
                    self.sem.equality_ok(&type_of(g, schema)?)?;
                    exprs.push(self.sem.expr(g, schema)?);
                }
                for e in &a.aggr_expr {
                    exprs.push(self.sem.aggregate(e, schema)?);
                }
                let b = self.plan(&a.input)?;
                let (mut b, mut exprs) = self.merge(b, Block::can_group, &exprs, schema)?;
                let n_keys = a.group_expr.len();
                let computed = exprs[..n_keys]
                    .iter()
                    .any(|k| !matches!(strip(k), Expr::Column(_)));
                if computed && self.sem.caps().flavor == crate::capability::Flavor::DataFusion {
                    // DataFusion names `CAST(x AS t)` after `x`: two such keys collide. Compute
                    // the keys in a derived table and group by its columns.
                    let width = b.items.len();
                    let keys: Vec<Expr> = exprs[..n_keys].to_vec();
                    b.items.extend(keys.into_iter().map(Item::Expr));
                    let mut w = self.wrap(b)?;
                    let aggs = exprs[n_keys..]
                        .iter()
                        .map(|e| {
                            // Re-read the aggregates' arguments from the derived table.
                            let original = &a.aggr_expr
                                [exprs[n_keys..].iter().position(|x| x == e).unwrap_or(0)];
                            let e = self.sem.aggregate(original, schema)?;
                            subst(&e, schema, &w.items[..width])
                                .ok_or_else(|| Refusal::new("aggregate argument"))
                        })
                        .collect::<R<Vec<_>>>()?;
                    let keys: Vec<Expr> = w.items[width..]
                        .iter()
                        .filter_map(|i| match i {
                            Item::Expr(e) => Some(e.clone()),
                            Item::Sql(_) => None,
                        })
                        .collect();
                    w.items.truncate(width);
                    exprs = keys.into_iter().chain(aggs).collect();
                    b = w;
                }
                let keys = &exprs[..n_keys];
                if keys.iter().any(|k| matches!(strip(k), Expr::Literal(..))) {
                    // `GROUP BY 1` would name a position.
                    return Err(Refusal::new("GROUP BY a constant"));
                }
                b.group_by = Some(
                    keys.iter()
                        .map(|k| Ok((k.clone(), self.render(k)?)))
                        .collect::<R<_>>()?,
                );
                b.items = exprs.into_iter().map(Item::Expr).collect();
                Ok(b)
            }
            LogicalPlan::Sort(s) => {
                let schema = s.input.schema();
                let sorts = s
                    .expr
                    .iter()
                    .map(|se| self.sem.sort(se, schema))
                    .collect::<R<Vec<_>>>()?;
                let exprs: Vec<Expr> = sorts.iter().map(|se| se.expr.clone()).collect();
                let b = self.plan(&s.input)?;
                let (mut b, exprs) = self.merge(
                    b,
                    |b| !b.distinct && !b.window && b.unlimited(),
                    &exprs,
                    schema,
                )?;
                let mut order = Vec::new();
                for ((se, e), orig) in sorts.iter().zip(exprs).zip(&s.expr) {
                    if matches!(strip(&e), Expr::Literal(..)) {
                        continue; // a constant does not order anything (and `ORDER BY 1` is a position)
                    }
                    let nullable = orig.expr.nullable(schema).unwrap_or(true);
                    let sql = self.order_key(
                        &SortExpr {
                            expr: e.clone(),
                            ..se.clone()
                        },
                        nullable,
                    )?;
                    order.push(OrderKey {
                        expr: e,
                        sql,
                        asc: se.asc,
                        nulls_first: se.nulls_first,
                    });
                }
                b.order_by = order;
                b.sorted = true;
                if let Some(f) = s.fetch {
                    b.limit = Some(f);
                }
                Ok(b)
            }
            LogicalPlan::Limit(l) => {
                let skip = match l.get_skip_type() {
                    Ok(SkipType::Literal(n)) => n,
                    _ => return Err(Refusal::new("OFFSET that is not a constant")),
                };
                let fetch = match l.get_fetch_type() {
                    Ok(FetchType::Literal(n)) => n,
                    _ => return Err(Refusal::new("LIMIT that is not a constant")),
                };
                let mut b = self.plan(&l.input)?;
                // Rows [offset, offset + limit) of the block, then [skip, skip + fetch) of those.
                let left = b.limit.map(|n| n.saturating_sub(skip));
                b.offset += skip;
                b.limit = match (left, fetch) {
                    (None, f) => f,
                    (Some(n), None) => Some(n),
                    (Some(n), Some(f)) => Some(n.min(f)),
                };
                Ok(b)
            }
            LogicalPlan::Distinct(Distinct::All(input)) => {
                for f in input.schema().fields() {
                    self.sem.equality_ok(f.data_type())?;
                }
                let mut b = self.plan(input)?;
                if b.distinct || b.window || !b.unlimited() || !b.order_by.is_empty() {
                    b = self.wrap(b)?;
                }
                b.distinct = true;
                Ok(b)
            }
            LogicalPlan::Window(w) => {
                if !self.sem.caps().windows {
                    return Err(Refusal::new("window functions"));
                }
                let b = self.plan(&w.input)?;
                let mut b = if b.can_group() && b.items.iter().all(|i| matches!(i, Item::Expr(_))) {
                    b
                } else {
                    self.wrap(b)?
                };
                for e in &w.window_expr {
                    let sql = self.window_sql(e, w.input.schema(), &b.items)?;
                    b.items.push(Item::Sql(sql));
                }
                b.window = true;
                Ok(b)
            }
            LogicalPlan::Join(j) => self.join(j),
            LogicalPlan::Union(u) => {
                let mut branches = Vec::new();
                let width = u.schema.fields().len();
                let alias = self.alias();
                for input in &u.inputs {
                    let mut b = self.plan(input)?;
                    if !b.unlimited() || !b.order_by.is_empty() {
                        b = self.wrap(b)?;
                    }
                    if b.items.len() != width {
                        return Err(Refusal::new("UNION branches of different widths"));
                    }
                    branches.push(self.select_named(&b, &|i| format!("{alias}_c{i}"))?);
                }
                Ok(Block {
                    from: Some(From::Derived {
                        sql: branches.join(" UNION ALL "),
                        alias: alias.clone(),
                    }),
                    items: (0..width)
                        .map(|i| Item::Expr(col(&alias, &format!("{alias}_c{i}"))))
                        .collect(),
                    ..Block::default()
                })
            }
            LogicalPlan::EmptyRelation(e) if e.produce_one_row => Ok(Block::default()),
            other => Err(Refusal::new(format!("plan node {}", other.display()))),
        }
    }

    fn scan(&mut self, scan: &TableScan) -> R<Block> {
        let remote = (self.resolve)(scan)?;
        let fields: Vec<FieldRef> = scan.projected_schema.fields().iter().cloned().collect();
        self.read(
            &ScanRelation::Table(remote),
            &scan.source.schema(),
            &fields,
            &scan.filters,
            scan.fetch,
        )
    }

    /// One block reading `relation` (whose columns are `full`): `fields` of it, with
    /// `filters` (over its columns, by name) and at most `fetch` rows.
    fn read(
        &mut self,
        relation: &ScanRelation,
        full: &SchemaRef,
        fields: &[FieldRef],
        filters: &[Expr],
        fetch: Option<usize>,
    ) -> R<Block> {
        let alias = self.alias();
        let forced = self.sem.caps().strings == StringSemantics::ForcedAtSource;
        let read = |name: &str, t: &DataType| {
            let c = col(&alias, name);
            if forced && is_string(t) {
                collate(c)
            } else {
                c
            }
        };
        let all: Vec<Item> = full
            .fields()
            .iter()
            .map(|f| Item::Expr(read(f.name(), f.data_type())))
            .collect();
        let unqualified = DFSchema::try_from(full.as_ref().clone())
            .map_err(|e| Refusal::new(format!("scan schema: {e}")))?;
        let mut where_ = Vec::new();
        for f in filters {
            let f = f
                .clone()
                .transform_up(|e| {
                    Ok(match e {
                        Expr::Column(c) => {
                            Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
                        }
                        other => Transformed::no(other),
                    })
                })
                .map_err(|e| Refusal::new(e.to_string()))?
                .data;
            let f = self.sem.expr(&f, &unqualified)?;
            let f = subst(&f, &unqualified, &all)
                .ok_or_else(|| Refusal::new("a filter on a column the table does not have"))?;
            where_.push(self.render(&f)?);
        }
        let items = fields
            .iter()
            .map(|f| Item::Expr(read(f.name(), f.data_type())))
            .collect();
        let from = match relation {
            ScanRelation::Table(t) => From::Table {
                sql: quote_table(self.dialect, t),
                alias,
            },
            ScanRelation::Query(q) => From::Derived {
                sql: q.clone(),
                alias,
            },
        };
        Ok(Block {
            from: Some(from),
            where_,
            items,
            limit: fetch,
            ..Block::default()
        })
    }

    /// A join input as a relation of a `FROM` clause, with its items.
    fn relation(&mut self, b: Block, allow_join: bool) -> R<(From, Vec<Item>)> {
        let b = if b.is_bare() || (allow_join && b.is_pure_join()) {
            b
        } else {
            self.wrap(b)?
        };
        let from = b
            .from
            .ok_or_else(|| Refusal::new("a join input without a relation"))?;
        Ok((from, b.items))
    }
}

mod text;
