//! The `flightsql` source kind: tables and queries of another Flight SQL server (another
//! meshgate, ROAPI, Spice, Dremio, ...), federated: whole sub-plans over its ports are sent
//! to it as one SQL statement in the configured dialect.
//!
//! The remote's answers are untrusted input: a stream that is corrupt, truncated, of another
//! schema or too large fails the query that read it (an error naming the source), never the
//! process; every call is bounded by the source's timeouts.
//!
//! # Source options (`kind: flightsql`)
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `url` | `grpc://host:port` (plain) or `grpc+tls://host:port` (TLS) | required |
//! | `username`, `password` | Basic credentials sent on every call (`password` a secret: `{ env: NAME }` or `{ file: path }`) | none |
//! | `token` | a bearer token (a secret), instead of Basic | none |
//! | `tls_ca_file` | CA certificate (PEM) the server's certificate is checked against, relative to `mesh.yaml` | the webpki roots |
//! | `tls_domain` | the name the server's certificate must carry | the host of `url` |
//! | `dialect` | SQL pushed: `datafusion` (meshgate, ROAPI, other DataFusion servers), `postgres`, `mysql`, `sqlite`, `generic` | `generic` |
//! | `max_message_mb` | largest message accepted from the server | 64 |
//! | `headers` | extra gRPC headers sent on every call (a map of name to value) | none |
//! | `pool_size`, `connect_timeout_ms`, `acquire_timeout_ms`, `statement_timeout_ms` | statements at once, and timeouts (see `meshgate-connector-sql`) | 8, 5000, 10000, 300000 |
//! | `forward_identity` | `{ issuer, key, ttl_s }`: send each query's principal to a remote meshgate that trusts `issuer` with `key` (a secret, 32 bytes or more) | off |
//!
//! # Identity propagation
//!
//! With `forward_identity`, every statement carries the header `x-meshgate-assertion`: an
//! HS256 JWT `{ iss: issuer, sub: principal, groups, iat, exp: iat + ttl_s (60) }` signed
//! with `key`, next to the source's own credentials. A remote meshgate that lists this
//! gateway in `auth.trusted_gateways` (same name, same key, the credentials' principal in
//! `principals`) runs the statement as `sub`, with `sub`'s groups in the remote's own
//! config: the remote's grants, masks and row filters apply to the real consumer, and its
//! audit log and usage name them. An assertion alone authenticates nothing; credentials
//! alone are the service account. Schema lookups (opening ports, drift checks) use the
//! service account.
//! # Port keys
//!
//! `table: [catalog.][schema.]table` (federated; a remote meshgate's port is
//! `domain.product.port`) or `query: "SELECT ..."` (scanned as a derived table).
//!
//! # What is pushed down
//!
//! What the `dialect` allows (`meshgate explain-pushdown --dialect <d>`): with `datafusion`
//! the remote is assumed to evaluate everything as this gateway's DataFusion does (functions,
//! divisions, casts, `ILIKE`), so nearly whole sub-plans go to it; `postgres`, `mysql` and
//! `sqlite` apply those databases' rules (collations forced, `NULLS` ordering, `LIKE` as
//! `GLOB`, ...); `generic` pushes only what every SQL database agrees on, and no string
//! comparison (an unknown server's collation is unknown). A statement the remote cannot
//! plan (its GetFlightInfo answers `INVALID_ARGUMENT`) fails with `FAILED_PRECONDITION`
//! naming the source, usually a wrong `dialect`; `pushdown: off` on the source works around
//! it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::FlightInfo;
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::TableReference;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::unparser::dialect::{
    DefaultDialect, Dialect, MySqlDialect, PostgreSqlDialect, SqliteDialect,
};
use futures::{StreamExt, TryStreamExt};
use meshgate_connector::identity::{self, Caller};
use meshgate_connector::{ConnectorError, ErrorClass, SourceContext};
use meshgate_connector_sql::capability::{self, Capabilities};
use meshgate_connector_sql::{
    credential_fingerprint, quote_table, PoolSettings, SqlBackend, SqlPool, SqlSourceFactory,
};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// The SQL pushed to the server.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DialectName {
    /// ANSI-ish SQL with double-quoted identifiers; few functions pushed.
    #[default]
    Generic,
    /// A DataFusion-based server: DataFusion's functions and semantics.
    Datafusion,
    /// PostgreSQL.
    Postgres,
    /// MySQL.
    Mysql,
    /// SQLite.
    Sqlite,
}

