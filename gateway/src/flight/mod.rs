//! The Flight SQL service. One module per command family; this file holds the state and
//! the trait implementation that dispatches to them.

mod metadata;
mod prepared;
mod sql_info;

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionBeginTransactionRequest, ActionBeginTransactionResult,
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetCrossReference,
    CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandStatementQuery, CommandStatementSubstraitPlan,
    DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use datafusion::arrow::record_batch::RecordBatch;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use meshgate_proto::v1::{PreparedStatementHandle, StatementTicket};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument as _;

use crate::error::GatewayError;
use crate::query::source_reads::{format_source_reads, source_reads};
use crate::query::{execute, params_from_batch, QueryEngine};
use crate::security::audit::{code_name, AuditLog, AuditRecord};
use crate::security::authn::{Authenticator, Credentials};
use crate::security::cert::subject_cn;
use crate::security::signing::{now_ms, BlobKind, TicketSigner};
use crate::security::Principal;
use prepared::PreparedStore;

pub use metadata::{foreign_keys_result_schema, primary_keys_result_schema, TABLE_TYPE};

/// Settings of the Flight SQL service.
#[derive(Debug, Clone)]
pub struct FlightSettings {
    /// Largest Flight data message sent (clients refuse messages over 16 MiB by default).
    pub max_message_bytes: usize,
    /// How long a ticket stays valid after GetFlightInfo.
    pub ticket_ttl: Duration,
    /// Secret the ticket signing key is derived from; replicas behind one load balancer need
    /// the same one. `None`: a random key per process (tickets do not survive a restart).
    pub ticket_secret: Option<Vec<u8>>,
    /// How long an unused prepared statement lives.
    pub prepared_ttl: Duration,
    /// Most open prepared statements.
    pub max_prepared: usize,
    /// Audit log destination overriding the mesh's `audit` (the `--audit-log` flag).
    pub audit: Option<meshgate_config::AuditTarget>,
    /// State directory overriding the mesh's `state_dir` (the `--state-dir` flag).
    pub state_dir: Option<std::path::PathBuf>,
}

impl Default for FlightSettings {
    fn default() -> Self {
        Self {
            max_message_bytes: 2 << 20,
            ticket_ttl: Duration::from_secs(3600),
            ticket_secret: None,
            prepared_ttl: Duration::from_secs(1800),
            max_prepared: 10_000,
            audit: None,
            state_dir: None,
        }
    }
}

/// Shared state of the service.
struct State {
    engine: RwLock<Arc<QueryEngine>>,
    authn: RwLock<Arc<Authenticator>>,
    audit: AuditLog,
    metrics: Arc<crate::metrics::Metrics>,
    usage: Arc<crate::usage::Usage>,
    signer: TicketSigner,
    prepared: PreparedStore,
    sql_info: SqlInfoData,
    xdbc: XdbcTypeInfoData,
    settings: FlightSettings,
    exec: tokio::runtime::Handle,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("settings", &self.settings)
            .field("prepared", &self.prepared)
            .finish_non_exhaustive()
    }
}

/// An authenticated call: who, from where, since when.
#[derive(Debug, Clone)]
struct Caller {
    principal: Arc<Principal>,
    client: Option<String>,
    started: Instant,
    /// The client's trace context, parent of the call's span.
    trace: crate::telemetry::RemoteParent,
}

impl Caller {
    /// The span of a query call: a child of the client's trace when it sent one.
    fn span(&self, name: &'static str, rpc: &'static str, sql: &str) -> tracing::Span {
        let span = match name {
            "query" => tracing::info_span!(
                "query",
                rpc,
                principal = %self.principal.name,
                sql = %sql.chars().take(2000).collect::<String>(),
                rows = tracing::field::Empty,
                status = tracing::field::Empty,
            ),
            _ => tracing::info_span!(
                "flight_info",
                rpc,
                principal = %self.principal.name,
                sql = %sql.chars().take(2000).collect::<String>(),
                status = tracing::field::Empty,
            ),
        };
        self.trace.adopt(&span);
        span
    }
}

/// What a finished call did, for its audit record.
#[derive(Debug, Default)]
struct Outcome {
    sql: Option<String>,
    ports: BTreeMap<String, BTreeSet<String>>,
    rows: u64,
    bytes: u64,
    source_bytes: BTreeMap<String, u64>,
    cpu_ms: u64,
}

