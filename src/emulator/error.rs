//! Error responses: Filestack-style JSON (`{"error": ..., "timestamp": ...}`)
//! for the API, upload and CDN routes, S3-style XML for the presigned PUT.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answered to a client. The message must never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// The S3 error code, when the error is answered as S3 XML.
    s3_code: Option<&'static str>,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            s3_code: None,
        }
    }

    /// 400: a missing or invalid parameter.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 403: a policy problem.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404: an unknown handle or upload.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 500: a local failure (disk); the cause goes to the log, not the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "emulator internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }

    /// The same error, answered as an S3 XML error with `code`.
    pub fn s3(mut self, code: &'static str) -> Self {
        self.s3_code = Some(code);
        self
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message sent to the client.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Current unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Current unix time in milliseconds.
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self.s3_code {
            Some(code) => {
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message></Error>",
                    xml_escape(&self.message)
                );
                (
                    self.status,
                    [(header::CONTENT_TYPE, "application/xml")],
                    body,
                )
                    .into_response()
            }
            None => {
                let body = serde_json::json!({"error": self.message, "timestamp": unix_now()});
                (self.status, axum::Json(body)).into_response()
            }
        }
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
