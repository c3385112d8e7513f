//! The results: a table on stdout and `target/bench/filegate.json`, each
//! figure beside its target.

use std::path::PathBuf;

use filegate::gateway::app::{CONNECTION_WINDOW_BYTES, STREAM_WINDOW_BYTES};
use serde::Serialize;

use crate::compression::CompressionResult;
use crate::procs::CpuSnapshot;
use crate::resume::ResumeResult;
use crate::small::{self, SmallFileResult};
use crate::traces::TracesResult;
use crate::unary::{LevelResult, Rpc};

const MIB: f64 = (1u64 << 20) as f64;

/// Upload throughput of one file size, through the gateway and direct.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputResult {
    pub size_mib: usize,
    pub runs: usize,
    pub gateway_mib_s: Vec<f64>,
    pub direct_mib_s: Vec<f64>,
    pub gateway_median_mib_s: f64,
    pub direct_median_mib_s: f64,
    /// Gateway median over direct median.
    pub ratio: f64,
    /// Median of the per-pair ratios (each gateway run over the direct run
    /// right after it): less sensitive to load that drifts during the run.
    pub paired_ratio: f64,
    /// CPU seconds per GiB of each process while uploading through the gateway.
    pub cpu_per_gib_via_gateway: CpuSnapshot,
    /// The same while uploading direct (the gateway idles).
    pub cpu_per_gib_direct: CpuSnapshot,
}

impl ThroughputResult {
    /// Medians and ratio of per-run throughputs.
    pub fn new(
        size_mib: usize,
        gateway_mib_s: Vec<f64>,
        direct_mib_s: Vec<f64>,
        [via, straight]: [CpuSnapshot; 2],
    ) -> Self {
        let gateway = median(&gateway_mib_s);
        let direct = median(&direct_mib_s);
        let gib = (size_mib * gateway_mib_s.len()) as f64 / 1024.0;
        let pairs: Vec<f64> = gateway_mib_s
            .iter()
            .zip(&direct_mib_s)
            .map(|(via, straight)| via / straight)
            .collect();
        Self {
            paired_ratio: median(&pairs),
            cpu_per_gib_via_gateway: via.per_gib(gib),
            cpu_per_gib_direct: straight.per_gib(gib),
            size_mib,
            runs: gateway_mib_s.len(),
            gateway_mib_s,
            direct_mib_s,
            gateway_median_mib_s: gateway,
            direct_median_mib_s: direct,
            ratio: gateway / direct,
        }
    }
}

/// Peak memory of the gateway during one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryResult {
    pub scenario: String,
    pub idle_rss_mib: f64,
    pub peak_rss_mib: f64,
    pub target_mib: f64,
    pub seconds: f64,
    pub cpu_seconds: f64,
}

/// A table of unary levels run on two gateways: `header`, then one row per
/// pair with both throughputs, their ratio and both p99s.
pub fn paired_levels(header: &str, pairs: &[(LevelResult, LevelResult)]) -> String {
    let mut out = format!("{header}\n|---|---:|---:|---:|---:|---:|---:|\n");
    for (this, other) in pairs {
        out.push_str(&format!(
            "| {:?} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} |\n",
            this.rpc,
            this.concurrency,
            this.requests_per_second,
            other.requests_per_second,
            this.requests_per_second / other.requests_per_second,
            this.p99_ms,
            other.p99_ms
        ));
    }
    out
}

/// Reads of one file through the gateway and direct, and the gateway's
/// memory meanwhile.
#[derive(Debug, Clone, Serialize)]
pub struct ReadResult {
    /// Throughput and CPU of whole-file reads (hashed), as for uploads.
    pub throughput: ThroughputResult,
    /// Direct GETs whose client hashes the bytes and checks them against
    /// the document's SHA-256 (the guarantee a whole-file Read gives), MiB/s.
    pub checked_mib_s: Vec<f64>,
    pub checked_median_mib_s: f64,
    /// The gateway's whole-file median over their median.
    pub checked_ratio: f64,
    /// Reads of all but the first byte (a range, not hashed), MiB/s.
    pub ranged_mib_s: Vec<f64>,
    pub ranged_median_mib_s: f64,
    /// Their median over the direct median.
    pub ranged_ratio: f64,
    /// The gateway's RSS before the reads.
    pub idle_rss_mib: f64,
    /// Its peak (`VmHWM`) after them; it started after the upload.
    pub peak_rss_mib: f64,
    pub target_mib: f64,
    /// Whether the gateway ran alone on one CPU, the emulator and the
    /// clients on another (`FILEGATE_BENCH_PIN=1`).
    pub pinned: bool,
}

/// What bounds one upload besides Filestack: the gRPC transport alone (one
/// 256 MiB upload stream into a server that only drains it, median of 3) and
/// hashing.
#[derive(Debug, Clone, Serialize)]
pub struct IngestResult {
    /// tonic's default HTTP/2 windows.
    pub default_windows_mib_s: f64,
    /// The gateway's stream and connection windows.
    pub gateway_windows_mib_s: f64,
    pub hashing: HashingResult,
}

