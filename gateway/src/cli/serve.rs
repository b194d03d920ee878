//! `meshgate serve` and `meshgate demo`: the gateway's process, its runtimes, logging,
//! tracing, signals and the HTTP endpoints.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::connectors::default_registry;
use crate::error::GatewayError;
use crate::server::{bind, serve, state_for_dir, GatewayOptions};

use super::LogFormat;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address of the Flight SQL endpoint.
    #[arg(long, default_value = "127.0.0.1:50051", env = "MESHGATE_FLIGHT_ADDR")]
    pub flight_addr: SocketAddr,
    /// Address of the HTTP endpoints: /metrics (Prometheus), /health/live, /health/ready.
    #[arg(long, default_value = "127.0.0.1:9090", env = "MESHGATE_HTTP_ADDR")]
    http_addr: SocketAddr,
    /// Memory all running queries may use together, in MiB.
    #[arg(long, default_value_t = 4096)]
    memory_limit_mb: usize,
    /// Partitions per query (default: number of cores).
    #[arg(long)]
    target_partitions: Option<usize>,
    /// File holding the secret that tickets and prepared-statement handles are signed with
    /// (at least 32 bytes). Give every replica behind one load balancer the same file; without
    /// it each process signs with a random key.
    #[arg(long, env = "MESHGATE_TICKET_KEY_FILE")]
    ticket_key_file: Option<PathBuf>,
    /// How often the mesh directory is checked for changes, in seconds (0: only on SIGHUP).
    /// A valid changed mesh is swapped in without interrupting running queries; an invalid one
    /// is refused and logged.
    #[arg(long, default_value_t = 2)]
    reload_interval_s: u64,
    /// How often each port's source schema is compared with its contract, in seconds (also
    /// once at start-up; 0: only then). An incompatible source degrades its port.
    #[arg(long, default_value_t = 300)]
    drift_check_interval_s: u64,
    /// How long a ticket from GetFlightInfo stays valid, in seconds.
    #[arg(long, default_value_t = 3600)]
    ticket_ttl_s: u64,
    /// On SIGTERM/SIGINT, how long running queries may go on (readiness is false and new
    /// queries are refused meanwhile) before they are cancelled, in seconds.
    #[arg(long, default_value_t = 30, env = "MESHGATE_DRAIN_TIMEOUT_S")]
    drain_timeout_s: u64,
    /// Directory for the gateway's state (usage records); overrides `state_dir` of mesh.yaml.
    #[arg(long, env = "MESHGATE_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Write the audit log (one JSON line per request) to this file, or `-` for stdout;
    /// overrides `audit.file` of mesh.yaml.
    #[arg(long, env = "MESHGATE_AUDIT_LOG")]
    audit_log: Option<PathBuf>,
    /// Export traces over OTLP/gRPC to this collector endpoint (e.g. http://127.0.0.1:4317):
    /// spans for each query, its planning, its streaming and each source sub-query. Off when
    /// not given.
    #[arg(long, env = "MESHGATE_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// `service.name` of the exported traces.
    #[arg(long, default_value = "meshgate")]
    otlp_service_name: String,
    /// Share of traces started by the gateway that are exported (0 to 1); a client's sampled
    /// `traceparent` is always followed.
    #[arg(long, default_value_t = 1.0)]
    otlp_sample_ratio: f64,
}

/// Log lines to stderr (`RUST_LOG` filters them, default `info`); with `telemetry`, the
/// gateway's spans are exported too. Spans never decorate log lines.
fn init_tracing(format: LogFormat, telemetry: Option<&crate::telemetry::Telemetry>) {
    use tracing_subscriber::layer::{Layer, SubscriberExt};
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let events_only = tracing_subscriber::filter::filter_fn(|m| m.is_event());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt: Box<dyn Layer<_> + Send + Sync> = match format {
        LogFormat::Text => fmt.with_filter(filter).with_filter(events_only).boxed(),
        LogFormat::Json => fmt
            .json()
            .with_filter(filter)
            .with_filter(events_only)
            .boxed(),
    };
    let otel = telemetry.map(|t| {
        t.layer()
            .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                m.is_span() && m.target().starts_with("meshgate")
            }))
    });
    tracing_subscriber::registry().with(fmt).with(otel).init();
}

