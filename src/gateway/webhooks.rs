//! `POST /webhooks/filestack`: Filestack's signed deliveries.
//!
//! The signature over `"<FS-Timestamp>.<raw body>"` and the timestamp's age
//! are checked on the raw bytes before anything is parsed; a body over the
//! limit is refused (413) before it is read whole. An accepted delivery is
//! recorded, and applied to its document, in one database transaction, with
//! no outbound call, so the answer is fast. Status codes: 200 stored (or
//! already stored: Filestack retries), 400 signed but malformed, 401
//! unsigned, wrongly signed, too old or from the future, 413 too large, 503
//! not configured (no webhook secret) or database unavailable.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::db::{Database, NewEvent, ReceiveOutcome};
use crate::filestack::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookVerifier};
use crate::gateway::domain::{Handle, OwnerId};
use crate::gateway::events::EventFeed;
use crate::gateway::journal::{ReaperBell, entry_of_key};
use crate::gateway::metrics::GatewayMetrics;
use crate::gateway::now_micros;
use crate::secret::Secret;

/// The path Filestack's webhook must point at.
pub const WEBHOOK_PATH: &str = "/webhooks/filestack";

/// Longest delivery id and action kept.
const MAX_ID_LEN: usize = 128;
const MAX_ACTION_LEN: usize = 64;
/// Longest content type taken from an `fp.overwrite`.
const MAX_TYPE_LEN: usize = 255;
/// Longest a delivery may take, body upload included: Filestack treats a
/// slow answer as a failure anyway, and a stalled sender holds nothing.
const DEADLINE: Duration = Duration::from_secs(10);
/// Deliveries recorded at once (the rest wait, within the deadline), so a
/// burst cannot take every database connection from the RPCs.
const CONCURRENT_RECORDS: usize = 4;

/// What the endpoint needs.
#[derive(Debug, Clone)]
pub struct WebhookReceiver {
    /// `None`: no secret is configured and every delivery is refused.
    verifier: Option<WebhookVerifier>,
    max_body_bytes: usize,
    db: Database,
    feed: EventFeed,
    reaper: ReaperBell,
    recording: Arc<Semaphore>,
    metrics: GatewayMetrics,
}

impl WebhookReceiver {
    /// Deliveries signed with `secret` at most `max_age` ago and at most
    /// `max_body_bytes` long are recorded in `db`; `feed` is woken after.
    pub fn new(
        secret: Option<Secret>,
        max_age: Duration,
        max_body_bytes: usize,
        db: Database,
        feed: EventFeed,
    ) -> Self {
        Self {
            verifier: secret.map(|secret| WebhookVerifier::new(secret, max_age)),
            max_body_bytes,
            db,
            feed,
            reaper: ReaperBell::default(),
            recording: Arc::new(Semaphore::new(CONCURRENT_RECORDS)),
            metrics: GatewayMetrics::default(),
        }
    }

    /// Rings `reaper` when a delivery names the file of an upload that has
    /// not settled it.
    pub fn waking(mut self, reaper: ReaperBell) -> Self {
        self.reaper = reaper;
        self
    }

    /// Counts deliveries by outcome in `metrics`.
    pub fn counting(mut self, metrics: GatewayMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The route, with its body limit and deadline.
    pub fn router(self) -> Router {
        let limit = self.max_body_bytes;
        let metrics = self.metrics.clone();
        Router::new()
            .route(WEBHOOK_PATH, post(receive))
            .layer(DefaultBodyLimit::max(limit))
            .layer(middleware::from_fn(move |request, next| {
                deadline(metrics.clone(), request, next)
            }))
            .with_state(Arc::new(self))
    }
}

async fn deadline(metrics: GatewayMetrics, request: Request, next: Next) -> Response {
    match tokio::time::timeout(DEADLINE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!("webhook delivery took too long; refused");
            metrics.webhook_delivery("too_slow");
            (StatusCode::REQUEST_TIMEOUT, "too slow").into_response()
        }
    }
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy)]
enum Delivery {
    NotConfigured,
    BadSignature,
    Malformed,
    Busy,
    Stored,
    Duplicate,
    Failed,
}

