//! Server-side state of prepared statements: bound parameters, with idle expiry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use datafusion::arrow::record_batch::RecordBatch;

use crate::error::GatewayError;

#[derive(Debug)]
struct Entry {
    params: Option<RecordBatch>,
    last_used: Instant,
}

/// Prepared statements by id. Entries idle longer than the TTL are dropped (many clients never
/// close their statements); past `max_entries` the least recently used go first.
#[derive(Debug)]
pub struct PreparedStore {
    entries: Mutex<HashMap<Vec<u8>, Entry>>,
    ttl: Duration,
    max_entries: usize,
}

impl PreparedStore {
    /// A store with idle `ttl` and a size cap.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            max_entries,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expired(&self, id: &[u8]) -> GatewayError {
        GatewayError::NotFound(format!(
            "prepared statement {} is closed or expired (idle for more than {} s); prepare it again",
            hex(id),
            self.ttl.as_secs()
        ))
    }

    /// Registers a new statement.
    pub fn insert(&self, id: Vec<u8>) {
        let mut m = self.lock();
        let now = Instant::now();
        m.retain(|_, e| now.duration_since(e.last_used) < self.ttl);
        while m.len() >= self.max_entries {
            let Some(oldest) = m
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            m.remove(&oldest);
        }
        m.insert(
            id,
            Entry {
                params: None,
                last_used: now,
            },
        );
    }

    /// Binds parameters (replacing earlier ones).
    pub fn bind(&self, id: &[u8], params: RecordBatch) -> Result<(), GatewayError> {
        let mut m = self.lock();
        let e = m.get_mut(id).ok_or_else(|| self.expired(id))?;
        e.params = Some(params);
        e.last_used = Instant::now();
        Ok(())
    }

    /// The bound parameters, if any; fails when the statement is unknown or expired.
    pub fn params(&self, id: &[u8]) -> Result<Option<RecordBatch>, GatewayError> {
        let mut m = self.lock();
        let ttl = self.ttl;
        match m.get_mut(id) {
            Some(e) if e.last_used.elapsed() < ttl => {
                e.last_used = Instant::now();
                Ok(e.params.clone())
            }
            Some(_) => {
                m.remove(id);
                Err(self.expired(id))
            }
            None => Err(self.expired(id)),
        }
    }

    /// Closes a statement; closing an unknown one is not an error.
    pub fn remove(&self, id: &[u8]) {
        self.lock().remove(id);
    }

    /// Open statements.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_when_idle() {
        let s = PreparedStore::new(Duration::from_millis(20), 10);
        s.insert(vec![1]);
        assert!(s.params(&[1]).expect("fresh").is_none());
        std::thread::sleep(Duration::from_millis(40));
        assert!(s.params(&[1]).is_err());
    }

    #[test]
    fn caps_entries() {
        let s = PreparedStore::new(Duration::from_secs(60), 3);
        for i in 0..10u8 {
            s.insert(vec![i]);
        }
        assert_eq!(s.len(), 3);
        assert!(s.params(&[9]).is_ok());
        assert!(s.params(&[0]).is_err());
    }
}
