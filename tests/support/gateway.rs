//! A real gateway on `127.0.0.1:0` in local mode (its embedded emulator on
//! port 0 too), with a fresh database per test: a SQLite file in a temp dir,
//! or, when `FILEGATE_TEST_POSTGRES_URL` is set, a new PostgreSQL database
//! created for the test on that server.

#![allow(dead_code)]

use std::time::Duration;

use clap::Parser;
use filegate::db::{Database, Pool};
use filegate::filestack::{FilestackClient, FilestackConfig};
use filegate::gateway::{Application, ServeArgs, Settings};
use filegate::pb::v1 as pb;
use filegate::pb::v1::file_gateway_service_client::FileGatewayServiceClient;
use filegate::secret::Secret;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::Value;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic_types::StatusExt;

pub const JWT_SECRET: &str = "gateway-tests-jwt-secret";
pub const MIB: usize = 1024 * 1024;

/// `filegate serve` with every listener (gRPC, HTTP, embedded emulator) on
/// a port of its own choosing.
pub const SERVE_ON_PORT_ZERO: [&str; 7] = [
    "serve",
    "--grpc-listen",
    "127.0.0.1:0",
    "--http-listen",
    "127.0.0.1:0",
    "--emulator-listen",
    "127.0.0.1:0",
];

/// The stable reason of a status's ErrorInfo (empty without one).
pub fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// Awaits `done` every 10 ms until it holds, for at most `limit`.
pub async fn poll_until<F, Fut>(limit: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let wait = async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(limit, wait)
        .await
        .unwrap_or_else(|_| panic!("{what} in time"));
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: ServeArgs,
}

/// A running gateway and what tests need to talk to it.
pub struct TestGateway {
    pub grpc_url: String,
    pub http_url: String,
    pub emulator_url: String,
    pub db: Database,
    db_url: String,
    pub dir: tempfile::TempDir,
    http: reqwest::Client,
    /// The PostgreSQL server and the database created for this test.
    postgres: Option<PostgresDatabase>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A fresh database URL: SQLite in `dir`, or a new PostgreSQL database
/// when `FILEGATE_TEST_POSTGRES_URL` is set (dropped when the gateway stops).
async fn database_url(dir: &std::path::Path) -> (String, Option<PostgresDatabase>) {
    match std::env::var("FILEGATE_TEST_POSTGRES_URL") {
        Ok(_) => {
            let database = PostgresDatabase::create().await;
            (database.url.clone(), Some(database))
        }
        Err(_) => (
            format!("sqlite://{}", dir.join("filegate.db").display()),
            None,
        ),
    }
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        Self::start_with(&[]).await
    }

