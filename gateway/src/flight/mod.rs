//! The Flight SQL service. One module per command family; this file holds the state and
//! the trait implementation that dispatches to them.

mod metadata;
mod prepared;
mod sql_info;
pub mod tickets;

use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

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

use crate::error::GatewayError;
use crate::query::{execute, params_from_batch, QueryEngine};
use crate::source_reads::{format_source_reads, source_reads};
use prepared::PreparedStore;
use tickets::{now_ms, BlobKind, TicketSigner};

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
}

impl Default for FlightSettings {
    fn default() -> Self {
        Self {
            max_message_bytes: 2 << 20,
            ticket_ttl: Duration::from_secs(3600),
            ticket_secret: None,
            prepared_ttl: Duration::from_secs(1800),
            max_prepared: 10_000,
        }
    }
}

/// Shared state of the service.
struct State {
    engine: RwLock<Arc<QueryEngine>>,
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

impl MeshFlightSqlService {
    /// A service over `engine`; queries execute on `exec` (a runtime apart from gRPC I/O).
    pub fn new(
        engine: Arc<QueryEngine>,
        settings: FlightSettings,
        exec: tokio::runtime::Handle,
    ) -> Self {
        let session = engine.session();
        let state = State {
            sql_info: sql_info::sql_info_data(&session),
            xdbc: sql_info::xdbc_type_info_data(),
            engine: RwLock::new(engine),
            signer: match &settings.ticket_secret {
                Some(secret) => TicketSigner::from_secret(secret, settings.ticket_ttl),
                None => TicketSigner::random(settings.ticket_ttl),
            },
            prepared: PreparedStore::new(settings.prepared_ttl, settings.max_prepared),
            settings,
            exec,
        };
        Self {
            state: Arc::new(state),
        }
    }

