//! The fuzzer's data: TPC-H at a small scale plus an `edge` table of awkward values (NULLs,
//! mixed case, trailing spaces, non-ASCII, `%`/`_`/`*` characters, negative and zero
//! numbers), loaded into every source kind, and the mesh that serves them.
//!
//! Every table is a port of every source: `pg.tpch.<t>` (PostgreSQL, the `edge` strings in a
//! case-insensitive ICU collation when the server has one), `my.tpch.<t>` (MariaDB, a
//! database in the default `utf8mb4_general_ci` collation), `lite.tpch.<t>` (SQLite, the
//! `edge` strings declared `COLLATE NOCASE`), `lake.tpch.<t>` (Parquet) and `remote.tpch.<t>`
//! (a second meshgate serving the Parquet files, read as a `flightsql` source).

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use mysql_async::prelude::Queryable;

use crate::dbs::{self, DbAddress, Kind};

/// TPC-H tables of the fuzz data, then `edge`.
pub const TABLES: &[&str] = &[
    "nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem", "edge",
];

/// The source domains of the fuzz mesh: `(domain, source kind)`.
pub const DOMAINS: &[(&str, &str)] = &[
    ("pg", "postgres"),
    ("my", "mysql"),
    ("lite", "sqlite"),
    ("lake", "files"),
    ("remote", "flightsql"),
];

/// The unique key of each table (for deterministic window functions).
pub fn unique_key(table: &str) -> &'static [&'static str] {
    match table {
        "nation" => &["n_nationkey"],
        "region" => &["r_regionkey"],
        "part" => &["p_partkey"],
        "supplier" => &["s_suppkey"],
        "partsupp" => &["ps_partkey", "ps_suppkey"],
        "customer" => &["c_custkey"],
        "orders" => &["o_orderkey"],
        "lineitem" => &["l_orderkey", "l_linenumber"],
        _ => &["id"],
    }
}

/// The table `name` at `scale`: TPC-H with strings as `Utf8`, or the edge table.
pub fn table(name: &str, scale: f64) -> Vec<RecordBatch> {
    if name == "edge" {
        return vec![edge()];
    }
    let batches: Vec<RecordBatch> = dbs::tpch_table_at(name, scale)
        .into_iter()
        .map(|b| plain_strings(&b))
        .collect();
    if name == "partsupp" {
        // At tiny scales the generator repeats (part, supplier) pairs: keep the first.
        return dedup_partsupp(&batches);
    }
    batches
}

fn dedup_partsupp(batches: &[RecordBatch]) -> Vec<RecordBatch> {
    use datafusion::arrow::array::{AsArray, BooleanArray};
    use datafusion::arrow::datatypes::Int64Type;
    let mut seen = std::collections::HashSet::new();
    batches
        .iter()
        .map(|b| {
            let p = b.column(0).as_primitive::<Int64Type>();
            let s = b.column(1).as_primitive::<Int64Type>();
            let keep: BooleanArray = (0..b.num_rows())
                .map(|i| Some(seen.insert((p.value(i), s.value(i)))))
                .collect();
            datafusion::arrow::compute::filter_record_batch(b, &keep).expect("filter")
        })
        .collect()
}

fn plain_strings(b: &RecordBatch) -> RecordBatch {
    let fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View => Field::new(f.name(), DataType::Utf8, f.is_nullable()),
            _ => f.as_ref().clone(),
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let cols = b
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| cast(c, f.data_type()).expect("cast"))
        .collect();
    RecordBatch::try_new(schema, cols).expect("batch")
}

