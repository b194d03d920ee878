//! A seeded generator of ordinary SELECTs over the fuzz mesh: joins of 1-4 tables (self,
//! comma, LEFT, CROSS), filters with AND/OR/NOT/IN/BETWEEN/LIKE/IS NULL, CASE, arithmetic,
//! string and date functions, casts, GROUP BY with every aggregate (DISTINCT too), HAVING,
//! ORDER BY with LIMIT/OFFSET, DISTINCT, IN/EXISTS/scalar subqueries, derived tables, UNION
//! ALL, window functions, `count(*)` over tables whose columns are unused, constant selects.
//!
//! Queries are trees ([`Query`], [`E`]) so that a failing one can be shrunk by cutting
//! branches ([`crate::fuzz::shrink`]). Every answer is deterministic: a `LIMIT` comes with an
//! `ORDER BY` over every result column, and `row_number` orders by a unique key.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::{DataType, SchemaRef};

use super::data::{unique_key, DOMAINS};

/// SplitMix64: small, seeded, the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True with probability `p` percent.
    pub fn pct(&mut self, p: u32) -> bool {
        self.below(100) < p as usize
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// A value type, as far as the generator cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// Integers.
    Int,
    /// Decimals.
    Dec,
    /// Floats.
    Float,
    /// Strings.
    Str,
    /// Dates.
    Date,
    /// Booleans (predicates).
    Bool,
}

impl Ty {
    fn of(t: &DataType) -> Ty {
        match t {
            t if t.is_integer() => Ty::Int,
            DataType::Decimal128(..) => Ty::Dec,
            t if t.is_floating() => Ty::Float,
            DataType::Date32 => Ty::Date,
            DataType::Boolean => Ty::Bool,
            _ => Ty::Str,
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Dec | Ty::Float)
    }
}

/// An expression: a leaf (column or literal), an operator template over arguments
/// (`{0}`, `{1}`, ...), or a template over a subquery (`{q}`) and arguments.
#[derive(Debug, Clone)]
pub enum E {
    /// SQL text.
    Leaf(String, Ty),
    /// A template and its arguments.
    Op(String, Vec<E>, Ty),
    /// A template with a subquery.
    Sub(String, Box<Query>, Vec<E>, Ty),
}

impl E {
    /// The type.
    pub fn ty(&self) -> Ty {
        match self {
            E::Leaf(_, t) | E::Op(_, _, t) | E::Sub(_, _, _, t) => *t,
        }
    }

    /// SQL text.
    pub fn sql(&self) -> String {
        match self {
            E::Leaf(s, _) => s.clone(),
            E::Op(t, args, _) => fill(t, args, None),
            E::Sub(t, q, args, _) => fill(t, args, Some(&q.sql())),
        }
    }

    fn has_aggregate(&self) -> bool {
        match self {
            E::Leaf(..) => false,
            E::Op(t, args, _) => {
                AGG_PREFIXES.iter().any(|p| t.starts_with(p)) || args.iter().any(E::has_aggregate)
            }
            E::Sub(_, _, args, _) => args.iter().any(E::has_aggregate),
        }
    }
}

const AGG_PREFIXES: &[&str] = &["count(", "sum(", "avg(", "min(", "max("];

fn fill(template: &str, args: &[E], q: Option<&str>) -> String {
    let mut out = template.to_string();
    for (i, a) in args.iter().enumerate().rev() {
        out = out.replace(&format!("{{{i}}}"), &a.sql());
    }
    if let Some(q) = q {
        out = out.replace("{q}", q);
    }
    out
}

fn op(template: &str, args: Vec<E>, ty: Ty) -> E {
    E::Op(template.to_string(), args, ty)
}

/// How a relation joins the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// The first relation.
    First,
    /// `, rel` (conditions in WHERE).
    Comma,
    /// `JOIN rel ON ...`.
    Inner,
    /// `LEFT JOIN rel ON ...`.
    Left,
    /// `RIGHT JOIN rel ON ...`.
    Right,
    /// `FULL JOIN rel ON ...`.
    Full,
    /// `CROSS JOIN rel`.
    Cross,
}

/// What a relation reads.
#[derive(Debug, Clone)]
pub enum Rel {
    /// A port, `domain.tpch.table`.
    Table(String),
    /// A derived table.
    Derived(Box<Query>),
}

/// One relation of a FROM clause.
#[derive(Debug, Clone)]
pub struct FromItem {
    /// How it joins.
    pub join: JoinKind,
    /// What it reads.
    pub rel: Rel,
    /// Its alias.
    pub alias: String,
    /// The ON condition.
    pub on: Option<E>,
}