impl Delivery {
    /// The answer Filestack gets (it retries on anything but 2xx).
    fn answer(self) -> (StatusCode, &'static str) {
        match self {
            Delivery::NotConfigured => (
                StatusCode::SERVICE_UNAVAILABLE,
                "webhooks are not configured",
            ),
            Delivery::BadSignature => (StatusCode::UNAUTHORIZED, "invalid webhook signature"),
            Delivery::Malformed => (StatusCode::BAD_REQUEST, "malformed delivery"),
            Delivery::Busy | Delivery::Failed => {
                (StatusCode::SERVICE_UNAVAILABLE, "try again later")
            }
            Delivery::Stored => (StatusCode::OK, "stored"),
            Delivery::Duplicate => (StatusCode::OK, "already stored"),
        }
    }

    /// The `outcome` label of `filegate_webhook_deliveries_total`.
    fn outcome(self) -> &'static str {
        match self {
            Delivery::NotConfigured => "not_configured",
            Delivery::BadSignature => "bad_signature",
            Delivery::Malformed => "malformed",
            Delivery::Busy => "busy",
            Delivery::Stored => "stored",
            Delivery::Duplicate => "duplicate",
            Delivery::Failed => "failed",
        }
    }
}

async fn receive(
    State(receiver): State<Arc<WebhookReceiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let delivery = deliver(&receiver, &headers, &body).await;
    receiver.metrics.webhook_delivery(delivery.outcome());
    delivery.answer()
}

async fn deliver(receiver: &WebhookReceiver, headers: &HeaderMap, body: &Bytes) -> Delivery {
    let Some(verifier) = &receiver.verifier else {
        tracing::warn!("webhook delivery refused: no webhook secret is configured");
        return Delivery::NotConfigured;
    };
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let now = now_micros().div_euclid(1_000_000);
    if let Err(error) = verifier.verify(
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        body,
        now,
    ) {
        tracing::warn!(%error, "webhook delivery refused");
        return Delivery::BadSignature;
    }
    let event = match parse_delivery(body, now_micros()) {
        Ok(event) => event,
        Err(what) => {
            tracing::warn!(what, "signed webhook delivery is malformed");
            return Delivery::Malformed;
        }
    };
    record(receiver, &event).await
}

async fn record(receiver: &WebhookReceiver, event: &NewEvent) -> Delivery {
    let span = tracing::info_span!(
        "webhook",
        delivery_id = %event.delivery_id,
        action = %event.action,
        handle = event.handle.as_deref().unwrap_or("")
    );
    let Ok(_permit) = receiver.recording.acquire().await else {
        return Delivery::Busy;
    };
    let outcome = receiver
        .db
        .receive_event(event)
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    match outcome {
        Ok(ReceiveOutcome::Stored { id, found_upload }) => {
            tracing::info!(event_id = id, "webhook delivery recorded");
            receiver.feed.wake();
            if found_upload {
                tracing::info!(
                    event_id = id,
                    "the delivery named the file of an unsettled upload"
                );
                receiver.reaper.ring();
            }
            Delivery::Stored
        }
        Ok(ReceiveOutcome::Duplicate) => {
            tracing::info!("webhook delivery already recorded");
            Delivery::Duplicate
        }
        Err(error) => {
            tracing::error!(%error, "recording a webhook delivery failed");
            Delivery::Failed
        }
    }
}

