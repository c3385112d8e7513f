//! The `upload_journal` table: uploads in flight.

use crate::db::{Database, on_pool};

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JournalRow {
    pub id: String,
    pub owner: String,
    pub filename: String,
    pub handle: Option<String>,
    pub started_at: i64,
    pub completed_at: Option<i64>,
}

impl Database {
    /// Records an upload about to start.
    pub async fn journal_start(
        &self,
        id: &str,
        owner: &str,
        filename: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let sql =
            "INSERT INTO upload_journal (id, owner, filename, started_at) VALUES ($1, $2, $3, $4)";
        on_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(id)
                .bind(owner)
                .bind(filename)
                .bind(now)
                .execute(pool)
                .await
                .map(|_| ())
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

    pub async fn journal_remove(&self, id: &str) -> Result<(), sqlx::Error> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM upload_journal WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    /// Entries to reap: completed before `completed_before`, or never
    /// completed and started before `started_before` (unix microseconds).
    pub async fn journal_stale(
        &self,
        completed_before: i64,
        started_before: i64,
    ) -> Result<Vec<JournalRow>, sqlx::Error> {
        let sql = "SELECT id, owner, filename, handle, started_at, completed_at FROM upload_journal \
                   WHERE (completed_at IS NOT NULL AND completed_at < $1) \
                   OR (completed_at IS NULL AND started_at < $2) ORDER BY started_at LIMIT 1000";
        on_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(completed_before)
                .bind(started_before)
                .fetch_all(pool)
                .await
        })
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
