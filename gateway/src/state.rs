//! The gateway's shared state, built in one place and handed to every front end (the Flight
//! SQL service, the gRPC Catalog service, the HTTP endpoints, the reload watcher): the engine
//! serving now with its authenticator (swapped together by a reload), the audit log, usage,
//! metrics, the signer of tickets and handles, and the settings.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use meshgate_config::Mesh;
use meshgate_connector::Registry;

use crate::catalog::MeshCatalog;
use crate::connectors::load_and_check;
use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::query::limits::SqlLimits;
use crate::query::{session_config, EngineObservers, QueryEngine};
use crate::security::audit::AuditLog;
use crate::security::authn::Authenticator;
use crate::security::signing::TicketSigner;
use crate::usage::Usage;

/// Settings of the request path: messages, tickets, handles, audit and state.
#[derive(Debug, Clone)]
pub struct FlightSettings {
    /// Largest Flight data message sent (clients refuse messages over 16 MiB by default).
    pub max_message_bytes: usize,
    /// How long a ticket stays valid after GetFlightInfo.
    pub ticket_ttl: Duration,
    /// Secret the ticket signing key is derived from; replicas behind one load balancer need
    /// the same one. `None`: a random key per process (tickets do not survive a restart).
    pub ticket_secret: Option<Vec<u8>>,
    /// How long a prepared statement handle stays valid after it was issued (by
    /// CreatePreparedStatement, or by the DoPut that bound its parameters).
    pub prepared_ttl: Duration,
    /// Most parameter bindings remembered per principal for clients that keep using the
    /// handle they had before DoPut (see `flight/prepared.rs`).
    pub max_prepared: usize,
    /// Most bytes of such bindings over every principal.
    pub max_prepared_bytes: usize,
    /// Audit log destination overriding the mesh's `audit` (the `--audit-log` flag).
    pub audit: Option<meshgate_config::AuditTarget>,
    /// State directory overriding the mesh's `state_dir` (the `--state-dir` flag).
    pub state_dir: Option<std::path::PathBuf>,
}

impl Default for FlightSettings {
    fn default() -> Self {
        Self {
            max_message_bytes: 2 << 20,
            ticket_ttl: Duration::from_secs(3600),
            ticket_secret: None,
            prepared_ttl: Duration::from_secs(24 * 3600),
            max_prepared: 100,
            max_prepared_bytes: 256 << 20,
            audit: None,
            state_dir: None,
        }
    }
}

/// How the gateway runs.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Partitions per query (defaults to the number of cores).
    pub target_partitions: usize,
    /// Memory all queries together may use, in bytes.
    pub memory_limit: usize,
    /// SQL budgets.
    pub limits: SqlLimits,
    /// Request path settings.
    pub flight: FlightSettings,
    /// How often each port's source schema is compared with its contract (also once at
    /// start-up); `None`: only at start-up.
    pub drift_interval: Option<Duration>,
    /// On shutdown, how long running queries may go on before they are cancelled.
    pub drain_timeout: Duration,
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
            drain_timeout: Duration::from_secs(30),
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

