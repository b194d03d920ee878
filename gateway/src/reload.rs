//! Hot reload: the gateway watches its mesh directory (polling file sizes and modification
//! times) and reloads on SIGHUP. A valid new mesh is swapped in atomically: running queries
//! finish on the engine they started with. An invalid one is refused with every problem
//! logged, and the old mesh keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshgate_connector::Registry;

use crate::connectors::load_and_check;
use crate::state::GatewayState;

/// What the watched files look like: (path, size, modified) of `mesh.yaml`, every file below
/// `domains/` and `secrets/`.
pub fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    fn walk(p: &Path, out: &mut Vec<(PathBuf, u64, Option<SystemTime>)>) {
        let Ok(entries) = std::fs::read_dir(p) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else if let Ok(m) = e.metadata() {
                out.push((path, m.len(), m.modified().ok()));
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(m) = std::fs::metadata(dir.join(meshgate_config::MESH_FILE)) {
        out.push((
            dir.join(meshgate_config::MESH_FILE),
            m.len(),
            m.modified().ok(),
        ));
    }
    walk(&dir.join(meshgate_config::DOMAINS_DIR), &mut out);
    walk(&dir.join("secrets"), &mut out);
    out.sort();
    out
}

/// Loads `dir` and swaps it into `state`; `false` when the new mesh was refused. Outcomes
/// are counted in the gateway's metrics.
pub async fn reload(dir: &Path, registry: &Registry, state: &GatewayState) -> bool {
    let metrics = state.metrics();
    let mesh = match load_and_check(dir, registry) {
        Ok(m) => m,
        Err(errors) => {
            metrics.config_reload(false);
            tracing::error!(mesh = %dir.display(), problems = errors.0.len(), errors = %errors, "mesh reload refused; the previous mesh keeps serving");
            return false;
        }
    };
    let engine = match state.build_engine(mesh, registry).await {
        Ok(e) => e,
        Err(e) => {
            metrics.config_reload(false);
            tracing::error!(mesh = %dir.display(), error = %e, "mesh reload refused; the previous mesh keeps serving");
            return false;
        }
    };
    if let Err(e) = state.replace_engine(engine) {
        metrics.config_reload(false);
        tracing::error!(mesh = %dir.display(), error = %e, "mesh reload refused; the previous mesh keeps serving");
        return false;
    }
    metrics.config_reload(true);
    tracing::info!(mesh = %dir.display(), "mesh reloaded");
    true
}

/// Watches `dir` every `interval` (none: only SIGHUP) and reloads on change or SIGHUP, for
/// as long as the returned task is not aborted.
pub fn spawn_watcher(
    dir: PathBuf,
    registry: Registry,
    state: Arc<GatewayState>,
    interval: Option<Duration>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut last = fingerprint(&dir);
        loop {
            let tick = async {
                match interval {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(h) => {
                        h.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<()>();
            let forced = tokio::select! {
                () = tick => false,
                () = hangup => true,
            };
            let now = fingerprint(&dir);
            if forced || now != last {
                if forced {
                    tracing::info!("SIGHUP: reloading the mesh");
                }
                // Editors write files in steps: wait for the directory to settle.
                tokio::time::sleep(Duration::from_millis(200)).await;
                last = fingerprint(&dir);
                reload(&dir, &registry, &state).await;
            }
        }
    })
}
