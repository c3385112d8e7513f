//! The gateway's errors, and their one mapping to `tonic::Status`.
//!
//! The gRPC code is the contract; every status also carries a
//! `google.rpc.ErrorInfo` with domain `filegate` and a stable `reason`,
//! a `BadRequest` naming the field for invalid arguments, and `RetryInfo`
//! when retrying later can succeed. Internal detail (causes, upstream bodies)
//! goes to the log, never to the caller.

use std::collections::HashMap;
use std::time::Duration;

use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

use crate::filestack::FilestackError;

/// The ErrorInfo domain of every filegate error.
pub const ERROR_DOMAIN: &str = "filegate";

/// What went wrong, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("invalid {field}: {description}")]
    InvalidArgument {
        field: &'static str,
        reason: &'static str,
        description: String,
    },
    #[error("the file is larger than the limit of {limit} bytes")]
    FileTooLarge { limit: u64 },
    #[error("received {received} bytes but the spec declared {declared}")]
    SizeMismatch { declared: u64, received: u64 },
    #[error("write_offset {given} does not match the {received} bytes received")]
    OffsetMismatch { given: i64, received: u64 },
    #[error("the file's SHA-256 does not match spec.sha256")]
    ChecksumMismatch,
    #[error("write_offset {given} is not the {persisted} bytes persisted: resume from there")]
    OffsetNotPersisted { given: i64, persisted: u64 },
    #[error("another stream took over this upload")]
    UploadTakenOver,
    #[error("the upload is {state}")]
    UploadState {
        state: &'static str,
        reason: &'static str,
    },
    #[error("read_offset {offset} is past the end of the file ({size} bytes)")]
    ReadOffsetOutOfRange { offset: i64, size: u64 },
    #[error("the file's SHA-256 is not the document's: the bytes are corrupted")]
    DataCorrupted,
    #[error("the file at Filestack does not match the document: {0}")]
    LengthMismatch(String),
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("the document belongs to another owner")]
    PermissionDenied { reason: &'static str },
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("the handle is already registered")]
    AlreadyExists,
    /// A `request_id` the caller already used for another request: the
    /// document stored under it differs in these fields.
    #[error("request_id was already used for another document (it differs in {0})")]
    RequestIdReused(String),
    #[error("the document is not an image")]
    NotAnImage,
    #[error("{what}; retry later")]
    ResourceExhausted {
        what: &'static str,
        reason: &'static str,
        retry_after: Duration,
    },
    #[error("{what} is unavailable; retry later")]
    Unavailable {
        what: &'static str,
        reason: &'static str,
        #[source]
        source: Option<anyhow::Error>,
    },
    #[error("no upload message for {0:?}")]
    IdleTimeout(Duration),
    #[error("the call did not finish within {0:?}")]
    CallTimeout(Duration),
    #[error("the caller's deadline ({0:?}) passed")]
    DeadlineExceeded(Duration),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl GatewayError {
    /// An invalid field, reason INVALID_ARGUMENT.
    pub fn invalid(field: &'static str, description: impl Into<String>) -> Self {
        GatewayError::InvalidArgument {
            field,
            reason: "INVALID_ARGUMENT",
            description: description.into(),
        }
    }

    /// An invalid field with a more specific stable reason.
    pub fn invalid_because(
        field: &'static str,
        reason: &'static str,
        description: impl Into<String>,
    ) -> Self {
        GatewayError::InvalidArgument {
            field,
            reason,
            description: description.into(),
        }
    }

    pub fn database(source: impl Into<anyhow::Error>) -> Self {
        GatewayError::Unavailable {
            what: "the database",
            reason: "DATABASE_UNAVAILABLE",
            source: Some(source.into()),
        }
    }

    /// The gateway is shutting down: new calls are refused and open streams
    /// end, so that callers go to another replica.
    pub fn draining() -> Self {
        GatewayError::Unavailable {
            what: "the gateway",
            reason: "DRAINING",
            source: None,
        }
    }

    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        GatewayError::Internal(source.into())
    }

    /// The gRPC code and the stable reason of this error.
    pub fn code_and_reason(&self) -> (Code, &'static str) {
        match self {
            GatewayError::InvalidArgument { reason, .. } => (Code::InvalidArgument, reason),
            GatewayError::FileTooLarge { .. } => (Code::InvalidArgument, "FILE_TOO_LARGE"),
            GatewayError::SizeMismatch { .. } => (Code::OutOfRange, "SIZE_MISMATCH"),
            GatewayError::OffsetMismatch { .. } => (Code::OutOfRange, "OFFSET_MISMATCH"),
            GatewayError::ChecksumMismatch => (Code::InvalidArgument, "CHECKSUM_MISMATCH"),
            GatewayError::OffsetNotPersisted { .. } => (Code::OutOfRange, "OFFSET_NOT_PERSISTED"),
            GatewayError::UploadTakenOver => (Code::Aborted, "UPLOAD_TAKEN_OVER"),
            GatewayError::UploadState { reason, .. } => (Code::FailedPrecondition, reason),
            GatewayError::ReadOffsetOutOfRange { .. } => {
                (Code::OutOfRange, "READ_OFFSET_OUT_OF_RANGE")
            }
            GatewayError::DataCorrupted => (Code::DataLoss, "DATA_CORRUPTED"),
            GatewayError::LengthMismatch(_) => (Code::DataLoss, "LENGTH_MISMATCH"),
            GatewayError::Unauthenticated(_) => (Code::Unauthenticated, "UNAUTHENTICATED"),
            GatewayError::PermissionDenied { reason } => (Code::PermissionDenied, reason),
            GatewayError::NotFound { .. } => (Code::NotFound, "NOT_FOUND"),
            GatewayError::AlreadyExists => (Code::AlreadyExists, "HANDLE_ALREADY_REGISTERED"),
            GatewayError::RequestIdReused(_) => (Code::AlreadyExists, "REQUEST_ID_REUSED"),
            GatewayError::NotAnImage => (Code::FailedPrecondition, "NOT_AN_IMAGE"),
            GatewayError::ResourceExhausted { reason, .. } => (Code::ResourceExhausted, reason),
            GatewayError::Unavailable { reason, .. } => (Code::Unavailable, reason),
            GatewayError::IdleTimeout(_) => (Code::DeadlineExceeded, "UPLOAD_IDLE_TIMEOUT"),
            GatewayError::CallTimeout(_) => (Code::DeadlineExceeded, "CALL_TIMEOUT"),
            GatewayError::DeadlineExceeded(_) => (Code::DeadlineExceeded, "DEADLINE_EXCEEDED"),
            GatewayError::Internal(_) => (Code::Internal, "INTERNAL"),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            GatewayError::ResourceExhausted { retry_after, .. } => Some(*retry_after),
            GatewayError::Unavailable { .. } => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// The ErrorInfo metadata: what a caller needs to act (the persisted
    /// size to resume from).
    fn metadata(&self) -> HashMap<String, String> {
        match self {
            GatewayError::OffsetNotPersisted { persisted, .. } => {
                HashMap::from([("persisted_bytes".to_owned(), persisted.to_string())])
            }
            _ => HashMap::new(),
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            GatewayError::InvalidArgument { field, .. } => Some(field),
            GatewayError::FileTooLarge { .. } => Some("spec.size_bytes"),
            GatewayError::ChecksumMismatch => Some("spec.sha256"),
            GatewayError::SizeMismatch { .. } => Some("spec.size_bytes"),
            GatewayError::OffsetMismatch { .. } => Some("write_offset"),
            GatewayError::OffsetNotPersisted { .. } => Some("write_offset"),
            GatewayError::ReadOffsetOutOfRange { .. } => Some("read_offset"),
            _ => None,
        }
    }
}

impl From<GatewayError> for tonic::Status {
    fn from(error: GatewayError) -> tonic::Status {
        let (code, reason) = error.code_and_reason();
        match &error {
            GatewayError::Internal(_)
            | GatewayError::DataCorrupted
            | GatewayError::LengthMismatch(_)
            | GatewayError::Unavailable {
                source: Some(_), ..
            } => {
                tracing::error!(error = ?anyhow_chain(&error), reason, "request failed");
            }
            _ => tracing::debug!(%error, reason, "request refused"),
        }
        let mut details = ErrorDetails::new();
        details.set_error_info(reason, ERROR_DOMAIN, error.metadata());
        if let Some(field) = error.field() {
            details.add_bad_request_violation(field, error.to_string());
        }
        if let Some(delay) = error.retry_after() {
            details.set_retry_info(Some(delay));
        }
        tonic::Status::with_error_details(code, error.to_string(), details)
    }
}

/// The error with its whole cause chain, for logs.
fn anyhow_chain(error: &GatewayError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An outage is UNAVAILABLE (retry later); any other database error is a
/// bug, INTERNAL: a retry would fail the same way.
impl From<sqlx::Error> for GatewayError {
    fn from(error: sqlx::Error) -> Self {
        if crate::db::is_outage(&error) {
            GatewayError::database(error)
        } else {
            GatewayError::internal(error)
        }
    }
}

impl From<FilestackError> for GatewayError {
    fn from(error: FilestackError) -> Self {
        if error.is_retryable() {
            return GatewayError::Unavailable {
                what: "Filestack",
                reason: "FILESTACK_UNAVAILABLE",
                source: Some(error.into()),
            };
        }
        match error {
            FilestackError::NotFound => GatewayError::NotFound {
                what: "file at Filestack",
            },
            FilestackError::EmptyFile => GatewayError::invalid("data", "the file is empty"),
            FilestackError::RangeNotSatisfiable { size } => {
                GatewayError::LengthMismatch(match size {
                    Some(size) => {
                        format!("Filestack cannot serve the range: the file has {size} bytes")
                    }
                    None => "Filestack cannot serve the range: the file is shorter".to_owned(),
                })
            }
            FilestackError::RangeMismatch(detail) => GatewayError::LengthMismatch(detail),
            other => GatewayError::Internal(other.into()),
        }
    }
}

/// Completes a status that tonic answered by itself, before or around a
/// handler (a request that does not decode, an unknown method, an unknown
/// compression): such statuses carry no details, while every status of
/// filegate's own has them (see [`GatewayError`]). They get the ErrorInfo
/// every error has, with the code's name as reason; a request that does not
/// decode (tonic says INTERNAL: invalid protobuf, invalid UTF-8, an empty or
/// cut message, a compressed flag without `grpc-encoding`) becomes
/// INVALID_ARGUMENT `MALFORMED_REQUEST`, as the contract has it for
/// malformed requests, since INTERNAL means a bug of the gateway here.
///
/// `headers` are a trailers-only answer's headers or a stream's trailers;
/// returns the status code they carry afterwards, if any.
pub fn complete_foreign_status(headers: &mut http::HeaderMap) -> Option<Code> {
    // Most answers are OK or filegate's own: read the code alone for them.
    let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let code = Code::from_i32(code);
    if code == Code::Ok || headers.contains_key("grpc-status-details-bin") {
        return Some(code);
    }
    let status = tonic::Status::from_header_map(headers)?;
    let (code, reason) = match status.code() {
        Code::Internal => (Code::InvalidArgument, "MALFORMED_REQUEST"),
        other => (other, code_reason(other)),
    };
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
    let completed = tonic::Status::with_error_details(code, status.message(), details);
    match completed.add_header(headers) {
        Ok(()) => Some(code),
        Err(_) => Some(status.code()),
    }
}

/// A code's name as an ErrorInfo reason.
fn code_reason(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The answer to a request that is no gRPC call (its `content-type` is not
/// `application/grpc...`; gRPC-Web is translated before this is asked):
/// HTTP 415, as the gRPC protocol says, naming what was expected.
pub fn not_grpc(headers: &http::HeaderMap) -> Option<http::Response<tonic::body::Body>> {
    let grpc = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"));
    if grpc {
        return None;
    }
    let mut response = http::Response::new(tonic::body::Body::new(
        "a gRPC request needs content-type application/grpc\n".to_owned(),
    ));
    *response.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Some(response)
}
