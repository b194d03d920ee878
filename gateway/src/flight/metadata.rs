//! Metadata commands: catalogs, schemas, tables, table types, primary and foreign keys, all
//! read from the caller's [`CatalogView`] (never filtered here).
//! Results come from arrow-flight's builders (ADBC checks their schemas exactly) or, for key
//! commands, from the schemas the Flight SQL spec gives.

use std::sync::Arc;

use arrow_flight::sql::metadata::GetTablesBuilder;
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys,
    CommandGetImportedKeys, CommandGetPrimaryKeys, CommandGetTables,
};
use datafusion::arrow::array::{ArrayRef, Int32Builder, RecordBatch, StringBuilder, UInt8Builder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;

use crate::catalog::system::{system_tables, SYSTEM_CATALOG, SYSTEM_SCHEMA, USAGE_SCHEMA};
use crate::catalog::view::CatalogView;
use crate::error::GatewayError;
use crate::query::wire_schema;

/// The only table type served: every port is a table.
pub const TABLE_TYPE: &str = "TABLE";

pub(crate) fn catalogs(view: &CatalogView) -> Result<RecordBatch, GatewayError> {
    let mut b = CommandGetCatalogs {}.into_builder();
    for (d, _) in view.domains() {
        b.append(d.name.as_str());
    }
    b.append(SYSTEM_CATALOG);
    Ok(b.build()?)
}

pub(crate) fn schemas(
    view: &CatalogView,
    cmd: CommandGetDbSchemas,
) -> Result<RecordBatch, GatewayError> {
    let mut b = cmd.into_builder();
    for p in view.products() {
        b.append(p.domain.as_str(), p.name.as_str());
    }
    b.append(SYSTEM_CATALOG, SYSTEM_SCHEMA);
    b.append(SYSTEM_CATALOG, USAGE_SCHEMA);
    Ok(b.build()?)
}

pub(crate) fn tables(
    view: &CatalogView,
    cmd: CommandGetTables,
) -> Result<RecordBatch, GatewayError> {
    let mut b: GetTablesBuilder = cmd.into_builder();
    for (k, port) in view.served() {
        let schema = wire_schema(&port.table.schema());
        b.append(&k.domain, &k.product, &k.port, TABLE_TYPE, &schema)?;
    }
    for (schema_name, table, schema) in system_tables() {
        b.append(
            SYSTEM_CATALOG,
            schema_name,
            table,
            TABLE_TYPE,
            &wire_schema(&schema),
        )?;
    }
    Ok(b.build()?)
}

fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

/// Schema of GetPrimaryKeys results.
pub fn primary_keys_result_schema() -> SchemaRef {
    primary_keys_schema()
}

/// Schema of GetImportedKeys, GetExportedKeys and GetCrossReference results.
pub fn foreign_keys_result_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pk_catalog_name", DataType::Utf8, true),
        Field::new("pk_db_schema_name", DataType::Utf8, true),
        Field::new("pk_table_name", DataType::Utf8, false),
        Field::new("pk_column_name", DataType::Utf8, false),
        Field::new("fk_catalog_name", DataType::Utf8, true),
        Field::new("fk_db_schema_name", DataType::Utf8, true),
        Field::new("fk_table_name", DataType::Utf8, false),
        Field::new("fk_column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("fk_key_name", DataType::Utf8, true),
        Field::new("pk_key_name", DataType::Utf8, true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
}

fn matches(filter: &Option<String>, value: &str) -> bool {
    filter.as_deref().is_none_or(|f| f == value)
}

pub(crate) fn primary_keys(
    view: &CatalogView,
    cmd: &CommandGetPrimaryKeys,
) -> Result<RecordBatch, GatewayError> {
    let (mut c, mut s, mut t, mut col, mut name, mut seq) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        Int32Builder::new(),
    );
    for (d, p, port) in view.ports() {
        if !matches(&cmd.catalog, d.name.as_str())
            || !matches(&cmd.db_schema, p.name.as_str())
            || cmd.table != port.name.as_str()
        {
            continue;
        }
        for (i, k) in port.primary_key.iter().enumerate() {
            c.append_value(d.name.as_str());
            s.append_value(p.name.as_str());
            t.append_value(port.name.as_str());
            col.append_value(k);
            name.append_value(format!("{}_pkey", port.name));
            seq.append_value(i as i32 + 1);
        }
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(c.finish()),
        Arc::new(s.finish()),
        Arc::new(t.finish()),
        Arc::new(col.finish()),
        Arc::new(name.finish()),
        Arc::new(seq.finish()),
    ];
    Ok(RecordBatch::try_new(primary_keys_schema(), cols)?)
}

/// One foreign-key column pair: (pk side, fk side, sequence, fk name).
struct FkRow {
    pk: (String, String, String, String),
    fk: (String, String, String, String),
    seq: i32,
    name: String,
}

fn all_foreign_keys(view: &CatalogView) -> Vec<FkRow> {
    let mut rows = Vec::new();
    for (d, p, port) in view.ports() {
        for (n, fk) in port.foreign_keys.iter().enumerate() {
            if !view.can_read(fk.references.0.as_str(), fk.references.1.as_str()) {
                continue;
            }
            for (i, (fc, pc)) in fk.columns.iter().zip(&fk.referenced_columns).enumerate() {
                rows.push(FkRow {
                    pk: (
                        fk.references.0.to_string(),
                        fk.references.1.to_string(),
                        fk.references.2.to_string(),
                        pc.clone(),
                    ),
                    fk: (
                        d.name.to_string(),
                        p.name.to_string(),
                        port.name.to_string(),
                        fc.clone(),
                    ),
                    seq: i as i32 + 1,
                    name: format!("{}_fk{}", port.name, n + 1),
                });
            }
        }
    }
    rows
}

fn fk_batch(rows: Vec<FkRow>) -> Result<RecordBatch, GatewayError> {
    let mut b: Vec<StringBuilder> = (0..8).map(|_| StringBuilder::new()).collect();
    let (mut seq, mut fkn, mut pkn, mut upd, mut del) = (
        Int32Builder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        UInt8Builder::new(),
        UInt8Builder::new(),
    );
    for r in rows {
        for (i, v) in [
            &r.pk.0, &r.pk.1, &r.pk.2, &r.pk.3, &r.fk.0, &r.fk.1, &r.fk.2, &r.fk.3,
        ]
        .into_iter()
        .enumerate()
        {
            b[i].append_value(v);
        }
        seq.append_value(r.seq);
        fkn.append_value(&r.name);
        pkn.append_value(format!("{}_pkey", r.pk.2));
        // 3 = NO ACTION (the mesh is read-only).
        upd.append_value(3);
        del.append_value(3);
    }
    let mut cols: Vec<ArrayRef> = b
        .iter_mut()
        .map(|x| Arc::new(x.finish()) as ArrayRef)
        .collect();
    cols.push(Arc::new(seq.finish()));
    cols.push(Arc::new(fkn.finish()));
    cols.push(Arc::new(pkn.finish()));
    cols.push(Arc::new(upd.finish()));
    cols.push(Arc::new(del.finish()));
    Ok(RecordBatch::try_new(foreign_keys_result_schema(), cols)?)
}

fn side_matches(
    side: &(String, String, String, String),
    c: &Option<String>,
    s: &Option<String>,
    t: &str,
) -> bool {
    matches(c, &side.0) && matches(s, &side.1) && side.2 == t
}

pub(crate) fn imported_keys(
    view: &CatalogView,
    cmd: &CommandGetImportedKeys,
) -> Result<RecordBatch, GatewayError> {
    let rows = all_foreign_keys(view)
        .into_iter()
        .filter(|r| side_matches(&r.fk, &cmd.catalog, &cmd.db_schema, &cmd.table))
        .collect();
    fk_batch(rows)
}

pub(crate) fn exported_keys(
    view: &CatalogView,
    cmd: &CommandGetExportedKeys,
) -> Result<RecordBatch, GatewayError> {
    let rows = all_foreign_keys(view)
        .into_iter()
        .filter(|r| side_matches(&r.pk, &cmd.catalog, &cmd.db_schema, &cmd.table))
        .collect();
    fk_batch(rows)
}

pub(crate) fn cross_reference(
    view: &CatalogView,
    cmd: &CommandGetCrossReference,
) -> Result<RecordBatch, GatewayError> {
    let rows = all_foreign_keys(view)
        .into_iter()
        .filter(|r| {
            side_matches(&r.pk, &cmd.pk_catalog, &cmd.pk_db_schema, &cmd.pk_table)
                && side_matches(&r.fk, &cmd.fk_catalog, &cmd.fk_db_schema, &cmd.fk_table)
        })
        .collect();
    fk_batch(rows)
}
