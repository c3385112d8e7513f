//! filegate's benchmark: `cargo bench --bench filegate`.
//!
//! Starts the release `filegate` binary twice, as an emulator process and as
//! a gateway process pointed at it, and measures side by side in one run
//! (the machine is shared: medians and ratios, not single times):
//! upload throughput through the gateway and straight to the emulator,
//! the gateway's peak RSS, unary RPC throughput and latency, the gateway's
//! CPU per GiB, and reads of a 256 MiB file through the gateway (gRPC Read)
//! and straight from the emulator (signed GET). Prints a Markdown table and writes
//! `target/bench/filegate.json`.
//!
//! `FILEGATE_BENCH_QUICK=1` runs fewer and shorter rounds (a smoke test);
//! `FILEGATE_BENCH_SECONDS` sets the time per unary level (default 3);
//! `FILEGATE_BENCH_ONLY=uploads|ingest|unary|memory|read|small|resume|compression|traces` runs one section (to profile it);
//! `FILEGATE_BENCH_BASELINE=path/to/filegate` also runs the unary levels
//! (row cache on) on that build and on this one, alternated level by level,
//! three rounds, and prints the medians side by side (what a change costs
//! unary calls);
//! `FILEGATE_BENCH_PIN=1` runs the read section with the gateway alone on
//! CPU 1 and the emulator and the clients on CPU 0 (`taskset`);
//! `FILEGATE_BENCH_KEEP=1` keeps the temp dir with the processes' logs
//! (`RUST_LOG` is passed on to them).

#[path = "filegate/compression.rs"]
mod compression;
#[path = "filegate/hashing.rs"]
mod hashing;
#[path = "filegate/ingest.rs"]
mod ingest;
#[path = "filegate/procs.rs"]
mod procs;
#[path = "filegate/read.rs"]
mod read;
#[path = "filegate/report.rs"]
mod report;
#[path = "filegate/resume.rs"]
mod resume;
#[path = "filegate/small.rs"]
mod small;
#[path = "filegate/traces.rs"]
mod traces;
#[path = "filegate/unary.rs"]
mod unary;
#[path = "filegate/uploads.rs"]
mod uploads;

use std::time::{Duration, Instant};

use filegate::gateway::app::{CONNECTION_WINDOW_BYTES, STREAM_WINDOW_BYTES};
use filegate::gateway::auth::mint_hs256;
use filegate::secret::Secret;

use procs::{
    CpuSnapshot, Emulator, Gateway, JWT_SECRET, UPLOAD_BUDGET_BYTES, UploadSettings, progress,
};
use report::{MemoryResult, ReadResult, Report, ThroughputResult, mib};
use unary::Rpc;
use uploads::{GatewayClient, Payload};

const MIB: usize = 1 << 20;
const GIB: usize = 1 << 30;
/// HTTP/2 connections of the unary load generator and the concurrent uploads.
const CONNECTIONS: usize = 4;
/// Documents the unary load walks through (1 KiB each).
const UNARY_DOCUMENTS: usize = 64;
/// The file the read section reads.
const READ_SIZE: usize = 256 * MIB;
/// The target of the gateway's peak RSS while it serves reads.
const READ_RSS_TARGET_MIB: f64 = 64.0;

/// How much work each section does.
struct Plan {
    /// (file size in MiB, timed runs per side).
    sizes: Vec<(usize, usize)>,
    unary_levels: Vec<usize>,
    unary_seconds: Duration,
    big_upload: usize,
    concurrent_uploads: usize,
    concurrent_size: usize,
    /// Timed runs per side of the small-file section.
    small_runs: usize,
    /// Timed reads per side.
    read_runs: usize,
    /// The one section to run, if not all.
    only: Option<String>,
}

impl Plan {
    fn from_env() -> Plan {
        let quick = std::env::var("FILEGATE_BENCH_QUICK").is_ok_and(|v| v == "1");
        let seconds = std::env::var("FILEGATE_BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(if quick { 0.5 } else { 3.0 });
        Plan {
            sizes: if quick {
                vec![(1, 3), (32, 1), (256, 1)]
            } else {
                vec![(1, 15), (32, 7), (256, 9)]
            },
            unary_levels: vec![1, 16, 64],
            unary_seconds: Duration::from_secs_f64(seconds),
            big_upload: if quick { 256 * MIB } else { GIB },
            concurrent_uploads: 32,
            concurrent_size: 32 * MIB,
            small_runs: if quick { 5 } else { 31 },
            read_runs: if quick { 3 } else { 9 },
            only: std::env::var("FILEGATE_BENCH_ONLY").ok(),
        }
    }

    fn runs(&self, section: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == section)
    }
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(run(Plan::from_env()))?;
    println!("\n{}", report.table());
    let path = report.write_json()?;
    println!("JSON: {}", path.display());
    Ok(())
}

