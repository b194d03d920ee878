//! Differential testing of pushdown: generated SELECTs run through a gateway whose ports
//! live in PostgreSQL, MariaDB, SQLite, Parquet and a remote Flight SQL server, and through
//! plain DataFusion over the same data co-located; the answers must be equal.
//!
//! A failing query is shrunk to a minimal reproduction ([`shrink`]) and reported with the
//! SQL each source received (from `EXPLAIN`). `meshgate-fuzz` runs it from the command
//! line; the integration test `fuzz::pushdown_matches_datafusion` runs a fixed seed.

pub mod compare;
pub mod data;
pub mod gen;
pub mod shrink;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::prelude::SessionContext;
use tonic::transport::Channel;

use crate::dbs::DbAddress;
use crate::TestGateway;

/// What to run.
#[derive(Debug, Clone)]
pub struct FuzzConfig {
    /// Seed of the query generator.
    pub seed: u64,
    /// Queries to generate.
    pub queries: usize,
    /// TPC-H scale of the data.
    pub scale: f64,
    /// Shrink failures to minimal reproductions.
    pub shrink: bool,
    /// Stop after this many failures.
    pub max_failures: usize,
    /// Stop generating after this long.
    pub time_limit: Duration,
    /// Print every query.
    pub verbose: bool,
    /// Generate but do not run the queries before this one (to replay query N of a seed).
    pub from: usize,
    /// Longest time spent shrinking one failure.
    pub shrink_time: Duration,
}

impl Default for FuzzConfig {
    fn default() -> Self {
        Self {
            seed: 14,
            queries: 1_000,
            scale: 0.001,
            shrink: true,
            max_failures: 10,
            time_limit: Duration::from_secs(1_200),
            verbose: false,
            from: 0,
            shrink_time: Duration::from_secs(120),
        }
    }
}

/// How one query went.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Same answer.
    Pass,
    /// Both engines refused the query (a generator mistake; not a failure).
    BothError(String),
    /// Different answers.
    Mismatch(String),
    /// The gateway failed where DataFusion answered.
    GatewayError(String),
    /// The gateway answered where DataFusion failed.
    ReferenceError(String),
    /// The gateway answered INTERNAL.
    Internal(String),
}

impl Outcome {
    /// Whether this is a failure of the gateway.
    pub fn failed(&self) -> bool {
        !matches!(self, Outcome::Pass | Outcome::BothError(_))
    }

    fn kind(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::BothError(_) => "both failed",
            Outcome::Mismatch(_) => "wrong answer",
            Outcome::GatewayError(_) => "gateway error",
            Outcome::ReferenceError(_) => "answer where DataFusion fails",
            Outcome::Internal(_) => "internal error",
        }
    }
}

/// A failure, shrunk.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The query as generated.
    pub original: String,
    /// The smallest query that still fails the same way.
    pub minimal: String,
    /// What went wrong with it.
    pub outcome: Outcome,
    /// What each source received for it.
    pub pushed: Vec<String>,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    /// Queries run.
    pub queries: usize,
    /// Queries with equal answers.
    pub passed: usize,
    /// Queries both engines refused.
    pub both_failed: usize,
    /// Why both refused, by the start of DataFusion's message.
    pub both_failed_reasons: BTreeMap<String, usize>,
    /// Failures.
    pub failures: Vec<Failure>,
    /// Statements pushed, per source.
    pub statements: BTreeMap<String, usize>,
    /// Pushed statements with a construct: `JOIN`, `GROUP BY`, `OVER (`, `EXISTS`, ...
    pub constructs: BTreeMap<&'static str, usize>,
    /// Time taken.
    pub elapsed: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} queries in {:.1} s: {} equal, {} refused by both engines, {} failed",
            self.queries,
            self.elapsed.as_secs_f64(),
            self.passed,
            self.both_failed,
            self.failures.len()
        )?;
        writeln!(f, "statements pushed per source: {:?}", self.statements)?;
        writeln!(f, "pushed statements containing: {:?}", self.constructs)?;
        writeln!(
            f,
            "refused by both engines, why: {:?}",
            self.both_failed_reasons
        )?;
        for (i, x) in self.failures.iter().enumerate() {
            writeln!(f, "\nfailure {} ({}):", i + 1, x.outcome.kind())?;
            writeln!(f, "  minimal:  {}", x.minimal)?;
            writeln!(f, "  original: {}", x.original)?;
            writeln!(f, "  detail:   {:?}", x.outcome)?;
            for p in &x.pushed {
                writeln!(f, "  sent:     {p}")?;
            }
        }
        Ok(())
    }
}

