//! The HTTP endpoints: `/metrics` (Prometheus), `/health/live` and `/health/ready`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::error::GatewayError;
use crate::metrics::esc;
use crate::state::GatewayState;

/// The Prometheus text exposition: the gateway's counters, and gauges of the engine serving
/// now (source pools, memory, ports by status).
pub fn metrics_text(state: &GatewayState) -> String {
    let mut o = String::new();
    state.metrics().render(&mut o);
    let engine = state.engine();
    let catalog = engine.catalog();
    let pools = catalog.pool_stats();
    for (metric, help, pick) in [
        (
            "meshgate_source_pool_connections",
            "Connections a source's pool may hold (pool_size).",
            (|p: &meshgate_connector::PoolStats| p.size)
                as fn(&meshgate_connector::PoolStats) -> u64,
        ),
        (
            "meshgate_source_pool_in_use",
            "Connections of a source's pool running a statement now.",
            |p| p.in_use,
        ),
        (
            "meshgate_source_pool_waiting",
            "Statements waiting for a free connection of a source's pool now.",
            |p| p.waiting,
        ),
    ] {
        let _ = writeln!(o, "# HELP {metric} {help}");
        let _ = writeln!(o, "# TYPE {metric} gauge");
        for (s, p) in &pools {
            let _ = writeln!(o, "{metric}{{source=\"{}\"}} {}", esc(s), pick(p));
        }
    }
    admission_metrics(&mut o, engine.admission());
    let health = catalog.source_health();
    for (metric, help, pick) in [
        (
            "meshgate_source_consecutive_failures",
            "Statements in a row that could not reach a source (0: the last one did).",
            (|h: &meshgate_connector::SourceHealth| u64::from(h.consecutive_failures))
                as fn(&meshgate_connector::SourceHealth) -> u64,
        ),
        (
            "meshgate_source_circuit_open",
            "1 while a source's statements fail at once (circuit breaker open).",
            |h| u64::from(h.circuit_open),
        ),
    ] {
        let _ = writeln!(o, "# HELP {metric} {help}");
        let _ = writeln!(o, "# TYPE {metric} gauge");
        for (s, h) in &health {
            let _ = writeln!(o, "{metric}{{source=\"{}\"}} {}", esc(s), pick(h));
        }
    }
    let _ = writeln!(
        o,
        "# HELP meshgate_memory_pool_reserved_bytes Memory reserved by running queries."
    );
    let _ = writeln!(o, "# TYPE meshgate_memory_pool_reserved_bytes gauge");
    let _ = writeln!(
        o,
        "meshgate_memory_pool_reserved_bytes {}",
        engine.session().runtime_env().memory_pool.reserved()
    );
    let _ = writeln!(o, "# HELP meshgate_ports Ports by status.");
    let _ = writeln!(o, "# TYPE meshgate_ports gauge");
    let degraded = catalog.degraded_ports().len();
    let unavailable = catalog.unavailable().len();
    let _ = writeln!(
        o,
        "meshgate_ports{{status=\"ok\"}} {}",
        catalog.served().len().saturating_sub(degraded)
    );
    let _ = writeln!(o, "meshgate_ports{{status=\"degraded\"}} {degraded}");
    let _ = writeln!(o, "meshgate_ports{{status=\"unavailable\"}} {unavailable}");
    o
}

