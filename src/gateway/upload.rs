//! The upload path: client stream -> checked bytes -> Filestack multipart
//! upload -> one row in `documents`.
//!
//! The gRPC stream is read one message at a time, only when the Filestack
//! client asks for more bytes; that is what gives HTTP/2 flow control its
//! backpressure. Bytes are counted as they pass; the Filestack client hashes
//! them (SHA-256 of the file, in the same pass as the MD5 of each part). A
//! size or checksum problem fails the upload before Filestack's `complete`,
//! so no file is stored; a failure after `complete` deletes the stored file.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tonic::Streaming;

use crate::db::{DocumentRow, InsertOutcome};
use crate::filestack::{FilestackError, Sha256Check, StoredFile, UploadSpec};
use crate::gateway::app::UPLOAD_OVERHEAD_BYTES;
use crate::gateway::domain::{ContentType, DocumentId, Filename, OwnerId, RequestId, Sha256Hex};
use crate::gateway::error::GatewayError;
use crate::gateway::journal::UploadJournal;
use crate::gateway::{Gateway, now_micros};
use crate::pb::v1::{UploadRequest, upload_request};

/// Largest `data` field of one UploadRequest (documented in the proto).
pub const MAX_CHUNK_BYTES: usize = 3 * 1024 * 1024;

/// A checked upload spec.
#[derive(Debug, Clone)]
pub struct CheckedSpec {
    pub filename: Filename,
    pub content_type: ContentType,
    pub size: Option<u64>,
    pub sha256: Option<Sha256Hex>,
    pub request_id: Option<RequestId>,
}

impl CheckedSpec {
    pub fn parse(spec: &crate::pb::v1::UploadSpec, cap: u64) -> Result<CheckedSpec, GatewayError> {
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
}

/// Reads the first message, which must carry the spec.
pub async fn read_spec(
    stream: &mut Streaming<UploadRequest>,
    idle: Duration,
    cap: u64,
) -> Result<(CheckedSpec, UploadRequest), GatewayError> {
    let first = next_message(stream, idle).await?.ok_or_else(|| {
        GatewayError::invalid_because("spec", "SPEC_REQUIRED", "the upload stream was empty")
    })?;
    let Some(upload_request::FirstMessage::Spec(spec)) = &first.first_message else {
        return Err(GatewayError::invalid_because(
            "spec",
            "SPEC_REQUIRED",
            "the first message must carry the spec",
        ));
    };
    let spec = CheckedSpec::parse(spec, cap)?;
    Ok((spec, first))
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

/// The caller's bytes as a stream for the Filestack client, checked as they
/// pass. The first error is kept in `failure` for the caller of `upload`.
struct CheckedBytes {
    stream: Streaming<UploadRequest>,
    pending: Option<UploadRequest>,
    received: u64,
    spec: CheckedSpec,
    cap: u64,
    idle: Duration,
    outcome: Arc<Mutex<StreamOutcome>>,
}

/// What the checked stream learned, read after the Filestack upload returns.
#[derive(Debug, Default)]
struct StreamOutcome {
    /// The first error of the caller's stream.
    failure: Option<GatewayError>,
    /// The bytes received, once the whole stream was read and checked.
    received: Option<u64>,
}

/// The error handed to the Filestack client when the caller's stream fails.
#[derive(Debug, thiserror::Error)]
#[error("the caller's upload stream was refused")]
struct StreamRefused;

impl CheckedBytes {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, GatewayError> {
        loop {
            let message = match self.pending.take() {
                Some(message) => message,
                None => match next_message(&mut self.stream, self.idle).await? {
                    Some(message) => {
                        if message.first_message.is_some() {
                            return Err(GatewayError::invalid_because(
                                "spec",
                                "SPEC_REPEATED",
                                "only the first message may carry the spec",
                            ));
                        }
                        message
                    }
                    None => return self.finish().map(|()| None),
                },
            };
            self.check_offset(message.write_offset)?;
            if message.data.len() > MAX_CHUNK_BYTES {
                return Err(GatewayError::invalid(
                    "data",
                    format!("at most {MAX_CHUNK_BYTES} bytes per message"),
                ));
            }
            if message.data.is_empty() {
                continue;
            }
            self.received += message.data.len() as u64;
            if self.received > self.cap {
                return Err(GatewayError::FileTooLarge { limit: self.cap });
            }
            if let Some(declared) = self.spec.size
                && self.received > declared
            {
                return Err(GatewayError::SizeMismatch {
                    declared,
                    received: self.received,
                });
            }
            return Ok(Some(message.data));
        }
    }

    fn check_offset(&self, offset: i64) -> Result<(), GatewayError> {
        if offset != 0 && offset as u64 != self.received {
            return Err(GatewayError::OffsetMismatch {
                given: offset,
                received: self.received,
            });
        }
        Ok(())
    }

    /// At the end of the stream: the size must hold (the Filestack client
    /// checks the SHA-256).
    fn finish(&mut self) -> Result<(), GatewayError> {
        if let Some(declared) = self.spec.size
            && declared != self.received
        {
            return Err(GatewayError::SizeMismatch {
                declared,
                received: self.received,
            });
        }
        if self.received == 0 {
            return Err(GatewayError::invalid("data", "the file is empty"));
        }
        if let Ok(mut outcome) = self.outcome.lock() {
            outcome.received = Some(self.received);
        }
        Ok(())
    }

    fn into_stream(self) -> impl Stream<Item = Result<Bytes, StreamRefused>> + Send {
        futures_util::stream::unfold(Some(self), |state| async move {
            let mut state = state?;
            match state.next_chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(state))),
                Ok(None) => None,
                Err(error) => {
                    if let Ok(mut outcome) = state.outcome.lock() {
                        outcome.failure.get_or_insert(error);
                    }
                    Some((Err(StreamRefused), None))
                }
            }
        })
    }
}

