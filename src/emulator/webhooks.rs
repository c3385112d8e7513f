//! Signed webhook deliveries (protocol reference, section 8), sent by one
//! background task from a bounded queue so that requests never wait on them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::emulator::WebhookTarget;
use crate::emulator::error::unix_now;
use crate::filestack::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};

/// Deliveries waiting beyond this are dropped (with a warning).
const QUEUE: usize = 256;
/// Retries after the first attempt.
const RETRIES: u32 = 3;
/// First retry delay, doubled each time.
const BACKOFF: Duration = Duration::from_millis(200);

/// Delivery counters, for `/_emulator/stats`.
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
}

/// The sending side of the delivery queue.
#[derive(Debug, Clone)]
pub struct Webhooks {
    tx: mpsc::Sender<(&'static str, Value)>,
    pub stats: Arc<WebhookStats>,
}

impl Webhooks {
    /// Starts the delivery task (it ends when every sender is dropped).
    pub fn start(target: WebhookTarget) -> anyhow::Result<Webhooks> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(WebhookStats::default());
        tokio::spawn(deliver_all(client, target, rx, stats.clone()));
        Ok(Webhooks { tx, stats })
    }

    /// Queues an event (`fp.upload`, `fp.overwrite`, `fp.delete`).
    pub fn send(&self, action: &'static str, text: Value) {
        if self.tx.try_send((action, text)).is_err() {
            tracing::warn!(action, "webhook queue full, delivery dropped");
        }
    }
}

async fn deliver_all(
    client: reqwest::Client,
    target: WebhookTarget,
    mut rx: mpsc::Receiver<(&'static str, Value)>,
    stats: Arc<WebhookStats>,
) {
    // Ids count up from the start time in microseconds, so an emulator
    // restarted on the same data dir never reuses an id a receiver has seen.
    let mut id: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    while let Some((action, text)) = rx.recv().await {
        id += 1;
        let timestamp = unix_now();
        let body = serde_json::json!({
            "id": id, "action": action, "timestamp": timestamp, "text": text,
        })
        .to_string();
        if deliver(&client, &target, &timestamp.to_string(), body).await {
            stats.delivered.fetch_add(1, Ordering::SeqCst);
        } else {
            stats.failed.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(id, action, "webhook delivery failed after retries");
        }
    }
}

async fn deliver(
    client: &reqwest::Client,
    target: &WebhookTarget,
    timestamp: &str,
    body: String,
) -> bool {
    let signature = sign(&target.secret, timestamp, body.as_bytes());
    let mut delay = BACKOFF;
    for attempt in 0..=RETRIES {
        if attempt > 0 {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        let sent = client
            .post(&target.url)
            .header("Content-Type", "application/json")
            .header(SIGNATURE_HEADER, &signature)
            .header(TIMESTAMP_HEADER, timestamp)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => return true,
            Ok(response) => {
                tracing::debug!(status = %response.status(), attempt, "webhook refused")
            }
            Err(error) => tracing::debug!(%error, attempt, "webhook not delivered"),
        }
    }
    false
}
