//! Port contracts: exact names, order, types and nullability; hidden extra columns; NULLs in
//! required columns; a port whose source does not match its contract.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use meshgate_tests::{query, row_count, write_file as write, TestGateway};

fn contract_mesh() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    write(d, "data/events.csv", "id,when,amount,secret,label\n1,2024-01-02 03:04:05,12.5,s1,a\n2,2024-02-03 04:05:06,7,s2,\n");
    write(d, "data/nulls.csv", "id,name\n1,x\n2,\n");
    write(
        d,
        "mesh.yaml",
        "apiVersion: meshgate/v1\nkind: Mesh\nname: t\nauth: { anonymous: true }\npolicies: { default_access: allow }\nsources:\n  - { name: lake, kind: files, options: { url: data } }\n",
    );
    write(
        d,
        "domains/ops/events.yaml",
        r#"apiVersion: meshgate/v1
kind: DataProduct
domain: ops
name: events
owner: { team: ops }
ports:
  - name: events
    source: lake
    location: events.csv
    format: csv
    columns:
      - { name: label, type: string, description: A label. }
      - { name: id, type: int, required: true }
      - { name: amount, type: "decimal(10,2)", required: true }
      - { name: when, type: timestamp }
  - name: raw
    source: lake
    location: events.csv
    format: csv
  - name: strict
    source: lake
    location: nulls.csv
    format: csv
    columns:
      - { name: id, type: bigint, required: true }
      - { name: name, type: string, required: true }
  - name: broken
    source: lake
    location: events.csv
    format: csv
    columns:
      - { name: id, type: bigint }
      - { name: missing_column, type: string }
"#,
    );
    dir
}

