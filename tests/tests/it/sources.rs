//! Every file format and layout of the `files` connector, and SQLite tables and queries,
//! through the gateway.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::parquet::arrow::ArrowWriter;
use meshgate_tests::{query, row_count, write_file as write, TestGateway};

fn batch(ids: &[i64], names: &[&str]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names.to_vec())),
        ],
    )
    .expect("batch")
}

fn write_parquet(path: &Path, b: &RecordBatch) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).expect("file"), b.schema(), None)
        .expect("writer");
    w.write(b).expect("write");
    w.close().expect("close");
}

fn sources_mesh() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    write(
        d,
        "data/json/events.json",
        "{\"id\": 1, \"name\": \"a\"}\n{\"id\": 2, \"name\": \"b\"}\n{\"id\": 3, \"name\": null}\n",
    );
    let mut w = FileWriter::try_new(
        std::fs::File::create(d.join("data/events.arrow")).expect("file"),
        &batch(&[1], &["x"]).schema(),
    )
    .expect("ipc");
    w.write(&batch(&[1, 2], &["x", "y"])).expect("write");
    w.finish().expect("finish");
    write(d, "data/glob/a.csv", "id,name\n1,a\n");
    write(d, "data/glob/b.csv", "id,name\n2,b\n3,c\n");
    write(d, "data/glob/ignored.txt", "not a csv\n");
    write(d, "data/semi.csv", "id;name\n1;a\n2;b\n");
    write_parquet(
        &d.join("data/hive/region=emea/year=2024/p.parquet"),
        &batch(&[1, 2], &["a", "b"]),
    );
    write_parquet(
        &d.join("data/hive/region=apac/year=2024/p.parquet"),
        &batch(&[3], &["c"]),
    );
    write_parquet(
        &d.join("data/hive/region=apac/year=2025/p.parquet"),
        &batch(&[4, 5, 6], &["d", "e", "f"]),
    );
    let db = rusqlite::Connection::open(d.join("data/app.sqlite")).expect("sqlite");
    db.execute_batch(
        "CREATE TABLE users (id INTEGER NOT NULL, name TEXT, score REAL, active BOOLEAN, avatar BLOB, born DATE);
         INSERT INTO users VALUES (1, 'ann', 1.5, 1, x'00ff', '1990-01-02'), (2, 'bob', NULL, 0, NULL, NULL), (3, NULL, 3, 1, x'', '2000-12-31');",
    )
    .expect("seed");
    let url = format!("file://{}/data/", d.display());
    write(
        d,
        "mesh.yaml",
        &format!(
            "apiVersion: meshgate/v1\nkind: Mesh\nname: t\nauth: {{ anonymous: true }}\npolicies: {{ default_access: allow }}\nsources:\n  - {{ name: lake, kind: files, options: {{ url: data }} }}\n  - {{ name: lake_url, kind: files, options: {{ url: \"{url}\" }} }}\n  - {{ name: app, kind: sqlite, options: {{ path: data/app.sqlite }} }}\n"
        ),
    );
    write(
        d,
        "domains/t/files.yaml",
        r#"apiVersion: meshgate/v1
kind: DataProduct
domain: t
name: files
owner: { team: t }
ports:
  - { name: json, source: lake, location: json/, format: json }
  - { name: arrow, source: lake, location: events.arrow, format: arrow }
  - { name: glob, source: lake, location: "glob/*.csv", format: csv }
  - { name: dir, source: lake, location: glob/, format: csv }
  - { name: semi, source: lake, location: semi.csv, format: csv, options: { delimiter: ";" } }
  - { name: hive, source: lake_url, location: hive/, format: parquet }
"#,
    );
    write(
        d,
        "domains/t/app.yaml",
        r#"apiVersion: meshgate/v1
kind: DataProduct
domain: t
name: app
owner: { team: t }
ports:
  - { name: users, source: app, table: users }
  - name: active_users
    source: app
    query: "SELECT id, upper(name) AS name, score * 2 AS double_score FROM users WHERE active"
"#,
    );
    dir
}

