//! The gRPC gateway: `filegate.v1.FileGatewayService` over the Filestack
//! client and the database.
//!
//! Layers, top to bottom: `service` (tonic handlers: authenticate, parse,
//! call one function, convert), `documents`, `read` and `upload` (the
//! operations, on checked domain types), then the Filestack client and the
//! database.

pub mod admission;
pub mod app;
pub mod auth;
pub mod compression;
mod convert;
pub mod deadline;
mod documents;
pub mod domain;
mod drain;
pub mod error;
pub mod events;
pub mod grpc_web;
mod http;
pub mod journal;
pub mod jwks;
pub mod listener;
pub mod local_page;
pub mod metrics;
pub mod page_token;
mod read;
mod service;
pub mod settings;
pub mod tls;
mod upload;
pub mod webhooks;

use std::time::Duration;

use crate::db::Database;
use crate::filestack::FilestackClient;
use crate::gateway::admission::UploadAdmission;
use crate::gateway::auth::Authenticator;
use crate::gateway::drain::Drain;
use crate::gateway::events::EventFeed;
use crate::gateway::journal::ReaperBell;
use crate::gateway::metrics::GatewayMetrics;
use crate::gateway::page_token::PageTokens;

pub use app::Application;
pub use settings::{ServeArgs, Settings};

/// Limits the operations enforce.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest file an upload may store, in bytes.
    pub max_upload_bytes: u64,
    /// TTL of signed URLs and policies when the caller gives none.
    pub default_ttl: Duration,
    /// Longest TTL a caller may ask for.
    pub max_ttl: Duration,
    /// Longest wait for the next message of an upload stream.
    pub upload_idle_timeout: Duration,
    /// Deadline of each unary call.
    pub call_timeout: Duration,
    /// Age after which an upload journal entry that never sent `complete`
    /// is dropped.
    pub journal_stale_after: Duration,
    /// Time after `complete` was sent by which any running upload has
    /// finished with its entry: an older entry belongs to a dead process.
    pub journal_grace: Duration,
    /// Whether files that fit in one part are stored with one request.
    pub single_request_uploads: bool,
    /// Idle time after which a resumable upload is removed.
    pub upload_session_expiry: Duration,
}

/// The state every operation works on.
#[derive(Debug)]
pub struct Gateway {
    pub(crate) db: Database,
    pub(crate) filestack: FilestackClient,
    pub(crate) auth: Authenticator,
    pub(crate) limits: Limits,
    /// Wakes this gateway's WatchEvents streams.
    pub(crate) events: EventFeed,
    /// Upload slots and buffer budget.
    pub(crate) admission: UploadAdmission,
    /// Wakes the upload journal's reaper.
    pub(crate) reaper: ReaperBell,
    /// Seals ListDocuments page tokens.
    pub(crate) page_tokens: PageTokens,
    /// Set when shutdown begins: new calls are refused, those in flight
    /// counted.
    pub(crate) drain: Drain,
    /// What the gateway records as it works (upload bytes, ...).
    pub(crate) metrics: GatewayMetrics,
}

impl Gateway {
    pub fn new(
        db: Database,
        filestack: FilestackClient,
        auth: Authenticator,
        limits: Limits,
        admission: UploadAdmission,
        events: EventFeed,
    ) -> Self {
        let page_tokens = PageTokens::new(&filestack.config().app_secret);
        Self {
            db,
            filestack,
            auth,
            limits,
            events,
            admission,
            reaper: ReaperBell::default(),
            page_tokens,
            drain: Drain::default(),
            metrics: GatewayMetrics::default(),
        }
    }

    /// The same gateway, recording into `metrics`.
    pub fn with_metrics(mut self, metrics: GatewayMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// From now on, new calls are refused with UNAVAILABLE `DRAINING` and
    /// every WatchEvents stream ends with it.
    pub fn start_draining(&self) {
        self.drain.start();
        self.events.close();
    }

    pub fn is_draining(&self) -> bool {
        self.drain.is_draining()
    }

    /// Completes when no call that began before draining is left.
    pub async fn calls_done(&self) {
        self.drain.calls_done().await;
    }
}

/// Microseconds since the Unix epoch, now.
pub(crate) fn now_micros() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_micros()).unwrap_or(i64::MAX)
}
