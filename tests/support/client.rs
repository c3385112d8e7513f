//! A real emulator on `127.0.0.1:0` (started by `emulator.rs`, which the
//! including test declares as `mod emulator`), a client pointed at it, and
//! helpers to arm faults and read statistics over HTTP.

use std::time::Duration;

use bytes::Bytes;
use filegate::filestack::{FilestackClient, FilestackConfig, RetryPolicy};
use filegate::secret::Secret;
use futures_util::Stream;
use serde_json::Value;

use crate::emulator::{self, API_KEY, APP_SECRET, Running};

pub const MIB: usize = 1024 * 1024;

/// An emulator serving from a temporary folder until dropped.
pub struct TestEmulator {
    pub base_url: String,
    http: reqwest::Client,
    _running: Running,
    _dir: tempfile::TempDir,
}

impl TestEmulator {
    pub async fn start() -> TestEmulator {
        let dir = tempfile::tempdir().expect("temp dir");
        let running = emulator::start(emulator::config(dir.path())).await;
        TestEmulator {
            base_url: running.base.clone(),
            http: reqwest::Client::new(),
            _running: running,
            _dir: dir,
        }
    }

    /// Client settings for this emulator: 5 MiB parts, quick retries.
    pub fn config(&self) -> FilestackConfig {
        let mut config =
            FilestackConfig::emulator(&self.base_url, API_KEY, Secret::new(APP_SECRET));
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

    pub fn client(&self) -> FilestackClient {
        FilestackClient::new(self.config()).expect("valid config")
    }

    /// Arms a fault (`POST /_emulator/faults`).
    pub async fn fault(&self, spec: Value) {
        let response = self
            .http
            .post(format!("{}/_emulator/faults", self.base_url))
            .json(&spec)
            .send()
            .await
            .expect("faults endpoint answers");
        assert!(response.status().is_success(), "fault {spec} armed");
    }

    /// `GET /_emulator/stats`.
    pub async fn stats(&self) -> Stats {
        let value: Value = self
            .http
            .get(format!("{}/_emulator/stats", self.base_url))
            .send()
            .await
            .expect("stats endpoint answers")
            .json()
            .await
            .expect("stats are JSON");
        Stats(value)
    }

    /// The body of a GET, asserting a 200.
    pub async fn get(&self, url: &str) -> Vec<u8> {
        let response = self.http.get(url).send().await.expect("GET answers");
        let status = response.status();
        let body = response.bytes().await.expect("body").to_vec();
        assert_eq!(status, 200, "GET {url}: {}", String::from_utf8_lossy(&body));
        body
    }
}

/// What `/_emulator/stats` said.
#[derive(Debug)]
pub struct Stats(pub Value);

impl Stats {
    pub fn stored_files(&self) -> u64 {
        self.0["stored_files"].as_u64().expect("stored_files")
    }

    /// Requests seen on `route` (0 when none).
    pub fn requests(&self, route: &str) -> u64 {
        self.0["requests"][route].as_u64().unwrap_or(0)
    }
}

/// `len` deterministic bytes.
pub fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// `bytes` as a stream of `chunk`-sized pieces.
pub fn chunked(
    bytes: &[u8],
    chunk: usize,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + use<> {
    let pieces: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(pieces)
}
