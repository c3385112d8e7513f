//! Turns PostgreSQL notifications from every replica into wake-ups of this
//! process's watchers and evictions from its document cache, until
//! shutdown.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::db::{Database, Notification};
use crate::gateway::events::EventFeed;

/// Pause before listening again after the listener failed.
const RETRY: Duration = Duration::from_secs(1);

/// Relays notifications (PostgreSQL only) until `stop`.
pub async fn relay(db: Database, feed: EventFeed, stop: CancellationToken) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = listen(&db, &feed) => {}
    }
}

async fn listen(db: &Database, feed: &EventFeed) {
    loop {
        match db.listener().await {
            Ok(None) => return std::future::pending().await,
            Ok(Some(mut listener)) => {
                // Anything committed while nobody listened is read now.
                feed.wake();
                let lost = loop {
                    match listener.next().await {
                        // The listener itself dropped the document from
                        // the cache.
                        Ok(Notification::Document) => {}
                        Ok(Notification::Event) => feed.wake(),
                        Ok(Notification::Lost) => break true,
                        Err(error) => {
                            tracing::warn!(%error, "event listener failed; listening again");
                            break false;
                        }
                    }
                };
                drop(listener);
                if lost {
                    // A dropped connection: listen again at once.
                    tracing::info!("event listener lost its connection; listening again");
                    continue;
                }
            }
            Err(error) => tracing::warn!(%error, "cannot listen for events"),
        }
        tokio::time::sleep(RETRY).await;
    }
}
