//! Statements stop at the source when their reader stops. A result stream dropped before its
//! end (a client that left, a deadline, a LIMIT satisfied, an error elsewhere in the plan)
//! runs the backend's cancel: PostgreSQL's cancel request, MariaDB's `KILL QUERY`. Without it
//! the database keeps working for nobody.

use std::pin::Pin;
use std::task::{Context, Poll};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::Stream;

/// What to do when the stream ends: `true` when it was read to its end.
pub type OnEnd = Box<dyn FnOnce(bool) + Send>;

/// A record batch stream that calls its [`OnEnd`] once, when dropped.
pub struct CancelOnDrop {
    inner: SendableRecordBatchStream,
    completed: bool,
    on_end: Option<OnEnd>,
}

impl std::fmt::Debug for CancelOnDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelOnDrop")
            .field("completed", &self.completed)
            .finish_non_exhaustive()
    }
}

impl CancelOnDrop {
    /// Wraps `inner`.
    pub fn new(inner: SendableRecordBatchStream, on_end: OnEnd) -> Self {
        Self {
            inner,
            completed: false,
            on_end: Some(on_end),
        }
    }
}

impl Stream for CancelOnDrop {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        match &next {
            // An error ends the statement at the source too.
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.completed = true,
            _ => {}
        }
        next
    }
}

impl RecordBatchStream for CancelOnDrop {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(f) = self.on_end.take() {
            f(self.completed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use futures::StreamExt;
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::Arc;

    fn wrapped(seen: &Arc<AtomicU8>) -> CancelOnDrop {
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::empty());
        let batches: Vec<Result<RecordBatch>> = (0..3)
            .map(|_| Ok(RecordBatch::new_empty(Arc::clone(&schema))))
            .collect();
        let inner = Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(batches),
        ));
        let seen = Arc::clone(seen);
        CancelOnDrop::new(
            inner,
            Box::new(move |done| seen.store(if done { 1 } else { 2 }, Ordering::SeqCst)),
        )
    }

    #[tokio::test]
    async fn a_stream_dropped_early_cancels_and_one_read_to_the_end_does_not() {
        let seen = Arc::new(AtomicU8::new(0));
        let mut s = wrapped(&seen);
        s.next().await;
        drop(s);
        assert_eq!(seen.load(Ordering::SeqCst), 2, "cancelled");
        let s = wrapped(&seen);
        let _: Vec<_> = s.collect().await;
        assert_eq!(seen.load(Ordering::SeqCst), 1, "completed");
    }
}
