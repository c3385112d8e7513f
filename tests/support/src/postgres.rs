//! Databases on a PostgreSQL server: one per test, created on start and
//! dropped at the end.

use rand::distr::{Alphanumeric, SampleString};

/// The PostgreSQL server tests use when set: every gateway test then runs on
/// PostgreSQL.
pub const POSTGRES_URL_VAR: &str = "FILEGATE_TEST_POSTGRES_URL";
/// Where tests that always need PostgreSQL look for it otherwise.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server `FILEGATE_TEST_POSTGRES_URL` names, when set.
pub fn required_server() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR).ok()
}

/// The server of the tests that always need PostgreSQL.
pub fn server() -> String {
    required_server().unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
}

/// A database of its own on a PostgreSQL server.
pub struct PostgresDatabase {
    pub url: String,
    server: String,
    name: String,
}

impl PostgresDatabase {
    /// Creates a database with a random name on `server` (a database URL).
    pub async fn create(server: &str) -> PostgresDatabase {
        let name = format!(
            "fg_{}",
            Alphanumeric
                .sample_string(&mut rand::rng(), 16)
                .to_lowercase()
        );
        let admin = sqlx::PgPool::connect(server)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {server} is needed by this test: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
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
        let admin = sqlx::PgPool::connect(&self.server)
            .await
            .expect("postgres reachable");
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&admin)
            .await
            .expect("drop the test database");
        admin.close().await;
    }
}
