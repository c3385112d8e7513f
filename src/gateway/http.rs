//! The HTTP listener: liveness, readiness, Prometheus metrics and the
//! Filestack webhook endpoint.

use std::sync::Arc;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::db::Database;
use crate::gateway::admission::UploadAdmission;
use crate::gateway::listener::Connections;
use crate::gateway::local_page::{self, LocalPage};
use crate::gateway::metrics::{Metrics, mirror};
use crate::gateway::tls::ServedListener;
use crate::gateway::webhooks::WebhookReceiver;

/// What `/metrics` reports.
#[derive(Debug, Clone)]
pub(crate) struct Gauges {
    pub admission: UploadAdmission,
    pub db: Database,
    pub grpc: Connections,
    pub http: Connections,
    pub metrics: Arc<Metrics>,
}

pub(crate) async fn serve_http(
    listener: ServedListener,
    db: Database,
    webhooks: WebhookReceiver,
    gauges: Gauges,
    stop: CancellationToken,
    page: Option<LocalPage>,
) -> anyhow::Result<()> {
    let ready_db = db.clone();
    let mut router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(move || async move { metrics(&gauges) }))
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

/// The text exposition of every metric, the gauges read now.
fn metrics(gauges: &Gauges) -> axum::response::Response {
    let sampled = &gauges.metrics.sampled;
    let admission = gauges.admission.gauge();
    let cache = gauges.db.cache_stats();
    let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    sampled
        .uploads_active
        .set(signed(admission.active_uploads as u64));
    sampled
        .upload_buffer_reserved_bytes
        .set(signed(admission.reserved_bytes));
    sampled
        .upload_buffer_budget_bytes
        .set(signed(admission.budget_bytes));
    mirror(&sampled.document_cache_hits, cache.hits);
    mirror(&sampled.document_cache_misses, cache.misses);
    sampled.document_cache_entries.set(signed(cache.entries));
    sampled.document_cache_live.set(i64::from(cache.live));
    sampled
        .connections_max
        .set(signed(gauges.grpc.max() as u64));
    sampled
        .grpc_connections_open
        .set(signed(gauges.grpc.open() as u64));
    mirror(
        &sampled.grpc_handshake_timeouts,
        gauges.grpc.handshake_timeouts(),
    );
    sampled
        .http_connections_open
        .set(signed(gauges.http.open() as u64));
    mirror(
        &sampled.http_handshake_timeouts,
        gauges.http.handshake_timeouts(),
    );
    let pool = gauges.db.pool_stats();
    sampled.db_connections_open.set(i64::from(pool.open));
    sampled.db_connections_idle.set(i64::from(pool.idle));
    sampled.db_connections_max.set(i64::from(pool.max));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        gauges.metrics.encode(),
    )
        .into_response()
}
