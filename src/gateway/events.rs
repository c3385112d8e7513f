//! Document events: the wake-up signal shared by the webhook endpoint and
//! the WatchEvents streams, and the conversion of a stored event.
//!
//! The `events` table is the source of truth. A wake-up only tells watchers
//! to read it again: on SQLite every insert is in this process and wakes
//! the feed directly; on PostgreSQL a LISTEN connection (see [`relay`])
//! turns every replica's NOTIFY into a wake-up here. Watchers also re-read
//! on a timer, so a notification lost while the listener reconnects delays
//! an event but never loses it.

mod relay;
mod watch;

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::db::EventRow;
use crate::gateway::error::GatewayError;
use crate::pb::v1 as pb;

pub use relay::relay;
pub use watch::EventStream;

/// Most WatchEvents streams served at once by one gateway.
pub const MAX_WATCHERS: usize = 1024;

/// Wakes the watchers of this process when the `events` table may have
/// grown, and ends them at shutdown.
#[derive(Debug, Clone)]
pub struct EventFeed {
    wake: Arc<tokio::sync::watch::Sender<u64>>,
    watchers: Arc<Semaphore>,
    closed: CancellationToken,
}

impl Default for EventFeed {
    fn default() -> Self {
        Self::new(MAX_WATCHERS)
    }
}

impl EventFeed {
    /// A feed that serves at most `max_watchers` streams at once.
    pub fn new(max_watchers: usize) -> Self {
        let (wake, _) = tokio::sync::watch::channel(0);
        Self {
            wake: Arc::new(wake),
            watchers: Arc::new(Semaphore::new(max_watchers)),
            closed: CancellationToken::new(),
        }
    }

    /// Tells every watcher to read the table again.
    pub fn wake(&self) {
        self.wake
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// Ends every stream (with UNAVAILABLE, so clients reconnect elsewhere)
    /// and refuses new ones.
    pub fn close(&self) {
        self.closed.cancel();
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// A place for one more stream, or RESOURCE_EXHAUSTED.
    fn admit(&self) -> Result<OwnedSemaphorePermit, GatewayError> {
        if self.closed.is_cancelled() {
            return Err(shutting_down());
        }
        self.watchers
            .clone()
            .try_acquire_owned()
            .map_err(|_| GatewayError::ResourceExhausted {
                what: "too many event streams",
                retry_after: std::time::Duration::from_secs(5),
            })
    }
}

fn shutting_down() -> GatewayError {
    GatewayError::Unavailable {
        what: "the event stream",
        reason: "SHUTTING_DOWN",
        source: None,
    }
}

/// The proto form of a stored event; the payload only when asked for.
pub(crate) fn to_proto(row: EventRow, include_payload: bool) -> pb::Event {
    let micros = row.received_at;
    pb::Event {
        id: row.id,
        action: row.action,
        handle: row.handle.unwrap_or_default(),
        document_id: row.document_id.unwrap_or_default(),
        receive_time: Some(prost_types::Timestamp {
            seconds: micros.div_euclid(1_000_000),
            nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1000).unwrap_or(0),
        }),
        delivery_id: row.delivery_id,
        payload_json: if include_payload {
            row.payload
        } else {
            String::new()
        },
    }
}