/// Awkward values in every column type.
pub fn edge() -> RecordBatch {
    let s: Vec<Option<&str>> = vec![
        Some("a"),
        Some("A"),
        Some("b"),
        Some("B"),
        Some("a "),
        Some("ab"),
        Some("Ab"),
        Some(""),
        None,
        Some("é"),
        Some("É"),
        Some("z"),
        Some("Z"),
        Some("%"),
        Some("_"),
        Some("a_b"),
        Some("a%b"),
        Some(" lead"),
        Some("x*y"),
        Some("q?"),
        Some("[br]"),
        Some("ß"),
        Some("abc"),
        Some("ABC"),
        Some("abc "),
        Some("GERMANY"),
        None,
        Some("germany"),
        Some("mixed Case"),
        Some("a"),
    ];
    let n = s.len();
    let t: Vec<Option<&str>> = (0..n)
        .map(|i| match i % 7 {
            0 => None,
            1 => Some("A"),
            2 => Some("a"),
            3 => s[(i * 3) % n],
            4 => Some("abc"),
            5 => Some("B"),
            _ => s[(i + 5) % n],
        })
        .collect();
    let ints: Vec<Option<i64>> = (0..n)
        .map(|i| match i % 9 {
            0 => None,
            1 => Some(0),
            2 => Some(-3),
            _ => Some((i as i64 * 7) % 25),
        })
        .collect();
    let decs: Vec<Option<i128>> = (0..n)
        .map(|i| match i % 8 {
            0 => None,
            1 => Some(0),
            2 => Some(-150),
            3 => Some(225),
            4 => Some(9_999),
            _ => Some((i as i128 * 1_234) % 100_000 - 20_000),
        })
        .collect();
    let floats: Vec<Option<f64>> = (0..n)
        .map(|i| match i % 7 {
            0 => None,
            1 => Some(0.0),
            2 => Some(-0.5),
            3 => Some(2.5),
            4 => Some(1e10),
            _ => Some(i as f64 * 1.25 - 7.0),
        })
        .collect();
    let dates: Vec<Option<i32>> = (0..n)
        .map(|i| match i % 6 {
            0 => None,
            _ => Some(9_000 + (i as i32 * 97) % 2_000),
        })
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("s", DataType::Utf8, true),
        Field::new("t", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
        Field::new("d", DataType::Decimal128(10, 2), true),
        Field::new("f", DataType::Float64, true),
        Field::new("dt", DataType::Date32, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(1..=n as i64)),
        Arc::new(StringArray::from(s)),
        Arc::new(StringArray::from(t)),
        Arc::new(Int64Array::from(ints)),
        Arc::new(
            Decimal128Array::from(decs)
                .with_precision_and_scale(10, 2)
                .expect("decimal"),
        ),
        Arc::new(Float64Array::from(floats)),
        Arc::new(Date32Array::from(dates)),
    ];
    RecordBatch::try_new(schema, cols).expect("edge batch")
}

fn sql_type(t: &DataType, kind: Kind) -> String {
    match (t, kind) {
        (DataType::Int64, _) => "BIGINT".into(),
        (DataType::Int32, _) => "INTEGER".into(),
        (DataType::Decimal128(p, s), Kind::Postgres) => format!("NUMERIC({p},{s})"),
        (DataType::Decimal128(p, s), Kind::Mariadb) => format!("DECIMAL({p},{s})"),
        (DataType::Float64, Kind::Postgres) => "DOUBLE PRECISION".into(),
        (DataType::Float64, Kind::Mariadb) => "DOUBLE".into(),
        (DataType::Date32, _) => "DATE".into(),
        (_, Kind::Postgres) => "TEXT".into(),
        (_, Kind::Mariadb) => "VARCHAR(255)".into(),
    }
}

/// `CREATE TABLE` and `INSERT`s for one table of a server; `collation` is added to the
/// string columns of `edge`.
fn statements(
    qualified: &str,
    table: &str,
    batches: &[RecordBatch],
    kind: Kind,
    collation: Option<&str>,
) -> Vec<String> {
    let schema = batches[0].schema();
    let key = unique_key(table).join(", ");
    let cols: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut c = format!("{} {}", f.name(), sql_type(f.data_type(), kind));
            if let (Some(coll), DataType::Utf8) = (collation, f.data_type()) {
                c.push_str(&format!(" COLLATE {coll}"));
            }
            if !f.is_nullable() {
                c.push_str(" NOT NULL");
            }
            c
        })
        .collect();
    let mut out = vec![format!(
        "CREATE TABLE {qualified} ({}, PRIMARY KEY ({key}))",
        cols.join(", ")
    )];
    for b in batches {
        let mut start = 0;
        while start < b.num_rows() {
            let end = (start + 500).min(b.num_rows());
            let rows: Vec<String> = (start..end)
                .map(|r| {
                    let vals: Vec<String> = b
                        .columns()
                        .iter()
                        .map(|c| dbs::literal(c.as_ref(), r, kind))
                        .collect();
                    format!("({})", vals.join(", "))
                })
                .collect();
            out.push(format!(
                "INSERT INTO {qualified} VALUES {}",
                rows.join(", ")
            ));
            start = end;
        }
    }
    out
}