/// The gateways, the reference and the data of a fuzz run.
pub struct Env {
    gateway: TestGateway,
    _remote: TestGateway,
    /// The same mesh with `pushdown: off` on every SQL source: DataFusion computes all but
    /// the scans. It arbitrates when the reference fails where the gateway answers.
    _arbiter: TestGateway,
    arbiter: FlightSqlServiceClient<Channel>,
    client: FlightSqlServiceClient<Channel>,
    reference: SessionContext,
    schemas: BTreeMap<String, SchemaRef>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("gateway", &self.gateway.addr)
            .finish_non_exhaustive()
    }
}

impl Env {
    /// Loads the data into PostgreSQL and MariaDB (once per server), writes SQLite and
    /// Parquet, starts the remote and the fuzzed gateway, and builds the reference.
    pub async fn start(pg: &DbAddress, my: &DbAddress, scale: f64) -> Self {
        data::load_postgres(pg, scale).await;
        data::load_mariadb(my, scale).await;
        let dir = tempfile::tempdir().expect("tmp");
        let lake: PathBuf = dir.path().join("lake");
        let sqlite = dir.path().join("fuzz.sqlite");
        {
            let (lake, sqlite) = (lake.clone(), sqlite.clone());
            tokio::task::spawn_blocking(move || {
                data::write_parquet(&lake, scale);
                data::write_sqlite(&sqlite, scale);
            })
            .await
            .expect("write files");
        }
        let remote_dir = dir.path().join("remote");
        data::remote_mesh(&remote_dir, &lake);
        let remote = TestGateway::start(&remote_dir).await;
        let hub_dir = dir.path().join("hub");
        data::hub_mesh(&hub_dir, pg, my, &sqlite, &lake, remote.addr, true);
        let gateway = TestGateway::start(&hub_dir).await;
        let mut client = gateway.client().await;
        let arbiter_dir = dir.path().join("arbiter");
        data::hub_mesh(&arbiter_dir, pg, my, &sqlite, &lake, remote.addr, false);
        let arbiter_gateway = TestGateway::start(&arbiter_dir).await;
        let arbiter = arbiter_gateway.client().await;
        let mut schemas = BTreeMap::new();
        for (domain, _) in data::DOMAINS {
            for t in data::TABLES {
                let port = format!("{domain}.tpch.{t}");
                let info = client
                    .execute(format!("SELECT * FROM {port} LIMIT 0"), None)
                    .await
                    .unwrap_or_else(|e| panic!("{port} is served: {e}"));
                let schema = info.try_decode_schema().expect("schema");
                schemas.insert(port, Arc::new(schema));
            }
        }
        let reference = data::reference(scale, &schemas);
        Self {
            gateway,
            _remote: remote,
            _arbiter: arbiter_gateway,
            arbiter,
            client,
            reference,
            schemas,
            _dir: dir,
        }
    }

    /// The served schema of every port.
    pub fn schemas(&self) -> &BTreeMap<String, SchemaRef> {
        &self.schemas
    }