/// The event of a verified body: `{"id", "action", "timestamp", "text"}`
/// (protocol reference, section 8.1). The error names what is wrong.
pub fn parse_delivery(body: &[u8], received_at: i64) -> Result<NewEvent, &'static str> {
    let json: Value = serde_json::from_slice(body).map_err(|_| "not JSON")?;
    let delivery_id = match json.get("id") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_LEN => s.clone(),
        _ => return Err("id"),
    };
    let action = match json.get("action").and_then(Value::as_str) {
        Some(a) if !a.is_empty() && a.len() <= MAX_ACTION_LEN && a.chars().all(is_visible) => {
            a.to_owned()
        }
        _ => return Err("action"),
    };
    let text = json.get("text").unwrap_or(&Value::Null);
    let field = |name: &str| text.get(name).and_then(Value::as_str);
    let content_type = field("mimetype")
        .or_else(|| field("type"))
        .filter(|t| t.len() <= MAX_TYPE_LEN && t.chars().all(is_visible))
        .map(str::to_owned);
    let payload = String::from_utf8(body.to_vec()).map_err(|_| "not UTF-8")?;
    Ok(NewEvent {
        delivery_id,
        action,
        handle: field("url").and_then(handle_of),
        path_owner: field("key").and_then(owner_of_path),
        upload_entry: field("key").and_then(entry_of_key),
        size_bytes: text.get("size").and_then(Value::as_i64).filter(|s| *s >= 0),
        content_type,
        payload,
        received_at,
    })
}

fn is_visible(c: char) -> bool {
    c.is_ascii_graphic()
}

/// The handle in a file URL: its last path segment
/// (`https://cdn.filestackcontent.com/HANDLE`, `.../api/file/HANDLE`).
fn handle_of(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    Handle::parse(last).ok().map(|h| h.as_str().to_owned())
}

/// The owner whose upload prefix (`user-uploads/<owner>/`) starts a
/// storage key: the gateway's uploads and the browser policies it grants
/// are confined to it, and RegisterHandle relies on it the same way.
fn owner_of_path(key: &str) -> Option<String> {
    let rest = key.strip_prefix("user-uploads/")?;
    let (owner, file) = rest.split_once('/')?;
    if file.is_empty() {
        return None;
    }
    OwnerId::parse(owner).map(|o| o.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::{handle_of, owner_of_path, parse_delivery};

    #[test]
    fn the_handle_is_the_last_segment_of_the_url() {
        let cdn = "https://cdn.filestackcontent.com/AbCdEfGhIjKlMnOpQrSt";
        assert_eq!(handle_of(cdn).as_deref(), Some("AbCdEfGhIjKlMnOpQrSt"));
        let api = "http://127.0.0.1:9/api/file/xK88QArxRiyVvFzo4p33?dl=true";
        assert_eq!(handle_of(api).as_deref(), Some("xK88QArxRiyVvFzo4p33"));
        assert_eq!(handle_of("https://cdn.example/a%20b"), None);
    }

    #[test]
    fn the_owner_comes_only_from_a_user_uploads_prefix() {
        assert_eq!(
            owner_of_path("user-uploads/alice/1_a.png").as_deref(),
            Some("alice")
        );
        assert_eq!(owner_of_path("user-uploads/alice/"), None);
        assert_eq!(owner_of_path("user-uploads/../x"), None);
        assert_eq!(owner_of_path("other/alice/x"), None);
    }

    #[test]
    fn a_delivery_without_id_or_action_is_malformed() {
        assert_eq!(parse_delivery(br#"{"action":"fp.upload"}"#, 0), Err("id"));
        assert_eq!(parse_delivery(br#"{"id":1}"#, 0), Err("action"));
        assert_eq!(parse_delivery(b"nope", 0), Err("not JSON"));
        let event = parse_delivery(
            br#"{"id":7,"action":"fp.overwrite","text":{"url":"https://x/h1","size":9,"mimetype":"text/plain"}}"#,
            5,
        )
        .expect("valid");
        assert_eq!(event.delivery_id, "7");
        assert_eq!(event.handle.as_deref(), Some("h1"));
        assert_eq!(event.size_bytes, Some(9));
        assert_eq!(event.content_type.as_deref(), Some("text/plain"));
    }
}
