//! The emulator and the gateway as child processes of the benchmark, and
//! what `/proc` says about them (peak and current RSS, CPU time).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};

/// The release binary cargo built for this benchmark.
pub const BINARY: &str = env!("CARGO_BIN_EXE_filegate");

/// API key and app secret of the benchmark's emulator.
pub const API_KEY: &str = "bench-api-key";
pub const APP_SECRET: &str = "bench-app-secret-of-some-length";
/// HS256 secret of the benchmark's gateway.
pub const JWT_SECRET: &str = "bench-jwt-secret-of-some-length";

/// Largest upload the benchmark's gateway accepts (the 1 GiB run needs more
/// than the default 100 MiB).
pub const MAX_UPLOAD_BYTES: u64 = 2 << 30;

/// How long a child may take to print its listening line.
const STARTUP: Duration = Duration::from_secs(60);

/// A child process, killed and reaped when dropped.
pub struct Proc {
    child: std::process::Child,
    name: &'static str,
}

impl Proc {
    /// Starts `command` (stdout piped, stderr to `log`) and waits for the
    /// stdout line that starts with `prefix`; returns the rest of it.
    fn spawn(
        name: &'static str,
        mut command: Command,
        log: &Path,
        prefix: &'static str,
    ) -> anyhow::Result<(Proc, String)> {
        let stderr = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {name} ({BINARY})"))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let proc = Proc { child, name };
        let (found, listening) = mpsc::channel();
        std::thread::spawn(move || drain(stdout, prefix, found));
        match listening.recv_timeout(STARTUP) {
            Ok(rest) => Ok((proc, rest)),
            Err(_) => bail!("{name} did not print '{prefix}' (log: {})", log.display()),
        }
    }

    /// The operating system's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        status_kib(self.pid(), "VmHWM:").map(|kib| kib * 1024)
    }

    /// Current resident set size (`VmRSS`), in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        status_kib(self.pid(), "VmRSS:").map(|kib| kib * 1024)
    }

    /// User plus system CPU time so far, in seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(&self.pid().to_string())
    }
}

/// User plus system CPU time of `/proc/{pid}` (`self` works), in seconds.
pub fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<u64> {
        Ok(fields.get(index).context("short stat")?.parse()?)
    };
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    Ok((ticks(11)? + ticks(12)?) as f64 / clock_ticks() as f64)
}

/// CPU seconds of the three processes at one moment.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CpuSnapshot {
    pub gateway: f64,
    pub emulator: f64,
    /// This benchmark process (the clients).
    pub client: f64,
}

impl CpuSnapshot {
    /// Now.
    pub fn take(gateway: &Gateway, emulator: &Emulator) -> anyhow::Result<CpuSnapshot> {
        Ok(CpuSnapshot {
            gateway: gateway.proc.cpu_seconds()?,
            emulator: emulator.proc.cpu_seconds()?,
            client: cpu_seconds("self")?,
        })
    }

    /// What was used since `earlier`, added to `self`.
    pub fn add_since(&mut self, earlier: CpuSnapshot, now: CpuSnapshot) {
        self.gateway += now.gateway - earlier.gateway;
        self.emulator += now.emulator - earlier.emulator;
        self.client += now.client - earlier.client;
    }

    /// Each figure divided by `gib`.
    pub fn per_gib(self, gib: f64) -> CpuSnapshot {
        CpuSnapshot {
            gateway: self.gateway / gib,
            emulator: self.emulator / gib,
            client: self.client / gib,
        }
    }
}

impl Proc {
    /// SIGTERM, then waits for the exit (the process drains and flushes).
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(sent.success(), "SIGTERM to the {}", self.name);
        Ok(self.child.wait()?)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Err(error) = self.child.kill() {
            eprintln!("stopping the {}: {error}", self.name);
        }
        let _ = self.child.wait();
    }
}

/// Sends the rest of the first line that starts with `prefix`, then keeps
/// reading so that the child never blocks on a full pipe.
fn drain(stdout: std::process::ChildStdout, prefix: &str, found: mpsc::Sender<String>) {
    let mut sent = false;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { return };
        if !sent && let Some(rest) = line.strip_prefix(prefix) {
            sent = found.send(rest.trim().to_owned()).is_ok();
        }
    }
}

fn status_kib(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
    let kib = line.trim().trim_end_matches("kB").trim();
    Ok(kib.parse()?)
}

