//! Section 5: small files. Two gateways on one emulator, one storing files
//! that fit in one part with one request (the default), one with every file
//! in parts (`--single-request-uploads false`), and the floor: one
//! `/api/store` request straight to the emulator. Alternated, medians.
//!
//! First with the emulator answering every upload request 25 ms late (one
//! round trip to Filestack, as from a data centre), where the number of
//! requests is what counts; then 1 MiB without injected latency, where the
//! one-request path must be no slower.

use std::time::{Duration, Instant};

use bytes::Bytes;
use filegate::filestack::{FilestackClient, UploadSpec};
use serde::Serialize;

use crate::procs::{Emulator, Gateway, UploadSettings, progress};
use crate::report::median;
use crate::uploads::{self, GatewayClient, Payload};

/// Latency added to each upload request of the emulator.
pub const INJECTED_LATENCY_MS: u64 = 25;
/// The emulator routes an upload uses.
const UPLOAD_ROUTES: [&str; 6] = [
    "store",
    "multipart_start",
    "multipart_upload",
    "part_put",
    "multipart_commit",
    "multipart_complete",
];

/// Medians of one size, milliseconds per upload.
#[derive(Debug, Clone, Serialize)]
pub struct SmallFileResult {
    pub size_kib: usize,
    pub injected_latency_ms: u64,
    pub one_request_ms: f64,
    pub multipart_ms: f64,
    /// One `/api/store` request straight to the emulator.
    pub store_request_ms: f64,
    pub runs: usize,
}

impl SmallFileResult {
    /// The row of the Markdown table, with the targets.
    pub fn row(&self) -> String {
        let vs_floor = self.one_request_ms / self.store_request_ms;
        let vs_multipart = self.one_request_ms / self.multipart_ms;
        let target = if self.injected_latency_ms > 0 {
            format!("one request <= 1.5x store: {}", verdict(vs_floor <= 1.5))
        } else {
            format!(
                "no slower than multipart: {}",
                verdict(vs_multipart <= 1.05)
            )
        };
        format!(
            "| {} KiB | {} ms | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {target} |\n",
            self.size_kib,
            self.injected_latency_ms,
            self.one_request_ms,
            self.multipart_ms,
            self.store_request_ms,
            vs_floor,
            self.multipart_ms / self.store_request_ms,
        )
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// The header of the small-file table.
pub const TABLE_HEADER: &str = "| Small file | injected latency | one request ms | multipart ms | one store request ms | one request / store | multipart / store | target |\n|---|---:|---:|---:|---:|---:|---:|---|\n";

/// Runs the section on an emulator of its own (its faults are armed for
/// the whole section).
pub async fn run(
    dir: &std::path::Path,
    payload: &Payload,
    token: &str,
    runs: usize,
) -> anyhow::Result<Vec<SmallFileResult>> {
    let own = dir.join("small");
    std::fs::create_dir_all(&own)?;
    let emulator = Emulator::start(&own)?;
    let settings = UploadSettings::default();
    let one_request = Gateway::start(dir, 5, &emulator, settings, &[])?;
    let multipart = Gateway::start(
        dir,
        6,
        &emulator,
        settings,
        &["--single-request-uploads", "false"],
    )?;
    let mut sides = Sides {
        one_request: GatewayClient::connect(&one_request.grpc_url, token).await?,
        multipart: GatewayClient::connect(&multipart.grpc_url, token).await?,
        direct: uploads::direct_client(&emulator, settings)?,
    };
    let http = reqwest::Client::new();
    for route in UPLOAD_ROUTES {
        let fault = serde_json::json!({
            "route": route, "latency_ms": INJECTED_LATENCY_MS, "count": 1_000_000,
        });
        let url = format!("{}/_emulator/faults", emulator.url);
        http.post(&url)
            .json(&fault)
            .send()
            .await?
            .error_for_status()?;
    }
    let mut results = vec![
        sides
            .measure(payload, 20 * 1024, runs, INJECTED_LATENCY_MS)
            .await?,
    ];
    http.delete(format!("{}/_emulator/faults", emulator.url))
        .send()
        .await?
        .error_for_status()?;
    results.push(sides.measure(payload, 1024 * 1024, runs, 0).await?);
    Ok(results)
}

/// The three ways to store a file.
struct Sides {
    one_request: GatewayClient,
    multipart: GatewayClient,
    direct: FilestackClient,
}

impl Sides {
    async fn measure(
        &mut self,
        payload: &Payload,
        size: usize,
        runs: usize,
        latency_ms: u64,
    ) -> anyhow::Result<SmallFileResult> {
        let (mut one, mut multi, mut store) = (Vec::new(), Vec::new(), Vec::new());
        // One warm-up of each, then alternated.
        for run in 0..=runs {
            let a = uploads::through_gateway(&mut self.one_request, payload, size).await?;
            let b = uploads::through_gateway(&mut self.multipart, payload, size).await?;
            let c = store_once(&self.direct, payload, size).await?;
            if run > 0 {
                one.push(ms(a));
                multi.push(ms(b));
                store.push(ms(c));
            }
        }
        let result = SmallFileResult {
            size_kib: size / 1024,
            injected_latency_ms: latency_ms,
            one_request_ms: median(&one),
            multipart_ms: median(&multi),
            store_request_ms: median(&store),
            runs,
        };
        progress(&format!(
            "{} KiB with {latency_ms} ms injected: one request {:.1} ms, multipart {:.1} ms, one store request {:.1} ms",
            result.size_kib, result.one_request_ms, result.multipart_ms, result.store_request_ms
        ));
        Ok(result)
    }
}

/// One timed `/api/store` request straight to the emulator; the file is
/// deleted afterwards.
async fn store_once(
    client: &FilestackClient,
    payload: &Payload,
    size: usize,
) -> anyhow::Result<Duration> {
    let bytes = Bytes::copy_from_slice(&payload.bytes()[..size]);
    let spec = UploadSpec {
        size: Some(size as u64),
        path: Some("bench/".to_owned()),
        ..UploadSpec::new("bench.bin", "application/octet-stream")
    };
    let started = Instant::now();
    let stored = client.store(bytes, &spec).await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(stored.size == size as u64, "stored {} bytes", stored.size);
    client.delete(&stored.handle).await?;
    Ok(elapsed)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
