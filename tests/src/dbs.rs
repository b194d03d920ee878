//! Real PostgreSQL and MariaDB servers for the tests, loaded with TPC-H.
//!
//! Each is either given by an environment variable (`MESHGATE_TEST_PG_URL` =
//! `postgres://user:password@host:port/database`, `MESHGATE_TEST_MYSQL_URL` =
//! `mysql://user:password@host:port/database`) or started here from the Debian binaries in a
//! temporary directory on a free port, and stopped when the value is dropped. Servers given
//! by URL are loaded once: the first process takes a lock in the database and the others
//! wait for it. Both servers log every statement, so tests can check what was pushed.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use mysql_async::prelude::Queryable;

use crate::TEST_SCALE;

/// Where to reach a test database.
#[derive(Debug, Clone)]
pub struct DbAddress {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
    /// Database.
    pub database: String,
}

impl DbAddress {
    fn parse(url: &str) -> Self {
        let u = url::Url::parse(url).unwrap_or_else(|e| panic!("bad test database url: {e}"));
        Self {
            host: u.host_str().unwrap_or("127.0.0.1").to_string(),
            port: u.port().unwrap_or(0),
            user: u.username().to_string(),
            password: u.password().unwrap_or_default().to_string(),
            database: u.path().trim_start_matches('/').to_string(),
        }
    }
}