/// `sysconf(_SC_CLK_TCK)`, asked of `getconf` (100 on Linux in practice).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// A running emulator process.
pub struct Emulator {
    pub proc: Proc,
    /// `http://ADDR`.
    pub url: String,
}

impl Emulator {
    /// `filegate emulator --listen 127.0.0.1:0 --data-dir DIR/emulator ...`.
    pub fn start(dir: &Path) -> anyhow::Result<Emulator> {
        let mut command = Command::new(BINARY);
        command
            .args(["emulator", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("emulator"))
            .args(["--api-key", API_KEY, "--app-secret", APP_SECRET]);
        let log = dir.join("emulator.log");
        let (proc, url) =
            Proc::spawn("emulator", command, &log, "filegate emulator listening on ")?;
        Ok(Emulator { proc, url })
    }
}

/// A running gateway process, pointed at an emulator process.
pub struct Gateway {
    pub proc: Proc,
    /// `http://ADDR` of the gRPC listener.
    pub grpc_url: String,
}

/// The gateway's upload buffer budget (its default).
pub const UPLOAD_BUDGET_BYTES: u64 = 256 << 20;

/// The gateway's upload settings (its defaults), for the direct client too.
#[derive(Debug, Clone, Copy)]
pub struct UploadSettings {
    pub part_size: usize,
    pub parts_in_flight: usize,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            part_size: 8 << 20,
            parts_in_flight: 4,
        }
    }
}

impl Gateway {
    /// `filegate serve` on port 0 with SQLite in `dir/gateway-N`, with
    /// `extra` flags.
    pub fn start(
        dir: &Path,
        run: usize,
        emulator: &Emulator,
        settings: UploadSettings,
        extra: &[&str],
    ) -> anyhow::Result<Gateway> {
        Self::start_binary(BINARY, dir, run, emulator, settings, extra, &[])
    }

    /// [`Gateway::start`] with another build of filegate (a baseline), and
    /// `env` set.
    pub fn start_binary(
        binary: &str,
        dir: &Path,
        run: usize,
        emulator: &Emulator,
        settings: UploadSettings,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Gateway> {
        let data_dir: PathBuf = dir.join(format!("gateway-{run}"));
        let mut command = Command::new(binary);
        command
            .args(["serve", "--grpc-listen", "127.0.0.1:0"])
            .args(["--http-listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .args(["--jwt-secret", JWT_SECRET])
            .arg(format!("--max-upload-bytes={MAX_UPLOAD_BYTES}"))
            .arg(format!("--part-size={}", settings.part_size))
            .arg(format!("--parts-in-flight={}", settings.parts_in_flight))
            .arg(format!(
                "--upload-memory-budget-bytes={UPLOAD_BUDGET_BYTES}"
            ))
            // Uploads past the budget queue (backpressure) rather than fail.
            .arg("--upload-admission-timeout-secs=600")
            .args(extra)
            .env_remove("DATABASE_URL")
            .env("FILESTACK_API_KEY", API_KEY)
            .env("FILESTACK_APP_SECRET", APP_SECRET)
            .env("FILESTACK_API_URL", format!("{}/api", emulator.url))
            .env("FILESTACK_UPLOAD_URL", &emulator.url)
            .env("FILESTACK_CDN_URL", &emulator.url)
            .envs(env.iter().copied());
        let log = dir.join(format!("gateway-{run}.log"));
        let (proc, rest) = Proc::spawn("gateway", command, &log, "filegate listening: ")?;
        progress(&format!("gateway {run}: {rest} (pid {})", proc.pid()));
        let grpc = rest
            .split_whitespace()
            .find_map(|field| field.strip_prefix("grpc="))
            .with_context(|| format!("no grpc= in '{rest}'"))?;
        Ok(Gateway {
            proc,
            grpc_url: format!("http://{grpc}"),
        })
    }
}

/// Pins every thread of process `pid` (and the threads it starts later) to
/// CPU `cpu`, with `taskset`.
pub fn pin(pid: u32, cpu: usize) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-c", "-p", &cpu.to_string(), &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .context("taskset")?;
    anyhow::ensure!(status.success(), "taskset {cpu} for pid {pid}");
    Ok(())
}

/// Writes `line` to stdout at once (progress while the benchmark runs).
pub fn progress(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
