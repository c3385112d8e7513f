//! The state every handler shares.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::emulator::auth::Guard;
use crate::emulator::faults::Faults;
use crate::emulator::replay::Completed;
use crate::emulator::store::Store;
use crate::emulator::uploads::Uploads;
use crate::emulator::webhooks::Webhooks;

/// Shared state of one emulator.
#[derive(Debug)]
pub struct State {
    /// The API key clients must send.
    pub api_key: String,
    /// Policy checks.
    pub guard: Guard,
    /// The data dir.
    pub store: Store,
    /// Pending multipart uploads.
    pub uploads: Uploads,
    /// Fault injection and request counts.
    pub faults: Faults,
    /// Answers of completed uploads, for a repeated `complete`.
    pub completed: Completed,
    /// Webhook delivery, when configured.
    pub webhooks: Option<Webhooks>,
    /// `127.0.0.1:PORT`, the `location_url` handed to clients.
    pub host: String,
    /// Bytes of file content sent in download bodies (File API and CDN),
    /// counted as each chunk is handed to the connection: a test sees how
    /// far a reader has pulled.
    pub bytes_served: Arc<AtomicU64>,
}

impl State {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.host)
    }

    /// The CDN URL of a handle.
    pub fn cdn_url(&self, handle: &str) -> String {
        format!("http://{}/{handle}", self.host)
    }

    /// Queues a webhook when webhooks are configured.
    pub fn notify(&self, action: &'static str, text: serde_json::Value) {
        if let Some(webhooks) = &self.webhooks {
            webhooks.send(action, text);
        }
    }
}

/// What axum handlers receive.
pub type Shared = Arc<State>;
