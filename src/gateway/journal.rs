//! The upload journal: nothing half-done survives.
//!
//! An entry is written before a byte flows to Filestack, and each upload
//! stores its file under a storage path of its own,
//! `user-uploads/{owner}/{entry id}/`. A multipart upload's entry records,
//! just before `multipart/complete` is first sent, what it takes to send
//! `complete` again ([`PendingComplete`]); a one-request store's entry is
//! written as completing, since its only request may store the file. The
//! entry goes away in the transaction that records the document, or when
//! the upload fails:
//!
//! - before the storing request was sent, or when Filestack refused it,
//!   nothing is stored: the entry is removed;
//! - once the handle is known, the file is deleted, then the entry removed;
//! - when the storing request's outcome is unknown (its answer was lost,
//!   the call was cancelled while it ran), the entry is marked abandoned and
//!   kept: the file may exist under a handle nobody learnt.
//!
//! The reaper (at start-up, every minute, and at once when woken) settles
//! what calls and dead processes left: it deletes the file of an entry whose
//! handle is known and that has no document; it sends `complete` again for
//! a multipart entry that has none (Filestack may answer with the file); and
//! Filestack's `fp.upload` webhook, whose storage key names the entry, gives
//! the entry its handle (the only way for a store, which cannot be sent
//! again). Entries that never sent a storing request are dropped once stale.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::db::{Database, JournalRow};
use crate::filestack::{FilestackClient, FilestackError, PendingComplete};
use crate::gateway::admission::Admitted;
use crate::gateway::domain::{Filename, OwnerId, UploadId};
use crate::gateway::error::GatewayError;
use crate::gateway::{Gateway, now_micros};

/// How long an entry whose handle is still unknown is kept for Filestack's
/// `fp.upload` webhook, which Filestack retries for about 13 hours.
const UNRESOLVED_KEEP: Duration = Duration::from_secs(24 * 3600);

/// The prefix of journal entry ids.
const ENTRY_PREFIX: &str = UploadId::PREFIX;

/// The storage path of the upload with journal entry `entry`.
pub fn storage_path(owner: &OwnerId, entry: &str) -> String {
    format!("{}{entry}/", owner.upload_prefix())
}

/// The journal entry named by a storage key under an upload's own path
/// (`user-uploads/{owner}/{entry}/...`), if the key is one.
pub fn entry_of_key(key: &str) -> Option<String> {
    let rest = key.strip_prefix("user-uploads/")?;
    let (_owner, rest) = rest.split_once('/')?;
    let (entry, file) = rest.split_once('/')?;
    let random = entry.strip_prefix(ENTRY_PREFIX)?;
    let valid =
        !file.is_empty() && random.len() == 24 && random.chars().all(|c| c.is_ascii_alphanumeric());
    valid.then(|| entry.to_owned())
}

/// Wakes the reaper: an entry can be settled now.
#[derive(Debug, Clone, Default)]
pub struct ReaperBell(Arc<Notify>);

impl ReaperBell {
    pub fn ring(&self) {
        self.0.notify_one();
    }

    pub async fn rung(&self) {
        self.0.notified().await;
    }
}

/// How an upload reaches Filestack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Start, parts, then `complete`: nothing is stored before
    /// [`UploadJournal::completing`].
    Multipart,
    /// One `/api/store` request, which may store the file as soon as it is
    /// sent.
    Store,
}

/// Where one upload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// `complete` not sent: nothing can be stored.
    Started,
    /// `complete` sent (or about to be): a file may be stored.
    Completing,
    /// Stored under this handle.
    Stored(String),
}

/// The journal entry of one upload in flight; settles it when dropped armed.
#[derive(Debug)]
pub struct UploadJournal {
    db: Database,
    filestack: FilestackClient,
    bell: ReaperBell,
    id: String,
    path: String,
    stage: Stage,
    armed: bool,
    /// A resumable upload's entry: it stays while nothing is stored (its
    /// session's expiry or cancellation removes it).
    resumable: bool,
    /// The upload's admission: its memory is given back only once the
    /// entry is settled, so a cancelled upload's cleanup finishes before
    /// another upload takes its place.
    admitted: Option<Admitted>,
}

impl UploadJournal {
    /// Writes the entry; the database being down fails the upload before a
    /// byte reaches Filestack. The entry keeps the upload's admission until
    /// it is settled.
    ///
    /// The write runs on its own task: if the call is cancelled while the
    /// entry is being written, the write still finishes and the guard it
    /// yields, dropped unread, removes the entry again (a dropped query
    /// future could otherwise commit an entry nobody settles).
    pub async fn open(
        gateway: &Gateway,
        owner: &OwnerId,
        filename: &Filename,
        admitted: Admitted,
        protocol: Protocol,
    ) -> Result<Self, GatewayError> {
        let id = UploadId::generate().as_str().to_owned();
        let path = storage_path(owner, &id);
        let (db, filestack) = (gateway.db.clone(), gateway.filestack.clone());
        let bell = gateway.reaper.clone();
        let (owner, filename) = (owner.as_str().to_owned(), filename.as_str().to_owned());
        let completing = protocol == Protocol::Store;
        let write = tokio::spawn(async move {
            db.journal_start(&id, &owner, &filename, now_micros(), completing)
                .await?;
            Ok::<_, GatewayError>(Self {
                db,
                filestack,
                bell,
                id,
                path,
                // Nothing is sent yet, whatever the row says (a store's row
                // is written as completing for a process that dies once it
                // is sent): a call dropped before [`Self::sending`] stored
                // nothing, and its entry goes.
                stage: Stage::Started,
                armed: true,
                resumable: false,
                admitted: Some(admitted),
            })
        });
        write.await.map_err(GatewayError::internal)?
    }

