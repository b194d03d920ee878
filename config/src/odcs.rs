//! Open Data Contract Standard (ODCS) v3 interoperability: a port may take its contract from an
//! ODCS document (`contract: orders.odcs.yaml`), and `meshgate contract export` writes one.
//!
//! Supported: the `schema` part (one object; its `properties` with `name`, `logicalType`,
//! `physicalType`, `required`, `description`, `classification`) and a `freshness` entry of
//! `slaProperties`. `physicalType` is read as a contract type when it is one (`bigint`,
//! `decimal(15,2)`, ...), so that export then import gives the same contract; otherwise the
//! `logicalType` decides.

use std::path::Path;

use serde::Deserialize;

use crate::doc::ProductStatus;
use crate::model::{Column, Port, Product};
use crate::types::ColumnType;

/// The ODCS version written by [`export`].
pub const ODCS_VERSION: &str = "v3.0.2";

#[derive(Debug, Deserialize)]
struct Doc {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    #[serde(default)]
    schema: Vec<SchemaObject>,
    #[serde(default, rename = "slaProperties")]
    sla_properties: Vec<Sla>,
}

#[derive(Debug, Deserialize)]
struct SchemaObject {
    name: String,
    #[serde(default, rename = "physicalName")]
    physical_name: Option<String>,
    #[serde(default)]
    properties: Vec<Property>,
}

#[derive(Debug, Deserialize)]
struct Property {
    name: String,
    #[serde(default, rename = "logicalType")]
    logical_type: Option<String>,
    #[serde(default, rename = "physicalType")]
    physical_type: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    classification: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Sla {
    property: String,
    value: serde_json::Value,
    #[serde(default)]
    unit: Option<String>,
}

/// What a port takes from an ODCS document.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The contract columns.
    pub columns: Vec<Column>,
    /// The freshness SLA, e.g. `24h`, when the document has one.
    pub freshness: Option<String>,
}

fn logical(t: &str) -> Option<ColumnType> {
    Some(match t.to_ascii_lowercase().as_str() {
        "string" => ColumnType::String,
        "integer" => ColumnType::BigInt,
        "number" => ColumnType::Double,
        "boolean" => ColumnType::Boolean,
        "date" => ColumnType::Date,
        "timestamp" => ColumnType::Timestamp,
        _ => return None,
    })
}

/// Reads the contract of port `port` (table `table`) from the ODCS document at `path`.
pub fn import(path: &Path, port: &str, table: Option<&str>) -> Result<Imported, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the ODCS contract {}: {e}", path.display()))?;
    let doc: Doc = serde_saphyr::from_str(&text)
        .map_err(|e| format!("{} is not an ODCS document: {e}", path.display()))?;
    if doc.kind != "DataContract" || !doc.api_version.starts_with("v3") {
        return Err(format!(
            "{}: expected an ODCS v3 document (`apiVersion: v3.x`, `kind: DataContract`), got {} {}",
            path.display(),
            doc.api_version,
            doc.kind
        ));
    }
    let object = match doc.schema.as_slice() {
        [] => return Err(format!("{}: the document has no `schema`", path.display())),
        [one] => one,
        many => many
            .iter()
            .find(|o| {
                o.name == port || table.is_some_and(|t| o.physical_name.as_deref() == Some(t))
            })
            .ok_or_else(|| {
                format!(
                    "{}: several schema objects and none is named `{port}`",
                    path.display()
                )
            })?,
    };
    if object.properties.is_empty() {
        return Err(format!(
            "{}: schema object `{}` has no properties",
            path.display(),
            object.name
        ));
    }
    let mut columns = Vec::new();
    for p in &object.properties {
        let data_type = p
            .physical_type
            .as_deref()
            .and_then(|t| t.parse::<ColumnType>().ok())
            .or_else(|| p.logical_type.as_deref().and_then(logical))
            .ok_or_else(|| {
                format!(
                    "{}: property `{}` has no usable type (physicalType {:?}, logicalType {:?})",
                    path.display(),
                    p.name,
                    p.physical_type,
                    p.logical_type
                )
            })?;
        columns.push(Column {
            name: p.name.clone(),
            data_type,
            required: p.required,
            description: p.description.clone(),
            classification: p.classification.clone(),
        });
    }
    let freshness = doc
        .sla_properties
        .iter()
        .find(|s| s.property.eq_ignore_ascii_case("freshness"))
        .map(|s| {
            let v = match &s.value {
                serde_json::Value::String(x) => x.clone(),
                other => other.to_string(),
            };
            format!("{v}{}", s.unit.as_deref().unwrap_or(""))
        });
    Ok(Imported { columns, freshness })
}

