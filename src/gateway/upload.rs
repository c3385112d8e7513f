//! The upload operation: a checked spec and a stream of bytes -> one file
//! at Filestack -> one row in `documents`. The gRPC adapter ([`grpc`]) turns
//! an Upload stream into those two; nothing here knows about messages.
//!
//! A file that fits in one part (its declared size, or the stream ends
//! before a part is full) is stored with one Filestack request
//! (`/api/store`); a larger one with a multipart upload, read one part at a
//! time only when the Filestack client asks for more bytes (that is what
//! gives HTTP/2 flow control its backpressure). Both store under the
//! upload's own path, record the same document, and check size and
//! checksum before the storing request, so a bad file stores nothing; a
//! failure after it deletes the stored file (see [`crate::gateway::journal`]
//! for an outcome that is unknown).

mod checked;
pub mod grpc;
pub mod resumable;

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::Stream;

use crate::db::{DocumentRow, InsertOutcome};
use crate::filestack::{FilestackError, PendingComplete, Sha256Check, StoredFile, UploadSpec};
use crate::gateway::admission::Admitted;
use crate::gateway::domain::{ContentType, DocumentId, Filename, OwnerId, RequestId, Sha256Hex};
use crate::gateway::error::GatewayError;
use crate::gateway::journal::{Protocol, UploadJournal};
use crate::gateway::{Gateway, now_micros};
use checked::{CheckedBytes, StreamOutcome, size_required};

pub use grpc::MAX_CHUNK_BYTES;

/// The bytes of a file, in order, as the caller sends them. The stream ends
/// after its first error.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, GatewayError>> + Send>>;

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
    /// `document`, found under this spec's request id, if it is this
    /// upload's: a retry gets it; REQUEST_ID_REUSED if it is another
    /// file's (see [`Declared::retried`]). The bytes of a retry are not
    /// compared when the spec declares neither size nor checksum: the key
    /// says it is the same upload.
    pub fn retried(&self, document: DocumentRow) -> Result<DocumentRow, GatewayError> {
        Declared {
            filename: self.filename.as_str(),
            content_type: self.content_type.as_str(),
            size: self.size,
            sha256: self.sha256.as_ref().map(Sha256Hex::as_str),
        }
        .retried(document)
    }
}

/// What an upload says of its file: its spec, or, once stored, the file.
struct Declared<'a> {
    filename: &'a str,
    content_type: &'a str,
    size: Option<u64>,
    sha256: Option<&'a str>,
}

impl Declared<'_> {
    /// `document` if it is this file: same name and type, and the size and
    /// checksum when known; REQUEST_ID_REUSED naming what differs, or if
    /// the document was not uploaded (a registered handle).
    fn retried(&self, document: DocumentRow) -> Result<DocumentRow, GatewayError> {
        let mut differs = Vec::new();
        if document.origin != "upload" {
            differs.push("origin: a registered handle");
        }
        if document.filename != self.filename {
            differs.push("spec.filename");
        }
        if document.content_type != self.content_type {
            differs.push("spec.content_type");
        }
        if self
            .size
            .is_some_and(|size| u64::try_from(document.size_bytes) != Ok(size))
        {
            differs.push("spec.size_bytes");
        }
        if self
            .sha256
            .is_some_and(|sha256| document.sha256.as_deref() != Some(sha256))
        {
            differs.push("spec.sha256");
        }
        match differs.is_empty() {
            true => Ok(document),
            false => Err(GatewayError::RequestIdReused(differs.join(", "))),
        }
    }
}

impl Gateway {
    /// Stores one file at Filestack and records it. A retry whose
    /// `request_id` is known returns the document already stored (see
    /// [`CheckedSpec::retried`]).
    pub async fn upload(
        &self,
        owner: &OwnerId,
        spec: CheckedSpec,
        bytes: ByteStream,
    ) -> Result<DocumentRow, GatewayError> {
        if let Some(request_id) = &spec.request_id
            && let Some(existing) = self
                .db
                .document_by_request(owner.as_str(), request_id.as_str())
                .await?
        {
            tracing::info!(document_id = %existing.id, "upload retried with a known request id");
            return spec.retried(existing);
        }
        let admitted = self.admission.admit(spec.size).await?;
        let bytes = CheckedBytes::new(bytes, spec.size, self.limits.max_upload_bytes);
        let part = self.filestack.config().part_size as u64;
        if self.limits.single_request_uploads && spec.size.is_none_or(|size| size <= part) {
            self.upload_in_one_request(owner, spec, bytes, admitted, part)
                .await
        } else {
            self.upload_in_parts(owner, spec, bytes, admitted).await
        }
    }

    /// What the Filestack client is told about the file.
    fn filestack_spec(&self, spec: &CheckedSpec, path: &str) -> UploadSpec {
        UploadSpec {
            filename: spec.filename.as_str().to_owned(),
            mimetype: spec.content_type.as_str().to_owned(),
            size: spec.size,
            path: Some(path.to_owned()),
            container: None,
            sha256: match &spec.sha256 {
                Some(expected) => Sha256Check::Expect(expected.to_bytes()),
                None => Sha256Check::Compute,
            },
        }
    }

