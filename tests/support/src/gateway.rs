//! A real gateway on `127.0.0.1:0` in local mode (its embedded emulator on
//! port 0 too), with a fresh database per test: a SQLite file in a temp dir,
//! or, when `FILEGATE_TEST_POSTGRES_URL` is set, a new PostgreSQL database
//! created for the test on that server.

use std::time::Duration;

use clap::Parser;
use filegate::db::{Database, Pool};
use filegate::gateway::{Application, ServeArgs, Settings};
use filegate::pb::v1 as pb;
use tokio::sync::oneshot;
use tonic::transport::Channel;

use crate::auth::token;
use crate::emulator::TestEmulator;
use crate::postgres::{PostgresDatabase, required_server};
use crate::process::SERVE_ON_PORT_ZERO;
use crate::rpc::Rpc;
use crate::{poll_until, unix_now};

pub const JWT_SECRET: &str = "gateway-tests-jwt-secret";

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: ServeArgs,
}

/// A running gateway and what tests need to talk to it. The typed RPC
/// helpers come with [`Rpc`].
pub struct TestGateway {
    pub grpc_url: String,
    pub http_url: String,
    /// The embedded emulator (Filestack for this gateway).
    pub emulator: TestEmulator,
    pub db: Database,
    db_url: String,
    pub dir: tempfile::TempDir,
    http: reqwest::Client,
    /// The PostgreSQL database created for this test.
    postgres: Option<PostgresDatabase>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A fresh database URL: SQLite in `dir`, or a new PostgreSQL database
/// when `FILEGATE_TEST_POSTGRES_URL` is set (dropped when the gateway stops).
async fn database_url(dir: &std::path::Path) -> (String, Option<PostgresDatabase>) {
    match required_server() {
        Some(server) => {
            let database = PostgresDatabase::create(&server).await;
            (database.url.clone(), Some(database))
        }
        None => (
            format!("sqlite://{}", dir.join("filegate.db").display()),
            None,
        ),
    }
}

impl Rpc for TestGateway {
    fn grpc_url(&self) -> String {
        self.grpc_url.clone()
    }

    /// A token for `sub`, signed with the gateway's secret.
    fn token(&self, sub: &str) -> String {
        token(JWT_SECRET, sub)
    }
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        Self::start_with(&[]).await
    }

    /// Starts with extra `filegate serve` flags. Tokens are HS256 with
    /// [`JWT_SECRET`] unless they name another source of keys
    /// (`--jwt-jwks-url`, `--jwt-public-key`).
    pub async fn start_with(extra: &[&str]) -> TestGateway {
        Self::try_start_with(extra).await.expect("gateway starts")
    }