#[tokio::test]
async fn results_follow_the_contract_exactly() {
    let dir = contract_mesh();
    let gw = TestGateway::start(dir.path()).await;
    let mut c = gw.client().await;
    let b = query(&mut c, "SELECT * FROM ops.events.events ORDER BY id")
        .await
        .expect("query");
    let schema = b[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        ["label", "id", "amount", "when"],
        "contract order, extra columns hidden"
    );
    assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
    assert!(schema.field(0).is_nullable());
    assert_eq!(schema.field(1).data_type(), &DataType::Int32);
    assert!(!schema.field(1).is_nullable());
    assert_eq!(schema.field(2).data_type(), &DataType::Decimal128(10, 2));
    assert_eq!(
        schema.field(3).data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(row_count(&b), 2);
    let e = query(&mut c, "SELECT secret FROM ops.events.events")
        .await
        .expect_err("hidden column");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    // Without a contract the source schema is served as is.
    let raw = query(&mut c, "SELECT secret FROM ops.events.raw")
        .await
        .expect("raw");
    assert_eq!(row_count(&raw), 2);
    // Filters on cast columns are evaluated on the contract's values.
    let f = query(&mut c, "SELECT id FROM ops.events.events WHERE amount > 10")
        .await
        .expect("filter");
    assert_eq!(row_count(&f), 1);
}

#[tokio::test]
async fn null_in_a_required_column_fails_the_query() {
    let dir = contract_mesh();
    let gw = TestGateway::start(dir.path()).await;
    let mut c = gw.client().await;
    let e = query(&mut c, "SELECT * FROM ops.events.strict")
        .await
        .expect_err("null in required");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{}", e.message());
    assert!(
        e.message().contains("name") && e.message().contains("required"),
        "{}",
        e.message()
    );
    // Other columns of the same port still serve.
    assert_eq!(
        row_count(
            &query(&mut c, "SELECT id FROM ops.events.strict")
                .await
                .expect("ok")
        ),
        2
    );
}

#[tokio::test]
async fn a_port_that_breaks_its_contract_is_unavailable_with_the_reason() {
    let dir = contract_mesh();
    let gw = TestGateway::start(dir.path()).await;
    let mut c = gw.client().await;
    let e = query(&mut c, "SELECT * FROM ops.events.broken")
        .await
        .expect_err("broken");
    // A source that does not match the contract: FAILED_PRECONDITION (issue 5), not a retry.
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{}", e.message());
    assert!(e.message().contains("missing_column"), "{}", e.message());
    // The rest of the mesh serves.
    assert_eq!(
        row_count(
            &query(&mut c, "SELECT * FROM ops.events.raw")
                .await
                .expect("ok")
        ),
        2
    );
}

/// Filters reach a Parquet scan through the contract when the column keeps the file's type
/// (row groups are pruned by statistics); a filter on a column the contract casts stays above
/// the contract, where it sees the contract's values. Results are right either way.
#[tokio::test]
async fn filters_reach_parquet_scans_only_on_uncast_columns() {
    use datafusion::arrow::array::{Int32Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    use std::sync::Arc;

    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    std::fs::create_dir_all(d.join("data")).expect("mkdir");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("score", DataType::Int32, false),
        Field::new("label", DataType::Utf8, false),
    ]));
    let n = 4_000i32;
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int32Array::from_iter_values(0..n)),
            Arc::new(Int32Array::from_iter_values(0..n)),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("g{}", i / 1_000)),
            )),
        ],
    )
    .expect("batch");
    let file = std::fs::File::create(d.join("data/t.parquet")).expect("create");
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(1_000))
        .build();
    let mut w = ArrowWriter::try_new(file, schema, Some(props)).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    write(
        d,
        "mesh.yaml",
        &format!(
            "apiVersion: meshgate/v1\nkind: Mesh\nname: t\n{}sources:\n  - {{ name: lake, kind: files, options: {{ url: data }} }}\n",
            meshgate_tests::admin_auth_yaml()
        ),
    );
    write(
        d,
        "domains/p.yaml",
        "apiVersion: meshgate/v1\nkind: DataProduct\ndomain: d\nname: p\nowner: { team: t }\nports:\n  - name: t\n    source: lake\n    location: t.parquet\n    format: parquet\n    columns:\n      - { name: id, type: int }\n      - { name: score, type: bigint }\n      - { name: label, type: string }\n",
    );
    let gw = TestGateway::start(d).await;
    let mut c = gw.client().await;
    // The count `sql` returns and the parquet scan's line of its EXPLAIN ANALYZE.
    async fn count_and_scan(
        c: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
        sql: &str,
    ) -> (Vec<String>, String) {
        let got = query(c, sql).await.expect("query");
        let plan = query(c, &format!("EXPLAIN ANALYZE {sql}"))
            .await
            .expect("explain");
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
            .expect("format")
            .to_string();
        let line = text
            .lines()
            .find(|l| l.contains("DataSourceExec"))
            .map(String::from)
            .expect("a parquet scan");
        (meshgate_tests::sorted_rows(&got), line)
    }
    // `id` keeps its type: the filter prunes three row groups of four.
    let (rows, line) = count_and_scan(&mut c, "SELECT count(*) FROM d.p.t WHERE id >= 3500").await;
    assert_eq!(rows, ["| 500      |"]);
    assert!(line.contains("predicate=id@"), "{line}");
    assert!(
        line.contains("row_groups_pruned_statistics=4 total → 1 matched"),
        "{line}"
    );
    // Strings are read as the contract's `string`: pushed too.
    let (rows, line) =
        count_and_scan(&mut c, "SELECT count(*) FROM d.p.t WHERE label = 'g2'").await;
    assert_eq!(rows, ["| 1000     |"]);
    assert!(
        line.contains("row_groups_pruned_statistics=4 total → 1 matched"),
        "{line}"
    );
    // `score` is cast from int to bigint by the contract: not pushed, still right.
    let (rows, line) =
        count_and_scan(&mut c, "SELECT count(*) FROM d.p.t WHERE score >= 3500").await;
    assert_eq!(rows, ["| 500      |"]);
    assert!(!line.contains("predicate="), "{line}");
}
