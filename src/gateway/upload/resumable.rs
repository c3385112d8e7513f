//! Resumable uploads: `StartUpload` starts a Filestack multipart upload and
//! records it (`upload_sessions`, with the journal entry of the same id);
//! Upload streams that name its id send the bytes from where the last one
//! stopped, on any replica; `QueryUpload` and `CancelUpload`.
//!
//! Persisted means parts Filestack acknowledged: the bytes of parts 1..n,
//! always a whole number of parts. A stream must start exactly there. Its
//! bytes are cut into parts at the same boundaries, up to `parts in flight`
//! uploading at once; each time the acknowledged prefix grows, the session
//! row records the parts, the new persisted size and the SHA-256 state at
//! that offset (the hash is carried across streams, so the whole file is
//! still checked). A partial part at the end of a stream that stops early
//! is not persisted: the next stream sends it again.
//!
//! The latest stream of an upload is its one writer: claiming the session
//! makes an earlier stream's next write fail (ABORTED `UPLOAD_TAKEN_OVER`),
//! which is what lets a client resume at once on another replica after a
//! broken connection, without waiting for a lease to run out.
//!
//! The document's request id is the spec's, or the upload id: a finished
//! upload's document is found by it, and two streams finishing one upload
//! record one document.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use crate::db::{DocumentRow, Persisted, SessionRow};
use crate::filestack::{FilestackError, MultipartSession, PartEtag};
use crate::gateway::domain::{ContentType, Filename, OwnerId, RequestId, Sha256Hex, UploadId};
use crate::gateway::error::GatewayError;
use crate::gateway::journal::{UploadJournal, storage_path};
use crate::gateway::upload::checked::size_required;
use crate::gateway::upload::{ByteStream, CheckedSpec, upload_error};
use crate::gateway::{Gateway, now_micros};

/// A resumable upload just started.
#[derive(Debug, Clone)]
pub struct StartedUpload {
    pub upload_id: UploadId,
    /// Persisted sizes are multiples of this (the last part aside).
    pub part_size: u64,
    /// Unix microseconds after which an idle upload is removed.
    pub expires_at: i64,
}

/// Where a resumable upload stands.
#[derive(Debug, Clone)]
pub struct UploadStatus {
    pub persisted_bytes: u64,
    pub size_bytes: u64,
    /// Once finished.
    pub document: Option<DocumentRow>,
    pub expires_at: i64,
}

/// What one stream of a resumable upload achieved.
#[derive(Debug)]
pub enum Written {
    /// The whole file is stored and recorded.
    Finished(Box<DocumentRow>),
    /// The stream ended before the file did: the bytes persisted so far.
    Persisted(u64),
}

/// The checked spec as a session row keeps it.
#[derive(Debug, Serialize, Deserialize)]
struct KeptSpec {
    filename: String,
    content_type: String,
    size: u64,
    sha256: Option<String>,
    request_id: Option<String>,
}

impl KeptSpec {
    fn of(spec: &CheckedSpec, size: u64) -> KeptSpec {
        KeptSpec {
            filename: spec.filename.as_str().to_owned(),
            content_type: spec.content_type.as_str().to_owned(),
            size,
            sha256: spec.sha256.as_ref().map(|h| h.as_str().to_owned()),
            request_id: spec.request_id.as_ref().map(|r| r.as_str().to_owned()),
        }
    }

    /// The spec again, its request id defaulting to the upload id.
    fn checked(&self, id: &UploadId) -> Result<CheckedSpec, GatewayError> {
        let filename = Filename::parse(&self.filename)?;
        let content_type = ContentType::parse_or_guess(&self.content_type, &filename)?;
        let request_id = self.request_id.as_deref().unwrap_or(id.as_str());
        Ok(CheckedSpec {
            filename,
            content_type,
            size: Some(self.size),
            sha256: self.sha256.as_deref().map(Sha256Hex::parse).transpose()?,
            request_id: RequestId::parse(request_id, "spec.request_id")?,
        })
    }
}

