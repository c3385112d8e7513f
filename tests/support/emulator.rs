//! Starts a real emulator on 127.0.0.1:0 over a temp dir, and helpers to
//! talk to it.
#![allow(dead_code)]

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use filegate::emulator::{Emulator, EmulatorConfig, WebhookTarget};
use filegate::filestack::policy::{Call, Policy, Security};
use filegate::secret::Secret;
use md5::{Digest, Md5};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const API_KEY: &str = "test-api-key";
pub const APP_SECRET: &str = "test-app-secret";

/// A running emulator; stopped (gracefully) by [`Running::stop`].
pub struct Running {
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stops the server and waits until it has finished.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap().unwrap();
    }
}

/// The configuration tests use, over `dir`.
pub fn config(dir: &Path) -> EmulatorConfig {
    EmulatorConfig {
        data_dir: dir.to_path_buf(),
        api_key: API_KEY.to_owned(),
        app_secret: Secret::new(APP_SECRET),
        security: true,
        webhook: None,
    }
}

/// Config with webhooks sent to `url`.
pub fn with_webhook(dir: &Path, url: &str, secret: &str) -> EmulatorConfig {
    EmulatorConfig {
        webhook: Some(WebhookTarget {
            url: url.to_owned(),
            secret: Secret::new(secret),
        }),
        ..config(dir)
    }
}

/// Binds and serves `config` on port 0.
pub async fn start(config: EmulatorConfig) -> Running {
    let emulator = Emulator::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let base = emulator.base_url();
    assert_eq!(base, format!("http://{}", emulator.local_addr()));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(emulator.serve(async move {
        let _ = stopped.await;
    }));
    Running {
        base,
        stop: Some(stop),
        task,
    }
}

/// A policy for `calls`, valid for an hour.
pub fn policy(calls: &[Call]) -> Policy {
    Policy::new(filegate_now() + 3600, calls)
}

/// Signs a policy with the test app secret.
pub fn sign(policy: &Policy) -> Security {
    Security::sign(policy, &Secret::new(APP_SECRET))
}

/// `?policy=..&signature=..` pairs for reqwest's `query`.
pub fn query(security: &Security) -> Vec<(&'static str, String)> {
    vec![
        ("policy", security.policy.clone()),
        ("signature", security.signature.clone()),
    ]
}

pub fn filegate_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn md5_b64(bytes: &[u8]) -> String {
    STANDARD.encode(Md5::digest(bytes))
}

pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// `len` bytes of a repeating, position-dependent pattern.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A PNG of `width` x `height`.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(width, height, image::Rgb([200, 30, 30]));
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// POSTs JSON and returns (status, body as JSON or Null).
pub async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let response = client.post(url).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `/multipart/start` with a `pick` policy; returns the start answer.
pub async fn start_upload(client: &reqwest::Client, base: &str, size: usize, fii: bool) -> Value {
    let security = sign(&policy(&[Call::Pick]));
    let (status, answer) = post_json(
        client,
        &format!("{base}/multipart/start"),
        &json!({
            "apikey": API_KEY, "filename": "data.bin", "mimetype": "application/octet-stream",
            "size": size, "store": {"location": "s3"}, "fii": fii,
            "policy": security.policy, "signature": security.signature,
        }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// The fields follow-up calls repeat from the start answer.
pub fn session(start: &Value) -> Value {
    json!({
        "apikey": API_KEY,
        "uri": start["uri"], "region": start["region"], "upload_id": start["upload_id"],
        "store": {"location": "S3"},
    })
}

/// The ETag a part PUT answered.
pub fn etag(put: &reqwest::Response) -> String {
    put.headers()["etag"].to_str().unwrap().to_owned()
}

/// `/multipart/upload` then the PUT, for one part or chunk; returns the
/// PUT's response.
pub async fn put_chunk(
    client: &reqwest::Client,
    base: &str,
    start: &Value,
    part: u32,
    offset: Option<u64>,
    bytes: Vec<u8>,
) -> reqwest::Response {
    let mut body = session(start);
    body["part"] = json!(part);
    body["size"] = json!(bytes.len());
    body["md5"] = json!(md5_b64(&bytes));
    if let Some(offset) = offset {
        body["offset"] = json!(offset);
        body["fii"] = json!(true);
    }
    let (status, answer) = post_json(client, &format!("{base}/multipart/upload"), &body).await;
    assert_eq!(status, 200, "{answer}");
    let mut put = client.put(answer["url"].as_str().unwrap()).body(bytes);
    for (name, value) in answer["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    put.send().await.unwrap()
}

/// `/multipart/complete` for a regular upload with `parts`.
pub async fn complete(
    client: &reqwest::Client,
    base: &str,
    start: &Value,
    size: usize,
    parts: Value,
) -> (u16, Value) {
    let security = sign(&policy(&[Call::Pick]));
    let mut body = session(start);
    body["filename"] = json!("data.bin");
    body["mimetype"] = json!("application/octet-stream");
    body["size"] = json!(size);
    body["parts"] = parts;
    body["policy"] = json!(security.policy);
    body["signature"] = json!(security.signature);
    post_json(client, &format!("{base}/multipart/complete"), &body).await
}

/// Uploads `data` in parts of `part_size` and returns the complete answer.
pub async fn upload(client: &reqwest::Client, base: &str, data: &[u8], part_size: usize) -> Value {
    let start = start_upload(client, base, data.len(), false).await;
    let mut parts = Vec::new();
    for (i, chunk) in data.chunks(part_size).enumerate() {
        let response = put_chunk(client, base, &start, i as u32 + 1, None, chunk.to_vec()).await;
        assert_eq!(response.status(), 200);
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        parts.push(json!({"part_number": i + 1, "etag": etag}));
    }
    let (status, answer) = complete(client, base, &start, data.len(), json!(parts)).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// GETs a URL and returns (status, bytes).
pub async fn get(client: &reqwest::Client, url: &str) -> (u16, Vec<u8>) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

/// Stores `bytes` through `/api/store/S3` as a raw body; returns the answer.
pub async fn store_raw(client: &reqwest::Client, base: &str, bytes: Vec<u8>, mime: &str) -> Value {
    let security = sign(&policy(&[Call::Pick]));
    let mut params = query(&security);
    params.push(("key", API_KEY.to_owned()));
    params.push(("filename", "pic.png".to_owned()));
    let response = client
        .post(format!("{base}/api/store/S3"))
        .query(&params)
        .header("Content-Type", mime)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

pub fn handle_of(stored: &Value) -> String {
    stored["handle"].as_str().unwrap().to_owned()
}