/// Typed source options of `kind: flightsql`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlightSqlOptions {
    /// `grpc://host:port` or `grpc+tls://host:port`.
    pub url: String,
    /// Basic user.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic password (resolved secret).
    #[serde(default)]
    pub password: Option<String>,
    /// Bearer token (resolved secret).
    #[serde(default)]
    pub token: Option<String>,
    /// CA certificate file.
    #[serde(default)]
    pub tls_ca_file: Option<String>,
    /// Certificate name to expect.
    #[serde(default)]
    pub tls_domain: Option<String>,
    /// Dialect of pushed SQL.
    #[serde(default)]
    pub dialect: DialectName,
    /// Largest message accepted, MiB.
    #[serde(default)]
    pub max_message_mb: Option<usize>,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Statements at once.
    #[serde(default)]
    pub pool_size: Option<u32>,
    /// Connect timeout.
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    /// Waiting for a free statement slot.
    #[serde(default)]
    pub acquire_timeout_ms: Option<u64>,
    /// Until the first batch, and between two batches.
    #[serde(default)]
    pub statement_timeout_ms: Option<u64>,
    /// Forward each query's principal.
    #[serde(default)]
    pub forward_identity: Option<ForwardIdentity>,
}

/// `forward_identity` of a `flightsql` source.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardIdentity {
    /// The name the remote trusts (`auth.trusted_gateways[].name` there).
    pub issuer: String,
    /// The shared HMAC key (resolved secret).
    pub key: String,
    /// Lifetime of an assertion, in seconds.
    #[serde(default)]
    pub ttl_s: Option<u64>,
}

impl std::fmt::Debug for ForwardIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardIdentity")
            .field("issuer", &self.issuer)
            .field("ttl_s", &self.ttl_s)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for FlightSqlOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightSqlOptions")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

