//! One request, whatever front end it came through: what was called ([`Rpc`]), who called
//! ([`Call`], after authentication), what it did ([`Outcome`]), and the one place where it is
//! recorded (audit, usage, metrics). Queries are planned and executed here too, so that the
//! Flight SQL service only decodes commands and encodes results.
//!
//! ```text
//! transport (flight/, catalog_service.rs)
//!   -> GatewayState::authenticate   credentials -> principal, or UNAUTHENTICATED (audited)
//!   -> the principal's CatalogView  every listing and every table a query names
//!   -> plan / execute               query::QueryEngine
//!   -> GatewayState::record         audit record, usage record, metrics
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use futures::{FutureExt, StreamExt};
use tonic::Status;
use tracing::Instrument as _;

use crate::catalog::view::CatalogView;
use crate::error::GatewayError;
use crate::port::PortRef;
use crate::query::admission::Permit;
use crate::query::source_reads::{format_source_reads, source_reads};
use crate::query::{execute, params_from_batch, PlannedQuery};
use crate::security::audit::{code_name, AuditRecord};
use crate::security::authn::Credentials;
use crate::security::cert::subject_cn;
use crate::security::Principal;
use crate::state::GatewayState;
use crate::telemetry::RemoteParent;

/// A Flight SQL command, as named in audit records (`GetFlightInfo/<Command>`,
/// `DoGet/<Command>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `CommandStatementQuery`.
    Statement,
    /// `CommandStatementSubstraitPlan`.
    SubstraitPlan,
    /// `CommandPreparedStatementQuery`.
    PreparedStatement,
    /// `CommandGetCatalogs`.
    Catalogs,
    /// `CommandGetDbSchemas`.
    DbSchemas,
    /// `CommandGetTables`.
    Tables,
    /// `CommandGetTableTypes`.
    TableTypes,
    /// `CommandGetSqlInfo`.
    SqlInfo,
    /// `CommandGetPrimaryKeys`.
    PrimaryKeys,
    /// `CommandGetExportedKeys`.
    ExportedKeys,
    /// `CommandGetImportedKeys`.
    ImportedKeys,
    /// `CommandGetCrossReference`.
    CrossReference,
    /// `CommandGetXdbcTypeInfo`.
    XdbcTypeInfo,
}

impl Command {
    fn name(self) -> &'static str {
        match self {
            Self::Statement => "Statement",
            Self::SubstraitPlan => "SubstraitPlan",
            Self::PreparedStatement => "PreparedStatement",
            Self::Catalogs => "Catalogs",
            Self::DbSchemas => "DbSchemas",
            Self::Tables => "Tables",
            Self::TableTypes => "TableTypes",
            Self::SqlInfo => "SqlInfo",
            Self::PrimaryKeys => "PrimaryKeys",
            Self::ExportedKeys => "ExportedKeys",
            Self::ImportedKeys => "ImportedKeys",
            Self::CrossReference => "CrossReference",
            Self::XdbcTypeInfo => "XdbcTypeInfo",
        }
    }

    fn is_query(self) -> bool {
        matches!(self, Self::Statement | Self::PreparedStatement)
    }
}

/// A call of the Catalog service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogCall {
    /// `ListDomains`.
    ListDomains,
    /// `ListProducts`.
    ListProducts,
    /// `GetProduct`.
    GetProduct,
}

/// What was called: the RPC and, for Flight SQL, the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    /// Flight `Handshake`.
    Handshake,
    /// `GetFlightInfo` of a command.
    FlightInfo(Command),
    /// `DoGet` of a command's ticket.
    DoGet(Command),
    /// `DoGet` of a ticket this gateway did not issue.
    DoGetUnknown,
    /// `DoPut` binding prepared statement parameters.
    BindParameters,
    /// `DoAction` CreatePreparedStatement.
    CreatePreparedStatement,
    /// `DoAction` ClosePreparedStatement.
    ClosePreparedStatement,
    /// `DoAction` BeginTransaction.
    BeginTransaction,
    /// Another `DoAction`.
    OtherAction,
    /// The gRPC Catalog service.
    Catalog(CatalogCall),
}

