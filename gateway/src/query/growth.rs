//! Values cannot grow outside the memory pool. Functions that build values larger than their
//! inputs (`repeat`, `lpad`, `rpad`, `concat`, `concat_ws`, the `||` operator) check, before
//! they allocate, the size of what they would build from the actual arguments of each batch:
//! no value over [`MAX_VALUE_BYTES`], no batch over [`MAX_BATCH_BYTES`]. The plan-time check
//! of [`super::limits`] only sees constants; this one sees columns too.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::kernels::concat_elements::concat_elements_dyn;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::execution::{FunctionRegistry as _, SessionState};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::ExprSchemable as _;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use crate::error::GatewayError;

/// Largest value a function may build, in bytes.
pub const MAX_VALUE_BYTES: usize = 16 << 20;
/// Largest total of the values one call builds for one batch, in bytes.
pub const MAX_BATCH_BYTES: usize = 256 << 20;

/// How a function's output size follows from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(s, n)`: `len(s) * n`.
    Repeat,
    /// `lpad/rpad(s, n [, fill])`: at most 4 bytes per character of `n`.
    Pad,
    /// `concat(...)`, `a || b`: the sum of the arguments.
    Sum,
    /// `concat_ws(sep, ...)`: the sum of the arguments, and the separator between them.
    Joined,
}

/// Per-row sizes of an argument (byte lengths of strings, or integer values).
enum Sizes {
    Scalar(Option<i64>),
    Array(Vec<Option<i64>>),
}

impl Sizes {
    fn get(&self, i: usize) -> Option<i64> {
        match self {
            Sizes::Scalar(v) => *v,
            Sizes::Array(v) => v.get(i).copied().flatten(),
        }
    }

    fn of_lengths(v: &ColumnarValue) -> Self {
        match v {
            ColumnarValue::Scalar(s) => Sizes::Scalar(scalar_len(s)),
            ColumnarValue::Array(a) => {
                Sizes::Array((0..a.len()).map(|i| array_len(a, i)).collect())
            }
        }
    }

    fn of_ints(v: &ColumnarValue) -> Self {
        match v {
            ColumnarValue::Scalar(s) => Sizes::Scalar(match s.cast_to(&DataType::Int64) {
                Ok(ScalarValue::Int64(n)) => n,
                _ => None,
            }),
            ColumnarValue::Array(a) => {
                match datafusion::arrow::compute::cast(a, &DataType::Int64) {
                    Ok(c) => {
                        let c = c.as_primitive::<Int64Type>();
                        Sizes::Array(
                            (0..c.len())
                                .map(|i| c.is_valid(i).then(|| c.value(i)))
                                .collect(),
                        )
                    }
                    Err(_) => Sizes::Scalar(None),
                }
            }
        }
    }
}

fn scalar_len(s: &ScalarValue) -> Option<i64> {
    match s {
        ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
            v.as_ref().map(|s| s.len() as i64)
        }
        ScalarValue::Binary(v) | ScalarValue::LargeBinary(v) | ScalarValue::BinaryView(v) => {
            v.as_ref().map(|s| s.len() as i64)
        }
        // Other types are cast to short strings.
        other => (!other.is_null()).then_some(64),
    }
}

fn array_len(a: &ArrayRef, i: usize) -> Option<i64> {
    if a.is_null(i) {
        return None;
    }
    let n = if let Some(s) = a.as_string_opt::<i32>() {
        s.value(i).len()
    } else if let Some(s) = a.as_string_opt::<i64>() {
        s.value(i).len()
    } else if let Some(s) = a.as_string_view_opt() {
        s.value(i).len()
    } else if let Some(b) = a.as_binary_opt::<i32>() {
        b.value(i).len()
    } else if let Some(b) = a.as_binary_opt::<i64>() {
        b.value(i).len()
    } else {
        64
    };
    Some(n as i64)
}

fn too_large(what: &str, bytes: i64, limit: usize, per: &str) -> DataFusionError {
    DataFusionError::External(Box::new(GatewayError::ResourceExhausted(format!(
        "{what} would build {bytes} bytes {per}; the limit is {limit} bytes"
    ))))
}

/// Refuses the call when what `growth` builds from `args` is too large.
fn check(name: &str, growth: Growth, args: &[ColumnarValue], rows: usize) -> Result<()> {
    let rows = if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        1
    } else {
        rows
    };
    let per_row: Box<dyn Fn(usize) -> i64> = match growth {
        Growth::Repeat => {
            let (Some(s), Some(n)) = (args.first(), args.get(1)) else {
                return Ok(());
            };
            let (s, n) = (Sizes::of_lengths(s), Sizes::of_ints(n));
            Box::new(move |i| {
                s.get(i)
                    .unwrap_or(0)
                    .saturating_mul(n.get(i).unwrap_or(0).max(0))
            })
        }
        Growth::Pad => {
            let Some(n) = args.get(1) else { return Ok(()) };
            let n = Sizes::of_ints(n);
            Box::new(move |i| n.get(i).unwrap_or(0).max(0).saturating_mul(4))
        }
        Growth::Sum | Growth::Joined => {
            let sizes: Vec<Sizes> = args.iter().map(Sizes::of_lengths).collect();
            let separators = match growth {
                Growth::Joined => sizes.len().saturating_sub(2) as i64,
                _ => 0,
            };
            Box::new(move |i| {
                let sum = sizes
                    .iter()
                    .map(|s| s.get(i).unwrap_or(0))
                    .fold(0i64, i64::saturating_add);
                let sep = sizes.first().and_then(|s| s.get(i)).unwrap_or(0);
                sum.saturating_add(sep.saturating_mul(separators))
            })
        }
    };
    let mut total = 0i64;
    for i in 0..rows {
        let bytes = per_row(i);
        if bytes > MAX_VALUE_BYTES as i64 {
            return Err(too_large(
                &format!("{name}()"),
                bytes,
                MAX_VALUE_BYTES,
                "for one value",
            ));
        }
        total = total.saturating_add(bytes);
    }
    if total > MAX_BATCH_BYTES as i64 {
        return Err(too_large(
            &format!("{name}()"),
            total,
            MAX_BATCH_BYTES,
            &format!("for a batch of {rows} rows"),
        ));
    }
    Ok(())
}