/// `(tls, host, port)` of a `grpc://` or `grpc+tls://` url.
fn parse_url(url: &str) -> Result<(bool, String, u16), String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("grpc+tls://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("grpc://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("grpc+tcp://") {
        (false, r)
    } else {
        return Err(format!(
            "`url` must start with grpc:// or grpc+tls:// (got `{url}`)"
        ));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("`url` needs a port: `{url}`"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`url` has an invalid port: `{url}`"))?;
    if host.is_empty() || host.contains('/') {
        return Err(format!("`url` has an invalid host: `{url}`"));
    }
    Ok((tls, host.trim_matches(['[', ']']).to_string(), port))
}

fn parse(
    ctx: &SourceContext,
    options: &serde_json::Value,
) -> Result<(Arc<dyn SqlBackend>, PoolSettings), String> {
    let opts: FlightSqlOptions = serde_json::from_value(options.clone())
        .map_err(|e| format!("invalid flightsql options: {e}"))?;
    let (tls, host, port) = parse_url(&opts.url)?;
    if opts.token.is_some() && (opts.username.is_some() || opts.password.is_some()) {
        return Err("give either `token` or `username`/`password`, not both".into());
    }
    if opts.password.is_some() && opts.username.is_none() {
        return Err("`password` needs `username`".into());
    }
    if !tls && (opts.tls_ca_file.is_some() || opts.tls_domain.is_some()) {
        return Err("`tls_ca_file` and `tls_domain` need a grpc+tls:// url".into());
    }
    let ca = opts.tls_ca_file.as_ref().map(|p| ctx.base_dir.join(p));
    if let Some(ca) = &ca {
        if !ca.is_file() {
            return Err(format!("`tls_ca_file` {} does not exist", ca.display()));
        }
    }
    for name in opts.headers.keys() {
        if tonic::metadata::MetadataKey::<tonic::metadata::Ascii>::from_bytes(name.as_bytes())
            .is_err()
        {
            return Err(format!("header name `{name}` is not a valid gRPC header"));
        }
        if name.eq_ignore_ascii_case("authorization") {
            return Err(
                "set credentials with `username`/`password` or `token`, not `headers`".into(),
            );
        }
    }
    if let Some(f) = &opts.forward_identity {
        if f.key.len() < 32 {
            return Err("`forward_identity.key` must be at least 32 bytes".into());
        }
        if f.issuer.is_empty() {
            return Err("`forward_identity.issuer` must not be empty".into());
        }
    }
    if opts.max_message_mb == Some(0) {
        return Err("`max_message_mb` must be at least 1".into());
    }
    let settings = PoolSettings::from_options(
        opts.pool_size,
        opts.connect_timeout_ms,
        opts.acquire_timeout_ms,
        opts.statement_timeout_ms,
    )?;
    Ok((
        Arc::new(FlightSqlBackend {
            opts,
            tls,
            host,
            port,
            ca,
        }),
        settings,
    ))
}

/// The factory of `kind: flightsql`, for the gateway's registry.
pub fn factory() -> SqlSourceFactory {
    SqlSourceFactory::new("flightsql", parse)
}

/// A remote Flight SQL server.
#[derive(Debug)]
struct FlightSqlBackend {
    opts: FlightSqlOptions,
    tls: bool,
    host: String,
    port: u16,
    ca: Option<PathBuf>,
}

impl FlightSqlBackend {
    fn authorization(&self) -> Option<String> {
        use base64::Engine;
        if let Some(t) = &self.opts.token {
            return Some(format!("Bearer {t}"));
        }
        let user = self.opts.username.as_ref()?;
        let pair = format!("{user}:{}", self.opts.password.as_deref().unwrap_or(""));
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }

    fn endpoint(&self, settings: &PoolSettings) -> Result<Endpoint, ConnectorError> {
        let scheme = if self.tls { "https" } else { "http" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let invalid = |e: String| ConnectorError::new(ErrorClass::InvalidConfig, e);
        let mut ep = Endpoint::from_shared(format!("{scheme}://{host}:{}", self.port))
            .map_err(|e| invalid(format!("invalid url: {e}")))?
            .connect_timeout(settings.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20));
        if self.tls {
            let mut tls = ClientTlsConfig::new()
                .domain_name(self.opts.tls_domain.clone().unwrap_or(self.host.clone()));
            match &self.ca {
                Some(ca) => {
                    let pem = std::fs::read(ca).map_err(|e| {
                        invalid(format!("cannot read tls_ca_file {}: {e}", ca.display()))
                    })?;
                    tls = tls.ca_certificate(Certificate::from_pem(pem));
                }
                None => tls = tls.with_webpki_roots(),
            }
            ep = ep
                .tls_config(tls)
                .map_err(|e| invalid(format!("invalid TLS settings: {e}")))?;
        }
        Ok(ep)
    }
}

#[async_trait]
impl SqlBackend for FlightSqlBackend {
    fn kind(&self) -> &'static str {
        "flightsql"
    }

    fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn compute_context(&self) -> String {
        let who = self.opts.username.clone().unwrap_or_else(|| {
            if self.opts.token.is_some() {
                "token"
            } else {
                ""
            }
            .into()
        });
        format!(
            "flightsql://{who}@{}:{}#{}",
            self.host,
            self.port,
            credential_fingerprint(&self.authorization().unwrap_or_default())
        )
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        match self.opts.dialect {
            DialectName::Generic | DialectName::Datafusion => Arc::new(DefaultDialect {}),
            DialectName::Postgres => Arc::new(PostgreSqlDialect {}),
            DialectName::Mysql => Arc::new(MySqlDialect {}),
            DialectName::Sqlite => Arc::new(SqliteDialect {}),
        }
    }

    /// The remote reports the nullability of its result columns.
    fn declares_nullability(&self) -> bool {
        true
    }

    fn capabilities(&self) -> Capabilities {
        match self.opts.dialect {
            DialectName::Generic => capability::GENERIC,
            DialectName::Datafusion => capability::DATAFUSION,
            DialectName::Postgres => capability::POSTGRES,
            DialectName::Mysql => capability::MYSQL,
            DialectName::Sqlite => capability::SQLITE,
        }
    }

    async fn connect(&self, settings: &PoolSettings) -> Result<Arc<dyn SqlPool>, ConnectorError> {
        let channel = self
            .endpoint(settings)?
            .connect()
            .await
            .map_err(|e| ConnectorError::new(ErrorClass::Unavailable, error_chain(&e)))?;
        let max = self.opts.max_message_mb.unwrap_or(64) << 20;
        let mut client = FlightSqlServiceClient::new_from_inner(
            arrow_flight::flight_service_client::FlightServiceClient::new(channel)
                .max_decoding_message_size(max)
                .max_encoding_message_size(16 << 20),
        );
        if let Some(a) = self.authorization() {
            client.set_header("authorization", a);
        }
        for (k, v) in &self.opts.headers {
            client.set_header(k, v);
        }
        let pool = FlightSqlPool {
            forward: self.opts.forward_identity.clone(),
            client,
            slots: Arc::new(Semaphore::new(settings.pool_size as usize)),
            acquire_timeout: settings.acquire_timeout,
            dialect: self.dialect(),
        };
        // One round trip, so that a wrong address or wrong credentials fail here.
        pool.schema_of("SELECT 1").await?;
        Ok(Arc::new(pool))
    }
}

