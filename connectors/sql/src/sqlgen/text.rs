//! The text of joins, window functions and SELECT lists.

use super::*;

impl Gen<'_> {
    pub(super) fn join(&mut self, j: &datafusion::logical_expr::Join) -> R<Block> {
        let (kind, semi) = match j.join_type {
            JoinType::Inner => ("INNER JOIN", None),
            JoinType::Left => ("LEFT JOIN", None),
            JoinType::Right if self.sem.caps().right_join => ("RIGHT JOIN", None),
            JoinType::Full if self.sem.caps().full_join => ("FULL JOIN", None),
            JoinType::LeftSemi => ("", Some((false, false))),
            JoinType::LeftAnti => ("", Some((false, true))),
            JoinType::RightSemi => ("", Some((true, false))),
            JoinType::RightAnti => ("", Some((true, true))),
            other => return Err(Refusal::new(format!("{other} join"))),
        };
        if j.null_aware
            && (j.join_type != JoinType::LeftAnti || j.on.len() != 1 || j.filter.is_some())
        {
            // An uncorrelated `x NOT IN (SELECT y ...)` is written as such below; SQL's NOT
            // IN has DataFusion's NULL rules. Other null-aware joins stay in the gateway.
            return Err(Refusal::new(
                "a correlated NOT IN over values that may be NULL",
            ));
        }
        let null_safe = j.null_equality == NullEquality::NullEqualsNull;
        if null_safe && !self.sem.caps().distinct_from {
            return Err(Refusal::new("null-safe join keys"));
        }
        let (ls, rs) = (j.left.schema(), j.right.schema());
        let mut on = Vec::new();
        for (l, r) in &j.on {
            self.sem.equality_ok(&type_of(l, ls)?)?;
            on.push((self.sem.expr(l, ls)?, self.sem.expr(r, rs)?));
        }
        let combined = ls
            .join(rs)
            .map_err(|e| Refusal::new(format!("join schema: {e}")))?;
        let filter = j
            .filter
            .as_ref()
            .map(|f| self.sem.expr(f, &combined))
            .transpose()?;
        let op = if null_safe {
            Operator::IsNotDistinctFrom
        } else {
            Operator::Eq
        };
        let lb = self.plan(&j.left)?;
        let rb = self.plan(&j.right)?;
        let conditions = |g: &Gen<'_>, litems: &[Item], ritems: &[Item]| -> R<Vec<String>> {
            let mut out = Vec::new();
            for (l, r) in &on {
                let l = subst(l, ls, litems).ok_or_else(|| Refusal::new("join key"))?;
                let r = subst(r, rs, ritems).ok_or_else(|| Refusal::new("join key"))?;
                out.push(g.render(&Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(l),
                    op,
                    Box::new(r),
                )))?);
            }
            if let Some(f) = &filter {
                let both: Vec<Item> = litems.iter().chain(ritems).cloned().collect();
                let f = subst(f, &combined, &both).ok_or_else(|| Refusal::new("join filter"))?;
                out.push(g.render(&f)?);
            }
            Ok(out)
        };
        match semi {
            None => {
                let (lf, litems) = self.relation(lb, true)?;
                let (rf, ritems) = self.relation(rb, false)?;
                let conds = conditions(self, &litems, &ritems)?;
                let (kind, on) = match (conds.is_empty(), kind) {
                    (true, "INNER JOIN") => ("CROSS JOIN", None),
                    (true, k) => (k, Some("1 = 1".to_string())),
                    (false, k) => (
                        k,
                        Some(
                            conds
                                .iter()
                                .map(|c| format!("({c})"))
                                .collect::<Vec<_>>()
                                .join(" AND "),
                        ),
                    ),
                };
                Ok(Block {
                    from: Some(From::Join {
                        left: Box::new(lf),
                        right: Box::new(rf),
                        kind,
                        on,
                    }),
                    items: litems.into_iter().chain(ritems).collect(),
                    ..Block::default()
                })
            }
            Some((right_kept, anti)) => {
                let (outer, inner) = if right_kept { (rb, lb) } else { (lb, rb) };
                let mut outer = if outer.can_filter()
                    && outer.order_by.is_empty()
                    && outer.items.iter().all(|i| matches!(i, Item::Expr(_)))
                {
                    outer
                } else {
                    self.wrap(outer)?
                };
                let inner = if inner.can_filter()
                    && inner.order_by.is_empty()
                    && inner.items.iter().all(|i| matches!(i, Item::Expr(_)))
                {
                    inner
                } else {
                    self.wrap(inner)?
                };
                let conds = if right_kept {
                    conditions(self, &inner.items, &outer.items)?
                } else {
                    conditions(self, &outer.items, &inner.items)?
                };
                let inner_from = inner
                    .from
                    .as_ref()
                    .ok_or_else(|| Refusal::new("a semi-join input without a relation"))?;
                if j.null_aware {
                    let (l, r) = &on[0];
                    let l = subst(l, ls, &outer.items).ok_or_else(|| Refusal::new("join key"))?;
                    let r = subst(r, rs, &inner.items).ok_or_else(|| Refusal::new("join key"))?;
                    let mut sub = format!(
                        "SELECT {} FROM {}",
                        self.render(&r)?,
                        self.relation_sql(inner_from)
                    );
                    if !inner.where_.is_empty() {
                        sub.push_str(" WHERE ");
                        sub.push_str(&and(&inner.where_));
                    }
                    outer
                        .where_
                        .push(format!("{} NOT IN ({sub})", self.render(&l)?));
                    return Ok(outer);
                }
                let mut sub = format!("SELECT 1 FROM {}", self.relation_sql(inner_from));
                let wheres: Vec<String> = inner.where_.iter().chain(&conds).cloned().collect();
                if !wheres.is_empty() {
                    sub.push_str(" WHERE ");
                    sub.push_str(&and(&wheres));
                }
                outer
                    .where_
                    .push(format!("{}EXISTS ({sub})", if anti { "NOT " } else { "" }));
                Ok(outer)
            }
        }
    }

    pub(super) fn window_sql(&self, e: &Expr, schema: &DFSchema, items: &[Item]) -> R<String> {
        let Expr::WindowFunction(w) = strip(e) else {
            return Err(Refusal::new("not a window function"));
        };
        let WindowFunction {
            fun,
            params:
                WindowFunctionParams {
                    args,
                    partition_by,
                    order_by,
                    window_frame,
                    filter,
                    null_treatment,
                    distinct,
                },
        } = w.as_ref();
        if filter.is_some() || null_treatment.is_some() || *distinct {
            return Err(Refusal::new(
                "window function with FILTER, NULLS or DISTINCT",
            ));
        }
        let caps = self.sem.caps();
        let (name, args, ranking) = match fun {
            WindowFunctionDefinition::WindowUDF(f) => {
                if !caps.ranking_functions.contains(&f.name()) || !args.is_empty() {
                    return Err(Refusal::new(format!("window function {}", f.name())));
                }
                (f.name().to_string(), vec![], true)
            }
            WindowFunctionDefinition::AggregateUDF(f) => {
                let agg = Expr::AggregateFunction(AggregateFunction::new_udf(
                    std::sync::Arc::clone(f),
                    args.clone(),
                    false,
                    None,
                    vec![],
                    None,
                ));
                let Expr::AggregateFunction(agg) = self.sem.aggregate(&agg, schema)? else {
                    return Err(Refusal::new("window aggregate"));
                };
                (f.name().to_string(), agg.params.args, false)
            }
        };
        let sub = |e: &Expr| -> R<Expr> {
            subst(e, schema, items).ok_or_else(|| Refusal::new("window argument"))
        };
        let mut parts = Vec::new();
        if !partition_by.is_empty() {
            let mut keys = Vec::new();
            for p in partition_by {
                self.sem.equality_ok(&type_of(p, schema)?)?;
                keys.push(self.render(&sub(&self.sem.expr(p, schema)?)?)?);
            }
            parts.push(format!("PARTITION BY {}", keys.join(", ")));
        }
        if !order_by.is_empty() {
            let mut keys = Vec::new();
            for o in order_by {
                let nullable = o.expr.nullable(schema).unwrap_or(true);
                let o = self.sem.sort(o, schema)?;
                let e = sub(&o.expr)?;
                keys.push(self.order_key(&SortExpr { expr: e, ..o }, nullable)?);
            }
            parts.push(format!("ORDER BY {}", keys.join(", ")));
        }
        if !ranking {
            let f = window_frame;
            let unbounded = |b: &WindowFrameBound| match b {
                WindowFrameBound::Preceding(v) | WindowFrameBound::Following(v) => v.is_null(),
                WindowFrameBound::CurrentRow => false,
            };
            let whole = unbounded(&f.start_bound) && unbounded(&f.end_bound);
            let default_running = f.units == WindowFrameUnits::Range
                && unbounded(&f.start_bound)
                && matches!(f.end_bound, WindowFrameBound::CurrentRow);
            if order_by.is_empty() && whole || !order_by.is_empty() && default_running {
                // SQL's default frame is DataFusion's.
            } else if f.units == WindowFrameUnits::Rows || whole {
                let units = if f.units == WindowFrameUnits::Rows {
                    "ROWS"
                } else {
                    "RANGE"
                };
                parts.push(format!(
                    "{units} BETWEEN {} AND {}",
                    frame_bound(&f.start_bound)?,
                    frame_bound(&f.end_bound)?
                ));
            } else {
                return Err(Refusal::new("RANGE or GROUPS frame with offsets"));
            }
        }
        let args = args
            .iter()
            .map(|a| self.render(&sub(a)?))
            .collect::<R<Vec<_>>>()?;
        Ok(format!(
            "{name}({}) OVER ({})",
            args.join(", "),
            parts.join(" ")
        ))
    }

    /// One `ORDER BY` key (or two, where NULL placement needs its own key).
    pub(super) fn order_key(&self, s: &SortExpr, nullable: bool) -> R<String> {
        let e = self.render(&s.expr)?;
        let dir = if s.asc { "ASC" } else { "DESC" };
        Ok(match self.sem.caps().nulls {
            NullsOrdering::Emulated if !nullable => format!("{e} {dir}"),
            NullsOrdering::Explicit => format!(
                "{e} {dir} NULLS {}",
                if s.nulls_first { "FIRST" } else { "LAST" }
            ),
            NullsOrdering::Emulated => format!(
                "({e} IS NULL) {}, {e} {dir}",
                if s.nulls_first { "DESC" } else { "ASC" }
            ),
        })
    }

    pub(super) fn relation_sql(&self, f: &From) -> String {
        match f {
            From::Table { sql, alias } => format!("{sql} AS {}", self.dialect.ident(alias)),
            From::Derived { sql, alias } => format!("({sql}) AS {}", self.dialect.ident(alias)),
            From::Join {
                left,
                right,
                kind,
                on,
            } => {
                let mut s = format!(
                    "{} {kind} {}",
                    self.relation_sql(left),
                    self.relation_sql(right)
                );
                if let Some(on) = on {
                    s.push_str(" ON ");
                    s.push_str(on);
                }
                s
            }
        }
    }

    /// The block as one `SELECT` whose result columns are `c0`, `c1`, ...
    pub(super) fn select(&self, b: &Block) -> R<String> {
        self.select_named(b, &|i| format!("c{i}"))
    }

    /// The block as one `SELECT` whose result columns are named by `name`.
    pub(super) fn select_named(&self, b: &Block, name: &dyn Fn(usize) -> String) -> R<String> {
        let mut s = String::from("SELECT ");
        if b.distinct {
            s.push_str("DISTINCT ");
        }
        if b.items.is_empty() {
            let dummy = if b.group_by.as_ref().is_some_and(Vec::is_empty) {
                "count(*)"
            } else {
                "1"
            };
            s.push_str(&format!("{dummy} AS {}", self.dialect.ident(&name(0))));
        } else {
            let mut cols = Vec::with_capacity(b.items.len());
            for (i, item) in b.items.iter().enumerate() {
                let sql = match item {
                    Item::Expr(e) => self.render(&self.typed_null(e))?,
                    Item::Sql(s) => s.clone(),
                };
                cols.push(format!("{sql} AS {}", self.dialect.ident(&name(i))));
            }
            s.push_str(&cols.join(", "));
        }
        if let Some(f) = &b.from {
            s.push_str(" FROM ");
            s.push_str(&self.relation_sql(f));
        }
        if !b.where_.is_empty() {
            s.push_str(" WHERE ");
            s.push_str(&and(&b.where_));
        }
        // DataFusion servers are given result columns by name where a key or a sort key is
        // one: some of their plans fail on expressions repeated from the select list (two
        // casts of one column share a name in DataFusion).
        let by_name = self.sem.caps().flavor == crate::capability::Flavor::DataFusion;
        let item_of = |e: &Expr| {
            b.items
                .iter()
                .position(|i| matches!(i, Item::Expr(x) if x == e))
        };
        if let Some(keys) = &b.group_by {
            if !keys.is_empty() {
                let keys: Vec<String> = keys
                    .iter()
                    .map(|(e, sql)| match item_of(e) {
                        Some(i) if by_name => self.dialect.ident(&name(i)),
                        _ => sql.clone(),
                    })
                    .collect();
                s.push_str(" GROUP BY ");
                s.push_str(&keys.join(", "));
            }
        }
        if !b.order_by.is_empty() {
            let keys: Vec<String> = b
                .order_by
                .iter()
                .map(|k| match item_of(&k.expr) {
                    Some(i) if by_name => format!(
                        "{} {} NULLS {}",
                        self.dialect.ident(&name(i)),
                        if k.asc { "ASC" } else { "DESC" },
                        if k.nulls_first { "FIRST" } else { "LAST" }
                    ),
                    _ => k.sql.clone(),
                })
                .collect();
            s.push_str(" ORDER BY ");
            s.push_str(&keys.join(", "));
        }
        match (b.limit, b.offset) {
            (Some(n), 0) => s.push_str(&format!(" LIMIT {n}")),
            (Some(n), m) => s.push_str(&format!(" LIMIT {n} OFFSET {m}")),
            (None, 0) => {}
            (None, m) => s.push_str(&match self.sem.caps().offset {
                OffsetForm::Alone => format!(" OFFSET {m}"),
                OffsetForm::LimitMinusOne => format!(" LIMIT -1 OFFSET {m}"),
                OffsetForm::LimitMax => format!(" LIMIT 18446744073709551615 OFFSET {m}"),
            }),
        }
        Ok(s)
    }

    /// A bare `NULL` in a select list has no type in PostgreSQL (`text` once it is read
    /// from a derived table): write typed NULLs as casts.
    pub(super) fn typed_null(&self, e: &Expr) -> Expr {
        match e {
            Expr::Literal(v, _)
                if v.is_null()
                    && !matches!(v, ScalarValue::Null)
                    && self.sem.caps().flavor == crate::capability::Flavor::Postgres =>
            {
                Expr::Cast(datafusion::logical_expr::Cast::new(
                    Box::new(Expr::Literal(ScalarValue::Null, None)),
                    v.data_type(),
                ))
            }
            other => other.clone(),
        }
    }
}

pub(super) fn and(conds: &[String]) -> String {
    conds
        .iter()
        .map(|c| format!("({c})"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

pub(super) fn frame_bound(b: &WindowFrameBound) -> R<String> {
    let n = |v: &ScalarValue| -> R<String> {
        match v {
            ScalarValue::UInt64(Some(n)) => Ok(n.to_string()),
            ScalarValue::Int64(Some(n)) if *n >= 0 => Ok(n.to_string()),
            other => Err(Refusal::new(format!("frame bound {other}"))),
        }
    };
    Ok(match b {
        WindowFrameBound::CurrentRow => "CURRENT ROW".into(),
        WindowFrameBound::Preceding(v) if v.is_null() => "UNBOUNDED PRECEDING".into(),
        WindowFrameBound::Following(v) if v.is_null() => "UNBOUNDED FOLLOWING".into(),
        WindowFrameBound::Preceding(v) => format!("{} PRECEDING", n(v)?),
        WindowFrameBound::Following(v) => format!("{} FOLLOWING", n(v)?),
    })
}
