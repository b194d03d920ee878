//! `meshgate demo`: writes the demo mesh (from `config/examples/demo`) and generates its
//! TPC-H data: `sales` as Parquet, `customers` in SQLite, `supply` as CSV.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Int32Type, Int64Type, Schema,
};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use indicatif::{ProgressBar, ProgressStyle};
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

use crate::error::GatewayError;

/// The demo mesh files, as checked in under `config/examples/demo`.
pub const DEMO_FILES: &[(&str, &str)] = &[
    (
        "mesh.yaml",
        include_str!("../../config/examples/demo/mesh.yaml"),
    ),
    (
        "domains/sales/orders.yaml",
        include_str!("../../config/examples/demo/domains/sales/orders.yaml"),
    ),
    (
        "domains/customers/crm.yaml",
        include_str!("../../config/examples/demo/domains/customers/crm.yaml"),
    ),
    (
        "domains/supply/catalog.yaml",
        include_str!("../../config/examples/demo/domains/supply/catalog.yaml"),
    ),
    (
        "secrets/mask.key",
        include_str!("../../config/examples/demo/secrets/mask.key"),
    ),
];

/// The demo's principals: (name, password, what it shows). Their hashes are in the demo's
/// mesh.yaml.
pub const DEMO_USERS: &[(&str, &str, &str)] = &[
    (
        "platform",
        "platform-pw",
        "admin: reads everything in clear, may EXPLAIN",
    ),
    (
        "analyst",
        "analyst-pw",
        "PII (names, addresses, phones) hashed, balances redacted",
    ),
    (
        "pii_reader",
        "pii-reader-pw",
        "PII in clear, balances redacted",
    ),
    (
        "emea_analyst",
        "emea-pw",
        "like analyst, and only European customers",
    ),
];

/// The demo's static bearer token (principal `nightly-etl`: sales and supply, no customers).
pub const DEMO_TOKEN: &str = "mgt_D3HvsyVqY7BbdVSDHQnbFYVjZBnsAB56Ji-JSKtUF2Q";

const MARKER: &str = ".meshgate-demo-complete";
const BATCH: usize = 8192;

fn io(what: &str, e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Unavailable(format!("{what}: {e}"))
}

/// Makes sure `dir` holds the demo mesh and data at `scale`; generates them (with a
/// progress bar on stderr) when missing or generated at another scale.
pub fn ensure_demo(dir: &Path, scale: f64, show_progress: bool) -> Result<(), GatewayError> {
    let marker = dir.join(MARKER);
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(&scale.to_string()) {
        for (name, text) in DEMO_FILES {
            write_file(&dir.join(name), text)?;
        }
        return Ok(());
    }
    if !(scale > 0.0 && scale <= 100.0) {
        return Err(GatewayError::BadRequest(format!(
            "--scale must be in (0, 100], got {scale}"
        )));
    }
    let data = dir.join("data");
    if data.exists() {
        std::fs::remove_dir_all(&data).map_err(|e| io("cannot clear old demo data", e))?;
    }
    for sub in ["sales", "customers", "supply"] {
        std::fs::create_dir_all(data.join(sub))
            .map_err(|e| io("cannot create the demo directory", e))?;
    }
    for (name, text) in DEMO_FILES {
        write_file(&dir.join(name), text)?;
    }
    let total = (8_661_245.0 * scale) as u64 + 30;
    let bar = if show_progress {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:>28} [{bar:40}] {human_pos}/{human_len} rows ({eta})")
            .map_err(GatewayError::internal)?
            .progress_chars("=> "),
    );
    let sales = data.join("sales");
    bar.set_message("sales.orders.orders");
    write_parquet(
        &sales.join("orders.parquet"),
        OrderArrow::new(OrderGenerator::new(scale, 1, 1)).with_batch_size(BATCH),
        &bar,
    )?;
    bar.set_message("sales.orders.lineitem");
    write_parquet(
        &sales.join("lineitem.parquet"),
        LineItemArrow::new(LineItemGenerator::new(scale, 1, 1)).with_batch_size(BATCH),
        &bar,
    )?;
    let supply = data.join("supply");
    bar.set_message("supply.catalog.part");
    write_csv(
        &supply.join("part.csv"),
        PartArrow::new(PartGenerator::new(scale, 1, 1)).with_batch_size(BATCH),
        &bar,
    )?;
    bar.set_message("supply.catalog.supplier");
    write_csv(
        &supply.join("supplier.csv"),
        SupplierArrow::new(SupplierGenerator::new(scale, 1, 1)).with_batch_size(BATCH),
        &bar,
    )?;
    bar.set_message("supply.catalog.partsupp");
    write_csv(
        &supply.join("partsupp.csv"),
        PartSuppArrow::new(PartSuppGenerator::new(scale, 1, 1)).with_batch_size(BATCH),
        &bar,
    )?;
    bar.set_message("customers.crm");
    let db = rusqlite::Connection::open(data.join("customers/crm.sqlite"))
        .map_err(|e| io("cannot create crm.sqlite", e))?;
    write_sqlite(
        &db,
        "customer",
        CustomerArrow::new(CustomerGenerator::new(scale, 1, 1)).with_batch_size(BATCH),
        &bar,
    )?;
    write_sqlite(
        &db,
        "nation",
        NationArrow::new(NationGenerator::new(scale, 1, 1)),
        &bar,
    )?;
    write_sqlite(
        &db,
        "region",
        RegionArrow::new(RegionGenerator::new(scale, 1, 1)),
        &bar,
    )?;
    bar.finish_with_message("demo data ready");
    std::fs::write(&marker, scale.to_string())
        .map_err(|e| io("cannot write the demo marker", e))?;
    Ok(())
}