/// A session row, read back.
struct Session {
    id: UploadId,
    spec: CheckedSpec,
    size: u64,
    multipart: MultipartSession,
    part_size: u64,
    parts: Vec<PartEtag>,
    persisted: u64,
    hasher: Sha256,
    touched_at: i64,
}

impl Session {
    fn read(id: &UploadId, row: SessionRow) -> Result<Session, GatewayError> {
        let corrupt = |what: &str| {
            GatewayError::internal(anyhow::anyhow!("upload session {}: bad {what}", row.id))
        };
        let kept: KeptSpec = serde_json::from_str(&row.spec).map_err(|_| corrupt("spec"))?;
        Ok(Session {
            id: id.clone(),
            spec: kept.checked(id)?,
            size: kept.size,
            multipart: serde_json::from_str(&row.multipart).map_err(|_| corrupt("multipart"))?,
            part_size: u64::try_from(row.part_size).map_err(|_| corrupt("part size"))?,
            parts: serde_json::from_str(&row.parts).map_err(|_| corrupt("parts"))?,
            persisted: u64::try_from(row.persisted_bytes).map_err(|_| corrupt("size"))?,
            hasher: restore_hasher(&row.sha256_state).ok_or_else(|| corrupt("SHA-256 state"))?,
            touched_at: row.touched_at,
        })
    }
}

/// The SHA-256 state as hex, to keep across streams.
fn hasher_state(hasher: &Sha256) -> String {
    hex::encode(hasher.serialize())
}

fn restore_hasher(state: &str) -> Option<Sha256> {
    let bytes = hex::decode(state).ok()?;
    let serialized = SerializedState::<Sha256>::try_from(bytes.as_slice()).ok()?;
    Sha256::deserialize(&serialized).ok()
}

