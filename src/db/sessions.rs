//! The `upload_sessions` table: resumable uploads, each with the journal
//! entry of the same id (its storage path).

use crate::db::{Database, on_pool};

/// One resumable upload.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    pub id: String,
    pub owner: String,
    /// JSON of the checked spec.
    pub spec: String,
    /// JSON of the Filestack multipart session.
    pub multipart: String,
    pub part_size: i64,
    /// JSON of the persisted parts' ETags, in order.
    pub parts: String,
    pub persisted_bytes: i64,
    /// Hex of the SHA-256 state after `persisted_bytes` bytes.
    pub sha256_state: String,
    pub writer: Option<String>,
    pub created_at: i64,
    pub touched_at: i64,
}

/// The columns of `upload_sessions`, in `SessionRow` order.
macro_rules! columns {
    () => {
        "id, owner, spec, multipart, part_size, parts, persisted_bytes, sha256_state, \
         writer, created_at, touched_at"
    };
}

/// What a stream persisted: the new state of its session.
#[derive(Debug, Clone)]
pub struct Persisted<'a> {
    pub parts: &'a str,
    pub persisted_bytes: i64,
    pub sha256_state: &'a str,
}

impl Database {
    /// Records a new resumable upload and, with the file's name, its
    /// journal entry, at once (an upload that will store nothing, being
    /// finished from the start, needs none).
    pub async fn session_create(
        &self,
        row: &SessionRow,
        journal: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let sql = concat!(
            "INSERT INTO upload_sessions (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        let journal_sql = "INSERT INTO upload_journal (id, owner, filename, started_at) \
                       VALUES ($1, $2, $3, $4)";
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            if let Some(filename) = journal {
                sqlx::query(journal_sql)
                    .bind(&row.id)
                    .bind(&row.owner)
                    .bind(filename)
                    .bind(row.created_at)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(sql)
                .bind(&row.id)
                .bind(&row.owner)
                .bind(&row.spec)
                .bind(&row.multipart)
                .bind(row.part_size)
                .bind(&row.parts)
                .bind(row.persisted_bytes)
                .bind(&row.sha256_state)
                .bind(&row.writer)
                .bind(row.created_at)
                .bind(row.touched_at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>, sqlx::Error> {
        let sql = concat!("SELECT ", columns!(), " FROM upload_sessions WHERE id = $1");
        on_pool!(self, |pool| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await
        })
    }

    /// Makes `writer` the session's one writer (an earlier stream's next
    /// write fails), if `persisted_bytes` is still what the session has
    /// persisted; whether it was.
    pub async fn session_claim(
        &self,
        id: &str,
        writer: &str,
        persisted_bytes: i64,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let sql = "UPDATE upload_sessions SET writer = $2, touched_at = $3 \
                   WHERE id = $1 AND persisted_bytes = $4";
        on_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(id)
                .bind(writer)
                .bind(now)
                .bind(persisted_bytes)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    /// Records parts Filestack acknowledged, if `writer` is still the
    /// session's writer and the persisted size only grows; whether it was.
    pub async fn session_persist(
        &self,
        id: &str,
        writer: &str,
        persisted: &Persisted<'_>,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let sql = "UPDATE upload_sessions SET parts = $3, persisted_bytes = $4, \
                   sha256_state = $5, touched_at = $6 \
                   WHERE id = $1 AND writer = $2 AND persisted_bytes < $4";
        on_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(id)
                .bind(writer)
                .bind(persisted.parts)
                .bind(persisted.persisted_bytes)
                .bind(persisted.sha256_state)
                .bind(now)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    /// Ends a session: its row, and its journal entry unless `complete` was
    /// sent (that entry is the reaper's). Whether the session existed.
    pub async fn session_remove(&self, id: &str) -> Result<bool, sqlx::Error> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let removed = sqlx::query("DELETE FROM upload_sessions WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM upload_journal WHERE id = $1 AND completing_at IS NULL")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(removed == 1)
        })
    }

    /// Sessions untouched since `before` (unix microseconds), oldest first.
    pub async fn sessions_idle_since(&self, before: i64) -> Result<Vec<String>, sqlx::Error> {
        let sql = "SELECT id FROM upload_sessions WHERE touched_at < $1 \
                   ORDER BY touched_at LIMIT 1000";
        on_pool!(self, |pool| {
            sqlx::query_scalar(sql).bind(before).fetch_all(pool).await
        })
    }
}
