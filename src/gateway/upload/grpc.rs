//! The gRPC face of an upload: the first message's spec, checked into a
//! [`CheckedSpec`] (or the id of a resumable upload and the offset it
//! continues from), and the bytes of every message as a [`ByteStream`].
//! What concerns messages is checked here, as they arrive: the spec only in
//! the first one, `write_offset`, the size of `data`, the idle timeout.
//! What concerns the file (its size, its checksum) is the operation's.

use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use tonic::Streaming;

use crate::gateway::domain::{ContentType, Filename, RequestId, Sha256Hex, UploadId};
use crate::gateway::error::GatewayError;
use crate::gateway::metrics::GatewayMetrics;
use crate::gateway::upload::{ByteStream, CheckedSpec};
use crate::pb::v1::{UploadRequest, UploadSpec, upload_request};

/// Largest `data` field of one UploadRequest (documented in the proto).
pub const MAX_CHUNK_BYTES: usize = 3 * 1024 * 1024;

/// What the first message of an Upload stream opened.
pub enum OpenedUpload {
    /// A new upload: the whole file follows.
    New {
        spec: CheckedSpec,
        bytes: ByteStream,
    },
    /// A resumable upload, continued from `offset`.
    Resume {
        upload_id: UploadId,
        offset: u64,
        bytes: ByteStream,
    },
}

impl OpenedUpload {
    /// The same upload, its bytes counted in `metrics` as they arrive.
    pub fn counted(self, metrics: &GatewayMetrics) -> OpenedUpload {
        let count = |bytes: ByteStream| -> ByteStream {
            let metrics = metrics.clone();
            Box::pin(bytes.inspect_ok(move |chunk| metrics.upload_bytes(chunk.len())))
        };
        match self {
            OpenedUpload::New { spec, bytes } => OpenedUpload::New {
                spec,
                bytes: count(bytes),
            },
            OpenedUpload::Resume {
                upload_id,
                offset,
                bytes,
            } => OpenedUpload::Resume {
                upload_id,
                offset,
                bytes: count(bytes),
            },
        }
    }
}

/// Reads the first message, which must carry a spec or an upload id, and
/// returns what it opened with the bytes of the whole stream (the first
/// message's included).
pub async fn open_upload(
    mut stream: Streaming<UploadRequest>,
    idle: Duration,
    cap: u64,
) -> Result<OpenedUpload, GatewayError> {
    let first = next_message(&mut stream, idle).await?.ok_or_else(|| {
        GatewayError::invalid_because("spec", "SPEC_REQUIRED", "the upload stream was empty")
    })?;
    let mut messages = Messages {
        stream,
        first: None,
        received: 0,
        idle,
    };
    match &first.first_message {
        Some(upload_request::FirstMessage::Spec(spec)) => {
            let spec = checked_spec(spec, cap)?;
            messages.first = Some(first);
            Ok(OpenedUpload::New {
                spec,
                bytes: Box::pin(messages.into_stream()),
            })
        }
        Some(upload_request::FirstMessage::UploadId(id)) => {
            let upload_id = UploadId::parse(id)?;
            let offset = u64::try_from(first.write_offset)
                .map_err(|_| GatewayError::invalid("write_offset", "must not be negative"))?;
            messages.received = offset;
            messages.first = Some(first);
            Ok(OpenedUpload::Resume {
                upload_id,
                offset,
                bytes: Box::pin(messages.into_stream()),
            })
        }
        None => Err(GatewayError::invalid_because(
            "spec",
            "SPEC_REQUIRED",
            "the first message must carry the spec (or the upload_id of a resumable upload)",
        )),
    }
}

/// The spec of an upload, checked field by field.
pub fn checked_spec(spec: &UploadSpec, cap: u64) -> Result<CheckedSpec, GatewayError> {
    let filename = Filename::parse(&spec.filename)?;
    let content_type = ContentType::parse_or_guess(&spec.content_type, &filename)?;
    let size = match spec.size_bytes {
        None => None,
        Some(size) if size < 1 => {
            return Err(GatewayError::invalid(
                "spec.size_bytes",
                "must be at least 1: empty files are not stored",
            ));
        }
        Some(size) if size as u64 > cap => {
            return Err(GatewayError::FileTooLarge { limit: cap });
        }
        Some(size) => Some(size as u64),
    };
    let sha256 = match spec.sha256.as_str() {
        "" => None,
        hex => Some(Sha256Hex::parse(hex)?),
    };
    let request_id = RequestId::parse(&spec.request_id, "spec.request_id")?;
    Ok(CheckedSpec {
        filename,
        content_type,
        size,
        sha256,
        request_id,
    })
}

async fn next_message(
    stream: &mut Streaming<UploadRequest>,
    idle: Duration,
) -> Result<Option<UploadRequest>, GatewayError> {
    match tokio::time::timeout(idle, stream.message()).await {
        Err(_) => Err(GatewayError::IdleTimeout(idle)),
        Ok(Ok(message)) => Ok(message),
        Ok(Err(status)) => Err(GatewayError::invalid_because(
            "stream",
            "STREAM_FAILED",
            format!("the upload stream failed: {}", status.message()),
        )),
    }
}

/// The messages after the spec, read one at a time when the next bytes are
/// wanted (that is what gives HTTP/2 flow control its backpressure).
struct Messages {
    stream: Streaming<UploadRequest>,
    /// The first message, whose bytes come first.
    first: Option<UploadRequest>,
    /// Bytes received so far, for `write_offset`.
    received: u64,
    idle: Duration,
}

impl Messages {
    /// The next message's bytes; `None` at the end of the stream.
    async fn next_data(&mut self) -> Result<Option<Bytes>, GatewayError> {
        let message = match self.first.take() {
            Some(first) => first,
            None => match next_message(&mut self.stream, self.idle).await? {
                Some(message) if message.first_message.is_some() => {
                    return Err(GatewayError::invalid_because(
                        "spec",
                        "SPEC_REPEATED",
                        "only the first message may carry the spec or the upload id",
                    ));
                }
                Some(message) => message,
                None => return Ok(None),
            },
        };
        let offset = message.write_offset;
        if offset != 0 && offset as u64 != self.received {
            return Err(GatewayError::OffsetMismatch {
                given: offset,
                received: self.received,
            });
        }
        if message.data.len() > MAX_CHUNK_BYTES {
            return Err(GatewayError::invalid(
                "data",
                format!("at most {MAX_CHUNK_BYTES} bytes per message"),
            ));
        }
        self.received += message.data.len() as u64;
        Ok(Some(message.data))
    }

    /// The bytes as a stream that ends after its first error.
    fn into_stream(self) -> impl futures_util::Stream<Item = Result<Bytes, GatewayError>> + Send {
        futures_util::stream::unfold(Some(self), |state| async move {
            let mut state = state?;
            match state.next_data().await {
                Ok(Some(data)) => Some((Ok(data), Some(state))),
                Ok(None) => None,
                Err(error) => Some((Err(error), None)),
            }
        })
    }
}
