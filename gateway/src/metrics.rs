//! The gateway's counters and histograms, and their Prometheus text exposition. Gauges read
//! from the engine serving now (pools, memory, ports) are added by `http.rs`, which serves
//! `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::port::PortRef;

/// Upper bounds of the query latency histogram, in seconds.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }

    /// The text exposition lines of the histogram `name` with the extra `labels` (`k="v",`).
    fn render(&self, o: &mut String, name: &str, labels: &str) {
        for (i, b) in BUCKETS.iter().enumerate() {
            let c = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(o, "{name}_bucket{{{labels}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(o, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", self.count);
        let plain = labels.trim_end_matches(',');
        let braces = if plain.is_empty() {
            String::new()
        } else {
            format!("{{{plain}}}")
        };
        let _ = writeln!(o, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(o, "{name}_count{braces} {}", self.count);
    }
}

/// Counters of the gateway; shared by every engine a reload swaps in.
#[derive(Debug, Default)]
pub struct Metrics {
    queries: Mutex<BTreeMap<(String, String), u64>>,
    latency: Mutex<Histogram>,
    product_rows: Mutex<BTreeMap<String, (u64, u64)>>,
    source_reads: Mutex<BTreeMap<String, (u64, u64)>>,
    /// Per source: latency of its sub-queries, and their errors by class.
    source_latency: Mutex<BTreeMap<String, Histogram>>,
    source_errors: Mutex<BTreeMap<(String, String), u64>>,
    active: AtomicI64,
    requests: AtomicU64,
    reloads_applied: AtomicU64,
    reloads_refused: AtomicU64,
}

/// Decrements the active-query gauge when dropped.
#[derive(Debug)]
pub struct ActiveQuery(Arc<Metrics>);

impl Drop for ActiveQuery {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A label value, escaped for the text format.
pub fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// A query starts: the gauge goes up until the guard drops.
    pub fn query_started(self: &Arc<Self>) -> ActiveQuery {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveQuery(Arc::clone(self))
    }

    /// Any RPC was answered.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// A mesh reload was applied (`true`) or refused.
    pub fn config_reload(&self, applied: bool) {
        let counter = if applied {
            &self.reloads_applied
        } else {
            &self.reloads_refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Mesh reloads so far: (applied, refused).
    pub fn reloads(&self) -> (u64, u64) {
        (
            self.reloads_applied.load(Ordering::Relaxed),
            self.reloads_refused.load(Ordering::Relaxed),
        )
    }

    /// Queries running now.
    pub fn active_queries(&self) -> i64 {
        self.active.load(Ordering::Relaxed)
    }

    /// A query ended with `status` for `principal` after `elapsed`, returning `rows` and
    /// `bytes`, having read `ports`.
    pub fn query_finished<'a>(
        &self,
        principal: &str,
        status: &str,
        elapsed: Duration,
        rows: u64,
        bytes: u64,
        ports: impl Iterator<Item = &'a PortRef>,
    ) {
        *lock(&self.queries)
            .entry((status.to_string(), principal.to_string()))
            .or_default() += 1;
        lock(&self.latency).observe(elapsed.as_secs_f64());
        let mut products: Vec<String> = ports.map(|p| p.product_ref().to_string()).collect();
        products.sort();
        products.dedup();
        let mut pr = lock(&self.product_rows);
        for p in products {
            let e = pr.entry(p).or_default();
            e.0 += rows;
            e.1 += bytes;
        }
    }

    /// Rows and bytes a query read from `source`.
    pub fn source_read(&self, source: &str, rows: u64, bytes: u64) {
        let mut s = lock(&self.source_reads);
        let e = s.entry(source.to_string()).or_default();
        e.0 += rows;
        e.1 += bytes;
    }

    /// A sub-query (a federated statement or a port scan) on `source` ended after `elapsed`,
    /// failing with the error class `error` if any.
    pub fn source_query(&self, source: &str, elapsed: Duration, error: Option<&str>) {
        lock(&self.source_latency)
            .entry(source.to_string())
            .or_default()
            .observe(elapsed.as_secs_f64());
        if let Some(class) = error {
            *lock(&self.source_errors)
                .entry((source.to_string(), class.to_string()))
                .or_default() += 1;
        }
    }

    /// Appends the Prometheus text exposition of the counters and histograms to `o`.
    pub fn render(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "# HELP meshgate_queries_total Queries answered, by gRPC status and principal."
        );
        let _ = writeln!(o, "# TYPE meshgate_queries_total counter");
        for ((status, principal), n) in lock(&self.queries).iter() {
            let _ = writeln!(
                o,
                "meshgate_queries_total{{status=\"{}\",principal=\"{}\"}} {n}",
                esc(status),
                esc(principal)
            );
        }
        let _ = writeln!(
            o,
            "# HELP meshgate_query_duration_seconds Query latency, planning to last row."
        );
        let _ = writeln!(o, "# TYPE meshgate_query_duration_seconds histogram");
        lock(&self.latency).render(o, "meshgate_query_duration_seconds", "");
        let pr = lock(&self.product_rows);
        let _ = writeln!(o, "# HELP meshgate_product_rows_returned_total Rows returned by queries that read the product.");
        let _ = writeln!(o, "# TYPE meshgate_product_rows_returned_total counter");
        for (p, (rows, _)) in pr.iter() {
            let _ = writeln!(
                o,
                "meshgate_product_rows_returned_total{{product=\"{}\"}} {rows}",
                esc(p)
            );
        }
        let _ = writeln!(o, "# HELP meshgate_product_bytes_returned_total Arrow bytes returned by queries that read the product.");
        let _ = writeln!(o, "# TYPE meshgate_product_bytes_returned_total counter");
        for (p, (_, bytes)) in pr.iter() {
            let _ = writeln!(
                o,
                "meshgate_product_bytes_returned_total{{product=\"{}\"}} {bytes}",
                esc(p)
            );
        }
        drop(pr);
        let sr = lock(&self.source_reads);
        let _ = writeln!(
            o,
            "# HELP meshgate_source_rows_read_total Rows read from each source."
        );
        let _ = writeln!(o, "# TYPE meshgate_source_rows_read_total counter");
        for (s, (rows, _)) in sr.iter() {
            let _ = writeln!(
                o,
                "meshgate_source_rows_read_total{{source=\"{}\"}} {rows}",
                esc(s)
            );
        }
        let _ = writeln!(
            o,
            "# HELP meshgate_source_bytes_read_total Arrow bytes read from each source."
        );
        let _ = writeln!(o, "# TYPE meshgate_source_bytes_read_total counter");
        for (s, (_, bytes)) in sr.iter() {
            let _ = writeln!(
                o,
                "meshgate_source_bytes_read_total{{source=\"{}\"}} {bytes}",
                esc(s)
            );
        }
        drop(sr);
        let _ = writeln!(
            o,
            "# HELP meshgate_source_query_duration_seconds Latency of each sub-query sent to a source (a federated statement or a port scan), start to last row."
        );
        let _ = writeln!(o, "# TYPE meshgate_source_query_duration_seconds histogram");
        for (s, h) in lock(&self.source_latency).iter() {
            h.render(
                o,
                "meshgate_source_query_duration_seconds",
                &format!("source=\"{}\",", esc(s)),
            );
        }
        let _ = writeln!(
            o,
            "# HELP meshgate_source_errors_total Sub-queries a source failed, by error class."
        );
        let _ = writeln!(o, "# TYPE meshgate_source_errors_total counter");
        for ((s, class), n) in lock(&self.source_errors).iter() {
            let _ = writeln!(
                o,
                "meshgate_source_errors_total{{source=\"{}\",class=\"{}\"}} {n}",
                esc(s),
                esc(class)
            );
        }
        let _ = writeln!(o, "# HELP meshgate_active_queries Queries running now.");
        let _ = writeln!(o, "# TYPE meshgate_active_queries gauge");
        let _ = writeln!(o, "meshgate_active_queries {}", self.active_queries());
        let _ = writeln!(o, "# HELP meshgate_requests_total gRPC requests answered.");
        let _ = writeln!(o, "# TYPE meshgate_requests_total counter");
        let _ = writeln!(
            o,
            "meshgate_requests_total {}",
            self.requests.load(Ordering::Relaxed)
        );
        let (applied, refused) = self.reloads();
        let _ = writeln!(
            o,
            "# HELP meshgate_config_reloads_total Mesh reloads, by result."
        );
        let _ = writeln!(o, "# TYPE meshgate_config_reloads_total counter");
        let _ = writeln!(
            o,
            "meshgate_config_reloads_total{{result=\"applied\"}} {applied}"
        );
        let _ = writeln!(
            o,
            "meshgate_config_reloads_total{{result=\"refused\"}} {refused}"
        );
    }
}
