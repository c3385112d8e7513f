//! Shutdown without losing work: once draining, new calls are refused, and
//! the calls already running are counted until the last one ends.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Whether the gateway drains, and the calls in flight.
#[derive(Debug, Default)]
pub struct Drain {
    draining: AtomicBool,
    calls: AtomicUsize,
    idle: Notify,
}

/// A call in flight, counted until dropped.
#[derive(Debug)]
pub struct Call<'a> {
    drain: &'a Drain,
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        self.drain.end();
    }
}

impl Drain {
    /// A call begins, unless the gateway drains (`None`: refuse it). A call
    /// counted before draining began is always waited for: it is counted
    /// before it looks at the flag, and [`Drain::calls_done`] looks at the
    /// count after the flag was set.
    pub fn begin(&self) -> Option<Call<'_>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.draining.load(Ordering::SeqCst) {
            self.end();
            return None;
        }
        Some(Call { drain: self })
    }

    fn end(&self) {
        if self.calls.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// From now on, new calls are refused.
    pub fn start(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Calls in flight.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Completes when no call is in flight.
    pub async fn calls_done(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.calls() == 0 {
                return;
            }
            idle.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::Drain;

    #[tokio::test]
    async fn calls_before_draining_are_waited_for_and_later_ones_refused() {
        let drain = Drain::default();
        let call = drain.begin().expect("not draining yet");
        drain.start();
        assert!(drain.begin().is_none(), "refused while draining");
        assert_eq!(drain.calls(), 1, "a refused call is not counted");
        let mut done = Box::pin(drain.calls_done());
        assert!((&mut done).now_or_never().is_none(), "a call is in flight");
        drop(call);
        assert!(
            done.now_or_never().is_some(),
            "done once the last call ended"
        );
    }
}
