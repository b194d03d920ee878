//! Every metadata command, checked through the Flight SQL client.

use arrow_flight::sql::{
    CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetTables, CommandGetXdbcTypeInfo, SqlInfo,
};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Int32Type};
use datafusion::arrow::ipc::convert::try_schema_from_ipc_buffer;
use meshgate_tests::{demo_dir, fetch, row_count, TestGateway};

fn strings(b: &[RecordBatch], col: &str) -> Vec<String> {
    b.iter()
        .flat_map(|b| {
            let a = b
                .column_by_name(col)
                .expect("column")
                .as_string::<i32>()
                .clone();
            (0..a.len())
                .map(move |i| a.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn catalogs_schemas_and_table_types() {
    let gw = TestGateway::start(&demo_dir()).await;
    let mut c = gw.client().await;
    let info = c.get_catalogs().await.expect("catalogs");
    assert!(
        info.endpoint[0].location.is_empty(),
        "one endpoint, no location"
    );
    let b = fetch(&mut c, info).await.expect("fetch");
    assert_eq!(
        strings(&b, "catalog_name"),
        ["customers", "mesh", "sales", "supply"]
    );

    let info = c
        .get_db_schemas(CommandGetDbSchemas {
            catalog: None,
            db_schema_filter_pattern: Some("c%".into()),
        })
        .await
        .expect("schemas");
    let b = fetch(&mut c, info).await.expect("fetch");
    // customers.crm, mesh.catalog, supply.catalog
    assert_eq!(strings(&b, "db_schema_name"), ["crm", "catalog", "catalog"]);

    let info = c.get_table_types().await.expect("types");
    let b = fetch(&mut c, info).await.expect("fetch");
    assert_eq!(strings(&b, "table_type"), ["TABLE"]);
}

#[tokio::test]
async fn tables_with_patterns_and_schemas() {
    let gw = TestGateway::start(&demo_dir()).await;
    let mut c = gw.client().await;
    let info = c
        .get_tables(CommandGetTables {
            catalog: Some("sales".into()),
            db_schema_filter_pattern: None,
            table_name_filter_pattern: Some("line%".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .expect("tables");
    let schema_in_info = info.clone().try_decode_schema().expect("schema");
    let b = fetch(&mut c, info).await.expect("fetch");
    assert_eq!(
        b[0].schema().as_ref(),
        &schema_in_info,
        "FlightInfo schema equals the streamed one"
    );
    assert_eq!(strings(&b, "table_name"), ["lineitem"]);
    let bytes = b[0]
        .column_by_name("table_schema")
        .expect("schema column")
        .as_binary::<i32>()
        .value(0)
        .to_vec();
    let schema = try_schema_from_ipc_buffer(&bytes).expect("ipc schema");
    let f = schema.field_with_name("l_shipdate").expect("field");
    assert_eq!(f.data_type(), &DataType::Date32);
    assert_eq!(
        f.metadata()
            .get("ARROW:FLIGHT:SQL:REMARKS")
            .map(String::as_str),
        Some("Ship date.")
    );
    assert!(!f.is_nullable());
    assert_eq!(
        schema
            .field_with_name("l_comment")
            .expect("field")
            .data_type(),
        &DataType::Utf8
    );

    let info = c
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: None,
            table_name_filter_pattern: None,
            table_types: vec!["TABLE".into()],
            include_schema: false,
        })
        .await
        .expect("tables");
    // 8 ports and the 6 tables of the `mesh` catalog.
    assert_eq!(row_count(&fetch(&mut c, info).await.expect("fetch")), 14);
}

#[tokio::test]
async fn sql_info_is_spec_typed() {
    let gw = TestGateway::start(&demo_dir()).await;
    let mut c = gw.client().await;
    let info = c
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
            SqlInfo::FlightSqlServerTransaction,
            SqlInfo::SqlIdentifierQuoteChar,
            SqlInfo::SqlKeywords,
        ])
        .await
        .expect("sql info");
    let b = fetch(&mut c, info).await.expect("fetch");
    assert_eq!(row_count(&b), 5);
    let names = b[0]
        .column(0)
        .as_primitive::<datafusion::arrow::datatypes::UInt32Type>();
    let values = b[0].column(1).as_union();
    for i in 0..names.len() {
        let id = names.value(i);
        let type_id = values.type_id(i);
        // Union children: 0 string, 1 bool, 2 int64, 3 int32 bitmask, 4 string list, 5 map.
        let expected = match id {
            0 | 504 => 0,
            3 => 1,
            8 => 3,
            508 => 4,
            other => panic!("unexpected id {other}"),
        };
        assert_eq!(type_id, expected, "SqlInfo {id}");
    }
    let all = c.get_sql_info(vec![]).await.expect("all");
    assert!(row_count(&fetch(&mut c, all).await.expect("fetch")) > 70);
}

#[tokio::test]
async fn primary_and_foreign_keys() {
    let gw = TestGateway::start(&demo_dir()).await;
    let mut c = gw.client().await;
    let info = c
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: Some("sales".into()),
            db_schema: Some("orders".into()),
            table: "lineitem".into(),
        })
        .await
        .expect("pk");
    let b = fetch(&mut c, info).await.expect("fetch");
    assert_eq!(strings(&b, "column_name"), ["l_orderkey", "l_linenumber"]);
    let seq = b[0]
        .column_by_name("key_sequence")
        .expect("seq")
        .as_primitive::<Int32Type>();
    assert_eq!(seq.values().to_vec(), vec![1, 2]);

    let info = c
        .get_imported_keys(CommandGetImportedKeys {
            catalog: None,
            db_schema: None,
            table: "orders".into(),
        })
        .await
        .expect("imported");
    let b = fetch(&mut c, info).await.expect("fetch");
    assert_eq!(strings(&b, "pk_table_name"), ["customer"]);
    assert_eq!(strings(&b, "fk_column_name"), ["o_custkey"]);

    let info = c
        .get_exported_keys(CommandGetExportedKeys {
            catalog: Some("customers".into()),
            db_schema: None,
            table: "nation".into(),
        })
        .await
        .expect("exported");
    let b = fetch(&mut c, info).await.expect("fetch");
    let mut fk_tables = strings(&b, "fk_table_name");
    fk_tables.sort();
    assert_eq!(
        fk_tables,
        ["customer", "supplier"],
        "nation is referenced across domains"
    );

    let info = c
        .get_cross_reference(CommandGetCrossReference {
            pk_catalog: None,
            pk_db_schema: None,
            pk_table: "partsupp".into(),
            fk_catalog: None,
            fk_db_schema: None,
            fk_table: "lineitem".into(),
        })
        .await
        .expect("cross");
    let b = fetch(&mut c, info).await.expect("fetch");
    assert_eq!(strings(&b, "fk_column_name"), ["l_partkey", "l_suppkey"]);
}

#[tokio::test]
async fn xdbc_type_info() {
    let gw = TestGateway::start(&demo_dir()).await;
    let mut c = gw.client().await;
    let info = c
        .get_xdbc_type_info(CommandGetXdbcTypeInfo { data_type: None })
        .await
        .expect("xdbc");
    let b = fetch(&mut c, info).await.expect("fetch");
    let names = strings(&b, "type_name");
    for t in ["BIGINT", "DECIMAL", "VARCHAR", "DATE", "TIMESTAMP"] {
        assert!(names.iter().any(|n| n == t), "{t} in {names:?}");
    }
    // Filtered by data type (XDBC_BIGINT = -5).
    let info = c
        .get_xdbc_type_info(CommandGetXdbcTypeInfo {
            data_type: Some(-5),
        })
        .await
        .expect("xdbc");
    assert_eq!(
        strings(&fetch(&mut c, info).await.expect("fetch"), "type_name"),
        ["BIGINT"]
    );
}
