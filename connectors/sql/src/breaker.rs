//! A circuit breaker per source: after [`OPEN_AFTER`] consecutive failures to reach it
//! (unavailable, timeout), statements fail at once for [`COOLDOWN`] instead of each waiting
//! for its own timeout; then one statement probes, and success closes the circuit. The state
//! is shown in `/health/ready` and `mesh.catalog.ports`.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use meshgate_connector::{ErrorClass, SourceHealth};

/// Consecutive failures that open the circuit.
pub const OPEN_AFTER: u32 = 3;
/// How long an open circuit fails statements before one probes.
pub const COOLDOWN: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct State {
    consecutive: u32,
    last_error: Option<String>,
    failing_since: Option<SystemTime>,
    opened_at: Option<Instant>,
    /// When the last probe was let through (a probe whose statement never reports lets
    /// another through after a cooldown).
    probe_at: Option<Instant>,
}

/// The breaker of one source.
#[derive(Debug, Default)]
pub struct Breaker {
    state: Mutex<State>,
}

/// Whether a failure of `class` counts against the source (not the query's fault).
pub fn counts(class: ErrorClass) -> bool {
    matches!(class, ErrorClass::Unavailable | ErrorClass::Timeout)
}

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(message)` while the circuit is open; lets one probe through after the cooldown.
    pub fn admit(&self) -> Result<(), String> {
        let mut s = self.lock();
        let Some(opened) = s.opened_at else {
            return Ok(());
        };
        let probe_due = s.probe_at.is_none_or(|t| t.elapsed() >= COOLDOWN);
        if opened.elapsed() >= COOLDOWN && probe_due {
            s.probe_at = Some(Instant::now());
            return Ok(());
        }
        let wait = COOLDOWN.saturating_sub(opened.elapsed());
        Err(format!(
            "the source failed {} times in a row (last: {}); not tried again for {} ms",
            s.consecutive,
            s.last_error.as_deref().unwrap_or("unknown"),
            wait.as_millis().max(1)
        ))
    }

    /// A statement reached the source.
    pub fn succeeded(&self) {
        let mut s = self.lock();
        if s.consecutive > 0 || s.opened_at.is_some() {
            *s = State::default();
        }
    }

    /// A statement could not reach the source; `true` when the circuit is (now) open.
    pub fn failed(&self, message: &str) -> bool {
        let mut s = self.lock();
        s.consecutive = s.consecutive.saturating_add(1);
        s.last_error = Some(message.chars().take(300).collect());
        s.failing_since.get_or_insert_with(SystemTime::now);
        if s.consecutive >= OPEN_AFTER {
            s.opened_at = Some(Instant::now());
            return true;
        }
        false
    }

    /// The state, for readiness and the catalog.
    pub fn health(&self) -> SourceHealth {
        let s = self.lock();
        SourceHealth {
            consecutive_failures: s.consecutive,
            last_error: s.last_error.clone(),
            failing_since: s.failing_since,
            circuit_open: s.opened_at.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_closes_on_success() {
        let b = Breaker::default();
        for _ in 0..OPEN_AFTER - 1 {
            b.failed("refused");
            assert!(b.admit().is_ok());
        }
        b.failed("refused");
        let e = b.admit().expect_err("open");
        assert!(e.contains("3 times in a row (last: refused)"), "{e}");
        assert!(b.health().circuit_open);
        b.succeeded();
        assert!(b.admit().is_ok());
        assert_eq!(b.health().consecutive_failures, 0);
    }
}
