//! Admission control: how many queries run at once, how many wait and for how long, and how
//! many one principal runs, so that one consumer cannot take every slot. A permit lives as
//! long as the query's result stream.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::GatewayError;
use crate::security::Principal;

/// `limits` of the mesh with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Most queries executing at once.
    pub max_running: usize,
    /// Most queries waiting for a slot.
    pub max_queued: usize,
    /// Longest wait for a slot.
    pub queue_timeout: Duration,
    /// Most queries one principal runs at once, unless a group says otherwise.
    pub principal_running: usize,
    /// Per-group overrides of `principal_running`.
    pub groups: Vec<(String, usize)>,
    /// Most queries one principal starts per minute.
    pub per_minute: Option<u32>,
    /// Longest a query may run.
    pub max_query_time: Duration,
}

impl AdmissionLimits {
    /// The mesh's `limits`, defaults derived from `cores`: never unlimited.
    pub fn resolve(l: &meshgate_config::Limits, cores: usize) -> Self {
        let max_running = l
            .max_running_queries
            .map_or_else(|| (2 * cores).max(4), |n| n as usize);
        Self {
            max_running,
            max_queued: l.max_queued_queries.map_or(8 * max_running, |n| n as usize),
            queue_timeout: Duration::from_millis(l.queue_timeout_ms.unwrap_or(30_000)),
            principal_running: l
                .principal_max_running_queries
                .map_or((max_running / 2).max(1), |n| n as usize),
            groups: l
                .groups
                .iter()
                .map(|(g, n)| (g.clone(), *n as usize))
                .collect(),
            per_minute: l.principal_queries_per_minute,
            max_query_time: Duration::from_secs(l.max_query_time_s.unwrap_or(900)),
        }
    }

    fn for_principal(&self, p: &Principal) -> usize {
        self.groups
            .iter()
            .filter(|(g, _)| p.groups.iter().any(|pg| pg == g))
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(self.principal_running)
    }
}

/// One principal's slots and figures.
#[derive(Debug)]
struct Consumer {
    slots: Arc<Semaphore>,
    limit: usize,
    /// Tokens for `limits.principal_queries_per_minute`, and when they were last refilled.
    tokens: Mutex<(f64, std::time::Instant)>,
    running: AtomicI64,
    queued: AtomicI64,
    rejected: AtomicU64,
}

/// Figures of one principal, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerFigures {
    /// Principal.
    pub principal: String,
    /// Queries running now.
    pub running: i64,
    /// Queries waiting now.
    pub queued: i64,
    /// Queries refused by a limit since start.
    pub rejected: u64,
}

/// The gateway's admission control.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
    consumers: Mutex<BTreeMap<String, Arc<Consumer>>>,
}

/// A query's right to run; gives its slots back when dropped.
#[derive(Debug)]
pub struct Permit {
    _slot: Option<OwnedSemaphorePermit>,
    _own: Option<OwnedSemaphorePermit>,
    consumer: Option<Arc<Consumer>>,
}

