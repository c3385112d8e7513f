//! WatchEvents: the caller's events after a cursor, then live.
//!
//! One task per stream reads the table by id ascending, a batch at a time,
//! and hands rows to a small bounded channel: a slow reader makes the task
//! wait, never the server buffer. Between reads it waits for a wake-up, a
//! periodic re-read, the caller hanging up, or shutdown.

use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument;

use crate::db::{Database, EventRow};
use crate::gateway::Gateway;
use crate::gateway::domain::OwnerId;
use crate::gateway::error::GatewayError;
use crate::gateway::events::{EventFeed, shutting_down};

/// Rows read per query.
const BATCH: i64 = 100;
/// Events waiting for a slow reader before the task waits too.
const BUFFER: usize = 32;
/// Re-read even without a wake-up this often (covers lost notifications).
const REREAD: Duration = Duration::from_secs(10);

/// The events of one WatchEvents call, oldest first.
pub type EventStream = ReceiverStream<Result<EventRow, GatewayError>>;

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
        let permit = self.events.admit()?;
        let (tx, rx) = mpsc::channel(BUFFER);
        let span = tracing::info_span!("watch_events", owner = %owner, after);
        let watcher = Watcher {
            db: self.db.clone(),
            feed: self.events.clone(),
            owner,
            cursor: after,
            tx,
        };
        tokio::spawn(watcher.run(permit).instrument(span));
        Ok(ReceiverStream::new(rx))
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
    async fn run(mut self, _permit: OwnedSemaphorePermit) {
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
                _ = self.feed.closed.cancelled() => {
                    self.send(Err(shutting_down())).await;
                    return;
                }
            }
        }
    }

    /// Hands one item to the caller; false when the caller left or the
    /// gateway is stopping.
    async fn send(&self, item: Result<EventRow, GatewayError>) -> bool {
        tokio::select! {
            sent = self.tx.send(item) => sent.is_ok(),
            _ = self.feed.closed.cancelled() => {
                let _ = self.tx.try_send(Err(shutting_down()));
                false
            }
        }
    }
}