async fn run(plan: Plan) -> anyhow::Result<Report> {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("filegate-bench")
        .tempdir()?;
    let settings = UploadSettings::default();
    let token = mint_hs256(&Secret::new(JWT_SECRET), "bench", Duration::from_secs(3600))?;
    progress(&format!("binary: {}", procs::BINARY));
    let emulator = Emulator::start(dir.path())?;
    progress(&format!(
        "emulator: {} (pid {})",
        emulator.url,
        emulator.proc.pid()
    ));
    let payload = Payload::new(256 * MIB);

    let gateway = Gateway::start(dir.path(), 1, &emulator, settings, &[])?;
    let (mut throughput_results, mut cpu_per_gib) = (Vec::new(), f64::NAN);
    if plan.runs("uploads") {
        (throughput_results, cpu_per_gib) =
            throughput(&plan, &gateway, &emulator, settings, &payload, &token).await?;
    }
    let mut ingest = None;
    if plan.runs("ingest") {
        ingest = Some(ingest_ceiling(&payload, settings).await?);
    }
    let mut unary = Vec::new();
    if plan.runs("unary") {
        unary = unary_levels(&plan, &gateway, &payload, &token, true).await?;
    }
    let mut unary_baseline = Vec::new();
    if let (true, Ok(baseline)) = (plan.runs("unary"), std::env::var("FILEGATE_BENCH_BASELINE")) {
        let base = Gateway::start_binary(&baseline, dir.path(), 9, &emulator, settings, &[], &[])?;
        progress(&format!("baseline build: {baseline}"));
        (unary_baseline, _) = alternated(&plan, &gateway, &base, &payload, &token).await?;
        drop(base);
    }
    drop(gateway);
    if plan.runs("unary") {
        // The same load with every document read going to SQLite, for
        // what the row cache is worth.
        let no_cache = ["--document-cache-entries=0"];
        let gateway = Gateway::start(dir.path(), 4, &emulator, settings, &no_cache)?;
        unary.extend(unary_levels(&plan, &gateway, &payload, &token, false).await?);
        drop(gateway);
    }

    let (mut memory, mut cpu_per_gib_big) = (Vec::new(), f64::NAN);
    if plan.runs("memory") {
        let gateway = Gateway::start(dir.path(), 2, &emulator, settings, &[])?;
        let big = big_upload(&plan, &gateway, &payload, &token).await?;
        cpu_per_gib_big = big.cpu_seconds / (plan.big_upload as f64 / GIB as f64);
        drop(gateway);
        let gateway = Gateway::start(dir.path(), 3, &emulator, settings, &[])?;
        let concurrent = concurrent_uploads(&plan, &gateway, &payload, &token).await?;
        drop(gateway);
        memory = vec![big, concurrent];
    }

    let mut resume = None;
    if plan.runs("resume") {
        let gateway = Gateway::start(dir.path(), 7, &emulator, settings, &[])?;
        let mut client = GatewayClient::connect(&gateway.grpc_url, &token).await?;
        let runs = if plan.small_runs < 10 { 1 } else { 3 };
        resume = Some(resume::run(&mut client, &payload, 256 * MIB, runs).await?);
        drop(gateway);
    }
    let mut compression = None;
    if plan.runs("compression") {
        let gateway = Gateway::start(dir.path(), 8, &emulator, settings, &[])?;
        let runs = if plan.small_runs < 10 { 1 } else { 5 };
        compression = Some(compression::run(&gateway.grpc_url, &token, &payload, runs).await?);
        drop(gateway);
    }
    let mut traces = None;
    if plan.runs("traces") {
        let cost = traces_cost(&plan, dir.path(), &emulator, settings, &payload, &token);
        traces = Some(cost.await?);
    }
    let mut small_files = Vec::new();
    if plan.runs("small") {
        small_files = small::run(dir.path(), &payload, &token, plan.small_runs).await?;
    }
    let mut read = None;
    if plan.runs("read") {
        read =
            Some(read_throughput(&plan, dir.path(), &emulator, settings, &payload, &token).await?);
    }

    if std::env::var("FILEGATE_BENCH_KEEP").is_ok_and(|v| v == "1") {
        progress(&format!("logs kept in {}", dir.keep().display()));
    }
    Ok(Report {
        machine: report::Machine::probe(),
        part_size_mib: mib(settings.part_size as u64),
        parts_in_flight: settings.parts_in_flight,
        throughput: throughput_results,
        cpu_seconds_per_gib: cpu_per_gib,
        cpu_seconds_per_gib_1gib_upload: cpu_per_gib_big,
        memory,
        ingest,
        unary,
        unary_baseline,
        traces,
        small_files,
        resume,
        compression,
        read,
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Section 1 (and 4): each size through the gateway and direct, alternating,
/// after one warm-up of each; the gateway's CPU over its uploads.
async fn throughput(
    plan: &Plan,
    gateway: &Gateway,
    emulator: &Emulator,
    settings: UploadSettings,
    payload: &Payload,
    token: &str,
) -> anyhow::Result<(Vec<ThroughputResult>, f64)> {
    let mut client = GatewayClient::connect(&gateway.grpc_url, token).await?;
    let direct = uploads::direct_client(emulator, settings)?;
    let mut results = Vec::new();
    let (mut cpu, mut bytes) = (0.0, 0usize);
    let cpu_now = || CpuSnapshot::take(gateway, emulator);
    for &(size_mib, runs) in &plan.sizes {
        let size = size_mib * MIB;
        uploads::through_gateway(&mut client, payload, size).await?;
        uploads::direct(&direct, payload, size).await?;
        let (mut via, mut straight) = (Vec::new(), Vec::new());
        let (mut via_cpu, mut straight_cpu) = (CpuSnapshot::default(), CpuSnapshot::default());
        for _ in 0..runs {
            let before = cpu_now()?;
            let elapsed = uploads::through_gateway(&mut client, payload, size).await?;
            let after = cpu_now()?;
            via_cpu.add_since(before, after);
            cpu += after.gateway - before.gateway;
            bytes += size;
            via.push(size_mib as f64 / elapsed.as_secs_f64());
            let elapsed = uploads::direct(&direct, payload, size).await?;
            straight_cpu.add_since(after, cpu_now()?);
            straight.push(size_mib as f64 / elapsed.as_secs_f64());
        }
        let result = ThroughputResult::new(size_mib, via, straight, [via_cpu, straight_cpu]);
        progress(&format!(
            "upload {size_mib} MiB: gateway {:.0} MiB/s, direct {:.0} MiB/s, ratio {:.2}",
            result.gateway_median_mib_s, result.direct_median_mib_s, result.ratio
        ));
        results.push(result);
    }
    Ok((results, cpu / (bytes as f64 / GIB as f64)))
}

/// Section 1b: what bounds one upload besides Filestack: the gRPC transport
/// alone (into a draining server in this process, with tonic's default
/// windows and with the gateway's), and hashing on one core.
async fn ingest_ceiling(
    payload: &Payload,
    settings: UploadSettings,
) -> anyhow::Result<report::IngestResult> {
    let default = ingest::Windows {
        stream: None,
        connection: None,
    };
    let gateway = ingest::Windows {
        stream: Some(STREAM_WINDOW_BYTES),
        connection: Some(CONNECTION_WINDOW_BYTES),
    };
    let size = 256 * MIB;
    let bytes = &payload.bytes()[..size];
    let hashing = hashing::rates(bytes, settings.part_size, uploads::MESSAGE_BYTES, 5);
    let result = report::IngestResult {
        default_windows_mib_s: ingest::drain_rate(default, payload, size, 3).await?,
        gateway_windows_mib_s: ingest::drain_rate(gateway, payload, size, 3).await?,
        hashing,
    };
    progress(&format!(
        "gRPC ingest into a sink: {:.0} MiB/s with default windows, {:.0} MiB/s with the gateway's",
        result.default_windows_mib_s, result.gateway_windows_mib_s
    ));
    progress(&format!(
        "hashing: MD5 of parts {:.0} MiB/s, with SHA-256 in one pass {:.0} MiB/s, in two passes {:.0} MiB/s",
        hashing.md5_parts_mib_s,
        hashing.md5_and_sha256_one_pass_mib_s,
        hashing.md5_and_sha256_two_passes_mib_s
    ));
    Ok(result)
}

/// Section 3: each level runs WhoAmI, SignedUrl and GetDocument back to
/// back, over [`UNARY_DOCUMENTS`] documents. `row_cache`: whether the
/// gateway was started with its document row cache (the default).
async fn unary_levels(
    plan: &Plan,
    gateway: &Gateway,
    payload: &Payload,
    token: &str,
    row_cache: bool,
) -> anyhow::Result<Vec<unary::LevelResult>> {
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(GatewayClient::connect(&gateway.grpc_url, token).await?);
    }
    let mut uploader = clients[0].clone();
    let mut documents = Vec::with_capacity(UNARY_DOCUMENTS);
    for i in 0..UNARY_DOCUMENTS {
        let name = format!("unary-{i}.bin");
        documents.push(uploader.upload(&name, payload.chunks(1024)).await?.id);
    }
    let target = unary::Target {
        clients: &clients,
        documents: &documents,
        row_cache,
    };
    let warm_up = plan.unary_seconds.min(Duration::from_secs(1));
    unary::run_level(&target, Rpc::SignedUrl, 16, warm_up).await?;
    // Without the cache, the highest level only: what a miss costs.
    let levels = if row_cache {
        plan.unary_levels.clone()
    } else {
        plan.unary_levels
            .iter()
            .copied()
            .max()
            .into_iter()
            .collect()
    };
    let cache = if row_cache { "on" } else { "off" };
    let mut results = Vec::new();
    for concurrency in levels {
        for rpc in [Rpc::WhoAmI, Rpc::SignedUrl, Rpc::GetDocument] {
            let result = unary::run_level(&target, rpc, concurrency, plan.unary_seconds).await?;
            progress(&format!(
                "{rpc:?} c={concurrency} row cache {cache}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
                result.requests_per_second, result.p50_ms, result.p99_ms, result.errors
            ));
            results.push(result);
        }
    }
    Ok(results)
}

/// The unary levels (row cache on) on two gateways (this build and a
/// baseline, or traces on and off), alternated level by level over three
/// rounds: the median of each, as `(this, other)`, and the calls each
/// gateway answered in all (its documents' uploads included).
async fn alternated(
    plan: &Plan,
    this: &Gateway,
    other: &Gateway,
    payload: &Payload,
    token: &str,
) -> anyhow::Result<(Vec<(unary::LevelResult, unary::LevelResult)>, [u64; 2])> {
    const ROUNDS: usize = 3;
    let mut calls = [UNARY_DOCUMENTS as u64; 2];
    let mut sides = Vec::new();
    for gateway in [this, other] {
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS {
            clients.push(GatewayClient::connect(&gateway.grpc_url, token).await?);
        }
        let mut documents = Vec::with_capacity(UNARY_DOCUMENTS);
        for i in 0..UNARY_DOCUMENTS {
            let name = format!("unary-{i}.bin");
            let mut uploader = clients[0].clone();
            documents.push(uploader.upload(&name, payload.chunks(1024)).await?.id);
        }
        sides.push((clients, documents));
    }
    let targets: Vec<unary::Target> = sides
        .iter()
        .map(|(clients, documents)| unary::Target {
            clients,
            documents,
            row_cache: true,
        })
        .collect();
    let warm_up = plan.unary_seconds.min(Duration::from_secs(1));
    for (side, target) in targets.iter().enumerate() {
        let warmed = unary::run_level(target, Rpc::SignedUrl, 16, warm_up).await?;
        calls[side] += warmed.requests as u64;
    }
    let mut pairs = Vec::new();
    for &concurrency in &plan.unary_levels {
        for rpc in [Rpc::WhoAmI, Rpc::SignedUrl, Rpc::GetDocument] {
            let mut runs: [Vec<unary::LevelResult>; 2] = [Vec::new(), Vec::new()];
            for _ in 0..ROUNDS {
                for (side, target) in targets.iter().enumerate() {
                    let result = unary::run_level(target, rpc, concurrency, plan.unary_seconds);
                    let result = result.await?;
                    calls[side] += result.requests as u64;
                    runs[side].push(result);
                }
            }
            let [this, other] = runs.map(median_level);
            progress(&format!(
                "{rpc:?} c={concurrency}: {:.0} req/s, against {:.0} req/s",
                this.requests_per_second, other.requests_per_second
            ));
            pairs.push((this, other));
        }
    }
    Ok((pairs, calls))
}

/// The unary levels with every span exported to a collector stand-in,
/// alternated with the same build exporting nothing.
async fn traces_cost(
    plan: &Plan,
    dir: &std::path::Path,
    emulator: &Emulator,
    settings: UploadSettings,
    payload: &Payload,
    token: &str,
) -> anyhow::Result<traces::TracesResult> {
    let sink = traces::Sink::start().await?;
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", sink.url.as_str())];
    let mut on = Gateway::start_binary(procs::BINARY, dir, 10, emulator, settings, &[], &env)?;
    let off = Gateway::start(dir, 11, emulator, settings, &[])?;
    let (levels, [calls, _]) = alternated(plan, &on, &off, payload, token).await?;
    // SIGTERM: the exporting gateway sends its last spans before it exits.
    on.proc.terminate()?;
    let (rpc_spans, spans) = sink.received();
    progress(&format!(
        "traces: {calls} calls, {rpc_spans} RPC spans received, {spans} spans"
    ));
    Ok(traces::TracesResult {
        levels,
        calls,
        rpc_spans,
        spans,
    })
}

/// The run of median throughput.
fn median_level(mut runs: Vec<unary::LevelResult>) -> unary::LevelResult {
    runs.sort_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second));
    runs.swap_remove(runs.len() / 2)
}

