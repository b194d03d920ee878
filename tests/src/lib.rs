//! Test harness: an in-process gateway bound to port 0, a Flight SQL client, the demo mesh at
//! a small scale, and a reference DataFusion context over the same TPC-H data as Parquet.

pub mod dbs;
pub mod fuzz;
pub mod proxy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::FlightInfo;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use meshgate::connectors::default_registry;
use meshgate::server::{bind, serve, state_for_dir, GatewayOptions};
use meshgate::state::GatewayState;
use tonic::transport::Channel;

/// Scale of the TPC-H data the tests use.
pub const TEST_SCALE: f64 = 0.01;

/// `{name}` placeholders in tests/tpch/*.sql and the ports they stand for.
pub const TPCH_PORTS: &[(&str, &str)] = &[
    ("lineitem", "sales.orders.lineitem"),
    ("orders", "sales.orders.orders"),
    ("customer", "customers.crm.customer"),
    ("nation", "customers.crm.nation"),
    ("region", "customers.crm.region"),
    ("part", "supply.catalog.part"),
    ("supplier", "supply.catalog.supplier"),
    ("partsupp", "supply.catalog.partsupp"),
];

/// The TPC-H query `name` (e.g. `q05`) with mesh table names.
pub fn tpch_query(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tpch")
        .join(format!("{name}.sql"));
    let mut sql =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (placeholder, port) in TPCH_PORTS {
        sql = sql.replace(&format!("{{{placeholder}}}"), port);
    }
    sql
}

/// Names of the TPC-H queries in tests/tpch.
pub fn tpch_query_names() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tpch");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("tests/tpch")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".sql"))
                .map(String::from)
        })
        .collect();
    names.sort();
    names
}

static DEMO: OnceLock<tempfile::TempDir> = OnceLock::new();

/// The demo mesh with its data, generated once per test process.
pub fn demo_dir() -> PathBuf {
    DEMO.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        meshgate::demo::ensure_demo(dir.path(), TEST_SCALE, false).expect("demo data");
        dir
    })
    .path()
    .to_path_buf()
}

/// `auth` and `policies` for test meshes: user `platform` (password `platform-pw`, group
/// `admins`, so it may EXPLAIN; the harness logs in with it) and every product readable.
pub fn admin_auth_yaml() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash =
        HASH.get_or_init(|| meshgate::security::authn::hash_password("platform-pw").expect("hash"));
    format!(
        "auth:\n  users:\n    - {{ name: platform, password_hash: \"{hash}\", groups: [admins, analysts] }}\npolicies: {{ default_access: allow }}\n"
    )
}

/// Sends the gateway's log to standard error when `MESHGATE_TEST_LOG` names a filter.
pub fn init_test_log() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if let Ok(filter) = std::env::var("MESHGATE_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(std::io::stderr)
                .try_init();
        }
    });
}

/// A gateway serving a mesh directory on 127.0.0.1, port chosen by the OS.
#[derive(Debug)]
pub struct TestGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Basic credentials the clients use: the demo's `platform` user when the mesh declares
    /// it, none otherwise (test meshes allow anonymous access).
    pub credentials: Option<(String, String)>,
    /// The gateway's state, for its metrics and engine.
    pub state: Arc<GatewayState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
}

/// A raw Flight client that sends Basic credentials on every call.
pub type RawClient = arrow_flight::flight_service_client::FlightServiceClient<
    tonic::service::interceptor::InterceptedService<Channel, BasicAuth>,
>;

/// Adds an `authorization: Basic ...` header to every call (none when empty).
#[derive(Debug, Clone)]
pub struct BasicAuth(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl BasicAuth {
    /// Credentials for `user`/`password`.
    pub fn new(creds: Option<&(String, String)>) -> Self {
        use base64::Engine;
        Self(creds.map(|(u, p)| {
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            format!("Basic {b}").parse().expect("header")
        }))
    }
}

impl tonic::service::Interceptor for BasicAuth {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            r.metadata_mut().insert("authorization", v.clone());
        }
        Ok(r)
    }
}