impl State {
    fn record(&self, caller: &Caller, rpc: &str, outcome: Outcome, status: Option<&Status>) {
        self.metrics.request();
        // A query is counted once: when its result stream ends, or when planning it fails.
        let executed = rpc == "DoGet/Statement" || rpc == "DoGet/PreparedStatement";
        let planning_failed = status.is_some()
            && matches!(
                rpc,
                "GetFlightInfo/Statement"
                    | "GetFlightInfo/PreparedStatement"
                    | "DoAction/CreatePreparedStatement"
            );
        if executed || planning_failed {
            let status_name = status.map_or_else(|| "Ok".to_string(), |s| code_name(s.code()));
            let elapsed = caller.started.elapsed();
            self.metrics.query_finished(
                &caller.principal.name,
                &status_name,
                elapsed,
                outcome.rows,
                outcome.bytes,
                outcome.ports.keys(),
            );
            let start = chrono::Utc::now()
                - chrono::Duration::from_std(elapsed).unwrap_or_else(|_| chrono::Duration::zero());
            self.usage.record(crate::usage::QueryRecord {
                id: uuid::Uuid::new_v4().to_string(),
                principal: caller.principal.name.clone(),
                start_us: start.timestamp_micros(),
                duration_ms: elapsed.as_millis() as u64,
                status: status_name,
                ports: outcome.ports.keys().cloned().collect(),
                rows: outcome.rows,
                bytes: outcome.bytes,
                source_bytes: outcome.source_bytes.clone(),
                cpu_ms: outcome.cpu_ms,
            });
        }
        if !self.audit.enabled() {
            return;
        }
        let denied = status.is_some_and(|s| {
            matches!(
                s.code(),
                tonic::Code::PermissionDenied | tonic::Code::Unauthenticated
            )
        });
        self.audit.write(AuditRecord {
            principal: Some(caller.principal.name.clone()),
            auth_method: Some(caller.principal.method.as_str()),
            client: caller.client.clone(),
            rpc: rpc.to_string(),
            sql: outcome.sql,
            ports: outcome.ports,
            decision: if denied { "deny" } else { "allow" },
            status: status.map_or_else(|| "Ok".to_string(), |s| code_name(s.code())),
            error: status.map(|s| s.message().to_string()),
            rows: outcome.rows,
            bytes: outcome.bytes,
            duration_ms: caller.started.elapsed().as_millis() as u64,
            ..AuditRecord::default()
        });
    }
}

/// The Flight SQL service of the gateway. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MeshFlightSqlService {
    state: Arc<State>,
}

type DoGetStream =
    Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

fn schema_bytes(schema: &Schema) -> Result<Vec<u8>, GatewayError> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into()?;
    Ok(bytes.to_vec())
}

fn batch_to_ipc(batch: &RecordBatch) -> Result<Vec<u8>, GatewayError> {
    let mut buf = Vec::new();
    let mut w = StreamWriter::try_new(&mut buf, &batch.schema())?;
    w.write(batch)?;
    w.finish()?;
    drop(w);
    Ok(buf)
}

fn batch_from_ipc(bytes: &[u8]) -> Result<Option<RecordBatch>, GatewayError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let reader = StreamReader::try_new(bytes, None)
        .map_err(|e| GatewayError::BadRequest(format!("invalid parameters in ticket: {e}")))?;
    reader
        .into_iter()
        .next()
        .transpose()
        .map_err(|e| GatewayError::BadRequest(format!("invalid parameters in ticket: {e}")))
}

