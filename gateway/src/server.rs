//! Building and running the gateway: mesh → catalog → engine → Flight SQL over gRPC.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use meshgate_config::Mesh;
use meshgate_connector::Registry;
use tokio::net::TcpListener;

use crate::catalog::MeshCatalog;
use crate::connectors::load_and_check;
use crate::error::GatewayError;
use crate::flight::{FlightSettings, MeshFlightSqlService};
use crate::query::limits::SqlLimits;
use crate::query::{session_config, QueryEngine};

/// How the gateway runs.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Partitions per query (defaults to the number of cores).
    pub target_partitions: usize,
    /// Memory all queries together may use, in bytes.
    pub memory_limit: usize,
    /// SQL budgets.
    pub limits: SqlLimits,
    /// Flight settings.
    pub flight: FlightSettings,
    /// How often each port's source schema is compared with its contract (also once at
    /// start-up); `None`: only at start-up.
    pub drift_interval: Option<Duration>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            target_partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            memory_limit: 4 << 30,
            limits: SqlLimits::default(),
            flight: FlightSettings::default(),
            drift_interval: Some(Duration::from_secs(300)),
        }
    }
}

/// The DataFusion runtime shared by every query: a bounded memory pool and spill files, and
/// caches of file listings (each `files` port decides how long its listing is reused),
/// statistics and Parquet footers.
pub fn runtime_env(opts: &GatewayOptions) -> Result<Arc<RuntimeEnv>, GatewayError> {
    let caches = datafusion::execution::cache::cache_manager::CacheManagerConfig::default()
        // 1 MiB (DataFusion's default) holds the listing of only ~5,000 objects.
        .with_list_files_cache_limit(32 << 20);
    Ok(RuntimeEnvBuilder::new()
        .with_memory_limit(opts.memory_limit, 1.0)
        .with_cache_manager(caches)
        .build_arc()?)
}

/// Opens every port of `mesh` and builds a query engine over them.
pub async fn build_engine(
    mesh: Mesh,
    registry: &Registry,
    opts: &GatewayOptions,
) -> Result<Arc<QueryEngine>, GatewayError> {
    let runtime = runtime_env(opts)?;
    let mesh = Arc::new(mesh);
    // Ports are opened (schemas inferred) with a plain session over the same runtime.
    let probe = datafusion::execution::session_state::SessionStateBuilder::new()
        .with_config(session_config(opts.target_partitions))
        .with_runtime_env(Arc::clone(&runtime))
        .build();
    let catalog = Arc::new(MeshCatalog::build(mesh, registry, &probe).await?);
    tracing::info!(
        ports = catalog.served().len(),
        unavailable = catalog.unavailable().len(),
        "mesh loaded"
    );
    spawn_drift_checks(&catalog, opts.drift_interval);
    Ok(Arc::new(QueryEngine::new(
        catalog,
        runtime,
        opts.target_partitions,
        opts.limits.clone(),
    )))
}

/// Compares the sources with the contracts now and then every `interval`, for as long as the
/// catalog serves (a reload drops it and the checks stop).
fn spawn_drift_checks(catalog: &Arc<MeshCatalog>, interval: Option<Duration>) {
    let weak = Arc::downgrade(catalog);
    tokio::spawn(async move {
        loop {
            let Some(catalog) = weak.upgrade() else {
                return;
            };
            catalog.check_drift().await;
            drop(catalog);
            match interval {
                Some(d) => tokio::time::sleep(d).await,
                None => return,
            }
        }
    });
}

/// Loads and checks the mesh directory, then builds the Flight SQL service over it.
pub async fn service_for_dir(
    dir: &Path,
    registry: &Registry,
    opts: &GatewayOptions,
    exec: tokio::runtime::Handle,
) -> Result<MeshFlightSqlService, GatewayError> {
    let mesh =
        load_and_check(dir, registry).map_err(|e| GatewayError::BadRequest(e.to_string()))?;
    let engine = build_engine(mesh, registry, opts).await?;
    MeshFlightSqlService::new(engine, opts.flight.clone(), exec)
}

/// Serves `service` on `listener` until `shutdown` resolves; running streams are given a
/// moment to finish.
pub async fn serve(
    listener: TcpListener,
    service: MeshFlightSqlService,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GatewayError> {
    let tls = service.engine().catalog().mesh.auth.tls.clone();
    let catalog = crate::catalog_service::catalog_server(service.clone());
    let svc = FlightServiceServer::new(service)
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(16 << 20);
    // grpc.health.v1 on the same port: "" (the server) and the Flight service serve.
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<FlightServiceServer<MeshFlightSqlService>>()
        .await;
    reporter
        .set_serving::<meshgate_proto::v1::catalog_server::CatalogServer<crate::catalog_service::CatalogService>>()
        .await;
    // gRPC server reflection (v1 and v1alpha) on the same port, so grpcurl and grpcui list and
    // call the services without .proto files. It tells the API, no data: unauthenticated
    // like health.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(meshgate_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| GatewayError::internal(format!("gRPC reflection: {e}")))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| GatewayError::internal(format!("gRPC reflection: {e}")))?;
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &tls {
        builder = builder
            .tls_config(tls_config(tls)?)
            .map_err(|e| GatewayError::BadRequest(format!("invalid TLS settings: {e}")))?;
    }
    builder
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .max_concurrent_streams(Some(256))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(catalog)
        .add_service(svc)
        // The builder's `tcp_nodelay` applies only to listeners tonic binds itself: set it on
        // every accepted connection here, or small responses wait for Nagle's 40 ms.
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        .map_err(|e| GatewayError::Unavailable(format!("the Flight SQL server stopped: {e}")))
}

/// The TLS settings of `auth.tls`: the gateway's certificate, and with `client_ca_file`
/// mutual TLS (client certificates verified against that CA; required unless
/// `require_client_cert: false`).
pub fn tls_config(
    tls: &meshgate_config::Tls,
) -> Result<tonic::transport::ServerTlsConfig, GatewayError> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| {
            GatewayError::BadRequest(format!("auth.tls: cannot read {}: {e}", p.display()))
        })
    };
    let identity = Identity::from_pem(read(&tls.cert_file)?, read(&tls.key_file)?);
    let mut cfg = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &tls.client_ca_file {
        cfg = cfg
            .client_ca_root(Certificate::from_pem(read(ca)?))
            .client_auth_optional(!tls.require_client_cert);
    }
    Ok(cfg)
}

/// Binds `addr` (port 0 picks a free port) and returns the listener with its real address.
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), GatewayError> {
    let l = TcpListener::bind(addr)
        .await
        .map_err(|e| GatewayError::Unavailable(format!("cannot listen on {addr}: {e}")))?;
    let local = l
        .local_addr()
        .map_err(|e| GatewayError::Unavailable(e.to_string()))?;
    Ok((l, local))
}