    /// Runs `sql` through both engines. Answers over [`MAX_ROWS`] rows (a cartesian product
    /// left by shrinking) are not compared.
    pub async fn check(&mut self, sql: &str, ordered: bool) -> Outcome {
        const LIMIT: Duration = Duration::from_secs(30);
        let want = tokio::time::timeout(LIMIT, async {
            use futures::StreamExt;
            let df = self.reference.sql(sql).await.map_err(|e| e.to_string())?;
            let mut stream = df.execute_stream().await.map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            let mut n = 0;
            while let Some(b) = stream.next().await {
                let b = b.map_err(|e| e.to_string())?;
                n += b.num_rows();
                if n > MAX_ROWS {
                    return Err(TOO_LARGE.to_string());
                }
                out.push(b);
            }
            Ok(out)
        })
        .await;
        let want = match want {
            Ok(Err(e)) if e == TOO_LARGE => return Outcome::BothError(TOO_LARGE.into()),
            Ok(r) => r,
            Err(_) => Err("timed out".into()),
        };
        let got = tokio::time::timeout(LIMIT, async {
            use futures::TryStreamExt;
            let info = self
                .client
                .execute(sql.to_string(), None)
                .await
                .map_err(crate::to_status)?;
            let mut out = Vec::new();
            let mut n = 0;
            for ep in info.endpoint {
                let ticket = ep
                    .ticket
                    .ok_or_else(|| tonic::Status::internal("endpoint without ticket"))?;
                let mut stream = self.client.do_get(ticket).await.map_err(crate::to_status)?;
                while let Some(b) = stream.try_next().await.map_err(crate::to_status)? {
                    n += b.num_rows();
                    if n > MAX_ROWS {
                        return Err(tonic::Status::resource_exhausted(TOO_LARGE));
                    }
                    out.push(b);
                }
            }
            Ok(out)
        })
        .await;
        let got = match got {
            Ok(r) => r,
            Err(_) => Err(tonic::Status::deadline_exceeded("timed out")),
        };
        match (got, want) {
            (Err(e), _) if e.code() == tonic::Code::Internal => {
                Outcome::Internal(e.message().to_string())
            }
            // Whether a row that fails an arithmetic check (a division by zero, an overflow) is
            // evaluated at all depends on evaluation order, which SQL leaves open (a source may
            // evaluate the failing expression on rows DataFusion filters out first).
            (Err(g), Ok(_)) if data_error(g.message()) => {
                Outcome::BothError(format!("gateway: {}", g.message()))
            }
            (Err(g), Err(w)) => {
                Outcome::BothError(format!("gateway: {}; DataFusion: {w}", g.message()))
            }
            (Err(g), Ok(_)) => Outcome::GatewayError(format!("{:?}: {}", g.code(), g.message())),
            (Ok(g), Err(w)) => self.arbitrate(sql, &g, &w, ordered).await,
            (Ok(g), Ok(w)) => {
                let g = compare::rows(&g);
                let w = compare::rows(&w);
                match compare::diff(&g, &w, ordered) {
                    None => Outcome::Pass,
                    Some(d) => Outcome::Mismatch(d),
                }
            }
        }
    }

    /// DataFusion failed where the gateway answered: a row the sources filtered out first,
    /// a DataFusion bug the pushed plan avoided, or a source computing what DataFusion
    /// refuses. The same mesh without pushdown tells them apart.
    async fn arbitrate(
        &mut self,
        sql: &str,
        got: &[datafusion::arrow::array::RecordBatch],
        reference_error: &str,
        ordered: bool,
    ) -> Outcome {
        let w = reference_error;
        let answer = tokio::time::timeout(
            Duration::from_secs(30),
            crate::query(&mut self.arbiter, sql),
        )
        .await;
        match answer {
            Ok(Ok(a)) => {
                let g = compare::rows(got);
                let a = compare::rows(&a);
                match compare::diff(&g, &a, ordered) {
                    None => Outcome::BothError(format!(
                        "DataFusion: {w} (the gateway without pushdown gives the same answer)"
                    )),
                    Some(d) => Outcome::Mismatch(format!(
                        "{d}, against the gateway without pushdown (DataFusion failed: {w})"
                    )),
                }
            }
            // Both DataFusion runs refuse a value. If a source computed the failing kind of
            // operation, it answered what DataFusion refuses (a semantic difference); if not,
            // the pushed filters just removed the row first.
            Ok(Err(a)) if data_error(a.message()) && data_error(w) => {
                let pushed = self.pushed(sql).await;
                let lower = w.to_ascii_lowercase();
                let ops: &[&str] = if lower.contains("divide") || lower.contains("division") {
                    &[" / ", " % "]
                } else {
                    &[" + ", " - ", " * ", "CAST("]
                };
                if pushed.iter().any(|p| ops.iter().any(|o| p.contains(o))) {
                    Outcome::ReferenceError(format!(
                        "{w}; without pushdown: {}; a source computed it",
                        a.message()
                    ))
                } else {
                    Outcome::BothError(format!(
                        "DataFusion: {w}; without pushdown: {} (no source computed it)",
                        a.message()
                    ))
                }
            }
            Ok(Err(a)) => Outcome::BothError(format!(
                "DataFusion: {w}; without pushdown: {}",
                a.message()
            )),
            Err(_) => Outcome::BothError(format!("DataFusion: {w}; without pushdown: timed out")),
        }
    }