/// A connected channel (HTTP/2 multiplexes the statements) and the statement slots.
struct FlightSqlPool {
    forward: Option<ForwardIdentity>,
    client: FlightSqlServiceClient<Channel>,
    slots: Arc<Semaphore>,
    acquire_timeout: Duration,
    dialect: Arc<dyn Dialect>,
}

impl std::fmt::Debug for FlightSqlPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightSqlPool").finish_non_exhaustive()
    }
}

/// A message and its causes, on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

/// The class of a remote error.
fn flight_error(e: FlightError) -> ConnectorError {
    match e {
        FlightError::Tonic(status) => status_error(&status),
        FlightError::Arrow(e) => ConnectorError::new(
            ErrorClass::Data,
            format!("the server sent data that is not valid Arrow: {e}"),
        ),
        FlightError::DecodeError(m) | FlightError::ProtocolError(m) => ConnectorError::new(
            ErrorClass::Data,
            format!("the server broke the Flight protocol: {m}"),
        ),
        other => ConnectorError::new(ErrorClass::Unavailable, other.to_string()),
    }
}

fn status_error(s: &tonic::Status) -> ConnectorError {
    use tonic::Code;
    let class = match s.code() {
        Code::NotFound => ErrorClass::NotFound,
        Code::Unauthenticated | Code::PermissionDenied => ErrorClass::PermissionDenied,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            let m = s.message().to_ascii_lowercase();
            if m.contains("not found") || m.contains("does not exist") || m.contains("no port") {
                ErrorClass::NotFound
            } else {
                ErrorClass::Query
            }
        }
        Code::DeadlineExceeded => ErrorClass::Timeout,
        Code::Unimplemented => ErrorClass::Query,
        // The remote failed (Unknown, Internal, DataLoss, Unavailable, ...): not a bug of
        // this gateway, and the message is the remote's to show.
        _ => ErrorClass::Unavailable,
    };
    let msg = s.message().lines().next().unwrap_or_default();
    ConnectorError::new(class, format!("the server answered {:?}: {msg}", s.code()))
}

/// The signed assertion of `caller` by `forward` (the wire contract is
/// `meshgate_connector::identity`'s, shared with the gateway that verifies it).
fn assertion(forward: &ForwardIdentity, caller: &Caller) -> Result<String, ConnectorError> {
    identity::sign_assertion(
        &forward.issuer,
        forward.key.as_bytes(),
        caller,
        forward.ttl_s.unwrap_or(identity::DEFAULT_ASSERTION_TTL_S),
    )
    .map_err(|e| ConnectorError::new(ErrorClass::Internal, e.to_string()))
}

impl FlightSqlPool {
    async fn info(&self, sql: &str) -> Result<FlightInfo, ConnectorError> {
        self.info_with(self.client.clone(), sql).await
    }

    async fn info_with(
        &self,
        mut client: FlightSqlServiceClient<Channel>,
        sql: &str,
    ) -> Result<FlightInfo, ConnectorError> {
        client
            .execute(sql.to_string(), None)
            .await
            .map_err(flight_error)
    }

    async fn schema_of(&self, sql: &str) -> Result<SchemaRef, ConnectorError> {
        let info = self.info(sql).await?;
        let schema = info.try_decode_schema().map_err(|e| {
            ConnectorError::new(
                ErrorClass::Data,
                format!("the server sent an invalid schema: {e}"),
            )
        })?;
        Ok(Arc::new(schema))
    }
}

#[async_trait]
impl SqlPool for FlightSqlPool {
    async fn table_schema(&self, table: &TableReference) -> Result<SchemaRef, ConnectorError> {
        let quoted = quote_table(self.dialect.as_ref(), table);
        self.schema_of(&format!("SELECT * FROM {quoted}")).await
    }

    async fn query_schema(&self, sql: &str) -> Result<SchemaRef, ConnectorError> {
        self.schema_of(sql).await
    }