    /// The entry StartUpload wrote for a resumable upload, now that a
    /// stream finishes it: settled like any other once `complete` is sent.
    pub fn adopt(gateway: &Gateway, owner: &OwnerId, id: &UploadId, admitted: Admitted) -> Self {
        Self {
            db: gateway.db.clone(),
            filestack: gateway.filestack.clone(),
            bell: gateway.reaper.clone(),
            id: id.as_str().to_owned(),
            path: storage_path(owner, id.as_str()),
            stage: Stage::Started,
            armed: true,
            resumable: true,
            admitted: Some(admitted),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where this upload's file goes: a path of its own.
    pub fn storage_path(&self) -> &str {
        &self.path
    }

    /// Records what `complete` needs, before it is sent.
    pub async fn completing(&mut self, pending: &PendingComplete) -> Result<(), GatewayError> {
        let recorded = self
            .db
            .journal_completing(&self.id, &pending.to_json(), now_micros())
            .await?;
        if !recorded {
            return Err(GatewayError::NotFound { what: "upload" });
        }
        self.stage = Stage::Completing;
        Ok(())
    }

    /// A one-request store is about to be sent: from now on a file may be
    /// stored (the entry was written as completing).
    pub fn sending(&mut self) {
        self.stage = Stage::Completing;
    }

    /// Filestack refused the storing request outright: nothing is stored.
    pub fn nothing_stored(&mut self) {
        self.stage = Stage::Started;
    }

    /// Filestack stored the file under `handle`.
    pub fn stored(&mut self, handle: &str) {
        self.stage = Stage::Stored(handle.to_owned());
    }

    /// The document's transaction removed the entry.
    pub fn recorded(mut self) {
        self.armed = false;
    }

    /// The upload failed: settle what it left (see the module
    /// documentation). If this future is dropped midway, `Drop` finishes
    /// the job.
    pub async fn abandon(mut self, why: &'static str) {
        let stage = self.settled_stage();
        settle(&self.db, &self.filestack, &self.bell, &self.id, &stage, why).await;
        self.armed = false;
    }

    /// What settling must handle: nothing before `complete` for a resumable
    /// upload, whose entry its session keeps.
    fn settled_stage(&self) -> Option<Stage> {
        match (&self.stage, self.resumable) {
            (Stage::Started, true) => None,
            (stage, _) => Some(stage.clone()),
        }
    }
}

impl Drop for UploadJournal {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (db, filestack, bell, id, stage) = (
            self.db.clone(),
            self.filestack.clone(),
            self.bell.clone(),
            self.id.clone(),
            self.settled_stage(),
        );
        let admitted = self.admitted.take();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let why = "the call ended before the upload did";
                settle(&db, &filestack, &bell, &id, &stage, why).await;
                drop(admitted);
            });
        }
    }
}

/// What an abandoned upload leaves behind, settled as far as it can be now.
async fn settle(
    db: &Database,
    filestack: &FilestackClient,
    bell: &ReaperBell,
    id: &str,
    stage: &Option<Stage>,
    why: &str,
) {
    let Some(stage) = stage else {
        return;
    };
    match stage {
        Stage::Started => remove(db, id).await,
        Stage::Stored(handle) => delete_file(db, filestack, id, handle, why).await,
        Stage::Completing => {
            tracing::warn!(
                journal = id,
                why,
                "the upload may be stored under a handle not yet known; the reaper will settle it"
            );
            match db.journal_abandoned(id, now_micros()).await {
                Ok(()) => bell.ring(),
                Err(error) => {
                    tracing::error!(journal = id, %error, "could not mark the upload journal entry abandoned; the reaper will settle it later");
                }
            }
        }
    }
}

/// Deletes the stored file, then the entry. When the file cannot be
/// deleted, the entry keeps the handle for the reaper.
async fn delete_file(
    db: &Database,
    filestack: &FilestackClient,
    id: &str,
    handle: &str,
    why: &str,
) {
    match filestack.delete(handle).await {
        Ok(()) | Err(FilestackError::NotFound) => {
            tracing::warn!(handle, why, "deleted a stored file that has no document");
            remove(db, id).await;
        }
        Err(error) => {
            tracing::error!(handle, why, %error, "could not delete the stored file; the reaper will retry");
            let now = now_micros();
            let kept = async {
                db.journal_completed(id, handle, now).await?;
                db.journal_abandoned(id, now).await
            };
            if let Err(error) = kept.await {
                tracing::error!(journal = id, handle, %error, "could not record the stored file's handle in the upload journal");
            }
        }
    }
}

