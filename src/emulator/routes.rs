//! The emulator's routes.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use tower_http::cors::{Any, CorsLayer};

use crate::emulator::error::ApiError;
use crate::emulator::faults::FaultSpec;
use crate::emulator::replay::Settings;
use crate::emulator::state::Shared;
use crate::emulator::{
    cdn, complete, file_api, metadata, middleware, multipart, overwrite, s3, store_api,
};

/// Every route, behind the fault-injection middleware, answering CORS for
/// any origin as Filestack's API and CDN do (a browser uploads straight to
/// Filestack with a policy, the way the picker does).
pub fn router(state: Shared) -> Router {
    let streaming = Router::new()
        .route("/s3/{upload_id}", put(s3::put_part))
        .route("/api/store/{location}", post(store_api::store))
        .route(
            "/api/file/{handle}",
            get(file_api::get_file)
                .delete(file_api::delete_file)
                .post(overwrite::overwrite_file)
                .put(overwrite::overwrite_file),
        )
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .route("/multipart/start", post(multipart::start))
        .route("/multipart/upload", post(multipart::upload))
        .route("/multipart/commit", post(multipart::commit))
        .route("/multipart/complete", post(complete::complete))
        .route("/api/file/{handle}/remove", post(file_api::delete_file))
        .route("/api/file/{handle}/metadata", get(metadata::api_metadata))
        .route("/_emulator/faults", post(arm_fault).delete(clear_faults))
        .route("/_emulator/stats", get(stats))
        .route("/_emulator/settings", get(settings).put(set_settings))
        .route("/_emulator/files", get(files))
        .merge(streaming)
        .fallback(cdn::cdn)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::faults,
        ))
        // Any origin, method and request header; exposed response headers
        // are each route's own (the S3 part PUT exposes its ETag).
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods(Any)
                .allow_headers(Any),
        )
        .with_state(state)
}

async fn arm_fault(
    State(state): State<Shared>,
    axum::Json(spec): axum::Json<FaultSpec>,
) -> Result<axum::Json<Value>, ApiError> {
    state.faults.arm(spec)?;
    Ok(axum::Json(json!({"armed": true})))
}

/// Every stored file: handle, storage key and size (at most 10 000).
async fn files(State(state): State<Shared>) -> Result<axum::Json<Value>, ApiError> {
    let files = state.store.list().await.map_err(ApiError::internal)?;
    let listed: Vec<Value> = files
        .iter()
        .take(10_000)
        .map(|meta| json!({"handle": meta.handle, "key": meta.key, "size": meta.size}))
        .collect();
    Ok(axum::Json(Value::Array(listed)))
}

async fn settings(State(state): State<Shared>) -> axum::Json<Settings> {
    axum::Json(state.completed.settings())
}

async fn set_settings(
    State(state): State<Shared>,
    axum::Json(settings): axum::Json<Settings>,
) -> axum::Json<Settings> {
    state.completed.set(settings);
    axum::Json(settings)
}

async fn clear_faults(State(state): State<Shared>) -> axum::Json<Value> {
    state.faults.clear();
    axum::Json(json!({"cleared": true}))
}

async fn stats(State(state): State<Shared>) -> Result<axum::Json<Value>, ApiError> {
    let stored = state.store.count().await.map_err(ApiError::internal)?;
    let (delivered, failed) = state.webhooks.as_ref().map_or((0, 0), |w| {
        use std::sync::atomic::Ordering;
        (
            w.stats.delivered.load(Ordering::SeqCst),
            w.stats.failed.load(Ordering::SeqCst),
        )
    });
    Ok(axum::Json(json!({
        "stored_files": stored,
        "pending_uploads": state.uploads.pending(),
        "requests": state.faults.counts(),
        "webhooks_delivered": delivered,
        "webhooks_failed": failed,
        "bytes_served": state.bytes_served.load(std::sync::atomic::Ordering::Relaxed),
        "traceparents": state.faults.traceparents().into_iter()
            .map(|(route, traceparent)| json!({"route": route, "traceparent": traceparent}))
            .collect::<Vec<_>>(),
    })))
}
