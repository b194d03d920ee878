//! The principal a query runs for, handed to connectors that forward it to a remote (a
//! `flightsql` source asserting the caller to another meshgate). The gateway sets it around
//! the synchronous `execute` of each scan of a source; a connector reads it when it builds
//! its stream (still inside that call) and keeps what it needs.

use std::cell::RefCell;
use std::sync::Arc;

/// Who a query runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Principal name.
    pub name: String,
    /// Its groups in the calling gateway.
    pub groups: Vec<String>,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Caller>>> = const { RefCell::new(None) };
}

/// Runs `f` with `caller` as the current caller of this thread, then restores the previous.
pub fn with_caller<R>(caller: Option<Arc<Caller>>, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT.with(|c| c.replace(caller));
    struct Restore(Option<Arc<Caller>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
    let _restore = Restore(previous);
    f()
}

/// The current caller of this thread, if the gateway set one.
pub fn current_caller() -> Option<Arc<Caller>> {
    CURRENT.with(|c| c.borrow().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_and_restored() {
        assert!(current_caller().is_none());
        let a = Arc::new(Caller {
            name: "a".into(),
            groups: vec![],
        });
        with_caller(Some(Arc::clone(&a)), || {
            assert_eq!(current_caller().as_deref(), Some(a.as_ref()));
            with_caller(None, || assert!(current_caller().is_none()));
            assert_eq!(current_caller().as_deref(), Some(a.as_ref()));
        });
        assert!(current_caller().is_none());
    }
}
