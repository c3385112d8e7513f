//! The database: SQLite (a file, the default) or PostgreSQL, chosen by the
//! URL. The SQL in `migrations/` and in this module is portable between the
//! two (TEXT, BIGINT, `$n` placeholders, timestamps as unix microseconds), so
//! each query is written once and run on whichever pool is open.

mod cache;
mod documents;
mod events;
mod journal;
mod sessions;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use cache::{CacheStats, DocumentCache};
pub use documents::{DOCUMENTS_CHANNEL, DocumentRow, InsertOutcome, PageCursor};
pub use events::{
    ChangeListener, EVENTS_CHANNEL, EventRow, NewEvent, Notification, ReceiveOutcome,
};
pub use journal::JournalRow;
pub use sessions::{Persisted, SessionRow};

/// Runs the same expression on whichever pool is open. The body is an
/// async block of its own: a `?` inside it ends the body with that error,
/// which the caller then sees and classifies (a unique violation is an
/// answer, not an outage), rather than returning from the caller at once.
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db.pool() {
            $crate::db::Pool::Sqlite($pool) => async { $body }.await,
            $crate::db::Pool::Postgres($pool) => async { $body }.await,
        }
    };
}
pub(crate) use on_pool;

/// The configured database: its connection pool and the cache of
/// document rows in front of it. Clones share both.
#[derive(Clone, Debug)]
pub struct Database {
    pool: Pool,
    documents: Arc<DocumentCache>,
}

/// How the connection pool is used: connections open, and idle among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

impl Database {
    /// The pool's connections now.
    pub fn pool_stats(&self) -> PoolStats {
        let (open, idle, max) = match &self.pool {
            Pool::Sqlite(pool) => (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            ),
            Pool::Postgres(pool) => (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            ),
        };
        PoolStats {
            open,
            idle: u32::try_from(idle).unwrap_or(u32::MAX),
            max,
        }
    }
}

/// A connection pool to SQLite or PostgreSQL.
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// How the document row cache is sized (see [`DocumentCache`]).
#[derive(Debug, Clone, Copy)]
pub struct CacheOptions {
    /// Rows kept; 0 disables the cache.
    pub entries: usize,
    /// Longest time a row is served from memory.
    pub ttl: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            entries: cache::DEFAULT_ENTRIES,
            ttl: cache::DEFAULT_TTL,
        }
    }
}

/// Whether a database error is an outage, worth retrying later (the
/// server unreachable, the pool exhausted, a lock or a serialisation
/// conflict, a full disk), rather than an answer (a constraint the caller's
/// request broke, which the query's caller handles) or a bug (SQL the
/// database refuses, a column that does not decode).
pub fn is_outage(error: &sqlx::Error) -> bool {
    use sqlx::error::ErrorKind;
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(error) if error.kind() != ErrorKind::Other => false,
        sqlx::Error::Database(error) => {
            if let Some(error) = error.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                let code = error.code();
                // Connection exceptions, transaction rollbacks (serialisation,
                // deadlock), insufficient resources, operator intervention
                // (shutdown), system errors, lock not available.
                ["08", "40", "53", "57", "58"].contains(&&code[..code.len().min(2)])
                    || code == "55P03"
            } else if error
                .try_downcast_ref::<sqlx::sqlite::SqliteError>()
                .is_some()
            {
                // The primary result code: NOMEM, BUSY, LOCKED, READONLY,
                // IOERR, FULL, CANTOPEN, PROTOCOL.
                let primary = error
                    .code()
                    .and_then(|code| code.parse::<i32>().ok())
                    .map(|code| code & 0xff);
                matches!(primary, Some(5 | 6 | 7 | 8 | 10 | 13 | 14 | 15))
            } else {
                true
            }
        }
        _ => false,
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Database {
    /// Opens `url` (`sqlite://PATH` or `postgres://...`) with the default
    /// cache and runs the migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Database> {
        Self::connect_with(url, CacheOptions::default()).await
    }

    /// Opens `url` with a document cache sized by `cache` and runs the
    /// migrations.
    pub async fn connect_with(url: &str, cache: CacheOptions) -> anyhow::Result<Database> {
        let acquire = Duration::from_secs(5);
        let pool = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(acquire)
                .connect(url)
                .await?;
            Pool::Postgres(pool)
        } else {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5));
            // SQLite writes one at a time and each connection is a thread:
            // a few connections serve reads without thread churn. A local
            // file needs no ping before each use (each is a round trip to
            // the connection's thread).
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(acquire)
                .test_before_acquire(false)
                .connect_with(options)
                .await?;
            Pool::Sqlite(pool)
        };
        let documents = DocumentCache::new(cache.entries, cache.ttl);
        if let Pool::Postgres(_) = pool {
            // Until this process listens for the other replicas' changes.
            documents.suspend();
        }
        let db = Database {
            pool,
            documents: Arc::new(documents),
        };
        db.migrate().await?;
        Ok(db)
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Hits, misses and size of the document cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.documents.stats()
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        on_pool!(self, |pool| MIGRATOR.run(pool).await)?;
        Ok(())
    }

    /// Whether a query gets through (readiness).
    pub async fn ping(&self) -> bool {
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))
        .is_ok()
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    use super::is_outage;

    #[tokio::test]
    async fn constraint_violations_and_bad_sql_are_not_outages_but_locks_and_closed_pools_are() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .busy_timeout(std::time::Duration::ZERO);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (id TEXT PRIMARY KEY, u TEXT UNIQUE)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES ('a', 'x')")
            .execute(&pool)
            .await
            .unwrap();
        let unique = sqlx::query("INSERT INTO t VALUES ('b', 'x')")
            .execute(&pool)
            .await
            .unwrap_err();
        assert!(!is_outage(&unique), "{unique}");
        let syntax = sqlx::query("SELEKT 1").execute(&pool).await.unwrap_err();
        assert!(!is_outage(&syntax), "{syntax}");
        // Another connection holds the write lock: BUSY at once.
        let mut holder = pool.acquire().await.unwrap();
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut *holder)
            .await
            .unwrap();
        let busy = sqlx::query("INSERT INTO t VALUES ('c', 'y')")
            .execute(&pool)
            .await
            .unwrap_err();
        assert!(is_outage(&busy), "{busy}");
        sqlx::query("ROLLBACK").execute(&mut *holder).await.unwrap();
        drop(holder);
        pool.close().await;
        let closed = sqlx::query("SELECT 1").execute(&pool).await.unwrap_err();
        assert!(is_outage(&closed), "{closed}");
    }
}