/// Hashing 256 MiB on one core, in parts of the upload part size (median of 5).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HashingResult {
    /// The MD5 of each part only (what the direct client computes).
    pub md5_parts_mib_s: f64,
    /// And the SHA-256 of the whole, in the same pass (what the gateway computes).
    pub md5_and_sha256_one_pass_mib_s: f64,
    /// And the SHA-256 of the whole, in a second pass.
    pub md5_and_sha256_two_passes_mib_s: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub part_size_mib: f64,
    pub parts_in_flight: usize,
    pub throughput: Vec<ThroughputResult>,
    /// Gateway CPU (user + sys) per GiB over the throughput runs' gateway uploads.
    pub cpu_seconds_per_gib: f64,
    /// The same over the single 1 GiB upload.
    pub cpu_seconds_per_gib_1gib_upload: f64,
    pub memory: Vec<MemoryResult>,
    pub ingest: Option<IngestResult>,
    pub unary: Vec<LevelResult>,
    /// This build's and a baseline build's unary levels, alternated
    /// (`FILEGATE_BENCH_BASELINE`).
    pub unary_baseline: Vec<(LevelResult, LevelResult)>,
    /// The unary levels with traces exported and not, alternated.
    pub traces: Option<TracesResult>,
    pub small_files: Vec<SmallFileResult>,
    pub resume: Option<ResumeResult>,
    pub compression: Option<CompressionResult>,
    pub read: Option<ReadResult>,
    pub total_seconds: f64,
}

/// Where the numbers came from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
}

impl Machine {
    /// Read from `/proc`.
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            memory_gib: memory_kib / MIB,
        }
    }
}

/// The median (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