    async fn query(
        &self,
        sql: &str,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream, ConnectorError> {
        self.query_as(sql, schema, None).await
    }

    async fn query_as(
        &self,
        sql: &str,
        schema: SchemaRef,
        caller: Option<Arc<Caller>>,
    ) -> Result<SendableRecordBatchStream, ConnectorError> {
        let mut client = self.client.clone();
        if let Some(forward) = &self.forward {
            // Fail closed: a statement of no known principal is not sent as the service
            // account when identities are forwarded.
            let caller = caller.ok_or_else(|| {
                ConnectorError::new(
                    ErrorClass::PermissionDenied,
                    "forward_identity is on but the statement has no principal to forward",
                )
            })?;
            client.set_header(identity::ASSERTION_HEADER, assertion(forward, &caller)?);
        }
        let permit = tokio::time::timeout(
            self.acquire_timeout,
            Arc::clone(&self.slots).acquire_owned(),
        )
        .await
        .map_err(|_| {
            ConnectorError::new(
                ErrorClass::Timeout,
                format!(
                    "no free statement slot within {} ms (acquire_timeout_ms)",
                    self.acquire_timeout.as_millis()
                ),
            )
        })?
        .map_err(|_| ConnectorError::new(ErrorClass::Unavailable, "the source is closing"))?;
        // With the caller's identity forwarded, the remote's refusal is the caller's.
        let forwarded = self.forward.is_some();
        let as_caller = move |e: ConnectorError| match e.class {
            ErrorClass::PermissionDenied if forwarded => ConnectorError::new(
                ErrorClass::CallerDenied,
                format!("the remote refused the caller: {}", e.message),
            ),
            _ => e,
        };
        // The remote plans the statement when asked for its FlightInfo: a statement it
        // cannot plan was written wrongly for it.
        let info = self
            .info_with(client.clone(), sql)
            .await
            .map_err(|e| match e.class {
                ErrorClass::Query => ConnectorError::new(ErrorClass::PushdownRejected, e.message),
                _ => e,
            })
            .map_err(as_caller)?;
        let mut tickets = Vec::new();
        for ep in info.endpoint {
            if ep
                .location
                .iter()
                .any(|l| !l.uri.is_empty() && !l.uri.starts_with("arrow-flight-reuse-connection"))
            {
                return Err(ConnectorError::new(
                    ErrorClass::Query,
                    "the server sent an endpoint on another location; only results served by the same server are read",
                ));
            }
            let ticket = ep.ticket.ok_or_else(|| {
                ConnectorError::new(
                    ErrorClass::Data,
                    "the server sent an endpoint without a ticket",
                )
            })?;
            tickets.push(ticket);
        }
        // Endpoints are read one after the other; the slot is held until the last batch.
        let batches = futures::stream::iter(tickets)
            .then(move |t| {
                let mut client = client.clone();
                async move {
                    client
                        .do_get(t)
                        .await
                        .map_err(|e| as_caller(flight_error(e)))
                }
            })
            .map_ok(move |s| s.map_err(move |e| as_caller(flight_error(e))))
            .try_flatten()
            .map(move |b| {
                let _held = &permit;
                b.map_err(|e| DataFusionError::External(Box::new(e)))
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("grpc://127.0.0.1:50051").expect("plain url"),
            (false, "127.0.0.1".into(), 50051)
        );
        assert_eq!(
            parse_url("grpc+tls://mesh.example.com:443/").expect("tls url"),
            (true, "mesh.example.com".into(), 443)
        );
        assert!(parse_url("http://x:1").is_err());
        assert!(parse_url("grpc://x").is_err());
        assert!(parse_url("grpc://:1").is_err());
    }

    #[test]
    fn option_checks() {
        let ctx = SourceContext {
            name: "r".into(),
            base_dir: std::env::temp_dir(),
            pushdown: true,
        };
        let err = |v: serde_json::Value| parse(&ctx, &v).err().unwrap_or_default();
        assert!(
            err(serde_json::json!({"url": "grpc://h:1", "token": "t", "username": "u"}))
                .contains("either")
        );
        assert!(
            err(serde_json::json!({"url": "grpc://h:1", "password": "p"})).contains("username")
        );
        assert!(
            err(serde_json::json!({"url": "grpc://h:1", "tls_ca_file": "ca.pem"}))
                .contains("grpc+tls")
        );
        assert!(
            err(serde_json::json!({"url": "grpc://h:1", "headers": {"authorization": "x"}}))
                .contains("token")
        );
        assert!(
            err(serde_json::json!({"url": "grpc://h:1", "dialect": "oracle"})).contains("oracle")
        );
        assert!(parse(
            &ctx,
            &serde_json::json!({"url": "grpc://h:1", "dialect": "datafusion"})
        )
        .is_ok());
    }
}
