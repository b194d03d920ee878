//! Column types of a port contract.

use std::fmt;
use std::str::FromStr;

/// A contract column type, as written in a product file (`bigint`, `decimal(15,2)`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// `boolean`
    Boolean,
    /// `tinyint`: 8-bit signed integer.
    TinyInt,
    /// `smallint`: 16-bit signed integer.
    SmallInt,
    /// `int`: 32-bit signed integer.
    Int,
    /// `bigint`: 64-bit signed integer.
    BigInt,
    /// `float`: 32-bit IEEE float.
    Float,
    /// `double`: 64-bit IEEE float.
    Double,
    /// `decimal(p,s)`: exact decimal, 1 <= p <= 38, 0 <= s <= p.
    Decimal {
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: i8,
    },
    /// `string`: UTF-8 text.
    String,
    /// `binary`: bytes.
    Binary,
    /// `date`: calendar date.
    Date,
    /// `time`: time of day, microseconds.
    Time,
    /// `timestamp`: date and time without time zone, microseconds.
    Timestamp,
    /// `timestamp_tz`: an instant, microseconds, shown in UTC.
    TimestampTz,
}

/// The names accepted in product files, for error messages.
pub const COLUMN_TYPE_NAMES: &str = "boolean, tinyint, smallint, int, bigint, float, double, \
decimal(p,s), string, binary, date, time, timestamp, timestamp_tz";

impl FromStr for ColumnType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let simple = match t.as_str() {
            "boolean" | "bool" => Some(Self::Boolean),
            "tinyint" => Some(Self::TinyInt),
            "smallint" => Some(Self::SmallInt),
            "int" | "integer" => Some(Self::Int),
            "bigint" => Some(Self::BigInt),
            "float" | "real" => Some(Self::Float),
            "double" => Some(Self::Double),
            "string" | "text" => Some(Self::String),
            "binary" => Some(Self::Binary),
            "date" => Some(Self::Date),
            "time" => Some(Self::Time),
            "timestamp" => Some(Self::Timestamp),
            "timestamp_tz" => Some(Self::TimestampTz),
            _ => None,
        };
        if let Some(t) = simple {
            return Ok(t);
        }
        let bad = || format!("unknown column type `{s}`; expected one of {COLUMN_TYPE_NAMES}");
        let args = t
            .strip_prefix("decimal")
            .map(str::trim)
            .and_then(|r| r.strip_prefix('('))
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(bad)?;
        let (p, s_) = args.split_once(',').ok_or_else(bad)?;
        let precision: u8 = p.trim().parse().map_err(|_| bad())?;
        let scale: i8 = s_.trim().parse().map_err(|_| bad())?;
        if !(1..=38).contains(&precision) || scale < 0 || scale as u8 > precision {
            return Err(format!(
                "invalid decimal type `{s}`: precision must be 1..=38 and scale 0..=precision"
            ));
        }
        Ok(Self::Decimal { precision, scale })
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Boolean => f.write_str("boolean"),
            Self::TinyInt => f.write_str("tinyint"),
            Self::SmallInt => f.write_str("smallint"),
            Self::Int => f.write_str("int"),
            Self::BigInt => f.write_str("bigint"),
            Self::Float => f.write_str("float"),
            Self::Double => f.write_str("double"),
            Self::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            Self::String => f.write_str("string"),
            Self::Binary => f.write_str("binary"),
            Self::Date => f.write_str("date"),
            Self::Time => f.write_str("time"),
            Self::Timestamp => f.write_str("timestamp"),
            Self::TimestampTz => f.write_str("timestamp_tz"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_type() {
        for name in [
            "boolean",
            "tinyint",
            "smallint",
            "int",
            "bigint",
            "float",
            "double",
            "string",
            "binary",
            "date",
            "time",
            "timestamp",
            "timestamp_tz",
        ] {
            let t: ColumnType = name.parse().expect(name);
            assert_eq!(t.to_string(), name);
        }
        assert_eq!(
            "decimal(15, 2)".parse::<ColumnType>(),
            Ok(ColumnType::Decimal {
                precision: 15,
                scale: 2
            })
        );
    }

    #[test]
    fn rejects_bad_types() {
        for bad in [
            "varchar2",
            "decimal(0,0)",
            "decimal(10,11)",
            "decimal(39,2)",
            "decimal(5)",
        ] {
            assert!(bad.parse::<ColumnType>().is_err(), "{bad}");
        }
    }
}
