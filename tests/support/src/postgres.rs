//! Databases on a PostgreSQL server: one per test, created on start and
//! dropped at the end; and whether a test that needs PostgreSQL runs.

use std::io::Write;
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use sqlx::{Connection, PgConnection};

/// The PostgreSQL server tests must use when set: every gateway test then
/// runs on PostgreSQL, and so do the tests that always need it.
pub const POSTGRES_URL_VAR: &str = "FILEGATE_TEST_POSTGRES_URL";
/// Where tests that always need PostgreSQL look for it otherwise.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// How long the default address has to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The server `FILEGATE_TEST_POSTGRES_URL` names, when set.
pub fn required_server() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR).ok()
}

/// Whether a server answers at `url` within [`PROBE_TIMEOUT`]. One that
/// answers and refuses (a password, a missing database) counts: the test
/// then fails and says why.
async fn answers(url: &str) -> bool {
    match tokio::time::timeout(PROBE_TIMEOUT, PgConnection::connect(url)).await {
        Err(_) | Ok(Err(sqlx::Error::Io(_))) => false,
        Ok(Err(_)) => true,
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            true
        }
    }
}

/// Says on the test's stderr, past libtest's capture of `eprintln!`, that
/// the running test was skipped.
fn say_skipped(why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a PostgreSQL test");
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// A database of its own on a PostgreSQL server.
pub struct PostgresDatabase {
    pub url: String,
    server: String,
    name: String,
}

impl PostgresDatabase {
    /// A database for a test that always needs PostgreSQL, or `None` when
    /// the test is to be skipped (it should return at once).
    ///
    /// With `FILEGATE_TEST_POSTGRES_URL` set, the test must run: on that
    /// server, and a server that does not answer fails it. Without, the test
    /// runs on the server at [`DEFAULT_POSTGRES_URL`] if one answers there,
    /// and is skipped, saying so, if none does.
    pub async fn for_test() -> Option<PostgresDatabase> {
        if let Some(server) = required_server() {
            return Some(Self::create(&server).await);
        }
        if answers(DEFAULT_POSTGRES_URL).await {
            return Some(Self::create(DEFAULT_POSTGRES_URL).await);
        }
        say_skipped(&format!(
            "no PostgreSQL at {DEFAULT_POSTGRES_URL} (set {POSTGRES_URL_VAR} to require it)"
        ));
        None
    }

    /// Creates a database with a random name on `server` (a database URL).
    pub async fn create(server: &str) -> PostgresDatabase {
        let name = format!(
            "fg_{}",
            Alphanumeric
                .sample_string(&mut rand::rng(), 16)
                .to_lowercase()
        );
        let mut admin = PgConnection::connect(server)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {server} is needed by this test: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create database");
        let _ = admin.close().await;
        let (base, _) = server
            .rsplit_once('/')
            .expect("a database URL ends with /NAME");
        PostgresDatabase {
            url: format!("{base}/{name}"),
            server: server.to_owned(),
            name,
        }
    }

    /// The server's own database URL (for statements about this database).
    pub fn server_url(&self) -> &str {
        &self.server
    }

    /// Drops the database (after every gateway on it stopped).
    pub async fn drop_database(self) {
        let mut admin = PgConnection::connect(&self.server)
            .await
            .expect("postgres reachable");
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&mut admin)
            .await
            .expect("drop the test database");
        let _ = admin.close().await;
    }
}