/// A SELECT.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// `SELECT DISTINCT`.
    pub distinct: bool,
    /// Result expressions, named `x0`, `x1`, ...
    pub select: Vec<E>,
    /// FROM, in join order.
    pub from: Vec<FromItem>,
    /// WHERE.
    pub where_: Option<E>,
    /// GROUP BY.
    pub group_by: Vec<E>,
    /// HAVING.
    pub having: Option<E>,
    /// ORDER BY result columns: index, ascending, NULLS FIRST.
    pub order_by: Vec<(usize, bool, Option<bool>)>,
    /// LIMIT.
    pub limit: Option<u64>,
    /// OFFSET.
    pub offset: Option<u64>,
    /// `UNION ALL` with another query of the same column types.
    pub union_all: Option<Box<Query>>,
}

impl Query {
    /// The result column types.
    pub fn types(&self) -> Vec<Ty> {
        self.select.iter().map(E::ty).collect()
    }

    /// Whether rows come in a defined order (ORDER BY every result column).
    pub fn fully_ordered(&self) -> bool {
        !self.select.is_empty() && self.order_by.len() >= self.select.len()
    }

    fn core_sql(&self) -> String {
        let mut s = String::from("SELECT ");
        if self.distinct {
            s.push_str("DISTINCT ");
        }
        let items: Vec<String> = self
            .select
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{} AS x{i}", e.sql()))
            .collect();
        s.push_str(&items.join(", "));
        for (i, f) in self.from.iter().enumerate() {
            let rel = match &f.rel {
                Rel::Table(t) => t.clone(),
                Rel::Derived(q) => format!("({})", q.sql()),
            };
            let head = match (i, f.join) {
                (0, _) | (_, JoinKind::First) => " FROM ",
                (_, JoinKind::Comma) => ", ",
                (_, JoinKind::Inner) => " JOIN ",
                (_, JoinKind::Left) => " LEFT JOIN ",
                (_, JoinKind::Right) => " RIGHT JOIN ",
                (_, JoinKind::Full) => " FULL JOIN ",
                (_, JoinKind::Cross) => " CROSS JOIN ",
            };
            s.push_str(&format!("{head}{rel} AS {}", f.alias));
            if matches!(
                f.join,
                JoinKind::Inner | JoinKind::Left | JoinKind::Right | JoinKind::Full
            ) {
                let on = f.on.as_ref().map_or("TRUE".to_string(), E::sql);
                s.push_str(&format!(" ON {on}"));
            }
        }
        if let Some(w) = &self.where_ {
            s.push_str(&format!(" WHERE {}", w.sql()));
        }
        if !self.group_by.is_empty() {
            let keys: Vec<String> = self.group_by.iter().map(E::sql).collect();
            s.push_str(&format!(" GROUP BY {}", keys.join(", ")));
        }
        if let Some(h) = &self.having {
            s.push_str(&format!(" HAVING {}", h.sql()));
        }
        s
    }

    /// SQL text.
    pub fn sql(&self) -> String {
        let mut s = self.core_sql();
        if let Some(u) = &self.union_all {
            s = format!("{s} UNION ALL {}", u.core_sql());
        }
        if !self.order_by.is_empty() {
            let keys: Vec<String> = self
                .order_by
                .iter()
                .map(|(i, asc, nf)| {
                    let mut k = format!("x{i} {}", if *asc { "ASC" } else { "DESC" });
                    if let Some(nf) = nf {
                        k.push_str(if *nf { " NULLS FIRST" } else { " NULLS LAST" });
                    }
                    k
                })
                .collect();
            s.push_str(&format!(" ORDER BY {}", keys.join(", ")));
        }
        if let Some(l) = self.limit {
            s.push_str(&format!(" LIMIT {l}"));
        }
        if let Some(o) = self.offset {
            s.push_str(&format!(" OFFSET {o}"));
        }
        s
    }
}

/// A column in scope.
#[derive(Debug, Clone)]
struct Col {
    sql: String,
    ty: Ty,
    /// `(table, column)` when it is a table's own column.
    origin: Option<(String, String)>,
}

/// Joins along TPC-H's foreign keys: `(table, column, table, column)`.
const EDGES: &[(&str, &str, &str, &str)] = &[
    ("nation", "n_regionkey", "region", "r_regionkey"),
    ("customer", "c_nationkey", "nation", "n_nationkey"),
    ("supplier", "s_nationkey", "nation", "n_nationkey"),
    ("orders", "o_custkey", "customer", "c_custkey"),
    ("lineitem", "l_orderkey", "orders", "o_orderkey"),
    ("lineitem", "l_partkey", "part", "p_partkey"),
    ("lineitem", "l_suppkey", "supplier", "s_suppkey"),
    ("partsupp", "ps_partkey", "part", "p_partkey"),
    ("partsupp", "ps_suppkey", "supplier", "s_suppkey"),
    ("edge", "n", "nation", "n_nationkey"),
    ("edge", "s", "edge", "t"),
    ("nation", "n_regionkey", "nation", "n_regionkey"),
    ("edge", "n", "edge", "n"),
    ("orders", "o_orderkey", "lineitem", "l_orderkey"),
];

const SMALL: &[&str] = &["nation", "region", "edge", "supplier"];

