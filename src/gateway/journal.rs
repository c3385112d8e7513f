//! The upload journal: nothing half-done survives.
//!
//! An entry is written before a byte flows. It learns the handle as soon as
//! Filestack completes the upload, and goes away in the transaction that
//! records the document, or when the upload fails (deleting the stored file
//! first). If the call is dropped midway (the client went away), the guard's
//! `Drop` does that cleanup in a task. If the process dies, the entry
//! outlives it and the reaper, on start-up and every minute, deletes the
//! file of a completed entry that has no document and drops entries that
//! never completed once they are older than the stale age.

use std::time::Duration;

use crate::db::Database;
use crate::filestack::{FilestackClient, FilestackError};
use crate::gateway::admission::Admitted;
use crate::gateway::domain::{DocumentId, Filename, OwnerId};
use crate::gateway::error::GatewayError;
use crate::gateway::{Gateway, now_micros};

/// A completed entry younger than this may still be getting its row.
const COMPLETED_GRACE: Duration = Duration::from_secs(60);

/// The journal entry of one upload in flight; cleans up when dropped armed.
#[derive(Debug)]
pub struct UploadJournal {
    db: Database,
    filestack: FilestackClient,
    id: String,
    handle: Option<String>,
    armed: bool,
    /// The upload's admission: its memory is given back only once the
    /// entry is settled, so a cancelled upload's cleanup finishes before
    /// another upload takes its place.
    admitted: Option<Admitted>,
}

impl UploadJournal {
    /// Writes the entry; the database being down fails the upload before a
    /// byte flows. The entry keeps the upload's admission until it is
    /// settled.
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
    ) -> Result<Self, GatewayError> {
        let id = DocumentId::generate().as_str().replacen("doc_", "upl_", 1);
        let (db, filestack) = (gateway.db.clone(), gateway.filestack.clone());
        let (owner, filename) = (owner.as_str().to_owned(), filename.as_str().to_owned());
        let write = tokio::spawn(async move {
            db.journal_start(&id, &owner, &filename, now_micros())
                .await?;
            Ok::<_, GatewayError>(Self {
                db,
                filestack,
                id,
                handle: None,
                armed: true,
                admitted: Some(admitted),
            })
        });
        write.await.map_err(GatewayError::internal)?
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Filestack stored the file under `handle`.
    pub async fn completed(&mut self, handle: &str) -> Result<(), GatewayError> {
        self.handle = Some(handle.to_owned());
        self.db
            .journal_completed(&self.id, handle, now_micros())
            .await?;
        Ok(())
    }

    /// The document's transaction removed the entry.
    pub fn recorded(mut self) {
        self.armed = false;
    }

    /// The upload failed: delete the stored file, if any, then the entry.
    /// If this future is dropped midway, `Drop` finishes the job.
    pub async fn abandon(mut self, why: &'static str) {
        cleanup(
            &self.db,
            &self.filestack,
            &self.id,
            self.handle.as_deref(),
            why,
        )
        .await;
        self.armed = false;
    }
}

impl Drop for UploadJournal {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (db, filestack, id, handle) = (
            self.db.clone(),
            self.filestack.clone(),
            self.id.clone(),
            self.handle.take(),
        );
        let admitted = self.admitted.take();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let why = "the call ended before the upload did";
                cleanup(&db, &filestack, &id, handle.as_deref(), why).await;
                drop(admitted);
            });
        }
    }
}

/// Deletes the stored file (when there is one), then the entry. When the
/// file cannot be deleted, the entry stays for the reaper.
async fn cleanup(
    db: &Database,
    filestack: &FilestackClient,
    id: &str,
    handle: Option<&str>,
    why: &str,
) {
    if let Some(handle) = handle {
        match filestack.delete(handle).await {
            Ok(()) | Err(FilestackError::NotFound) => {
                tracing::warn!(handle, why, "deleted a stored file that has no document");
            }
            Err(error) => {
                tracing::error!(handle, why, %error, "could not delete the stored file; the reaper will retry");
                return;
            }
        }
    }
    if let Err(error) = db.journal_remove(id).await {
        tracing::error!(journal = id, %error, "could not remove the upload journal entry; the reaper will retry");
    }
}

impl Gateway {
    /// One pass of the reaper; the number of entries it settled.
    pub async fn reap_upload_journal(&self) -> Result<usize, sqlx::Error> {
        let now = now_micros();
        let grace = i64::try_from(COMPLETED_GRACE.as_micros()).unwrap_or(i64::MAX);
        let stale = i64::try_from(self.limits.journal_stale_after.as_micros()).unwrap_or(i64::MAX);
        let entries = self.db.journal_stale(now - grace, now - stale).await?;
        let mut settled = 0;
        for entry in entries {
            let Some(handle) = entry.handle.as_deref() else {
                tracing::info!(journal = %entry.id, "dropping the entry of an upload that never completed");
                self.db.journal_remove(&entry.id).await?;
                settled += 1;
                continue;
            };
            if self.db.document_by_handle(handle).await?.is_some() {
                self.db.journal_remove(&entry.id).await?;
            } else {
                cleanup(
                    &self.db,
                    &self.filestack,
                    &entry.id,
                    Some(handle),
                    "reaped after a crash",
                )
                .await;
            }
            settled += 1;
        }
        Ok(settled)
    }
}
