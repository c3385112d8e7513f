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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::db::EventRow;
use crate::gateway::domain::OwnerId;
use crate::gateway::error::GatewayError;
use crate::pb::v1 as pb;

pub use relay::relay;
pub use watch::EventStream;

/// Default of `--max-watch-streams`.
pub const DEFAULT_MAX_WATCH_STREAMS: usize = 1024;
/// Default of `--max-watch-streams-per-owner`.
pub const DEFAULT_MAX_WATCH_STREAMS_PER_OWNER: usize = 64;

/// What a refused stream is told to wait before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// How many WatchEvents streams one gateway serves at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchLimits {
    /// Streams of all owners together.
    pub total: usize,
    /// Streams of one owner.
    pub per_owner: usize,
}

impl Default for WatchLimits {
    fn default() -> Self {
        Self {
            total: DEFAULT_MAX_WATCH_STREAMS,
            per_owner: DEFAULT_MAX_WATCH_STREAMS_PER_OWNER,
        }
    }
}

/// Wakes the watchers of this process when the `events` table may have
/// grown, bounds how many there are, and ends them at shutdown.
#[derive(Debug, Clone)]
pub struct EventFeed {
    wake: Arc<tokio::sync::watch::Sender<u64>>,
    watchers: Arc<Semaphore>,
    owners: Arc<Mutex<HashMap<String, usize>>>,
    per_owner: usize,
    closed: CancellationToken,
}

impl Default for EventFeed {
    fn default() -> Self {
        Self::new(WatchLimits::default())
    }
}

impl EventFeed {
    /// A feed that serves at most `limits` streams at once.
    pub fn new(limits: WatchLimits) -> Self {
        let (wake, _) = tokio::sync::watch::channel(0);
        Self {
            wake: Arc::new(wake),
            watchers: Arc::new(Semaphore::new(limits.total.min(Semaphore::MAX_PERMITS))),
            owners: Arc::default(),
            per_owner: limits.per_owner,
            closed: CancellationToken::new(),
        }
    }

    /// Tells every watcher to read the table again.
    pub fn wake(&self) {
        self.wake
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// Ends every stream (with UNAVAILABLE `DRAINING`, so clients reconnect
    /// elsewhere) and refuses new ones.
    pub fn close(&self) {
        self.closed.cancel();
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// A place for one more stream of `owner`, or RESOURCE_EXHAUSTED.
    fn admit(&self, owner: &OwnerId) -> Result<WatchSlot, GatewayError> {
        if self.closed.is_cancelled() {
            return Err(GatewayError::draining());
        }
        let mut owners = lock(&self.owners);
        let streams = owners.get(owner.as_str()).copied().unwrap_or(0);
        if streams >= self.per_owner {
            return Err(GatewayError::ResourceExhausted {
                what: "too many event streams for this owner",
                reason: "TOO_MANY_WATCH_STREAMS_FOR_OWNER",
                retry_after: RETRY_AFTER,
            });
        }
        let permit = self.watchers.clone().try_acquire_owned().map_err(|_| {
            GatewayError::ResourceExhausted {
                what: "too many event streams",
                reason: "TOO_MANY_WATCH_STREAMS",
                retry_after: RETRY_AFTER,
            }
        })?;
        owners.insert(owner.as_str().to_owned(), streams + 1);
        Ok(WatchSlot {
            _permit: permit,
            owners: self.owners.clone(),
            owner: owner.as_str().to_owned(),
        })
    }
}

fn lock(
    owners: &Mutex<HashMap<String, usize>>,
) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
    owners
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One stream's place, counted in the total and for its owner until dropped.
#[derive(Debug)]
struct WatchSlot {
    _permit: OwnedSemaphorePermit,
    owners: Arc<Mutex<HashMap<String, usize>>>,
    owner: String,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut owners = lock(&self.owners);
        if let Some(streams) = owners.get_mut(&self.owner) {
            *streams -= 1;
            if *streams == 0 {
                owners.remove(&self.owner);
            }
        }
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
