//! The `upload_journal` table: uploads in flight, and uploads whose stored
//! file may still need to be found and deleted.

use crate::db::{Database, on_pool};

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JournalRow {
    pub id: String,
    pub owner: String,
    pub filename: String,
    /// The stored file's handle, once known.
    pub handle: Option<String>,
    pub started_at: i64,
    /// When the handle became known.
    pub completed_at: Option<i64>,
    /// When `complete` was about to be sent for the first time.
    pub completing_at: Option<i64>,
    /// What `complete` needs, as JSON (see `PendingComplete`).
    pub complete_request: Option<String>,
    /// When the call gave up on the upload.
    pub abandoned_at: Option<i64>,
}

/// The columns of `upload_journal`, in `JournalRow` order.
macro_rules! columns {
    () => {
        "id, owner, filename, handle, started_at, completed_at, completing_at, \
         complete_request, abandoned_at"
    };
}

impl Database {
    /// Records an upload about to start. `completing`: its first request
    /// may store the file (a one-request store, which cannot be sent
    /// again: the entry waits for Filestack's webhook to name the file).
    pub async fn journal_start(
        &self,
        id: &str,
        owner: &str,
        filename: &str,
        now: i64,
        completing: bool,
    ) -> Result<(), sqlx::Error> {
        let sql = "INSERT INTO upload_journal (id, owner, filename, started_at, completing_at) \
                   VALUES ($1, $2, $3, $4, $5)";
        on_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(id)
                .bind(owner)
                .bind(filename)
                .bind(now)
                .bind(completing.then_some(now))
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    /// Records, before `complete` is sent, what it takes to send it again;
    /// whether the entry still exists (a cancelled resumable upload's does
    /// not, and must not be completed).
    pub async fn journal_completing(
        &self,
        id: &str,
        complete_request: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let sql =
            "UPDATE upload_journal SET completing_at = $2, complete_request = $3 WHERE id = $1";
        on_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(id)
                .bind(now)
                .bind(complete_request)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    /// Records that Filestack stored the upload under `handle`.
    pub async fn journal_completed(
        &self,
        id: &str,
        handle: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let sql = "UPDATE upload_journal SET handle = $2, completed_at = $3 WHERE id = $1";
        on_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(id)
                .bind(handle)
                .bind(now)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    /// Records that the call gave up on the upload (the reaper takes over).
    pub async fn journal_abandoned(&self, id: &str, now: i64) -> Result<(), sqlx::Error> {
        let sql =
            "UPDATE upload_journal SET abandoned_at = COALESCE(abandoned_at, $2) WHERE id = $1";
        on_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(id)
                .bind(now)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    /// Forgets the `complete` request of an entry (Filestack refused it).
    pub async fn journal_forget_request(&self, id: &str) -> Result<(), sqlx::Error> {
        let sql = "UPDATE upload_journal SET complete_request = NULL WHERE id = $1";
        on_pool!(self, |pool| {
            sqlx::query(sql).bind(id).execute(pool).await.map(|_| ())
        })
    }

    pub async fn journal_remove(&self, id: &str) -> Result<(), sqlx::Error> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM upload_journal WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    /// Entries the reaper may settle now: abandoned ones; ones that never
    /// sent `complete` and started before `started_before`; ones that sent
    /// it before `completing_before` (their process is presumed gone). Unix
    /// microseconds.
    pub async fn journal_due(
        &self,
        completing_before: i64,
        started_before: i64,
    ) -> Result<Vec<JournalRow>, sqlx::Error> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM upload_journal WHERE abandoned_at IS NOT NULL",
            // A resumable upload's entry waits for its streams; the session's
            // expiry ends it.
            " OR (completing_at IS NULL AND started_at < $2",
            " AND id NOT IN (SELECT id FROM upload_sessions))",
            " OR (completing_at IS NOT NULL AND completing_at < $1)",
            // Entries a webhook named first: many entries waiting for one
            // must not keep a named file from being settled.
            " ORDER BY CASE WHEN handle IS NULL THEN 1 ELSE 0 END, started_at LIMIT 1000"
        );
        on_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(completing_before)
                .bind(started_before)
                .fetch_all(pool)
                .await
        })
    }

    /// One entry (tests and checks).
    pub async fn journal_entry(&self, id: &str) -> Result<Option<JournalRow>, sqlx::Error> {
        let sql = concat!("SELECT ", columns!(), " FROM upload_journal WHERE id = $1");
        on_pool!(self, |pool| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await
        })
    }

    /// Every entry, oldest first (tests and checks).
    pub async fn journal_entries(&self) -> Result<Vec<JournalRow>, sqlx::Error> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM upload_journal ORDER BY started_at"
        );
        on_pool!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await)
    }

    /// Number of journal entries (tests and checks).
    pub async fn count_journal(&self) -> Result<i64, sqlx::Error> {
        on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM upload_journal")
                .fetch_one(pool)
                .await
        })
    }
}
