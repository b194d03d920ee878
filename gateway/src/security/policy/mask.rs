//! Classification masks: `redact` (a typed NULL), `hash` (a keyed HMAC, same width for
//! integers, hex for text) and `partial` (all but the last four characters starred).

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, Int16Array, Int32Array, Int64Array, Int8Array,
    StringArray, UInt16Array, UInt32Array, UInt64Array, UInt8Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result as DFResult, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use hmac::{Hmac, Mac};
use meshgate_config::doc::MaskKind;
use sha2::Sha256;

/// The masking expression for a column of type `t`.
pub(super) fn mask_expr(m: MaskKind, c: Expr, t: &DataType, key: &[u8; 32]) -> DFResult<Expr> {
    let text = matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let int = t.is_integer();
    Ok(match m {
        MaskKind::Redact => Expr::Literal(ScalarValue::try_from(t)?, None),
        MaskKind::Hash if text || int => ScalarUDF::new_from_impl(MaskUdf {
            kind: MaskFn::Hash,
            key: *key,
            signature: Signature::any(1, Volatility::Volatile),
        })
        .call(vec![c]),
        MaskKind::Partial if text => ScalarUDF::new_from_impl(MaskUdf {
            kind: MaskFn::Partial,
            key: *key,
            signature: Signature::any(1, Volatility::Volatile),
        })
        .call(vec![c]),
        MaskKind::Hash | MaskKind::Partial => Expr::Literal(ScalarValue::try_from(t)?, None),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum MaskFn {
    Hash,
    Partial,
}

/// `meshgate_mask_hash` / `meshgate_mask_partial`. Volatile on purpose: predicates on a
/// masked column are then never pushed below the mask (into a scan or a source).
#[derive(PartialEq, Eq, Hash)]
struct MaskUdf {
    kind: MaskFn,
    key: [u8; 32],
    signature: Signature,
}

impl fmt::Debug for MaskUdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaskUdf")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl MaskUdf {
    fn digest(&self, bytes: &[u8]) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(bytes);
        mac.finalize().into_bytes().into()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn partial(s: &str) -> String {
    let n = s.chars().count();
    if n <= 4 {
        return "*".repeat(n);
    }
    let tail: String = s.chars().skip(n - 4).collect();
    format!("{}{tail}", "*".repeat(n - 4))
}

impl ScalarUDFImpl for MaskUdf {
    fn name(&self) -> &str {
        match self.kind {
            MaskFn::Hash => "meshgate_mask_hash",
            MaskFn::Partial => "meshgate_mask_partial",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DFResult<DataType> {
        let t = arg_types.first().cloned().unwrap_or(DataType::Null);
        Ok(if t.is_integer() { t } else { DataType::Utf8 })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let n = args.number_rows;
        let Some(arg) = args.args.into_iter().next() else {
            return Err(DataFusionError::Internal("mask without argument".into()));
        };
        let arr = arg.into_array(n)?;
        let t = arr.data_type().clone();
        let out: ArrayRef = if t.is_integer() {
            let as64 = cast(&arr, &DataType::Int64)?;
            let v = as64.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            let hashed: Int64Array = v
                .iter()
                .map(|x| {
                    x.map(|x| {
                        let d = self.digest(&x.to_le_bytes());
                        i64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
                    })
                })
                .collect();
            // Same width as the input: the low bits of the 64-bit hash.
            match t {
                DataType::Int64 => Arc::new(hashed),
                DataType::Int32 => Arc::new(
                    hashed
                        .iter()
                        .map(|x| x.map(|x| x as i32))
                        .collect::<Int32Array>(),
                ),
                DataType::Int16 => Arc::new(
                    hashed
                        .iter()
                        .map(|x| x.map(|x| x as i16))
                        .collect::<Int16Array>(),
                ),
                DataType::Int8 => Arc::new(
                    hashed
                        .iter()
                        .map(|x| x.map(|x| x as i8))
                        .collect::<Int8Array>(),
                ),
                DataType::UInt64 => Arc::new(
                    hashed
                        .iter()
                        .map(|x| x.map(|x| x as u64))
                        .collect::<UInt64Array>(),
                ),
                DataType::UInt32 => Arc::new(
                    hashed
                        .iter()
                        .map(|x| x.map(|x| x as u32))
                        .collect::<UInt32Array>(),
                ),
                DataType::UInt16 => Arc::new(
                    hashed
                        .iter()
                        .map(|x| x.map(|x| x as u16))
                        .collect::<UInt16Array>(),
                ),
                DataType::UInt8 => Arc::new(
                    hashed
                        .iter()
                        .map(|x| x.map(|x| x as u8))
                        .collect::<UInt8Array>(),
                ),
                _ => new_null_array(&t, n),
            }
        } else {
            let s = cast(&arr, &DataType::Utf8)?;
            let s = s.as_string::<i32>();
            let out: StringArray = match self.kind {
                MaskFn::Hash => s
                    .iter()
                    .map(|x| x.map(|x| hex(&self.digest(x.as_bytes())[..16])))
                    .collect(),
                MaskFn::Partial => s.iter().map(|x| x.map(partial)).collect(),
            };
            Arc::new(out)
        };
        debug_assert_eq!(out.len(), n);
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_keeps_last_four() {
        assert_eq!(partial("555-123-4567"), "********4567");
        assert_eq!(partial("abcd"), "****");
        assert_eq!(partial(""), "");
    }
}
