//! Expressions a source evaluates with DataFusion's meaning, and the rewrites that make
//! them so.
//!
//! Each expression of a plan node is checked against the source's [`Capabilities`] with the
//! types of the node's input: what a dialect would evaluate differently (a division that may
//! hit zero, a cast that rounds where DataFusion truncates, a case-insensitive `LIKE`, a
//! string sort under a locale) is refused, and the node runs in the gateway. Some
//! constructs are rewritten instead: string ordering on PostgreSQL is forced to the `"C"`
//! collation, SQLite's `LIKE` becomes `GLOB`, MySQL's `avg` of integers is computed over
//! doubles. The rewrites use marker functions ([`crate::unparse`]) that only the
//! dialect's unparser knows how to write.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::expr::{AggregateFunction, ScalarFunction};
use datafusion::logical_expr::{
    Between, BinaryExpr, Cast, Expr, ExprSchemable, Like, Operator, SortExpr,
};

use crate::capability::{Capabilities, Flavor, LikeSupport, StringSemantics};
use crate::unparse::{collate, glob, is_marker, trunc};

/// Why a construct is not pushed to a source. Never shown to users as an error: the
/// construct runs in the gateway instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl Refusal {
    pub(crate) fn new(why: impl Into<String>) -> Self {
        Self(why.into())
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) type R<T> = std::result::Result<T, Refusal>;

/// Whether `t` is a string type.
pub fn is_string(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_string(v),
        _ => false,
    }
}

fn is_numeric(t: &DataType) -> bool {
    t.is_integer() || t.is_floating() || is_decimal(t)
}

fn is_decimal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
    )
}

fn is_unsigned(t: &DataType) -> bool {
    matches!(
        t,
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64
    )
}

fn decimal_ps(t: &DataType) -> Option<(i16, i16)> {
    match t {
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
            Some((i16::from(*p), i16::from(*s)))
        }
        DataType::Decimal256(p, s) => Some((i16::from(*p), i16::from(*s))),
        _ => None,
    }
}

/// A literal, under any casts of it.
fn literal_of(e: &Expr) -> Option<&ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v),
        Expr::Cast(Cast { expr, .. }) => literal_of(expr),
        Expr::Alias(a) => literal_of(&a.expr),
        _ => None,
    }
}

fn nonzero_literal(e: &Expr) -> bool {
    literal_of(e).is_some_and(|v| {
        let numeric = is_numeric(&v.data_type());
        numeric && !v.is_null() && ScalarValue::new_zero(&v.data_type()).is_ok_and(|z| z != *v)
    })
}