impl Report {
    /// Writes the JSON file and returns its path.
    pub fn write_json(&self) -> anyhow::Result<PathBuf> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("filegate.json");
        std::fs::write(&path, serde_json::to_vec_pretty(self)?)?;
        Ok(path)
    }

    /// The table, as Markdown.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str("| Upload | gateway MiB/s | direct MiB/s | ratio | paired ratio | target | CPU s/GiB via gateway: gateway + emulator + client | direct: emulator + client |\n");
        out.push_str("|---|---:|---:|---:|---:|---|---|---|\n");
        for t in &self.throughput {
            let target = if t.size_mib == 256 {
                format!(">= 0.90: {}", verdict(t.ratio >= 0.9))
            } else {
                String::new()
            };
            let (via, direct) = (t.cpu_per_gib_via_gateway, t.cpu_per_gib_direct);
            out.push_str(&format!(
                "| {} MiB (median of {}) | {:.0} | {:.0} | {:.2} | {:.2} | {target} | {:.2} + {:.2} + {:.2} | {:.2} + {:.2} |\n",
                t.size_mib,
                t.runs,
                t.gateway_median_mib_s,
                t.direct_median_mib_s,
                t.ratio,
                t.paired_ratio,
                via.gateway,
                via.emulator,
                via.client,
                direct.emulator,
                direct.client
            ));
        }
        out.push_str(&format!(
            "\nGateway CPU (user+sys): {:.2} s/GiB over the throughput runs, {:.2} s/GiB in the 1 GiB upload\n\n",
            self.cpu_seconds_per_gib, self.cpu_seconds_per_gib_1gib_upload
        ));
        if let Some(ingest) = &self.ingest {
            out.push_str(&format!(
                "gRPC ingest alone (256 MiB into a draining server): {:.0} MiB/s with default HTTP/2 windows, {:.0} MiB/s with the gateway's ({} MiB per stream, {} MiB per connection)\n\n",
                ingest.default_windows_mib_s,
                ingest.gateway_windows_mib_s,
                STREAM_WINDOW_BYTES >> 20,
                CONNECTION_WINDOW_BYTES >> 20
            ));
            let hashing = ingest.hashing;
            out.push_str(&format!(
                "Hashing (one core, {:.0} MiB parts): MD5 of parts {:.0} MiB/s; with the SHA-256 of the file in the same pass {:.0} MiB/s, in a second pass {:.0} MiB/s\n\n",
                self.part_size_mib,
                hashing.md5_parts_mib_s,
                hashing.md5_and_sha256_one_pass_mib_s,
                hashing.md5_and_sha256_two_passes_mib_s
            ));
        }
        out.push_str("| Memory scenario | idle RSS MiB | peak RSS (VmHWM) MiB | target MiB |\n");
        out.push_str("|---|---:|---:|---|\n");
        for m in &self.memory {
            out.push_str(&format!(
                "| {} | {:.1} | {:.1} | <= {:.0}: {} |\n",
                m.scenario,
                m.idle_rss_mib,
                m.peak_rss_mib,
                m.target_mib,
                verdict(m.peak_rss_mib <= m.target_mib)
            ));
        }
        out.push_str(
            "\n| RPC | row cache | concurrency | req/s | p50 ms | p99 ms | errors | vs WhoAmI |\n",
        );
        out.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
        for level in &self.unary {
            let ceiling = self.unary.iter().find(|other| {
                other.rpc == Rpc::WhoAmI
                    && other.concurrency == level.concurrency
                    && other.row_cache == level.row_cache
            });
            let ratio = ceiling.map_or(f64::NAN, |c| {
                level.requests_per_second / c.requests_per_second
            });
            out.push_str(&format!(
                "| {:?} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {:.2} |\n",
                level.rpc,
                if level.row_cache { "on" } else { "off" },
                level.concurrency,
                level.requests_per_second,
                level.p50_ms,
                level.p99_ms,
                level.errors,
                ratio
            ));
        }
        out.push_str(&self.unary_target());
        out.push_str(&self.unary_against_baseline());
        if let Some(traces) = &self.traces {
            out.push('\n');
            out.push_str(&traces.table());
        }
        if !self.small_files.is_empty() {
            out.push('\n');
            out.push_str(small::TABLE_HEADER);
            for result in &self.small_files {
                out.push_str(&result.row());
            }
        }
        if let Some(resume) = &self.resume {
            out.push('\n');
            out.push_str(&resume.line());
        }
        if let Some(compression) = &self.compression {
            out.push('\n');
            out.push_str(&compression.line());
        }
        out.push_str(&self.read_table());
        out
    }

    fn read_table(&self) -> String {
        let Some(read) = &self.read else {
            return String::new();
        };
        let t = &read.throughput;
        let (via, direct) = (t.cpu_per_gib_via_gateway, t.cpu_per_gib_direct);
        let mut out = String::new();
        if read.pinned {
            out.push_str("\nReads pinned: the gateway alone on CPU 1, the emulator and the clients on CPU 0.\n");
        }
        out.push_str("\n| Read | gateway MiB/s | direct MiB/s | ratio | paired ratio | target | CPU s/GiB via gateway: gateway + emulator + client | direct: emulator + client |\n");
        out.push_str("|---|---:|---:|---:|---:|---|---|---|\n");
        out.push_str(&format!(
            "| {} MiB (median of {}) | {:.0} | {:.0} | {:.2} | {:.2} | >= 0.90: {} | {:.2} + {:.2} + {:.2} | {:.2} + {:.2} |\n",
            t.size_mib,
            t.runs,
            t.gateway_median_mib_s,
            t.direct_median_mib_s,
            t.ratio,
            t.paired_ratio,
            verdict(t.ratio >= 0.9),
            via.gateway,
            via.emulator,
            via.client,
            direct.emulator,
            direct.client
        ));
        out.push_str(&format!(
            "| {} MiB, the direct GET checked against the SHA-256 by its client | {:.0} | {:.0} | {:.2} | | | | |\n",
            t.size_mib, t.gateway_median_mib_s, read.checked_median_mib_s, read.checked_ratio
        ));
        out.push_str(&format!(
            "| {} MiB less its first byte (a range, not hashed) | {:.0} | {:.0} | {:.2} | | | | |\n",
            t.size_mib, read.ranged_median_mib_s, t.direct_median_mib_s, read.ranged_ratio
        ));
        out.push_str(&format!(
            "\nGateway RSS while reading: idle {:.1} MiB, peak (VmHWM) {:.1} MiB (target <= {:.0}: {})\n",
            read.idle_rss_mib,
            read.peak_rss_mib,
            read.target_mib,
            verdict(read.peak_rss_mib <= read.target_mib)
        ));
        out
    }

    /// This build's unary levels next to the baseline's, when one ran.
    fn unary_against_baseline(&self) -> String {
        if self.unary_baseline.is_empty() {
            return String::new();
        }
        let header = "| RPC (row cache on), alternated with a baseline build, medians of 3 | concurrency | req/s | baseline req/s | ratio | p99 ms | baseline p99 ms |";
        format!("\n{}", paired_levels(header, &self.unary_baseline))
    }

    fn unary_target(&self) -> String {
        let at = |rpc: Rpc| {
            self.unary
                .iter()
                .find(|l| l.rpc == rpc && l.concurrency == 64 && l.row_cache)
        };
        match (at(Rpc::SignedUrl), at(Rpc::WhoAmI)) {
            (Some(signed), Some(ceiling)) => {
                let ratio = signed.requests_per_second / ceiling.requests_per_second;
                format!(
                    "\nSignedUrl at c=64: {:.2} of WhoAmI (target >= 0.50: {}), p99 {:.2} ms (target < 10: {})\n",
                    ratio,
                    verdict(ratio >= 0.5),
                    signed.p99_ms,
                    verdict(signed.p99_ms < 10.0)
                )
            }
            _ => String::new(),
        }
    }
}