/// Loads the fuzz tables into schema `fuzz` of PostgreSQL, once per server (a marker table
/// records the scale).
pub async fn load_postgres(addr: &DbAddress, scale: f64) {
    let client = dbs::pg_client(addr).await;
    client
        .batch_execute("SELECT pg_advisory_lock(4343)")
        .await
        .expect("lock");
    let marker = format!("loaded_{}", (scale * 1_000_000.0) as u64);
    let loaded = client
        .query_opt(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = 'fuzz' AND table_name = $1",
            &[&marker],
        )
        .await
        .expect("check")
        .is_some();
    if !loaded {
        let icu = client
            .query_opt(
                "SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu'",
                &[],
            )
            .await
            .expect("collations")
            .is_some();
        client
            .batch_execute("DROP SCHEMA IF EXISTS fuzz CASCADE; CREATE SCHEMA fuzz")
            .await
            .expect("schema");
        for t in TABLES {
            let collation = (*t == "edge" && icu).then_some("\"und-x-icu\"");
            for stmt in statements(
                &format!("fuzz.{t}"),
                t,
                &table(t, scale),
                Kind::Postgres,
                collation,
            ) {
                client.batch_execute(&stmt).await.expect("load");
            }
            client
                .batch_execute(&format!("ANALYZE fuzz.{t}"))
                .await
                .expect("analyze");
        }
        client
            .batch_execute(&format!("CREATE TABLE fuzz.{marker} (x int)"))
            .await
            .expect("marker");
    }
    client
        .batch_execute("SELECT pg_advisory_unlock(4343)")
        .await
        .expect("unlock");
}

/// Loads the fuzz tables into database `fuzz` of MariaDB (default collation
/// `utf8mb4_general_ci`: case-insensitive, trailing spaces ignored), once per server.
pub async fn load_mariadb(addr: &DbAddress, scale: f64) {
    let mut conn = dbs::mysql_conn(addr).await;
    let _: Option<i64> = conn
        .query_first("SELECT GET_LOCK('meshgate_fuzz', 600)")
        .await
        .expect("lock");
    let marker = format!("loaded_{}", (scale * 1_000_000.0) as u64);
    let loaded: Option<i64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'fuzz' AND table_name = ?",
            (marker.clone(),),
        )
        .await
        .expect("check");
    if loaded.unwrap_or(0) == 0 {
        conn.query_drop("DROP DATABASE IF EXISTS fuzz")
            .await
            .expect("drop");
        conn.query_drop("CREATE DATABASE fuzz CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
            .await
            .expect("create");
        for t in TABLES {
            for stmt in statements(
                &format!("fuzz.{t}"),
                t,
                &table(t, scale),
                Kind::Mariadb,
                None,
            ) {
                conn.query_drop(stmt).await.expect("load");
            }
        }
        conn.query_drop(format!("CREATE TABLE fuzz.{marker} (x int)"))
            .await
            .expect("marker");
    }
    let _: Option<i64> = conn
        .query_first("SELECT RELEASE_LOCK('meshgate_fuzz')")
        .await
        .expect("unlock");
    let _ = conn.disconnect().await;
}

/// Writes the fuzz tables into a SQLite file (decimals as REAL, dates as ISO text, the
/// `edge` strings `COLLATE NOCASE`).
pub fn write_sqlite(path: &Path, scale: f64) {
    let conn = rusqlite::Connection::open(path).expect("sqlite");
    for t in TABLES {
        let batches = table(t, scale);
        let schema = batches[0].schema();
        let cols: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| {
                let ty = match f.data_type() {
                    DataType::Int64 | DataType::Int32 => "INTEGER",
                    DataType::Decimal128(..) | DataType::Float64 => "REAL",
                    _ => "TEXT",
                };
                let coll = if *t == "edge" && *f.data_type() == DataType::Utf8 {
                    " COLLATE NOCASE"
                } else {
                    ""
                };
                format!("{} {ty}{coll}", f.name())
            })
            .collect();
        conn.execute_batch(&format!(
            "CREATE TABLE {t} ({}, PRIMARY KEY ({}))",
            cols.join(", "),
            unique_key(t).join(", ")
        ))
        .expect("create");
        conn.execute_batch("BEGIN").expect("begin");
        {
            let marks = vec!["?"; schema.fields().len()].join(", ");
            let mut stmt = conn
                .prepare(&format!("INSERT INTO {t} VALUES ({marks})"))
                .expect("prepare");
            for b in &batches {
                let text: Vec<ArrayRef> = b
                    .columns()
                    .iter()
                    .map(|c| match c.data_type() {
                        DataType::Decimal128(..) | DataType::Float64 => {
                            cast(c, &DataType::Float64).expect("cast")
                        }
                        DataType::Int32 | DataType::Int64 => {
                            cast(c, &DataType::Int64).expect("cast")
                        }
                        _ => cast(c, &DataType::Utf8).expect("cast"),
                    })
                    .collect();
                for r in 0..b.num_rows() {
                    let vals: Vec<rusqlite::types::Value> =
                        text.iter().map(|c| sqlite_value(c.as_ref(), r)).collect();
                    stmt.execute(rusqlite::params_from_iter(vals))
                        .expect("insert");
                }
            }
        }
        conn.execute_batch("COMMIT").expect("commit");
    }
}

