//! Password checks run off the I/O threads, a few at a time, and a client that keeps failing
//! is refused without a check for a while: a storm of bad credentials cannot slow the
//! authenticated users down.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// Failures from one client within [`WINDOW`] before it is refused without a check.
pub const MAX_FAILURES: u32 = 10;
/// How long failures are remembered, and how long a refused client waits.
pub const WINDOW: Duration = Duration::from_secs(30);
/// Most clients remembered; past it the oldest half is forgotten.
const MAX_CLIENTS: usize = 10_000;

/// The bound on concurrent password checks and the per-client failure counts.
#[derive(Debug)]
pub struct PasswordChecks {
    slots: Semaphore,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl PasswordChecks {
    /// At most `concurrency` checks at once.
    pub fn new(concurrency: usize) -> Self {
        Self {
            slots: Semaphore::new(concurrency.max(1)),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for a turn to check a password.
    pub async fn turn(&self) -> Option<SemaphorePermit<'_>> {
        self.slots.acquire().await.ok()
    }

    /// How long `client` must wait before its passwords are checked again, if it must.
    pub fn backoff(&self, client: &str) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let (n, since) = map.get(client)?;
        let elapsed = since.elapsed();
        (*n >= MAX_FAILURES && elapsed < WINDOW).then(|| WINDOW - elapsed)
    }

    /// Counts a failed check of `client`.
    pub fn failed(&self, client: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_CLIENTS {
            let mut ages: Vec<Instant> = map.values().map(|(_, t)| *t).collect();
            ages.sort();
            let cut = ages[ages.len() / 2];
            map.retain(|_, (_, t)| *t > cut);
        }
        let entry = map.entry(client.to_string()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// Forgets the failures of `client` after a successful check.
    pub fn succeeded(&self, client: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(client);
    }
}

/// The part of a peer address failures are counted by: the IP, without the port.
pub fn client_key(client: Option<&str>) -> String {
    match client {
        Some(c) => c
            .parse::<std::net::SocketAddr>()
            .map_or_else(|_| c.to_string(), |a| a.ip().to_string()),
        None => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_keeps_failing_waits_and_others_do_not() {
        let c = PasswordChecks::new(2);
        let bad = client_key(Some("10.0.0.1:5555"));
        assert_eq!(bad, "10.0.0.1");
        for _ in 0..MAX_FAILURES {
            assert!(c.backoff(&bad).is_none());
            c.failed(&bad);
        }
        assert!(c.backoff(&bad).is_some_and(|d| d <= WINDOW));
        assert!(c.backoff("10.0.0.2").is_none());
        c.succeeded(&bad);
        assert!(c.backoff(&bad).is_none());
    }
}