    /// What each source receives for `sql`: `source: SQL` per pushed statement or scan.
    pub async fn pushed(&mut self, sql: &str) -> Vec<String> {
        let Ok(batches) = crate::query(&mut self.client, &format!("EXPLAIN {sql}")).await else {
            return vec![];
        };
        let mut out = Vec::new();
        for b in &batches {
            let col = b.column(b.num_columns() - 1);
            let f = datafusion::arrow::util::display::ArrayFormatter::try_new(
                col.as_ref(),
                &Default::default(),
            )
            .expect("formatter");
            for i in 0..b.num_rows() {
                for line in f.value(i).to_string().lines() {
                    let line = line.trim();
                    if let Some(rest) = line.split("VirtualExecutionPlan name=").nth(1) {
                        let name = rest.split_whitespace().next().unwrap_or_default();
                        let sql = rest.split(" base_sql=").nth(1).unwrap_or_default();
                        out.push(format!("{name}: {sql}"));
                    } else if let Some(rest) = line.split("SqlScanExec: source=").nth(1) {
                        let (name, sql) = rest.split_once(" sql=").unwrap_or((rest, ""));
                        out.push(format!("{name} (scan): {sql}"));
                    }
                }
            }
        }
        out
    }

    /// Both answers to `sql`, as tables with their schemas.
    pub async fn answers(&mut self, sql: &str) -> String {
        use datafusion::arrow::util::pretty::pretty_format_batches;
        let show = |b: &[datafusion::arrow::array::RecordBatch]| {
            let schema = b
                .first()
                .map(|b| format!("{:?}", b.schema().fields()))
                .unwrap_or_default();
            format!(
                "{schema}\n{}",
                pretty_format_batches(b)
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            )
        };
        let got = match crate::query(&mut self.client, sql).await {
            Ok(b) => show(&b),
            Err(e) => e.to_string(),
        };
        let want = match self.reference.sql(sql).await {
            Ok(df) => match df.collect().await {
                Ok(b) => show(&b),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        format!("gateway:\n{got}\nDataFusion:\n{want}")
    }

    /// The number of rows the gateway answers `sql` with.
    pub async fn gateway_rows(&mut self, sql: &str) -> usize {
        crate::row_count(&crate::query(&mut self.client, sql).await.expect(sql))
    }

    /// The gateway's `EXPLAIN VERBOSE` of `sql`, as text.
    pub async fn explain(&mut self, sql: &str) -> String {
        match crate::query(&mut self.client, &format!("EXPLAIN VERBOSE {sql}")).await {
            Ok(b) => datafusion::arrow::util::pretty::pretty_format_batches(&b)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            Err(e) => e.to_string(),
        }
    }

    /// The gateway under test.
    pub fn gateway(&self) -> &TestGateway {
        &self.gateway
    }
}

/// An error about a value (not about the statement): its rows may be filtered away before
/// the failing expression in another engine.
fn data_error(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "divide by zero",
        "division by zero",
        "overflow",
        "out of range",
    ]
    .iter()
    .any(|w| m.contains(w))
}

/// Answers larger than this are not compared.
pub const MAX_ROWS: usize = 200_000;
const TOO_LARGE: &str = "the answer is too large to compare";

const CONSTRUCTS: &[&str] = &[
    " JOIN ",
    "GROUP BY",
    " OVER (",
    "EXISTS (",
    "NOT IN (",
    "DISTINCT",
    "LIMIT",
    "UNION ALL",
    "ORDER BY",
    "LIKE",
    "glob(",
    "COLLATE",
    "CASE ",
];

/// Generates and checks `cfg.queries` queries; shrinks failures.
pub async fn run(env: &mut Env, cfg: &FuzzConfig) -> Report {
    let started = Instant::now();
    let mut generator = gen::Generator::new(cfg.seed, env.schemas.clone());
    let mut report = Report::default();
    for i in 0..cfg.queries {
        if started.elapsed() > cfg.time_limit || report.failures.len() >= cfg.max_failures {
            break;
        }
        let q = generator.query();
        if i < cfg.from {
            continue;
        }
        let sql = q.sql();
        if cfg.verbose {
            eprintln!("[{i}] {sql}");
        }
        let ordered = q.fully_ordered() && !q.types().contains(&gen::Ty::Float);
        let t0 = Instant::now();
        let outcome = env.check(&sql, ordered).await;
        if cfg.verbose {
            eprintln!(
                "    {:?} in {} ms",
                outcome_kind(&outcome),
                t0.elapsed().as_millis()
            );
        }
        report.queries += 1;
        for p in env.pushed(&sql).await {
            let (source, text) = p.split_once(": ").unwrap_or((&p, ""));
            *report.statements.entry(source.to_string()).or_default() += 1;
            for c in CONSTRUCTS {
                if text.contains(c) {
                    *report.constructs.entry(c).or_default() += 1;
                }
            }
        }
        match &outcome {
            Outcome::Pass => report.passed += 1,
            Outcome::BothError(why) => {
                report.both_failed += 1;
                let reason = why.split("DataFusion: ").last().unwrap_or(why);
                let reason: String = reason.chars().take(70).collect();
                *report.both_failed_reasons.entry(reason).or_default() += 1;
            }
            failed => {
                eprintln!("[{i}] {}: {sql}", failed.kind());
                let timed_out =
                    matches!(failed, Outcome::GatewayError(m) if m.contains("timed out"));
                let (minimal, outcome) = if cfg.shrink && !timed_out {
                    shrink_failure(env, &q, failed, cfg.shrink_time).await
                } else {
                    (q.clone(), failed.clone())
                };
                let pushed = env.pushed(&minimal.sql()).await;
                report.failures.push(Failure {
                    original: sql,
                    minimal: minimal.sql(),
                    outcome,
                    pushed,
                });
            }
        }
    }
    report.elapsed = started.elapsed();
    report
}

fn outcome_kind(o: &Outcome) -> &'static str {
    o.kind()
}

/// The smallest variant of `q` that fails the same way (bounded number of tries).
async fn shrink_failure(
    env: &mut Env,
    q: &gen::Query,
    how: &Outcome,
    limit: Duration,
) -> (gen::Query, Outcome) {
    let started = Instant::now();
    let mut best = q.clone();
    let mut best_outcome = how.clone();
    let mut budget = 400usize;
    'outer: loop {
        for c in shrink::candidates(&best) {
            if budget == 0 || started.elapsed() > limit {
                break 'outer;
            }
            budget -= 1;
            let ordered = c.fully_ordered() && !c.types().contains(&gen::Ty::Float);
            let o = env.check(&c.sql(), ordered).await;
            if o.failed() && o.kind() == how.kind() {
                best = c;
                best_outcome = o;
                continue 'outer;
            }
        }
        break;
    }
    (best, best_outcome)
}
