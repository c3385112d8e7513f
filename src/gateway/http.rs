//! The HTTP listener: liveness, readiness, Prometheus metrics and the
//! Filestack webhook endpoint.

use axum::Router;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::db::Database;
use crate::gateway::admission::UploadAdmission;
use crate::gateway::listener::{Connections, GuardedListener};
use crate::gateway::webhooks::WebhookReceiver;

/// What `/metrics` reports.
#[derive(Debug, Clone)]
pub(crate) struct Gauges {
    pub admission: UploadAdmission,
    pub db: Database,
    pub grpc: Connections,
    pub http: Connections,
}

pub(crate) async fn serve_http(
    listener: GuardedListener,
    db: Database,
    webhooks: WebhookReceiver,
    gauges: Gauges,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let ready_db = db.clone();
    let router = Router::new()
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
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    Ok(())
}

/// Prometheus text exposition of the gauges.
fn metrics(gauges: &Gauges) -> String {
    let gauge = gauges.admission.gauge();
    let cache = gauges.db.cache_stats();
    format!(
        "# HELP filegate_uploads_active Uploads in progress.\n\
         # TYPE filegate_uploads_active gauge\n\
         filegate_uploads_active {}\n\
         # HELP filegate_upload_buffer_reserved_bytes Upload buffer budget reserved by uploads in progress.\n\
         # TYPE filegate_upload_buffer_reserved_bytes gauge\n\
         filegate_upload_buffer_reserved_bytes {}\n\
         # HELP filegate_upload_buffer_budget_bytes The configured upload buffer budget.\n\
         # TYPE filegate_upload_buffer_budget_bytes gauge\n\
         filegate_upload_buffer_budget_bytes {}\n\
         # HELP filegate_document_cache_hits_total Document reads served from the cache.\n\
         # TYPE filegate_document_cache_hits_total counter\n\
         filegate_document_cache_hits_total {}\n\
         # HELP filegate_document_cache_misses_total Document reads that went to the database.\n\
         # TYPE filegate_document_cache_misses_total counter\n\
         filegate_document_cache_misses_total {}\n\
         # HELP filegate_document_cache_entries Document rows in the cache.\n\
         # TYPE filegate_document_cache_entries gauge\n\
         filegate_document_cache_entries {}\n\
         # HELP filegate_document_cache_live Whether the document cache serves rows (PostgreSQL: while listening for other replicas' changes).\n\
         # TYPE filegate_document_cache_live gauge\n\
         filegate_document_cache_live {}\n\
         # HELP filegate_connections_max Connections each listener holds at most.\n\
         # TYPE filegate_connections_max gauge\n\
         filegate_connections_max {}\n\
         # HELP filegate_grpc_connections_open gRPC connections open (in their handshake or served).\n\
         # TYPE filegate_grpc_connections_open gauge\n\
         filegate_grpc_connections_open {}\n\
         # HELP filegate_grpc_handshake_timeouts_total gRPC connections closed for sending no HTTP/2 preface in time.\n\
         # TYPE filegate_grpc_handshake_timeouts_total counter\n\
         filegate_grpc_handshake_timeouts_total {}\n\
         # HELP filegate_http_connections_open HTTP connections open (in their handshake or served).\n\
         # TYPE filegate_http_connections_open gauge\n\
         filegate_http_connections_open {}\n\
         # HELP filegate_http_handshake_timeouts_total HTTP connections closed for sending no request head in time.\n\
         # TYPE filegate_http_handshake_timeouts_total counter\n\
         filegate_http_handshake_timeouts_total {}\n",
        gauge.active_uploads,
        gauge.reserved_bytes,
        gauge.budget_bytes,
        cache.hits,
        cache.misses,
        cache.entries,
        u8::from(cache.live),
        gauges.grpc.max(),
        gauges.grpc.open(),
        gauges.grpc.handshake_timeouts(),
        gauges.http.open(),
        gauges.http.handshake_timeouts(),
    )
}
