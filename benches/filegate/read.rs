//! Reads of one stored file, side by side: a gRPC Read of the whole file
//! through the gateway (which hashes it and checks its size), the same
//! without its first byte (a range: not hashed), and a signed GET of the
//! same file straight from the emulator, plain or hashed and checked against
//! the document's SHA-256 as the gateway does (the same guarantee). Each
//! side counts the bytes it receives and drops them.

use std::time::{Duration, Instant};

use anyhow::Context;
use filegate::filestack::FilestackClient;
use filegate::pb::v1 as pb;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::uploads::GatewayClient;

/// One timed gRPC Read of the document `id` from `offset` to its end (0:
/// the whole file, which the gateway checks against the document's
/// SHA-256; 1: all but the first byte, which it cannot); fails unless
/// exactly `size - offset` bytes arrived and the stream ended cleanly.
pub async fn through_gateway(
    client: &mut GatewayClient,
    id: &str,
    offset: usize,
    size: usize,
) -> anyhow::Result<Duration> {
    let size = size - offset;
    let request = client.request(pb::ReadRequest {
        document_id: id.to_owned(),
        read_offset: offset as i64,
        read_limit: 0,
    });
    let started = Instant::now();
    let mut stream = client.raw().read(request).await?.into_inner();
    let mut received = 0;
    while let Some(message) = stream.message().await? {
        received += message.data.len();
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(received == size, "read {received} of {size} bytes");
    Ok(elapsed)
}

/// One timed GET of `handle` through a freshly signed CDN URL; fails
/// unless exactly `size` bytes arrived and, with `sha256` (hex), unless
/// their SHA-256, computed as they arrive, is that one.
pub async fn direct(
    http: &reqwest::Client,
    filestack: &FilestackClient,
    handle: &str,
    size: usize,
    sha256: Option<&str>,
) -> anyhow::Result<Duration> {
    let url = filestack
        .download_url(handle, Duration::from_secs(300))?
        .url;
    let started = Instant::now();
    let response = http.get(url).send().await?.error_for_status()?;
    let mut body = response.bytes_stream();
    let mut received = 0;
    let mut hasher = sha256.map(|_| Sha256::new());
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("the body broke")?;
        received += chunk.len();
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&chunk);
        }
    }
    if let (Some(hasher), Some(expected)) = (hasher, sha256) {
        let got = hex::encode(hasher.finalize());
        anyhow::ensure!(got == expected, "SHA-256 {got}, expected {expected}");
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(received == size, "got {received} of {size} bytes");
    Ok(elapsed)
}