/// Opens every port of `mesh` and builds a query engine over them, reporting to
/// `observers`.
pub async fn build_engine(
    mesh: Mesh,
    registry: &Registry,
    opts: &GatewayOptions,
    observers: EngineObservers,
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
        observers,
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

/// The engine and the authenticator of one mesh: swapped together.
#[derive(Debug)]
struct Serving {
    engine: Arc<QueryEngine>,
    authn: Arc<Authenticator>,
}

/// The gateway's shared state.
#[derive(Debug)]
pub struct GatewayState {
    serving: RwLock<Arc<Serving>>,
    audit: AuditLog,
    metrics: Arc<Metrics>,
    usage: Arc<Usage>,
    signer: TicketSigner,
    password_checks: crate::security::throttle::PasswordChecks,
    /// `true` once shutdown began: readiness is false and new queries are refused.
    draining: std::sync::atomic::AtomicBool,
    /// Set when the drain time is over: running queries stop.
    stop: tokio::sync::watch::Sender<bool>,
    /// Running queries by ticket, for CancelFlightInfo.
    queries: crate::cancel::Queries,
    options: GatewayOptions,
    exec: tokio::runtime::Handle,
}

fn authenticator(mesh: &Mesh, signer: &TicketSigner) -> Result<Authenticator, GatewayError> {
    Authenticator::new(&mesh.auth, signer.clone())
        .map_err(|e| GatewayError::BadRequest(format!("invalid auth settings: {e}")))
}

impl GatewayState {
    /// Builds the state over `mesh` (already checked): opens the audit log and the usage
    /// store (the flags override the mesh's `audit` and `state_dir`), then the engine.
    /// Queries execute on `exec` (a runtime apart from the one serving I/O).
    pub async fn open(
        mesh: Mesh,
        registry: &Registry,
        options: GatewayOptions,
        exec: tokio::runtime::Handle,
    ) -> Result<Arc<Self>, GatewayError> {
        let settings = &options.flight;
        let signer = match &settings.ticket_secret {
            Some(secret) => TicketSigner::from_secret(secret, settings.ticket_ttl),
            None => TicketSigner::random(settings.ticket_ttl),
        };
        let audit_target = settings.audit.clone().or_else(|| mesh.audit.clone());
        let audit = AuditLog::open(audit_target.as_ref()).map_err(|e| {
            GatewayError::Unavailable(format!("cannot open the audit log {audit_target:?}: {e}"))
        })?;
        let usage = match settings
            .state_dir
            .clone()
            .or_else(|| mesh.state_dir.clone())
        {
            Some(dir) => Usage::open(&dir).map_err(|e| {
                GatewayError::Unavailable(format!(
                    "cannot open the state directory {}: {e}",
                    dir.display()
                ))
            })?,
            None => {
                tracing::info!("no state_dir: usage is kept in memory and lost on restart");
                Usage::in_memory()
            }
        };
        let observers = EngineObservers {
            usage: Arc::new(usage),
            metrics: Arc::new(Metrics::default()),
        };
        let authn = authenticator(&mesh, &signer)?;
        if !authn.accepts_anyone() {
            tracing::warn!("mesh.yaml declares no users, tokens, JWT issuer, client CA or anonymous access: every request will be refused");
        }
        let engine = build_engine(mesh, registry, &options, observers.clone()).await?;
        Ok(Arc::new(Self {
            serving: RwLock::new(Arc::new(Serving {
                engine,
                authn: Arc::new(authn),
            })),
            audit,
            metrics: observers.metrics,
            usage: observers.usage,
            signer,
            password_checks: crate::security::throttle::PasswordChecks::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
            draining: std::sync::atomic::AtomicBool::new(false),
            stop: tokio::sync::watch::channel(false).0,
            queries: crate::cancel::Queries::default(),
            options,
            exec,
        }))
    }

    /// Loads and checks the mesh directory `dir`, then builds the state over it.
    pub async fn for_dir(
        dir: &Path,
        registry: &Registry,
        options: GatewayOptions,
        exec: tokio::runtime::Handle,
    ) -> Result<Arc<Self>, GatewayError> {
        let mesh =
            load_and_check(dir, registry).map_err(|e| GatewayError::BadRequest(e.to_string()))?;
        Self::open(mesh, registry, options, exec).await
    }

    fn serving(&self) -> Arc<Serving> {
        Arc::clone(&self.serving.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The cancellable queries of this replica.
    pub fn queries(&self) -> &crate::cancel::Queries {
        &self.queries
    }

    /// Begins shutdown: readiness turns false and new queries are refused.
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether shutdown began.
    pub fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Ends the drain: every running query stops (its sources' statements too).
    pub fn stop_queries(&self) {
        self.stop.send_replace(true);
    }

    /// Resolves when running queries must stop.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    /// The bound on concurrent password checks and the per-client failure counts.
    pub fn password_checks(&self) -> &crate::security::throttle::PasswordChecks {
        &self.password_checks
    }

    /// The engine serving now.
    pub fn engine(&self) -> Arc<QueryEngine> {
        Arc::clone(&self.serving().engine)
    }

    /// The authenticator of the mesh serving now.
    pub fn authenticator(&self) -> Arc<Authenticator> {
        Arc::clone(&self.serving().authn)
    }

    /// Builds an engine over a new `mesh` with this gateway's options, usage and metrics
    /// (for a reload; nothing is swapped yet).
    pub async fn build_engine(
        &self,
        mesh: Mesh,
        registry: &Registry,
    ) -> Result<Arc<QueryEngine>, GatewayError> {
        build_engine(
            mesh,
            registry,
            &self.options,
            EngineObservers {
                usage: Arc::clone(&self.usage),
                metrics: Arc::clone(&self.metrics),
            },
        )
        .await
    }

    /// Swaps in a new engine with the authentication settings of its mesh; running queries
    /// keep the one they started with.
    pub fn replace_engine(&self, engine: Arc<QueryEngine>) -> Result<(), GatewayError> {
        let authn = authenticator(&engine.catalog().mesh, &self.signer)?;
        *self.serving.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Serving {
            engine,
            authn: Arc::new(authn),
        });
        Ok(())
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The gateway's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The usage store.
    pub fn usage(&self) -> &Arc<Usage> {
        &self.usage
    }

    /// Signs and verifies tickets, handles and session tokens.
    pub fn signer(&self) -> &TicketSigner {
        &self.signer
    }

    /// The request path settings.
    pub fn settings(&self) -> &FlightSettings {
        &self.options.flight
    }

    /// The options the gateway runs with.
    pub fn options(&self) -> &GatewayOptions {
        &self.options
    }

    /// The runtime queries execute on.
    pub fn exec(&self) -> &tokio::runtime::Handle {
        &self.exec
    }
}
