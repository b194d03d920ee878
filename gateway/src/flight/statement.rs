//! Statements: GetFlightInfo plans the query and signs a ticket carrying it (stateless:
//! any replica with the same key redeems it); DoGet verifies the ticket and streams the
//! result.

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::{ProstMessageExt, TicketStatementQuery};
use arrow_flight::{FlightDescriptor, FlightInfo};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use meshgate_proto::v1::StatementTicket;
use prost::Message;
use tonic::{Response, Status};

use super::{DoGetStream, MeshFlightSqlService};
use crate::error::GatewayError;
use crate::request::{Call, Outcome};
use crate::security::signing::{now_ms, BlobKind};

/// One row of parameters as an Arrow IPC stream (how tickets and handles carry them).
pub(super) fn batch_to_ipc(batch: &RecordBatch) -> Result<Vec<u8>, GatewayError> {
    let mut buf = Vec::new();
    let mut w = StreamWriter::try_new(&mut buf, &batch.schema())?;
    w.write(batch)?;
    w.finish()?;
    drop(w);
    Ok(buf)
}

/// The parameters a ticket or handle carries (`None` when empty).
pub(super) fn batch_from_ipc(bytes: &[u8]) -> Result<Option<RecordBatch>, GatewayError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let bad = |e: &dyn std::fmt::Display| {
        GatewayError::BadRequest(format!("invalid parameters in ticket: {e}"))
    };
    let reader = StreamReader::try_new(bytes, None).map_err(|e| bad(&e))?;
    reader.into_iter().next().transpose().map_err(|e| bad(&e))
}

pub(super) fn not_yours(what: &str) -> GatewayError {
    GatewayError::PermissionDenied(format!(
        "this {what} was issued to another principal; run the statement yourself"
    ))
}

/// Plans `sql` with `params` for the caller and answers a FlightInfo whose ticket carries
/// the statement, signed.
pub(super) async fn flight_info(
    svc: &MeshFlightSqlService,
    call: &Call,
    sql: &str,
    params: Option<RecordBatch>,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let mut outcome = Outcome::sql(sql);
    let info = async {
        let planned = svc
            .state
            .plan(call, sql, params.as_ref(), &mut outcome)
            .await?;
        let ticket = StatementTicket {
            sql: sql.to_string(),
            parameters: match &params {
                Some(b) => batch_to_ipc(b)?,
                None => vec![],
            },
            issued_at_ms: now_ms(),
            principal: call.principal.name.clone(),
        };
        let handle = svc.state.signer().sign(BlobKind::Ticket, &ticket);
        let ticket = TicketStatementQuery {
            statement_handle: handle.into(),
        }
        .as_any()
        .encode_to_vec();
        MeshFlightSqlService::flight_info(&planned.wire_schema, ticket, descriptor)
    }
    .await;
    svc.state.finish(call, outcome, info).map(Response::new)
}

/// Verifies a statement ticket (signature, owner, age) and streams its result.
pub(super) async fn do_get(
    svc: &MeshFlightSqlService,
    call: Call,
    handle: &[u8],
) -> Result<Response<DoGetStream>, Status> {
    let checked = (|| {
        let t: StatementTicket = svc.state.signer().verify(BlobKind::Ticket, handle)?;
        if t.principal != call.principal.name {
            return Err(not_yours("ticket"));
        }
        svc.state.signer().check_fresh(t.issued_at_ms)?;
        let params = batch_from_ipc(&t.parameters)?;
        Ok((t.sql, params))
    })();
    match checked {
        Ok((sql, params)) => {
            let (schema, batches) = svc
                .state
                .execute_ticket(call, &sql, params, Some(handle))
                .await?;
            Ok(Response::new(encode(svc, schema, batches)))
        }
        Err(e) => svc.refuse(&call, e),
    }
}

/// Executes `sql` for the caller and encodes the result as Flight data.
pub(super) async fn stream(
    svc: &MeshFlightSqlService,
    call: Call,
    sql: &str,
    params: Option<RecordBatch>,
) -> Result<Response<DoGetStream>, Status> {
    let (schema, batches) = svc.state.execute(call, sql, params).await?;
    Ok(Response::new(encode(svc, schema, batches)))
}

/// The result rows as Flight data.
fn encode(
    svc: &MeshFlightSqlService,
    schema: datafusion::arrow::datatypes::SchemaRef,
    batches: crate::request::ResultBatches,
) -> DoGetStream {
    let batches = tokio_stream::wrappers::ReceiverStream::new(batches)
        .map_err(|s| FlightError::Tonic(Box::new(s)));
    let flight = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .with_max_flight_data_size(svc.state.settings().max_message_bytes)
        .build(batches)
        .map_err(Status::from);
    Box::pin(flight)
}
