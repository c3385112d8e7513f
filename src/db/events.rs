//! The `events` table: accepted webhook deliveries, and their effect on
//! `documents`, written in one transaction.
//!
//! Inserts are serialised (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a
//! transaction-level advisory lock) and each takes `MAX(id) + 1`, so an id
//! is only assigned once every smaller id is committed: a reader that sees
//! id N has already been able to see every id below N. Reading by id
//! ascending after a cursor therefore never skips a late commit.

use sqlx::postgres::PgListener;

use crate::db::{DOCUMENTS_CHANNEL, Database, Pool};

/// The PostgreSQL channel notified (with the new id) after each insert.
pub const EVENTS_CHANNEL: &str = "filegate_events";

/// The advisory lock key that serialises event inserts on PostgreSQL.
const EVENTS_LOCK: i64 = 0x6667_6576_656e_7473;

/// One row of `events`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub delivery_id: String,
    pub action: String,
    pub handle: Option<String>,
    pub document_id: Option<String>,
    pub owner: Option<String>,
    pub payload: String,
    /// Unix microseconds.
    pub received_at: i64,
}

/// A verified delivery, parsed, ready to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub delivery_id: String,
    pub action: String,
    pub handle: Option<String>,
    /// The owner named by the file's storage path (`user-uploads/<owner>/`),
    /// used when no document has the handle.
    pub path_owner: Option<String>,
    /// The upload journal entry named by the storage path of a file the
    /// gateway uploaded (`user-uploads/<owner>/<entry>/`).
    pub upload_entry: Option<String>,
    /// `fp.overwrite`: the new size and MIME type (the SHA-256 is unknown).
    pub size_bytes: Option<i64>,
    pub content_type: Option<String>,
    pub payload: String,
    /// Unix microseconds.
    pub received_at: i64,
}

/// What recording a delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiveOutcome {
    /// A new event with this id. `found_upload`: an `fp.upload` named the
    /// handle of a file whose upload had not learnt it (recorded in the
    /// upload journal, for the reaper).
    Stored { id: i64, found_upload: bool },
    /// The delivery id was already recorded; nothing changed.
    Duplicate,
}

/// The columns of `events`, in `EventRow` order.
macro_rules! columns {
    () => {
        "id, delivery_id, action, handle, document_id, owner, payload, received_at"
    };
}

/// The steps of [`Database::receive_event`] on an open, serialised
/// transaction `$tx`; evaluates to `Result<(ReceiveOutcome, changed
/// document id), sqlx::Error>`.
macro_rules! receive_in {
    ($tx:expr, $event:expr) => {
        async {
            let event: &NewEvent = $event;
            let seen: Option<i64> =
                sqlx::query_scalar("SELECT id FROM events WHERE delivery_id = $1")
                    .bind(&event.delivery_id)
                    .fetch_optional(&mut *$tx)
                    .await?;
            if seen.is_some() {
                return Ok::<_, sqlx::Error>((ReceiveOutcome::Duplicate, None));
            }
            let mut changed: Option<String> = None;
            let document: Option<(String, String)> = match &event.handle {
                Some(handle) => {
                    sqlx::query_as("SELECT id, owner FROM documents WHERE handle = $1")
                        .bind(handle)
                        .fetch_optional(&mut *$tx)
                        .await?
                }
                None => None,
            };
            let (document_id, owner) = match document {
                Some((id, owner)) => {
                    match event.action.as_str() {
                        "fp.delete" => {
                            sqlx::query("DELETE FROM documents WHERE id = $1")
                                .bind(&id)
                                .execute(&mut *$tx)
                                .await?;
                            changed = Some(id.clone());
                        }
                        "fp.overwrite" => {
                            sqlx::query(concat!(
                                "UPDATE documents SET size_bytes = COALESCE($2, size_bytes),",
                                " content_type = COALESCE($3, content_type), sha256 = NULL",
                                " WHERE id = $1"
                            ))
                            .bind(&id)
                            .bind(event.size_bytes)
                            .bind(&event.content_type)
                            .execute(&mut *$tx)
                            .await?;
                            changed = Some(id.clone());
                        }
                        _ => {}
                    }
                    (Some(id), Some(owner))
                }
                None if event.path_owner.is_some() => (None, event.path_owner.clone()),
                None => match &event.handle {
                    Some(handle) => {
                        let earlier: Option<(Option<String>, Option<String>)> =
                            sqlx::query_as(concat!(
                                "SELECT document_id, owner FROM events",
                                " WHERE handle = $1 AND owner IS NOT NULL",
                                " ORDER BY id DESC LIMIT 1"
                            ))
                            .bind(handle)
                            .fetch_optional(&mut *$tx)
                            .await?;
                        earlier.unwrap_or((None, None))
                    }
                    None => (None, None),
                },
            };
            let id: i64 = sqlx::query_scalar(concat!(
                "INSERT INTO events (",
                columns!(),
                ") VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM events),",
                " $1, $2, $3, $4, $5, $6, $7) RETURNING id"
            ))
            .bind(&event.delivery_id)
            .bind(&event.action)
            .bind(&event.handle)
            .bind(&document_id)
            .bind(&owner)
            .bind(&event.payload)
            .bind(event.received_at)
            .fetch_one(&mut *$tx)
            .await?;
            let mut found_upload = false;
            if let (Some(handle), Some(entry), Some(owner), "fp.upload") = (
                &event.handle,
                &event.upload_entry,
                &event.path_owner,
                event.action.as_str(),
            ) {
                found_upload = sqlx::query(concat!(
                    "UPDATE upload_journal SET handle = $1, completed_at = $2",
                    " WHERE id = $3 AND owner = $4 AND handle IS NULL",
                    " AND completing_at IS NOT NULL"
                ))
                .bind(handle)
                .bind(event.received_at)
                .bind(entry)
                .bind(owner)
                .execute(&mut *$tx)
                .await?
                .rows_affected()
                    > 0;
            }
            Ok::<_, sqlx::Error>((ReceiveOutcome::Stored { id, found_upload }, changed))
        }
    };
}

