//! The Flight service as served: arrow-flight's Flight SQL dispatch with the requests it
//! cannot decode answered INVALID_ARGUMENT. arrow-flight maps an `Any` whose body does not
//! decode as the command its type names to INTERNAL; a client's malformed bytes are not a
//! server bug. Commands and tickets are decoded here first, with the same types.

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::{Any, Command};
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, PollInfo,
    SchemaResult, Ticket,
};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::MeshFlightSqlService;

/// [`MeshFlightSqlService`] behind a check of the commands and tickets it receives.
#[derive(Debug)]
pub struct GuardedFlightService(pub MeshFlightSqlService);

/// INVALID_ARGUMENT unless `bytes` is an `Any` that decodes as the Flight SQL command (or an
/// unknown type, which the dispatch answers UNIMPLEMENTED) it names.
fn check_command(bytes: &[u8], what: &str) -> Result<(), Status> {
    let any = Any::decode(bytes)
        .map_err(|e| Status::invalid_argument(format!("malformed {what}: {e}")))?;
    match Command::try_from(any) {
        Ok(_) => Ok(()),
        Err(e) => Err(Status::invalid_argument(format!("malformed {what}: {e}"))),
    }
}

/// arrow-flight's DoPut dispatch reads the command from the first message of the stream,
/// which cannot be looked at here without consuming it: its decoding failures are the
/// only INTERNAL statuses without the gateway's correlation id.
fn client_fault(status: Status) -> Status {
    let ours = status
        .message()
        .starts_with("internal error (correlation id");
    if status.code() == tonic::Code::Internal && !ours {
        Status::invalid_argument(format!("malformed DoPut command: {}", status.message()))
    } else {
        status
    }
}

#[tonic::async_trait]
impl FlightService for GuardedFlightService {
    type HandshakeStream = <MeshFlightSqlService as FlightService>::HandshakeStream;
    type ListFlightsStream = <MeshFlightSqlService as FlightService>::ListFlightsStream;
    type DoGetStream = <MeshFlightSqlService as FlightService>::DoGetStream;
    type DoPutStream = <MeshFlightSqlService as FlightService>::DoPutStream;
    type DoExchangeStream = <MeshFlightSqlService as FlightService>::DoExchangeStream;
    type DoActionStream = <MeshFlightSqlService as FlightService>::DoActionStream;
    type ListActionsStream = <MeshFlightSqlService as FlightService>::ListActionsStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        self.0.handshake(request).await
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        self.0.list_flights(request).await
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        check_command(&request.get_ref().cmd, "Flight SQL command")?;
        self.0.get_flight_info(request).await
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        check_command(&request.get_ref().cmd, "Flight SQL command")?;
        self.0.poll_flight_info(request).await
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        self.0.get_schema(request).await
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        check_command(&request.get_ref().ticket, "ticket")?;
        self.0.do_get(request).await
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        self.0.do_put(request).await.map_err(client_fault)
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        self.0.do_exchange(request).await
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        self.0.do_action(request).await
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        self.0.list_actions(request).await
    }
}
