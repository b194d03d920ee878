//! The gateway's errors and their one mapping to gRPC status codes.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use meshgate_connector::{ConnectorError, ErrorClass};
use tonic::Status;

/// Everything a request can fail with. Each variant's message is shown to the client, except
/// `Internal`, which the client sees as a correlation id (the detail goes to the log).
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// The SQL text is not valid or does not plan (unknown column, type mismatch, ...).
    #[error("{0}")]
    InvalidSql(String),
    /// A statement class the gateway does not run (DDL, DML, SET, COPY, ...).
    #[error("{0}")]
    Rejected(String),
    /// The statement exceeds a size or complexity budget.
    #[error("{0}")]
    TooComplex(String),
    /// A request that is malformed at the protocol level (bad ticket, bad parameters).
    #[error("{0}")]
    BadRequest(String),
    /// A table, port, prepared statement or object that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A source cannot be reached now.
    #[error("{0}")]
    Unavailable(String),
    /// A source or the query took too long.
    #[error("{0}")]
    Timeout(String),
    /// Memory or another limit was reached.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// Credentials missing or wrong. The message never says which.
    #[error("{0}")]
    Unauthenticated(String),
    /// Data broke the port's contract or its declared types.
    #[error("{0}")]
    ContractViolation(String),
    /// The operation is not offered by this server.
    #[error("{0}")]
    Unimplemented(String),
    /// A source rejected SQL the gateway wrote for it: a pushdown bug, with a way around it
    /// (`pushdown: off`) in the message and the statement in the log.
    #[error("{0}")]
    PushdownRejected(String),
    /// A bug or an unexpected state; `id` correlates the client's message with the log.
    #[error("internal error (correlation id {id})")]
    Internal {
        /// Correlation id shown to the client and logged with the detail.
        id: String,
    },
}

impl GatewayError {
    /// An internal error: logs `detail` with a fresh correlation id and returns the error.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        tracing::error!(correlation_id = %id, error = %detail, "internal error");
        Self::Internal { id }
    }
}

impl From<GatewayError> for Status {
    fn from(e: GatewayError) -> Self {
        let msg = e.to_string();
        match e {
            GatewayError::InvalidSql(_)
            | GatewayError::Rejected(_)
            | GatewayError::TooComplex(_)
            | GatewayError::BadRequest(_) => Status::invalid_argument(msg),
            GatewayError::NotFound(_) => Status::not_found(msg),
            GatewayError::Unavailable(_) => Status::unavailable(msg),
            GatewayError::Timeout(_) => Status::deadline_exceeded(msg),
            GatewayError::ResourceExhausted(_) => Status::resource_exhausted(msg),
            GatewayError::PermissionDenied(_) => Status::permission_denied(msg),
            GatewayError::Unauthenticated(_) => Status::unauthenticated(msg),
            GatewayError::ContractViolation(_) | GatewayError::PushdownRejected(_) => {
                Status::failed_precondition(msg)
            }
            GatewayError::Unimplemented(_) => Status::unimplemented(msg),
            GatewayError::Internal { .. } => Status::internal(msg),
        }
    }
}

impl From<ConnectorError> for GatewayError {
    fn from(e: ConnectorError) -> Self {
        match e.class {
            ErrorClass::InvalidConfig => {
                Self::Unavailable(format!("misconfigured source: {}", e.message))
            }
            ErrorClass::NotFound => Self::NotFound(e.message),
            ErrorClass::Unavailable => Self::Unavailable(e.message),
            ErrorClass::Timeout => Self::Timeout(e.message),
            ErrorClass::PermissionDenied => {
                Self::Unavailable(format!("the source refused access: {}", e.message))
            }
            ErrorClass::CallerDenied => Self::PermissionDenied(e.message),
            ErrorClass::Data => Self::ContractViolation(e.message),
            ErrorClass::Query => Self::InvalidSql(e.message),
            ErrorClass::PushdownRejected => Self::PushdownRejected(e.message),
            ErrorClass::Internal => Self::internal(e.message),
        }
    }
}

impl From<DataFusionError> for GatewayError {
    fn from(e: DataFusionError) -> Self {
        classify(&e).unwrap_or_else(|| Self::internal(format!("{e:?}")))
    }
}

impl From<arrow_flight::error::FlightError> for GatewayError {
    fn from(e: arrow_flight::error::FlightError) -> Self {
        match e {
            arrow_flight::error::FlightError::Arrow(a) => a.into(),
            other => Self::internal(other),
        }
    }
}

impl From<ArrowError> for GatewayError {
    fn from(e: ArrowError) -> Self {
        classify_arrow(&e).unwrap_or_else(|| Self::internal(format!("{e:?}")))
    }
}