impl Database {
    /// Records a verified delivery and applies it to its document, in one
    /// transaction: `fp.delete` removes the document with the handle,
    /// `fp.overwrite` updates its size and type and forgets its SHA-256 (of
    /// bytes no longer stored; a Read would report them lost), and an
    /// `fp.upload` of a file
    /// stored by one of the gateway's uploads gives that upload's journal
    /// entry its handle (when the upload sent `complete` without learning it).
    ///
    /// The event's owner (who may watch it) is the owner of the document
    /// with the handle; else the owner named by the storage path; else the
    /// owner of the latest earlier event of the handle (so the `fp.delete`
    /// that follows the gateway's own Delete, which already removed the
    /// row, still reaches the owner, with the removed document's id); else
    /// nobody.
    ///
    /// A changed document leaves the cache once the transaction committed;
    /// on PostgreSQL the other replicas are notified at the commit.
    pub async fn receive_event(&self, event: &NewEvent) -> Result<ReceiveOutcome, sqlx::Error> {
        let (outcome, changed) = match self.pool() {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let received = receive_in!(tx, event).await?;
                tx.commit().await?;
                received
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(EVENTS_LOCK)
                    .execute(&mut *tx)
                    .await?;
                let (outcome, changed) = receive_in!(tx, event).await?;
                if let ReceiveOutcome::Stored { id, .. } = outcome {
                    notify(&mut tx, EVENTS_CHANNEL, &id.to_string()).await?;
                }
                if let Some(document) = &changed {
                    notify(&mut tx, DOCUMENTS_CHANNEL, document).await?;
                }
                tx.commit().await?;
                (outcome, changed)
            }
        };
        if let Some(document) = changed {
            self.documents.invalidate(&document);
        }
        Ok(outcome)
    }

    /// The owner's events after `after`, oldest first, at most `limit`.
    pub async fn events_after(
        &self,
        owner: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, sqlx::Error> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM events WHERE owner = $1 AND id > $2 ORDER BY id LIMIT $3"
        );
        crate::db::on_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(owner)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await
        })
    }

    /// The event recorded for a delivery id, if any.
    pub async fn event_by_delivery(
        &self,
        delivery_id: &str,
    ) -> Result<Option<EventRow>, sqlx::Error> {
        let sql = concat!("SELECT ", columns!(), " FROM events WHERE delivery_id = $1");
        crate::db::on_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(delivery_id)
                .fetch_optional(pool)
                .await
        })
    }

    /// Number of events (tests and checks).
    pub async fn count_events(&self) -> Result<i64, sqlx::Error> {
        crate::db::on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM events")
                .fetch_one(pool)
                .await
        })
    }

    /// On PostgreSQL, a listener of every replica's changes: new events
    /// and changed documents. `None` on SQLite, where every writer is in
    /// this process. The document cache, suspended while nobody listens,
    /// resumes (empty) once the listener is connected, and is suspended
    /// again when the listener fails or is dropped: keep one per process
    /// (the event relay's), and drop it before opening the next.
    pub async fn listener(&self) -> Result<Option<ChangeListener>, sqlx::Error> {
        match self.pool() {
            Pool::Sqlite(_) => Ok(None),
            Pool::Postgres(pool) => {
                let mut listener = PgListener::connect_with(pool).await?;
                listener
                    .listen_all([EVENTS_CHANNEL, DOCUMENTS_CHANNEL])
                    .await?;
                self.documents.resume();
                Ok(Some(ChangeListener {
                    listener,
                    db: self.clone(),
                }))
            }
        }
    }
}

/// Sends a notification on `channel`, delivered when `tx` commits.
async fn notify(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    channel: &str,
    payload: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What another replica (or this one) changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// A new event was recorded.
    Event,
    /// A document changed or went; it has left this process's cache.
    Document,
    /// The connection was lost: notifications may have been missed. The
    /// document cache is suspended; drop this listener and open a new one
    /// (which resumes it), and have event readers read again.
    Lost,
}

/// Notifications from every replica sharing the PostgreSQL database.
pub struct ChangeListener {
    listener: PgListener,
    db: Database,
}

impl ChangeListener {
    /// The next notification. A changed document is dropped from the cache
    /// before this returns.
    pub async fn next(&mut self) -> Result<Notification, sqlx::Error> {
        let received = self.listener.try_recv().await.inspect_err(|_| {
            self.db.documents.suspend();
        })?;
        match received {
            None => {
                self.db.documents.suspend();
                Ok(Notification::Lost)
            }
            Some(notification) if notification.channel() == DOCUMENTS_CHANNEL => {
                self.db.documents.invalidate(notification.payload());
                Ok(Notification::Document)
            }
            Some(_) => Ok(Notification::Event),
        }
    }
}

impl Drop for ChangeListener {
    fn drop(&mut self) {
        self.db.documents.suspend();
    }
}