impl TestGateway {
    /// Starts a gateway over `dir` with default options.
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(dir, GatewayOptions::default()).await
    }

    /// Starts a gateway over `dir` with `opts`. With `MESHGATE_TEST_LOG` set (an env
    /// filter such as `meshgate=debug`), the gateway's log goes to standard error.
    pub async fn start_with(dir: &Path, opts: GatewayOptions) -> Self {
        init_test_log();
        let credentials = meshgate_config::load_mesh(dir)
            .ok()
            .filter(|m| m.auth.users.iter().any(|u| u.name == "platform"))
            .map(|_| ("platform".to_string(), "platform-pw".to_string()));
        let state = state_for_dir(
            dir,
            &default_registry(),
            &opts,
            tokio::runtime::Handle::current(),
        )
        .await
        .expect("gateway starts");
        let (listener, addr) = bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let serving = Arc::clone(&state);
        let served = tokio::spawn(async move {
            let _ = serve(listener, serving, async {
                let _ = rx.await;
            })
            .await;
        });
        Self {
            addr,
            credentials,
            state,
            shutdown: Some(tx),
            served: Some(served),
        }
    }

    /// Stops serving and waits until the server has let go of its port and of every
    /// connection (running streams are given a moment to finish).
    pub async fn shutdown_and_wait(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(served) = self.served.take() {
            let _ = served.await;
        }
    }

    /// The Prometheus text `/metrics` serves.
    pub fn metrics_text(&self) -> String {
        meshgate::http::metrics_text(&self.state)
    }

    /// A plain Flight client (no Flight SQL layer), for raw protocol tests.
    pub async fn raw_client(&self) -> RawClient {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .expect("url")
            .connect()
            .await
            .expect("connect");
        arrow_flight::flight_service_client::FlightServiceClient::with_interceptor(
            channel,
            BasicAuth::new(self.credentials.as_ref()),
        )
    }

    /// A Flight SQL client that did a handshake.
    pub async fn client(&self) -> FlightSqlServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .expect("url")
            .connect()
            .await
            .expect("connect");
        let mut c = FlightSqlServiceClient::new(channel);
        if let Some((u, p)) = &self.credentials {
            c.handshake(u, p).await.expect("handshake");
        }
        c
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Writes `text` to `dir/rel`, creating directories.
pub fn write_file(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

/// Fetches every endpoint of `info`.
pub async fn fetch(
    client: &mut FlightSqlServiceClient<Channel>,
    info: FlightInfo,
) -> Result<Vec<RecordBatch>, tonic::Status> {
    let mut out = Vec::new();
    for ep in info.endpoint {
        let ticket = ep
            .ticket
            .ok_or_else(|| tonic::Status::internal("endpoint without ticket"))?;
        let stream = client.do_get(ticket).await.map_err(to_status)?;
        let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(to_status)?;
        out.extend(batches);
    }
    Ok(out)
}

/// Runs `sql` as a statement and fetches the result.
pub async fn query(
    client: &mut FlightSqlServiceClient<Channel>,
    sql: &str,
) -> Result<Vec<RecordBatch>, tonic::Status> {
    let info = client
        .execute(sql.to_string(), None)
        .await
        .map_err(to_status)?;
    fetch(client, info).await
}

/// The gRPC status inside a client error.
pub fn to_status(e: arrow_flight::error::FlightError) -> tonic::Status {
    match e {
        arrow_flight::error::FlightError::Tonic(s) => *s,
        other => tonic::Status::unknown(other.to_string()),
    }
}

/// Rows of `batches` as sorted text lines, for order-insensitive comparison.
pub fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
    let text = pretty_format_batches(batches).expect("format").to_string();
    let mut lines: Vec<String> = text
        .lines()
        .skip(3)
        .filter(|l| !l.starts_with('+'))
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

/// Number of rows.
pub fn row_count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

/// Where each TPC-H table sits in the mesh: `(domain, product, [tables])`.
const TPCH_LAYOUT: &[(&str, &str, &[&str])] = &[
    ("sales", "orders", &["orders", "lineitem"]),
    ("customers", "crm", &["customer", "nation", "region"]),
    ("supply", "catalog", &["part", "supplier", "partsupp"]),
];

static REFERENCE_FILES: OnceLock<tempfile::TempDir> = OnceLock::new();

/// The TPC-H tables as generated, written once per process to one Parquet file each.
fn reference_files() -> PathBuf {
    REFERENCE_FILES
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            for (_, _, tables) in TPCH_LAYOUT {
                for t in *tables {
                    let batches = dbs::tpch_table(t);
                    let file = std::fs::File::create(dir.path().join(format!("{t}.parquet")))
                        .expect("create parquet");
                    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(
                        file,
                        batches[0].schema(),
                        None,
                    )
                    .expect("parquet writer");
                    for b in &batches {
                        w.write(b).expect("write parquet");
                    }
                    w.close().expect("close parquet");
                }
            }
            dir
        })
        .path()
        .to_path_buf()
}

