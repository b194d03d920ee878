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

impl GatewayError {
    /// A short, stable name of the class, for metrics labels and logs.
    pub fn label(&self) -> &'static str {
        match self {
            GatewayError::InvalidSql(_) => "query",
            GatewayError::Rejected(_) => "rejected",
            GatewayError::TooComplex(_) => "too_complex",
            GatewayError::BadRequest(_) => "bad_request",
            GatewayError::NotFound(_) => "not_found",
            GatewayError::Unavailable(_) => "unavailable",
            GatewayError::Timeout(_) => "timeout",
            GatewayError::ResourceExhausted(_) => "resources_exhausted",
            GatewayError::PermissionDenied(_) => "permission_denied",
            GatewayError::Unauthenticated(_) => "unauthenticated",
            GatewayError::ContractViolation(_) => "data",
            GatewayError::Unimplemented(_) => "unimplemented",
            GatewayError::PushdownRejected(_) => "pushdown_rejected",
            GatewayError::Internal { .. } => "internal",
        }
    }
}

/// The error a chain of wrappers comes down to. DataFusion wraps what failed in contexts,
/// shared handles, diagnostics, boxed `External` errors and Arrow's `ExternalError`; [`leaf`]
/// walks them once, and both the client's status ([`GatewayError`]) and the metrics label
/// ([`error_label`]) are read from the leaf, so they cannot disagree.
#[derive(Debug)]
enum Leaf<'a> {
    /// A connector's classified error.
    Connector(&'a ConnectorError),
    /// An error the gateway raised inside a plan (a contract check, a limit).
    Gateway(&'a GatewayError),
    /// A DataFusion error that wraps nothing.
    DataFusion(&'a DataFusionError),
    /// An Arrow error that wraps nothing.
    Arrow(&'a ArrowError),
    /// Reading Parquet failed.
    Parquet(&'a datafusion::parquet::errors::ParquetError),
    /// An error type the gateway does not know: a bug, reported as internal.
    Foreign(&'a (dyn std::error::Error + Send + Sync + 'static)),
}

fn leaf(e: &DataFusionError) -> Leaf<'_> {
    match e {
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => leaf(inner),
        DataFusionError::Shared(inner) => leaf(inner),
        DataFusionError::Collection(list) => list.first().map_or(Leaf::DataFusion(e), leaf),
        DataFusionError::ArrowError(a, _) => arrow_leaf(a),
        DataFusionError::ParquetError(p) => Leaf::Parquet(p),
        DataFusionError::External(inner) => external_leaf(inner.as_ref()),
        DataFusionError::ObjectStore(_)
        | DataFusionError::IoError(_)
        | DataFusionError::SQL(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Internal(_)
        | DataFusionError::Plan(_)
        | DataFusionError::Configuration(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::Execution(_)
        | DataFusionError::ExecutionJoin(_)
        | DataFusionError::ResourcesExhausted(_)
        | DataFusionError::Substrait(_)
        | DataFusionError::Ffi(_) => Leaf::DataFusion(e),
    }
}

fn arrow_leaf(a: &ArrowError) -> Leaf<'_> {
    match a {
        ArrowError::ExternalError(inner) => external_leaf(inner.as_ref()),
        ArrowError::NotYetImplemented(_)
        | ArrowError::CastError(_)
        | ArrowError::MemoryError(_)
        | ArrowError::ParseError(_)
        | ArrowError::SchemaError(_)
        | ArrowError::ComputeError(_)
        | ArrowError::DivideByZero
        | ArrowError::ArithmeticOverflow(_)
        | ArrowError::CsvError(_)
        | ArrowError::JsonError(_)
        | ArrowError::AvroError(_)
        | ArrowError::IoError(..)
        | ArrowError::IpcError(_)
        | ArrowError::InvalidArgumentError(_)
        | ArrowError::ParquetError(_)
        | ArrowError::CDataInterface(_)
        | ArrowError::DictionaryKeyOverflowError
        | ArrowError::RunEndIndexOverflowError
        | ArrowError::OffsetOverflowError(_) => Leaf::Arrow(a),
    }
}

fn external_leaf<'a>(inner: &'a (dyn std::error::Error + Send + Sync + 'static)) -> Leaf<'a> {
    if let Some(c) = inner.downcast_ref::<ConnectorError>() {
        Leaf::Connector(c)
    } else if let Some(g) = inner.downcast_ref::<GatewayError>() {
        Leaf::Gateway(g)
    } else if let Some(d) = inner.downcast_ref::<DataFusionError>() {
        leaf(d)
    } else if let Some(a) = inner.downcast_ref::<ArrowError>() {
        arrow_leaf(a)
    } else if let Some(p) = inner.downcast_ref::<datafusion::parquet::errors::ParquetError>() {
        Leaf::Parquet(p)
    } else {
        Leaf::Foreign(inner)
    }
}

impl Leaf<'_> {
    /// The client's error; `Err` carries the detail of an internal error, for the log only.
    fn classify(&self) -> Result<GatewayError, String> {
        let unreadable = |e: &dyn std::fmt::Display| {
            Ok(GatewayError::Unavailable(format!(
                "cannot read the source data: {e}"
            )))
        };
        match self {
            Leaf::Connector(c) => Ok(connector_error(c)),
            Leaf::Gateway(g) => Ok((*g).clone()),
            Leaf::Parquet(p) => unreadable(p),
            Leaf::Foreign(e) => Err(format!("{e:?}")),
            Leaf::Arrow(a) => arrow_error(a),
            Leaf::DataFusion(d) => match d {
                DataFusionError::SQL(inner, _) => {
                    Ok(GatewayError::InvalidSql(format!("SQL error: {inner}")))
                }
                DataFusionError::Plan(m) | DataFusionError::Execution(m) => {
                    Ok(GatewayError::InvalidSql(m.trim().to_string()))
                }
                DataFusionError::SchemaError(inner, _) => {
                    Ok(GatewayError::InvalidSql(inner.to_string()))
                }
                DataFusionError::NotImplemented(m) => {
                    Ok(GatewayError::InvalidSql(format!("not supported: {m}")))
                }
                DataFusionError::Configuration(m) => Ok(GatewayError::BadRequest(m.clone())),
                DataFusionError::Substrait(m) => Ok(GatewayError::Unimplemented(m.clone())),
                DataFusionError::ResourcesExhausted(m) => Ok(GatewayError::ResourceExhausted(
                    format!("the query needs more memory than it may use: {m}"),
                )),
                DataFusionError::ObjectStore(e) => unreadable(e),
                DataFusionError::IoError(e) => unreadable(e),
                DataFusionError::Internal(_)
                | DataFusionError::ExecutionJoin(_)
                | DataFusionError::Ffi(_)
                | DataFusionError::ArrowError(..)
                | DataFusionError::ParquetError(_)
                | DataFusionError::External(_)
                | DataFusionError::Context(..)
                | DataFusionError::Diagnostic(..)
                | DataFusionError::Shared(_)
                | DataFusionError::Collection(_) => Err(format!("{d:?}")),
            },
        }
    }
}

fn connector_error(e: &ConnectorError) -> GatewayError {
    let m = e.message.clone();
    match e.class {
        ErrorClass::InvalidConfig => {
            GatewayError::Unavailable(format!("misconfigured source: {m}"))
        }
        ErrorClass::NotFound => GatewayError::NotFound(m),
        ErrorClass::Unavailable => GatewayError::Unavailable(m),
        ErrorClass::Timeout => GatewayError::Timeout(m),
        ErrorClass::PermissionDenied => {
            GatewayError::Unavailable(format!("the source refused access: {m}"))
        }
        ErrorClass::CallerDenied => GatewayError::PermissionDenied(m),
        ErrorClass::Data => GatewayError::ContractViolation(m),
        ErrorClass::Query => GatewayError::InvalidSql(m),
        ErrorClass::PushdownRejected => GatewayError::PushdownRejected(m),
        ErrorClass::Internal => GatewayError::internal(m),
    }
}

fn connector_label(c: ErrorClass) -> &'static str {
    match c {
        ErrorClass::InvalidConfig => "invalid_config",
        ErrorClass::NotFound => "not_found",
        ErrorClass::Unavailable => "unavailable",
        ErrorClass::Timeout => "timeout",
        ErrorClass::PermissionDenied => "permission_denied",
        ErrorClass::CallerDenied => "caller_denied",
        ErrorClass::Data => "data",
        ErrorClass::Query => "query",
        ErrorClass::PushdownRejected => "pushdown_rejected",
        ErrorClass::Internal => "internal",
    }
}

fn arrow_error(a: &ArrowError) -> Result<GatewayError, String> {
    let query = |m: String| Ok(GatewayError::InvalidSql(m));
    match a {
        ArrowError::DivideByZero => query("division by zero".into()),
        ArrowError::ArithmeticOverflow(m) => query(format!("arithmetic overflow: {m}")),
        ArrowError::CastError(m) => query(format!("cannot cast: {m}")),
        ArrowError::ParseError(m) => query(format!("cannot parse: {m}")),
        ArrowError::ComputeError(m)
        | ArrowError::InvalidArgumentError(m)
        | ArrowError::SchemaError(m) => query(m.clone()),
        ArrowError::NotYetImplemented(m) => query(format!("not supported: {m}")),
        ArrowError::MemoryError(m) => Ok(GatewayError::ResourceExhausted(format!(
            "the query needs more memory than it may use: {m}"
        ))),
        ArrowError::DictionaryKeyOverflowError
        | ArrowError::RunEndIndexOverflowError
        | ArrowError::OffsetOverflowError(_) => Ok(GatewayError::ResourceExhausted(format!(
            "a result column exceeds Arrow's size limits ({a}); select fewer rows or smaller \
             values"
        ))),
        ArrowError::CsvError(m)
        | ArrowError::JsonError(m)
        | ArrowError::AvroError(m)
        | ArrowError::ParquetError(m)
        | ArrowError::IpcError(m) => Ok(GatewayError::Unavailable(format!(
            "cannot read the source data: {m}"
        ))),
        ArrowError::IoError(m, _) => Ok(GatewayError::Unavailable(format!(
            "cannot read the source data: {m}"
        ))),
        ArrowError::CDataInterface(_) | ArrowError::ExternalError(_) => Err(format!("{a:?}")),
    }
}

/// The metrics label of a failure: the connector's class when a connector failed, else the
/// class of the error the client receives.
pub fn error_label(e: &DataFusionError) -> &'static str {
    match leaf(e) {
        Leaf::Connector(c) => connector_label(c.class),
        other => other.classify().map_or("internal", |g| g.label()),
    }
}

impl From<ConnectorError> for GatewayError {
    fn from(e: ConnectorError) -> Self {
        connector_error(&e)
    }
}

impl From<DataFusionError> for GatewayError {
    fn from(e: DataFusionError) -> Self {
        leaf(&e).classify().unwrap_or_else(Self::internal)
    }
}

impl From<ArrowError> for GatewayError {
    fn from(e: ArrowError) -> Self {
        arrow_leaf(&e).classify().unwrap_or_else(Self::internal)
    }
}

impl From<arrow_flight::error::FlightError> for GatewayError {
    fn from(e: arrow_flight::error::FlightError) -> Self {
        use arrow_flight::error::FlightError as F;
        match e {
            F::Arrow(a) => a.into(),
            F::ExternalError(inner) => external_leaf(inner.as_ref())
                .classify()
                .unwrap_or_else(Self::internal),
            F::NotYetImplemented(m) => Self::Unimplemented(m),
            F::ProtocolError(m) | F::DecodeError(m) => {
                Self::BadRequest(format!("malformed Flight data: {m}"))
            }
            F::Tonic(status) => {
                Self::Unavailable(format!("the stream failed: {}", status.message()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
    fn wrapped_errors_are_classified_by_their_leaf() {
        let connector = || {
            ConnectorError::new(ErrorClass::PermissionDenied, "source `x` refused")
                .into_datafusion()
        };
        let wrapped = DataFusionError::Context(
            "reading".into(),
            Box::new(DataFusionError::Shared(Arc::new(
                DataFusionError::ArrowError(
                    Box::new(ArrowError::ExternalError(Box::new(connector()))),
                    None,
                ),
            ))),
        );
        assert_eq!(error_label(&wrapped), "permission_denied");
        let s: Status = GatewayError::from(wrapped).into();
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert!(s.message().contains("refused"), "{}", s.message());

        let overflow =
            DataFusionError::ArrowError(Box::new(ArrowError::OffsetOverflowError(1)), None);
        assert_eq!(error_label(&overflow), "resources_exhausted");
        let csv =
            DataFusionError::ArrowError(Box::new(ArrowError::CsvError("bad row".into())), None);
        assert_eq!(
            Status::from(GatewayError::from(csv)).code(),
            tonic::Code::Unavailable
        );
        let gw = DataFusionError::External(Box::new(GatewayError::Timeout("slow".into())));
        assert_eq!(error_label(&gw), "timeout");
    }

    #[test]
    fn unknown_and_internal_errors_are_internal() {
        let foreign = DataFusionError::External("some library's error".into());
        assert_eq!(error_label(&foreign), "internal");
        assert_eq!(
            Status::from(GatewayError::from(foreign)).code(),
            tonic::Code::Internal
        );
        let bug = DataFusionError::Internal("invariant".into());
        assert_eq!(
            Status::from(GatewayError::from(bug)).code(),
            tonic::Code::Internal
        );
    }

    #[test]
    fn plan_errors_are_invalid_argument() {
        let s: Status = GatewayError::from(DataFusionError::Plan("no column x".into())).into();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
    }
}
