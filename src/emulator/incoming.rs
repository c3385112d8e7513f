//! Reading an uploaded file from a request: a `multipart/form-data` body with
//! the file in field `fileUpload`, or a raw body with its `Content-Type`.
//! The file is streamed to the scratch area, never held in memory.

use std::path::PathBuf;

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;

use crate::emulator::body::{WriteError, Written, write_stream};
use crate::emulator::error::ApiError;
use crate::emulator::store::Store;

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

/// Receives the file of a store or overwrite request.
pub async fn receive(store: &Store, req: Request) -> Result<Incoming, ApiError> {
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
        let written = write_stream(req.into_body().into_data_stream(), &tmp, MAX_FILE)
            .await
            .map_err(write_error)?;
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
        let written = write_stream(field, &tmp, MAX_FILE)
            .await
            .map_err(write_error)?;
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

fn write_error(error: WriteError) -> ApiError {
    match error {
        WriteError::TooLarge(max) => {
            ApiError::bad_request(format!("invalid params: file is larger than {max} bytes"))
        }
        WriteError::Body(why) => ApiError::bad_request(why),
        WriteError::Io(e) => ApiError::internal(e),
    }
}