fn options(args: &ServeArgs) -> Result<GatewayOptions, GatewayError> {
    let mut o = GatewayOptions {
        memory_limit: args.memory_limit_mb << 20,
        ..Default::default()
    };
    o.flight.ticket_ttl = std::time::Duration::from_secs(args.ticket_ttl_s.max(1));
    o.drain_timeout = std::time::Duration::from_secs(args.drain_timeout_s);
    o.drift_interval = (args.drift_check_interval_s > 0)
        .then(|| std::time::Duration::from_secs(args.drift_check_interval_s));
    if let Some(n) = args.target_partitions {
        o.target_partitions = n.max(1);
    }
    if let Some(path) = &args.ticket_key_file {
        let secret = std::fs::read(path).map_err(|e| {
            GatewayError::BadRequest(format!(
                "cannot read --ticket-key-file {}: {e}",
                path.display()
            ))
        })?;
        if secret.len() < 32 {
            return Err(GatewayError::BadRequest(format!(
                "--ticket-key-file {} holds {} bytes; use at least 32 random bytes (e.g. `head -c 32 /dev/urandom > key`)",
                path.display(),
                secret.len()
            )));
        }
        o.flight.ticket_secret = Some(secret);
    }
    o.flight.state_dir = args.state_dir.clone();
    if let Some(path) = &args.audit_log {
        o.flight.audit = Some(if path.as_os_str() == "-" {
            meshgate_config::AuditTarget::Stdout
        } else {
            meshgate_config::AuditTarget::File(path.clone())
        });
    }
    Ok(o)
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called (not when
/// the future is first polled), so a signal that arrives right after start-up is not lost.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {},
                        _ = int.recv() => {},
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            tracing::info!("shutting down");
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}

/// The runtime that executes queries, apart from the one serving gRPC, so a heavy query
/// cannot starve keepalives and other clients' calls. Large stacks for deep expressions.
fn exec_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("meshgate-exec")
        .thread_stack_size(16 << 20)
        .enable_all()
        .build()
}

async fn run_server(
    dir: PathBuf,
    args: &ServeArgs,
    banner: Option<fn(&SocketAddr) -> String>,
    exec: tokio::runtime::Handle,
) -> Result<(), GatewayError> {
    let opts = options(args)?;
    let state = state_for_dir(&dir, &default_registry(), &opts, exec).await?;
    let interval = (args.reload_interval_s > 0)
        .then(|| std::time::Duration::from_secs(args.reload_interval_s));
    let watcher = crate::reload::spawn_watcher(
        dir.clone(),
        default_registry(),
        std::sync::Arc::clone(&state),
        interval,
    );
    let shutdown = shutdown_signal();
    let (http_listener, http_addr) = crate::http::bind_http(args.http_addr).await?;
    let (listener, addr) = bind(args.flight_addr).await?;
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(crate::http::serve_http(
        http_listener,
        std::sync::Arc::clone(&state),
        async {
            let _ = http_stopped.await;
        },
    ));
    tracing::info!(%http_addr, "HTTP endpoints: /metrics, /health/live, /health/ready");
    tracing::info!(%addr, mesh = %dir.display(), "meshgate is serving Flight SQL");
    if let Some(b) = banner {
        println!("{}", b(&addr));
    }
    let result = serve(listener, state, shutdown).await;
    watcher.abort();
    let _ = stop_http.send(());
    let _ = http.await;
    result
}

/// Runs the gateway over the mesh directory `dir` gives (after the demo data is made, for
/// `demo`) until SIGINT or SIGTERM.
pub fn run(
    log_format: LogFormat,
    args: &ServeArgs,
    dir: impl FnOnce(&ServeArgs) -> Result<PathBuf, GatewayError>,
    banner: Option<fn(&SocketAddr) -> String>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let telemetry = match &args.otlp_endpoint {
        Some(endpoint) => {
            let settings = crate::telemetry::OtlpSettings {
                endpoint: endpoint.clone(),
                service_name: args.otlp_service_name.clone(),
                sample_ratio: args.otlp_sample_ratio,
                timeout: std::time::Duration::from_secs(10),
            };
            match runtime.block_on(async { crate::telemetry::Telemetry::start(&settings) }) {
                Ok(t) => Some(t),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        None => None,
    };
    init_tracing(log_format, telemetry.as_ref());
    if let Some(endpoint) = &args.otlp_endpoint {
        tracing::info!(endpoint = %endpoint, sample_ratio = args.otlp_sample_ratio, "exporting traces over OTLP");
    }
    let exec = match exec_runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the execution runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = dir(args)
        .and_then(|dir| runtime.block_on(run_server(dir, args, banner, exec.handle().clone())));
    exec.shutdown_timeout(std::time::Duration::from_secs(5));
    if let Some(t) = telemetry {
        t.shutdown();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