/// Plain DataFusion over the same TPC-H data as co-located Parquet files, under the same
/// three-part names as the mesh: the answers federated queries must equal.
pub async fn reference_context() -> SessionContext {
    let dir = reference_files();
    let ctx = SessionContext::new();
    for (catalog, schema, tables) in TPCH_LAYOUT {
        let cat = ctx.catalog(catalog).unwrap_or_else(|| {
            let c: Arc<dyn CatalogProvider> = Arc::new(MemoryCatalogProvider::new());
            ctx.register_catalog(*catalog, Arc::clone(&c));
            c
        });
        cat.register_schema(schema, Arc::new(MemorySchemaProvider::new()))
            .expect("schema");
        for t in *tables {
            let path = dir.join(format!("{t}.parquet"));
            ctx.register_parquet(
                datafusion::common::TableReference::full(*catalog, *schema, *t),
                path.to_str().expect("utf-8 path"),
                datafusion::prelude::ParquetReadOptions::default(),
            )
            .await
            .expect("register parquet");
        }
    }
    ctx
}

/// Compares two results as sorted rows: text cells exactly, numeric cells to 1e-6 relative
/// (engines may round the last digit of a decimal division differently). `Err` describes
/// the first difference.
pub fn compare_rows(got: &[RecordBatch], want: &[RecordBatch]) -> Result<(), String> {
    let (g, w) = (sorted_rows(got), sorted_rows(want));
    if g.len() != w.len() {
        return Err(format!("{} rows, expected {}", g.len(), w.len()));
    }
    for (a, b) in g.iter().zip(&w) {
        let ca: Vec<&str> = a.split('|').map(str::trim).collect();
        let cb: Vec<&str> = b.split('|').map(str::trim).collect();
        let same = ca.len() == cb.len()
            && ca.iter().zip(&cb).all(|(x, y)| {
                x == y
                    || match (x.parse::<f64>(), y.parse::<f64>()) {
                        (Ok(p), Ok(q)) => (p - q).abs() <= 1e-6 * p.abs().max(q.abs()).max(1.0),
                        _ => false,
                    }
            });
        if !same {
            return Err(format!("row differs:\n got  {a}\n want {b}"));
        }
    }
    Ok(())
}

/// Runs every TPC-H query on `client` and compares with `reference`; returns every failure.
pub async fn check_tpch(
    client: &mut FlightSqlServiceClient<Channel>,
    reference: &SessionContext,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut non_empty = 0;
    let names = tpch_query_names();
    assert_eq!(names.len(), 22, "{names:?}");
    for name in &names {
        let sql = tpch_query(name);
        let want = reference
            .sql(&sql)
            .await
            .expect("reference plans")
            .collect()
            .await
            .expect("reference runs");
        match query(client, &sql).await {
            Ok(got) => {
                if row_count(&got) > 0 {
                    non_empty += 1;
                }
                if let Err(e) = compare_rows(&got, &want) {
                    failures.push(format!("{name}: {e}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    if non_empty < 18 {
        failures.push(format!(
            "only {non_empty} of 22 queries return rows at this scale"
        ));
    }
    failures
}