    /// A file of at most one part: read whole, checked, then stored with
    /// one `/api/store` request. A stream longer than one part without a
    /// declared size is SIZE_REQUIRED, as in a multipart upload.
    async fn upload_in_one_request(
        &self,
        owner: &OwnerId,
        spec: CheckedSpec,
        bytes: CheckedBytes,
        admitted: Admitted,
        part: u64,
    ) -> Result<DocumentRow, GatewayError> {
        let body = bytes.read_whole(part).await?;
        let received = body.len() as u64;
        let mut journal =
            UploadJournal::open(self, owner, &spec.filename, admitted, Protocol::Store).await?;
        let upload_spec = self.filestack_spec(&spec, journal.storage_path());
        journal.sending();
        let stored = match self.filestack.store(body, &upload_spec).await {
            Ok(stored) => stored,
            Err(error @ FilestackError::OutcomeUnknown(_)) => {
                journal.abandon("the store's outcome is unknown").await;
                return Err(upload_error(error));
            }
            Err(error) => {
                journal.nothing_stored();
                journal.abandon("Filestack refused the store").await;
                return Err(upload_error(error));
            }
        };
        journal.stored(&stored.handle);
        self.record_stored(owner, spec, stored, received, journal)
            .await
    }

    /// A file in parts: multipart start, the parts as the stream yields
    /// them, then `complete`.
    async fn upload_in_parts(
        &self,
        owner: &OwnerId,
        spec: CheckedSpec,
        bytes: CheckedBytes,
        admitted: Admitted,
    ) -> Result<DocumentRow, GatewayError> {
        let journal =
            UploadJournal::open(self, owner, &spec.filename, admitted, Protocol::Multipart).await?;
        let outcome = Arc::new(Mutex::new(StreamOutcome::default()));
        let upload_spec = self.filestack_spec(&spec, journal.storage_path());
        let result = self
            .filestack
            .upload_parts(bytes.into_stream(outcome.clone()), upload_spec)
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
            (Err(error), None) => {
                journal.abandon("Filestack refused the upload").await;
                return Err(upload_error(error));
            }
        };
        let (Some(received), Some(sha256)) = (received, parts.sha256) else {
            journal
                .abandon("the stream ended without its size or checksum")
                .await;
            return Err(GatewayError::internal(anyhow::anyhow!(
                "the upload finished without the stream's size or SHA-256"
            )));
        };
        self.complete_and_record(owner, spec, journal, &parts.pending, sha256, received)
            .await
    }

    /// The end of every multipart upload, plain or resumable: records the
    /// `complete` request in the journal, sends it, and records the stored
    /// file (whose bytes hashed to `sha256`) as a document. A failure
    /// settles the journal entry as its stage requires.
    async fn complete_and_record(
        &self,
        owner: &OwnerId,
        spec: CheckedSpec,
        mut journal: UploadJournal,
        pending: &PendingComplete,
        sha256: [u8; 32],
        received: u64,
    ) -> Result<DocumentRow, GatewayError> {
        if let Err(error) = journal.completing(pending).await {
            journal
                .abandon("the journal could not record the upload before complete")
                .await;
            return Err(error);
        }
        let stored = match self.filestack.complete(pending).await {
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
        let stored = StoredFile {
            sha256: Some(sha256),
            ..stored
        };
        self.record_stored(owner, spec, stored, received, journal)
            .await
    }

    /// A stored file becomes a document, once its size is the bytes
    /// received and its SHA-256 is known.
    async fn record_stored(
        &self,
        owner: &OwnerId,
        spec: CheckedSpec,
        stored: StoredFile,
        received: u64,
        journal: UploadJournal,
    ) -> Result<DocumentRow, GatewayError> {
        if received != stored.size {
            journal
                .abandon("the stored size differs from the bytes received")
                .await;
            return Err(GatewayError::internal(anyhow::anyhow!(
                "Filestack stored {} bytes, not the {received} bytes received",
                stored.size
            )));
        }
        let Some(digest) = stored.sha256 else {
            journal.abandon("the file's SHA-256 is unknown").await;
            return Err(GatewayError::internal(anyhow::anyhow!(
                "the upload finished without the file's SHA-256"
            )));
        };
        let digest = Sha256Hex::from_digest(&digest);
        tracing::debug!(handle = %stored.handle, received, "upload stored");
        self.record_upload(owner, spec, stored, digest, journal)
            .await
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
            Ok(InsertOutcome::DuplicateRequest(existing)) if existing.handle == row.handle => {
                // Two streams of one resumable upload completed it: one file.
                journal.recorded();
                Ok(*existing)
            }
            Ok(InsertOutcome::DuplicateRequest(existing)) => {
                // A concurrent upload with the same request id won: this
                // file goes, and the winner's document is the answer if it
                // holds the same bytes.
                journal.abandon("an upload with its request id won").await;
                Declared {
                    filename: &row.filename,
                    content_type: &row.content_type,
                    size: u64::try_from(row.size_bytes).ok(),
                    sha256: row.sha256.as_deref(),
                }
                .retried(*existing)
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
        FilestackError::SizeRequired => size_required(),
        FilestackError::ChecksumMismatch => GatewayError::ChecksumMismatch,
        other => other.into(),
    }
}