fn sqlite_value(a: &dyn datafusion::arrow::array::Array, r: usize) -> rusqlite::types::Value {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Float64Type, Int64Type};
    use rusqlite::types::Value;
    if a.is_null(r) {
        return Value::Null;
    }
    match a.data_type() {
        DataType::Int64 => Value::Integer(a.as_primitive::<Int64Type>().value(r)),
        DataType::Float64 => Value::Real(a.as_primitive::<Float64Type>().value(r)),
        _ => Value::Text(a.as_string::<i32>().value(r).to_string()),
    }
}

/// Writes every table as `dir/<table>.parquet`.
pub fn write_parquet(dir: &Path, scale: f64) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for t in TABLES {
        let batches = table(t, scale);
        let file = std::fs::File::create(dir.join(format!("{t}.parquet"))).expect("create");
        let mut w =
            datafusion::parquet::arrow::ArrowWriter::try_new(file, batches[0].schema(), None)
                .expect("writer");
        for b in &batches {
            w.write(b).expect("write");
        }
        w.close().expect("close");
    }
}

fn product(domain: &str, source: &str, binding: impl Fn(&str) -> String) -> String {
    let ports: String = TABLES
        .iter()
        .map(|t| format!("  - {{ name: {t}, source: {source}, {} }}\n", binding(t)))
        .collect();
    format!(
        "apiVersion: meshgate/v1\nkind: DataProduct\ndomain: {domain}\nname: tpch\nowner: {{ team: {domain} }}\nports:\n{ports}"
    )
}

/// The remote gateway's mesh: the Parquet files as `lake.tpch.<t>`.
pub fn remote_mesh(dir: &Path, lake: &Path) {
    crate::write_file(
        dir,
        "mesh.yaml",
        &format!(
            "apiVersion: meshgate/v1\nkind: Mesh\nname: fuzz-remote\n{auth}sources:\n  - name: lake_src\n    kind: files\n    options: {{ url: \"file://{lake}/\" }}\n",
            auth = crate::admin_auth_yaml(),
            lake = lake.display()
        ),
    );
    crate::write_file(
        dir,
        "domains/lake/tpch.yaml",
        &product("lake", "lake_src", |t| {
            format!("location: {t}.parquet, format: parquet")
        }),
    );
}

