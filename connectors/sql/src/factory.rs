//! One factory for every SQL source kind: the kind only says how to read its options.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use meshgate_connector::{
    Connector, ConnectorError, ConnectorFactory, ErrorClass, PortRequest, SourceContext,
};

use crate::source::{PoolSettings, SqlBackend, SqlConnector, SqlSource};
use crate::table::check_port;

/// Reads a kind's options into its backend and pool settings; the error is a sentence for
/// `meshgate validate`.
pub type ParseOptions =
    fn(&SourceContext, &serde_json::Value) -> Result<(Arc<dyn SqlBackend>, PoolSettings), String>;

/// The [`ConnectorFactory`] of a SQL source kind.
pub struct SqlSourceFactory {
    kind: &'static str,
    parse: ParseOptions,
}

impl SqlSourceFactory {
    /// A factory for `kind` whose options `parse` reads.
    pub const fn new(kind: &'static str, parse: ParseOptions) -> Self {
        Self { kind, parse }
    }
}

impl fmt::Debug for SqlSourceFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlSourceFactory")
            .field("kind", &self.kind)
            .finish()
    }
}

#[async_trait]
impl ConnectorFactory for SqlSourceFactory {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn check(
        &self,
        ctx: &SourceContext,
        options: &serde_json::Value,
        ports: &[PortRequest],
    ) -> Vec<(Option<usize>, String)> {
        // Static checks only: whether the server or file is there is a question for run time.
        let mut problems = Vec::new();
        if let Err(e) = (self.parse)(ctx, options) {
            problems.push((None, e));
        }
        for (i, p) in ports.iter().enumerate() {
            if let Err(e) = check_port(p) {
                problems.push((Some(i), e));
            }
        }
        problems
    }

    async fn create(
        &self,
        ctx: SourceContext,
        options: serde_json::Value,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        let (backend, settings) = (self.parse)(&ctx, &options).map_err(|e| {
            ConnectorError::new(
                ErrorClass::InvalidConfig,
                format!("source `{}`: {e}", ctx.name),
            )
        })?;
        let source = SqlSource::new(ctx.name, backend, settings).with_pushdown(ctx.pushdown);
        Ok(Arc::new(SqlConnector::new(Arc::new(source))))
    }
}
