//! Serving the gateway over gRPC: Flight SQL, the Catalog service, health and reflection
//! on one port, over the state built by [`crate::state`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use meshgate_connector::Registry;
use tokio::net::TcpListener;

use crate::error::GatewayError;
use crate::flight::{GuardedFlightService, MeshFlightSqlService};
use crate::state::GatewayState;

pub use crate::state::{build_engine, runtime_env, GatewayOptions};

/// Loads and checks the mesh directory, then builds the gateway's state over it.
pub async fn state_for_dir(
    dir: &Path,
    registry: &Registry,
    opts: &GatewayOptions,
    exec: tokio::runtime::Handle,
) -> Result<Arc<GatewayState>, GatewayError> {
    GatewayState::for_dir(dir, registry, opts.clone(), exec).await
}

/// Serves `state` on `listener` until `shutdown` resolves; running streams are given a
/// moment to finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<GatewayState>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GatewayError> {
    let tls = state.engine().catalog().mesh.auth.tls.clone();
    let catalog = crate::catalog_service::catalog_server(Arc::clone(&state));
    let drain = (Arc::clone(&state), state.options().drain_timeout);
    let service = GuardedFlightService(MeshFlightSqlService::new(state));
    let svc = FlightServiceServer::new(service)
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(16 << 20);
    // grpc.health.v1 on the same port: "" (the server) and the Flight service serve.
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<FlightServiceServer<GuardedFlightService>>()
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
    // Shutdown: readiness turns false, no new connection or query is taken, running
    // streams get `drain_timeout` to end, then they are cancelled (sources included).
    let (begun_tx, begun_rx) = tokio::sync::oneshot::channel::<()>();
    let reporter_on_drain = reporter.clone();
    let (state, drain_timeout) = drain;
    let state_for_signal = Arc::clone(&state);
    let shutdown = async move {
        shutdown.await;
        state_for_signal.start_draining();
        reporter_on_drain
            .set_not_serving::<FlightServiceServer<GuardedFlightService>>()
            .await;
        tracing::info!(
            drain_timeout_s = drain_timeout.as_secs_f64(),
            "shutting down: draining running queries"
        );
        let _ = begun_tx.send(());
    };
    let server = builder
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
        );
    let stopper = tokio::spawn(async move {
        if begun_rx.await.is_ok() {
            tokio::time::sleep(drain_timeout).await;
            tracing::warn!("drain time over: cancelling the queries still running");
            state.stop_queries();
        }
    });
    let result = server.await;
    stopper.abort();
    result.map_err(|e| GatewayError::Unavailable(format!("the Flight SQL server stopped: {e}")))
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
