//! Error classes shared by every connector, mapped once to gRPC codes by the gateway.

use std::fmt;

/// What kind of failure a connector reports; the gateway maps each class to one gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Options or port binding are wrong (a config problem).
    InvalidConfig,
    /// The table, file or object does not exist.
    NotFound,
    /// The source cannot be reached now; retrying later may work.
    Unavailable,
    /// The source took too long.
    Timeout,
    /// The source refused our credentials or the object.
    PermissionDenied,
    /// The source refused the calling principal, whose identity the gateway forwarded: the
    /// caller lacks access there (not the gateway).
    CallerDenied,
    /// The data does not fit the declared or inferred schema.
    Data,
    /// The source failed evaluating the caller's statement (division by zero, invalid cast,
    /// out-of-range value): the query is at fault, not the source.
    Query,
    /// The source rejected SQL the gateway wrote for it (a syntax error, an unknown column
    /// or function): a bug of the gateway's pushdown, not of the query or the source.
    PushdownRejected,
    /// A bug or an unexpected state.
    Internal,
}

/// An error from a connector: a class and a sentence a user can act on. Never contains a
/// secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorError {
    /// The class.
    pub class: ErrorClass,
    /// What failed, naming the source and the object.
    pub message: String,
}

impl ConnectorError {
    /// An error of `class`.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
        }
    }

    /// Wraps this error for DataFusion, keeping it downcastable.
    pub fn into_datafusion(self) -> datafusion::error::DataFusionError {
        datafusion::error::DataFusionError::External(Box::new(self))
    }
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectorError {}