/// A running server (ours or one given by URL).
#[derive(Debug)]
pub struct TestDb {
    /// How to reach it.
    pub addr: DbAddress,
    /// The statement log, when we started the server.
    pub log: Option<PathBuf>,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// The statement log's text so far (empty when unknown: a server given by URL without
    /// `MESHGATE_TEST_PG_LOG` / `MESHGATE_TEST_MYSQL_LOG`).
    pub fn log_text(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Stops the server (only one started here); the address stays known.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and data directory after [`Self::stop`].
    pub fn restart(&mut self, kind: Kind) {
        let dir = self
            ._dir
            .as_ref()
            .expect("a server started here")
            .path()
            .to_path_buf();
        self.child = Some(match kind {
            Kind::Postgres => spawn_postgres(&dir, self.addr.port),
            Kind::Mariadb => spawn_mariadb(&dir, self.addr.port),
        });
        wait_for_port(self.addr.port);
        if kind == Kind::Postgres {
            wait_for_postgres(self.addr.port);
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// PostgreSQL.
    Postgres,
    /// MariaDB (or MySQL when given by URL).
    Mariadb,
}

/// The password of the `meshgate` user in servers started here.
pub const TEST_PASSWORD: &str = "mesh-Test-pw1";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the test database did not listen on port {port} within 60 s");
}

/// PostgreSQL listens before it accepts sessions ("the database system is starting up"):
/// wait until `pg_isready` says it does.
fn wait_for_postgres(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let ready = Command::new(pg_bin("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the test PostgreSQL did not accept sessions on port {port} within 60 s");
}

/// PostgreSQL refuses to run as root: run its programs as the `postgres` user then.
fn as_db_user(cmd: &mut Command, user: &str) {
    use std::os::unix::process::CommandExt;
    if !is_root() {
        return;
    }
    let out = Command::new("id").args(["-u", user]).output().expect("id");
    let uid: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("uid");
    let out = Command::new("id").args(["-g", user]).output().expect("id");
    let gid: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("gid");
    cmd.uid(uid).gid(gid);
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn chown_to(path: &Path, user: &str) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", &format!("{user}:{user}"), &path.display().to_string()])
            .status()
            .expect("chown");
        assert!(status.success(), "chown {}", path.display());
    }
}

fn pg_bin(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.into_iter()
        .rev()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn spawn_postgres(dir: &Path, port: u16) -> Child {
    let log = std::fs::File::create(dir.join("statements.log")).expect("log");
    chown_to(&dir.join("statements.log"), "postgres");
    let mut cmd = Command::new(pg_bin("postgres"));
    cmd.arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "log_statement=all",
            "-c",
            "logging_collector=off",
            "-c",
            "fsync=off",
        ])
        .stdout(Stdio::null())
        .stderr(log);
    as_db_user(&mut cmd, "postgres");
    cmd.spawn().expect("start postgres")
}

fn spawn_mariadb(dir: &Path, port: u16) -> Child {
    let mut cmd = Command::new("mariadbd");
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", dir.join("data").display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
        .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
        .arg("--general-log=1")
        .arg(format!(
            "--general-log-file={}",
            dir.join("statements.log").display()
        ))
        .arg(format!("--init-file={}", dir.join("init.sql").display()))
        .arg("--skip-log-bin")
        .arg("--innodb-buffer-pool-size=64M")
        .arg("--innodb-flush-log-at-trx-commit=0")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if is_root() {
        cmd.arg("--user=root");
    }
    cmd.spawn()
        .expect("start mariadbd (install the mariadb-server package)")
}

/// A server given by the environment: its URL, and its statement log if known.
fn given(url_var: &str, log_var: &str) -> Option<TestDb> {
    let url = std::env::var(url_var).ok()?;
    Some(TestDb {
        addr: DbAddress::parse(&url),
        log: std::env::var_os(log_var).map(PathBuf::from),
        child: None,
        _dir: None,
    })
}

/// A PostgreSQL server: `MESHGATE_TEST_PG_URL`, or one started here.
pub fn postgres() -> TestDb {
    given("MESHGATE_TEST_PG_URL", "MESHGATE_TEST_PG_LOG").unwrap_or_else(postgres_own)
}

/// A PostgreSQL server started here, whatever the environment says.
pub fn postgres_own() -> TestDb {
    postgres_on(None)
}

/// A PostgreSQL server started here on `port` (a free one when `None`).
pub fn postgres_on(port: Option<u16>) -> TestDb {
    let dir = tempfile::tempdir().expect("tmp");
    let port = port.unwrap_or_else(free_port);
    std::fs::write(dir.path().join("pw"), TEST_PASSWORD).expect("pw");
    chown_to(dir.path(), "postgres");
    let mut initdb = Command::new(pg_bin("initdb"));
    initdb
        .arg("-D")
        .arg(dir.path().join("data"))
        .args([
            "-U",
            "meshgate",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--locale=C",
            "--encoding=UTF8",
        ])
        .arg(format!("--pwfile={}", dir.path().join("pw").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    as_db_user(&mut initdb, "postgres");
    let out = initdb.output().expect("run initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let child = spawn_postgres(dir.path(), port);
    wait_for_port(port);
    wait_for_postgres(port);
    TestDb {
        addr: DbAddress {
            host: "127.0.0.1".into(),
            port,
            user: "meshgate".into(),
            password: TEST_PASSWORD.into(),
            database: "postgres".into(),
        },
        log: Some(dir.path().join("statements.log")),
        child: Some(child),
        _dir: Some(dir),
    }
}

/// A MariaDB server: `MESHGATE_TEST_MYSQL_URL`, or one started here.
pub fn mariadb() -> TestDb {
    given("MESHGATE_TEST_MYSQL_URL", "MESHGATE_TEST_MYSQL_LOG").unwrap_or_else(mariadb_own)
}

/// A MariaDB server started here, whatever the environment says.
pub fn mariadb_own() -> TestDb {
    mariadb_on(None)
}

/// A MariaDB server started here on `port` (a free one when `None`).
pub fn mariadb_on(port: Option<u16>) -> TestDb {
    let dir = tempfile::tempdir().expect("tmp");
    let port = port.unwrap_or_else(free_port);
    let mut install = Command::new("mariadb-install-db");
    install
        .arg("--no-defaults")
        .arg(format!("--datadir={}", dir.path().join("data").display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if is_root() {
        install.arg("--user=root");
    }
    let out = install
        .output()
        .expect("run mariadb-install-db (install the mariadb-server package)");
    assert!(
        out.status.success(),
        "mariadb-install-db failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        dir.path().join("init.sql"),
        format!(
            "CREATE DATABASE IF NOT EXISTS tpch CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;\n\
             CREATE USER IF NOT EXISTS 'meshgate'@'%' IDENTIFIED BY '{TEST_PASSWORD}';\n\
             GRANT ALL ON *.* TO 'meshgate'@'%';\n\
             CREATE USER IF NOT EXISTS 'meshgate'@'localhost' IDENTIFIED BY '{TEST_PASSWORD}';\n\
             GRANT ALL ON *.* TO 'meshgate'@'localhost';\n"
        ),
    )
    .expect("init.sql");
    let child = spawn_mariadb(dir.path(), port);
    wait_for_port(port);
    TestDb {
        addr: DbAddress {
            host: "127.0.0.1".into(),
            port,
            user: "meshgate".into(),
            password: TEST_PASSWORD.into(),
            database: "tpch".into(),
        },
        log: Some(dir.path().join("statements.log")),
        child: Some(child),
        _dir: Some(dir),
    }
}

/// TPC-H tables at the test scale, as generated.
pub fn tpch_table(name: &str) -> Vec<RecordBatch> {
    tpch_table_at(name, TEST_SCALE)
}

/// A TPC-H table at scale factor `s`, as generated.
pub fn tpch_table_at(name: &str, s: f64) -> Vec<RecordBatch> {
    use tpchgen::generators::*;
    use tpchgen_arrow::*;
    fn all<I: Iterator<Item = Result<RecordBatch, datafusion::arrow::error::ArrowError>>>(
        it: I,
    ) -> Vec<RecordBatch> {
        it.collect::<Result<_, _>>().expect("generate")
    }
    match name {
        "customer" => all(CustomerArrow::new(CustomerGenerator::new(s, 1, 1))),
        "nation" => all(NationArrow::new(NationGenerator::new(s, 1, 1))),
        "region" => all(RegionArrow::new(RegionGenerator::new(s, 1, 1))),
        "part" => all(PartArrow::new(PartGenerator::new(s, 1, 1))),
        "supplier" => all(SupplierArrow::new(SupplierGenerator::new(s, 1, 1))),
        "partsupp" => all(PartSuppArrow::new(PartSuppGenerator::new(s, 1, 1))),
        "orders" => all(OrderArrow::new(OrderGenerator::new(s, 1, 1))),
        "lineitem" => all(LineItemArrow::new(LineItemGenerator::new(s, 1, 1))),
        other => panic!("no TPC-H table {other}"),
    }
}

fn sql_type(t: &DataType, kind: Kind) -> String {
    match (t, kind) {
        (DataType::Int64, _) => "BIGINT".into(),
        (DataType::Int32, _) => "INTEGER".into(),
        (DataType::Decimal128(p, s), Kind::Postgres) => format!("NUMERIC({p},{s})"),
        (DataType::Decimal128(p, s), Kind::Mariadb) => format!("DECIMAL({p},{s})"),
        (DataType::Date32, _) => "DATE".into(),
        (_, Kind::Postgres) => "TEXT".into(),
        (_, Kind::Mariadb) => "VARCHAR(255)".into(),
    }
}

/// The SQL literal of `a[row]` for `kind`.
pub fn literal(a: &dyn Array, row: usize, kind: Kind) -> String {
    if a.is_null(row) {
        return "NULL".into();
    }
    let f = ArrayFormatter::try_new(a, &FormatOptions::default()).expect("formatter");
    let text = f.value(row).to_string();
    match a.data_type() {
        DataType::Int64 | DataType::Int32 | DataType::Decimal128(..) | DataType::Float64 => text,
        DataType::Date32 => format!("DATE '{text}'"),
        _ => {
            let mut s = text.replace('\'', "''");
            if kind == Kind::Mariadb {
                s = s.replace('\\', "\\\\");
            }
            format!("'{s}'")
        }
    }
}

/// `CREATE TABLE` and multi-row `INSERT`s for `table`.
pub fn load_statements(table: &str, batches: &[RecordBatch], kind: Kind) -> Vec<String> {
    let schema = batches[0].schema();
    let cols: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{} {} NOT NULL", f.name(), sql_type(f.data_type(), kind)))
        .collect();
    let key = match table {
        "customer" => "c_custkey",
        "nation" => "n_nationkey",
        "region" => "r_regionkey",
        "part" => "p_partkey",
        "supplier" => "s_suppkey",
        "partsupp" => "ps_partkey, ps_suppkey",
        "orders" => "o_orderkey",
        _ => "",
    };
    let pk = if key.is_empty() {
        String::new()
    } else {
        format!(", PRIMARY KEY ({key})")
    };
    let mut out = vec![format!("CREATE TABLE {table} ({}{pk})", cols.join(", "))];
    for b in batches {
        let mut start = 0;
        while start < b.num_rows() {
            let end = (start + 500).min(b.num_rows());
            let rows: Vec<String> = (start..end)
                .map(|r| {
                    let vals: Vec<String> = b
                        .columns()
                        .iter()
                        .map(|c| literal(c.as_ref(), r, kind))
                        .collect();
                    format!("({})", vals.join(", "))
                })
                .collect();
            out.push(format!("INSERT INTO {table} VALUES {}", rows.join(", ")));
            start = end;
        }
    }
    out
}

/// Tables loaded into PostgreSQL (the customers domain).
pub const PG_TABLES: &[&str] = &["customer", "nation", "region"];
/// Tables loaded into MariaDB (the supply domain).
pub const MYSQL_TABLES: &[&str] = &["part", "supplier", "partsupp"];

/// Loads the customers tables into PostgreSQL, once per database.
pub async fn load_postgres(addr: &DbAddress) {
    let client = pg_client(addr).await;
    client
        .batch_execute("SELECT pg_advisory_lock(4242)")
        .await
        .expect("lock");
    let loaded = client
        .query_opt(
            "SELECT 1 FROM information_schema.tables WHERE table_name = 'meshgate_loaded'",
            &[],
        )
        .await
        .expect("check")
        .is_some();
    if !loaded {
        for t in PG_TABLES {
            for stmt in load_statements(t, &tpch_table(t), Kind::Postgres) {
                client.batch_execute(&stmt).await.expect("load");
            }
            client
                .batch_execute(&format!("ANALYZE {t}"))
                .await
                .expect("analyze");
        }
        client
            .batch_execute("CREATE TABLE meshgate_loaded (x int)")
            .await
            .expect("marker");
    }
    client
        .batch_execute("SELECT pg_advisory_unlock(4242)")
        .await
        .expect("unlock");
}

/// A PostgreSQL client for test set-up and checks.
pub async fn pg_client(addr: &DbAddress) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::Config::new()
        .host(&addr.host)
        .port(addr.port)
        .user(&addr.user)
        .password(&addr.password)
        .dbname(&addr.database)
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL");
    tokio::spawn(conn);
    client
}

/// A MariaDB connection for test set-up and checks.
pub async fn mysql_conn(addr: &DbAddress) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(addr.host.clone())
        .tcp_port(addr.port)
        .user(Some(addr.user.clone()))
        .pass(Some(addr.password.clone()))
        .db_name(Some(addr.database.clone()))
        .prefer_socket(false);
    mysql_async::Conn::new(opts)
        .await
        .expect("connect to the test MariaDB")
}

/// Loads the supply tables into MariaDB, once per database.
pub async fn load_mariadb(addr: &DbAddress) {
    let mut conn = mysql_conn(addr).await;
    let _: Option<i64> = conn
        .query_first("SELECT GET_LOCK('meshgate_load', 600)")
        .await
        .expect("lock");
    let loaded: Option<i64> = conn
        .query_first(
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = 'meshgate_loaded'",
        )
        .await
        .expect("check");
    if loaded.unwrap_or(0) == 0 {
        for t in MYSQL_TABLES {
            for stmt in load_statements(t, &tpch_table(t), Kind::Mariadb) {
                conn.query_drop(stmt).await.expect("load");
            }
        }
        conn.query_drop("CREATE TABLE meshgate_loaded (x int)")
            .await
            .expect("marker");
    }
    let _: Option<i64> = conn
        .query_first("SELECT RELEASE_LOCK('meshgate_load')")
        .await
        .expect("unlock");
    let _ = conn.disconnect().await;
}

/// A mesh that splits TPC-H across the sales lake (Parquet of the demo), PostgreSQL
/// (customers) and MariaDB (supply), with federation on or off for both databases.
pub fn sql_mesh_dir(pg: &DbAddress, my: &DbAddress, federation: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let demo = crate::demo_dir();
    std::fs::create_dir_all(d.join("secrets")).expect("mkdir");
    std::fs::write(d.join("secrets/pg"), format!("{}\n", pg.password)).expect("secret");
    std::fs::write(d.join("secrets/my"), format!("{}\n", my.password)).expect("secret");
    crate::write_file(
        d,
        "mesh.yaml",
        &format!(
            "apiVersion: meshgate/v1
kind: Mesh
name: tpch-sql
{auth}sources:
  - name: sales_lake
    kind: files
    options: {{ url: \"file://{lake}/\" }}
  - name: crm_pg
    kind: postgres
    federation: {federation}
    options: {{ host: \"{ph}\", port: {pp}, database: \"{pd}\", user: \"{pu}\", password: {{ file: secrets/pg }}, sslmode: disable }}
  - name: supply_db
    kind: mysql
    federation: {federation}
    options: {{ host: \"{mh}\", port: {mp}, database: \"{md}\", user: \"{mu}\", password: {{ file: secrets/my }}, statement_timeout_ms: 60000 }}
",
            lake = demo.join("data/sales").display(),
            auth = crate::admin_auth_yaml(),
            ph = pg.host,
            pp = pg.port,
            pd = pg.database,
            pu = pg.user,
            mh = my.host,
            mp = my.port,
            md = my.database,
            mu = my.user,
        ),
    );
    std::fs::create_dir_all(d.join("domains/sales")).expect("mkdir");
    std::fs::copy(
        demo.join("domains/sales/orders.yaml"),
        d.join("domains/sales/orders.yaml"),
    )
    .expect("copy the sales product");
    let product = |domain: &str, name: &str, source: &str, tables: &[&str]| {
        let ports: String = tables
            .iter()
            .map(|t| format!("  - {{ name: {t}, source: {source}, table: {t} }}\n"))
            .collect();
        format!(
            "apiVersion: meshgate/v1\nkind: DataProduct\ndomain: {domain}\nname: {name}\nowner: {{ team: {domain} }}\nports:\n{ports}"
        )
    };
    crate::write_file(
        d,
        "domains/customers/crm.yaml",
        &product("customers", "crm", "crm_pg", PG_TABLES),
    );
    crate::write_file(
        d,
        "domains/supply/catalog.yaml",
        &product("supply", "catalog", "supply_db", MYSQL_TABLES),
    );
    dir
}