fn credentials<T>(request: &Request<T>) -> Credentials {
    Credentials {
        authorization: request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        client_cn: request
            .peer_certs()
            .and_then(|certs| certs.first().and_then(|c| subject_cn(c.as_ref()))),
        assertion: request
            .metadata()
            .get("x-meshgate-assertion")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
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

fn not_yours(what: &str) -> GatewayError {
    GatewayError::PermissionDenied(format!(
        "this {what} was issued to another principal; run the statement yourself"
    ))
}

impl MeshFlightSqlService {
    /// A service over `engine`; queries execute on `exec` (a runtime apart from gRPC I/O).
    pub fn new(
        engine: Arc<QueryEngine>,
        settings: FlightSettings,
        exec: tokio::runtime::Handle,
    ) -> Result<Self, GatewayError> {
        let session = engine.session();
        let signer = match &settings.ticket_secret {
            Some(secret) => TicketSigner::from_secret(secret, settings.ticket_ttl),
            None => TicketSigner::random(settings.ticket_ttl),
        };
        let mesh = Arc::clone(&engine.catalog().mesh);
        let authn = Authenticator::new(&mesh.auth, signer.clone())
            .map_err(|e| GatewayError::BadRequest(format!("invalid auth settings: {e}")))?;
        if !authn.accepts_anyone() {
            tracing::warn!("mesh.yaml declares no users, tokens, JWT issuer, client CA or anonymous access: every request will be refused");
        }
        let audit_target = settings.audit.clone().or_else(|| mesh.audit.clone());
        let audit = AuditLog::open(audit_target.as_ref()).map_err(|e| {
            GatewayError::Unavailable(format!("cannot open the audit log {audit_target:?}: {e}"))
        })?;
        let usage = match settings
            .state_dir
            .clone()
            .or_else(|| mesh.state_dir.clone())
        {
            Some(dir) => crate::usage::Usage::open(&dir).map_err(|e| {
                GatewayError::Unavailable(format!(
                    "cannot open the state directory {}: {e}",
                    dir.display()
                ))
            })?,
            None => {
                tracing::info!("no state_dir: usage is kept in memory and lost on restart");
                crate::usage::Usage::in_memory()
            }
        };
        let usage = Arc::new(usage);
        engine.attach_usage(Arc::clone(&usage));
        let metrics = Arc::new(crate::metrics::Metrics::default());
        engine.attach_metrics(Arc::clone(&metrics));
        let state = State {
            sql_info: sql_info::sql_info_data(&session),
            xdbc: sql_info::xdbc_type_info_data(),
            engine: RwLock::new(engine),
            authn: RwLock::new(Arc::new(authn)),
            audit,
            metrics,
            usage,
            signer,
            prepared: PreparedStore::new(settings.prepared_ttl, settings.max_prepared),
            settings,
            exec,
        };
        Ok(Self {
            state: Arc::new(state),
        })
    }

    /// The engine serving now.
    pub fn engine(&self) -> Arc<QueryEngine> {
        Arc::clone(&self.state.engine.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Authenticates a call of another service on this port (the Catalog service), with its
    /// audit record; the principal, or `Unauthenticated`.
    pub fn authenticate<T>(
        &self,
        request: &Request<T>,
        rpc: &str,
    ) -> Result<Arc<Principal>, Status> {
        let caller = self.caller(request, rpc)?;
        self.state.record(&caller, rpc, Outcome::default(), None);
        Ok(caller.principal)
    }

    /// The usage store.
    pub fn usage(&self) -> Arc<crate::usage::Usage> {
        Arc::clone(&self.state.usage)
    }

    /// The gateway's metrics.
    pub fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        Arc::clone(&self.state.metrics)
    }

    fn authn(&self) -> Arc<Authenticator> {
        Arc::clone(&self.state.authn.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Swaps in a new engine (and the authentication settings of its mesh); running queries
    /// keep the one they started with.
    pub fn replace_engine(&self, engine: Arc<QueryEngine>) -> Result<(), GatewayError> {
        let authn = Authenticator::new(&engine.catalog().mesh.auth, self.state.signer.clone())
            .map_err(|e| GatewayError::BadRequest(format!("invalid auth settings: {e}")))?;
        engine.attach_usage(Arc::clone(&self.state.usage));
        engine.attach_metrics(Arc::clone(&self.state.metrics));
        *self.state.authn.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(authn);
        *self.state.engine.write().unwrap_or_else(|p| p.into_inner()) = engine;
        Ok(())
    }

    /// Authenticates a call. Failures answer `Unauthenticated` without detail; the reason
    /// goes to the log and the audit log.
    fn caller<T>(&self, request: &Request<T>, rpc: &str) -> Result<Caller, Status> {
        let client = request.remote_addr().map(|a| a.to_string());
        let started = Instant::now();
        match self.authn().authenticate(&credentials(request)) {
            Ok(p) => Ok(Caller {
                principal: Arc::new(p),
                client,
                started,
                trace: crate::telemetry::RemoteParent::from_metadata(request.metadata()),
            }),
            Err(reason) => {
                tracing::warn!(rpc, client = ?client, reason = %reason, "authentication failed");
                let status = Status::unauthenticated(
                    "authentication failed: send valid credentials (Basic user:password, or a Bearer token)",
                );
                self.state.audit.write(AuditRecord {
                    client,
                    rpc: rpc.to_string(),
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

    /// Writes the audit record of a finished call and passes its result on.
    fn finish<T>(
        &self,
        caller: &Caller,
        rpc: &str,
        outcome: Outcome,
        result: Result<T, GatewayError>,
    ) -> Result<T, Status> {
        match result {
            Ok(v) => {
                self.state.record(caller, rpc, outcome, None);
                Ok(v)
            }
            Err(e) => {
                let status = Status::from(e);
                self.state.record(caller, rpc, outcome, Some(&status));
                Err(status)
            }
        }
    }

    fn flight_info(
        &self,
        schema: &Schema,
        ticket: Vec<u8>,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, GatewayError> {
        // One endpoint with no location: "this server", whatever address the client used.
        let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket));
        Ok(FlightInfo::new()
            .try_with_schema(schema)?
            .with_endpoint(endpoint)
            .with_descriptor(descriptor)
            .with_total_records(-1)
            .with_total_bytes(-1))
    }

    fn metadata_info(
        &self,
        cmd: impl ProstMessageExt,
        schema: SchemaRef,
        request: Request<FlightDescriptor>,
        rpc: &str,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request, rpc)?;
        let ticket = cmd.as_any().encode_to_vec();
        let info = self.flight_info(&schema, ticket, request.into_inner());
        self.finish(&caller, rpc, Outcome::default(), info)
            .map(Response::new)
    }

    /// Streams one metadata batch to an authenticated caller, with its audit record.
    fn metadata_batch<T>(
        &self,
        request: &Request<T>,
        rpc: &str,
        build: impl FnOnce(&QueryEngine, &Principal) -> Result<RecordBatch, GatewayError>,
    ) -> Result<Response<DoGetStream>, Status> {
        let caller = self.caller(request, rpc)?;
        let engine = self.engine();
        let batch = build(&engine, &caller.principal);
        let outcome = Outcome {
            rows: batch.as_ref().map_or(0, |b| b.num_rows() as u64),
            bytes: batch
                .as_ref()
                .map_or(0, |b| b.get_array_memory_size() as u64),
            ..Outcome::default()
        };
        let batch = self.finish(&caller, rpc, outcome, batch)?;
        Ok(self.stream_batch(batch))
    }

    fn stream_batch(&self, batch: RecordBatch) -> Response<DoGetStream> {
        let schema = batch.schema();
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .with_max_flight_data_size(self.state.settings.max_message_bytes)
            .build(futures::stream::iter([Ok(batch)]))
            .map_err(Status::from);
        Response::new(Box::pin(stream))
    }

    /// Plans `sql` with `params` for `caller` and signs a ticket bound to it.
    async fn statement_info(
        &self,
        caller: &Caller,
        sql: &str,
        params: Option<RecordBatch>,
        descriptor: FlightDescriptor,
        outcome: &mut Outcome,
    ) -> Result<FlightInfo, GatewayError> {
        let values = match &params {
            Some(b) => params_from_batch(b)?,
            None => vec![],
        };
        let span = caller.span("flight_info", "GetFlightInfo", sql);
        let planned = self
            .engine()
            .plan(sql, values, &caller.principal)
            .instrument(span.clone())
            .await;
        span.record("status", if planned.is_ok() { "ok" } else { "error" });
        let planned = planned?;
        outcome.ports = planned.reads.clone();
        let ticket = StatementTicket {
            sql: sql.to_string(),
            parameters: match &params {
                Some(b) => batch_to_ipc(b)?,
                None => vec![],
            },
            issued_at_ms: now_ms(),
            principal: caller.principal.name.clone(),
        };
        let handle = self.state.signer.sign(BlobKind::Ticket, &ticket);
        let ticket = TicketStatementQuery {
            statement_handle: handle.into(),
        }
        .as_any()
        .encode_to_vec();
        self.flight_info(&planned.wire_schema, ticket, descriptor)
    }

    /// Plans and streams a query; execution runs on the execution runtime and stops when the
    /// client drops the stream. The audit record is written when the stream ends.
    async fn run(
        &self,
        caller: Caller,
        rpc: &'static str,
        sql: &str,
        params: Option<RecordBatch>,
    ) -> Result<Response<DoGetStream>, Status> {
        let values = match &params {
            Some(b) => params_from_batch(b),
            None => Ok(vec![]),
        };
        let span = caller.span("query", rpc, sql);
        let planned = match values {
            Ok(values) => {
                self.engine()
                    .plan(sql, values, &caller.principal)
                    .instrument(span.clone())
                    .await
            }
            Err(e) => Err(e),
        };
        let mut outcome = Outcome {
            sql: Some(sql.to_string()),
            ..Outcome::default()
        };
        let planned = match planned {
            Ok(p) => p,
            Err(e) => {
                span.record("status", code_name(Status::from(e.clone()).code()).as_str());
                return self.finish(&caller, rpc, outcome, Err(e));
            }
        };
        outcome.ports = planned.reads.clone();
        let schema = Arc::clone(&planned.wire_schema);
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let sql_for_log = sql.chars().take(200).collect::<String>();
        let plan_for_log = Arc::clone(&planned.plan);
        let principal = caller.principal.name.clone();
        let state = Arc::clone(&self.state);
        // A panic while executing must not look like the end of the result: report it.
        let panic_tx = tx.clone();
        let active = self.state.metrics.query_started();
        let stream_span = tracing::info_span!(parent: &span, "stream");
        let query_span = span;
        self.state.exec.spawn(async move {
            let _active = active;
            let run = async move {
                let mut stream = match execute(planned) {
                    Ok(s) => s,
                    Err(e) => {
                        let status = Status::from(e);
                        state.record(&caller, rpc, outcome, Some(&status));
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                let (mut rows, mut bytes) = (0u64, 0u64);
                let mut failure: Option<Status> = None;
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
                    if tx.send(item).await.is_err() {
                        failure = Some(Status::cancelled("client went away"));
                        tracing::info!(sql = %sql_for_log, rows, "client went away; query stopped");
                        break;
                    }
                    if failed {
                        break;
                    }
                }
                let reads = source_reads(&plan_for_log);
                for (source, (r, b)) in &reads {
                    state.metrics.source_read(source, *r as u64, *b as u64);
                    outcome.source_bytes.insert(source.clone(), *b as u64);
                }
                outcome.cpu_ms = compute_nanos(&plan_for_log) / 1_000_000;
                let sources = format_source_reads(&reads);
                tracing::info!(sql = %sql_for_log, principal = %principal, rows, ok = failure.is_none(), elapsed_ms = caller.started.elapsed().as_millis() as u64, sources = %sources, "query finished");
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
                state.record(&caller, rpc, outcome, failure.as_ref());
            }
            .instrument(stream_span);
            if std::panic::AssertUnwindSafe(run).catch_unwind().await.is_err() {
                let e = GatewayError::internal("a query panicked while executing");
                let _ = panic_tx.send(Err(Status::from(e))).await;
            }
        });
        let batches = tokio_stream::wrappers::ReceiverStream::new(rx)
            .map_err(|s| FlightError::Tonic(Box::new(s)));
        let flight = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .with_max_flight_data_size(self.state.settings.max_message_bytes)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(flight)))
    }

    /// Verifies a prepared statement handle and that `caller` owns it.
    fn prepared_handle(
        &self,
        blob: &[u8],
        caller: &Caller,
    ) -> Result<PreparedStatementHandle, GatewayError> {
        let h: PreparedStatementHandle =
            self.state.signer.verify(BlobKind::PreparedHandle, blob)?;
        if h.principal != caller.principal.name {
            return Err(not_yours("prepared statement handle"));
        }
        Ok(h)
    }
}

#[tonic::async_trait]
impl FlightSqlService for MeshFlightSqlService {
    type FlightService = MeshFlightSqlService;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let rpc = "Handshake";
        let caller = self.caller(&request, rpc)?;
        let token = self.authn().issue_session(&caller.principal);
        self.state.record(&caller, rpc, Outcome::default(), None);
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let stream: Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>> =
            Box::pin(futures::stream::iter([Ok(response)]));
        let mut resp = Response::new(stream);
        let header = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Status::internal("token encoding"))?;
        resp.metadata_mut().insert("authorization", header);
        Ok(resp)
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<DoGetStream>, Status> {
        let rpc = "DoGet";
        let caller = self.caller(&request, rpc)?;
        self.finish(
            &caller,
            rpc,
            Outcome::default(),
            Err(GatewayError::BadRequest(format!(
                "invalid ticket: `{}` is not a ticket issued by this gateway",
                message.type_url
            ))),
        )
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let rpc = "GetFlightInfo/Statement";
        let caller = self.caller(&request, rpc)?;
        let mut outcome = Outcome {
            sql: Some(query.query.clone()),
            ..Outcome::default()
        };
        let info = self
            .statement_info(
                &caller,
                &query.query,
                None,
                request.into_inner(),
                &mut outcome,
            )
            .await;
        self.finish(&caller, rpc, outcome, info).map(Response::new)
    }

    async fn get_flight_info_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let rpc = "GetFlightInfo/SubstraitPlan";
        let caller = self.caller(&request, rpc)?;
        self.finish(
            &caller,
            rpc,
            Outcome::default(),
            Err(GatewayError::Unimplemented(
                "Substrait plans are not accepted; send SQL".into(),
            )),
        )
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let rpc = "GetFlightInfo/PreparedStatement";
        let caller = self.caller(&request, rpc)?;
        let mut outcome = Outcome::default();
        let info = async {
            let handle = self.prepared_handle(&cmd.prepared_statement_handle, &caller)?;
            outcome.sql = Some(handle.sql.clone());
            let params = self.state.prepared.params(&handle.id)?;
            self.statement_info(
                &caller,
                &handle.sql,
                params,
                request.into_inner(),
                &mut outcome,
            )
            .await
        }
        .await;
        self.finish(&caller, rpc, outcome, info).map(Response::new)
    }

    async fn get_flight_info_catalogs(
        &self,
        q: CommandGetCatalogs,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = q.into_builder().schema();
        self.metadata_info(q, schema, r, "GetFlightInfo/Catalogs")
    }

    async fn get_flight_info_schemas(
        &self,
        q: CommandGetDbSchemas,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = q.clone().into_builder().schema();
        self.metadata_info(q, schema, r, "GetFlightInfo/DbSchemas")
    }

    async fn get_flight_info_tables(
        &self,
        q: CommandGetTables,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = q.clone().into_builder().schema();
        self.metadata_info(q, schema, r, "GetFlightInfo/Tables")
    }

    async fn get_flight_info_table_types(
        &self,
        q: CommandGetTableTypes,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = q.into_builder().schema();
        self.metadata_info(q, schema, r, "GetFlightInfo/TableTypes")
    }

    async fn get_flight_info_sql_info(
        &self,
        q: CommandGetSqlInfo,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = q.clone().into_builder(&self.state.sql_info).schema();
        self.metadata_info(q, schema, r, "GetFlightInfo/SqlInfo")
    }

    async fn get_flight_info_primary_keys(
        &self,
        q: CommandGetPrimaryKeys,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_info(
            q,
            primary_keys_result_schema(),
            r,
            "GetFlightInfo/PrimaryKeys",
        )
    }

    async fn get_flight_info_exported_keys(
        &self,
        q: CommandGetExportedKeys,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_info(
            q,
            foreign_keys_result_schema(),
            r,
            "GetFlightInfo/ExportedKeys",
        )
    }

    async fn get_flight_info_imported_keys(
        &self,
        q: CommandGetImportedKeys,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_info(
            q,
            foreign_keys_result_schema(),
            r,
            "GetFlightInfo/ImportedKeys",
        )
    }

    async fn get_flight_info_cross_reference(
        &self,
        q: CommandGetCrossReference,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_info(
            q,
            foreign_keys_result_schema(),
            r,
            "GetFlightInfo/CrossReference",
        )
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        q: CommandGetXdbcTypeInfo,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = q.into_builder(&self.state.xdbc).schema();
        self.metadata_info(q, schema, r, "GetFlightInfo/XdbcTypeInfo")
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let rpc = "DoGet/Statement";
        let caller = self.caller(&request, rpc)?;
        let checked = (|| {
            let t: StatementTicket = self
                .state
                .signer
                .verify(BlobKind::Ticket, &ticket.statement_handle)?;
            if t.principal != caller.principal.name {
                return Err(not_yours("ticket"));
            }
            self.state.signer.check_fresh(t.issued_at_ms)?;
            let params = batch_from_ipc(&t.parameters)?;
            Ok((t.sql, params))
        })();
        let (sql, params) = match checked {
            Ok(v) => v,
            Err(e) => return self.finish(&caller, rpc, Outcome::default(), Err(e)),
        };
        self.run(caller, rpc, &sql, params).await
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let rpc = "DoGet/PreparedStatement";
        let caller = self.caller(&request, rpc)?;
        let checked = self
            .prepared_handle(&cmd.prepared_statement_handle, &caller)
            .and_then(|h| Ok((self.state.prepared.params(&h.id)?, h.sql)));
        let (params, sql) = match checked {
            Ok(v) => v,
            Err(e) => return self.finish(&caller, rpc, Outcome::default(), Err(e)),
        };
        self.run(caller, rpc, &sql, params).await
    }

    async fn do_get_catalogs(
        &self,
        _q: CommandGetCatalogs,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_batch(&r, "DoGet/Catalogs", |e, p| {
            metadata::catalogs(e.catalog(), &|d, s| e.policy().can_read_names(p, d, s))
        })
    }

    async fn do_get_schemas(
        &self,
        q: CommandGetDbSchemas,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_batch(&r, "DoGet/DbSchemas", |e, p| {
            metadata::schemas(e.catalog(), q, &|d, s| e.policy().can_read_names(p, d, s))
        })
    }

    async fn do_get_tables(
        &self,
        q: CommandGetTables,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_batch(&r, "DoGet/Tables", |e, p| {
            let system = crate::catalog::system::system_tables();
            metadata::tables(
                e.catalog(),
                q,
                &|d, s| e.policy().can_read_names(p, d, s),
                system,
            )
        })
    }

    async fn do_get_table_types(
        &self,
        q: CommandGetTableTypes,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_batch(&r, "DoGet/TableTypes", |_, _| {
            let mut b = q.into_builder();
            b.append(TABLE_TYPE);
            Ok(b.build()?)
        })
    }

    async fn do_get_sql_info(
        &self,
        q: CommandGetSqlInfo,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let info = &self.state.sql_info;
        self.metadata_batch(&r, "DoGet/SqlInfo", |_, _| {
            Ok(q.into_builder(info).build()?)
        })
    }

    async fn do_get_primary_keys(
        &self,
        q: CommandGetPrimaryKeys,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_batch(&r, "DoGet/PrimaryKeys", |e, p| {
            metadata::primary_keys(e.catalog(), &q, &|d, s| e.policy().can_read_names(p, d, s))
        })
    }

    async fn do_get_exported_keys(
        &self,
        q: CommandGetExportedKeys,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_batch(&r, "DoGet/ExportedKeys", |e, p| {
            metadata::exported_keys(e.catalog(), &q, &|d, s| e.policy().can_read_names(p, d, s))
        })
    }

    async fn do_get_imported_keys(
        &self,
        q: CommandGetImportedKeys,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_batch(&r, "DoGet/ImportedKeys", |e, p| {
            metadata::imported_keys(e.catalog(), &q, &|d, s| e.policy().can_read_names(p, d, s))
        })
    }

    async fn do_get_cross_reference(
        &self,
        q: CommandGetCrossReference,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_batch(&r, "DoGet/CrossReference", |e, p| {
            metadata::cross_reference(e.catalog(), &q, &|d, s| e.policy().can_read_names(p, d, s))
        })
    }

    async fn do_get_xdbc_type_info(
        &self,
        q: CommandGetXdbcTypeInfo,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let xdbc = &self.state.xdbc;
        self.metadata_batch(&r, "DoGet/XdbcTypeInfo", |_, _| {
            Ok(q.into_builder(xdbc).build()?)
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let rpc = "DoPut/PreparedStatementQuery";
        let caller = self.caller(&request, rpc)?;
        let handle = match self.prepared_handle(&cmd.prepared_statement_handle, &caller) {
            Ok(h) => h,
            Err(e) => return self.finish(&caller, rpc, Outcome::default(), Err(e)),
        };
        let outcome = Outcome {
            sql: Some(handle.sql.clone()),
            ..Outcome::default()
        };
        let flight = request
            .into_inner()
            .map_err(|s| FlightError::Tonic(Box::new(s)));
        // Parameter batches are untrusted input: arrow-ipc 59 can panic on malformed
        // flatbuffers, so decoding is contained per request.
        let decode = async move {
            let mut batches =
                arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(flight);
            let mut last = None;
            while let Some(b) = batches.next().await {
                let b = b.map_err(|e| {
                    GatewayError::BadRequest(format!("cannot read the parameter batch: {e}"))
                })?;
                if b.num_rows() > 0 {
                    if last.is_some() {
                        return Err(GatewayError::BadRequest(
                            "bind one row of parameters per execution".into(),
                        ));
                    }
                    last = Some(b);
                }
            }
            Ok(last)
        };
        let bound = async {
            let last = std::panic::AssertUnwindSafe(decode)
                .catch_unwind()
                .await
                .map_err(|_| {
                    GatewayError::BadRequest("the parameter batch is malformed".into())
                })??;
            let batch = last
                .ok_or_else(|| GatewayError::BadRequest("no parameter values were sent".into()))?;
            params_from_batch(&batch)?;
            self.state.prepared.bind(&handle.id, batch)
        }
        .await;
        self.finish(&caller, rpc, outcome, bound)?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(cmd.prepared_statement_handle),
        })
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let rpc = "DoAction/CreatePreparedStatement";
        let caller = self.caller(&request, rpc)?;
        let outcome = Outcome {
            sql: Some(query.query.clone()),
            ..Outcome::default()
        };
        let result = async {
            let described = self
                .engine()
                .describe(&query.query, &caller.principal)
                .await?;
            let id = uuid::Uuid::new_v4().as_bytes().to_vec();
            self.state.prepared.insert(id.clone());
            let handle = PreparedStatementHandle {
                id,
                sql: query.query.clone(),
                issued_at_ms: now_ms(),
                principal: caller.principal.name.clone(),
            };
            Ok(ActionCreatePreparedStatementResult {
                prepared_statement_handle: self
                    .state
                    .signer
                    .sign(BlobKind::PreparedHandle, &handle)
                    .into(),
                dataset_schema: schema_bytes(&described.dataset_schema)?.into(),
                parameter_schema: schema_bytes(&described.parameter_schema)?.into(),
            })
        }
        .await;
        self.finish(&caller, rpc, outcome, result)
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let rpc = "DoAction/ClosePreparedStatement";
        let caller = self.caller(&request, rpc)?;
        let result = self
            .prepared_handle(&query.prepared_statement_handle, &caller)
            .map(|h| self.state.prepared.remove(&h.id));
        self.finish(&caller, rpc, Outcome::default(), result)
    }

    async fn do_action_begin_transaction(
        &self,
        _query: ActionBeginTransactionRequest,
        request: Request<Action>,
    ) -> Result<ActionBeginTransactionResult, Status> {
        let rpc = "DoAction/BeginTransaction";
        let caller = self.caller(&request, rpc)?;
        self.finish(
            &caller,
            rpc,
            Outcome::default(),
            Err(GatewayError::Unimplemented(
                "transactions are not supported: meshgate is read-only".into(),
            )),
        )
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let rpc = "DoAction";
        let caller = self.caller(&request, rpc)?;
        let kind = request.get_ref().r#type.clone();
        self.finish(
            &caller,
            rpc,
            Outcome::default(),
            Err(GatewayError::Unimplemented(format!(
                "action `{kind}` is not supported"
            ))),
        )
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// Decodes a `google.protobuf.Any` command, for tests and tools.
pub fn decode_any(bytes: &[u8]) -> Result<Any, GatewayError> {
    Any::decode(bytes).map_err(|e| GatewayError::BadRequest(format!("invalid command: {e}")))
}
