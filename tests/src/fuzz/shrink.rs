//! Smaller variants of a query, for shrinking a failure to a minimal reproduction: each
//! candidate cuts one thing (a clause, a result column, a relation, an expression node). A
//! candidate that no longer plans fails in both engines and is dropped by the caller.

use super::gen::{Query, Rel, E};

/// Every query one cut smaller than `q`, most promising first.
pub fn candidates(q: &Query) -> Vec<Query> {
    let mut out = Vec::new();
    let mut push = |c: Query| out.push(c);
    if let Some(u) = &q.union_all {
        let mut c = q.clone();
        c.union_all = None;
        push(c);
        let mut c = (**u).clone();
        c.order_by.clone_from(&q.order_by);
        c.limit = q.limit;
        c.offset = q.offset;
        push(c);
    }
    if q.from.len() > 1 {
        for i in (1..q.from.len()).rev() {
            let mut c = q.clone();
            c.from.remove(i);
            push(c);
        }
    }
    if q.where_.is_some() {
        let mut c = q.clone();
        c.where_ = None;
        push(c);
    }
    if q.having.is_some() {
        let mut c = q.clone();
        c.having = None;
        push(c);
    }
    if q.limit.is_some() || q.offset.is_some() {
        let mut c = q.clone();
        c.offset = None;
        push(c.clone());
        c.limit = None;
        push(c);
    }
    if !q.order_by.is_empty() && q.limit.is_none() && q.offset.is_none() {
        let mut c = q.clone();
        c.order_by.clear();
        push(c);
    }
    if q.distinct {
        let mut c = q.clone();
        c.distinct = false;
        push(c);
    }
    if q.select.len() > 1 {
        for i in (0..q.select.len()).rev() {
            let mut c = q.clone();
            c.select.remove(i);
            if let Some(u) = c.union_all.as_mut() {
                u.select.remove(i);
            }
            c.order_by = c
                .order_by
                .iter()
                .filter(|(k, ..)| *k != i)
                .map(|(k, a, n)| (if *k > i { k - 1 } else { *k }, *a, *n))
                .collect();
            push(c);
        }
    }
    for i in (0..q.group_by.len()).rev() {
        let mut c = q.clone();
        let key = c.group_by.remove(i).sql();
        if let Some(pos) = c.select.iter().position(|e| e.sql() == key) {
            c.select.remove(pos);
            c.order_by = c
                .order_by
                .iter()
                .filter(|(k, ..)| *k != pos)
                .map(|(k, a, n)| (if *k > pos { k - 1 } else { *k }, *a, *n))
                .collect();
        }
        push(c);
    }
    // Smaller expressions, clause by clause.
    if let Some(w) = &q.where_ {
        for s in simpler(w) {
            let mut c = q.clone();
            c.where_ = Some(s);
            push(c);
        }
    }
    for (i, e) in q.select.iter().enumerate() {
        for s in simpler(e) {
            let mut c = q.clone();
            c.select[i] = s;
            push(c);
        }
    }
    if let Some(h) = &q.having {
        for s in simpler(h) {
            let mut c = q.clone();
            c.having = Some(s);
            push(c);
        }
    }
    for (i, f) in q.from.iter().enumerate() {
        if let Some(on) = &f.on {
            for s in simpler(on) {
                let mut c = q.clone();
                c.from[i].on = Some(s);
                push(c);
            }
        }
        if let Rel::Derived(inner) = &f.rel {
            for s in candidates(inner) {
                if s.select.len() == inner.select.len() {
                    let mut c = q.clone();
                    c.from[i].rel = Rel::Derived(Box::new(s));
                    push(c);
                }
            }
        }
    }
    out
}

/// `e` with one node replaced by one of its arguments of the same type, or a subquery made
/// smaller.
pub fn simpler(e: &E) -> Vec<E> {
    let mut out = Vec::new();
    match e {
        E::Leaf(..) => {}
        E::Op(t, args, ty) => {
            for a in args {
                if a.ty() == *ty {
                    out.push(a.clone());
                }
            }
            for (i, a) in args.iter().enumerate() {
                for s in simpler(a) {
                    let mut args = args.clone();
                    args[i] = s;
                    out.push(E::Op(t.clone(), args, *ty));
                }
            }
        }
        E::Sub(t, q, args, ty) => {
            for c in candidates(q) {
                out.push(E::Sub(t.clone(), Box::new(c), args.clone(), *ty));
            }
        }
    }
    out
}
