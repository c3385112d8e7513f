//! The CDN: `GET|HEAD /[APIKEY/][TASK/…]HANDLE` and `/{handle}/metadata`.
//!
//! Other methods are a 405, except that a URL naming a task the emulator
//! lacks is the same 400 as for a GET (`task not supported by the emulator:
//! store`), and `/process` and `/prefetch` are a 400 naming the endpoint that
//! is not emulated, whatever the method.
//!
//! The path is split by `transform::parse_chain`. A plain download needs
//! `read` and honours `Range` (`range.rs`); a chain with tasks needs `read` **and** `convert`. Security comes
//! from the `security` task or from `policy`/`signature` query parameters.
//! Transformed results are cached under `cache/HANDLE/` keyed by the parsed
//! tasks, and dropped when the file is overwritten or deleted.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::emulator::auth::query_security;
use crate::emulator::error::ApiError;
use crate::emulator::file_api::{QueryMap, known, serve_file};
use crate::emulator::metadata::metadata;
use crate::emulator::state::Shared;
use crate::emulator::store::FileMeta;
use crate::emulator::transform::{self, Task, TransformError};
use crate::filestack::policy::Call;

/// Largest file the emulator will decode for a transformation.
pub const MAX_TRANSFORM_INPUT: u64 = 64 * 1024 * 1024;

/// Filestack endpoints on the CDN and Upload API hosts that the emulator
/// does not emulate, with what they do: answered 400 whatever the method.
const NOT_EMULATED: [(&str, &str); 2] = [
    ("process", "URL ingestion"),
    ("prefetch", "the picker's app settings"),
];

/// Every path no other route takes.
pub async fn cdn(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    Query(query): Query<QueryMap>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // `parse_chain` decodes `%XX` escapes itself.
    let path = uri.path().trim_start_matches('/');
    if let Some((_, what)) = NOT_EMULATED.iter().find(|(name, _)| *name == path) {
        return Err(ApiError::bad_request(format!(
            "endpoint not supported by the emulator: {method} /{path} ({what})"
        )));
    }
    let reads = method == Method::GET || method == Method::HEAD;
    if let [handle, "metadata"] = path.split('/').collect::<Vec<_>>().as_slice() {
        if !reads {
            return Ok(get_or_head_only(&method));
        }
        return Ok(metadata(&state, handle, &query).await?.into_response());
    }
    if path.is_empty() {
        return Err(ApiError::not_found("no such file"));
    }
    // Parsed whatever the method, so that a POST of a task the emulator
    // lacks (the Python SDK's `Transformation.store()` posts its `store`
    // task) is told which task, as the same URL sent as a GET is.
    let chain = transform::parse_chain(path).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if !reads {
        return Ok(get_or_head_only(&method));
    }
    if let Some(apikey) = chain.apikey.as_deref() {
        if apikey != state.api_key {
            return Err(ApiError::bad_request("Invalid Application: unknown apikey"));
        }
    }
    let security = chain.security.clone().or_else(|| query_security(&query));
    let calls: &[Call] = if chain.tasks.is_empty() {
        &[Call::Read]
    } else {
        &[Call::Read, Call::Convert]
    };
    state
        .guard
        .check(security.as_ref(), calls, Some(&chain.handle))?;
    let meta = known(&state, &chain.handle).await?;
    let download = query.get("dl").is_some_and(|v| v == "true");
    if chain.tasks.is_empty() {
        return serve_file(&state, &meta, download, headers.get(header::RANGE)).await;
    }
    transformed(&state, &meta, &chain.tasks).await
}

/// 405, with `Allow`, for a CDN URL sent with a method other than GET or HEAD.
fn get_or_head_only(method: &Method) -> Response {
    let error = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "method not supported by the emulator's CDN: {method} (downloads and transformations are GET or HEAD)"
        ),
    );
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

async fn transformed(
    state: &Shared,
    meta: &FileMeta,
    tasks: &[Task],
) -> Result<Response, ApiError> {
    // Keyed by the content too, so a result rendered while the file was
    // being overwritten is never served for the new content.
    let key = hex::encode(Sha256::digest(
        format!("{}:{}", meta.sha256, transform::canonical(tasks)).as_bytes(),
    ));
    let dir = state.store.cache_dir(&meta.handle);
    let cached = dir.join(&key);
    let mime_path = dir.join(format!("{key}.type"));
    if let Ok(mimetype) = tokio::fs::read_to_string(&mime_path).await {
        if let Ok(file) = tokio::fs::File::open(&cached).await {
            let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
            return Ok(([(header::CONTENT_TYPE, mimetype)], body).into_response());
        }
    }
    if meta.size > MAX_TRANSFORM_INPUT {
        return Err(ApiError::bad_request(format!(
            "file is too large to transform (over {MAX_TRANSFORM_INPUT} bytes)"
        )));
    }
    let input = tokio::fs::read(state.store.content_path(&meta.handle))
        .await
        .map_err(ApiError::internal)?;
    let owned = tasks.to_vec();
    let rendered = tokio::task::spawn_blocking(move || transform::apply(&input, &owned))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            TransformError::Encode(_) => ApiError::internal(e),
            other => ApiError::bad_request(other.to_string()),
        })?;
    if let Err(e) = write_cache(state, &dir, &cached, &mime_path, &rendered).await {
        tracing::warn!(error = %e, "could not cache a transformation");
    }
    Ok(([(header::CONTENT_TYPE, rendered.mimetype)], rendered.bytes).into_response())
}

async fn write_cache(
    state: &Shared,
    dir: &std::path::Path,
    cached: &std::path::Path,
    mime_path: &std::path::Path,
    rendered: &transform::Rendered,
) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let tmp = state.store.tmp_path();
    tokio::fs::write(&tmp, &rendered.bytes).await?;
    tokio::fs::rename(&tmp, cached).await?;
    tokio::fs::write(&tmp, rendered.mimetype.as_bytes()).await?;
    tokio::fs::rename(&tmp, mime_path).await
}
