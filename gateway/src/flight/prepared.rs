//! Prepared statements, stateless: the handle carries the SQL and, once DoPut bound them,
//! the parameters, signed like tickets. DoPut answers a new handle (the Flight SQL spec's
//! `DoPutPreparedStatementResult`), so a client whose calls land on different replicas
//! sharing `--ticket-key-file` works; closing a statement is a no-op. A handle is valid for
//! `prepared_ttl` after it was issued (24 hours by default).
//!
//! Clients that ignore the handle DoPut returns (flightsql-dbapi, older drivers) keep using
//! the one CreatePreparedStatement gave them: for those, this replica also remembers the last
//! parameters bound per statement ([`LegacyBindings`], bounded, idle entries expire). Such
//! a client needs its calls on one replica, as with any server that keeps this state.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arrow_flight::error::FlightError;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{
    ActionCreatePreparedStatementResult, CommandPreparedStatementQuery,
    DoPutPreparedStatementResult,
};
use arrow_flight::{FlightDescriptor, FlightInfo, IpcMessage, SchemaAsIpc};
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::arrow::record_batch::RecordBatch;
use futures::{FutureExt, StreamExt};
use meshgate_proto::v1::PreparedStatementHandle;
use tonic::{Response, Status};

use super::statement::{batch_from_ipc, batch_to_ipc, not_yours};
use super::{DoGetStream, MeshFlightSqlService};
use crate::error::GatewayError;
use crate::query::params_from_batch;
use crate::request::{Call, Outcome};
use crate::security::signing::{now_ms, BlobKind};

/// Largest parameter row a handle carries, as Arrow IPC.
const MAX_PARAMETER_BYTES: usize = 4 << 20;

#[derive(Debug)]
struct Entry {
    principal: String,
    params: Vec<u8>,
    last_used: Instant,
}

/// Most bytes of bindings one principal keeps on a replica.
const MAX_PRINCIPAL_BYTES: usize = 32 << 20;

/// The last parameters bound per statement id on this replica, for clients that keep the
/// handle they had before DoPut. Entries idle longer than the TTL are dropped. Each principal
/// keeps at most `per_principal` bindings and [`MAX_PRINCIPAL_BYTES`] (its least recently
/// used go first); past `max_bytes` over everyone nothing more is remembered (the client must
/// use the handle DoPut returned). One principal never evicts another's bindings.
#[derive(Debug)]
pub(super) struct LegacyBindings {
    entries: Mutex<HashMap<Vec<u8>, Entry>>,
    ttl: Duration,
    per_principal: usize,
    max_bytes: usize,
}

