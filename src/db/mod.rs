//! The database: SQLite (a file, the default) or PostgreSQL, chosen by the
//! URL. The SQL in `migrations/` and in this module is portable between the
//! two (TEXT, BIGINT, `$n` placeholders, timestamps as unix microseconds), so
//! each query is written once and run on whichever pool is open.

mod documents;
mod events;
mod journal;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use documents::{DocumentRow, InsertOutcome, PageCursor};
pub use events::{EVENTS_CHANNEL, EventRow, NewEvent, ReceiveOutcome};
pub use journal::JournalRow;

/// Runs the same expression on whichever pool is open.
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::Database::Sqlite($pool) => $body,
            $crate::db::Database::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// A connection pool to the configured database.
#[derive(Clone, Debug)]
pub enum Database {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Database {
    /// Opens `url` (`sqlite://PATH` or `postgres://...`) and runs the
    /// migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Database> {
        let acquire = Duration::from_secs(5);
        let db = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(acquire)
                .connect(url)
                .await?;
            Database::Postgres(pool)
        } else {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5));
            // SQLite writes one at a time and each connection is a thread:
            // a few connections serve reads without thread churn.
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(acquire)
                .connect_with(options)
                .await?;
            Database::Sqlite(pool)
        };
        db.migrate().await?;
        Ok(db)
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