impl Rpc {
    /// The name in audit records and logs, e.g. `DoGet/Statement`.
    pub fn name(self) -> String {
        match self {
            Self::Handshake => "Handshake".into(),
            Self::FlightInfo(c) => format!("GetFlightInfo/{}", c.name()),
            Self::DoGet(c) => format!("DoGet/{}", c.name()),
            Self::DoGetUnknown => "DoGet".into(),
            Self::BindParameters => "DoPut/PreparedStatementQuery".into(),
            Self::CreatePreparedStatement => "DoAction/CreatePreparedStatement".into(),
            Self::ClosePreparedStatement => "DoAction/ClosePreparedStatement".into(),
            Self::BeginTransaction => "DoAction/BeginTransaction".into(),
            Self::OtherAction => "DoAction".into(),
            Self::Catalog(CatalogCall::ListDomains) => "Catalog/ListDomains".into(),
            Self::Catalog(CatalogCall::ListProducts) => "Catalog/ListProducts".into(),
            Self::Catalog(CatalogCall::GetProduct) => "Catalog/GetProduct".into(),
        }
    }

    /// Whether the call streams a query's result (counted when the stream ends).
    fn executes_query(self) -> bool {
        matches!(self, Self::DoGet(c) if c.is_query())
    }

    /// Whether the call plans a query (counted as a query when planning fails).
    fn plans_query(self) -> bool {
        matches!(self, Self::FlightInfo(c) if c.is_query()) || self == Self::CreatePreparedStatement
    }
}

impl fmt::Display for Rpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// What arrived with a call, before authentication.
#[derive(Debug, Clone, Default)]
pub struct CallMeta {
    /// What it brings to prove who it is.
    pub credentials: Credentials,
    /// The client's address.
    pub client: Option<String>,
    /// The client's trace context.
    pub trace: RemoteParent,
    /// The client's gRPC deadline (`grpc-timeout`), from when the call arrived.
    pub deadline: Option<Duration>,
}

/// A `grpc-timeout` header value: digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
fn grpc_timeout(v: &str) -> Option<Duration> {
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

impl CallMeta {
    /// What a gRPC request carries: the `authorization` and identity assertion headers, a
    /// verified client certificate, the peer address and a `traceparent`.
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        let header = |name: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Self {
            credentials: Credentials {
                authorization: header("authorization"),
                client_cn: request
                    .peer_certs()
                    .and_then(|certs| certs.first().and_then(|c| subject_cn(c.as_ref()))),
                assertion: header(meshgate_connector::identity::ASSERTION_HEADER),
            },
            client: request.remote_addr().map(|a| a.to_string()),
            trace: RemoteParent::from_metadata(request.metadata()),
            deadline: header("grpc-timeout").as_deref().and_then(grpc_timeout),
        }
    }
}

/// An authenticated call: what, who, from where, since when.
#[derive(Debug, Clone)]
pub struct Call {
    /// What was called.
    pub rpc: Rpc,
    /// Who called.
    pub principal: Arc<Principal>,
    /// From where.
    pub client: Option<String>,
    /// Since when.
    pub started: Instant,
    /// The client's trace context, parent of the call's span.
    pub trace: RemoteParent,
    /// The client's gRPC deadline, from `started`.
    pub deadline: Option<Duration>,
}

impl Call {
    /// The span of a query call (`query` when it streams results, `flight_info` when it
    /// plans): a child of the client's trace when it sent one.
    fn span(&self, sql: &str) -> tracing::Span {
        let rpc = self.rpc.name();
        let sql = sql.chars().take(2000).collect::<String>();
        let span = if self.rpc.executes_query() {
            tracing::info_span!(
                "query",
                rpc = %rpc,
                principal = %self.principal.name,
                sql = %sql,
                rows = tracing::field::Empty,
                status = tracing::field::Empty,
            )
        } else {
            tracing::info_span!(
                "flight_info",
                rpc = %rpc,
                principal = %self.principal.name,
                sql = %sql,
                status = tracing::field::Empty,
            )
        };
        self.trace.adopt(&span);
        span
    }
}