fn logical_of(t: ColumnType) -> &'static str {
    use ColumnType::*;
    match t {
        Boolean => "boolean",
        TinyInt | SmallInt | Int | BigInt => "integer",
        Float | Double | Decimal { .. } => "number",
        String | Binary | Time => "string",
        Date | Timestamp | TimestampTz => "date",
    }
}

/// A YAML scalar: JSON strings are valid YAML double-quoted scalars.
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// An ODCS v3 document for `port` of `product`, as YAML.
pub fn export(product: &Product, port: &Port) -> String {
    let id = format!("{}.{}.{}", product.domain, product.name, port.name);
    let status = match product.status {
        ProductStatus::Draft => "draft",
        ProductStatus::Published => "active",
        ProductStatus::Deprecated => "deprecated",
    };
    let mut y = String::new();
    y.push_str(&format!("apiVersion: {ODCS_VERSION}\nkind: DataContract\n"));
    y.push_str(&format!("id: {}\n", q(&id)));
    y.push_str(&format!("name: {}\n", q(port.name.as_str())));
    y.push_str(&format!(
        "version: {}\n",
        q(&format!("{}.0.0", port.version.unwrap_or(1)))
    ));
    y.push_str(&format!("status: {status}\n"));
    y.push_str(&format!("domain: {}\n", q(product.domain.as_str())));
    y.push_str(&format!("dataProduct: {}\n", q(product.name.as_str())));
    if let Some(d) = port.description.as_ref().or(product.description.as_ref()) {
        y.push_str(&format!("description:\n  purpose: {}\n", q(d)));
    }
    y.push_str("schema:\n");
    y.push_str(&format!("  - name: {}\n", q(port.name.as_str())));
    let physical = port.binding.table.as_deref().unwrap_or(port.name.as_str());
    y.push_str(&format!("    physicalName: {}\n", q(physical)));
    y.push_str("    logicalType: object\n    physicalType: table\n");
    if let Some(d) = &port.description {
        y.push_str(&format!("    description: {}\n", q(d)));
    }
    y.push_str("    properties:\n");
    for c in port.columns.iter().flatten() {
        y.push_str(&format!("      - name: {}\n", q(&c.name)));
        y.push_str(&format!(
            "        logicalType: {}\n",
            logical_of(c.data_type)
        ));
        y.push_str(&format!(
            "        physicalType: {}\n",
            q(&c.data_type.to_string())
        ));
        y.push_str(&format!("        required: {}\n", c.required));
        if let Some(d) = &c.description {
            y.push_str(&format!("        description: {}\n", q(d)));
        }
        if let Some(cl) = &c.classification {
            y.push_str(&format!("        classification: {}\n", q(cl)));
        }
    }
    if let Some(f) = &port.freshness {
        let digits: String = f.chars().take_while(|c| c.is_ascii_digit()).collect();
        let unit = &f[digits.len()..];
        if let Ok(v) = digits.parse::<u64>() {
            y.push_str(&format!(
                "slaProperties:\n  - property: freshness\n    value: {v}\n    unit: {}\n",
                q(if unit.is_empty() { "h" } else { unit })
            ));
        }
    }
    y
}