    /// Starts with extra `filegate serve` flags.
    pub async fn start_with(extra: &[&str]) -> TestGateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let (db_url, postgres) = database_url(dir.path()).await;
        Self::launch(dir, db_url, postgres, extra).await
    }

    /// Starts on an existing database, which the caller drops afterwards
    /// (several gateways sharing one PostgreSQL database).
    pub async fn start_on(database_url: &str, extra: &[&str]) -> TestGateway {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::launch(dir, database_url.to_owned(), None, extra).await
    }

    async fn launch(
        dir: tempfile::TempDir,
        db_url: String,
        postgres: Option<PostgresDatabase>,
        extra: &[&str],
    ) -> TestGateway {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,filegate=info".into()),
            )
            .try_init();
        let data_dir = dir.path().to_str().expect("utf-8 temp dir").to_owned();
        let mut argv = SERVE_ON_PORT_ZERO.to_vec();
        argv.extend_from_slice(&[
            "--data-dir",
            &data_dir,
            "--database-url",
            &db_url,
            "--jwt-secret",
            JWT_SECRET,
            "--part-size",
            "5242880",
        ]);
        argv.extend_from_slice(extra);
        let args = Cli::try_parse_from(argv).expect("valid flags").args;
        let settings = Settings::resolve(args).expect("settings");
        let app = Application::build(settings).await.expect("gateway starts");
        let grpc_url = format!("http://{}", app.grpc_addr());
        let http_url = format!("http://{}", app.http_addr());
        let emulator_url = app.emulator_url().expect("local mode").to_owned();
        let db = app.database().clone();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stop.await;
        }));
        let gateway = TestGateway {
            grpc_url,
            http_url,
            emulator_url,
            db,
            db_url,
            dir,
            http: reqwest::Client::new(),
            postgres,
            shutdown: Some(shutdown),
            task: Some(task),
        };
        gateway.wait_for_cache_live().await;
        gateway
    }

    /// Stops this gateway and starts a new one on the same data dir and
    /// database, with `extra` flags.
    pub async fn restart(mut self, extra: &[&str]) -> TestGateway {
        self.begin_shutdown();
        if let Some(task) = self.task.take() {
            task.await
                .expect("gateway task")
                .expect("gateway exits cleanly");
        }
        self.db.close().await;
        let dir = tempfile::TempDir::new_in(self.dir.path()).expect("placeholder dir");
        let kept = std::mem::replace(&mut self.dir, dir);
        let postgres = self.postgres.take();
        Self::launch(kept, self.db_url.clone(), postgres, extra).await
    }

    /// The values of the `/metrics` samples named in `names`, in order.
    pub async fn metrics<const N: usize>(&self, names: [&str; N]) -> [u64; N] {
        let text = self
            .http
            .get(format!("{}/metrics", self.http_url))
            .send()
            .await
            .expect("metrics reachable")
            .text()
            .await
            .expect("metrics text");
        names.map(|name| {
            text.lines()
                .find_map(|line| {
                    let value = line.strip_prefix(name)?.strip_prefix(' ')?;
                    Some(value.trim().parse::<u64>().expect("a number"))
                })
                .unwrap_or_else(|| panic!("metric {name} present"))
        })
    }

    /// `(uploads in progress, upload buffer bytes reserved)` from `/metrics`.
    pub async fn upload_gauges(&self) -> (u64, u64) {
        let [active, reserved] = self
            .metrics([
                "filegate_uploads_active",
                "filegate_upload_buffer_reserved_bytes",
            ])
            .await;
        (active, reserved)
    }

    /// Waits (bounded) until the document cache serves rows: on PostgreSQL,
    /// once the gateway listens for other replicas' changes.
    pub async fn wait_for_cache_live(&self) {
        poll_until(
            Duration::from_secs(20),
            "the document cache went live",
            || async { self.metrics(["filegate_document_cache_live"]).await == [1] },
        )
        .await;
    }

    /// GetDocument as `sub`.
    pub async fn get_document(&self, sub: &str, id: &str) -> Result<pb::Document, tonic::Status> {
        let request = pb::GetDocumentRequest {
            document_id: id.to_owned(),
        };
        let response = self
            .client()
            .await
            .get_document(self.request(sub, request))
            .await?;
        Ok(response.into_inner().document.expect("document"))
    }

    /// Reads the document twice as `sub`, so the second read comes from the
    /// cache, and checks that it did: a change must then reach past the cache.
    pub async fn read_until_cached(&self, sub: &str, id: &str) -> pb::Document {
        self.get_document(sub, id).await.expect("get");
        let (hits, _) = self.cache_counts().await;
        let document = self.get_document(sub, id).await.expect("get");
        let (hits_after, _) = self.cache_counts().await;
        assert!(hits_after > hits, "the second read was a cache hit");
        document
    }

    /// `(hits, misses)` of the document cache, from `/metrics`.
    pub async fn cache_counts(&self) -> (u64, u64) {
        let [hits, misses] = self
            .metrics([
                "filegate_document_cache_hits_total",
                "filegate_document_cache_misses_total",
            ])
            .await;
        (hits, misses)
    }

    /// Waits (bounded) until the gateway reports `active` uploads in progress.
    pub async fn wait_for_active_uploads(&self, active: u64) {
        poll_until(
            Duration::from_secs(20),
            "uploads in progress reached",
            || async { self.upload_gauges().await.0 == active },
        )
        .await;
    }

    /// Runs `sqlite` or `postgres` SQL on the test database.
    pub async fn execute(&self, sqlite: &str, postgres: &str) {
        match self.db.pool() {
            Pool::Sqlite(pool) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sqlite.to_owned()))
                    .execute(pool)
                    .await
                    .expect("SQL runs");
            }
            Pool::Postgres(pool) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(postgres.to_owned()))
                    .execute(pool)
                    .await
                    .expect("SQL runs");
            }
        }
    }

    pub async fn journal_entries(&self) -> i64 {
        self.db.count_journal().await.expect("count")
    }

    pub async fn client(&self) -> FileGatewayServiceClient<Channel> {
        FileGatewayServiceClient::connect(self.grpc_url.clone())
            .await
            .expect("gRPC connects")
            .max_decoding_message_size(8 * MIB)
            .max_encoding_message_size(8 * MIB)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.grpc_url.clone())
            .expect("url")
            .connect()
            .await
            .expect("connects")
    }

    /// A token for `sub`, signed with the gateway's secret.
    pub fn token(&self, sub: &str) -> String {
        filegate::gateway::auth::mint_hs256(&Secret::new(JWT_SECRET), sub, Duration::from_secs(600))
            .expect("token")
    }

    /// `message` with a bearer token for `sub`.
    pub fn request<T>(&self, sub: &str, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let value = format!("Bearer {}", self.token(sub))
            .parse()
            .expect("header value");
        request.metadata_mut().insert("authorization", value);
        request
    }

    /// The embedded emulator's app secret (local mode keeps it in the data dir).
    pub fn app_secret(&self) -> Secret {
        let raw = std::fs::read_to_string(self.dir.path().join("emulator-app-secret"))
            .expect("secret file");
        Secret::new(raw.trim())
    }

    /// A Filestack client pointed at the embedded emulator.
    pub fn filestack(&self) -> FilestackClient {
        let mut config =
            FilestackConfig::emulator(&self.emulator_url, "local-api-key", self.app_secret());
        config.part_size = 5 * MIB;
        FilestackClient::new(config).expect("client")
    }

    /// Arms a fault in the emulator (`POST /_emulator/faults`).
    pub async fn fault(&self, spec: Value) {
        let response = self
            .http
            .post(format!("{}/_emulator/faults", self.emulator_url))
            .json(&spec)
            .send()
            .await
            .expect("emulator reachable");
        assert!(response.status().is_success(), "fault accepted");
    }

    pub async fn clear_faults(&self) {
        self.http
            .delete(format!("{}/_emulator/faults", self.emulator_url))
            .send()
            .await
            .expect("emulator reachable");
    }

    /// Files stored in the emulator.
    pub async fn stored_files(&self) -> u64 {
        let stats: Value = self
            .http
            .get(format!("{}/_emulator/stats", self.emulator_url))
            .send()
            .await
            .expect("emulator reachable")
            .json()
            .await
            .expect("stats JSON");
        stats["stored_files"].as_u64().expect("stored_files")
    }

    pub async fn documents(&self) -> i64 {
        self.db.count_documents().await.expect("count")
    }

    /// The webhook secret local mode generated in the data dir.
    pub fn webhook_secret(&self) -> Secret {
        let raw = std::fs::read_to_string(self.dir.path().join("webhook-secret"))
            .expect("webhook secret file");
        Secret::new(raw.trim())
    }

    /// POSTs `body` to `/webhooks/filestack` with the given `FS-Timestamp`
    /// and `FS-Signature` headers (each left out when `None`); the status.
    pub async fn post_webhook(
        &self,
        body: &[u8],
        timestamp: Option<&str>,
        signature: Option<&str>,
    ) -> u16 {
        let mut request = self
            .http
            .post(format!("{}/webhooks/filestack", self.http_url))
            .header("Content-Type", "application/json")
            .body(body.to_vec());
        if let Some(timestamp) = timestamp {
            request = request.header("FS-Timestamp", timestamp);
        }
        if let Some(signature) = signature {
            request = request.header("FS-Signature", signature);
        }
        request
            .send()
            .await
            .expect("webhook POST")
            .status()
            .as_u16()
    }

    /// POSTs `body` signed now with the local webhook secret; the status.
    pub async fn deliver(&self, body: &str) -> u16 {
        let timestamp = unix_now().to_string();
        let signature =
            filegate::filestack::webhook::sign(&self.webhook_secret(), &timestamp, body.as_bytes());
        self.post_webhook(body.as_bytes(), Some(&timestamp), Some(&signature))
            .await
    }

    pub async fn events(&self) -> i64 {
        self.db.count_events().await.expect("count events")
    }

    /// GET a URL; status and body.
    pub async fn get(&self, url: &str) -> (u16, Vec<u8>) {
        let response = self.http.get(url).send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.bytes().await.expect("body").to_vec())
    }

    /// Sends the shutdown signal without waiting (the gateway drains).
    pub fn begin_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Stops the gateway and waits for it to exit cleanly.
    pub async fn stop(mut self) {
        self.begin_shutdown();
        if let Some(task) = self.task.take() {
            task.await
                .expect("gateway task")
                .expect("gateway exits cleanly");
        }
        self.db.close().await;
        if let Some(database) = self.postgres.take() {
            database.drop_database().await;
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// A fresh database on the PostgreSQL server at `FILEGATE_TEST_POSTGRES_URL`
/// (default `postgres://postgres@127.0.0.1:5432/test`), for tests that need
/// PostgreSQL even when the suite runs on SQLite.
pub struct PostgresDatabase {
    pub url: String,
    server: String,
    name: String,
}

impl PostgresDatabase {
    pub async fn create() -> PostgresDatabase {
        let server = std::env::var("FILEGATE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!(
            "fg_{}",
            Alphanumeric
                .sample_string(&mut rand::rng(), 16)
                .to_lowercase()
        );
        let admin = sqlx::PgPool::connect(&server)
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
            server,
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

/// Deterministic test bytes.
pub fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// A PNG of `width` x `height`.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encode PNG");
    out.into_inner()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
