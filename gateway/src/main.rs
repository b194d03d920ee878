//! The `meshgate` command line: serve, validate, diff, demo, contract, explain-pushdown,
//! hash-password, new-token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use meshgate::connectors::{default_registry, load_and_check};
use meshgate::error::GatewayError;
use meshgate::server::{bind, serve, service_for_dir, GatewayOptions};

#[derive(Debug, Parser)]
#[command(
    name = "meshgate",
    version,
    about = "A federated Arrow Flight SQL gateway for the data mesh"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum ContractCommand {
    /// Write the ODCS v3 (Open Data Contract Standard) document of a port's contract.
    Export {
        /// The port, `domain.product.port`.
        port: String,
        /// The mesh directory.
        #[arg(long, env = "MESHGATE_CONFIG", default_value = ".", value_parser = mesh_dir)]
        config: PathBuf,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    /// Human-readable lines.
    Text,
    /// JSON.
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DiffFormat {
    /// One change per line.
    Text,
    /// A pull-request comment.
    Markdown,
    /// `{ "breaking": bool, "changes": [...] }`.
    Json,
}

/// Loads a mesh for `diff`: every problem except unresolved secrets is an error.
/// A mesh is named by its directory; a path to its `mesh.yaml` names the same mesh.
fn mesh_dir(arg: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(arg);
    if path.is_file()
        && path
            .file_name()
            .is_some_and(|n| n == meshgate_config::MESH_FILE)
    {
        let parent = path.parent().map(PathBuf::from).unwrap_or_default();
        return Ok(if parent.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent
        });
    }
    Ok(path)
}

fn load_for_diff(dir: &std::path::Path) -> Result<meshgate_config::Mesh, String> {
    let (mesh, errors) = meshgate_config::load_mesh_lenient(dir);
    let fatal: Vec<String> = errors
        .iter()
        .filter(|e| !e.message.contains("secret `{"))
        .map(|e| format!("  {e}"))
        .collect();
    if fatal.is_empty() {
        Ok(mesh)
    } else {
        Err(format!(
            "{} is not a valid mesh:\n{}",
            dir.display(),
            fatal.join("\n")
        ))
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address of the Flight SQL endpoint.
    #[arg(long, default_value = "127.0.0.1:50051", env = "MESHGATE_FLIGHT_ADDR")]
    flight_addr: SocketAddr,
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

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a mesh directory over Flight SQL.
    Serve {
        /// The mesh directory (holding mesh.yaml and domains/), or its mesh.yaml.
        #[arg(long, env = "MESHGATE_CONFIG", value_parser = mesh_dir)]
        config: PathBuf,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Check a mesh directory; exit 0 when valid, 1 when not, listing every error.
    Validate {
        /// The mesh directory, or its mesh.yaml.
        #[arg(value_parser = mesh_dir)]
        dir: PathBuf,
        /// Also connect to every source and compare each port's live schema with its
        /// contract (missing tables, files and columns, incompatible types, nullable columns
        /// behind `required`); exit 0 only when every port matches.
        #[arg(long)]
        live: bool,
        /// Output format of the report.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Generate (first time) and serve the TPC-H demo mesh of three domains.
    Demo {
        /// Where the demo mesh and its data live.
        #[arg(long, default_value = "meshgate-demo")]
        data_dir: PathBuf,
        /// TPC-H scale factor (0.1 is about 100 MB of data).
        #[arg(long, default_value_t = 0.1)]
        scale: f64,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Compare two versions of a mesh (say main and a pull request) for consumers: every change
    /// classed breaking, compatible or policy. Exit 0 when compatible, 2 when breaking, 1 on
    /// error. Secrets need not be set.
    Diff {
        /// The mesh directory before the change.
        #[arg(value_parser = mesh_dir)]
        old: PathBuf,
        /// The mesh directory after the change.
        #[arg(value_parser = mesh_dir)]
        new: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
    },
    /// Data contracts: `meshgate contract export DOMAIN.PRODUCT.PORT` writes an ODCS v3
    /// document for a port.
    Contract {
        #[command(subcommand)]
        command: ContractCommand,
    },
    /// List, per SQL dialect, which constructs are pushed to a source, pushed in a rewritten
    /// form that keeps DataFusion's meaning, or computed in the gateway (from the same
    /// capability tables the planner uses).
    ExplainPushdown {
        /// Only this dialect: postgres, mariadb, mysql, sqlite, datafusion or generic.
        #[arg(long)]
        dialect: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Print the argon2id hash of a password read from standard input (first line), for
    /// `auth.users[].password_hash`. Example: `printf '%s' "$PW" | meshgate hash-password`.
    HashPassword,
    /// Print a new random bearer token and its `sha256:` hash for `auth.tokens[].token_hash`.
    /// Give the token to the client; put only the hash in mesh.yaml.
    NewToken {
        /// Principal name for the printed mesh.yaml entry.
        #[arg(long, default_value = "my-pipeline")]
        name: String,
    },
}

/// Log lines to stderr (`RUST_LOG` filters them, default `info`); with `telemetry`, the
/// gateway's spans are exported too. Spans never decorate log lines.
fn init_tracing(format: LogFormat, telemetry: Option<&meshgate::telemetry::Telemetry>) {
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
    let service = service_for_dir(&dir, &default_registry(), &opts, exec).await?;
    let interval = (args.reload_interval_s > 0)
        .then(|| std::time::Duration::from_secs(args.reload_interval_s));
    let reloads = meshgate::reload::spawn_watcher(
        dir.clone(),
        default_registry(),
        opts.clone(),
        service.clone(),
        interval,
    );
    let shutdown = shutdown_signal();
    let (http_listener, http_addr) = meshgate::metrics::bind_http(args.http_addr).await?;
    let (listener, addr) = bind(args.flight_addr).await?;
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(meshgate::metrics::serve_http(
        http_listener,
        service.clone(),
        service.metrics(),
        reloads,
        async {
            let _ = http_stopped.await;
        },
    ));
    tracing::info!(%http_addr, "HTTP endpoints: /metrics, /health/live, /health/ready");
    tracing::info!(%addr, mesh = %dir.display(), "meshgate is serving Flight SQL");
    if let Some(b) = banner {
        println!("{}", b(&addr));
    }
    let result = serve(listener, service, shutdown).await;
    let _ = stop_http.send(());
    let _ = http.await;
    result
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    let serve_args = match &cli.command {
        Command::Serve { serve, .. } | Command::Demo { serve, .. } => Some(serve),
        _ => None,
    };
    let telemetry = match serve_args.and_then(|a| Some((a, a.otlp_endpoint.clone()?))) {
        Some((args, endpoint)) => {
            let settings = meshgate::telemetry::OtlpSettings {
                endpoint,
                service_name: args.otlp_service_name.clone(),
                sample_ratio: args.otlp_sample_ratio,
                timeout: std::time::Duration::from_secs(10),
            };
            match runtime.block_on(async { meshgate::telemetry::Telemetry::start(&settings) }) {
                Ok(t) => Some(t),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        None => None,
    };
    init_tracing(cli.log_format, telemetry.as_ref());
    if let Some(args) = serve_args {
        if let Some(endpoint) = &args.otlp_endpoint {
            tracing::info!(endpoint = %endpoint, sample_ratio = args.otlp_sample_ratio, "exporting traces over OTLP");
        }
    }
    let exec = match exec_runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the execution runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Diff { old, new, format } => {
            let (old, new) = match (load_for_diff(&old), load_for_diff(&new)) {
                (Ok(o), Ok(n)) => (o, n),
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let report = meshgate_config::diff::diff_meshes(&old, &new);
            match format {
                DiffFormat::Text => print!("{}", report.text()),
                DiffFormat::Markdown => print!("{}", report.markdown()),
                DiffFormat::Json => match serde_json::to_string_pretty(&report) {
                    Ok(j) => println!("{j}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                },
            }
            return if report.breaking {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
        Command::Contract {
            command:
                ContractCommand::Export {
                    port,
                    config,
                    output,
                },
        } => {
            let mesh = match load_for_diff(&config) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let found = mesh
                .ports()
                .find(|(d, p, t)| format!("{}.{}.{}", d.name, p.name, t.name) == port);
            let Some((_, product, p)) = found else {
                eprintln!(
                    "error: `{port}` is not a port of {} (write domain.product.port)",
                    config.display()
                );
                return ExitCode::FAILURE;
            };
            if p.columns.is_none() {
                eprintln!("error: port {port} has no contract (`columns`) to export");
                return ExitCode::FAILURE;
            }
            let doc = meshgate_config::odcs::export(product, p);
            return match output {
                Some(path) => match std::fs::write(&path, doc) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("error: cannot write {}: {e}", path.display());
                        ExitCode::FAILURE
                    }
                },
                None => {
                    print!("{doc}");
                    ExitCode::SUCCESS
                }
            };
        }
        Command::ExplainPushdown { dialect, format } => {
            let report = match format {
                ReportFormat::Text => meshgate::explain_pushdown::text(dialect.as_deref()),
                ReportFormat::Json => meshgate::explain_pushdown::json(dialect.as_deref()),
            };
            return match report {
                Ok(r) => {
                    print!("{r}");
                    if format == ReportFormat::Json {
                        println!();
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Command::HashPassword => {
            let mut line = String::new();
            if let Err(e) = std::io::stdin().read_line(&mut line) {
                eprintln!("error: cannot read the password from standard input: {e}");
                return ExitCode::FAILURE;
            }
            let password = line.strip_suffix('\n').unwrap_or(&line);
            let password = password.strip_suffix('\r').unwrap_or(password);
            if password.is_empty() {
                eprintln!("error: empty password; pipe it in: printf '%s' \"$PW\" | meshgate hash-password");
                return ExitCode::FAILURE;
            }
            return match meshgate::security::authn::hash_password(password) {
                Ok(h) => {
                    println!("{h}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::NewToken { name } => {
            let (token, hash) = meshgate::security::authn::new_token();
            println!("token: {token}");
            println!("token_hash: {hash}");
            eprintln!(
                "# give the token to the client (Authorization: Bearer <token>); in mesh.yaml:\n\
                 # auth:\n#   tokens:\n#     - {{ name: {name}, token_hash: \"{hash}\", groups: [] }}"
            );
            return ExitCode::SUCCESS;
        }
        Command::Validate { dir, live, format } => {
            let mesh = match load_and_check(&dir, &default_registry()) {
                Ok(mesh) => mesh,
                Err(errors) => {
                    if format == ReportFormat::Json {
                        let list: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
                        println!("{}", serde_json::json!({ "valid": false, "errors": list }));
                    }
                    eprint!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            let ports = mesh.ports().count();
            let summary = format!(
                "{}: valid ({} sources, {} domains, {ports} ports)",
                dir.display(),
                mesh.sources.len(),
                mesh.domains.len()
            );
            if !live {
                match format {
                    ReportFormat::Text => println!("{summary}"),
                    ReportFormat::Json => println!("{}", serde_json::json!({ "valid": true })),
                }
                return ExitCode::SUCCESS;
            }
            let checks = runtime.block_on(meshgate::live::check_live(&mesh, &default_registry()));
            let all_ok = checks
                .iter()
                .all(|c| c.status == meshgate::live::LiveStatus::Ok);
            match format {
                ReportFormat::Text => {
                    println!("{summary}");
                    print!("{}", meshgate::live::render_text(&checks));
                }
                ReportFormat::Json => println!(
                    "{}",
                    serde_json::json!({ "valid": true, "live": all_ok, "ports": checks })
                ),
            }
            return if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        Command::Serve { config, serve } => {
            runtime.block_on(run_server(config, &serve, None, exec.handle().clone()))
        }
        Command::Demo {
            data_dir,
            scale,
            serve,
        } => {
            use std::io::IsTerminal;
            let progress = std::io::stderr().is_terminal();
            if let Err(e) = meshgate::demo::ensure_demo(&data_dir, scale, progress) {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
            runtime.block_on(run_server(
                data_dir,
                &serve,
                Some(meshgate::demo::connect_help),
                exec.handle().clone(),
            ))
        }
    };
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