impl LegacyBindings {
    pub(super) fn new(ttl: Duration, per_principal: usize, max_bytes: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            per_principal: per_principal.max(1),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers `params` for statement `id` of `principal`; whether it was kept.
    fn remember(&self, principal: &str, id: &[u8], params: Vec<u8>) -> bool {
        let mut m = self.lock();
        let now = Instant::now();
        m.retain(|_, e| now.duration_since(e.last_used) < self.ttl);
        m.remove(id);
        loop {
            let mine = m.values().filter(|e| e.principal == principal);
            let (count, bytes) =
                mine.fold((0usize, 0usize), |(c, b), e| (c + 1, b + e.params.len()));
            if count < self.per_principal && bytes + params.len() <= MAX_PRINCIPAL_BYTES {
                break;
            }
            let Some(oldest) = m
                .iter()
                .filter(|(_, e)| e.principal == principal)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            m.remove(&oldest);
        }
        let total: usize = m.values().map(|e| e.params.len()).sum();
        if total + params.len() > self.max_bytes || params.len() > MAX_PRINCIPAL_BYTES {
            tracing::warn!(principal, "parameter bindings are full on this replica; the client must use the handle DoPut returned");
            return false;
        }
        m.insert(
            id.to_vec(),
            Entry {
                principal: principal.to_string(),
                params,
                last_used: now,
            },
        );
        true
    }

    fn recall(&self, id: &[u8]) -> Option<Vec<u8>> {
        let mut m = self.lock();
        let ttl = self.ttl;
        match m.get_mut(id) {
            Some(e) if e.last_used.elapsed() < ttl => {
                e.last_used = Instant::now();
                Some(e.params.clone())
            }
            Some(_) => {
                m.remove(id);
                None
            }
            None => None,
        }
    }

    fn forget(&self, id: &[u8]) {
        self.lock().remove(id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

fn schema_bytes(schema: &Schema) -> Result<Vec<u8>, GatewayError> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into()?;
    Ok(bytes.to_vec())
}

/// Verifies a handle: signature, owner and age.
fn verify(
    svc: &MeshFlightSqlService,
    blob: &[u8],
    call: &Call,
) -> Result<PreparedStatementHandle, GatewayError> {
    let h: PreparedStatementHandle = svc.state.signer().verify(BlobKind::PreparedHandle, blob)?;
    if h.principal != call.principal.name {
        return Err(not_yours("prepared statement handle"));
    }
    let ttl = svc.state.settings().prepared_ttl;
    let age = now_ms().saturating_sub(h.issued_at_ms);
    if age > ttl.as_millis() as u64 {
        return Err(GatewayError::NotFound(format!(
            "the prepared statement handle expired ({} s old; handles live {} s after they are \
             issued); prepare the statement again",
            age / 1000,
            ttl.as_secs()
        )));
    }
    Ok(h)
}

/// The parameters of a statement: those its handle carries, else the last ones bound on
/// this replica with an older handle of the statement.
fn parameters(
    svc: &MeshFlightSqlService,
    h: &PreparedStatementHandle,
) -> Result<Option<RecordBatch>, GatewayError> {
    if !h.parameters.is_empty() {
        return batch_from_ipc(&h.parameters);
    }
    match svc.prepared.recall(&h.id) {
        Some(bytes) => batch_from_ipc(&bytes),
        None => Ok(None),
    }
}

/// CreatePreparedStatement: describes the statement and signs a handle for it.
pub(super) async fn create(
    svc: &MeshFlightSqlService,
    call: &Call,
    sql: &str,
) -> Result<ActionCreatePreparedStatementResult, Status> {
    let result = async {
        let described = svc.state.engine().describe(sql, &call.principal).await?;
        let handle = PreparedStatementHandle {
            id: uuid::Uuid::new_v4().as_bytes().to_vec(),
            sql: sql.to_string(),
            issued_at_ms: now_ms(),
            principal: call.principal.name.clone(),
            parameters: vec![],
        };
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: svc
                .state
                .signer()
                .sign(BlobKind::PreparedHandle, &handle)
                .into(),
            dataset_schema: schema_bytes(&described.dataset_schema)?.into(),
            parameter_schema: schema_bytes(&described.parameter_schema)?.into(),
        })
    }
    .await;
    svc.state.finish(call, Outcome::sql(sql), result)
}

/// Reads the one parameter row of a DoPut. Parameter batches are untrusted input: arrow-ipc
/// can panic on malformed flatbuffers, so decoding is contained.
async fn read_parameters(flight: PeekableFlightDataStream) -> Result<RecordBatch, GatewayError> {
    let flight = flight.map(|r| r.map_err(|s| FlightError::Tonic(Box::new(s))));
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
    Ok(batch)
}

/// DoPut: binds parameters and answers a new handle carrying them.
pub(super) async fn bind(
    svc: &MeshFlightSqlService,
    call: &Call,
    cmd: &CommandPreparedStatementQuery,
    flight: PeekableFlightDataStream,
) -> Result<DoPutPreparedStatementResult, Status> {
    let handle = match verify(svc, &cmd.prepared_statement_handle, call) {
        Ok(h) => h,
        Err(e) => return svc.refuse(call, e),
    };
    let outcome = Outcome::sql(&handle.sql);
    let bound = async {
        let batch = read_parameters(flight).await?;
        let parameters = batch_to_ipc(&batch)?;
        if parameters.len() > MAX_PARAMETER_BYTES {
            return Err(GatewayError::BadRequest(format!(
                "the parameter row takes {} bytes; at most {MAX_PARAMETER_BYTES} may be bound",
                parameters.len()
            )));
        }
        svc.prepared
            .remember(&call.principal.name, &handle.id, parameters.clone());
        let bound = PreparedStatementHandle {
            issued_at_ms: now_ms(),
            parameters,
            ..handle
        };
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(
                svc.state
                    .signer()
                    .sign(BlobKind::PreparedHandle, &bound)
                    .into(),
            ),
        })
    }
    .await;
    svc.state.finish(call, outcome, bound)
}

