//! Overwrite: `POST|PUT /api/file/{handle}` (protocol reference, section
//! 7.3) replaces a stored file's content and keeps its name, key, container
//! and location. The body is a `fileUpload` form field or raw bytes, base64
//! text when the query says `base64decode=true`. Needs a policy allowing
//! `write` (when security is on), pinned to this handle if it names one.
//!
//! An overwrite stores bytes, so the write policy's store rules hold for it
//! as they hold for an upload, with the same 403s: `maxSize` and `minSize`
//! bound the new content (after decoding), `container` must match the
//! file's container, and `path` must match the file's storage key. An
//! overwrite names no path of its own; the key is the path its bytes are
//! written to. So a rule `user-uploads/alice/.*` lets a policy overwrite the
//! files stored under `user-uploads/alice/`, and a rule that the upload's
//! folder matched matches the key it chose there too.

use axum::extract::{Path, Query, Request, State};
use serde_json::{Value, json};

use crate::emulator::auth::query_security;
use crate::emulator::error::ApiError;
use crate::emulator::file_api::{ApiHandle, QueryMap, known};
use crate::emulator::incoming::{Destination, receive_checked};
use crate::emulator::state::Shared;
use crate::emulator::store::StoreTarget;
use crate::filestack::policy::Call;

/// `POST|PUT /api/file/{handle}`.
pub async fn overwrite_file(
    State(state): State<Shared>,
    Path(ApiHandle(handle)): Path<ApiHandle>,
    Query(query): Query<QueryMap>,
    req: Request,
) -> Result<axum::Json<Value>, ApiError> {
    let policy = state.guard.check(
        query_security(&query).as_ref(),
        &[Call::Write],
        Some(&handle),
    )?;
    let old = known(&state, &handle).await?;
    let to = Destination {
        policy: policy.as_ref(),
        path: Some(&old.key),
        container: Some(&old.container),
    };
    let incoming = receive_checked(&state.store, req, &query, to).await?;
    let mut target = StoreTarget {
        filename: old.filename.clone(),
        mimetype: old.mimetype.clone(),
        path: old.path.clone(),
        container: Some(old.container.clone()),
        location: old.location.clone(),
    };
    if let Some(kind) = incoming.content_type.as_deref() {
        if !kind.is_empty() && !kind.starts_with("application/octet-stream") {
            target.mimetype = kind.to_owned();
        }
    }
    let mut meta = state
        .store
        .describe(&handle, &incoming.tmp, &incoming.written, &target)
        .await;
    meta.key = old.key;
    if let Err(e) = state.store.commit(&incoming.tmp, &meta).await {
        let _ = tokio::fs::remove_file(&incoming.tmp).await;
        return Err(ApiError::internal(e));
    }
    tracing::info!(handle, size = meta.size, "file overwritten");
    let answer = json!({
        "url": format!("{}/api/file/{handle}", state.base_url()),
        "mimetype": meta.mimetype,
        "isWriteable": true,
        "size": meta.size,
        "filename": meta.filename,
    });
    let mut event = answer.clone();
    event["client"] = json!("Computer");
    state.notify("fp.overwrite", event);
    Ok(axum::Json(answer))
}
