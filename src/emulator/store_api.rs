//! `POST /api/store/{location}` (protocol reference, section 4.1): one-request
//! upload of a form field `fileUpload` or a raw body, base64 text when the
//! query says `base64decode=true`. Needs `key` and, when security is on, a
//! policy allowing `pick` whose size, path and container rules hold for the
//! file. Metadata reports the location the path names (`S3`, `gcs`, ...).

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use serde_json::{Value, json};

use crate::emulator::auth::{check_apikey, query_security};
use crate::emulator::complete::upload_event;
use crate::emulator::error::ApiError;
use crate::emulator::file_api::QueryMap;
use crate::emulator::incoming::{Destination, receive_checked};
use crate::emulator::multipart::guess_mimetype;
use crate::emulator::state::Shared;
use crate::emulator::store::{StoreTarget, location_name, random_id};
use crate::filestack::policy::Call;

/// `POST /api/store/{location}`.
pub async fn store(
    State(state): State<Shared>,
    Path(location): Path<String>,
    Query(query): Query<QueryMap>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let location = location_name(&location)
        .ok_or_else(|| ApiError::bad_request("invalid params: location"))?;
    check_apikey(query.get("key").map(String::as_str), &state.api_key)?;
    let policy = state
        .guard
        .check(query_security(&query).as_ref(), &[Call::Pick], None)?;
    let path = query.get("path").cloned();
    let container = query.get("container").cloned();
    let to = Destination {
        policy: policy.as_ref(),
        path: path.as_deref(),
        container: container.as_deref(),
    };
    let incoming = receive_checked(&state.store, req, &query, to).await?;
    let discard = |error: ApiError| {
        let _ = std::fs::remove_file(&incoming.tmp);
        error
    };
    let filename = query
        .get("filename")
        .cloned()
        .or_else(|| incoming.filename.clone())
        .unwrap_or_else(|| "file".to_owned());
    let mimetype = query
        .get("mimetype")
        .cloned()
        .or_else(|| incoming.content_type.clone().filter(|t| !t.is_empty()))
        .unwrap_or_else(|| guess_mimetype(&filename));
    let target = StoreTarget {
        filename,
        mimetype,
        path,
        container,
        location: location.to_owned(),
    };
    let handle = random_id(20);
    let meta = state
        .store
        .describe(&handle, &incoming.tmp, &incoming.written, &target)
        .await;
    state
        .store
        .commit(&incoming.tmp, &meta)
        .await
        .map_err(|e| discard(ApiError::internal(e)))?;
    tracing::info!(handle, size = meta.size, "file stored");
    state.notify("fp.upload", upload_event(&state, &meta));
    Ok(Json(json!({
        "url": state.cdn_url(&handle),
        "handle": handle,
        "size": meta.size,
        "type": meta.mimetype,
        "mimetype": meta.mimetype,
        "filename": meta.filename,
        "key": meta.key,
        "container": meta.container,
    })))
}
