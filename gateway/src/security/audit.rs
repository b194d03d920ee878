//! The audit log: one JSON line per request (time, principal, client address, RPC, SQL,
//! ports and columns read after policy rewriting, decision, status, rows and bytes returned,
//! duration). Credentials never reach it: only principal names.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Mutex;

use meshgate_config::AuditTarget;
use serde::Serialize;

/// One audit record.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AuditRecord {
    /// RFC 3339 UTC time the request ended.
    pub time: String,
    /// Principal name; `null` when authentication failed.
    pub principal: Option<String>,
    /// How it authenticated.
    pub auth_method: Option<&'static str>,
    /// Client address.
    pub client: Option<String>,
    /// The RPC, e.g. `DoGet/Statement`.
    pub rpc: String,
    /// SQL of the request, when it has one (first 4096 characters).
    pub sql: Option<String>,
    /// Ports read, each with the columns read, after policy rewriting.
    pub ports: BTreeMap<String, BTreeSet<String>>,
    /// `allow` or `deny` (authentication or authorization refused).
    pub decision: &'static str,
    /// gRPC status code name (`OK`, `PermissionDenied`, ...).
    pub status: String,
    /// The error message returned, if any.
    pub error: Option<String>,
    /// Rows returned.
    pub rows: u64,
    /// Arrow bytes returned.
    pub bytes: u64,
    /// Duration in milliseconds.
    pub duration_ms: u64,
}

/// Where records go.
pub struct AuditLog {
    out: Option<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("enabled", &self.out.is_some())
            .finish()
    }
}

/// The gRPC code name of a status.
pub fn code_name(code: tonic::Code) -> String {
    format!("{code:?}")
}

impl AuditLog {
    /// A log writing to `target` (`None`: records are dropped).
    pub fn open(target: Option<&AuditTarget>) -> std::io::Result<Self> {
        let out: Option<Box<dyn Write + Send>> = match target {
            None => None,
            Some(AuditTarget::Stdout) => Some(Box::new(std::io::stdout())),
            Some(AuditTarget::File(path)) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                Some(Box::new(f))
            }
        };
        Ok(Self {
            out: out.map(Mutex::new),
        })
    }

    /// Whether records are written anywhere.
    pub fn enabled(&self) -> bool {
        self.out.is_some()
    }

    /// Writes one record (the time is set here).
    pub fn write(&self, mut rec: AuditRecord) {
        let Some(out) = &self.out else { return };
        rec.time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        if let Some(sql) = &mut rec.sql {
            if sql.chars().count() > 4096 {
                *sql = sql.chars().take(4096).collect();
            }
        }
        let Ok(mut line) = serde_json::to_vec(&rec) else {
            return;
        };
        line.push(b'\n');
        let mut w = out.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = w.write_all(&line).and_then(|()| w.flush()) {
            tracing::error!(error = %e, "cannot write the audit log");
        }
    }
}