/// The fuzzed gateway's mesh over every source kind; with `pushdown: false`, every SQL
/// source is declared `pushdown: off` (the arbiter when DataFusion itself fails).
pub fn hub_mesh(
    dir: &Path,
    pg: &DbAddress,
    my: &DbAddress,
    sqlite: &Path,
    lake: &Path,
    remote: std::net::SocketAddr,
    pushdown: bool,
) {
    let pushdown = if pushdown { "on" } else { "off" };
    std::fs::create_dir_all(dir.join("secrets")).expect("mkdir");
    std::fs::write(dir.join("secrets/pg"), &pg.password).expect("secret");
    std::fs::write(dir.join("secrets/my"), &my.password).expect("secret");
    std::fs::write(dir.join("secrets/remote"), "platform-pw").expect("secret");
    crate::write_file(
        dir,
        "mesh.yaml",
        &format!(
            "apiVersion: meshgate/v1
kind: Mesh
name: fuzz
{auth}sources:
  - name: pg_src
    kind: postgres
    pushdown: {pushdown}
    options: {{ host: \"{ph}\", port: {pp}, database: \"{pd}\", user: \"{pu}\", password: {{ file: secrets/pg }}, sslmode: disable }}
  - name: my_src
    kind: mysql
    pushdown: {pushdown}
    options: {{ host: \"{mh}\", port: {mp}, database: fuzz, user: \"{mu}\", password: {{ file: secrets/my }} }}
  - name: lite_src
    kind: sqlite
    pushdown: {pushdown}
    options: {{ path: \"{lite}\" }}
  - name: lake_src
    kind: files
    options: {{ url: \"file://{lake}/\" }}
  - name: remote_src
    kind: flightsql
    pushdown: {pushdown}
    options: {{ url: \"grpc://{remote}\", username: platform, password: {{ file: secrets/remote }}, dialect: datafusion }}
",
            auth = crate::admin_auth_yaml(),
            ph = pg.host,
            pp = pg.port,
            pd = pg.database,
            pu = pg.user,
            mh = my.host,
            mp = my.port,
            mu = my.user,
            lite = sqlite.display(),
            lake = lake.display(),
        ),
    );
    type Binding = Box<dyn Fn(&str) -> String>;
    let products: [(&str, &str, Binding); 5] = [
        ("pg", "pg_src", Box::new(|t| format!("table: fuzz.{t}"))),
        ("my", "my_src", Box::new(|t| format!("table: {t}"))),
        ("lite", "lite_src", Box::new(|t| format!("table: {t}"))),
        (
            "lake",
            "lake_src",
            Box::new(|t| format!("location: {t}.parquet, format: parquet")),
        ),
        (
            "remote",
            "remote_src",
            Box::new(|t| format!("table: lake.tpch.{t}")),
        ),
    ];
    for (domain, source, binding) in products {
        crate::write_file(
            dir,
            &format!("domains/{domain}/tpch.yaml"),
            &product(domain, source, binding),
        );
    }
}

/// The reference: the same data in DataFusion, each port's table cast to the schema the
/// gateway serves it with (`schemas[port]`).
pub fn reference(
    scale: f64,
    schemas: &std::collections::BTreeMap<String, SchemaRef>,
) -> datafusion::prelude::SessionContext {
    use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
    let mut config = datafusion::prelude::SessionConfig::new().with_target_partitions(2);
    // As in the gateway (see meshgate::query::session_config).
    config
        .options_mut()
        .execution
        .skip_physical_aggregate_schema_check = true;
    // DataFusion's physical rules with the gateway's guard against filters pushed through
    // projections with duplicate names (meshgate::query::filter_barrier): without it the reference
    // itself answers wrongly.
    let state = datafusion::execution::session_state::SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_physical_optimizer_rules(meshgate::query::filter_barrier::with_shields(
            datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules,
        ))
        .build();
    let ctx = datafusion::prelude::SessionContext::new_with_state(state);
    let data: std::collections::BTreeMap<&str, Vec<RecordBatch>> =
        TABLES.iter().map(|t| (*t, table(t, scale))).collect();
    for (domain, _) in DOMAINS {
        let cat = Arc::new(MemoryCatalogProvider::new());
        let schema = Arc::new(MemorySchemaProvider::new());
        cat.register_schema("tpch", Arc::clone(&schema) as _)
            .expect("schema");
        ctx.register_catalog(*domain, cat as Arc<dyn CatalogProvider>);
        for t in TABLES {
            let port = format!("{domain}.tpch.{t}");
            let served = schemas
                .get(&port)
                .unwrap_or_else(|| panic!("no schema for {port}"));
            let nullable = Arc::new(Schema::new(
                served
                    .fields()
                    .iter()
                    .map(|f| Field::new(f.name(), f.data_type().clone(), true))
                    .collect::<Vec<_>>(),
            ));
            let batches: Vec<RecordBatch> = data[t]
                .iter()
                .map(|b| {
                    let cols = nullable
                        .fields()
                        .iter()
                        .map(|f| {
                            let c = b.column_by_name(f.name()).expect("column");
                            cast(c, f.data_type()).expect("cast to the served type")
                        })
                        .collect();
                    RecordBatch::try_new(Arc::clone(&nullable), cols).expect("batch")
                })
                .collect();
            let mem =
                datafusion::datasource::MemTable::try_new(Arc::clone(&nullable), vec![batches])
                    .expect("memtable");
            use datafusion::catalog::SchemaProvider;
            schema
                .register_table((*t).to_string(), Arc::new(mem))
                .expect("register");
        }
    }
    ctx
}