async fn remove(db: &Database, id: &str) {
    if let Err(error) = db.journal_remove(id).await {
        tracing::error!(journal = id, %error, "could not remove the upload journal entry; the reaper will retry");
    }
}

/// Micros of a duration, saturating.
fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

impl Gateway {
    /// One pass of the reaper; the number of entries it settled (removed).
    /// Resumable uploads idle past their expiry go first: nothing of them
    /// is stored unless `complete` was sent, whose entry stays to settle.
    pub async fn reap_upload_journal(&self) -> Result<usize, sqlx::Error> {
        let now = now_micros();
        let idle_since = now.saturating_sub(micros(self.limits.upload_session_expiry));
        for id in self.db.sessions_idle_since(idle_since).await? {
            if self.db.session_remove(&id).await? {
                tracing::info!(upload_id = %id, "resumable upload expired");
            }
        }
        let grace = micros(self.limits.journal_grace);
        let stale = micros(self.limits.journal_stale_after);
        let entries = self
            .db
            .journal_due(now.saturating_sub(grace), now.saturating_sub(stale))
            .await?;
        let mut settled = 0;
        for entry in entries {
            if self.reap_entry(&entry, now).await? {
                settled += 1;
            }
        }
        Ok(settled)
    }

    /// Settles one due entry if it can be now; whether it was removed.
    async fn reap_entry(&self, entry: &JournalRow, now: i64) -> Result<bool, sqlx::Error> {
        let id = entry.id.as_str();
        if let Some(handle) = entry.handle.as_deref() {
            return self.reap_stored(id, handle).await;
        }
        if entry.completing_at.is_none() {
            tracing::info!(
                journal = id,
                "dropping the entry of an upload that never sent complete"
            );
            self.db.journal_remove(id).await?;
            return Ok(true);
        }
        if let Some(pending) = entry
            .complete_request
            .as_deref()
            .and_then(PendingComplete::from_json)
        {
            match self.filestack.complete(&pending).await {
                Ok(stored) => {
                    tracing::info!(journal = id, handle = %stored.handle, "complete sent again named the stored file");
                    self.db.journal_completed(id, &stored.handle, now).await?;
                    return self.reap_stored(id, &stored.handle).await;
                }
                Err(error) if error.is_retryable() => {
                    tracing::warn!(journal = id, %error, "sending complete again failed; the next pass retries");
                    return Ok(false);
                }
                Err(error) => {
                    tracing::info!(journal = id, %error, "Filestack does not name the upload's file; waiting for its fp.upload webhook");
                    self.db.journal_forget_request(id).await?;
                }
            }
        }
        let since = entry.abandoned_at.or(entry.completing_at).unwrap_or(now);
        if now.saturating_sub(since) > micros(UNRESOLVED_KEEP) {
            tracing::error!(
                journal = id,
                owner = %entry.owner,
                filename = %entry.filename,
                "an upload's storing request had an unknown outcome and Filestack never named its file: a file may be stored under {}{id}/ with no document; giving up",
                OwnerId::parse(&entry.owner).map(|o| o.upload_prefix()).unwrap_or_default(),
            );
            self.db.journal_remove(id).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// An entry whose file is stored under `handle`: removed if a document
    /// has the handle, else the file is deleted first.
    async fn reap_stored(&self, id: &str, handle: &str) -> Result<bool, sqlx::Error> {
        if self.db.document_by_handle(handle).await?.is_some() {
            self.db.journal_remove(id).await?;
            return Ok(true);
        }
        match self.filestack.delete(handle).await {
            Ok(()) | Err(FilestackError::NotFound) => {
                tracing::warn!(
                    journal = id,
                    handle,
                    "reaper deleted a stored file that has no document"
                );
                self.db.journal_remove(id).await?;
                Ok(true)
            }
            Err(error) => {
                tracing::error!(journal = id, handle, %error, "reaper could not delete a stored file; the next pass retries");
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{entry_of_key, storage_path};
    use crate::gateway::domain::OwnerId;

    #[test]
    fn an_uploads_storage_key_names_its_journal_entry() {
        let owner = OwnerId::parse("alice").unwrap();
        let entry = "upl_AbCdEfGhIjKlMnOpQrStUvWx";
        let path = storage_path(&owner, entry);
        assert_eq!(path, "user-uploads/alice/upl_AbCdEfGhIjKlMnOpQrStUvWx/");
        let key = format!("{path}Xy12_report.pdf");
        assert_eq!(entry_of_key(&key).as_deref(), Some(entry));
        for other in [
            "user-uploads/alice/1_a.png",
            "user-uploads/alice/upl_short/x",
            "user-uploads/alice/upl_AbCdEfGhIjKlMnOpQrStUvWx/",
            "other/alice/upl_AbCdEfGhIjKlMnOpQrStUvWx/x",
        ] {
            assert_eq!(entry_of_key(other), None, "{other}");
        }
    }
}
