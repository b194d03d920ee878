//! `meshgate validate --live`: connect to every source and compare each port's live schema
//! with its contract.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::compute::can_cast_types;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::execution::session_state::SessionStateBuilder;
use meshgate_config::{ColumnType, Mesh, Port};
use meshgate_connector::{ErrorClass, Registry, SchemaTraits, SourceContext};
use serde::Serialize;

use crate::catalog::contract::arrow_type;
use crate::catalog::port_request;

/// The state of one port against its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LiveStatus {
    /// The source matches the contract (or the port has no contract and opens).
    Ok,
    /// The source no longer matches the contract.
    Drift,
    /// The table, file or object is missing.
    Missing,
    /// The source cannot be reached.
    Unreachable,
}

/// The live check of one port.
#[derive(Debug, Clone, Serialize)]
pub struct PortCheck {
    /// `domain.product.port`.
    pub port: String,
    /// The source name.
    pub source: String,
    /// Outcome.
    pub status: LiveStatus,
    /// What differs, or why the port could not be checked.
    pub problems: Vec<String>,
}

/// Whether every value of a source type reads as the contract type without failing or losing
/// range: integers only widen, text stays text, numbers do not become integers.
pub fn compatible(from: &DataType, to: ColumnType) -> bool {
    use ColumnType as C;
    let int_rank = |t: &DataType| match t {
        DataType::Int8 => Some(1),
        DataType::Int16 | DataType::UInt8 => Some(2),
        DataType::Int32 | DataType::UInt16 => Some(3),
        DataType::Int64 | DataType::UInt32 => Some(4),
        DataType::UInt64 => Some(5),
        _ => None,
    };
    let contract_rank = match to {
        C::TinyInt => Some(1),
        C::SmallInt => Some(2),
        C::Int => Some(3),
        C::BigInt => Some(4),
        _ => None,
    };
    match from {
        DataType::Null => true,
        _ if to == C::String => !matches!(
            from,
            DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView
                | DataType::FixedSizeBinary(_)
        ),
        t if int_rank(t).is_some() => match contract_rank {
            Some(r) => int_rank(t) <= Some(r),
            None => matches!(to, C::Float | C::Double | C::Decimal { .. }),
        },
        DataType::Float16 | DataType::Float32 => {
            matches!(to, C::Float | C::Double | C::Decimal { .. })
        }
        DataType::Float64 => matches!(to, C::Double | C::Decimal { .. }),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => match to {
            C::Decimal { precision, scale } => {
                scale as i16 >= *s as i16
                    && (precision as i16 - scale as i16) >= (*p as i16 - *s as i16)
            }
            C::Double => true,
            _ => false,
        },
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => false,
        DataType::Boolean => to == C::Boolean,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => to == C::Binary,
        DataType::Date32 | DataType::Date64 => {
            matches!(to, C::Date | C::Timestamp | C::TimestampTz)
        }
        DataType::Timestamp(_, _) => matches!(to, C::Timestamp | C::TimestampTz),
        DataType::Time32(_) | DataType::Time64(_) => to == C::Time,
        DataType::Dictionary(_, v) => compatible(v, to),
        _ => false,
    }
}

/// Compares a live source schema with a port's contract; `traits` (the connector's answer
/// for the port) says what the schema promises.
pub fn contract_drift(port: &Port, traits: SchemaTraits, source: &Schema) -> Vec<String> {
    let Some(cols) = &port.columns else {
        return vec![];
    };
    let mut problems = Vec::new();
    for c in cols {
        let field = source
            .fields()
            .iter()
            .find(|f| f.name() == &c.name)
            .or_else(|| {
                source
                    .fields()
                    .iter()
                    .find(|f| f.name().eq_ignore_ascii_case(&c.name))
            });
        let Some(f) = field else {
            problems.push(format!("column `{}` is missing from the source", c.name));
            continue;
        };
        let target = arrow_type(c.data_type);
        // Types inferred from the data (CSV, JSON): only castability is checked there.
        if !can_cast_types(f.data_type(), &target)
            || (!traits.inferred_types && !compatible(f.data_type(), c.data_type))
        {
            problems.push(format!(
                "column `{}` is {} in the source, incompatible with the contract's {}",
                c.name,
                f.data_type(),
                c.data_type
            ));
        }
        if c.required && f.is_nullable() && traits.declares_nullability {
            problems.push(format!(
                "column `{}` is required by the contract but nullable in the source",
                c.name
            ));
        }
    }
    problems
}

