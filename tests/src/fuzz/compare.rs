//! Comparing two answers: values normalized across Arrow types (strings of any kind,
//! integers, exact decimals, floats within a relative tolerance), rows compared in order
//! when the query orders them fully, as multisets otherwise.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Decimal128Type, Float64Type, Int64Type};

/// One value, comparable across the types two engines may use for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i128),
    /// An exact decimal: unscaled value and scale.
    Dec(i128, i8),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A date (days since the epoch).
    Date(i32),
    /// Anything else, as text.
    Other(String),
}

impl Val {
    fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Dec(v, s) => Some(*v as f64 / 10f64.powi(i32::from(*s))),
            Val::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// A sort key that equal values share (floats rounded).
    fn key(&self) -> String {
        match self {
            Val::Null => "\u{0}null".into(),
            Val::Bool(b) => format!("b{b}"),
            Val::Str(s) => format!("s{s}"),
            Val::Date(d) => format!("d{d:012}"),
            Val::Other(s) => format!("o{s}"),
            Val::Int(i) => format!("n{i}"),
            Val::Dec(v, s) => {
                // Exact, without trailing zeros: 1.50 and 1.5 share a key.
                let (mut v, mut s) = (*v, *s);
                while s > 0 && v % 10 == 0 {
                    v /= 10;
                    s -= 1;
                }
                if s == 0 {
                    format!("n{v}")
                } else {
                    format!("n{v}e-{s}")
                }
            }
            Val::Float(f) => format!("f{f:+.11e}"),
        }
    }
}

/// Whether two values are the same answer.
pub fn same(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Dec(x, s), Val::Dec(y, t)) if s == t => x == y,
        (Val::Dec(..) | Val::Int(_), Val::Dec(..) | Val::Int(_)) => {
            // Exact when both are exact: compare at the larger scale.
            let (x, s) = exact(a);
            let (y, t) = exact(b);
            let scale = s.max(t);
            rescale(x, s, scale) == rescale(y, t, scale)
        }
        (Val::Float(_), _) | (_, Val::Float(_)) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => false,
        },
        _ => a == b,
    }
}

fn exact(v: &Val) -> (i128, i8) {
    match v {
        Val::Int(i) => (*i, 0),
        Val::Dec(x, s) => (*x, *s),
        _ => (0, 0),
    }
}

fn rescale(v: i128, from: i8, to: i8) -> Option<i128> {
    v.checked_mul(10i128.checked_pow(u32::try_from(to - from).ok()?)?)
}

/// Rows of `batches` as values.
pub fn rows(batches: &[RecordBatch]) -> Vec<Vec<Val>> {
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<Vec<Val>> = b.columns().iter().map(|c| values(c.as_ref())).collect();
        for r in 0..b.num_rows() {
            out.push(cols.iter().map(|c| c[r].clone()).collect());
        }
    }
    out
}

fn values(a: &dyn Array) -> Vec<Val> {
    let n = a.len();
    let nulls = |v: Vec<Val>| -> Vec<Val> {
        v.into_iter()
            .enumerate()
            .map(|(i, x)| if a.is_null(i) { Val::Null } else { x })
            .collect()
    };
    match a.data_type() {
        DataType::Boolean => {
            let b = a.as_boolean();
            nulls((0..n).map(|i| Val::Bool(b.value(i))).collect())
        }
        t if t.is_integer() => {
            let c = cast(a, &DataType::Int64).expect("int");
            let p = c.as_primitive::<Int64Type>();
            nulls((0..n).map(|i| Val::Int(i128::from(p.value(i)))).collect())
        }
        DataType::Decimal128(_, s) => {
            let p = a.as_primitive::<Decimal128Type>();
            nulls((0..n).map(|i| Val::Dec(p.value(i), *s)).collect())
        }
        t if t.is_floating() => {
            let c = cast(a, &DataType::Float64).expect("float");
            let p = c.as_primitive::<Float64Type>();
            nulls((0..n).map(|i| Val::Float(p.value(i))).collect())
        }
        DataType::Date32 => {
            let p = a.as_primitive::<Date32Type>();
            nulls((0..n).map(|i| Val::Date(p.value(i))).collect())
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
            let c = cast(a, &DataType::Utf8).expect("string");
            let s = c.as_string::<i32>();
            nulls((0..n).map(|i| Val::Str(s.value(i).to_string())).collect())
        }
        _ => {
            let f =
                datafusion::arrow::util::display::ArrayFormatter::try_new(a, &Default::default())
                    .expect("formatter");
            nulls((0..n).map(|i| Val::Other(f.value(i).to_string())).collect())
        }
    }
}

fn same_row(a: &[Val], b: &[Val]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
}

/// Why two answers differ, or `None` when they are the same. `ordered`: the row order is
/// part of the answer.
pub fn diff(got: &[Vec<Val>], want: &[Vec<Val>], ordered: bool) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!(
            "{} rows where {} were expected",
            got.len(),
            want.len()
        ));
    }
    if ordered {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            if !same_row(g, w) {
                return Some(format!("row {i} is {g:?} where {w:?} was expected"));
            }
        }
        return None;
    }
    let key = |r: &Vec<Val>| r.iter().map(Val::key).collect::<Vec<_>>().join("\u{1}");
    let mut g: Vec<&Vec<Val>> = got.iter().collect();
    let mut w: Vec<&Vec<Val>> = want.iter().collect();
    g.sort_by_key(|r| key(r));
    w.sort_by_key(|r| key(r));
    if g.iter().zip(&w).all(|(a, b)| same_row(a, b)) {
        return None;
    }
    // Near-equal floats may round to different keys: match rows one by one within the
    // groups of rows that agree on everything but their floats.
    let exact = |r: &Vec<Val>| {
        r.iter()
            .map(|v| match v {
                Val::Float(_) => "f".to_string(),
                other => other.key(),
            })
            .collect::<Vec<_>>()
            .join("\u{1}")
    };
    let mut groups: std::collections::HashMap<String, Vec<&Vec<Val>>> =
        std::collections::HashMap::new();
    for r in want {
        groups.entry(exact(r)).or_default().push(r);
    }
    for row in got {
        let Some(candidates) = groups.get_mut(&exact(row)) else {
            return Some(format!("row {row:?} is not expected"));
        };
        match candidates.iter().position(|c| same_row(row, c)) {
            Some(j) => {
                candidates.swap_remove(j);
            }
            None => return Some(format!("row {row:?} is not expected")),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_across_types() {
        assert!(same(&Val::Dec(150, 2), &Val::Dec(15, 1)));
        assert!(same(&Val::Int(3), &Val::Dec(300, 2)));
        assert!(!same(&Val::Dec(333_333, 6), &Val::Dec(3_333, 4)));
        assert!(same(&Val::Float(0.1 + 0.2), &Val::Float(0.3)));
        assert!(!same(&Val::Float(3.3333), &Val::Float(3.333_333)));
        assert!(!same(&Val::Str("a".into()), &Val::Str("A".into())));
    }

    #[test]
    fn multisets_and_order() {
        let a = vec![vec![Val::Int(1)], vec![Val::Int(2)]];
        let b = vec![vec![Val::Int(2)], vec![Val::Int(1)]];
        assert!(diff(&a, &b, false).is_none());
        assert!(diff(&a, &b, true).is_some());
        assert!(diff(&a, &a[..1], false).is_some());
    }
}
