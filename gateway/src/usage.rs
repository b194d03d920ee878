//! Usage metering: every query (who, when, how long, status, ports, rows and bytes returned,
//! bytes read per source, CPU time of the operators) is kept in memory for `mesh.usage.queries`
//! and aggregated per day, consumer and product for `mesh.usage.by_product`. With a state
//! directory the records are appended to `usage.jsonl` there and replayed at start-up, so
//! usage survives restarts.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::port::{PortRef, ProductRef};

/// Recent queries kept for `mesh.usage.queries`.
pub const MAX_RECENT: usize = 10_000;

/// One finished query.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueryRecord {
    /// Random id.
    pub id: String,
    /// Principal.
    pub principal: String,
    /// Start, microseconds since the epoch (UTC).
    pub start_us: i64,
    /// Duration in milliseconds.
    pub duration_ms: u64,
    /// gRPC status name.
    pub status: String,
    /// Ports read (stored as `domain.product.port` strings).
    pub ports: Vec<PortRef>,
    /// Rows returned.
    pub rows: u64,
    /// Arrow bytes returned.
    pub bytes: u64,
    /// Bytes read per source.
    pub source_bytes: BTreeMap<String, u64>,
    /// CPU time of the operators (sum of DataFusion's `elapsed_compute`), milliseconds.
    pub cpu_ms: u64,
}

/// A day (`YYYY-MM-DD`, UTC), a consumer (principal) and a product.
pub type UsageKey = (String, String, ProductRef);

/// Per day, consumer and product.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Aggregate {
    /// Queries.
    pub queries: u64,
    /// Rows returned.
    pub rows: u64,
    /// Bytes returned.
    pub bytes: u64,
    /// CPU milliseconds.
    pub cpu_ms: u64,
}

#[derive(Debug, Default)]
struct Inner {
    recent: VecDeque<QueryRecord>,
    by_product: BTreeMap<UsageKey, Aggregate>,
}

/// The usage store.
#[derive(Debug)]
pub struct Usage {
    inner: Mutex<Inner>,
    file: Option<Mutex<std::fs::File>>,
    path: Option<PathBuf>,
}

fn day_of(start_us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(start_us)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

impl Inner {
    fn add(&mut self, r: QueryRecord) {
        let day = day_of(r.start_us);
        let mut products: Vec<ProductRef> = r.ports.iter().map(PortRef::product_ref).collect();
        products.sort();
        products.dedup();
        for p in products {
            let a = self
                .by_product
                .entry((day.clone(), r.principal.clone(), p))
                .or_default();
            a.queries += 1;
            a.rows += r.rows;
            a.bytes += r.bytes;
            a.cpu_ms += r.cpu_ms;
        }
        self.recent.push_back(r);
        while self.recent.len() > MAX_RECENT {
            self.recent.pop_front();
        }
    }
}

impl Usage {
    /// A store kept in memory only.
    pub fn in_memory() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            file: None,
            path: None,
        }
    }

    /// A store persisted in `dir/usage.jsonl` (created when missing), with what it holds
    /// already replayed.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("usage.jsonl");
        let mut inner = Inner::default();
        let mut skipped = 0usize;
        if let Ok(f) = std::fs::File::open(&path) {
            for line in std::io::BufReader::new(f).lines() {
                let line = line?;
                match serde_json::from_str::<QueryRecord>(&line) {
                    Ok(r) => inner.add(r),
                    Err(_) => skipped += 1,
                }
            }
        }
        if skipped > 0 {
            tracing::warn!(path = %path.display(), skipped, "unreadable usage records skipped");
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        tracing::info!(path = %path.display(), queries = inner.recent.len(), "usage loaded");
        Ok(Self {
            inner: Mutex::new(inner),
            file: Some(Mutex::new(file)),
            path: Some(path),
        })
    }

    /// Where records are persisted, if anywhere.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Records a finished query.
    pub fn record(&self, r: QueryRecord) {
        if let Some(f) = &self.file {
            if let Ok(mut line) = serde_json::to_vec(&r) {
                line.push(b'\n');
                let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = f.write_all(&line) {
                    tracing::error!(error = %e, "cannot persist a usage record");
                }
            }
        }
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).add(r);
    }

    /// Recent queries, oldest first, that `visible` accepts.
    pub fn recent(&self, visible: impl Fn(&QueryRecord) -> bool) -> Vec<QueryRecord> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .recent
            .iter()
            .filter(|r| visible(r))
            .cloned()
            .collect()
    }

    /// Aggregates `(day, principal, product) -> figures` that `visible` accepts.
    pub fn by_product(
        &self,
        visible: impl Fn(&str, &ProductRef) -> bool,
    ) -> Vec<(UsageKey, Aggregate)> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_product
            .iter()
            .filter(|((_, who, product), _)| visible(who, product))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(principal: &str, ports: &[&str], rows: u64) -> QueryRecord {
        QueryRecord {
            id: uuid::Uuid::new_v4().to_string(),
            principal: principal.into(),
            start_us: 1_700_000_000_000_000,
            duration_ms: 5,
            status: "Ok".into(),
            ports: ports
                .iter()
                .map(|s| PortRef::parse(s).expect("port"))
                .collect(),
            rows,
            bytes: rows * 8,
            source_bytes: BTreeMap::new(),
            cpu_ms: 1,
        }
    }

    #[test]
    fn persisted_usage_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        let u = Usage::open(dir.path()).expect("open");
        u.record(rec("alice", &["a.b.c", "a.b.d"], 10));
        u.record(rec("bob", &["x.y.z"], 3));
        drop(u);
        let again = Usage::open(dir.path()).expect("reopen");
        assert_eq!(again.recent(|_| true).len(), 2);
        let agg = again.by_product(|who, _| who == "alice");
        assert_eq!(agg.len(), 1, "one product for two ports of it");
        assert_eq!(agg[0].0 .2.to_string(), "a.b");
        assert_eq!(agg[0].1.queries, 1);
        assert_eq!(agg[0].1.rows, 10);
        assert_eq!(agg[0].0 .0, "2023-11-14");
    }
}
