//! Multipart upload from an async byte stream, with bounded memory: at most
//! `parts_in_flight` parts uploading while one more is being read.

mod complete;
mod digests;
mod parts;
mod protocol;

use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::{Stream, StreamExt};
use tracing::Instrument;

use md5::Digest;

use crate::filestack::client::FilestackClient;
use crate::filestack::error::{BoxError, FilestackError};
use parts::{Part, PartReader};
use protocol::Session;

pub use complete::PendingComplete;
pub use digests::Digests;
pub(crate) use protocol::pick_policy;
pub use protocol::{MultipartSession, PartEtag};

/// Most parts one multipart upload may have (S3's limit, which Filestack
/// inherits).
pub const MAX_PARTS: u64 = 10_000;

/// How long the `pick` policy of an upload stays valid.
pub const UPLOAD_POLICY_TTL: Duration = Duration::from_secs(3600);

/// What is uploaded and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSpec {
    /// The file's name as Filestack records it.
    pub filename: String,
    /// Its MIME type.
    pub mimetype: String,
    /// Its size in bytes; required for files larger than one part.
    pub size: Option<u64>,
    /// Storage path (e.g. `user-uploads/alice/`).
    pub path: Option<String>,
    /// Storage container (bucket).
    pub container: Option<String>,
    /// Whether the client also hashes the whole file with SHA-256.
    pub sha256: Sha256Check,
}

/// What the client does with the SHA-256 of the file it uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sha256Check {
    /// Nothing: only the MD5 of each part is computed (the protocol needs it).
    #[default]
    Off,
    /// Compute it while the parts are cut; [`StoredFile::sha256`] has it.
    Compute,
    /// Compute it and compare: a different file fails with
    /// [`FilestackError::ChecksumMismatch`] before `complete`, so nothing is stored.
    Expect([u8; 32]),
}

impl Sha256Check {
    /// Whether the SHA-256 is computed at all.
    pub(crate) fn is_wanted(self) -> bool {
        self != Sha256Check::Off
    }

    /// The digest computed, once compared with the expected one.
    pub(crate) fn verify(
        self,
        actual: Option<[u8; 32]>,
    ) -> Result<Option<[u8; 32]>, FilestackError> {
        match (self, actual) {
            (Sha256Check::Expect(expected), Some(actual)) if expected != actual => {
                Err(FilestackError::ChecksumMismatch)
            }
            _ => Ok(actual),
        }
    }
}

impl UploadSpec {
    /// A spec with a name and a type, no size, default storage.
    pub fn new(filename: impl Into<String>, mimetype: impl Into<String>) -> Self {
        Self {
            filename: filename.into(),
            mimetype: mimetype.into(),
            size: None,
            path: None,
            container: None,
            sha256: Sha256Check::Off,
        }
    }
}

/// A file Filestack stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub handle: String,
    /// Its CDN URL (unsigned).
    pub url: String,
    pub size: u64,
    pub mimetype: String,
    pub filename: String,
    /// The SHA-256 of the bytes sent, when [`UploadSpec::sha256`] asked for it.
    pub sha256: Option<[u8; 32]>,
}

/// An upload whose parts Filestack all acknowledged: [`FilestackClient::complete`]
/// of its `pending` stores the file.
#[derive(Debug, Clone)]
pub struct PartsUploaded {
    pub pending: PendingComplete,
    /// The SHA-256 of the bytes sent, when [`UploadSpec::sha256`] asked for it
    /// (already compared with the expected one).
    pub sha256: Option<[u8; 32]>,
}