/// A built-in function with a size check before it runs. It keeps the function's name,
/// signature and types, so plans, pushdown and column names do not change.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    growth: Growth,
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }
    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        self.inner.return_field_from_args(args)
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        check(self.name(), self.growth, &args.args, args.number_rows)?;
        self.inner.invoke_with_args(args)
    }
    fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
        self.inner.documentation()
    }
}

/// `a || b` on strings, with the size check (the operator itself cannot be wrapped).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ConcatOp {
    signature: Signature,
}

const CONCAT_OP: &str = "__meshgate_concat_op";

impl ScalarUDFImpl for ConcatOp {
    fn name(&self) -> &str {
        CONCAT_OP
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types.first().cloned().unwrap_or(DataType::Utf8))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        check("||", Growth::Sum, &args.args, args.number_rows)?;
        let [l, r] = args.args.as_slice() else {
            return Err(DataFusionError::Internal("|| takes two arguments".into()));
        };
        if let (ColumnarValue::Scalar(a), ColumnarValue::Scalar(b)) = (l, r) {
            let a = a.to_array_of_size(1)?;
            let b = b.to_array_of_size(1)?;
            let out = concat_elements_dyn(&a, &b)?;
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        let a = l.to_array(args.number_rows)?;
        let b = r.to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(concat_elements_dyn(&a, &b)?))
    }
}

/// Replaces the growing built-ins of `state` by checked ones, and adds the `||` rewrite.
pub fn install(state: &mut SessionState) -> Result<()> {
    for (name, growth) in [
        ("repeat", Growth::Repeat),
        ("lpad", Growth::Pad),
        ("rpad", Growth::Pad),
        ("concat", Growth::Sum),
        ("concat_ws", Growth::Joined),
    ] {
        if let Some(inner) = state.scalar_functions().get(name).cloned() {
            state.register_udf(Arc::new(ScalarUDF::from(Bounded { inner, growth })))?;
        }
    }
    state.register_udf(concat_op())?;
    Ok(())
}

fn concat_op() -> Arc<ScalarUDF> {
    static UDF: std::sync::LazyLock<Arc<ScalarUDF>> = std::sync::LazyLock::new(|| {
        Arc::new(ScalarUDF::from(ConcatOp {
            signature: Signature::new(TypeSignature::Any(2), Volatility::Immutable),
        }))
    });
    Arc::clone(&UDF)
}

/// Rewrites `a || b` over strings into the checked [`ConcatOp`], keeping column names. Runs
/// after federation, so SQL sent to sources still says `||`.
#[derive(Debug, Default)]
pub struct CheckedConcat;

impl OptimizerRule for CheckedConcat {
    fn name(&self) -> &str {
        "meshgate_checked_concat"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn apply_order(&self) -> Option<datafusion::optimizer::ApplyOrder> {
        Some(datafusion::optimizer::ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        // Expressions read the inputs' columns (a join's, either side's).
        let mut schemas: Vec<_> = plan
            .inputs()
            .iter()
            .map(|i| Arc::clone(i.schema()))
            .collect();
        schemas.push(Arc::clone(plan.schema()));
        let type_of = move |e: &Expr| schemas.iter().find_map(|s| e.get_type(s.as_ref()).ok());
        let names = NamePreserver::new(&plan);
        plan.map_expressions(|e| {
            let saved = names.save(&e);
            let out = e.transform_up(|e| match e {
                Expr::BinaryExpr(BinaryExpr {
                    left,
                    op: Operator::StringConcat,
                    right,
                }) => {
                    let is_string = |x: &Expr| {
                        matches!(
                            type_of(x),
                            Some(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
                        )
                    };
                    let same_type = type_of(&left) == type_of(&right);
                    if is_string(&left) && same_type {
                        Ok(Transformed::yes(Expr::ScalarFunction(
                            ScalarFunction::new_udf(concat_op(), vec![*left, *right]),
                        )))
                    } else {
                        Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                            left,
                            op: Operator::StringConcat,
                            right,
                        })))
                    }
                }
                other => Ok(Transformed::no(other)),
            })?;
            Ok(out.update_data(|e| saved.restore(e)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(v.into())))
    }

    fn n(v: i64) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(v)))
    }

    #[test]
    fn column_arguments_are_measured() {
        let big: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(vec![
            "x".repeat(1 << 20)
        ]));
        let e = check(
            "repeat",
            Growth::Repeat,
            &[ColumnarValue::Array(big), n(127)],
            1,
        )
        .expect_err("127 MiB");
        assert!(e.to_string().contains("the limit is 16777216 bytes"), "{e}");
        assert!(check("repeat", Growth::Repeat, &[s("ab"), n(1000)], 8192).is_ok());
        assert!(check("lpad", Growth::Pad, &[s("a"), n(5_000_000)], 1).is_err());
        let many: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(
            (0..100).map(|_| "y".repeat(3 << 20)).collect::<Vec<_>>(),
        ));
        let e = check(
            "||",
            Growth::Sum,
            &[
                ColumnarValue::Array(Arc::clone(&many)),
                ColumnarValue::Array(many),
            ],
            100,
        )
        .expect_err("600 MiB in a batch");
        assert!(e.to_string().contains("for a batch of 100 rows"), "{e}");
    }
}
