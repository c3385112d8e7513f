//! The File API: download (with `Range`) and delete (protocol reference,
//! sections 7.1, 7.4; overwrite is `overwrite.rs`). Each needs a policy (when
//! security is on) for `read` or `remove`, pinned to this handle if it names
//! one. A handle in a File API path may carry an extension ([`ApiHandle`]).

use std::collections::HashMap;
use std::io::SeekFrom;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::emulator::auth::{check_apikey, query_security};
use crate::emulator::error::ApiError;
use crate::emulator::range::Requested;
use crate::emulator::state::Shared;
use crate::emulator::store::FileMeta;
use crate::filestack::policy::Call;

/// Query parameters of File API calls.
pub type QueryMap = HashMap<String, String>;

/// The handle in a File API path (`/api/file/{handle}`, `.../metadata`,
/// `.../remove`), without the `+extension` the JS SDK's deprecated
/// `retrieve({extension})` appends (`HANDLE+png`, protocol reference,
/// section 7.1). The extension only dresses the URL: it is not checked and
/// changes nothing, the policy is checked against the handle and the file is
/// served as stored.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(from = "String")]
pub struct ApiHandle(pub String);

impl From<String> for ApiHandle {
    fn from(segment: String) -> Self {
        match segment.split_once('+') {
            Some((handle, _extension)) => ApiHandle(handle.to_owned()),
            None => ApiHandle(segment),
        }
    }
}

/// `GET|HEAD /api/file/{handle}`, with `Range` (see [`serve_file`]).
pub async fn get_file(
    State(state): State<Shared>,
    Path(ApiHandle(handle)): Path<ApiHandle>,
    Query(query): Query<QueryMap>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.guard.check(
        query_security(&query).as_ref(),
        &[Call::Read],
        Some(&handle),
    )?;
    let meta = known(&state, &handle).await?;
    let download = query.get("dl").is_some_and(|v| v == "true");
    serve_file(&state, &meta, download, headers.get(header::RANGE)).await
}

/// The metadata of a stored file, or 404.
pub async fn known(state: &Shared, handle: &str) -> Result<FileMeta, ApiError> {
    state
        .store
        .meta(handle)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("file not found"))
}

/// Streams a stored file (or the one range `range` asks for, see
/// [`Requested`]) from disk with Filestack's download headers.
pub async fn serve_file(
    state: &Shared,
    meta: &FileMeta,
    download: bool,
    range: Option<&HeaderValue>,
) -> Result<Response, ApiError> {
    let mut file = tokio::fs::File::open(state.store.content_path(&meta.handle))
        .await
        .map_err(|_| ApiError::not_found("file not found"))?;
    // The length of the content actually opened (an overwrite may have
    // replaced it since the metadata was read).
    let length = file.metadata().await.map_err(ApiError::internal)?.len();
    let (status, start, count) = match Requested::resolve(range.map(HeaderValue::as_bytes), length)
    {
        Requested::Whole => (StatusCode::OK, 0, length),
        Requested::Part { start, last } => (StatusCode::PARTIAL_CONTENT, start, last - start + 1),
        Requested::Unsatisfiable => return Ok(unsatisfiable(length)),
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(ApiError::internal)?;
    }
    let served = state.bytes_served.clone();
    let reader = tokio_util::io::ReaderStream::with_capacity(file.take(count), 64 * 1024)
        .inspect_ok(move |chunk| {
            served.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        });
    let mut response = (status, Body::from_stream(reader)).into_response();
    let kind = if download { "attachment" } else { "inline" };
    let headers = response.headers_mut();
    let ascii: String = meta
        .filename
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut pairs = vec![
        (header::CONTENT_TYPE, meta.mimetype.clone()),
        (header::CONTENT_LENGTH, count.to_string()),
        (header::ACCEPT_RANGES, "bytes".to_owned()),
        (
            header::CONTENT_DISPOSITION,
            format!("{kind}; filename=\"{ascii}\""),
        ),
        (header::HeaderName::from_static("x-file-name"), ascii),
    ];
    if status == StatusCode::PARTIAL_CONTENT {
        let last = start + count - 1;
        pairs.push((
            header::CONTENT_RANGE,
            format!("bytes {start}-{last}/{length}"),
        ));
    }
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    Ok(response)
}

/// 416 for a file of `length` bytes, with `Content-Range: bytes */length`.
fn unsatisfiable(length: u64) -> Response {
    let error = ApiError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "the range is not satisfiable",
    );
    let mut response = error.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{length}")) {
        headers.insert(header::CONTENT_RANGE, value);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    response
}

/// `DELETE /api/file/{handle}` and `POST /api/file/{handle}/remove`.
pub async fn delete_file(
    State(state): State<Shared>,
    Path(ApiHandle(handle)): Path<ApiHandle>,
    Query(query): Query<QueryMap>,
) -> Result<Response, ApiError> {
    check_apikey(query.get("key").map(String::as_str), &state.api_key)?;
    state.guard.check(
        query_security(&query).as_ref(),
        &[Call::Remove],
        Some(&handle),
    )?;
    if !state
        .store
        .delete(&handle)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found("file not found"));
    }
    tracing::info!(handle, "file deleted");
    let url = format!("{}/api/file/{handle}", state.base_url());
    state.notify("fp.delete", json!({ "url": url }));
    Ok((StatusCode::OK, "success").into_response())
}
