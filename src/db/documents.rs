//! The `documents` table.

use crate::db::{Database, Pool, on_pool};

/// The PostgreSQL channel notified (with the document id) when a document
/// row is deleted or changed, so every replica drops it from its cache.
pub const DOCUMENTS_CHANNEL: &str = "filegate_documents";

/// One row of `documents`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DocumentRow {
    pub id: String,
    pub owner: String,
    pub handle: String,
    pub url: String,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: Option<String>,
    pub request_id: Option<String>,
    pub origin: String,
    /// Unix microseconds.
    pub created_at: i64,
}

/// What an insert did.
#[derive(Debug)]
pub enum InsertOutcome {
    Inserted,
    /// The owner already has a document with this request id.
    DuplicateRequest(Box<DocumentRow>),
    /// Another document already has this handle.
    HandleTaken,
}

/// Where a page of `list` starts: after this (created_at, id). Callers
/// see it only sealed (`gateway::page_token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor {
    pub created_at: i64,
    pub id: String,
}

impl PageCursor {
    pub fn after(row: &DocumentRow) -> Self {
        Self {
            created_at: row.created_at,
            id: row.id.clone(),
        }
    }
}

/// The columns of `documents`, in `DocumentRow` order.
macro_rules! columns {
    () => {
        "id, owner, handle, url, filename, content_type, size_bytes, sha256, request_id, origin, created_at"
    };
}

impl Database {
    /// Inserts `row`; a unique violation is reported, not raised. With a
    /// journal id, the upload's journal entry goes in the same transaction,
    /// so a stored file always has either its row or its journal entry.
    /// The new row goes into the cache: the first SignedUrl after an
    /// upload does not need the database.
    pub async fn insert_document(
        &self,
        row: &DocumentRow,
        journal: Option<&str>,
    ) -> Result<InsertOutcome, sqlx::Error> {
        let ticket = self.documents.ticket();
        let sql = concat!(
            "INSERT INTO documents (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        let result = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(sql)
                .bind(&row.id)
                .bind(&row.owner)
                .bind(&row.handle)
                .bind(&row.url)
                .bind(&row.filename)
                .bind(&row.content_type)
                .bind(row.size_bytes)
                .bind(&row.sha256)
                .bind(&row.request_id)
                .bind(&row.origin)
                .bind(row.created_at)
                .execute(&mut *tx)
                .await?;
            if let Some(journal) = journal {
                sqlx::query("DELETE FROM upload_journal WHERE id = $1")
                    .bind(journal)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        });
        match result {
            Ok(_) => {
                self.documents.store(ticket, row);
                Ok(InsertOutcome::Inserted)
            }
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                if let Some(request_id) = &row.request_id
                    && let Some(existing) = self.document_by_request(&row.owner, request_id).await?
                {
                    return Ok(InsertOutcome::DuplicateRequest(Box::new(existing)));
                }
                Ok(InsertOutcome::HandleTaken)
            }
            Err(error) => Err(error),
        }
    }

    /// The document `id`, from the cache when it holds it (see
    /// [`DocumentCache`](crate::db::DocumentCache)).
    pub async fn document(&self, id: &str) -> Result<Option<DocumentRow>, sqlx::Error> {
        if let Some(row) = self.documents.get(id) {
            return Ok(Some(row));
        }
        let ticket = self.documents.ticket();
        let sql = concat!("SELECT ", columns!(), " FROM documents WHERE id = $1");
        let row: Option<DocumentRow> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        if let Some(row) = &row {
            self.documents.store(ticket, row);
        }
        Ok(row)
    }

    pub async fn document_by_handle(
        &self,
        handle: &str,
    ) -> Result<Option<DocumentRow>, sqlx::Error> {
        let sql = concat!("SELECT ", columns!(), " FROM documents WHERE handle = $1");
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(handle)
            .fetch_optional(pool)
            .await)
    }

    pub async fn document_by_request(
        &self,
        owner: &str,
        request_id: &str,
    ) -> Result<Option<DocumentRow>, sqlx::Error> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM documents WHERE owner = $1 AND request_id = $2"
        );
        on_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(owner)
                .bind(request_id)
                .fetch_optional(pool)
                .await
        })
    }

    /// The owner's documents, newest first, `limit` of them after `cursor`.
    pub async fn list_documents(
        &self,
        owner: &str,
        limit: i64,
        cursor: Option<&PageCursor>,
    ) -> Result<Vec<DocumentRow>, sqlx::Error> {
        match cursor {
            None => {
                let sql = concat!(
                    "SELECT ",
                    columns!(),
                    " FROM documents WHERE owner = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
                );
                on_pool!(self, |pool| {
                    sqlx::query_as(sql)
                        .bind(owner)
                        .bind(limit)
                        .fetch_all(pool)
                        .await
                })
            }
            Some(cursor) => {
                let sql = concat!(
                    "SELECT ",
                    columns!(),
                    " FROM documents WHERE owner = $1",
                    " AND (created_at < $2 OR (created_at = $2 AND id < $3))",
                    " ORDER BY created_at DESC, id DESC LIMIT $4"
                );
                on_pool!(self, |pool| {
                    sqlx::query_as(sql)
                        .bind(owner)
                        .bind(cursor.created_at)
                        .bind(&cursor.id)
                        .bind(limit)
                        .fetch_all(pool)
                        .await
                })
            }
        }
    }

    /// Deletes a document; whether a row went. On PostgreSQL the other
    /// replicas are notified in the same statement, so they drop the row
    /// from their caches.
    pub async fn delete_document(&self, id: &str) -> Result<bool, sqlx::Error> {
        let deleted = match self.pool() {
            Pool::Sqlite(pool) => sqlx::query("DELETE FROM documents WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected(),
            Pool::Postgres(pool) => sqlx::query(concat!(
                "WITH gone AS (DELETE FROM documents WHERE id = $1 RETURNING id)",
                " SELECT pg_notify($2, id) FROM gone"
            ))
            .bind(id)
            .bind(DOCUMENTS_CHANNEL)
            .execute(pool)
            .await?
            .rows_affected(),
        };
        self.documents.invalidate(id);
        Ok(deleted > 0)
    }

    /// Number of documents (tests and the hardening checks).
    pub async fn count_documents(&self) -> Result<i64, sqlx::Error> {
        on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM documents")
                .fetch_one(pool)
                .await
        })
    }
}