    /// [`Self::start_with`], or why the gateway did not start.
    pub async fn try_start_with(extra: &[&str]) -> anyhow::Result<TestGateway> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (db_url, postgres) = database_url(dir.path()).await;
        Self::try_launch(dir, db_url, postgres, extra).await
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
        Self::try_launch(dir, db_url, postgres, extra)
            .await
            .expect("gateway starts")
    }

    async fn try_launch(
        dir: tempfile::TempDir,
        db_url: String,
        postgres: Option<PostgresDatabase>,
        extra: &[&str],
    ) -> anyhow::Result<TestGateway> {
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
            "--part-size",
            "5242880",
        ]);
        let other_keys = extra
            .iter()
            .any(|flag| ["--jwt-jwks-url", "--jwt-public-key"].contains(flag));
        if !other_keys {
            argv.extend_from_slice(&["--jwt-secret", JWT_SECRET]);
        }
        argv.extend_from_slice(extra);
        let args = Cli::try_parse_from(argv).expect("valid flags").args;
        let settings = Settings::resolve(args)?;
        let app = Application::build(settings).await?;
        let grpc_url = format!("http://{}", app.grpc_addr());
        // With `--http-tls true` the test talks TLS to the HTTP listener
        // itself (the harness's client does not trust the test's CA).
        let http_tls = extra.windows(2).any(|flag| flag == ["--http-tls", "true"]);
        let http_scheme = if http_tls { "https" } else { "http" };
        let http_url = format!("{http_scheme}://{}", app.http_addr());
        let emulator_url = app.emulator_url().expect("local mode");
        let emulator = TestEmulator::local(emulator_url, dir.path());
        let db = app.database().clone();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stop.await;
        }));
        let gateway = TestGateway {
            grpc_url,
            http_url,
            emulator,
            db,
            db_url,
            dir,
            http: reqwest::Client::new(),
            postgres,
            shutdown: Some(shutdown),
            task: Some(task),
        };
        if !http_tls {
            gateway.wait_for_cache_live().await;
        }
        Ok(gateway)
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
        scrape_metrics(&self.http, &self.http_url, names).await
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

    /// The bytes of `sub`'s document `id`, through a signed URL.
    pub async fn download(&self, sub: &str, id: &str) -> Vec<u8> {
        let url = self.signed_url(sub, id, None).await.expect("signed url");
        self.emulator.get_ok(&url.url).await
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

    /// Rows in `documents`.
    pub async fn documents(&self) -> i64 {
        self.db.count_documents().await.expect("count")
    }

    /// Rows in `upload_journal`.
    pub async fn journal_entries(&self) -> i64 {
        self.db.count_journal().await.expect("count")
    }

    /// The rows of `upload_journal`, oldest first.
    pub async fn journal(&self) -> Vec<filegate::db::JournalRow> {
        self.db.journal_entries().await.expect("journal")
    }

    /// The handles of files the embedded emulator holds that no document
    /// names: what an upload must never leave behind.
    pub async fn orphans(&self) -> Vec<String> {
        let mut orphans = Vec::new();
        for (handle, _key) in self.emulator.files().await {
            let row = self.db.document_by_handle(&handle).await.expect("query");
            if row.is_none() {
                orphans.push(handle);
            }
        }
        orphans
    }

    /// Waits (bounded) until the emulator holds no file without a document
    /// and the journal is empty.
    pub async fn wait_until_settled(&self) {
        poll_until(
            Duration::from_secs(30),
            "every stored file has a document and the journal is empty",
            || async { self.orphans().await.is_empty() && self.journal_entries().await == 0 },
        )
        .await;
    }

    /// Rows in `events`.
    pub async fn events(&self) -> i64 {
        self.db.count_events().await.expect("count events")
    }

    /// Files stored in the embedded emulator.
    pub async fn stored_files(&self) -> u64 {
        self.emulator.stats().await.stored_files()
    }

    /// A POST to `method` (`filegate.v1.FileGatewayService/X`) over plain
    /// HTTP/2 with `te: trailers` and nothing else: a request written by
    /// hand, whose answer is the server's own.
    pub fn raw_post(&self, method: &str) -> reqwest::RequestBuilder {
        reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .expect("an HTTP/2 client")
            .post(format!("{}/{method}", self.grpc_url))
            .header("te", "trailers")
    }

    /// [`Self::raw_post`] as a gRPC call (`content-type: application/grpc`),
    /// with `sub`'s token if given; the caller adds the body (framed by
    /// hand) and any other header.
    pub fn raw_grpc(&self, method: &str, sub: Option<&str>) -> reqwest::RequestBuilder {
        let request = self
            .raw_post(method)
            .header("content-type", "application/grpc");
        match sub {
            Some(sub) => request.header("authorization", format!("Bearer {}", self.token(sub))),
            None => request,
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.grpc_url.clone())
            .expect("url")
            .connect()
            .await
            .expect("connects")
    }

    /// The webhook secret local mode generated in the data dir.
    pub fn webhook_secret(&self) -> filegate::secret::Secret {
        let raw = std::fs::read_to_string(self.dir.path().join("webhook-secret"))
            .expect("webhook secret file");
        filegate::secret::Secret::new(raw.trim())
    }

    /// POSTs `body` to `/webhooks/filestack` with the given `FS-Timestamp`
    /// and `FS-Signature` headers (each left out when `None`); the status.
    pub async fn post_webhook(
        &self,
        body: &[u8],
        timestamp: Option<&str>,
        signature: Option<&str>,
    ) -> u16 {
        post_webhook(&self.http, &self.http_url, body, timestamp, signature).await
    }

    /// POSTs `body` signed now with the local webhook secret; the status.
    pub async fn deliver(&self, body: &str) -> u16 {
        let timestamp = unix_now().to_string();
        let signature =
            filegate::filestack::webhook::sign(&self.webhook_secret(), &timestamp, body.as_bytes());
        self.post_webhook(body.as_bytes(), Some(&timestamp), Some(&signature))
            .await
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

/// A webhook delivery as Filestack sends it, dated now.
pub fn delivery(id: &str, action: &str, text: serde_json::Value) -> String {
    serde_json::json!({ "id": id, "action": action, "timestamp": unix_now(), "text": text })
        .to_string()
}

/// POSTs `body` to `{http_url}/webhooks/filestack` with the given
/// `FS-Timestamp` and `FS-Signature` headers (each left out when `None`);
/// the status.
pub async fn post_webhook(
    http: &reqwest::Client,
    http_url: &str,
    body: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
) -> u16 {
    let mut request = http
        .post(format!("{http_url}/webhooks/filestack"))
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

/// The values of the samples named in `names` on `{http_url}/metrics`, in
/// order.
pub async fn scrape_metrics<const N: usize>(
    http: &reqwest::Client,
    http_url: &str,
    names: [&str; N],
) -> [u64; N] {
    let text = http
        .get(format!("{http_url}/metrics"))
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
