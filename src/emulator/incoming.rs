//! Reading an uploaded file from a request: a `multipart/form-data` body with
//! the file in field `fileUpload`, or a raw body with its `Content-Type`,
//! decoded from base64 when the query says `base64decode=true`. The file is
//! streamed to the scratch area, never held in memory, and checked against
//! the policy's store rules.

use std::path::PathBuf;

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;

use crate::emulator::auth::check_store_rules;
use crate::emulator::base64decode::{decode_stream, requested};
use crate::emulator::body::{WriteError, Written, write_stream};
use crate::emulator::error::ApiError;
use crate::emulator::file_api::QueryMap;
use crate::emulator::store::Store;
use crate::filestack::policy::Policy;

/// Largest file the emulator stores in one request.
pub const MAX_FILE: u64 = 5 * 1024 * 1024 * 1024;

/// A file received into the scratch area.
#[derive(Debug)]
pub struct Incoming {
    /// Where the bytes are (remove it if they are not kept).
    pub tmp: PathBuf,
    pub written: Written,
    /// The file name of the form part, if any.
    pub filename: Option<String>,
    /// The content type of the form part or raw body, if any.
    pub content_type: Option<String>,
}

/// Where a store or overwrite writes, for the policy's store rules.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    /// The verified policy (`None` when security is off).
    pub policy: Option<&'a Policy>,
    pub path: Option<&'a str>,
    pub container: Option<&'a str>,
}

/// Receives the file of a store or overwrite request (decoded when `query`
/// has `base64decode=true`) and holds it to the policy's store rules for
/// `to`, as an upload is held ([`check_store_rules`], same 403s): path and
/// container before the body is read, `maxSize`/`minSize` against the bytes
/// to be stored once it is. A refused file is removed.
pub async fn receive_checked(
    store: &Store,
    req: Request,
    query: &QueryMap,
    to: Destination<'_>,
) -> Result<Incoming, ApiError> {
    let base64 = requested(query)?;
    check_store_rules(to.policy, None, to.path, to.container)?;
    let incoming = receive(store, req, base64).await?;
    let size = Some(incoming.written.size);
    if let Err(refused) = check_store_rules(to.policy, size, to.path, to.container) {
        let _ = tokio::fs::remove_file(&incoming.tmp).await;
        return Err(refused);
    }
    Ok(incoming)
}

/// Receives the file of a store or overwrite request, decoding it from
/// base64 when `base64` is set.
async fn receive(store: &Store, req: Request, base64: bool) -> Result<Incoming, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned());
    let lower = content_type.as_deref().unwrap_or("").to_ascii_lowercase();
    if lower.starts_with("application/x-www-form-urlencoded") {
        return Err(ApiError::bad_request(
            "storing from a URL is not supported by the emulator",
        ));
    }
    let tmp = store.tmp_path();
    if !lower.starts_with("multipart/form-data") {
        let written = write(req.into_body().into_data_stream(), &tmp, base64).await?;
        return Ok(Incoming {
            tmp,
            written,
            filename: None,
            content_type,
        });
    }
    let bad = |_| ApiError::bad_request("invalid params: unreadable form data");
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|_| ApiError::bad_request("invalid params: unreadable form data"))?;
    while let Some(field) = form.next_field().await.map_err(bad)? {
        if field.name() != Some("fileUpload") {
            continue;
        }
        let filename = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(str::to_owned);
        let written = write(field, &tmp, base64).await?;
        return Ok(Incoming {
            tmp,
            written,
            filename,
            content_type,
        });
    }
    Err(ApiError::bad_request(
        "invalid params: fileUpload is missing",
    ))
}

/// Streams `body` (decoded when `base64`) to `tmp`.
async fn write<S, E>(body: S, tmp: &std::path::Path, base64: bool) -> Result<Written, ApiError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let written = if base64 {
        write_stream(decode_stream(body), tmp, MAX_FILE).await
    } else {
        write_stream(body, tmp, MAX_FILE).await
    };
    written.map_err(write_error)
}

fn write_error(error: WriteError) -> ApiError {
    match error {
        WriteError::TooLarge(max) => {
            ApiError::bad_request(format!("invalid params: file is larger than {max} bytes"))
        }
        WriteError::Body(why) => ApiError::bad_request(why),
        WriteError::Io(e) => ApiError::internal(e),
    }
}