impl Gateway {
    /// Streams one file to Filestack and records it.
    pub async fn upload(
        &self,
        owner: &OwnerId,
        spec: CheckedSpec,
        first: UploadRequest,
        stream: Streaming<UploadRequest>,
    ) -> Result<DocumentRow, GatewayError> {
        if let Some(request_id) = &spec.request_id
            && let Some(existing) = self
                .db
                .document_by_request(owner.as_str(), request_id.as_str())
                .await?
        {
            tracing::info!(document_id = %existing.id, "upload retried with a known request id");
            return Ok(existing);
        }
        let admitted = self.admission.admit(self.buffer_bytes(spec.size)).await?;
        let mut journal = UploadJournal::open(self, owner, &spec.filename, admitted).await?;
        let outcome = Arc::new(Mutex::new(StreamOutcome::default()));
        let bytes = CheckedBytes {
            stream,
            pending: Some(UploadRequest {
                first_message: None,
                ..first
            }),
            received: 0,
            spec: spec.clone(),
            cap: self.limits.max_upload_bytes,
            idle: self.limits.upload_idle_timeout,
            outcome: outcome.clone(),
        };
        let upload_spec = UploadSpec {
            filename: spec.filename.as_str().to_owned(),
            mimetype: spec.content_type.as_str().to_owned(),
            size: spec.size,
            path: Some(journal.storage_path().to_owned()),
            container: None,
            sha256: match &spec.sha256 {
                Some(expected) => Sha256Check::Expect(expected.to_bytes()),
                None => Sha256Check::Compute,
            },
        };
        let result = self
            .filestack
            .upload_parts(bytes.into_stream(), upload_spec)
            .await;
        let (failure, received) = match outcome.lock() {
            Ok(mut outcome) => (outcome.failure.take(), outcome.received.take()),
            Err(_) => (None, None),
        };
        // Nothing is stored yet: a failure only leaves an entry to remove.
        let parts = match (result, failure) {
            (_, Some(failure)) => {
                journal.abandon("the caller's stream failed").await;
                return Err(failure);
            }
            (Ok(parts), None) => parts,
            (Err(FilestackError::ChecksumMismatch), None) => {
                journal.abandon("its SHA-256 is not spec.sha256").await;
                return Err(GatewayError::ChecksumMismatch);
            }
            (Err(error), None) => {
                journal.abandon("Filestack refused the upload").await;
                return Err(upload_error(error));
            }
        };
        let (Some(received), Some(digest)) = (received, parts.sha256) else {
            journal
                .abandon("the stream ended without its size or checksum")
                .await;
            return Err(GatewayError::internal(anyhow::anyhow!(
                "the upload finished without the stream's size or SHA-256"
            )));
        };
        if let Err(error) = journal.completing(&parts.pending).await {
            journal
                .abandon("the journal could not record the upload before complete")
                .await;
            return Err(error);
        }
        let stored = match self.filestack.complete(&parts.pending).await {
            Ok(stored) => stored,
            Err(error @ FilestackError::OutcomeUnknown(_)) => {
                journal.abandon("complete's outcome is unknown").await;
                return Err(upload_error(error));
            }
            Err(error) => {
                journal.nothing_stored();
                journal.abandon("Filestack refused complete").await;
                return Err(upload_error(error));
            }
        };
        journal.stored(&stored.handle);
        if received != stored.size {
            journal
                .abandon("the stored size differs from the bytes received")
                .await;
            return Err(GatewayError::internal(anyhow::anyhow!(
                "Filestack stored {} bytes, not the bytes received",
                stored.size
            )));
        }
        let digest = Sha256Hex::from_digest(&digest);
        tracing::debug!(handle = %stored.handle, received, "upload stored");
        self.record_upload(owner, spec, stored, digest, journal)
            .await
    }

