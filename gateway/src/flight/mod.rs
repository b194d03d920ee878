//! The Flight SQL service: decodes commands, delegates to the request path
//! ([`crate::request`]) and encodes results. One module per command family: statements
//! ([`statement`]), prepared statements ([`prepared`]), metadata listings ([`metadata`]) and
//! server information ([`sql_info`]); this file only dispatches.

mod guard;
mod metadata;
mod prepared;
mod sql_info;
mod statement;

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
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
    Ticket,
};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::catalog::view::CatalogView;
use crate::error::GatewayError;
use crate::request::{Call, CallMeta, Command, Outcome, Rpc};
use crate::state::GatewayState;

pub use crate::state::FlightSettings;
pub use guard::GuardedFlightService;
pub use metadata::{foreign_keys_result_schema, primary_keys_result_schema, TABLE_TYPE};

type DoGetStream =
    Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

/// The Flight SQL service of the gateway. Cheap to clone.
#[derive(Clone)]
pub struct MeshFlightSqlService {
    state: Arc<GatewayState>,
    sql_info: Arc<SqlInfoData>,
    xdbc: Arc<XdbcTypeInfoData>,
    prepared: Arc<prepared::LegacyBindings>,
}

impl std::fmt::Debug for MeshFlightSqlService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshFlightSqlService")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl MeshFlightSqlService {
    /// The Flight SQL front end of `state`.
    pub fn new(state: Arc<GatewayState>) -> Self {
        let session = state.engine().session();
        let prepared = prepared::LegacyBindings::new(
            state.settings().prepared_ttl,
            state.settings().max_prepared,
            state.settings().max_prepared_bytes,
        );
        Self {
            sql_info: Arc::new(sql_info::sql_info_data(&session)),
            xdbc: Arc::new(sql_info::xdbc_type_info_data()),
            prepared: Arc::new(prepared),
            state,
        }
    }

    /// Cancels the queries of `info`'s tickets that the caller runs on this replica, and
    /// refuses them later if they have not run; whether the info held a ticket.
    fn cancel(&self, call: &Call, info: &FlightInfo) -> bool {
        let mut any = false;
        for ticket in info.endpoint.iter().filter_map(|e| e.ticket.as_ref()) {
            // DoGet sees the statement handle inside the Flight SQL ticket.
            let handle = Any::decode(ticket.ticket.clone())
                .ok()
                .and_then(|a| a.unpack::<TicketStatementQuery>().ok().flatten())
                .map_or_else(|| ticket.ticket.to_vec(), |t| t.statement_handle.to_vec());
            self.state.queries().cancel(&handle, &call.principal.name);
            any = true;
        }
        any
    }

    /// The gateway state it serves.
    pub fn state(&self) -> &Arc<GatewayState> {
        &self.state
    }

    async fn authenticate<T>(&self, request: &Request<T>, rpc: Rpc) -> Result<Call, Status> {
        self.state.authenticate(rpc, CallMeta::of(request)).await
    }

    /// A FlightInfo with one endpoint and no location: "this server", whatever address the
    /// client used.
    fn flight_info(
        schema: &Schema,
        ticket: Vec<u8>,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, GatewayError> {
        let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket));
        Ok(FlightInfo::new()
            .try_with_schema(schema)?
            .with_endpoint(endpoint)
            .with_descriptor(descriptor)
            .with_total_records(-1)
            .with_total_bytes(-1))
    }

    async fn metadata_info(
        &self,
        cmd: impl ProstMessageExt,
        schema: SchemaRef,
        request: Request<FlightDescriptor>,
        command: Command,
    ) -> Result<Response<FlightInfo>, Status> {
        let call = self
            .authenticate(&request, Rpc::FlightInfo(command))
            .await?;
        let ticket = cmd.as_any().encode_to_vec();
        let info = Self::flight_info(&schema, ticket, request.into_inner());
        self.state
            .finish(&call, Outcome::default(), info)
            .map(Response::new)
    }

    /// Streams one metadata batch, built from the caller's view, with its records.
    async fn metadata_batch<T>(
        &self,
        request: &Request<T>,
        command: Command,
        build: impl FnOnce(&CatalogView) -> Result<RecordBatch, GatewayError>,
    ) -> Result<Response<DoGetStream>, Status> {
        let call = self.authenticate(request, Rpc::DoGet(command)).await?;
        let batch = build(&self.state.view(&call));
        let outcome = Outcome {
            rows: batch.as_ref().map_or(0, |b| b.num_rows() as u64),
            bytes: batch
                .as_ref()
                .map_or(0, |b| b.get_array_memory_size() as u64),
            ..Outcome::default()
        };
        let batch = self.state.finish(&call, outcome, batch)?;
        Ok(self.stream_batch(batch))
    }

    fn stream_batch(&self, batch: RecordBatch) -> Response<DoGetStream> {
        let schema = batch.schema();
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .with_max_flight_data_size(self.state.settings().max_message_bytes)
            .build(futures::stream::iter([Ok(batch)]))
            .map_err(Status::from);
        Response::new(Box::pin(stream))
    }

    fn refuse<T>(&self, call: &Call, e: GatewayError) -> Result<T, Status> {
        self.state.finish(call, Outcome::default(), Err(e))
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
        let call = self.authenticate(&request, Rpc::Handshake).await?;
        let token = self.state.authenticator().issue_session(&call.principal);
        self.state.record(&call, Outcome::default(), None);
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
        let call = self.authenticate(&request, Rpc::DoGetUnknown).await?;
        self.refuse(
            &call,
            GatewayError::BadRequest(format!(
                "invalid ticket: `{}` is not a ticket issued by this gateway",
                message.type_url
            )),
        )
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let call = self
            .authenticate(&request, Rpc::FlightInfo(Command::Statement))
            .await?;
        statement::flight_info(self, &call, &query.query, None, request.into_inner()).await
    }

    async fn get_flight_info_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let call = self
            .authenticate(&request, Rpc::FlightInfo(Command::SubstraitPlan))
            .await?;
        self.refuse(
            &call,
            GatewayError::Unimplemented("Substrait plans are not accepted; send SQL".into()),
        )
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let call = self
            .authenticate(&request, Rpc::FlightInfo(Command::PreparedStatement))
            .await?;
        prepared::flight_info(self, &call, &cmd, request.into_inner()).await
    }

    async fn get_flight_info_catalogs(
        &self,
        q: CommandGetCatalogs,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = q.into_builder().schema();
        self.metadata_info(q, schema, r, Command::Catalogs).await
    }

    async fn get_flight_info_schemas(
        &self,
        q: CommandGetDbSchemas,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = q.clone().into_builder().schema();
        self.metadata_info(q, schema, r, Command::DbSchemas).await
    }

    async fn get_flight_info_tables(
        &self,
        q: CommandGetTables,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = q.clone().into_builder().schema();
        self.metadata_info(q, schema, r, Command::Tables).await
    }

    async fn get_flight_info_table_types(
        &self,
        q: CommandGetTableTypes,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = q.into_builder().schema();
        self.metadata_info(q, schema, r, Command::TableTypes).await
    }

    async fn get_flight_info_sql_info(
        &self,
        q: CommandGetSqlInfo,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = q.clone().into_builder(&self.sql_info).schema();
        self.metadata_info(q, schema, r, Command::SqlInfo).await
    }

    async fn get_flight_info_primary_keys(
        &self,
        q: CommandGetPrimaryKeys,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_info(q, primary_keys_result_schema(), r, Command::PrimaryKeys)
            .await
    }

    async fn get_flight_info_exported_keys(
        &self,
        q: CommandGetExportedKeys,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_info(q, foreign_keys_result_schema(), r, Command::ExportedKeys)
            .await
    }

    async fn get_flight_info_imported_keys(
        &self,
        q: CommandGetImportedKeys,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_info(q, foreign_keys_result_schema(), r, Command::ImportedKeys)
            .await
    }

    async fn get_flight_info_cross_reference(
        &self,
        q: CommandGetCrossReference,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_info(q, foreign_keys_result_schema(), r, Command::CrossReference)
            .await
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        q: CommandGetXdbcTypeInfo,
        r: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = q.into_builder(&self.xdbc).schema();
        self.metadata_info(q, schema, r, Command::XdbcTypeInfo)
            .await
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let call = self
            .authenticate(&request, Rpc::DoGet(Command::Statement))
            .await?;
        statement::do_get(self, call, &ticket.statement_handle).await
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let call = self
            .authenticate(&request, Rpc::DoGet(Command::PreparedStatement))
            .await?;
        prepared::do_get(self, call, &cmd).await
    }

    async fn do_get_catalogs(
        &self,
        _q: CommandGetCatalogs,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_batch(&r, Command::Catalogs, metadata::catalogs)
            .await
    }

    async fn do_get_schemas(
        &self,
        q: CommandGetDbSchemas,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_batch(&r, Command::DbSchemas, |v| metadata::schemas(v, q))
            .await
    }

    async fn do_get_tables(
        &self,
        q: CommandGetTables,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_batch(&r, Command::Tables, |v| metadata::tables(v, q))
            .await
    }

    async fn do_get_table_types(
        &self,
        q: CommandGetTableTypes,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_batch(&r, Command::TableTypes, |_| {
            let mut b = q.into_builder();
            b.append(TABLE_TYPE);
            Ok(b.build()?)
        })
        .await
    }

    async fn do_get_sql_info(
        &self,
        q: CommandGetSqlInfo,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let info = Arc::clone(&self.sql_info);
        self.metadata_batch(&r, Command::SqlInfo, move |_| {
            Ok(q.into_builder(&info).build()?)
        })
        .await
    }

    async fn do_get_primary_keys(
        &self,
        q: CommandGetPrimaryKeys,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_batch(&r, Command::PrimaryKeys, |v| metadata::primary_keys(v, &q))
            .await
    }

    async fn do_get_exported_keys(
        &self,
        q: CommandGetExportedKeys,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_batch(&r, Command::ExportedKeys, |v| {
            metadata::exported_keys(v, &q)
        })
        .await
    }

    async fn do_get_imported_keys(
        &self,
        q: CommandGetImportedKeys,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_batch(&r, Command::ImportedKeys, |v| {
            metadata::imported_keys(v, &q)
        })
        .await
    }

    async fn do_get_cross_reference(
        &self,
        q: CommandGetCrossReference,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata_batch(&r, Command::CrossReference, |v| {
            metadata::cross_reference(v, &q)
        })
        .await
    }

    async fn do_get_xdbc_type_info(
        &self,
        q: CommandGetXdbcTypeInfo,
        r: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let xdbc = Arc::clone(&self.xdbc);
        self.metadata_batch(&r, Command::XdbcTypeInfo, move |_| {
            Ok(q.into_builder(&xdbc).build()?)
        })
        .await
    }

    async fn do_put_prepared_statement_query(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let call = self.authenticate(&request, Rpc::BindParameters).await?;
        prepared::bind(self, &call, &cmd, request.into_inner()).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let call = self
            .authenticate(&request, Rpc::CreatePreparedStatement)
            .await?;
        prepared::create(self, &call, &query.query).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let call = self
            .authenticate(&request, Rpc::ClosePreparedStatement)
            .await?;
        prepared::close(self, &call, &query.prepared_statement_handle)
    }

    async fn do_action_begin_transaction(
        &self,
        _query: ActionBeginTransactionRequest,
        request: Request<Action>,
    ) -> Result<ActionBeginTransactionResult, Status> {
        let call = self.authenticate(&request, Rpc::BeginTransaction).await?;
        self.refuse(
            &call,
            GatewayError::Unimplemented(
                "transactions are not supported: meshgate is read-only".into(),
            ),
        )
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let call = self.authenticate(&request, Rpc::OtherAction).await?;
        let kind = request.get_ref().r#type.clone();
        if kind == "CancelFlightInfo" {
            let result =
                arrow_flight::CancelFlightInfoRequest::decode(request.get_ref().body.clone())
                    .map_err(|e| {
                        GatewayError::BadRequest(format!("malformed CancelFlightInfoRequest: {e}"))
                    })
                    .and_then(|r| {
                        r.info.ok_or_else(|| {
                            GatewayError::BadRequest(
                                "CancelFlightInfoRequest without `info`".into(),
                            )
                        })
                    })
                    .map(|info| {
                        let status = match self.cancel(&call, &info) {
                            true => arrow_flight::CancelStatus::Cancelled,
                            false => arrow_flight::CancelStatus::NotCancellable,
                        };
                        let body = arrow_flight::CancelFlightInfoResult {
                            status: status as i32,
                        }
                        .encode_to_vec();
                        let out: <Self as FlightService>::DoActionStream =
                            Box::pin(futures::stream::iter(vec![Ok(arrow_flight::Result {
                                body: body.into(),
                            })]));
                        Response::new(out)
                    });
            return self.state.finish(&call, Outcome::default(), result);
        }
        self.refuse(
            &call,
            GatewayError::Unimplemented(format!("action `{kind}` is not supported")),
        )
    }

    async fn do_action_cancel_query(
        &self,
        query: arrow_flight::sql::ActionCancelQueryRequest,
        request: Request<Action>,
    ) -> Result<arrow_flight::sql::ActionCancelQueryResult, Status> {
        let call = self.authenticate(&request, Rpc::OtherAction).await?;
        let result = FlightInfo::decode(query.info)
            .map_err(|e| GatewayError::BadRequest(format!("malformed FlightInfo: {e}")))
            .map(|info| {
                // CancelResult (not re-exported by arrow-flight): 1 CANCELLED, 3
                // NOT_CANCELLABLE, the values of CancelStatus.
                let status = match self.cancel(&call, &info) {
                    true => arrow_flight::CancelStatus::Cancelled,
                    false => arrow_flight::CancelStatus::NotCancellable,
                };
                arrow_flight::sql::ActionCancelQueryResult {
                    result: status as i32,
                }
            });
        self.state.finish(&call, Outcome::default(), result)
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// Decodes a `google.protobuf.Any` command, for tests and tools.
pub fn decode_any(bytes: &[u8]) -> Result<Any, GatewayError> {
    Any::decode(bytes).map_err(|e| GatewayError::BadRequest(format!("invalid command: {e}")))
}