fn micros(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// A part upload's number and outcome.
type PartUploaded = (u32, Result<PartEtag, FilestackError>);

/// One turn of the part loop.
enum Step {
    /// The stream's next chunk (`None`: it ended).
    Read(Option<Result<Bytes, GatewayError>>),
    /// A part upload finished (`None`: none is running).
    Joined(Option<Result<PartUploaded, tokio::task::JoinError>>),
}

/// A part read from the stream, uploading.
struct PartInFlight {
    /// The offset just after it.
    end: u64,
    /// The SHA-256 state there.
    hasher_state: String,
}

impl Gateway {
    /// Starts a resumable upload of a file of declared size.
    pub async fn start_upload(
        &self,
        owner: &OwnerId,
        spec: CheckedSpec,
    ) -> Result<StartedUpload, GatewayError> {
        let Some(size) = spec.size else {
            return Err(size_required());
        };
        // A key already used: the same file (the upload is finished from
        // the start: its streams get the document, and it needs no journal
        // entry, as it will store nothing) or REQUEST_ID_REUSED.
        let finished = match &spec.request_id {
            Some(request_id) => match self
                .db
                .document_by_request(owner.as_str(), request_id.as_str())
                .await?
            {
                Some(existing) => spec.retried(existing).map(|_| true)?,
                None => false,
            },
            None => false,
        };
        let id = UploadId::generate();
        let path = storage_path(owner, id.as_str());
        let multipart = self
            .filestack
            .start_multipart(&self.filestack_spec(&spec, &path), size)
            .await?;
        let now = now_micros();
        let part_size = self.filestack.config().part_size as u64;
        let row = SessionRow {
            id: id.as_str().to_owned(),
            owner: owner.as_str().to_owned(),
            spec: serde_json::to_string(&KeptSpec::of(&spec, size))
                .map_err(GatewayError::internal)?,
            multipart: serde_json::to_string(&multipart).map_err(GatewayError::internal)?,
            part_size: part_size as i64,
            parts: "[]".to_owned(),
            persisted_bytes: 0,
            sha256_state: hasher_state(&Sha256::new()),
            writer: None,
            created_at: now,
            touched_at: now,
        };
        let journal = (!finished).then_some(spec.filename.as_str());
        self.db.session_create(&row, journal).await?;
        tracing::info!(upload_id = id.as_str(), size, "resumable upload started");
        Ok(StartedUpload {
            upload_id: id,
            part_size,
            expires_at: now.saturating_add(micros(self.limits.upload_session_expiry)),
        })
    }

    /// The caller's session; another owner's is NOT_FOUND too.
    async fn owned_session(&self, owner: &OwnerId, id: &UploadId) -> Result<Session, GatewayError> {
        let not_found = GatewayError::NotFound { what: "upload" };
        let row = self.db.session(id.as_str()).await?.ok_or(not_found)?;
        if row.owner != owner.as_str() {
            return Err(GatewayError::NotFound { what: "upload" });
        }
        Session::read(id, row)
    }

    /// The document of a finished upload: the one under its request id,
    /// unless that is another file's (the key was reused by a plain Upload
    /// meanwhile: finishing this one then fails with REQUEST_ID_REUSED).
    async fn finished_document(
        &self,
        owner: &OwnerId,
        session: &Session,
    ) -> Result<Option<DocumentRow>, GatewayError> {
        let Some(request_id) = &session.spec.request_id else {
            return Ok(None);
        };
        let document = self
            .db
            .document_by_request(owner.as_str(), request_id.as_str())
            .await?;
        Ok(document.and_then(|document| session.spec.retried(document).ok()))
    }

    /// How much of the upload is persisted, and its document once finished.
    pub async fn query_upload(
        &self,
        owner: &OwnerId,
        id: &UploadId,
    ) -> Result<UploadStatus, GatewayError> {
        let session = self.owned_session(owner, id).await?;
        let document = self.finished_document(owner, &session).await?;
        Ok(UploadStatus {
            persisted_bytes: if document.is_some() {
                session.size
            } else {
                session.persisted
            },
            size_bytes: session.size,
            document,
            expires_at: session
                .touched_at
                .saturating_add(micros(self.limits.upload_session_expiry)),
        })
    }

    /// Ends an unfinished upload; nothing of it is stored (Filestack keeps
    /// no file of a multipart upload that is never completed).
    pub async fn cancel_upload(&self, owner: &OwnerId, id: &UploadId) -> Result<(), GatewayError> {
        let session = self.owned_session(owner, id).await?;
        if self.finished_document(owner, &session).await?.is_some() {
            return Err(GatewayError::UploadState {
                state: "finished: delete its document instead",
                reason: "UPLOAD_FINISHED",
            });
        }
        let entry = self.db.journal_entry(id.as_str()).await?;
        if entry.is_some_and(|entry| entry.completing_at.is_some()) {
            return Err(GatewayError::UploadState {
                state: "being completed",
                reason: "UPLOAD_COMPLETING",
            });
        }
        self.db.session_remove(id.as_str()).await?;
        tracing::info!(upload_id = id.as_str(), "resumable upload cancelled");
        Ok(())
    }

    /// Writes the bytes of one stream of a resumable upload, which start at
    /// `offset`; finishes the upload when they reach its size.
    pub async fn write_upload(
        &self,
        owner: &OwnerId,
        id: &UploadId,
        offset: u64,
        bytes: ByteStream,
    ) -> Result<Written, GatewayError> {
        let mut session = self.owned_session(owner, id).await?;
        // A finished upload: any stream within the file (the last one
        // repeated after its answer was lost, say) gets the document; its
        // bytes are not read.
        if let Some(document) = self.finished_document(owner, &session).await? {
            return match offset <= session.size {
                true => Ok(Written::Finished(Box::new(document))),
                false => Err(GatewayError::OffsetNotPersisted {
                    given: offset as i64,
                    persisted: session.size,
                }),
            };
        }
        if offset != session.persisted {
            return Err(GatewayError::OffsetNotPersisted {
                given: offset as i64,
                persisted: session.persisted,
            });
        }
        // Admitted first: a stream that must wait for room does not take
        // the upload from one that is writing.
        let admitted = self
            .admission
            .admit(Some(session.size - session.persisted))
            .await?;
        let writer = UploadId::generate().as_str().to_owned();
        self.claim(owner, id, &writer, offset).await?;
        if let Err(error) = self.write_parts(&mut session, &writer, bytes).await {
            // A part refused because a newer stream finished or the upload
            // was cancelled meanwhile says so, not "not found at Filestack".
            return Err(match self.db.session(id.as_str()).await {
                Ok(None) => GatewayError::NotFound { what: "upload" },
                Ok(Some(row)) if row.writer.as_deref() != Some(writer.as_str()) => {
                    GatewayError::UploadTakenOver
                }
                _ => error,
            });
        }
        if session.persisted < session.size {
            tracing::info!(
                upload_id = id.as_str(),
                persisted = session.persisted,
                "resumable upload stream ended before the file"
            );
            return Ok(Written::Persisted(session.persisted));
        }
        let digest: [u8; 32] = session.hasher.clone().finalize().into();
        if session
            .spec
            .sha256
            .as_ref()
            .is_some_and(|expected| expected.to_bytes() != digest)
        {
            // The persisted parts are not the caller's file: nothing to resume.
            self.db.session_remove(id.as_str()).await?;
            return Err(GatewayError::ChecksumMismatch);
        }
        let journal = UploadJournal::adopt(self, owner, id, admitted);
        let pending = session.multipart.pending(session.parts.clone());
        self.claim(owner, id, &writer, session.size).await?;
        let row = self
            .complete_and_record(owner, session.spec, journal, &pending, digest, session.size)
            .await?;
        tracing::info!(upload_id = id.as_str(), document_id = %row.id, "resumable upload finished");
        Ok(Written::Finished(Box::new(row)))
    }

    /// Makes this stream the upload's writer if `offset` is what the
    /// session has persisted (checked in the same statement: a stream that
    /// persisted a part meanwhile wins, and this one learns where it is).
    async fn claim(
        &self,
        owner: &OwnerId,
        id: &UploadId,
        writer: &str,
        offset: u64,
    ) -> Result<(), GatewayError> {
        let claimed = self
            .db
            .session_claim(id.as_str(), writer, offset as i64, now_micros())
            .await?;
        if claimed {
            return Ok(());
        }
        let session = self.owned_session(owner, id).await?;
        Err(GatewayError::OffsetNotPersisted {
            given: offset as i64,
            persisted: session.persisted,
        })
    }

    /// Cuts the stream into parts from the persisted offset and uploads them
    /// (up to `parts in flight` at once), recording each growth of the
    /// acknowledged prefix. Parts already uploading when the stream fails
    /// are still waited for and recorded, so a retry resends less.
    async fn write_parts(
        &self,
        session: &mut Session,
        writer: &str,
        mut bytes: ByteStream,
    ) -> Result<(), GatewayError> {
        let slots = self.filestack.config().parts_in_flight;
        let mut uploads: JoinSet<PartUploaded> = JoinSet::new();
        let mut reading: BTreeMap<u32, PartInFlight> = BTreeMap::new();
        let mut acknowledged: BTreeMap<u32, PartEtag> = BTreeMap::new();
        let mut received = session.persisted;
        let mut buffer = BytesMut::new();
        let mut failure: Option<GatewayError> = None;
        let mut stream_done = false;
        let mut next_number = session.parts.len() as u32 + 1;
        loop {
            // Read while a slot is free and the stream has bytes, recording
            // parts as they are acknowledged meanwhile; otherwise wait for an
            // upload to finish. (The stream's `next` is cancel-safe.)
            let readable = !stream_done && failure.is_none() && uploads.len() < slots;
            let step = match (readable, uploads.is_empty()) {
                (true, true) => Step::Read(bytes.next().await),
                (true, false) => tokio::select! {
                    biased;
                    joined = uploads.join_next() => Step::Joined(joined),
                    next = bytes.next() => Step::Read(next),
                },
                (false, _) => Step::Joined(uploads.join_next().await),
            };
            match step {
                Step::Read(None) => stream_done = true,
                Step::Read(Some(Err(error))) => failure = Some(error),
                Step::Read(Some(Ok(chunk))) => {
                    let after = received + chunk.len() as u64;
                    if after > session.size {
                        failure = Some(GatewayError::SizeMismatch {
                            declared: session.size,
                            received: after,
                        });
                        continue;
                    }
                    received = after;
                    buffer.extend_from_slice(&chunk);
                }
                Step::Joined(None) => break,
                Step::Joined(Some(joined)) => {
                    match joined {
                        Ok((number, Ok(etag))) => {
                            acknowledged.insert(number, etag);
                        }
                        Ok((_, Err(error))) => {
                            failure.get_or_insert(upload_error(error));
                        }
                        Err(join) => {
                            failure.get_or_insert(GatewayError::internal(join));
                        }
                    }
                    if let Err(error) = self
                        .record_prefix(session, writer, &mut acknowledged, &mut reading)
                        .await
                    {
                        uploads.abort_all();
                        return Err(error);
                    }
                }
            }
            // The part that ends the file waits for the stream's clean end:
            // a stream that goes on past the size, or fails, persists none
            // of the bytes it sent after the last whole part before it.
            let ends_file = received == session.size;
            let clean_end = stream_done && failure.is_none();
            while let Some(part) = cut_part(&mut buffer, session.part_size, ends_file, clean_end) {
                session.hasher.update(&part);
                let state = PartInFlight {
                    end: received - buffer.len() as u64,
                    hasher_state: hasher_state(&session.hasher),
                };
                reading.insert(next_number, state);
                let (client, multipart) = (self.filestack.clone(), session.multipart.clone());
                let number = next_number;
                uploads.spawn(async move {
                    (number, client.upload_part(&multipart, number, part).await)
                });
                next_number += 1;
            }
            if stream_done && uploads.is_empty() {
                break;
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Moves the parts that extend the acknowledged prefix into the session
    /// and records it; an earlier stream whose writer was replaced stops.
    async fn record_prefix(
        &self,
        session: &mut Session,
        writer: &str,
        acknowledged: &mut BTreeMap<u32, PartEtag>,
        reading: &mut BTreeMap<u32, PartInFlight>,
    ) -> Result<(), GatewayError> {
        let mut grown = None;
        while let Some(etag) = acknowledged.remove(&(session.parts.len() as u32 + 1)) {
            let number = etag.part_number;
            session.parts.push(etag);
            grown = reading.remove(&number);
        }
        let Some(part) = grown else {
            return Ok(());
        };
        let parts = serde_json::to_string(&session.parts).map_err(GatewayError::internal)?;
        let persisted = Persisted {
            parts: &parts,
            persisted_bytes: part.end as i64,
            sha256_state: &part.hasher_state,
        };
        let recorded = self
            .db
            .session_persist(session.id.as_str(), writer, &persisted, now_micros())
            .await?;
        if !recorded {
            return Err(GatewayError::UploadTakenOver);
        }
        session.persisted = part.end;
        Ok(())
    }
}

/// The next whole part at the front of `buffer`, unless it is the file's
/// last part (`ends_file`: the buffer ends where the file does): that one,
/// whole or shorter, only once the stream has ended cleanly.
fn cut_part(
    buffer: &mut BytesMut,
    part_size: u64,
    ends_file: bool,
    clean_end: bool,
) -> Option<Bytes> {
    let part_size = part_size as usize;
    if buffer.len() > part_size || (buffer.len() == part_size && !ends_file) {
        return Some(buffer.split_to(part_size).freeze());
    }
    (ends_file && clean_end && !buffer.is_empty()).then(|| buffer.split().freeze())
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::{hasher_state, restore_hasher};

    #[test]
    fn the_sha256_state_carried_across_streams_gives_the_digest_of_the_whole() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for split in [0, 1, 63, 64, 65, 5000, 9999, 10_000] {
            let mut first = Sha256::new();
            first.update(&data[..split]);
            let mut resumed = restore_hasher(&hasher_state(&first)).expect("restores");
            resumed.update(&data[split..]);
            assert_eq!(
                resumed.finalize().as_slice(),
                Sha256::digest(&data).as_slice(),
                "split at {split}"
            );
        }
        assert!(restore_hasher("not hex").is_none());
        assert!(restore_hasher("00").is_none());
    }
}
