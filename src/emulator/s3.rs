//! `PUT /s3/{upload_id}?partNumber=N&offset=O`: the emulator's presigned
//! part upload, acting like S3. The body is streamed to disk while its MD5 is
//! computed; errors are S3-style XML.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::emulator::body::{WriteError, write_stream};
use crate::emulator::complete::chunk_path;
use crate::emulator::error::ApiError;
use crate::emulator::state::Shared;
use crate::filestack::policy::constant_time_eq;

/// `PUT /s3/{upload_id}`.
pub async fn put_part(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let number = |key: &str| query.get(key).and_then(|v| v.parse::<u64>().ok());
    let part = number("partNumber")
        .and_then(|p| u32::try_from(p).ok())
        .ok_or_else(|| ApiError::bad_request("partNumber is required").s3("InvalidArgument"))?;
    let offset = number("offset").unwrap_or(0);
    let chunk = state.uploads.chunk(&id, part, offset)?;
    let announced_md5 = chunk.md5.clone().unwrap_or_default();
    let expected = state
        .uploads
        .presign(&id, part, offset, chunk.size, &announced_md5);
    let header = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let authorization = header(header::AUTHORIZATION).unwrap_or_default();
    let signature = authorization
        .rsplit("Signature=")
        .next()
        .unwrap_or_default();
    let content_md5 = header(header::HeaderName::from_static("content-md5"));
    let signed_md5_matches = chunk.md5.is_none() || content_md5 == chunk.md5.as_deref();
    if !constant_time_eq(signature.as_bytes(), expected.as_bytes()) || !signed_md5_matches {
        return Err(ApiError::forbidden(
            "The request signature we calculated does not match the signature you provided",
        )
        .s3("SignatureDoesNotMatch"));
    }
    let tmp = state.store.tmp_path();
    let written = write_stream(body.into_data_stream(), &tmp, chunk.size)
        .await
        .map_err(|e| match e {
            WriteError::TooLarge(_) => {
                ApiError::bad_request("body is larger than the announced size").s3("BadRequest")
            }
            WriteError::Body(why) => ApiError::bad_request(why).s3("IncompleteBody"),
            WriteError::Io(e) => ApiError::internal(e).s3("InternalError"),
        })?;
    let refuse = |error: ApiError| {
        let _ = std::fs::remove_file(&tmp);
        Err(error)
    };
    if written.size != chunk.size {
        return refuse(
            ApiError::bad_request("body is smaller than the announced size").s3("IncompleteBody"),
        );
    }
    if let Some(given) = content_md5 {
        if STANDARD.encode(&written.md5) != given {
            return refuse(
                ApiError::bad_request(
                    "The Content-MD5 you specified did not match what we received",
                )
                .s3("BadDigest"),
            );
        }
    }
    let path = chunk_path(&state, &id, part, offset);
    if let Err(e) = tokio::fs::rename(&tmp, &path).await {
        return refuse(ApiError::internal(e).s3("InternalError"));
    }
    let etag = written.md5_hex();
    state
        .uploads
        .chunk_received(&id, part, offset, etag.clone())?;
    Ok((
        StatusCode::OK,
        [
            (header::ETAG, format!("\"{etag}\"")),
            (header::ACCESS_CONTROL_EXPOSE_HEADERS, "ETag".to_owned()),
        ],
    )
        .into_response())
}