/// What a finished call did, for its records.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The SQL of the call, if it had one.
    pub sql: Option<String>,
    /// Ports read, with their columns, after policy rewriting.
    pub ports: BTreeMap<PortRef, BTreeSet<String>>,
    /// Rows returned.
    pub rows: u64,
    /// Arrow bytes returned.
    pub bytes: u64,
    /// Bytes read per source.
    pub source_bytes: BTreeMap<String, u64>,
    /// CPU milliseconds of the operators.
    pub cpu_ms: u64,
}

impl Outcome {
    /// The outcome of a call about `sql`.
    pub fn sql(sql: &str) -> Self {
        Self {
            sql: Some(sql.to_string()),
            ..Self::default()
        }
    }
}

/// The result rows of a query being executed, as they are produced.
pub type ResultBatches = tokio::sync::mpsc::Receiver<Result<RecordBatch, Status>>;

/// Why a running query stops before its end.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// Past `limits.max_query_time_s` or the client's deadline.
    OverTime,
    /// The drain time of a shutdown is over.
    Shutdown,
    /// CancelFlightInfo.
    Cancelled,
}

/// Whether a query takes an admission slot: it reads a source port, or recurses.
fn takes_a_slot(planned: &PlannedQuery) -> bool {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::physical_plan::recursive_query::RecursiveQueryExec;
    if planned
        .reads
        .keys()
        .any(|p| !crate::catalog::system::is_system_table(p))
    {
        return true;
    }
    let mut recursive = false;
    let _ = planned.plan.apply(|node| {
        recursive |= node.is::<RecursiveQueryExec>();
        Ok(if recursive {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    recursive
}

/// CPU time of a finished plan: the sum of its operators' `elapsed_compute`, in nanoseconds.
fn compute_nanos(plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>) -> u64 {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut total = 0u64;
    let _ = plan.apply(|node| {
        if let Some(m) = node.metrics() {
            total += m.elapsed_compute().unwrap_or(0) as u64;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    total
}

impl GatewayState {
    /// Authenticates a call. Failures answer `Unauthenticated` without detail; the reason
    /// goes to the log and the audit log. Password checks (Argon2) run on the blocking pool,
    /// a few at a time; a client with many recent failures is refused without a check.
    pub async fn authenticate(&self, rpc: Rpc, meta: CallMeta) -> Result<Call, Status> {
        use crate::security::throttle::client_key;
        let started = Instant::now();
        let basic = meta
            .credentials
            .authorization
            .as_deref()
            .and_then(|a| a.get(..6))
            .is_some_and(|s| s.eq_ignore_ascii_case("basic "));
        let authn = self.authenticator();
        let result = if basic {
            let key = client_key(meta.client.as_deref());
            let checks = self.password_checks();
            if let Some(wait) = checks.backoff(&key) {
                Err(format!(
                    "too many failed password checks from {key}; refused for {} s more",
                    wait.as_secs() + 1
                ))
            } else {
                let _turn = checks.turn().await;
                let creds = meta.credentials.clone();
                let checked = tokio::task::spawn_blocking(move || authn.authenticate(&creds))
                    .await
                    .map_err(|e| format!("the password check failed: {e}"))
                    .and_then(|r| r.map_err(|e| e.to_string()));
                match &checked {
                    Ok(_) => checks.succeeded(&key),
                    Err(_) => checks.failed(&key),
                }
                checked
            }
        } else {
            authn
                .authenticate(&meta.credentials)
                .map_err(|e| e.to_string())
        };
        match result {
            Ok(p) => Ok(Call {
                rpc,
                principal: Arc::new(p),
                client: meta.client,
                started,
                trace: meta.trace,
                deadline: meta.deadline,
            }),
            Err(reason) => {
                tracing::warn!(rpc = %rpc, client = ?meta.client, reason = %reason, "authentication failed");
                let status = Status::unauthenticated(
                    "authentication failed: send valid credentials (Basic user:password, or a Bearer token)",
                );
                self.audit().write(AuditRecord {
                    client: meta.client,
                    rpc: rpc.name(),
                    decision: "deny",
                    status: code_name(status.code()),
                    error: Some(status.message().to_string()),
                    duration_ms: started.elapsed().as_millis() as u64,
                    ..AuditRecord::default()
                });
                Err(status)
            }
        }
    }

    /// Authenticates a call that does nothing else worth recording (the Catalog service's
    /// listings) and records it.
    pub async fn authenticate_and_record(&self, rpc: Rpc, meta: CallMeta) -> Result<Call, Status> {
        let call = self.authenticate(rpc, meta).await?;
        self.record(&call, Outcome::default(), None);
        Ok(call)
    }

    /// What the caller may see of the mesh serving now.
    pub fn view(&self, call: &Call) -> CatalogView {
        self.engine().view(&call.principal)
    }

    /// Records a finished call: metrics, usage (queries), and the audit log.
    pub fn record(&self, call: &Call, outcome: Outcome, failure: Option<&Status>) {
        self.metrics().request();
        // A query is counted once: when its result stream ends, or when planning it fails.
        let counted = call.rpc.executes_query() || (failure.is_some() && call.rpc.plans_query());
        let status_name = failure.map_or_else(|| "Ok".to_string(), |s| code_name(s.code()));
        if counted {
            let elapsed = call.started.elapsed();
            self.metrics().query_finished(
                &call.principal.name,
                &status_name,
                elapsed,
                outcome.rows,
                outcome.bytes,
                outcome.ports.keys(),
            );
            let start = chrono::Utc::now()
                - chrono::Duration::from_std(elapsed).unwrap_or_else(|_| chrono::Duration::zero());
            self.usage().record(crate::usage::QueryRecord {
                id: uuid::Uuid::new_v4().to_string(),
                principal: call.principal.name.clone(),
                start_us: start.timestamp_micros(),
                duration_ms: elapsed.as_millis() as u64,
                status: status_name.clone(),
                ports: outcome.ports.keys().cloned().collect(),
                rows: outcome.rows,
                bytes: outcome.bytes,
                source_bytes: outcome.source_bytes.clone(),
                cpu_ms: outcome.cpu_ms,
            });
        }
        if !self.audit().enabled() {
            return;
        }
        let denied = failure.is_some_and(|s| {
            matches!(
                s.code(),
                tonic::Code::PermissionDenied | tonic::Code::Unauthenticated
            )
        });
        self.audit().write(AuditRecord {
            principal: Some(call.principal.name.clone()),
            auth_method: Some(call.principal.method.as_str()),
            client: call.client.clone(),
            rpc: call.rpc.name(),
            sql: outcome.sql,
            ports: outcome
                .ports
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            decision: if denied { "deny" } else { "allow" },
            status: status_name,
            error: failure.map(|s| s.message().to_string()),
            rows: outcome.rows,
            bytes: outcome.bytes,
            duration_ms: call.started.elapsed().as_millis() as u64,
            ..AuditRecord::default()
        });
    }

    /// Records a finished call and passes its result on as a gRPC result.
    pub fn finish<T>(
        &self,
        call: &Call,
        outcome: Outcome,
        result: Result<T, GatewayError>,
    ) -> Result<T, Status> {
        match result {
            Ok(v) => {
                self.record(call, outcome, None);
                Ok(v)
            }
            Err(e) => {
                let status = Status::from(e);
                self.record(call, outcome, Some(&status));
                Err(status)
            }
        }
    }

    /// Plans `sql` with `params` for the caller (GetFlightInfo); the ports it reads go to
    /// `outcome`.
    pub async fn plan(
        &self,
        call: &Call,
        sql: &str,
        params: Option<&RecordBatch>,
        outcome: &mut Outcome,
    ) -> Result<PlannedQuery, GatewayError> {
        let values = match params {
            Some(b) => params_from_batch(b)?,
            None => vec![],
        };
        let span = call.span(sql);
        let planned = self
            .engine()
            .plan(sql, values, &call.principal)
            .instrument(span.clone())
            .await;
        span.record("status", if planned.is_ok() { "ok" } else { "error" });
        let planned = planned?;
        outcome.ports = planned.reads.clone();
        Ok(planned)
    }

    /// Plans and executes a query (DoGet). Execution runs on the execution runtime and
    /// stops when the receiver is dropped; the call is recorded when the result ends.
    /// Returns the result schema and the batches as they come.
    pub async fn execute(
        self: &Arc<Self>,
        call: Call,
        sql: &str,
        params: Option<RecordBatch>,
    ) -> Result<(SchemaRef, ResultBatches), Status> {
        self.execute_ticket(call, sql, params, None).await
    }

    /// [`Self::execute`] for a ticket: CancelFlightInfo with a FlightInfo holding `ticket`
    /// stops the query (and a ticket cancelled before it ran is refused).
    pub async fn execute_ticket(
        self: &Arc<Self>,
        call: Call,
        sql: &str,
        params: Option<RecordBatch>,
        ticket: Option<&[u8]>,
    ) -> Result<(SchemaRef, ResultBatches), Status> {
        let registration = match ticket {
            Some(t) => match self.queries().start(t, &call.principal.name) {
                Some(r) => Some(r),
                None => {
                    return self.finish(
                        &call,
                        Outcome::sql(sql),
                        Err(GatewayError::BadRequest(
                            "the query was cancelled (CancelFlightInfo) before it ran".into(),
                        )),
                    )
                }
            },
            None => None,
        };
        let values = match &params {
            Some(b) => params_from_batch(b),
            None => Ok(vec![]),
        };
        let span = call.span(sql);
        let planned = match values {
            Ok(values) => {
                self.engine()
                    .plan(sql, values, &call.principal)
                    .instrument(span.clone())
                    .await
            }
            Err(e) => Err(e),
        };
        let mut outcome = Outcome::sql(sql);
        if self.draining() {
            return self.finish(
                &call,
                outcome,
                Err(GatewayError::Unavailable(
                    "the gateway is shutting down; retry on another replica".into(),
                )),
            );
        }
        let planned = match planned {
            Ok(p) => p,
            Err(e) => {
                span.record("status", code_name(Status::from(e.clone()).code()).as_str());
                return self.finish(&call, outcome, Err(e));
            }
        };
        outcome.ports = planned.reads.clone();
        // The query's time budget: the server's limit, or the client's shorter deadline.
        let engine = self.engine();
        let max_time = engine.admission().limits().max_query_time;
        let (budget, whose) = match call.deadline {
            Some(d) if d < max_time => (d, "the client's deadline".to_string()),
            _ => (
                max_time,
                format!("limits.max_query_time_s = {}", max_time.as_secs()),
            ),
        };
        let deadline = tokio::time::Instant::from_std(call.started + budget);
        // Queries that read no source port (metadata tables, constants) take no slot.
        let permit = if takes_a_slot(&planned) {
            let admitted =
                tokio::time::timeout_at(deadline, engine.admission().admit(&call.principal)).await;
            match admitted {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => return self.finish(&call, outcome, Err(e)),
                Err(_) => {
                    let e = GatewayError::Timeout(format!(
                        "the query waited for a slot past {whose} ({} ms)",
                        budget.as_millis()
                    ));
                    return self.finish(&call, outcome, Err(e));
                }
            }
        } else {
            Permit::free()
        };
        drop(engine);
        let schema = Arc::clone(&planned.wire_schema);
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let sql_for_log = sql.chars().take(200).collect::<String>();
        let plan_for_log = Arc::clone(&planned.plan);
        let state = Arc::clone(self);
        // A panic while executing must not look like the end of the result: report it.
        let panic_tx = tx.clone();
        let active = self.metrics().query_started();
        let stream_span = tracing::info_span!(parent: &span, "stream");
        let query_span = span;
        let stopping = self.stopping();
        let cancel_rx = registration.as_ref().map(|r| r.cancelled.clone());
        let cancelled = async move {
            match cancel_rx {
                Some(mut rx) => {
                    if rx.wait_for(|c| *c).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        self.exec().spawn(async move {
            // Cancellable until the task ends.
            let _registration = registration;
            let _active = active;
            let run = async move {
                let permit = permit;
                let mut stream = match execute(planned) {
                    Ok(s) => s,
                    Err(e) => {
                        let status = Status::from(e);
                        state.record(&call, outcome, Some(&status));
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                let (mut rows, mut bytes) = (0u64, 0u64);
                let mut failure: Option<Status> = None;
                // Why the query may stop before its end, the client going away aside.
                let stop_reason = async move {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => Stop::OverTime,
                        () = stopping => Stop::Shutdown,
                        () = cancelled => Stop::Cancelled,
                    }
                };
                tokio::pin!(stop_reason);
                let mut stop = None;
                loop {
                    // Stop as soon as the client goes away, even while an operator is still
                    // working towards its first batch: dropping the stream cancels the plan.
                    let next = tokio::select! {
                        next = stream.next() => next,
                        () = tx.closed() => {
                            failure = Some(Status::cancelled("client went away"));
                            tracing::info!(sql = %sql_for_log, rows, "client went away; query stopped");
                            break;
                        }
                        s = &mut stop_reason => {
                            stop = Some(s);
                            break;
                        }
                    };
                    let Some(item) = next else { break };
                    let item = item.map_err(|e| Status::from(GatewayError::from(e)));
                    match &item {
                        Ok(b) => {
                            rows += b.num_rows() as u64;
                            bytes += b.get_array_memory_size() as u64;
                        }
                        Err(s) => failure = Some(s.clone()),
                    }
                    let failed = item.is_err();
                    // A client that stops reading holds the query only until it must stop.
                    let sent = tokio::select! {
                        sent = tx.send(item) => sent,
                        s = &mut stop_reason => {
                            stop = Some(s);
                            break;
                        }
                    };
                    if sent.is_err() {
                        failure = Some(Status::cancelled("client went away"));
                        tracing::info!(sql = %sql_for_log, rows, "client went away; query stopped");
                        break;
                    }
                    if failed {
                        break;
                    }
                }
                if let Some(stop) = stop {
                    // Stop the work (sources included) and give the slot back first; the
                    // client gets the error when it reads on.
                    drop(stream);
                    drop(permit);
                    let status = match stop {
                        Stop::OverTime => Status::from(GatewayError::Timeout(format!(
                            "the query ran longer than {whose} ({} s) and was stopped",
                            budget.as_secs_f64()
                        ))),
                        Stop::Shutdown => Status::unavailable(
                            "the gateway shut down before the query ended; run it again",
                        ),
                        Stop::Cancelled => {
                            Status::cancelled("the query was cancelled (CancelFlightInfo)")
                        }
                    };
                    tracing::info!(sql = %sql_for_log, rows, reason = status.message(), "query stopped");
                    failure = Some(status.clone());
                    let _ = tx.send(Err(status)).await;
                }
                let reads = source_reads(&plan_for_log);
                for (source, (r, b)) in &reads {
                    state.metrics().source_read(source, *r as u64, *b as u64);
                    outcome.source_bytes.insert(source.clone(), *b as u64);
                }
                outcome.cpu_ms = compute_nanos(&plan_for_log) / 1_000_000;
                let sources = format_source_reads(&reads);
                tracing::info!(sql = %sql_for_log, principal = %call.principal.name, rows, ok = failure.is_none(), elapsed_ms = call.started.elapsed().as_millis() as u64, sources = %sources, "query finished");
                outcome.rows = rows;
                outcome.bytes = bytes;
                query_span.record("rows", rows);
                query_span.record(
                    "status",
                    failure
                        .as_ref()
                        .map_or_else(|| "OK".to_string(), |s| code_name(s.code()))
                        .as_str(),
                );
                state.record(&call, outcome, failure.as_ref());
            }
            .instrument(stream_span);
            if std::panic::AssertUnwindSafe(run).catch_unwind().await.is_err() {
                let e = GatewayError::internal("a query panicked while executing");
                let _ = panic_tx.send(Err(Status::from(e))).await;
            }
        });
        Ok((schema, rx))
    }
}