fn write_file(path: &Path, text: &str) -> Result<(), GatewayError> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(|e| io("cannot create the demo directory", e))?;
    }
    std::fs::write(path, text).map_err(|e| io(&format!("cannot write {}", path.display()), e))
}

/// Utf8View columns as Utf8, for writers and databases that want plain strings.
fn plain_strings(b: &RecordBatch) -> Result<RecordBatch, GatewayError> {
    let fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View => Field::new(f.name(), DataType::Utf8, f.is_nullable()),
            _ => f.as_ref().clone(),
        })
        .collect();
    let cols: Vec<ArrayRef> = b
        .columns()
        .iter()
        .zip(&fields)
        .map(|(c, f)| cast(c, f.data_type()))
        .collect::<Result<_, _>>()?;
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

fn write_parquet(
    path: &Path,
    batches: impl Iterator<Item = Result<RecordBatch, datafusion::arrow::error::ArrowError>>,
    bar: &ProgressBar,
) -> Result<(), GatewayError> {
    let file = std::fs::File::create(path).map_err(|e| io("cannot create a Parquet file", e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer: Option<ArrowWriter<std::fs::File>> = None;
    let mut file = Some(file);
    for b in batches {
        let b = plain_strings(&b?)?;
        if writer.is_none() {
            let f = file
                .take()
                .ok_or_else(|| GatewayError::internal("parquet file reused"))?;
            writer = Some(
                ArrowWriter::try_new(f, b.schema(), Some(props.clone()))
                    .map_err(|e| io("parquet", e))?,
            );
        }
        if let Some(w) = writer.as_mut() {
            w.write(&b).map_err(|e| io("parquet", e))?;
        }
        bar.inc(b.num_rows() as u64);
    }
    if let Some(w) = writer {
        w.close().map_err(|e| io("parquet", e))?;
    }
    Ok(())
}

fn write_csv(
    path: &Path,
    batches: impl Iterator<Item = Result<RecordBatch, datafusion::arrow::error::ArrowError>>,
    bar: &ProgressBar,
) -> Result<(), GatewayError> {
    let file = std::fs::File::create(path).map_err(|e| io("cannot create a CSV file", e))?;
    let mut w = datafusion::arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(std::io::BufWriter::new(file));
    for b in batches {
        let b = plain_strings(&b?)?;
        w.write(&b)?;
        bar.inc(b.num_rows() as u64);
    }
    Ok(())
}

fn sqlite_type(t: &DataType) -> &'static str {
    match t {
        DataType::Int32 | DataType::Int64 => "INTEGER",
        DataType::Decimal128(_, _) => "DECIMAL(15,2)",
        DataType::Date32 => "DATE",
        _ => "TEXT",
    }
}

fn write_sqlite(
    db: &rusqlite::Connection,
    table: &str,
    batches: impl Iterator<Item = Result<RecordBatch, datafusion::arrow::error::ArrowError>>,
    bar: &ProgressBar,
) -> Result<(), GatewayError> {
    let sql_err = |e: rusqlite::Error| io("sqlite", e);
    let mut created = false;
    db.execute_batch("BEGIN").map_err(sql_err)?;
    for b in batches {
        let b = plain_strings(&b?)?;
        let schema = b.schema();
        if !created {
            let cols: Vec<String> = schema
                .fields()
                .iter()
                .map(|f| format!("{} {} NOT NULL", f.name(), sqlite_type(f.data_type())))
                .collect();
            db.execute_batch(&format!("CREATE TABLE {table} ({})", cols.join(", ")))
                .map_err(sql_err)?;
            created = true;
        }
        let marks = vec!["?"; schema.fields().len()].join(", ");
        let mut stmt = db
            .prepare_cached(&format!("INSERT INTO {table} VALUES ({marks})"))
            .map_err(sql_err)?;
        for row in 0..b.num_rows() {
            let values: Vec<rusqlite::types::Value> = b
                .columns()
                .iter()
                .map(|c| sqlite_value(c.as_ref(), row))
                .collect();
            stmt.execute(rusqlite::params_from_iter(values))
                .map_err(sql_err)?;
        }
        bar.inc(b.num_rows() as u64);
    }
    db.execute_batch("COMMIT").map_err(sql_err)?;
    Ok(())
}

fn sqlite_value(c: &dyn Array, row: usize) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    if c.is_null(row) {
        return Value::Null;
    }
    match c.data_type() {
        DataType::Int32 => Value::Integer(c.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => Value::Integer(c.as_primitive::<Int64Type>().value(row)),
        DataType::Decimal128(_, s) => {
            let v = c.as_primitive::<Decimal128Type>().value(row);
            Value::Real(v as f64 / 10f64.powi(*s as i32))
        }
        DataType::Date32 => {
            let days = c.as_primitive::<Date32Type>().value(row);
            let date = chrono_date(days);
            Value::Text(date)
        }
        _ => Value::Text(c.as_string::<i32>().value(row).to_string()),
    }
}

/// Days since 1970-01-01 as `YYYY-MM-DD` (civil-from-days, Howard Hinnant).
fn chrono_date(days: i32) -> String {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// How to connect, printed when the demo starts.
pub fn connect_help(addr: &std::net::SocketAddr) -> String {
    let host = addr.ip();
    let port = addr.port();
    let users: String = DEMO_USERS
        .iter()
        .map(|(u, p, what)| format!("  {u:<13} password {p:<14} {what}\n"))
        .collect();
    format!(
        r#"
meshgate demo is serving Flight SQL on {addr}

Domains: sales (Parquet), customers (SQLite), supply (CSV). Tables are domain.product.port:
  sales.orders.orders, sales.orders.lineitem,
  customers.crm.customer, customers.crm.nation, customers.crm.region,
  supply.catalog.part, supply.catalog.supplier, supply.catalog.partsupp

Demo users (Basic credentials; demo only):
{users}  token for nightly-etl (Bearer): {DEMO_TOKEN}
Every request is written to audit.log in the demo directory.

Python (ADBC):  pip install adbc-driver-flightsql pyarrow
  import adbc_driver_flightsql.dbapi as flightsql
  conn = flightsql.connect("grpc://{host}:{port}",
                           db_kwargs={{"username": "analyst", "password": "analyst-pw"}})
  cur = conn.cursor()
  cur.execute("SELECT n.n_name, count(*) AS orders FROM sales.orders.orders o "
              "JOIN customers.crm.customer c ON o.o_custkey = c.c_custkey "
              "JOIN customers.crm.nation n ON c.c_nationkey = n.n_nationkey GROUP BY n.n_name ORDER BY 2 DESC")
  print(cur.fetch_arrow_table())

JDBC (DBeaver, DataGrip, Tableau):
  jdbc:arrow-flight-sql://{host}:{port}?useEncryption=false&user=analyst&password=analyst-pw

flight_sql_client (cargo install arrow-flight --features cli,flight-sql --bin flight_sql_client):
  flight_sql_client --host {host} --port {port} --username analyst --password analyst-pw statement-query "SELECT count(*) FROM sales.orders.lineitem"

Press Ctrl-C to stop.
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(chrono_date(0), "1970-01-01");
        assert_eq!(chrono_date(8035), "1992-01-01");
        assert_eq!(chrono_date(-1), "1969-12-31");
        assert_eq!(chrono_date(10_957), "2000-01-01");
    }
}
