//! Cancelling a query by its FlightInfo (CancelFlightInfo, CancelQuery): the running queries
//! of this replica by the digest of their ticket, and tickets cancelled before they ran.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::watch;

/// How long a ticket cancelled before it ran stays refused.
const REMEMBER_CANCELLED: Duration = Duration::from_secs(3600);
/// Most cancelled tickets remembered.
const MAX_CANCELLED: usize = 100_000;

type Key = [u8; 32];

fn key(ticket: &[u8]) -> Key {
    Sha256::digest(ticket).into()
}

/// What a cancellation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// A running query of the caller was told to stop.
    Running,
    /// The ticket had not run yet; it will be refused.
    BeforeItRan,
}

#[derive(Debug)]
struct Running {
    principal: String,
    stop: watch::Sender<bool>,
}

/// The cancellable queries of this replica.
#[derive(Debug, Default)]
pub struct Queries {
    running: Arc<Mutex<HashMap<Key, Running>>>,
    cancelled: Mutex<HashMap<Key, (String, Instant)>>,
}

/// A running query's registration; unregisters when dropped.
#[derive(Debug)]
pub struct Registration {
    running: Arc<Mutex<HashMap<Key, Running>>>,
    key: Key,
    /// Resolves (changes to `true`) when the query is cancelled.
    pub cancelled: watch::Receiver<bool>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

impl Queries {
    /// Registers the query of `ticket` run by `principal`; `None` when it was cancelled
    /// before it ran.
    pub fn start(&self, ticket: &[u8], principal: &str) -> Option<Registration> {
        let k = key(ticket);
        let was_cancelled = self
            .cancelled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&k)
            .is_some_and(|(p, at)| p == principal && at.elapsed() < REMEMBER_CANCELLED);
        if was_cancelled {
            return None;
        }
        let (stop, cancelled) = watch::channel(false);
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                k,
                Running {
                    principal: principal.to_string(),
                    stop,
                },
            );
        Some(Registration {
            running: Arc::clone(&self.running),
            key: k,
            cancelled,
        })
    }

    /// Cancels the query of `ticket` if `principal` runs it; else remembers the ticket as
    /// cancelled, so that it does not run later.
    pub fn cancel(&self, ticket: &[u8], principal: &str) -> Cancelled {
        let k = key(ticket);
        if let Some(r) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&k)
            .filter(|r| r.principal == principal)
        {
            r.stop.send_replace(true);
            return Cancelled::Running;
        }
        let mut cancelled = self.cancelled.lock().unwrap_or_else(|e| e.into_inner());
        if cancelled.len() >= MAX_CANCELLED {
            cancelled.retain(|_, (_, at)| at.elapsed() < REMEMBER_CANCELLED);
        }
        if cancelled.len() < MAX_CANCELLED {
            cancelled.insert(k, (principal.to_string(), Instant::now()));
        }
        Cancelled::BeforeItRan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owner_cancels_and_a_cancelled_ticket_does_not_run() {
        let q = Queries::default();
        let r = q.start(b"t1", "ana").expect("runs");
        assert_eq!(q.cancel(b"t1", "bo"), Cancelled::BeforeItRan);
        assert!(!*r.cancelled.borrow(), "another principal cannot cancel it");
        assert_eq!(q.cancel(b"t1", "ana"), Cancelled::Running);
        assert!(*r.cancelled.borrow());
        drop(r);
        assert_eq!(q.cancel(b"t2", "ana"), Cancelled::BeforeItRan);
        assert!(q.start(b"t2", "ana").is_none());
        assert!(q.start(b"t2", "bo").is_some());
    }
}
