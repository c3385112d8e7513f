//! WatchEvents: the caller's events after a cursor, then live.
//!
//! One task per stream reads the table by id ascending, a batch at a time,
//! and hands rows to a small bounded channel: a slow reader makes the task
//! wait, never the server buffer. Between reads it waits for a wake-up, a
//! periodic re-read, the caller hanging up, or shutdown. At shutdown the
//! stream ends at once with UNAVAILABLE `DRAINING`, even before a slow
//! reader took the rows already buffered: it resumes from its last id.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{FutureExt, Stream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::Instrument;

use crate::db::{Database, EventRow};
use crate::gateway::Gateway;
use crate::gateway::domain::OwnerId;
use crate::gateway::error::GatewayError;
use crate::gateway::events::{EventFeed, WatchSlot};

/// Rows read per query.
const BATCH: i64 = 100;
/// Events waiting for a slow reader before the task waits too.
const BUFFER: usize = 32;
/// Re-read even without a wake-up this often (covers lost notifications).
const REREAD: Duration = Duration::from_secs(10);

/// The events of one WatchEvents call, oldest first; `DRAINING` last when
/// the gateway shuts down.
pub struct EventStream {
    rows: ReceiverStream<Result<EventRow, GatewayError>>,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
    ended: bool,
}

impl Stream for EventStream {
    type Item = Result<EventRow, GatewayError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if self.closed.poll_unpin(cx).is_ready() {
            self.ended = true;
            return Poll::Ready(Some(Err(GatewayError::draining())));
        }
        let next = Pin::new(&mut self.rows).poll_next(cx);
        if let Poll::Ready(None | Some(Err(_))) = &next {
            self.ended = true;
        }
        next
    }
}

impl Gateway {
    /// Streams `owner`'s events with an id above `after`: those stored, then
    /// new ones, until the stream is dropped or the gateway stops.
    pub(crate) fn watch_events(
        &self,
        owner: OwnerId,
        after: i64,
    ) -> Result<EventStream, GatewayError> {
        if after < 0 {
            return Err(GatewayError::invalid(
                "after_event_id",
                "must be 0 or the id of an event",
            ));
        }
        let slot = self.events.admit(&owner)?;
        let (tx, rx) = mpsc::channel(BUFFER);
        let span = tracing::info_span!("watch_events", owner = %owner, after);
        let watcher = Watcher {
            db: self.db.clone(),
            feed: self.events.clone(),
            owner,
            cursor: after,
            tx,
        };
        tokio::spawn(watcher.run(slot).instrument(span));
        Ok(EventStream {
            rows: ReceiverStream::new(rx),
            closed: Box::pin(self.events.closed.clone().cancelled_owned()),
            ended: false,
        })
    }
}

struct Watcher {
    db: Database,
    feed: EventFeed,
    owner: OwnerId,
    /// The id of the last event handed to the caller.
    cursor: i64,
    tx: mpsc::Sender<Result<EventRow, GatewayError>>,
}

impl Watcher {
    async fn run(mut self, _slot: WatchSlot) {
        let mut wake = self.feed.subscribe();
        loop {
            // Seen before reading: a wake-up during the read is not lost.
            wake.borrow_and_update();
            let batch = match self
                .db
                .events_after(self.owner.as_str(), self.cursor, BATCH)
                .await
            {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(%error, "reading events failed; ending the stream");
                    self.send(Err(error.into())).await;
                    return;
                }
            };
            let full = i64::try_from(batch.len()).unwrap_or(i64::MAX) >= BATCH;
            for row in batch {
                let id = row.id;
                if !self.send(Ok(row)).await {
                    return;
                }
                self.cursor = id;
            }
            if full {
                continue;
            }
            tokio::select! {
                changed = wake.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(REREAD) => {}
                _ = self.tx.closed() => return,
                _ = self.feed.closed.cancelled() => return,
            }
        }
    }

    /// Hands one item to the caller; false when the caller left or the
    /// gateway is stopping (the stream then ends with `DRAINING`).
    async fn send(&self, item: Result<EventRow, GatewayError>) -> bool {
        tokio::select! {
            sent = self.tx.send(item) => sent.is_ok(),
            _ = self.feed.closed.cancelled() => false,
        }
    }
}