fn literal_int(e: &Expr) -> Option<i64> {
    match literal_of(e)? {
        ScalarValue::Int8(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int16(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int32(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int64(Some(v)) => Some(*v),
        ScalarValue::UInt8(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt16(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt32(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt64(Some(v)) => i64::try_from(*v).ok(),
        _ => None,
    }
}

fn literal_str(e: &Expr) -> Option<&str> {
    match literal_of(e)? {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s),
        _ => None,
    }
}

/// Checks and rewrites expressions for one source.
#[derive(Debug, Clone, Copy)]
pub struct Semantics<'a> {
    caps: &'a Capabilities,
}

impl<'a> Semantics<'a> {
    /// The rules of `caps`.
    pub fn new(caps: &'a Capabilities) -> Self {
        Self { caps }
    }

    /// The capabilities.
    pub fn caps(&self) -> &Capabilities {
        self.caps
    }

    fn df(&self) -> bool {
        self.caps.datafusion_semantics
    }

    /// Whether strings of type `t` may be compared, grouped, joined or made distinct on the
    /// source (equality contexts).
    pub fn equality_ok(&self, t: &DataType) -> R<()> {
        if is_string(t) && self.caps.strings == StringSemantics::Unknown {
            return Err(Refusal::new("string comparison under an unknown collation"));
        }
        Ok(())
    }

    /// Checks a sort key (typed against `schema`) and forces a binary collation on string
    /// keys where the dialect needs it.
    pub fn sort(&self, s: &SortExpr, schema: &DFSchema) -> R<SortExpr> {
        let expr = self.expr(&s.expr, schema)?;
        let t = type_of(&expr, schema)?;
        Ok(SortExpr {
            expr: self.ordered(expr, &t)?,
            asc: s.asc,
            nulls_first: s.nulls_first,
        })
    }

    /// `e` of type `t` used in an ordering context (`<`, `ORDER BY`, `min`).
    fn ordered(&self, e: Expr, t: &DataType) -> R<Expr> {
        if !is_string(t) {
            return Ok(e);
        }
        match self.caps.strings {
            StringSemantics::Binary | StringSemantics::ForcedAtSource => Ok(e),
            StringSemantics::OrderingCollation => Ok(collate(e)),
            StringSemantics::Unknown => {
                Err(Refusal::new("string ordering under an unknown collation"))
            }
        }
    }

    /// Checks an aggregate expression of an `Aggregate` node (possibly aliased) and writes
    /// it so the source computes DataFusion's value.
    pub fn aggregate(&self, e: &Expr, schema: &DFSchema) -> R<Expr> {
        let inner = match e {
            Expr::Alias(a) => a.expr.as_ref(),
            other => other,
        };
        let Expr::AggregateFunction(AggregateFunction { func, params }) = inner else {
            return Err(Refusal::new("not an aggregate function"));
        };
        let name = func.name();
        if !self.caps.aggregate_functions.contains(&name) {
            return Err(Refusal::new(format!("aggregate {name}")));
        }
        if params.filter.is_some() || !params.order_by.is_empty() || params.null_treatment.is_some()
        {
            return Err(Refusal::new("aggregate with FILTER, ORDER BY or NULLS"));
        }
        if params.args.len() != 1 {
            return Err(Refusal::new("aggregate with several arguments"));
        }
        let arg = self.expr(&params.args[0], schema)?;
        let t = type_of(&arg, schema)?;
        let arg = match name {
            "min" | "max" => self.ordered(arg, &t)?,
            "count" => {
                if params.distinct {
                    self.equality_ok(&t)?;
                }
                arg
            }
            "sum" | "avg" if !is_numeric(&t) || (is_unsigned(&t) && !self.df()) => {
                return Err(Refusal::new(format!("{name} of {t}")));
            }
            "avg" => match self.caps.flavor {
                // MySQL averages integers into DECIMAL(…, 4) and rounds decimals at scale + 4.
                Flavor::MySql | Flavor::MariaDb if is_decimal(&t) => {
                    return Err(Refusal::new("avg of decimals rounds on MySQL"));
                }
                Flavor::MySql | Flavor::MariaDb => {
                    Expr::Cast(Cast::new(Box::new(arg), DataType::Float64))
                }
                Flavor::Postgres if is_decimal(&t) => {
                    // DataFusion truncates the average to scale + 4; PostgreSQL keeps more
                    // digits (and the decoder will not round them away).
                    let scale = decimal_ps(&t).map_or(0, |(_, s)| s);
                    let target = i8::try_from((scale + 4).min(38)).unwrap_or(38);
                    let mut params = params.clone();
                    params.args = vec![arg];
                    return Ok(trunc(
                        Expr::AggregateFunction(AggregateFunction {
                            func: Arc::clone(func),
                            params,
                        }),
                        target,
                    ));
                }
                _ => arg,
            },
            _ => arg,
        };
        let mut params = params.clone();
        params.args = vec![arg];
        Ok(Expr::AggregateFunction(AggregateFunction {
            func: Arc::clone(func),
            params,
        }))
    }

    /// Checks `e` (typed against `schema`) and rewrites it for the source.
    pub fn expr(&self, e: &Expr, schema: &DFSchema) -> R<Expr> {
        let mut refusal = None;
        let out = e
            .clone()
            .transform_up(|node| match self.node(node, schema) {
                Ok(n) => Ok(Transformed::yes(n)),
                Err(r) => {
                    refusal = Some(r);
                    Err(datafusion::error::DataFusionError::Plan("refused".into()))
                }
            });
        match (out, refusal) {
            (_, Some(r)) => Err(r),
            (Ok(t), None) => Ok(t.data),
            (Err(e), None) => Err(Refusal::new(e.to_string())),
        }
    }

    fn node(&self, e: Expr, schema: &DFSchema) -> R<Expr> {
        let df = self.df();
        match e {
            Expr::Column(_) | Expr::Alias(_) => Ok(e),
            Expr::Literal(ScalarValue::Date32(Some(days)), _)
                if self.caps.flavor == Flavor::Sqlite =>
            {
                if !date_in_common_range(days) {
                    return Err(Refusal::new("a date before year 1 or after 9999"));
                }
                // SQLite keeps dates as ISO text; `CAST('…' AS DATE)` would make a number.
                let date = chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
                    .ok_or_else(|| Refusal::new("a date out of range"))?;
                Ok(Expr::Literal(
                    ScalarValue::Utf8(Some(date.format("%Y-%m-%d").to_string())),
                    None,
                ))
            }
            Expr::Literal(ref v, _) => {
                self.literal(v)?;
                Ok(e)
            }
            Expr::Not(_)
            | Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::IsTrue(_)
            | Expr::IsFalse(_)
            | Expr::IsNotTrue(_)
            | Expr::IsNotFalse(_)
            | Expr::IsUnknown(_)
            | Expr::IsNotUnknown(_)
            | Expr::Case(_) => Ok(e),
            Expr::Negative(ref inner) => {
                let t = type_of(inner, schema)?;
                if !is_numeric(&t) || (is_unsigned(&t) && !df) {
                    return Err(Refusal::new(format!("negation of {t}")));
                }
                Ok(e)
            }
            Expr::InList(ref l) => {
                self.equality_ok(&type_of(&l.expr, schema)?)?;
                Ok(e)
            }
            Expr::Between(b) => {
                let t = type_of(&b.expr, schema)?;
                Ok(Expr::Between(Between {
                    expr: Box::new(self.ordered(*b.expr, &t)?),
                    negated: b.negated,
                    low: Box::new(self.ordered(*b.low, &t)?),
                    high: Box::new(self.ordered(*b.high, &t)?),
                }))
            }
            Expr::Cast(c) => {
                let from = type_of(&c.expr, schema)?;
                self.cast(&from, c.field.data_type())?;
                Ok(Expr::Cast(c))
            }
            Expr::TryCast(_) if df => Ok(e),
            Expr::Like(l) => self.like(l, schema),
            Expr::BinaryExpr(b) => self.binary(b, schema),
            Expr::ScalarFunction(f) => self.scalar(f, schema),
            other => Err(Refusal::new(format!("expression {}", other.variant_name()))),
        }
    }

    fn literal(&self, v: &ScalarValue) -> R<()> {
        let ok = match v {
            ScalarValue::Null
            | ScalarValue::Boolean(_)
            | ScalarValue::Int8(_)
            | ScalarValue::Int16(_)
            | ScalarValue::Int32(_)
            | ScalarValue::Int64(_)
            | ScalarValue::UInt8(_)
            | ScalarValue::UInt16(_)
            | ScalarValue::UInt32(_)
            | ScalarValue::UInt64(_)
            | ScalarValue::Decimal128(..) => true,
            // Years 1..=9999 only: PostgreSQL spells earlier years `… BC`, MySQL has no DATE
            // before year 0, and SQLite compares ISO text, where `-0004` sorts wrongly.
            ScalarValue::Date32(d) => d.is_none_or(|d| self.df() || date_in_common_range(d)),
            ScalarValue::Float32(f) => f.is_none_or(|f| f.is_finite()),
            ScalarValue::Float64(f) => f.is_none_or(|f| f.is_finite()),
            ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => {
                s.as_deref().is_none_or(|s| !s.contains('\0'))
            }
            ScalarValue::TimestampSecond(..)
            | ScalarValue::TimestampMillisecond(..)
            | ScalarValue::TimestampMicrosecond(..)
            | ScalarValue::TimestampNanosecond(..)
            | ScalarValue::IntervalYearMonth(_)
            | ScalarValue::IntervalDayTime(_)
            | ScalarValue::IntervalMonthDayNano(_)
            | ScalarValue::Decimal256(..) => self.df(),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Refusal::new(format!("literal of type {}", v.data_type())))
        }
    }

    fn cast(&self, from: &DataType, to: &DataType) -> R<()> {
        if from == to || self.df() {
            return Ok(());
        }
        let sqlite = self.caps.flavor == Flavor::Sqlite;
        let ok = if is_string(to) {
            is_string(from)
                || from.is_integer()
                || (!sqlite && (is_decimal(from) || *from == DataType::Date32))
        } else if to.is_integer() {
            from.is_integer() || (sqlite && (from.is_floating() || is_decimal(from)))
        } else if let Some((p2, s2)) = decimal_ps(to) {
            if from.is_integer() {
                true
            } else if let Some((p1, s1)) = decimal_ps(from) {
                s2 >= s1 && p2 - s2 >= p1 - s1
            } else {
                false
            }
        } else if to.is_floating() {
            from.is_integer() || from.is_floating() || is_decimal(from)
        } else {
            *to == DataType::Date32 && *from == DataType::Date32
        };
        if ok {
            Ok(())
        } else {
            Err(Refusal::new(format!("cast from {from} to {to}")))
        }
    }

    fn like(&self, l: Like, schema: &DFSchema) -> R<Expr> {
        if self.df() {
            return Ok(Expr::Like(l));
        }
        if l.case_insensitive || l.escape_char.is_some() {
            return Err(Refusal::new("ILIKE or LIKE ... ESCAPE"));
        }
        let Some(pattern) = literal_str(&l.pattern).map(str::to_string) else {
            return Err(Refusal::new("LIKE with a pattern that is not a literal"));
        };
        if pattern.contains('\\') {
            return Err(Refusal::new("LIKE pattern with a backslash"));
        }
        if !is_string(&type_of(&l.expr, schema)?) {
            return Err(Refusal::new("LIKE on a value that is not a string"));
        }
        match self.caps.like {
            LikeSupport::Native => Ok(Expr::Like(l)),
            LikeSupport::Glob => {
                let g = glob(*l.expr, like_to_glob(&pattern));
                Ok(if l.negated { Expr::Not(Box::new(g)) } else { g })
            }
            LikeSupport::No => Err(Refusal::new("LIKE")),
        }
    }

    fn binary(&self, b: BinaryExpr, schema: &DFSchema) -> R<Expr> {
        use Operator::*;
        let lt = type_of(&b.left, schema)?;
        let rt = type_of(&b.right, schema)?;
        let df = self.df();
        match b.op {
            Eq | NotEq => {
                self.equality_ok(&lt)?;
                Ok(Expr::BinaryExpr(b))
            }
            IsDistinctFrom | IsNotDistinctFrom => {
                if !self.caps.distinct_from {
                    return Err(Refusal::new("IS DISTINCT FROM"));
                }
                self.equality_ok(&lt)?;
                Ok(Expr::BinaryExpr(b))
            }
            Lt | LtEq | Gt | GtEq => Ok(Expr::BinaryExpr(BinaryExpr {
                left: Box::new(self.ordered(*b.left, &lt)?),
                op: b.op,
                right: Box::new(self.ordered(*b.right, &rt)?),
            })),
            And | Or => Ok(Expr::BinaryExpr(b)),
            Plus | Minus | Multiply => {
                let numeric = is_numeric(&lt) && is_numeric(&rt);
                let unsigned = is_unsigned(&lt) || is_unsigned(&rt);
                if df || (numeric && !unsigned) {
                    Ok(Expr::BinaryExpr(b))
                } else {
                    Err(Refusal::new(format!("{lt} {} {rt}", b.op)))
                }
            }
            Divide | Modulo => {
                if df {
                    return Ok(Expr::BinaryExpr(b));
                }
                if !nonzero_literal(&b.right) {
                    return Err(Refusal::new(
                        "division by a value that may be zero (sources differ from DataFusion there)",
                    ));
                }
                let result = Expr::BinaryExpr(b.clone()).get_type(schema).ok();
                let ok = match result {
                    Some(t) if t.is_integer() => {
                        self.caps.integer_division_truncates && !is_unsigned(&t)
                    }
                    Some(t) if t.is_floating() => {
                        b.op == Divide
                            || !matches!(self.caps.flavor, Flavor::Postgres | Flavor::Sqlite)
                    }
                    _ => false,
                };
                if ok {
                    Ok(Expr::BinaryExpr(b))
                } else {
                    Err(Refusal::new(format!("{lt} {} {rt}", b.op)))
                }
            }
            StringConcat => {
                if self.caps.concat_operator && is_string(&lt) && is_string(&rt) {
                    Ok(Expr::BinaryExpr(b))
                } else {
                    Err(Refusal::new("||"))
                }
            }
            op => Err(Refusal::new(format!("operator {op}"))),
        }
    }

    fn scalar(&self, f: ScalarFunction, schema: &DFSchema) -> R<Expr> {
        let name = f.func.name();
        if is_marker(name) {
            return Ok(Expr::ScalarFunction(f));
        }
        if !self.caps.scalar_functions.contains(&name) {
            return Err(Refusal::new(format!("function {name}")));
        }
        if self.df() {
            return Ok(Expr::ScalarFunction(f));
        }
        let types = f
            .args
            .iter()
            .map(|a| type_of(a, schema))
            .collect::<R<Vec<_>>>()?;
        let mysql = matches!(self.caps.flavor, Flavor::MySql | Flavor::MariaDb);
        let ok = match name {
            "abs" | "ceil" | "floor" => types.iter().all(|t| is_numeric(t) && !is_unsigned(t)),
            "coalesce" => true,
            "nullif" => types.first().is_some_and(|t| self.equality_ok(t).is_ok()),
            "substr" => {
                let start_ok = f.args.get(1).and_then(literal_int).is_some_and(|s| s >= 1);
                let len_ok = f
                    .args
                    .get(2)
                    .is_none_or(|l| literal_int(l).is_some_and(|n| n >= 0));
                start_ok && len_ok && is_string(&types[0])
            }
            "btrim" | "ltrim" | "rtrim" => {
                types.iter().all(is_string)
                    && match f.args.len() {
                        1 => true,
                        2 => !mysql && literal_str(&f.args[1]).is_some(),
                        _ => false,
                    }
            }
            "replace" | "strpos" | "starts_with" | "concat" | "md5" | "character_length" => {
                types.iter().all(is_string)
            }
            "date_part" => {
                let field = f
                    .args
                    .first()
                    .and_then(literal_str)
                    .map(str::to_ascii_lowercase);
                let field_ok = field
                    .as_deref()
                    .is_some_and(|p| ["year", "quarter", "month", "day"].contains(&p));
                let arg_ok = match types.get(1) {
                    Some(DataType::Date32) => true,
                    Some(DataType::Timestamp(_, None)) => self.caps.flavor == Flavor::Postgres,
                    _ => false,
                };
                field_ok && arg_ok
            }
            _ => false,
        };
        if ok {
            Ok(Expr::ScalarFunction(f))
        } else {
            Err(Refusal::new(format!("{name} with these arguments")))
        }
    }
}

/// The type of `e` in `schema`, or a refusal.
pub fn type_of(e: &Expr, schema: &DFSchema) -> R<DataType> {
    e.get_type(schema)
        .map_err(|err| Refusal::new(format!("cannot type {e}: {err}")))
}

/// A `LIKE` pattern (no escapes) as a `GLOB` pattern: `%` and `_` become `*` and `?`, and
/// GLOB's own special characters are matched literally through bracket classes.
pub fn like_to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    for c in pattern.chars() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '*' => out.push_str("[*]"),
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            other => out.push(other),
        }
    }
    out
}