/// The body of `/health/ready`: ports that are degraded or unavailable, and the sources
/// behind the unavailable ones.
pub fn ready_json(state: &GatewayState) -> String {
    let engine = state.engine();
    let catalog = engine.catalog();
    let degraded: Vec<serde_json::Value> = catalog
        .degraded_ports()
        .iter()
        .map(|(k, p)| serde_json::json!({ "port": k.to_string(), "problems": p }))
        .collect();
    let unavailable = catalog.unavailable();
    let unavailable_json: Vec<serde_json::Value> = unavailable
        .iter()
        .map(|(k, e)| serde_json::json!({ "port": k.to_string(), "error": e.to_string() }))
        .collect();
    let mut sources: Vec<String> = unavailable
        .keys()
        .filter_map(|k| {
            catalog
                .mesh
                .port(&k.domain, &k.product, &k.port)
                .map(|p| p.source.to_string())
        })
        .collect();
    sources.sort();
    sources.dedup();
    let failing: Vec<serde_json::Value> = catalog
        .source_health()
        .into_iter()
        .filter(|(_, h)| h.consecutive_failures > 0)
        .map(|(name, h)| {
            serde_json::json!({
                "source": name,
                "consecutive_failures": h.consecutive_failures,
                "circuit_open": h.circuit_open,
                "last_error": h.last_error,
                "failing_since": h.failing_since.map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339()),
            })
        })
        .collect();
    serde_json::json!({
        "failing_sources": failing,
        "ready": !state.draining(),
        "draining": state.draining(),
        "ports": catalog.mesh.ports().count(),
        "degraded_ports": degraded,
        "unavailable_ports": unavailable_json,
        "unavailable_sources": sources,
    })
    .to_string()
}

/// Serves `/metrics`, `/health/live` and `/health/ready` on `listener` until `shutdown`.
pub async fn serve_http(
    listener: TcpListener,
    state: Arc<GatewayState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    use axum::http::header::CONTENT_TYPE;
    use axum::routing::get;
    let for_metrics = Arc::clone(&state);
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let body = metrics_text(&for_metrics);
                async move {
                    (
                        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                        body,
                    )
                }
            }),
        )
        .route("/health/live", get(|| async { "ok\n" }))
        .route(
            "/health/ready",
            get(move || {
                let body = ready_json(&state);
                // A draining gateway answers 503, so load balancers stop sending it work.
                let code = if state.draining() {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::OK
                };
                async move { (code, [(CONTENT_TYPE, "application/json")], body) }
            }),
        );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| GatewayError::Unavailable(format!("the HTTP server stopped: {e}")))
}

/// Binds the HTTP address (`--http-addr`).
pub async fn bind_http(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), GatewayError> {
    let l = TcpListener::bind(addr).await.map_err(|e| {
        GatewayError::Unavailable(format!("cannot listen on {addr} (--http-addr): {e}"))
    })?;
    let local = l
        .local_addr()
        .map_err(|e| GatewayError::Unavailable(e.to_string()))?;
    Ok((l, local))
}

/// Admission control: slots in use, queue, and per principal running, queued and refused.
fn admission_metrics(o: &mut String, a: &crate::query::admission::Admission) {
    let limits = a.limits();
    for (metric, help, value) in [
        (
            "meshgate_queries_running",
            "Queries holding an admission slot now.",
            a.running() as u64,
        ),
        (
            "meshgate_queries_queued",
            "Queries waiting for an admission slot now.",
            a.queued() as u64,
        ),
        (
            "meshgate_queries_max_running",
            "limits.max_running_queries in force.",
            limits.max_running as u64,
        ),
        (
            "meshgate_queries_max_queued",
            "limits.max_queued_queries in force.",
            limits.max_queued as u64,
        ),
    ] {
        let _ = writeln!(o, "# HELP {metric} {help}");
        let _ = writeln!(o, "# TYPE {metric} gauge");
        let _ = writeln!(o, "{metric} {value}");
    }
    let consumers = a.consumers();
    for (metric, kind, help) in [
        (
            "meshgate_principal_queries_running",
            "gauge",
            "Queries of a principal holding a slot now.",
        ),
        (
            "meshgate_principal_queries_queued",
            "gauge",
            "Queries of a principal waiting for a slot now.",
        ),
        (
            "meshgate_queries_rejected_total",
            "counter",
            "Queries refused by an admission limit (queue full or wait too long), by principal.",
        ),
    ] {
        let _ = writeln!(o, "# HELP {metric} {help}");
        let _ = writeln!(o, "# TYPE {metric} {kind}");
        for c in &consumers {
            let value = match kind {
                "counter" => c.rejected as i64,
                _ if metric.ends_with("running") => c.running,
                _ => c.queued,
            };
            let _ = writeln!(o, "{metric}{{principal=\"{}\"}} {value}", esc(&c.principal));
        }
    }
}