fn ids(b: &[RecordBatch]) -> Vec<i64> {
    let mut v: Vec<i64> = b
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn every_file_format_and_layout() {
    let dir = sources_mesh();
    let gw = TestGateway::start(dir.path()).await;
    let mut c = gw.client().await;
    assert_eq!(
        ids(&query(&mut c, "SELECT id FROM t.files.json")
            .await
            .expect("json")),
        [1, 2, 3]
    );
    assert_eq!(
        ids(&query(&mut c, "SELECT id FROM t.files.arrow")
            .await
            .expect("arrow")),
        [1, 2]
    );
    assert_eq!(
        ids(&query(&mut c, "SELECT id FROM t.files.glob")
            .await
            .expect("glob")),
        [1, 2, 3]
    );
    assert_eq!(
        ids(&query(&mut c, "SELECT id FROM t.files.dir")
            .await
            .expect("dir")),
        [1, 2, 3],
        "only *.csv are read"
    );
    assert_eq!(
        ids(&query(&mut c, "SELECT id FROM t.files.semi")
            .await
            .expect("delimiter")),
        [1, 2]
    );
    let b = query(
        &mut c,
        "SELECT id, region, year FROM t.files.hive WHERE region = 'apac' AND year = '2025'",
    )
    .await
    .expect("hive");
    assert_eq!(ids(&b), [4, 5, 6], "partition columns filter");
    assert_eq!(b[0].schema().field(1).data_type(), &DataType::Utf8);
    assert_eq!(
        row_count(
            &query(&mut c, "SELECT * FROM t.files.hive")
                .await
                .expect("all")
        ),
        6
    );
}

#[tokio::test]
async fn sqlite_tables_and_queries_with_their_types() {
    let dir = sources_mesh();
    let gw = TestGateway::start(dir.path()).await;
    let mut c = gw.client().await;
    let b = query(&mut c, "SELECT * FROM t.app.users ORDER BY id")
        .await
        .expect("table");
    let s = b[0].schema();
    let types: Vec<&DataType> = s.fields().iter().map(|f| f.data_type()).collect();
    assert_eq!(
        types,
        [
            &DataType::Int64,
            &DataType::Utf8,
            &DataType::Float64,
            &DataType::Boolean,
            &DataType::Binary,
            &DataType::Utf8
        ]
    );
    assert_eq!(row_count(&b), 3);
    assert_eq!(b[0].column(1).null_count(), 1, "NULL text stays NULL");
    assert_eq!(b[0].column(2).null_count(), 1, "NULL real stays NULL");
    let q = query(&mut c, "SELECT * FROM t.app.active_users ORDER BY id")
        .await
        .expect("query port");
    assert_eq!(ids(&q), [1, 3]);
    assert_eq!(q[0].column(1).as_string::<i32>().value(0), "ANN");
    let limited = query(&mut c, "SELECT id FROM t.app.users LIMIT 1")
        .await
        .expect("limit");
    assert_eq!(row_count(&limited), 1);
}

#[tokio::test]
async fn data_removed_after_start_is_unavailable_not_internal() {
    let dir = sources_mesh();
    let gw = TestGateway::start(dir.path()).await;
    let mut c = gw.client().await;
    std::fs::remove_file(dir.path().join("data/events.arrow")).expect("remove");
    let e = query(&mut c, "SELECT * FROM t.files.arrow")
        .await
        .expect_err("file is gone");
    assert!(
        matches!(e.code(), tonic::Code::Unavailable | tonic::Code::NotFound),
        "{:?}: {}",
        e.code(),
        e.message()
    );
    // Other ports keep serving.
    assert_eq!(
        row_count(
            &query(&mut c, "SELECT * FROM t.files.json")
                .await
                .expect("json")
        ),
        3
    );
}