fn classify(e: &DataFusionError) -> Option<GatewayError> {
    Some(match e {
        DataFusionError::SQL(inner, _) => GatewayError::InvalidSql(format!("SQL error: {inner}")),
        DataFusionError::Plan(m) => GatewayError::InvalidSql(m.trim().to_string()),
        DataFusionError::SchemaError(inner, _) => GatewayError::InvalidSql(inner.to_string()),
        DataFusionError::NotImplemented(m) => {
            GatewayError::InvalidSql(format!("not supported: {m}"))
        }
        DataFusionError::ResourcesExhausted(m) => GatewayError::ResourceExhausted(format!(
            "the query needs more memory than it may use: {m}"
        )),
        DataFusionError::ArrowError(a, _) => return classify_arrow(a),
        DataFusionError::External(inner) => return classify_external(inner.as_ref()),
        DataFusionError::Context(_, inner) => return classify(inner),
        DataFusionError::Shared(inner) => return classify(inner),
        DataFusionError::Diagnostic(_, inner) => return classify(inner),
        DataFusionError::Collection(list) => return list.first().and_then(classify),
        DataFusionError::ExecutionJoin(_) => return None,
        DataFusionError::ObjectStore(e) => {
            GatewayError::Unavailable(format!("cannot read the source data: {e}"))
        }
        DataFusionError::IoError(e) => {
            GatewayError::Unavailable(format!("cannot read the source data: {e}"))
        }
        DataFusionError::Execution(m) if m.contains("Cancel") => {
            GatewayError::Unavailable(m.trim().to_string())
        }
        DataFusionError::Execution(m) => GatewayError::InvalidSql(m.trim().to_string()),
        _ => return None,
    })
}

fn classify_external(
    inner: &(dyn std::error::Error + Send + Sync + 'static),
) -> Option<GatewayError> {
    if let Some(c) = inner.downcast_ref::<ConnectorError>() {
        return Some(c.clone().into());
    }
    if let Some(g) = inner.downcast_ref::<GatewayError>() {
        return Some(match g {
            GatewayError::InvalidSql(m) => GatewayError::InvalidSql(m.clone()),
            GatewayError::ContractViolation(m) => GatewayError::ContractViolation(m.clone()),
            GatewayError::Timeout(m) => GatewayError::Timeout(m.clone()),
            GatewayError::ResourceExhausted(m) => GatewayError::ResourceExhausted(m.clone()),
            GatewayError::PermissionDenied(m) => GatewayError::PermissionDenied(m.clone()),
            GatewayError::NotFound(m) => GatewayError::NotFound(m.clone()),
            GatewayError::Unavailable(m) => GatewayError::Unavailable(m.clone()),
            GatewayError::PushdownRejected(m) => GatewayError::PushdownRejected(m.clone()),
            other => GatewayError::internal(other),
        });
    }
    if let Some(d) = inner.downcast_ref::<DataFusionError>() {
        return classify(d);
    }
    if let Some(a) = inner.downcast_ref::<ArrowError>() {
        return classify_arrow(a);
    }
    None
}

fn classify_arrow(a: &ArrowError) -> Option<GatewayError> {
    Some(match a {
        ArrowError::DivideByZero => GatewayError::InvalidSql("division by zero".into()),
        ArrowError::ArithmeticOverflow(m) => {
            GatewayError::InvalidSql(format!("arithmetic overflow: {m}"))
        }
        ArrowError::CastError(m) => GatewayError::InvalidSql(format!("cannot cast: {m}")),
        ArrowError::ComputeError(m) => GatewayError::InvalidSql(m.clone()),
        ArrowError::ParseError(m) => GatewayError::InvalidSql(format!("cannot parse: {m}")),
        ArrowError::InvalidArgumentError(m) => GatewayError::InvalidSql(m.clone()),
        ArrowError::ExternalError(inner) => return classify_external(inner.as_ref()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_classes_map_to_codes() {
        let s: Status = GatewayError::from(DataFusionError::External(Box::new(
            ConnectorError::new(ErrorClass::Unavailable, "source `x` at 127.0.0.1:1 is down"),
        )))
        .into();
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert!(s.message().contains("127.0.0.1:1"));
    }

    #[test]
    fn internal_errors_hide_detail() {
        let s: Status = GatewayError::internal("secret detail").into();
        assert_eq!(s.code(), tonic::Code::Internal);
        assert!(!s.message().contains("secret"));
        assert!(s.message().contains("correlation id"));
    }

    #[test]
    fn plan_errors_are_invalid_argument() {
        let s: Status = GatewayError::from(DataFusionError::Plan("no column x".into())).into();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
    }
}