/// Whether days since 1970-01-01 fall in years 1..=9999, the dates every SQL dialect spells
/// `YYYY-MM-DD` and orders like DataFusion.
fn date_in_common_range(days: i32) -> bool {
    use chrono::Datelike;
    chrono::NaiveDate::from_num_days_from_ce_opt(days.saturating_add(719_163))
        .is_some_and(|d| (1..=9999).contains(&d.year()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::{DATAFUSION, MARIADB, POSTGRES, SQLITE};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::prelude::{col, lit};

    fn schema() -> DFSchema {
        DFSchema::try_from(Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("d", DataType::Decimal128(15, 2), true),
            Field::new("f", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ]))
        .expect("schema")
    }

    fn check(caps: &Capabilities, e: Expr) -> R<Expr> {
        Semantics::new(caps).expr(&e, &schema())
    }

    #[test]
    fn like_to_glob_escapes_glob_specials() {
        assert_eq!(like_to_glob("a%b_c*d?e[f]"), "a*b?c[*]d[?]e[[]f]");
    }

    #[test]
    fn division_only_by_nonzero_literals() {
        assert!(check(&POSTGRES, col("i") / lit(2_i64)).is_ok());
        assert!(check(&POSTGRES, col("i") / col("i")).is_err());
        assert!(check(&POSTGRES, col("i") / lit(0_i64)).is_err());
        assert!(check(&MARIADB, col("i") / lit(2_i64)).is_err());
        assert!(check(&POSTGRES, col("d") / lit(2_i64)).is_err());
        assert!(check(&DATAFUSION, col("i") / col("i")).is_ok());
    }

    #[test]
    fn string_ordering_is_collated_on_postgres() {
        let e = check(&POSTGRES, col("s").lt(lit("b"))).expect("pushed");
        assert!(e.to_string().contains("__meshgate_collate"), "{e}");
        let e = check(&POSTGRES, col("s").eq(lit("b"))).expect("pushed");
        assert!(!e.to_string().contains("__meshgate_collate"), "{e}");
    }

    #[test]
    fn dates_outside_years_one_to_9999_stay_local() {
        let date = |days: i32| lit(ScalarValue::Date32(Some(days)));
        // Days since 1970-01-01: a date six years before year 1, and 10000-01-01.
        for caps in [&POSTGRES, &MARIADB, &SQLITE] {
            assert!(check(caps, col("i").lt(date(-721_354))).is_err());
            assert!(check(caps, col("i").lt(date(2_932_897))).is_err());
            assert!(check(caps, col("i").lt(date(10_000))).is_ok());
        }
        assert!(check(&DATAFUSION, col("i").lt(date(-721_354))).is_ok());
    }

    #[test]
    fn sqlite_like_is_glob() {
        let e = check(&SQLITE, col("s").like(lit("a%"))).expect("pushed");
        assert!(e.to_string().contains("__meshgate_glob"), "{e}");
        assert!(check(&SQLITE, col("s").like(lit("a\\%"))).is_err());
        assert!(check(&SQLITE, col("s").ilike(lit("a%"))).is_err());
    }

    #[test]
    fn rounding_casts_stay_local() {
        let cast = |e: Expr, t: DataType| Expr::Cast(Cast::new(Box::new(e), t));
        assert!(check(&POSTGRES, cast(col("f"), DataType::Int64)).is_err());
        assert!(check(&SQLITE, cast(col("f"), DataType::Int64)).is_ok());
        assert!(check(&POSTGRES, cast(col("i"), DataType::Decimal128(20, 2))).is_ok());
        assert!(check(&POSTGRES, cast(col("d"), DataType::Decimal128(15, 1))).is_err());
        assert!(check(&POSTGRES, cast(col("s"), DataType::Int64)).is_err());
    }
}