/// Opens every port of `mesh` against its source and compares schemas.
pub async fn check_live(mesh: &Mesh, registry: &Registry) -> Vec<PortCheck> {
    let session = SessionStateBuilder::new().build();
    let mut connectors = BTreeMap::new();
    for (name, source) in &mesh.sources {
        let Some(factory) = registry.get(&source.kind) else {
            continue;
        };
        let ctx = SourceContext {
            name: name.to_string(),
            base_dir: source.base_dir.clone(),
            pushdown: source.pushdown,
        };
        connectors.insert(
            name.to_string(),
            factory.create(ctx, source.options.clone()).await,
        );
    }
    let mut out = Vec::new();
    for (_, product, port) in mesh.ports() {
        let full = format!("{}.{}.{}", product.domain, product.name, port.name);
        let kind = mesh
            .sources
            .get(port.source.as_str())
            .map(|s| s.kind.as_str())
            .unwrap_or_default();
        let check = |status, problems| PortCheck {
            port: full.clone(),
            source: port.source.to_string(),
            status,
            problems,
        };
        let connector = match connectors.get(port.source.as_str()) {
            Some(Ok(c)) => Arc::clone(c),
            Some(Err(e)) => {
                out.push(check(LiveStatus::Unreachable, vec![e.message.clone()]));
                continue;
            }
            None => {
                out.push(check(
                    LiveStatus::Unreachable,
                    vec![format!("no connector for kind `{kind}`")],
                ));
                continue;
            }
        };
        let request = port_request(product, port);
        match connector.open_port(&session, &request).await {
            Ok(opened) => {
                let problems = contract_drift(
                    port,
                    connector.schema_traits(&request),
                    &opened.provider.schema(),
                );
                let status = if problems.is_empty() {
                    LiveStatus::Ok
                } else {
                    LiveStatus::Drift
                };
                out.push(check(status, problems));
            }
            Err(e) => {
                let status = match e.class {
                    ErrorClass::NotFound => LiveStatus::Missing,
                    ErrorClass::Data | ErrorClass::Query => LiveStatus::Drift,
                    _ => LiveStatus::Unreachable,
                };
                out.push(check(status, vec![e.message]));
            }
        }
    }
    out
}

/// Human-readable report, one line per port (and one per problem).
pub fn render_text(checks: &[PortCheck]) -> String {
    let mut s = String::new();
    for c in checks {
        let label = match c.status {
            LiveStatus::Ok => "ok",
            LiveStatus::Drift => "DRIFT",
            LiveStatus::Missing => "MISSING",
            LiveStatus::Unreachable => "UNREACHABLE",
        };
        s.push_str(&format!("{label:<12} {} (source {})\n", c.port, c.source));
        for p in &c.problems {
            s.push_str(&format!("             - {p}\n"));
        }
    }
    let bad = checks.iter().filter(|c| c.status != LiveStatus::Ok).count();
    s.push_str(&format!(
        "{} ports checked: {} ok, {bad} not\n",
        checks.len(),
        checks.len() - bad
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatibility() {
        assert!(compatible(&DataType::Int32, ColumnType::BigInt));
        assert!(!compatible(&DataType::Int64, ColumnType::Int));
        assert!(compatible(
            &DataType::Float64,
            ColumnType::Decimal {
                precision: 15,
                scale: 2
            }
        ));
        assert!(!compatible(&DataType::Utf8, ColumnType::BigInt));
        assert!(compatible(&DataType::Int64, ColumnType::String));
        assert!(!compatible(
            &DataType::Decimal128(15, 2),
            ColumnType::Decimal {
                precision: 10,
                scale: 2
            }
        ));
        assert!(compatible(&DataType::Date32, ColumnType::Timestamp));
    }
}