    /// What an upload's buffers can hold at most: its parts (the declared
    /// size, or one part when undeclared, capped at the parts in flight plus
    /// the one being read), one gRPC message and the HTTP/2 stream window.
    fn buffer_bytes(&self, declared: Option<u64>) -> u64 {
        let config = self.filestack.config();
        let part = config.part_size as u64;
        let parts = declared
            .unwrap_or(part)
            .min(part * (config.parts_in_flight as u64 + 1));
        parts + UPLOAD_OVERHEAD_BYTES
    }

    async fn record_upload(
        &self,
        owner: &OwnerId,
        spec: CheckedSpec,
        stored: StoredFile,
        sha256: Sha256Hex,
        journal: UploadJournal,
    ) -> Result<DocumentRow, GatewayError> {
        let row = DocumentRow {
            id: DocumentId::generate().as_str().to_owned(),
            owner: owner.as_str().to_owned(),
            handle: stored.handle.clone(),
            url: stored.url.clone(),
            filename: spec.filename.as_str().to_owned(),
            content_type: spec.content_type.as_str().to_owned(),
            size_bytes: i64::try_from(stored.size).unwrap_or(i64::MAX),
            sha256: Some(sha256.as_str().to_owned()),
            request_id: spec.request_id.map(|r| r.as_str().to_owned()),
            origin: "upload".to_owned(),
            created_at: now_micros(),
        };
        match self.db.insert_document(&row, Some(journal.id())).await {
            Ok(InsertOutcome::Inserted) => {
                journal.recorded();
                Ok(row)
            }
            Ok(InsertOutcome::DuplicateRequest(existing)) => {
                journal
                    .abandon("a concurrent retry already stored it")
                    .await;
                Ok(*existing)
            }
            Ok(InsertOutcome::HandleTaken) => {
                journal.abandon("its handle is already recorded").await;
                Err(GatewayError::internal(anyhow::anyhow!(
                    "Filestack returned a known handle"
                )))
            }
            Err(error) => {
                journal.abandon("the database refused its row").await;
                Err(error.into())
            }
        }
    }
}

fn upload_error(error: FilestackError) -> GatewayError {
    match error {
        FilestackError::SizeRequired => GatewayError::invalid_because(
            "spec.size_bytes",
            "SIZE_REQUIRED",
            "size_bytes is required for files larger than one part",
        ),
        other => other.into(),
    }
}