/// Section 2a: one large upload on a fresh gateway.
async fn big_upload(
    plan: &Plan,
    gateway: &Gateway,
    payload: &Payload,
    token: &str,
) -> anyhow::Result<MemoryResult> {
    let mut client = GatewayClient::connect(&gateway.grpc_url, token).await?;
    let idle = gateway.proc.rss()?;
    let cpu = gateway.proc.cpu_seconds()?;
    let elapsed = uploads::through_gateway(&mut client, payload, plan.big_upload).await?;
    let result = MemoryResult {
        scenario: format!("one {} MiB upload", plan.big_upload / MIB),
        idle_rss_mib: mib(idle),
        peak_rss_mib: mib(gateway.proc.peak_rss()?),
        target_mib: 64.0,
        seconds: elapsed.as_secs_f64(),
        cpu_seconds: gateway.proc.cpu_seconds()? - cpu,
    };
    progress(&format!(
        "{}: peak RSS {:.1} MiB in {:.1} s",
        result.scenario, result.peak_rss_mib, result.seconds
    ));
    Ok(result)
}

/// Section 2b: many uploads at once on a fresh gateway, over a few
/// connections. The target is the gateway's upload buffer budget plus 32 MiB.
async fn concurrent_uploads(
    plan: &Plan,
    gateway: &Gateway,
    payload: &Payload,
    token: &str,
) -> anyhow::Result<MemoryResult> {
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(GatewayClient::connect(&gateway.grpc_url, token).await?);
    }
    let idle = gateway.proc.rss()?;
    let cpu = gateway.proc.cpu_seconds()?;
    let started = Instant::now();
    let mut uploads = tokio::task::JoinSet::new();
    for i in 0..plan.concurrent_uploads {
        let mut client = clients[i % clients.len()].clone();
        let chunks = payload.chunks(plan.concurrent_size);
        uploads.spawn(async move { client.upload(&format!("c{i}.bin"), chunks).await });
    }
    while let Some(joined) = uploads.join_next().await {
        joined??;
    }
    let seconds = started.elapsed().as_secs_f64();
    // Uploads past the gateway's buffer budget wait for room, so its peak
    // memory is bounded by the budget, not by the number of uploads.
    let budget = UPLOAD_BUDGET_BYTES;
    let result = MemoryResult {
        scenario: format!(
            "{} concurrent {} MiB uploads",
            plan.concurrent_uploads,
            plan.concurrent_size / MIB
        ),
        idle_rss_mib: mib(idle),
        peak_rss_mib: mib(gateway.proc.peak_rss()?),
        target_mib: mib(budget) + 32.0,
        seconds,
        cpu_seconds: gateway.proc.cpu_seconds()? - cpu,
    };
    progress(&format!(
        "{}: peak RSS {:.1} MiB in {seconds:.1} s",
        result.scenario, result.peak_rss_mib
    ));
    Ok(result)
}