    /// The engine serving now.
    pub fn engine(&self) -> Arc<QueryEngine> {
        Arc::clone(&self.state.engine.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Swaps in a new engine; running queries keep the one they started with.
    pub fn replace_engine(&self, engine: Arc<QueryEngine>) {
        *self.state.engine.write().unwrap_or_else(|p| p.into_inner()) = engine;
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
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = cmd.as_any().encode_to_vec();
        Ok(Response::new(self.flight_info(
            &schema,
            ticket,
            request.into_inner(),
        )?))
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

    /// Plans `sql` with `params` and signs a ticket for it.
    async fn statement_info(
        &self,
        sql: &str,
        params: Option<RecordBatch>,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, GatewayError> {
        let values = match &params {
            Some(b) => params_from_batch(b)?,
            None => vec![],
        };
        let planned = self.engine().plan(sql, values).await?;
        let ticket = StatementTicket {
            sql: sql.to_string(),
            parameters: match &params {
                Some(b) => batch_to_ipc(b)?,
                None => vec![],
            },
            issued_at_ms: now_ms(),
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
    /// client drops the stream.
    async fn run(
        &self,
        sql: &str,
        params: Option<RecordBatch>,
    ) -> Result<Response<DoGetStream>, GatewayError> {
        let values = match &params {
            Some(b) => params_from_batch(b)?,
            None => vec![],
        };
        let started = std::time::Instant::now();
        let planned = self.engine().plan(sql, values).await?;
        let schema = Arc::clone(&planned.wire_schema);
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let sql_for_log = sql.chars().take(200).collect::<String>();
        let plan_for_log = Arc::clone(&planned.plan);
        // A panic while executing must not look like the end of the result: report it.
        let panic_tx = tx.clone();
        self.state.exec.spawn(async move {
            let run = async move {
                let mut stream = match execute(planned) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(Status::from(e))).await;
                        return;
                    }
                };
                let (mut rows, mut ok) = (0usize, true);
                loop {
                    // Stop as soon as the client goes away, even while an operator is still
                    // working towards its first batch: dropping the stream cancels the plan.
                    let next = tokio::select! {
                        next = stream.next() => next,
                        () = tx.closed() => {
                            tracing::info!(sql = %sql_for_log, rows, "client went away; query stopped");
                            return;
                        }
                    };
                    let Some(item) = next else { break };
                    let item = item.map_err(|e| Status::from(GatewayError::from(e)));
                    match &item {
                        Ok(b) => rows += b.num_rows(),
                        Err(_) => ok = false,
                    }
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() {
                        tracing::info!(sql = %sql_for_log, rows, "client went away; query stopped");
                        return;
                    }
                    if failed {
                        break;
                    }
                }
                let sources = format_source_reads(&source_reads(&plan_for_log));
                tracing::info!(sql = %sql_for_log, rows, ok, elapsed_ms = started.elapsed().as_millis() as u64, sources = %sources, "query finished");
            };
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

    fn prepared_handle(&self, blob: &[u8]) -> Result<PreparedStatementHandle, GatewayError> {
        self.state.signer.verify(BlobKind::PreparedHandle, blob)
    }
}

fn bearer_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
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
        // Authentication arrives with the security work; until then any credentials (or none)
        // are accepted and a session token is returned the way every client expects it.
        if let Some(v) = request.metadata().get("authorization") {
            let v = v.to_str().unwrap_or_default();
            if !(v.starts_with("Basic ") || v.starts_with("Bearer ")) {
                return Err(Status::unauthenticated(
                    "unsupported authorization scheme: use Basic or Bearer",
                ));
            }
        }
        let token = bearer_token();
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
        _request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<DoGetStream>, Status> {
        Err(GatewayError::BadRequest(format!(
            "invalid ticket: `{}` is not a ticket issued by this gateway",
            message.type_url
        ))
        .into())
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let info = self
            .statement_info(&query.query, None, request.into_inner())
            .await?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(GatewayError::Unimplemented("Substrait plans are not accepted; send SQL".into()).into())
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let handle = self.prepared_handle(&cmd.prepared_statement_handle)?;
        let params = self.state.prepared.params(&handle.id)?;
        let info = self
            .statement_info(&handle.sql, params, request.into_inner())
            .await?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_catalogs(
        &self,
        q: CommandGetCatalogs,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = q.into_builder().schema();
        self.metadata_info(q, schema, r)
    }

    async fn get_flight_info_schemas(
        &self,
        q: CommandGetDbSchemas,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = q.clone().into_builder().schema();
        self.metadata_info(q, schema, r)
    }

    async fn get_flight_info_tables(
        &self,
        q: CommandGetTables,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = q.clone().into_builder().schema();
        self.metadata_info(q, schema, r)
    }

    async fn get_flight_info_table_types(
        &self,
        q: CommandGetTableTypes,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = q.into_builder().schema();
        self.metadata_info(q, schema, r)
    }

    async fn get_flight_info_sql_info(
        &self,
        q: CommandGetSqlInfo,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = q.clone().into_builder(&self.state.sql_info).schema();
        self.metadata_info(q, schema, r)
    }

    async fn get_flight_info_primary_keys(
        &self,
        q: CommandGetPrimaryKeys,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_info(q, primary_keys_result_schema(), r)
    }

    async fn get_flight_info_exported_keys(
        &self,
        q: CommandGetExportedKeys,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_info(q, foreign_keys_result_schema(), r)
    }

    async fn get_flight_info_imported_keys(
        &self,
        q: CommandGetImportedKeys,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_info(q, foreign_keys_result_schema(), r)
    }

    async fn get_flight_info_cross_reference(
        &self,
        q: CommandGetCrossReference,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_info(q, foreign_keys_result_schema(), r)
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        q: CommandGetXdbcTypeInfo,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = q.into_builder(&self.state.xdbc).schema();
        self.metadata_info(q, schema, r)
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let t: StatementTicket = self
            .state
            .signer
            .verify(BlobKind::Ticket, &ticket.statement_handle)?;
        self.state.signer.check_fresh(t.issued_at_ms)?;
        let params = batch_from_ipc(&t.parameters)?;
        Ok(self.run(&t.sql, params).await?)
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let handle = self.prepared_handle(&cmd.prepared_statement_handle)?;
        let params = self.state.prepared.params(&handle.id)?;
        Ok(self.run(&handle.sql, params).await?)
    }

    async fn do_get_catalogs(
        &self,
        _q: CommandGetCatalogs,
        _r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        Ok(self.stream_batch(metadata::catalogs(self.engine().catalog())?))
    }

    async fn do_get_schemas(
        &self,
        q: CommandGetDbSchemas,
        _r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        Ok(self.stream_batch(metadata::schemas(self.engine().catalog(), q)?))
    }

    async fn do_get_tables(
        &self,
        q: CommandGetTables,
        _r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        Ok(self.stream_batch(metadata::tables(self.engine().catalog(), q)?))
    }

    async fn do_get_table_types(
        &self,
        q: CommandGetTableTypes,
        _r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut b = q.into_builder();
        b.append(TABLE_TYPE);
        Ok(self.stream_batch(b.build().map_err(GatewayError::from)?))
    }

    async fn do_get_sql_info(
        &self,
        q: CommandGetSqlInfo,
        _r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let batch = q
            .into_builder(&self.state.sql_info)
            .build()
            .map_err(GatewayError::from)?;
        Ok(self.stream_batch(batch))
    }

    async fn do_get_primary_keys(
        &self,
        q: CommandGetPrimaryKeys,
        _r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        Ok(self.stream_batch(metadata::primary_keys(self.engine().catalog(), &q)?))
    }

    async fn do_get_exported_keys(
        &self,
        q: CommandGetExportedKeys,
        _r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        Ok(self.stream_batch(metadata::exported_keys(self.engine().catalog(), &q)?))
    }

    async fn do_get_imported_keys(
        &self,
        q: CommandGetImportedKeys,
        _r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        Ok(self.stream_batch(metadata::imported_keys(self.engine().catalog(), &q)?))
    }

    async fn do_get_cross_reference(
        &self,
        q: CommandGetCrossReference,
        _r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        Ok(self.stream_batch(metadata::cross_reference(self.engine().catalog(), &q)?))
    }

    async fn do_get_xdbc_type_info(
        &self,
        q: CommandGetXdbcTypeInfo,
        _r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let batch = q
            .into_builder(&self.state.xdbc)
            .build()
            .map_err(GatewayError::from)?;
        Ok(self.stream_batch(batch))
    }

    async fn do_put_prepared_statement_query(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let handle = self.prepared_handle(&cmd.prepared_statement_handle)?;
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
        let last = std::panic::AssertUnwindSafe(decode)
            .catch_unwind()
            .await
            .map_err(|_| GatewayError::BadRequest("the parameter batch is malformed".into()))??;
        let batch =
            last.ok_or_else(|| GatewayError::BadRequest("no parameter values were sent".into()))?;
        params_from_batch(&batch)?;
        self.state.prepared.bind(&handle.id, batch)?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(cmd.prepared_statement_handle),
        })
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let described = self.engine().describe(&query.query).await?;
        let id = uuid::Uuid::new_v4().as_bytes().to_vec();
        self.state.prepared.insert(id.clone());
        let handle = PreparedStatementHandle {
            id,
            sql: query.query,
            issued_at_ms: now_ms(),
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

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        let handle = self.prepared_handle(&query.prepared_statement_handle)?;
        self.state.prepared.remove(&handle.id);
        Ok(())
    }

    async fn do_action_begin_transaction(
        &self,
        _query: ActionBeginTransactionRequest,
        _request: Request<Action>,
    ) -> Result<ActionBeginTransactionResult, Status> {
        Err(GatewayError::Unimplemented(
            "transactions are not supported: meshgate is read-only".into(),
        )
        .into())
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        Err(Status::unimplemented(format!(
            "action `{}` is not supported",
            request.get_ref().r#type
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// Decodes a `google.protobuf.Any` command, for tests and tools.
pub fn decode_any(bytes: &[u8]) -> Result<Any, GatewayError> {
    Any::decode(bytes).map_err(|e| GatewayError::BadRequest(format!("invalid command: {e}")))
}
