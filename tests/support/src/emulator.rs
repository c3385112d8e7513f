//! The Filestack emulator as tests see it: one started here on
//! `127.0.0.1:0` over a temp dir, or the one embedded in a local-mode
//! gateway. Either way: its faults and statistics (`/_emulator/...`), its
//! HTTP protocol step by step, and a Filestack client pointed at it.

use std::path::Path;
use std::time::Duration;

use filegate::emulator::{Emulator, EmulatorConfig};
use filegate::filestack::policy::{Call, Policy, Security};
use filegate::filestack::{FilestackClient, FilestackConfig, RetryPolicy, UploadSpec};
use filegate::gateway::settings::LOCAL_API_KEY;
use filegate::secret::Secret;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::content::{md5_b64, one_chunk, png};
use crate::{MIB, unix_now};

/// The API key and app secret of an emulator started by [`TestEmulator::start`].
pub const API_KEY: &str = "test-api-key";
pub const APP_SECRET: &str = "test-app-secret";

/// An emulator and an HTTP client for it.
pub struct TestEmulator {
    pub base_url: String,
    api_key: String,
    app_secret: Secret,
    http: reqwest::Client,
    /// Set when this test started the emulator.
    server: Option<Server>,
}

struct Server {
    config: EmulatorConfig,
    dir: tempfile::TempDir,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestEmulator {
    /// Serves from a new temp dir with [`API_KEY`], [`APP_SECRET`] and
    /// security on, until stopped or dropped.
    pub async fn start() -> TestEmulator {
        Self::start_with(|_| {}).await
    }

    /// As [`TestEmulator::start`], with the configuration changed by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut EmulatorConfig)) -> TestEmulator {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = EmulatorConfig {
            data_dir: dir.path().to_path_buf(),
            api_key: API_KEY.to_owned(),
            app_secret: Secret::new(APP_SECRET),
            security: true,
            webhook: None,
        };
        configure(&mut config);
        Self::serve(dir, config).await
    }

    async fn serve(dir: tempfile::TempDir, config: EmulatorConfig) -> TestEmulator {
        let address = "127.0.0.1:0".parse().expect("an address");
        let emulator = Emulator::bind(address, config.clone())
            .await
            .expect("the emulator binds");
        let base_url = emulator.base_url();
        assert_eq!(base_url, format!("http://{}", emulator.local_addr()));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(emulator.serve(async move {
            let _ = stopped.await;
        }));
        TestEmulator {
            base_url,
            api_key: config.api_key.clone(),
            app_secret: config.app_secret.clone(),
            http: reqwest::Client::new(),
            server: Some(Server {
                config,
                dir,
                stop,
                task,
            }),
        }
    }

    /// The emulator a local-mode gateway with `data_dir` embeds, at `base_url`.
    pub fn local(base_url: &str, data_dir: &Path) -> TestEmulator {
        let raw = std::fs::read_to_string(data_dir.join("emulator-app-secret"))
            .expect("the local app secret");
        TestEmulator {
            base_url: base_url.to_owned(),
            api_key: LOCAL_API_KEY.to_owned(),
            app_secret: Secret::new(raw.trim()),
            http: reqwest::Client::new(),
            server: None,
        }
    }

    fn server(self) -> Server {
        self.server.expect("an emulator this test started")
    }

    /// The data dir of an emulator this test started.
    pub fn dir(&self) -> &Path {
        let server = self.server.as_ref();
        server.expect("an emulator this test started").dir.path()
    }

    /// Stops the server and waits until it has finished, cleanly.
    pub async fn stop(self) {
        Self::stop_server(self.server()).await;
    }

    async fn stop_server(server: Server) -> (tempfile::TempDir, EmulatorConfig) {
        let _ = server.stop.send(());
        server
            .task
            .await
            .expect("emulator task")
            .expect("the emulator stops cleanly");
        (server.dir, server.config)
    }

    /// Stops the server and starts a new one on the same dir and configuration.
    pub async fn restart(self) -> TestEmulator {
        let (dir, config) = Self::stop_server(self.server()).await;
        Self::serve(dir, config).await
    }

    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    pub fn app_secret(&self) -> &Secret {
        &self.app_secret
    }

    /// The HTTP client, for requests of the test's own making.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Filestack client settings for this emulator: 5 MiB parts, quick retries.
    pub fn filestack_config(&self) -> FilestackConfig {
        let mut config =
            FilestackConfig::emulator(&self.base_url, &self.api_key, self.app_secret.clone());
        config.part_size = 5 * MIB;
        config.parts_in_flight = 3;
        config.request_timeout = Duration::from_secs(30);
        config.complete_timeout = Duration::from_secs(10);
        config.retry = RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
        };
        config
    }

    /// A Filestack client with [`TestEmulator::filestack_config`].
    pub fn filestack(&self) -> FilestackClient {
        FilestackClient::new(self.filestack_config()).expect("valid config")
    }

    /// Stores a small PNG (`photo.png`) under `path` straight at the
    /// emulator, as a browser would; its handle.
    pub async fn browser_upload(&self, path: &str) -> String {
        let spec = UploadSpec {
            path: Some(path.into()),
            ..UploadSpec::new("photo.png", "image/png")
        };
        let stored = self.filestack().upload(one_chunk(&png(20, 10)), spec).await;
        stored.expect("a browser upload").handle
    }

    /// The bytes of `handle`, through a download URL `client` signed.
    pub async fn download(&self, client: &FilestackClient, handle: &str) -> Vec<u8> {
        let url = client
            .download_url(handle, Duration::from_secs(60))
            .expect("valid handle");
        self.get_ok(&url.url).await
    }

    /// Replaces the content of `handle` through the File API, as a client
    /// with a `write` policy would (behind a gateway's back).
    pub async fn overwrite(&self, handle: &str, bytes: Vec<u8>) {
        let write = self.sign(&policy(&[Call::Write]).with_handle(handle));
        let response = self
            .http
            .post(format!("{}/api/file/{handle}", self.base_url))
            .query(&query(&write))
            .body(bytes)
            .send()
            .await
            .expect("emulator reachable");
        assert_eq!(response.status(), 200, "overwritten");
    }

    /// Arms a fault (`POST /_emulator/faults`).
    pub async fn fault(&self, spec: Value) {
        let (status, answer) = self.post_json("/_emulator/faults", &spec).await;
        assert_eq!(status, 200, "fault {spec} armed: {answer}");
    }

    /// Disarms every fault (`DELETE /_emulator/faults`).
    pub async fn clear_faults(&self) {
        let response = self
            .http
            .delete(format!("{}/_emulator/faults", self.base_url))
            .send()
            .await
            .expect("emulator reachable");
        assert_eq!(response.status(), 200, "faults cleared");
    }

    /// `GET /_emulator/files`: every stored file's `(handle, key)`.
    pub async fn files(&self) -> Vec<(String, String)> {
        let files: Value = self
            .http
            .get(format!("{}/_emulator/files", self.base_url))
            .send()
            .await
            .expect("emulator reachable")
            .json()
            .await
            .expect("files are JSON");
        let files = files.as_array().expect("a list of files");
        let field = |file: &Value, name: &str| file[name].as_str().expect(name).to_owned();
        files
            .iter()
            .map(|file| (field(file, "handle"), field(file, "key")))
            .collect()
    }

    /// How a repeated `complete` is answered: `"not_found"` or `"same_file"`.
    pub async fn set_repeated_complete(&self, answer: &str) {
        let response = self
            .http
            .put(format!("{}/_emulator/settings", self.base_url))
            .json(&serde_json::json!({ "repeated_complete": answer }))
            .send()
            .await
            .expect("emulator reachable");
        assert_eq!(response.status(), 200, "settings taken");
    }

    /// `GET /_emulator/stats`.
    pub async fn stats(&self) -> Stats {
        let value: Value = self
            .http
            .get(format!("{}/_emulator/stats", self.base_url))
            .send()
            .await
            .expect("emulator reachable")
            .json()
            .await
            .expect("stats are JSON");
        Stats(value)
    }

    /// GETs a URL; status and body.
    pub async fn get(&self, url: &str) -> (u16, Vec<u8>) {
        let response = self.http.get(url).send().await.expect("GET answers");
        let status = response.status().as_u16();
        (status, response.bytes().await.expect("body").to_vec())
    }

    /// The body of a GET, asserting a 200.
    pub async fn get_ok(&self, url: &str) -> Vec<u8> {
        let (status, body) = self.get(url).await;
        assert_eq!(status, 200, "GET {url}: {}", String::from_utf8_lossy(&body));
        body
    }

    /// `GET /api/file/{handle}/metadata` with `params` (a policy and the
    /// fields): the answer, asserting a 200. `handle` may carry an
    /// extension (`HANDLE+png`).
    pub async fn file_metadata(&self, handle: &str, params: &[(&str, String)]) -> Value {
        let response = self
            .http
            .get(format!("{}/api/file/{handle}/metadata", self.base_url))
            .query(params)
            .send()
            .await
            .expect("metadata answers");
        assert_eq!(response.status(), 200, "metadata of {handle}");
        response.json().await.expect("metadata is JSON")
    }

    /// Signs `policy` with this emulator's app secret.
    pub fn sign(&self, policy: &Policy) -> Security {
        Security::sign(policy, &self.app_secret)
    }

    /// POSTs JSON to `path` and returns (status, body as JSON or Null).
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let url = format!("{}{path}", self.base_url);
        let response = self.http.post(url).json(body).send().await.expect("POST");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `/multipart/start` with a `pick` policy; returns the start answer.
    pub async fn start_upload(&self, size: usize, fii: bool) -> Value {
        let security = self.sign(&policy(&[Call::Pick]));
        let body = json!({
            "apikey": self.api_key, "filename": "data.bin", "mimetype": "application/octet-stream",
            "size": size, "store": {"location": "s3"}, "fii": fii,
            "policy": security.policy, "signature": security.signature,
        });
        let (status, answer) = self.post_json("/multipart/start", &body).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    /// The fields follow-up calls repeat from the start answer.
    pub fn session(&self, start: &Value) -> Value {
        json!({
            "apikey": self.api_key,
            "uri": start["uri"], "region": start["region"], "upload_id": start["upload_id"],
            "store": {"location": "S3"},
        })
    }

    /// `/multipart/upload` then the PUT, for one part or chunk; returns the
    /// PUT's response.
    pub async fn put_chunk(
        &self,
        start: &Value,
        part: u32,
        offset: Option<u64>,
        bytes: Vec<u8>,
    ) -> reqwest::Response {
        let mut body = self.session(start);
        body["part"] = json!(part);
        body["size"] = json!(bytes.len());
        body["md5"] = json!(md5_b64(&bytes));
        if let Some(offset) = offset {
            body["offset"] = json!(offset);
            body["fii"] = json!(true);
        }
        let (status, answer) = self.post_json("/multipart/upload", &body).await;
        assert_eq!(status, 200, "{answer}");
        let url = answer["url"].as_str().expect("a part URL");
        let mut put = self.http.put(url).body(bytes);
        for (name, value) in answer["headers"].as_object().expect("headers") {
            put = put.header(name, value.as_str().expect("a header value"));
        }
        put.send().await.expect("PUT answers")
    }

    /// `/multipart/complete` for a regular upload with `parts`.
    pub async fn complete(&self, start: &Value, size: usize, parts: Value) -> (u16, Value) {
        let security = self.sign(&policy(&[Call::Pick]));
        let mut body = self.session(start);
        body["filename"] = json!("data.bin");
        body["mimetype"] = json!("application/octet-stream");
        body["size"] = json!(size);
        body["parts"] = parts;
        body["policy"] = json!(security.policy);
        body["signature"] = json!(security.signature);
        self.post_json("/multipart/complete", &body).await
    }

    /// Uploads `data` in parts of `part_size` and returns the complete answer.
    pub async fn upload(&self, data: &[u8], part_size: usize) -> Value {
        let start = self.start_upload(data.len(), false).await;
        let mut parts = Vec::new();
        for (i, chunk) in data.chunks(part_size).enumerate() {
            let response = self
                .put_chunk(&start, i as u32 + 1, None, chunk.to_vec())
                .await;
            assert_eq!(response.status(), 200);
            parts.push(json!({"part_number": i + 1, "etag": etag(&response)}));
        }
        let (status, answer) = self.complete(&start, data.len(), json!(parts)).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    /// Stores `bytes` as `pic.png` through `/api/store/S3` as a raw body;
    /// returns the answer.
    pub async fn store_raw(&self, bytes: Vec<u8>, mime: &str) -> Value {
        let security = self.sign(&policy(&[Call::Pick]));
        let mut params = query(&security);
        params.push(("key", self.api_key.clone()));
        params.push(("filename", "pic.png".to_owned()));
        let response = self
            .http
            .post(format!("{}/api/store/S3", self.base_url))
            .query(&params)
            .header("Content-Type", mime)
            .body(bytes)
            .send()
            .await
            .expect("store answers");
        assert_eq!(response.status(), 200);
        response.json().await.expect("a JSON answer")
    }
}

/// What `/_emulator/stats` said.
#[derive(Debug)]
pub struct Stats(pub Value);

impl Stats {
    pub fn stored_files(&self) -> u64 {
        self.0["stored_files"].as_u64().expect("stored_files")
    }

    pub fn pending_uploads(&self) -> u64 {
        self.0["pending_uploads"].as_u64().expect("pending_uploads")
    }

    /// The `traceparent`s the last requests carried, with their routes.
    pub fn traceparents(&self) -> Vec<(String, String)> {
        let seen = self.0["traceparents"].as_array().expect("traceparents");
        seen.iter()
            .map(|entry| {
                let text = |key: &str| entry[key].as_str().expect(key).to_owned();
                (text("route"), text("traceparent"))
            })
            .collect()
    }

    /// Bytes of file content sent in download bodies so far.
    pub fn bytes_served(&self) -> u64 {
        self.0["bytes_served"].as_u64().expect("bytes_served")
    }

    /// Requests seen on `route` (0 when none).
    pub fn requests(&self, route: &str) -> u64 {
        self.0["requests"][route].as_u64().unwrap_or(0)
    }
}

/// A policy for `calls`, valid for an hour.
pub fn policy(calls: &[Call]) -> Policy {
    Policy::new(unix_now() + 3600, calls)
}

/// `?policy=..&signature=..` pairs for reqwest's `query`.
pub fn query(security: &Security) -> Vec<(&'static str, String)> {
    vec![
        ("policy", security.policy.clone()),
        ("signature", security.signature.clone()),
    ]
}

/// The ETag a part PUT answered.
pub fn etag(put: &reqwest::Response) -> String {
    let etag = put.headers()["etag"].to_str();
    etag.expect("an ASCII ETag").to_owned()
}

/// The handle in a store or complete answer.
pub fn handle_of(stored: &Value) -> String {
    stored["handle"].as_str().expect("a handle").to_owned()
}

/// A Filestack client's spec for `filename`, under alice's upload path.
pub fn upload_spec(filename: &str, size: Option<u64>) -> UploadSpec {
    UploadSpec {
        size,
        path: Some("user-uploads/alice/".into()),
        ..UploadSpec::new(filename, "application/octet-stream")
    }
}