/// GetFlightInfo of a prepared statement: plans it with its parameters and answers a
/// statement ticket.
pub(super) async fn flight_info(
    svc: &MeshFlightSqlService,
    call: &Call,
    cmd: &CommandPreparedStatementQuery,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let checked = verify(svc, &cmd.prepared_statement_handle, call)
        .and_then(|h| Ok((parameters(svc, &h)?, h.sql)));
    match checked {
        Ok((params, sql)) => {
            super::statement::flight_info(svc, call, &sql, params, descriptor).await
        }
        Err(e) => svc.refuse(call, e),
    }
}

/// DoGet of a prepared statement command (clients normally redeem the statement ticket of
/// its FlightInfo instead).
pub(super) async fn do_get(
    svc: &MeshFlightSqlService,
    call: Call,
    cmd: &CommandPreparedStatementQuery,
) -> Result<Response<DoGetStream>, Status> {
    let checked = verify(svc, &cmd.prepared_statement_handle, &call)
        .and_then(|h| Ok((parameters(svc, &h)?, h.sql)));
    match checked {
        Ok((params, sql)) => super::statement::stream(svc, call, &sql, params).await,
        Err(e) => svc.refuse(&call, e),
    }
}

/// ClosePreparedStatement: nothing to free but this replica's memory of older bindings.
pub(super) fn close(svc: &MeshFlightSqlService, call: &Call, blob: &[u8]) -> Result<(), Status> {
    let result = verify(svc, blob, call).map(|h| svc.prepared.forget(&h.id));
    svc.state.finish(call, Outcome::default(), result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_bindings_expire_when_idle() {
        let s = LegacyBindings::new(Duration::from_secs(60), 10, 1 << 20);
        assert!(s.remember("a", &[1], vec![1, 2]));
        assert_eq!(s.recall(&[1]), Some(vec![1, 2]));
        let expired = LegacyBindings::new(Duration::ZERO, 10, 1 << 20);
        expired.remember("a", &[1], vec![1, 2]);
        assert_eq!(expired.recall(&[1]), None);
        assert_eq!(expired.len(), 0);
    }

    #[test]
    fn one_principal_never_evicts_another() {
        let s = LegacyBindings::new(Duration::from_secs(60), 3, 1 << 20);
        assert!(s.remember("victim", &[200], vec![7]));
        for i in 0..100u8 {
            s.remember("flooder", &[i], vec![i]);
        }
        assert_eq!(s.len(), 4, "three of the flooder's, one of the victim's");
        assert_eq!(s.recall(&[200]), Some(vec![7]));
        assert!(s.recall(&[99]).is_some());
        assert!(s.recall(&[0]).is_none());
    }

    #[test]
    fn bytes_are_capped_per_principal_and_in_total() {
        let s = LegacyBindings::new(Duration::from_secs(60), 1000, 40 << 20);
        for i in 0..10u8 {
            assert!(s.remember("big", &[i], vec![0; 4 << 20]));
        }
        let held: usize = s.lock().values().map(|e| e.params.len()).sum();
        assert!(held <= MAX_PRINCIPAL_BYTES, "{held}");
        assert!(s.remember("other", &[100], vec![0; 4 << 20]));
        assert!(s.remember("other", &[101], vec![0; 4 << 20]));
        // 32 MiB + 8 MiB = the 40 MiB total: nothing more is kept, nobody is evicted.
        assert!(!s.remember("third", &[102], vec![0; 4 << 20]));
        assert!(s.recall(&[100]).is_some());
    }
}
