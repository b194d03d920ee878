//! SQLite values to Arrow arrays (the mapping table is in the crate docs).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
};
use datafusion::arrow::datatypes::DataType;
use rusqlite::types::ValueRef;

/// Arrow type for a declared SQLite column type, by SQLite's affinity rules.
pub fn arrow_type_for_decl(decl: &str) -> DataType {
    let d = decl.to_ascii_uppercase();
    if d.contains("BOOL") {
        DataType::Boolean
    } else if d.contains("INT") {
        DataType::Int64
    } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
        DataType::Utf8
    } else if d.contains("BLOB") {
        DataType::Binary
    } else if ["REAL", "FLOA", "DOUB", "DEC", "NUMERIC"]
        .iter()
        .any(|k| d.contains(k))
    {
        // SQLite stores DECIMAL and NUMERIC values as REAL or INTEGER.
        DataType::Float64
    } else {
        // DATE, TIME, DATETIME and anything else SQLite keeps as text.
        DataType::Utf8
    }
}

/// Arrow type for a value when the column has no declared type.
pub fn arrow_type_for_value(v: ValueRef<'_>) -> DataType {
    match v {
        ValueRef::Integer(_) => DataType::Int64,
        ValueRef::Real(_) => DataType::Float64,
        ValueRef::Blob(_) => DataType::Binary,
        ValueRef::Null | ValueRef::Text(_) => DataType::Utf8,
    }
}

/// Builds one column of a batch.
#[derive(Debug)]
pub enum ColumnBuilder {
    /// Boolean.
    Boolean(BooleanBuilder),
    /// Int64.
    Int64(Int64Builder),
    /// Float64.
    Float64(Float64Builder),
    /// Utf8.
    Utf8(StringBuilder),
    /// Binary.
    Binary(BinaryBuilder),
}

impl ColumnBuilder {
    /// A builder for `t` (one of the types [`arrow_type_for_decl`] returns).
    pub fn new(t: &DataType, capacity: usize) -> Self {
        match t {
            DataType::Boolean => Self::Boolean(BooleanBuilder::with_capacity(capacity)),
            DataType::Int64 => Self::Int64(Int64Builder::with_capacity(capacity)),
            DataType::Float64 => Self::Float64(Float64Builder::with_capacity(capacity)),
            DataType::Binary => Self::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            _ => Self::Utf8(StringBuilder::with_capacity(capacity, capacity * 16)),
        }
    }

    /// Appends one value; `Err` names what was found when it does not fit.
    pub fn append(&mut self, v: ValueRef<'_>) -> Result<(), String> {
        match (self, v) {
            (Self::Boolean(b), ValueRef::Null) => b.append_null(),
            (Self::Int64(b), ValueRef::Null) => b.append_null(),
            (Self::Float64(b), ValueRef::Null) => b.append_null(),
            (Self::Utf8(b), ValueRef::Null) => b.append_null(),
            (Self::Binary(b), ValueRef::Null) => b.append_null(),
            (Self::Boolean(b), ValueRef::Integer(i)) => b.append_value(i != 0),
            (Self::Int64(b), ValueRef::Integer(i)) => b.append_value(i),
            (Self::Float64(b), ValueRef::Integer(i)) => b.append_value(i as f64),
            (Self::Float64(b), ValueRef::Real(f)) => b.append_value(f),
            (Self::Utf8(b), ValueRef::Text(t)) => b.append_value(
                std::str::from_utf8(t).map_err(|_| "text that is not UTF-8".to_string())?,
            ),
            (Self::Utf8(b), ValueRef::Integer(i)) => b.append_value(i.to_string()),
            (Self::Utf8(b), ValueRef::Real(f)) => b.append_value(f.to_string()),
            (Self::Binary(b), ValueRef::Blob(x)) => b.append_value(x),
            (Self::Binary(b), ValueRef::Text(x)) => b.append_value(x),
            (_, other) => return Err(format!("a value of type {:?}", other.data_type())),
        }
        Ok(())
    }

    /// The finished array.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Boolean(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Utf8(b) => Arc::new(b.finish()),
            Self::Binary(b) => Arc::new(b.finish()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_rules() {
        assert_eq!(arrow_type_for_decl("INTEGER"), DataType::Int64);
        assert_eq!(arrow_type_for_decl("varchar(25)"), DataType::Utf8);
        assert_eq!(arrow_type_for_decl("DOUBLE PRECISION"), DataType::Float64);
        assert_eq!(arrow_type_for_decl("DECIMAL(15,2)"), DataType::Float64);
        assert_eq!(arrow_type_for_decl("BLOB"), DataType::Binary);
        assert_eq!(arrow_type_for_decl("BOOLEAN"), DataType::Boolean);
        assert_eq!(arrow_type_for_decl("DATE"), DataType::Utf8);
    }

    #[test]
    fn mismatched_value_is_an_error() {
        let mut b = ColumnBuilder::new(&DataType::Int64, 4);
        assert!(b.append(ValueRef::Text(b"x")).is_err());
        b.append(ValueRef::Null).expect("null fits");
        assert_eq!(b.finish().len(), 1);
    }
}
