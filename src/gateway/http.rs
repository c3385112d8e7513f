//! The HTTP listener: liveness, readiness, Prometheus metrics and the
//! Filestack webhook endpoint.

use std::sync::Arc;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::db::Database;
use crate::gateway::local_page::{self, LocalPage};
use crate::gateway::metrics::Metrics;
use crate::gateway::tls::ServedListener;
use crate::gateway::webhooks::WebhookReceiver;

pub(crate) async fn serve_http(
    listener: ServedListener,
    db: Database,
    webhooks: WebhookReceiver,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    page: Option<LocalPage>,
) -> anyhow::Result<()> {
    let ready_db = db.clone();
    let mut router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(move || async move { encoded(&metrics) }))
        .route(
            "/readyz",
            get(move || {
                let db = ready_db.clone();
                async move {
                    if db.ping().await {
                        (axum::http::StatusCode::OK, "ready")
                    } else {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "database unavailable",
                        )
                    }
                }
            }),
        )
        .merge(webhooks.router());
    if let Some(page) = page {
        router = router.merge(local_page::router(page));
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    Ok(())
}

/// The text exposition of every metric.
fn encoded(metrics: &Metrics) -> axum::response::Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
        .into_response()
}