const STRINGS: &[&str] = &[
    "a",
    "A",
    "b",
    "ab",
    "Ab",
    "abc",
    "a ",
    "",
    "é",
    "ß",
    "GERMANY",
    "germany",
    "BRAZIL",
    "R",
    "N",
    "F",
    "O",
    "Brand#45",
    "AUTOMOBILE",
    "1-URGENT",
    "MAIL",
    "z",
    "%",
    "_",
];

const PATTERNS: &[&str] = &[
    "a%", "A%", "%b", "%a_b%", "a_", "_", "%", "%BRASS", "MEDIUM%", "%e%", "ab%", "Ab%", "%ss%",
    "%a%b%", "x*y", "q?", "[br]", "%[%", "G%", "g%", "%ANY", "%, %",
];

/// Generates queries over the fuzz mesh.
#[derive(Debug)]
pub struct Generator {
    rng: Rng,
    schemas: BTreeMap<String, SchemaRef>,
    aliases: usize,
}

impl Generator {
    /// A generator with `seed` over ports with `schemas` (`domain.tpch.table` -> schema).
    pub fn new(seed: u64, schemas: BTreeMap<String, SchemaRef>) -> Self {
        Self {
            rng: Rng::new(seed),
            schemas,
            aliases: 0,
        }
    }

    fn alias(&mut self, base: &str) -> String {
        self.aliases += 1;
        format!("{base}{}", self.aliases)
    }