impl FilestackClient {
    /// Uploads `body` with the multipart protocol and returns the stored
    /// file: [`upload_parts`](Self::upload_parts), then
    /// [`complete`](Self::complete).
    pub async fn upload<S, E>(
        &self,
        body: S,
        spec: UploadSpec,
    ) -> Result<StoredFile, FilestackError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        let parts = self.upload_parts(body, spec).await?;
        let stored = self.complete(&parts.pending).await?;
        Ok(StoredFile {
            sha256: parts.sha256,
            ..stored
        })
    }

    /// Starts a multipart upload and uploads every part of `body`; nothing
    /// is stored until [`complete`](Self::complete).
    ///
    /// The stream is read one part at a time, only when fewer than
    /// `parts_in_flight` parts are uploading, so memory stays below
    /// `part_size × (parts_in_flight + 1)` plus one chunk; part buffers are
    /// allocated at their exact size and reused. Without a declared
    /// size, the stream must fit in one part ([`FilestackError::SizeRequired`]).
    /// An empty file, a stream error, a size or checksum mismatch fail here.
    pub async fn upload_parts<S, E>(
        &self,
        body: S,
        spec: UploadSpec,
    ) -> Result<PartsUploaded, FilestackError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        let span = tracing::info_span!(
            "filestack.upload",
            filename = %spec.filename,
            size = spec.size,
        );
        let result = self
            .parts_in_span(body, &spec)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(parts) => {
                tracing::debug!(parent: &span, size = parts.pending.size(), "all parts uploaded")
            }
            Err(error) => tracing::warn!(parent: &span, %error, "upload failed"),
        }
        result
    }

    async fn parts_in_span<S, E>(
        &self,
        body: S,
        spec: &UploadSpec,
    ) -> Result<PartsUploaded, FilestackError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        let body = pin!(body);
        let mut reader = PartReader::new(body, self.config.part_size, spec.size, spec.sha256);
        let (size, first) = match spec.size {
            Some(size) => (size, None),
            None => {
                let first = reader.next_part().await?.unwrap_or_default();
                if !reader.at_end().await? {
                    return Err(FilestackError::SizeRequired);
                }
                (first.bytes.len() as u64, Some(first))
            }
        };
        if size == 0 {
            return Err(FilestackError::EmptyFile);
        }
        let session = Session::start(self, spec, size).await?;
        let (parts, sha256) = self.send_parts(&session, reader, first).await?;
        Ok(PartsUploaded {
            pending: session.state().pending(parts),
            sha256,
        })
    }

    /// Starts a multipart upload of `size` bytes whose parts are sent later
    /// with [`upload_part`](Self::upload_part), here or by another process.
    pub async fn start_multipart(
        &self,
        spec: &UploadSpec,
        size: u64,
    ) -> Result<MultipartSession, FilestackError> {
        if size == 0 {
            return Err(FilestackError::EmptyFile);
        }
        Ok(Session::start(self, spec, size).await?.state().clone())
    }

    /// Uploads part `number` (1-based) of a session: its MD5, then the
    /// bytes. Every part but the last must be at least 5 MiB.
    pub async fn upload_part(
        &self,
        session: &MultipartSession,
        number: u32,
        bytes: Bytes,
    ) -> Result<PartEtag, FilestackError> {
        let md5 = md5::Md5::digest(&bytes).into();
        let session = Session::resume(self, session.clone());
        session.upload_part(number, &Part { bytes, md5 }).await
    }

    /// Reads parts while a slot is free and drives the uploads in flight;
    /// returns the ETags in part order and the stream's SHA-256 (when asked
    /// for). Uploaded parts give their buffers back to the reader.
    async fn send_parts<S, E>(
        &self,
        session: &Session<'_>,
        mut reader: PartReader<S>,
        mut first: Option<Part>,
    ) -> Result<(Vec<PartEtag>, Option<[u8; 32]>), FilestackError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<BoxError>,
    {
        let slots = self.config.parts_in_flight;
        let mut in_flight = FuturesUnordered::new();
        let mut done = Vec::new();
        let mut number = 0u32;
        let mut reading = true;
        loop {
            let step = if reading && in_flight.len() < slots {
                match first.take() {
                    Some(part) => Step::Read(Some(part)),
                    None if in_flight.is_empty() => Step::Read(reader.next_part().await?),
                    None => tokio::select! {
                        biased;
                        finished = in_flight.next() => Step::Uploaded(finished),
                        next = reader.next_part() => Step::Read(next?),
                    },
                }
            } else {
                Step::Uploaded(in_flight.next().await)
            };
            match step {
                Step::Read(Some(part)) => {
                    number += 1;
                    in_flight.push(upload_one(session, number, part));
                }
                Step::Read(None) => reading = false,
                Step::Uploaded(Some(finished)) => {
                    let (etag, part) = finished?;
                    done.push(etag);
                    reader.recycle(part);
                }
                Step::Uploaded(None) => break,
            }
        }
        tracing::debug!(
            parts = number,
            bytes = reader.received(),
            "all parts uploaded"
        );
        done.sort_by_key(|part: &PartEtag| part.part_number);
        Ok((done, reader.sha256()))
    }
}

/// What one turn of the part loop saw.
enum Step {
    /// The reader's next part (`None`: the stream is done).
    Read(Option<Part>),
    /// An upload in flight finished (`None`: none was in flight).
    Uploaded(Option<Result<(PartEtag, Bytes), FilestackError>>),
}

/// Uploads one part and hands its bytes back for reuse.
async fn upload_one(
    session: &Session<'_>,
    number: u32,
    part: Part,
) -> Result<(PartEtag, Bytes), FilestackError> {
    let etag = session.upload_part(number, &part).await?;
    Ok((etag, part.bytes))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::UploadSpec;
    use crate::filestack::{FilestackClient, FilestackConfig};
    use crate::secret::Secret;

    #[test]
    fn the_upload_future_can_be_spawned() {
        fn assert_send<T: Send + 'static>(_: T) {}
        let config = FilestackConfig::new("key", Secret::new("s"));
        let client = FilestackClient::new(config).unwrap();
        let body = futures_util::stream::empty::<Result<Bytes, std::io::Error>>();
        assert_send(async move { client.upload(body, UploadSpec::new("a", "b")).await });
    }
}