/// Section 5: one 256 MiB file read whole through the gateway (gRPC Read,
/// hashed and checked), straight from the emulator (signed GET), straight
/// and checked against the SHA-256 by the client (the gateway's guarantee,
/// without the gateway), and through the gateway without its first byte (a
/// range, not hashed: what the hash costs), alternating, after one warm-up
/// of each; the gateway's
/// peak RSS over the reads. The file is uploaded through a gateway that is then restarted on
/// the same database, so that the peak is the reads' alone.
async fn read_throughput(
    plan: &Plan,
    dir: &std::path::Path,
    emulator: &Emulator,
    settings: UploadSettings,
    payload: &Payload,
    token: &str,
) -> anyhow::Result<ReadResult> {
    const RUN: usize = 5;
    let gateway = Gateway::start(dir, RUN, emulator, settings, &[])?;
    let mut client = GatewayClient::connect(&gateway.grpc_url, token).await?;
    let document = client.upload("read.bin", payload.chunks(READ_SIZE)).await?;
    drop(gateway);
    let gateway = Gateway::start(dir, RUN, emulator, settings, &[])?;
    let mut client = GatewayClient::connect(&gateway.grpc_url, token).await?;
    let filestack = uploads::direct_client(emulator, settings)?;
    let http = reqwest::Client::new();
    // Pinned: the gateway alone on CPU 1, the emulator and this process
    // (the clients) on CPU 0, for both the gateway's and the direct reads.
    let pinned = std::env::var("FILEGATE_BENCH_PIN").is_ok_and(|v| v == "1");
    if pinned {
        procs::pin(gateway.proc.pid(), 1)?;
        procs::pin(emulator.proc.pid(), 0)?;
        procs::pin(std::process::id(), 0)?;
        progress("read: gateway on CPU 1, emulator and clients on CPU 0");
    }
    let idle = gateway.proc.rss()?;
    let (id, handle) = (document.id.as_str(), document.handle.as_str());
    let sha256 = Some(document.sha256.as_str());
    read::through_gateway(&mut client, id, 0, READ_SIZE).await?;
    read::through_gateway(&mut client, id, 1, READ_SIZE).await?;
    read::direct(&http, &filestack, handle, READ_SIZE, None).await?;
    read::direct(&http, &filestack, handle, READ_SIZE, sha256).await?;
    let size_mib = READ_SIZE / MIB;
    let rate = |elapsed: Duration| size_mib as f64 / elapsed.as_secs_f64();
    let (mut via, mut ranged, mut straight) = (Vec::new(), Vec::new(), Vec::new());
    let mut checked = Vec::new();
    let (mut via_cpu, mut straight_cpu) = (CpuSnapshot::default(), CpuSnapshot::default());
    let cpu_now = || CpuSnapshot::take(&gateway, emulator);
    for _ in 0..plan.read_runs {
        let before = cpu_now()?;
        via.push(rate(
            read::through_gateway(&mut client, id, 0, READ_SIZE).await?,
        ));
        let after = cpu_now()?;
        via_cpu.add_since(before, after);
        straight.push(rate(
            read::direct(&http, &filestack, handle, READ_SIZE, None).await?,
        ));
        straight_cpu.add_since(after, cpu_now()?);
        checked.push(rate(
            read::direct(&http, &filestack, handle, READ_SIZE, sha256).await?,
        ));
        ranged.push(rate(
            read::through_gateway(&mut client, id, 1, READ_SIZE).await?,
        ));
    }
    let ranged_median = report::median(&ranged);
    let checked_median = report::median(&checked);
    let throughput = ThroughputResult::new(size_mib, via, straight, [via_cpu, straight_cpu]);
    let result = ReadResult {
        checked_ratio: throughput.gateway_median_mib_s / checked_median,
        checked_median_mib_s: checked_median,
        checked_mib_s: checked,
        idle_rss_mib: mib(idle),
        peak_rss_mib: mib(gateway.proc.peak_rss()?),
        target_mib: READ_RSS_TARGET_MIB,
        ranged_ratio: ranged_median / throughput.direct_median_mib_s,
        ranged_median_mib_s: ranged_median,
        ranged_mib_s: ranged,
        throughput,
        pinned,
    };
    progress(&format!(
        "read {size_mib} MiB: gateway {:.0} MiB/s, direct {:.0} MiB/s, ratio {:.2} (paired {:.2}); direct checked against the SHA-256 {:.0} MiB/s, ratio {:.2}; without the first byte (not hashed) {:.0} MiB/s, ratio {:.2}; gateway peak RSS {:.1} MiB",
        result.throughput.gateway_median_mib_s,
        result.throughput.direct_median_mib_s,
        result.throughput.ratio,
        result.throughput.paired_ratio,
        result.checked_median_mib_s,
        result.checked_ratio,
        result.ranged_median_mib_s,
        result.ranged_ratio,
        result.peak_rss_mib
    ));
    Ok(result)
}