    fn domain(&mut self) -> &'static str {
        self.rng.pick(DOMAINS).0
    }

    /// One query.
    pub fn query(&mut self) -> Query {
        self.aliases = 0;
        self.query_at(0, None)
    }

    fn columns_of(&self, port: &str, alias: &str) -> Vec<Col> {
        let table = port.rsplit('.').next().unwrap_or_default().to_string();
        self.schemas[port]
            .fields()
            .iter()
            .map(|f| Col {
                sql: format!("{alias}.{}", f.name()),
                ty: Ty::of(f.data_type()),
                origin: Some((table.clone(), f.name().clone())),
            })
            .collect()
    }

    /// A FROM clause: relations and the columns in scope.
    fn from(&mut self, depth: u32) -> (Vec<FromItem>, Vec<Col>, Vec<E>) {
        let mut items = Vec::new();
        let mut scope: Vec<Col> = Vec::new();
        let mut where_extra = Vec::new();
        let home = self.domain();
        let n = match self.rng.below(10) {
            0..=3 => 1,
            4..=6 => 2,
            7..=8 => 3,
            _ => 4,
        };
        let mut tables: Vec<String> = Vec::new();
        for i in 0..n {
            let domain = if self.rng.pct(60) {
                home
            } else {
                self.domain()
            };
            // A derived table now and then.
            if i == 0 && depth < 2 && self.rng.pct(12) {
                let mut inner = self.query_at(depth + 1, None);
                if inner.limit.is_none() && self.rng.pct(30) && !inner.types().contains(&Ty::Float)
                {
                    inner.order_by = (0..inner.select.len())
                        .map(|k| (k, true, Some(false)))
                        .collect();
                    inner.limit = Some(1 + self.rng.below(20) as u64);
                }
                let alias = self.alias("d");
                for (k, t) in inner.types().into_iter().enumerate() {
                    scope.push(Col {
                        sql: format!("{alias}.x{k}"),
                        ty: t,
                        origin: None,
                    });
                }
                items.push(FromItem {
                    join: JoinKind::First,
                    rel: Rel::Derived(Box::new(inner)),
                    alias,
                    on: None,
                });
                tables.push(String::new());
                continue;
            }
            // The next table joins an earlier one along a key, or is small and crossed.
            let link = if i == 0 {
                None
            } else {
                let mut options = Vec::new();
                for (a, ac, b, bc) in EDGES {
                    for (j, t) in tables.iter().enumerate() {
                        if t == a {
                            options.push((j, *ac, b.to_string(), *bc));
                        }
                        if t == b {
                            options.push((j, *bc, a.to_string(), *ac));
                        }
                    }
                }
                if options.is_empty() || self.rng.pct(10) {
                    None
                } else {
                    Some(options[self.rng.below(options.len())].clone())
                }
            };
            let table = match (&link, i) {
                (Some((_, _, t, _)), _) => t.clone(),
                (None, 0) => self
                    .rng
                    .pick(&[
                        "nation", "region", "part", "supplier", "partsupp", "customer", "orders",
                        "lineitem", "edge", "edge", "nation",
                    ])
                    .to_string(),
                (None, _) => self.rng.pick(SMALL).to_string(),
            };
            let port = format!("{domain}.tpch.{table}");
            let alias = self.alias(&table[..1]);
            let cols = self.columns_of(&port, &alias);
            let (join, on) = match (&link, i) {
                (_, 0) => (JoinKind::First, None),
                (None, _) if items.iter().any(|f| f.join == JoinKind::Comma) => {
                    (JoinKind::Comma, None)
                }
                (None, _) => (JoinKind::Cross, None),
                (Some((j, left_col, _, right_col)), _) => {
                    let left = items[*j].alias.clone();
                    let cond =
                        E::Leaf(format!("{left}.{left_col} = {alias}.{right_col}"), Ty::Bool);
                    // After a comma, an explicit join sees only what follows the comma: keep
                    // joining with commas then.
                    let after_comma = items.iter().any(|f| f.join == JoinKind::Comma);
                    match if after_comma { 9 } else { self.rng.below(10) } {
                        0..=2 => (JoinKind::Inner, Some(cond)),
                        3 => (
                            if self.rng.pct(50) {
                                JoinKind::Right
                            } else {
                                JoinKind::Full
                            },
                            Some(cond),
                        ),
                        4..=6 => {
                            // A LEFT join, sometimes with a condition on its own side.
                            let mut on = cond;
                            if self.rng.pct(30) {
                                let extra = self.predicate(&cols, 0, false);
                                on = op("({0} AND {1})", vec![on, extra], Ty::Bool);
                            }
                            (JoinKind::Left, Some(on))
                        }
                        _ => {
                            where_extra.push(cond);
                            (JoinKind::Comma, None)
                        }
                    }
                }
            };
            scope.extend(cols);
            tables.push(table);
            items.push(FromItem {
                join,
                rel: Rel::Table(port),
                alias,
                on,
            });
        }
        (items, scope, where_extra)
    }

    fn query_at(&mut self, depth: u32, want: Option<&[Ty]>) -> Query {
        let (from, scope, joins) = self.from(depth);
        let mut q = Query {
            from,
            ..Query::default()
        };
        // WHERE: join conditions of comma joins, then 0-3 predicates.
        let mut conds = joins;
        for _ in 0..self.rng.below(4) {
            conds.push(self.predicate(&scope, depth, true));
        }
        q.where_ = conds
            .into_iter()
            .reduce(|a, b| op("({0} AND {1})", vec![a, b], Ty::Bool));
        let single_table =
            q.from.len() == 1 && matches!(q.from[0].rel, Rel::Table(_)) && want.is_none();
        match (want, self.rng.below(20)) {
            (Some(types), _) => {
                q.select = types.iter().map(|t| self.expr(&scope, *t, 1)).collect();
            }
            (None, 0..=6) => {
                // Plain projection.
                let n = 1 + self.rng.below(4);
                q.select = (0..n).map(|_| self.any_expr(&scope, 2)).collect();
                q.distinct = self.rng.pct(15);
                if depth < 2 && self.rng.pct(15) {
                    if let E::Sub(_, inner, _, _) = self.subquery_predicate(&scope, depth) {
                        // The same correlated subquery, as a count in the select list.
                        let mut inner = *inner;
                        inner.select = vec![E::Leaf("count(*)".into(), Ty::Int)];
                        q.select
                            .push(E::Sub("({q})".into(), Box::new(inner), vec![], Ty::Int));
                    }
                }
            }
            (None, 7..=12) => self.aggregate(&mut q, &scope),
            (None, 13..=15) if single_table => self.window(&mut q, &scope),
            (None, 16) => {
                q.select = vec![E::Leaf("count(*)".into(), Ty::Int)];
            }
            (None, 17) => {
                q.select = vec![E::Leaf("1".into(), Ty::Int), E::Leaf("'k'".into(), Ty::Str)];
            }
            (None, _) => {
                let n = 1 + self.rng.below(3);
                q.select = (0..n).map(|_| self.column(&scope)).collect();
            }
        }
        if want.is_none() && depth == 0 && self.rng.pct(8) {
            let types = q.types();
            let other = self.query_at(depth + 1, Some(&types));
            q.union_all = Some(Box::new(other));
        }
        let has_float = q.types().contains(&Ty::Float);
        if want.is_none() && self.rng.pct(35) {
            q.order_by = (0..q.select.len())
                .map(|i| {
                    let nulls = match self.rng.below(3) {
                        0 => None,
                        1 => Some(true),
                        _ => Some(false),
                    };
                    (i, self.rng.pct(60), nulls)
                })
                .collect();
            if !has_float && self.rng.pct(70) {
                q.limit = Some(self.rng.below(12) as u64);
                if self.rng.pct(40) {
                    q.offset = Some(self.rng.below(6) as u64);
                }
            }
        }
        q
    }

    fn aggregate(&mut self, q: &mut Query, scope: &[Col]) {
        let keys = self.rng.below(3);
        for _ in 0..keys {
            let k = if self.rng.pct(75) {
                self.column(scope)
            } else {
                self.any_expr(scope, 1)
            };
            if matches!(k, E::Leaf(ref t, _) if !t.contains('.')) {
                continue; // a literal key: `GROUP BY 3` would name a position
            }
            q.group_by.push(k.clone());
            q.select.push(k);
        }
        for _ in 0..1 + self.rng.below(3) {
            let a = self.aggregate_expr(scope);
            q.select.push(a);
        }
        if self.rng.pct(25) {
            let a = self.aggregate_expr(scope);
            let lit = match a.ty() {
                Ty::Str => "'b'".to_string(),
                Ty::Date => "DATE '1995-01-01'".to_string(),
                _ => format!("{}", self.rng.below(50)),
            };
            let cmp = *self.rng.pick(&["<", ">", "=", "<>", ">="]);
            q.having = Some(op(&format!("({{0}} {cmp} {lit})"), vec![a], Ty::Bool));
        }
    }

    fn aggregate_expr(&mut self, scope: &[Col]) -> E {
        let c = self.column(scope);
        let distinct = if self.rng.pct(20) { "DISTINCT " } else { "" };
        match (self.rng.below(7), c.ty()) {
            (0, _) => E::Leaf("count(*)".into(), Ty::Int),
            (1, _) => op(&format!("count({distinct}{{0}})"), vec![c], Ty::Int),
            (2, t) if t.numeric() => op(&format!("sum({distinct}{{0}})"), vec![c], t),
            (3, t) if t.numeric() => {
                let out = if t == Ty::Dec { Ty::Dec } else { Ty::Float };
                op(&format!("avg({distinct}{{0}})"), vec![c], out)
            }
            (4, t) => op("min({0})", vec![c], t),
            (_, t) => op("max({0})", vec![c], t),
        }
    }

    fn window(&mut self, q: &mut Query, scope: &[Col]) {
        let table = match &q.from[0].rel {
            Rel::Table(p) => p.rsplit('.').next().unwrap_or_default().to_string(),
            Rel::Derived(_) => return,
        };
        let alias = q.from[0].alias.clone();
        let key: Vec<String> = unique_key(&table)
            .iter()
            .map(|k| format!("{alias}.{k}"))
            .collect();
        q.select = (0..1 + self.rng.below(2))
            .map(|_| self.column(scope))
            .collect();
        let part = if self.rng.pct(70) {
            format!("PARTITION BY {} ", self.column(scope).sql())
        } else {
            String::new()
        };
        let w = match self.rng.below(9) {
            6 => {
                let c = self.numeric_column(scope);
                op(
                    &format!(
                        "avg({{0}}) OVER ({part}ORDER BY {} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
                        key.join(", ")
                    ),
                    vec![c],
                    Ty::Float,
                )
            }
            7 => E::Leaf(format!("count(*) OVER ({part})"), Ty::Int),
            8 => {
                let c = self.column(scope);
                let t = c.ty();
                op(
                    &format!("min({{0}}) OVER ({part}ORDER BY {})", key.join(", ")),
                    vec![c],
                    t,
                )
            }
            0 => E::Leaf(
                format!("row_number() OVER ({part}ORDER BY {})", key.join(", ")),
                Ty::Int,
            ),
            1 => {
                let o = self.column(scope).sql();
                E::Leaf(format!("rank() OVER ({part}ORDER BY {o})"), Ty::Int)
            }
            2 => {
                let o = self.column(scope).sql();
                let dir = if self.rng.pct(50) { "DESC" } else { "ASC" };
                E::Leaf(
                    format!("dense_rank() OVER ({part}ORDER BY {o} {dir})"),
                    Ty::Int,
                )
            }
            3 => {
                let c = self.numeric_column(scope);
                let t = c.ty();
                op(&format!("sum({{0}}) OVER ({part})"), vec![c], t)
            }
            4 => {
                let c = self.numeric_column(scope);
                let t = c.ty();
                op(
                    &format!(
                        "sum({{0}}) OVER ({part}ORDER BY {} ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)",
                        key.join(", ")
                    ),
                    vec![c],
                    t,
                )
            }
            _ => {
                let c = self.column(scope);
                let t = c.ty();
                op(&format!("max({{0}}) OVER ({part})"), vec![c], t)
            }
        };
        q.select.push(w);
    }

    fn column(&mut self, scope: &[Col]) -> E {
        let c = &scope[self.rng.below(scope.len())];
        E::Leaf(c.sql.clone(), c.ty)
    }

    fn numeric_column(&mut self, scope: &[Col]) -> E {
        let nums: Vec<&Col> = scope.iter().filter(|c| c.ty.numeric()).collect();
        if nums.is_empty() {
            return E::Leaf("1".into(), Ty::Int);
        }
        let c = nums[self.rng.below(nums.len())];
        E::Leaf(c.sql.clone(), c.ty)
    }

    fn column_of(&mut self, scope: &[Col], ty: Ty) -> Option<E> {
        let cs: Vec<&Col> = scope
            .iter()
            .filter(|c| c.ty == ty || (ty.numeric() && c.ty.numeric() && ty != Ty::Int))
            .collect();
        if cs.is_empty() {
            return None;
        }
        let c = cs[self.rng.below(cs.len())];
        Some(E::Leaf(c.sql.clone(), c.ty))
    }

    fn literal(&mut self, ty: Ty) -> E {
        let s = match ty {
            Ty::Int => format!("{}", self.rng.below(40) as i64 - 5),
            Ty::Dec => format!("{}.{:02}", self.rng.below(3000), self.rng.below(100)),
            Ty::Float => format!("{}.5", self.rng.below(100)),
            Ty::Str => format!("'{}'", self.rng.pick(STRINGS).replace('\'', "''")),
            Ty::Date => format!(
                "DATE '199{}-{:02}-{:02}'",
                2 + self.rng.below(7),
                1 + self.rng.below(12),
                1 + self.rng.below(28)
            ),
            Ty::Bool => "TRUE".into(),
        };
        E::Leaf(s, ty)
    }

    fn any_expr(&mut self, scope: &[Col], depth: u32) -> E {
        let ty = *self.rng.pick(&[
            Ty::Int,
            Ty::Int,
            Ty::Dec,
            Ty::Str,
            Ty::Str,
            Ty::Date,
            Ty::Float,
        ]);
        self.expr(scope, ty, depth)
    }

    /// An expression of type `ty` (or a column of a compatible type).
    fn expr(&mut self, scope: &[Col], ty: Ty, depth: u32) -> E {
        if ty == Ty::Bool {
            return self.predicate(scope, 1, false);
        }
        if depth == 0 || self.rng.pct(40) {
            return match self.column_of(scope, ty) {
                Some(c) if self.rng.pct(80) => c,
                _ => self.literal(ty),
            };
        }
        let d = depth - 1;
        match ty {
            Ty::Int => match self.rng.below(11) {
                0 => op(
                    "({0} + {1})",
                    vec![self.expr(scope, Ty::Int, d), self.expr(scope, Ty::Int, d)],
                    Ty::Int,
                ),
                1 => op(
                    "({0} - {1})",
                    vec![self.expr(scope, Ty::Int, d), self.literal(Ty::Int)],
                    Ty::Int,
                ),
                2 => op("({0} * 3)", vec![self.expr(scope, Ty::Int, d)], Ty::Int),
                3 => op("({0} / 4)", vec![self.expr(scope, Ty::Int, d)], Ty::Int),
                4 => op("({0} % 7)", vec![self.expr(scope, Ty::Int, d)], Ty::Int),
                5 => op("abs({0})", vec![self.expr(scope, Ty::Int, d)], Ty::Int),
                6 => op(
                    "character_length({0})",
                    vec![self.expr(scope, Ty::Str, d)],
                    Ty::Int,
                ),
                7 => match self.column_of(scope, Ty::Date) {
                    Some(c) if self.rng.pct(50) => {
                        op("CAST(extract(year FROM {0}) AS BIGINT)", vec![c], Ty::Int)
                    }
                    Some(c) => op("CAST(date_part('month', {0}) AS BIGINT)", vec![c], Ty::Int),
                    None => self.literal(Ty::Int),
                },
                8 => op(
                    "coalesce({0}, 0)",
                    vec![self.expr(scope, Ty::Int, d)],
                    Ty::Int,
                ),
                9 => {
                    let p = self.predicate(scope, 0, false);
                    op(
                        "CASE WHEN {0} THEN {1} ELSE {2} END",
                        vec![p, self.expr(scope, Ty::Int, d), self.literal(Ty::Int)],
                        Ty::Int,
                    )
                }
                _ => op(
                    "({0} / {1})",
                    vec![self.expr(scope, Ty::Int, d), self.expr(scope, Ty::Int, d)],
                    Ty::Int,
                ),
            },
            Ty::Dec => match self.rng.below(7) {
                0 => op(
                    "({0} + {1})",
                    vec![self.expr(scope, Ty::Dec, d), self.expr(scope, Ty::Dec, d)],
                    Ty::Dec,
                ),
                1 => op(
                    "({0} * (1 - {1}))",
                    vec![self.expr(scope, Ty::Dec, d), self.literal(Ty::Dec)],
                    Ty::Dec,
                ),
                2 => op("({0} / 3)", vec![self.expr(scope, Ty::Dec, d)], Ty::Dec),
                3 => op(
                    "CAST({0} AS DECIMAL(20,2))",
                    vec![self.expr(scope, Ty::Int, d)],
                    Ty::Dec,
                ),
                4 => op("floor({0})", vec![self.expr(scope, Ty::Dec, d)], Ty::Dec),
                5 => op("(- {0})", vec![self.expr(scope, Ty::Dec, d)], Ty::Dec),
                _ => op(
                    "CAST({0} AS DECIMAL(12,1))",
                    vec![self.expr(scope, Ty::Dec, d)],
                    Ty::Dec,
                ),
            },
            Ty::Float => match self.rng.below(4) {
                0 => op(
                    "CAST({0} AS DOUBLE)",
                    vec![self.expr(scope, Ty::Int, d)],
                    Ty::Float,
                ),
                1 => op(
                    "({0} * 2.5)",
                    vec![self.expr(scope, Ty::Float, d)],
                    Ty::Float,
                ),
                2 => op(
                    "CAST({0} AS BIGINT)",
                    vec![self.expr(scope, Ty::Float, d)],
                    Ty::Int,
                ),
                _ => op(
                    "({0} / 2.0)",
                    vec![self.expr(scope, Ty::Float, d)],
                    Ty::Float,
                ),
            },
            Ty::Str => match self.rng.below(13) {
                0 => op("upper({0})", vec![self.expr(scope, Ty::Str, d)], Ty::Str),
                1 => op("lower({0})", vec![self.expr(scope, Ty::Str, d)], Ty::Str),
                2 => op(
                    "substr({0}, 1, 3)",
                    vec![self.expr(scope, Ty::Str, d)],
                    Ty::Str,
                ),
                3 => op(
                    "substr({0}, 2)",
                    vec![self.expr(scope, Ty::Str, d)],
                    Ty::Str,
                ),
                4 => op("trim({0})", vec![self.expr(scope, Ty::Str, d)], Ty::Str),
                5 => op(
                    "concat({0}, {1})",
                    vec![self.expr(scope, Ty::Str, d), self.expr(scope, Ty::Str, d)],
                    Ty::Str,
                ),
                6 => op(
                    "({0} || '-' || {1})",
                    vec![self.expr(scope, Ty::Str, d), self.expr(scope, Ty::Str, d)],
                    Ty::Str,
                ),
                7 => op(
                    "replace({0}, 'a', 'X')",
                    vec![self.expr(scope, Ty::Str, d)],
                    Ty::Str,
                ),
                8 => op(
                    "CAST({0} AS VARCHAR)",
                    vec![self.expr(scope, Ty::Int, d)],
                    Ty::Str,
                ),
                9 => op(
                    "lpad({0}, 6, '*')",
                    vec![self.expr(scope, Ty::Str, d)],
                    Ty::Str,
                ),
                10 => {
                    let p = self.predicate(scope, 0, false);
                    op(
                        "CASE WHEN {0} THEN {1} ELSE 'B' END",
                        vec![p, self.expr(scope, Ty::Str, d)],
                        Ty::Str,
                    )
                }
                11 => op(
                    "CAST({0} AS VARCHAR)",
                    vec![self.expr(scope, Ty::Dec, d)],
                    Ty::Str,
                ),
                _ => op(
                    "coalesce({0}, 'none')",
                    vec![self.expr(scope, Ty::Str, d)],
                    Ty::Str,
                ),
            },
            Ty::Date => match self.column_of(scope, Ty::Date) {
                Some(c) if self.rng.pct(50) => c,
                _ => self.literal(Ty::Date),
            },
            Ty::Bool => unreachable!("handled above"),
        }
    }

    /// A predicate; `subqueries` allows IN/EXISTS/scalar subqueries.
    fn predicate(&mut self, scope: &[Col], depth: u32, subqueries: bool) -> E {
        let k = self
            .rng
            .below(if subqueries && depth < 2 { 16 } else { 12 });
        match k {
            0 | 1 => {
                let ty = *self
                    .rng
                    .pick(&[Ty::Int, Ty::Dec, Ty::Str, Ty::Str, Ty::Date, Ty::Float]);
                let l = self.expr(scope, ty, 1);
                let r = if self.rng.pct(70) {
                    self.literal(ty)
                } else {
                    self.expr(scope, ty, 0)
                };
                let cmp = *self.rng.pick(&["=", "<>", "<", "<=", ">", ">="]);
                op(&format!("({{0}} {cmp} {{1}})"), vec![l, r], Ty::Bool)
            }
            2 => {
                let a = self.predicate(scope, depth + 1, false);
                let b = self.predicate(scope, depth + 1, false);
                op("({0} OR {1})", vec![a, b], Ty::Bool)
            }
            3 => {
                let a = self.predicate(scope, depth + 1, false);
                op("(NOT {0})", vec![a], Ty::Bool)
            }
            4 => {
                let e = self.column(scope);
                let not = if self.rng.pct(40) { " NOT" } else { "" };
                op(&format!("({{0}} IS{not} NULL)"), vec![e], Ty::Bool)
            }
            5 => {
                let ty = *self.rng.pick(&[Ty::Int, Ty::Str, Ty::Str, Ty::Dec]);
                let e = self.expr(scope, ty, 1);
                let n = 1 + self.rng.below(4);
                let list: Vec<String> = (0..n).map(|_| self.literal(ty).sql()).collect();
                let not = if self.rng.pct(30) { " NOT" } else { "" };
                op(
                    &format!("({{0}}{not} IN ({}))", list.join(", ")),
                    vec![e],
                    Ty::Bool,
                )
            }
            6 => {
                let ty = *self.rng.pick(&[Ty::Int, Ty::Str, Ty::Dec, Ty::Date]);
                let e = self.expr(scope, ty, 0);
                let (a, b) = (self.literal(ty), self.literal(ty));
                op(
                    &format!("({{0}} BETWEEN {} AND {})", a.sql(), b.sql()),
                    vec![e],
                    Ty::Bool,
                )
            }
            7 | 8 => {
                let e = self.expr(scope, Ty::Str, 1);
                let p = self.rng.pick(PATTERNS).to_string();
                let kind = *self.rng.pick(&["LIKE", "LIKE", "NOT LIKE", "ILIKE"]);
                op(&format!("({{0}} {kind} '{p}')"), vec![e], Ty::Bool)
            }
            9 => {
                let e = self.column(scope);
                let lit = self.literal(e.ty());
                if self.rng.pct(50) {
                    op("(coalesce({0}, {1}) = {1})", vec![e, lit], Ty::Bool)
                } else {
                    let not = if self.rng.pct(50) { " NOT" } else { "" };
                    op(
                        &format!("({{0}} IS{not} DISTINCT FROM {{1}})"),
                        vec![e, lit],
                        Ty::Bool,
                    )
                }
            }
            10 => {
                let a = self.predicate(scope, depth + 1, false);
                let b = self.predicate(scope, depth + 1, false);
                op("({0} AND {1})", vec![a, b], Ty::Bool)
            }
            11 => {
                let ty = *self.rng.pick(&[Ty::Int, Ty::Str]);
                match (self.column_of(scope, ty), self.column_of(scope, ty)) {
                    (Some(a), Some(b)) => op("({0} = {1})", vec![a, b], Ty::Bool),
                    _ => E::Leaf("TRUE".into(), Ty::Bool),
                }
            }
            _ => self.subquery_predicate(scope, depth),
        }
    }

    fn subquery_predicate(&mut self, scope: &[Col], depth: u32) -> E {
        // Correlate on a key column of the outer scope when there is one.
        let keyed: Vec<&Col> = scope
            .iter()
            .filter(|c| {
                c.origin.as_ref().is_some_and(|(t, col)| {
                    EDGES
                        .iter()
                        .any(|(a, ac, b, bc)| (a == t && ac == col) || (b == t && bc == col))
                })
            })
            .collect();
        if keyed.is_empty() {
            return E::Leaf("TRUE".into(), Ty::Bool);
        }
        let outer = keyed[self.rng.below(keyed.len())].clone();
        let (t, col) = outer.origin.clone().unwrap_or_default();
        let partner = EDGES.iter().find_map(|(a, ac, b, bc)| {
            if *a == t && *ac == col {
                Some((b.to_string(), bc.to_string()))
            } else if *b == t && *bc == col {
                Some((a.to_string(), ac.to_string()))
            } else {
                None
            }
        });
        let Some((inner_table, inner_col)) = partner else {
            return E::Leaf("TRUE".into(), Ty::Bool);
        };
        let domain = self.domain();
        let port = format!("{domain}.tpch.{inner_table}");
        let alias = self.alias("sq");
        let cols = self.columns_of(&port, &alias);
        let inner_key = E::Leaf(format!("{alias}.{inner_col}"), outer.ty);
        let mut inner = Query {
            from: vec![FromItem {
                join: JoinKind::First,
                rel: Rel::Table(port),
                alias: alias.clone(),
                on: None,
            }],
            ..Query::default()
        };
        if self.rng.pct(60) {
            inner.where_ = Some(self.predicate(&cols, depth + 1, false));
        }
        let outer_e = E::Leaf(outer.sql.clone(), outer.ty);
        match self.rng.below(5) {
            0 | 1 => {
                inner.select = vec![inner_key];
                let not = if self.rng.pct(35) { " NOT" } else { "" };
                E::Sub(
                    format!("({{0}}{not} IN ({{q}}))"),
                    Box::new(inner),
                    vec![outer_e],
                    Ty::Bool,
                )
            }
            2 | 3 => {
                inner.select = vec![E::Leaf("1".into(), Ty::Int)];
                let corr = op("({0} = {1})", vec![inner_key, outer_e], Ty::Bool);
                inner.where_ = Some(match inner.where_.take() {
                    Some(w) => op("({0} AND {1})", vec![corr, w], Ty::Bool),
                    None => corr,
                });
                let not = if self.rng.pct(35) { "NOT " } else { "" };
                E::Sub(
                    format!("({not}EXISTS ({{q}}))"),
                    Box::new(inner),
                    vec![],
                    Ty::Bool,
                )
            }
            _ => {
                let num = self.numeric_column(&cols);
                let t = num.ty();
                inner.select = vec![op("max({0})", vec![num], t)];
                let corr = op("({0} = {1})", vec![inner_key, outer_e], Ty::Bool);
                inner.where_ = Some(corr);
                let lit = self.literal(if t == Ty::Int { Ty::Int } else { Ty::Dec });
                E::Sub(
                    "(({q}) > {0})".to_string(),
                    Box::new(inner),
                    vec![lit],
                    Ty::Bool,
                )
            }
        }
    }
}

/// Whether `e` contains an aggregate call.
pub fn has_aggregate(e: &E) -> bool {
    e.has_aggregate()
}