impl Permit {
    /// A permit for a query that takes no slot (it reads no source).
    pub fn free() -> Self {
        Self {
            _slot: None,
            _own: None,
            consumer: None,
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(c) = &self.consumer {
            c.running.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Counts a wait until it ends, however it ends (a client that leaves drops the future).
struct Waiting<'a> {
    total: &'a AtomicUsize,
    own: &'a AtomicI64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.total.fetch_sub(1, Ordering::Relaxed);
        self.own.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Admission {
    /// Admission under `limits`.
    pub fn new(limits: AdmissionLimits) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limits.max_running)),
            limits,
            queued: AtomicUsize::new(0),
            consumers: Mutex::new(BTreeMap::new()),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &AdmissionLimits {
        &self.limits
    }

    fn consumer(&self, p: &Principal) -> Arc<Consumer> {
        let mut map = self.consumers.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(p.name.clone()).or_insert_with(|| {
            let limit = self.limits.for_principal(p);
            Arc::new(Consumer {
                slots: Arc::new(Semaphore::new(limit)),
                limit,
                tokens: Mutex::new((
                    f64::from(self.limits.per_minute.unwrap_or(0)),
                    std::time::Instant::now(),
                )),
                running: AtomicI64::new(0),
                queued: AtomicI64::new(0),
                rejected: AtomicU64::new(0),
            })
        }))
    }

    /// Queries running now, over every principal.
    pub fn running(&self) -> usize {
        self.limits.max_running - self.slots.available_permits()
    }

    /// Queries waiting now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Per-principal figures, by name.
    pub fn consumers(&self) -> Vec<ConsumerFigures> {
        let map = self.consumers.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .map(|(name, c)| ConsumerFigures {
                principal: name.clone(),
                running: c.running.load(Ordering::Relaxed),
                queued: c.queued.load(Ordering::Relaxed),
                rejected: c.rejected.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Waits for a slot for a query of `p`: at once when one is free, else in the queue for
    /// at most `limits.queue_timeout_ms`; RESOURCE_EXHAUSTED naming the limit otherwise.
    pub async fn admit(&self, p: &Principal) -> Result<Permit, GatewayError> {
        let consumer = self.consumer(p);
        if let Some(rate) = self.limits.per_minute {
            let mut t = consumer.tokens.lock().unwrap_or_else(|e| e.into_inner());
            let per_second = f64::from(rate) / 60.0;
            let refill = t.1.elapsed().as_secs_f64() * per_second;
            t.0 = (t.0 + refill).min(f64::from(rate));
            t.1 = std::time::Instant::now();
            if t.0 < 1.0 {
                consumer.rejected.fetch_add(1, Ordering::Relaxed);
                let wait = ((1.0 - t.0) / per_second).ceil();
                return Err(GatewayError::ResourceExhausted(format!(
                    "principal `{}` started {rate} queries within a minute \
                     (limits.principal_queries_per_minute = {rate}); retry in {wait} s",
                    p.name
                )));
            }
            t.0 -= 1.0;
        }
        let own = Arc::clone(&consumer.slots).try_acquire_owned().ok();
        let slot = match &own {
            Some(_) => Arc::clone(&self.slots).try_acquire_owned().ok(),
            None => None,
        };
        let (own, slot) = match (own, slot) {
            (Some(own), Some(slot)) => (own, slot),
            (own, _) => {
                if self.queued.fetch_add(1, Ordering::Relaxed) >= self.limits.max_queued {
                    self.queued.fetch_sub(1, Ordering::Relaxed);
                    consumer.rejected.fetch_add(1, Ordering::Relaxed);
                    return Err(GatewayError::ResourceExhausted(format!(
                        "the gateway is busy: {} queries run (limits.max_running_queries = {}) \
                         and {} wait (limits.max_queued_queries = {}); retry later",
                        self.running(),
                        self.limits.max_running,
                        self.limits.max_queued,
                        self.limits.max_queued
                    )));
                }
                consumer.queued.fetch_add(1, Ordering::Relaxed);
                let waiting = Waiting {
                    total: &self.queued,
                    own: &consumer.queued,
                };
                let wait = async {
                    let own = match own {
                        Some(o) => o,
                        None => Arc::clone(&consumer.slots).acquire_owned().await?,
                    };
                    let slot = Arc::clone(&self.slots).acquire_owned().await?;
                    Ok::<_, tokio::sync::AcquireError>((own, slot))
                };
                let got = tokio::time::timeout(self.limits.queue_timeout, wait).await;
                drop(waiting);
                match got {
                    Ok(Ok(pair)) => pair,
                    Ok(Err(_)) => {
                        return Err(GatewayError::Unavailable(
                            "the gateway is shutting down".into(),
                        ))
                    }
                    Err(_) => {
                        consumer.rejected.fetch_add(1, Ordering::Relaxed);
                        let mine = consumer.running.load(Ordering::Relaxed);
                        return Err(GatewayError::ResourceExhausted(
                            if mine as usize >= consumer.limit {
                                format!(
                                "waited {} ms for a slot (limits.queue_timeout_ms): principal `{}` \
                                 already runs {mine} queries (its limit is {}: \
                                 limits.principal_max_running_queries or limits.groups)",
                                self.limits.queue_timeout.as_millis(),
                                p.name,
                                consumer.limit
                            )
                            } else {
                                format!(
                                "waited {} ms for a slot (limits.queue_timeout_ms): {} queries run \
                                 (limits.max_running_queries = {})",
                                self.limits.queue_timeout.as_millis(),
                                self.running(),
                                self.limits.max_running
                            )
                            },
                        ));
                    }
                }
            }
        };
        consumer.running.fetch_add(1, Ordering::Relaxed);
        Ok(Permit {
            _slot: Some(slot),
            _own: Some(own),
            consumer: Some(consumer),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(name: &str, groups: &[&str]) -> Principal {
        Principal {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            method: crate::security::AuthMethod::Password,
            admin: false,
        }
    }

    fn limits(running: usize, queued: usize, own: usize) -> AdmissionLimits {
        AdmissionLimits {
            max_running: running,
            max_queued: queued,
            queue_timeout: Duration::from_millis(50),
            principal_running: own,
            groups: vec![("etl".into(), 1)],
            per_minute: None,
            max_query_time: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn a_principal_past_its_rate_is_refused_and_others_are_not() {
        let a = Admission::new(AdmissionLimits {
            per_minute: Some(3),
            ..limits(8, 8, 8)
        });
        let p = principal("bot", &[]);
        for _ in 0..3 {
            drop(a.admit(&p).await.expect("within the rate"));
        }
        let e = a.admit(&p).await.expect_err("past the rate");
        assert!(
            e.to_string()
                .contains("limits.principal_queries_per_minute = 3"),
            "{e}"
        );
        drop(
            a.admit(&principal("ana", &[]))
                .await
                .expect("another principal"),
        );
    }

    #[tokio::test]
    async fn slots_queue_and_refusals_name_the_limit() {
        let a = Admission::new(limits(2, 1, 2));
        let p = principal("ana", &[]);
        let q = principal("bo", &[]);
        let first = a.admit(&p).await.expect("first");
        let _second = a.admit(&q).await.expect("second");
        assert_eq!(a.running(), 2);
        // The third waits, times out, and says which limit.
        let e = a.admit(&p).await.expect_err("full");
        assert!(
            e.to_string().contains("limits.max_running_queries = 2"),
            "{e}"
        );
        assert_eq!(a.queued(), 0, "a finished wait leaves the queue");
        // A slot given back is taken by the next query.
        drop(first);
        let _third = a.admit(&p).await.expect("a slot came free");
        let figures = a.consumers();
        assert_eq!(figures[0].principal, "ana");
        assert_eq!((figures[0].running, figures[0].rejected), (1, 1));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let a = Arc::new(Admission::new(limits(1, 1, 1)));
        let _running = a.admit(&principal("a", &[])).await.expect("run");
        let waiter = {
            let a = Arc::clone(&a);
            tokio::spawn(async move { a.admit(&principal("b", &[])).await.map(|_| ()) })
        };
        while a.queued() == 0 {
            tokio::task::yield_now().await;
        }
        let e = a.admit(&principal("c", &[])).await.expect_err("queue full");
        assert!(
            e.to_string().contains("limits.max_queued_queries = 1"),
            "{e}"
        );
        assert!(waiter.await.expect("join").is_err(), "the waiter times out");
    }

    #[tokio::test]
    async fn one_principal_cannot_take_every_slot() {
        let a = Admission::new(limits(4, 8, 4));
        let etl = principal("etl-bot", &["etl"]);
        let _one = a.admit(&etl).await.expect("one");
        let e = a.admit(&etl).await.expect_err("group limit 1");
        assert!(
            e.to_string().contains("principal `etl-bot` already runs 1"),
            "{e}"
        );
        // Others still get slots.
        let _other = a
            .admit(&principal("ana", &[]))
            .await
            .expect("another consumer");
    }

    #[test]
    fn defaults_are_never_unlimited() {
        let l = AdmissionLimits::resolve(&meshgate_config::Limits::default(), 2);
        assert_eq!(
            (l.max_running, l.max_queued, l.principal_running),
            (4, 32, 2)
        );
        assert_eq!(l.max_query_time, Duration::from_secs(900));
    }
}
