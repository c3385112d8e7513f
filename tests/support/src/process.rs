//! `filegate serve` as a child process, for tests of the binary itself: what
//! it prints, how it stops on a signal, a crash, what it logs.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::auth::token;
use crate::emulator::TestEmulator;
use crate::rpc::Rpc;

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

/// Longest wait for the process to print a line or to exit.
const PATIENCE: Duration = Duration::from_secs(60);

/// A running `filegate serve` and the readers of its output.
pub struct ServedGateway {
    pub child: Child,
    /// `host:port` of the gRPC listener, as printed.
    pub grpc_addr: String,
    pub http_url: String,
    /// Its Filestack: the embedded emulator in local mode.
    pub emulator_url: String,
    local: bool,
    data_dir: PathBuf,
    jwt_secret: Option<String>,
    stdout_lines: mpsc::UnboundedReceiver<String>,
    stderr_lines: mpsc::UnboundedReceiver<String>,
    stdout: JoinHandle<Vec<String>>,
    stderr: JoinHandle<Vec<String>>,
}

impl Rpc for ServedGateway {
    fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// A token for `sub`, signed with the JWT secret the process was given.
    fn token(&self, sub: &str) -> String {
        let secret = self.jwt_secret.as_deref();
        token(secret.expect("started with a JWT secret"), sub)
    }
}

impl ServedGateway {
    /// Starts `bin serve` on port 0 in local mode on `data_dir`, with no
    /// Filestack key, database URL or JWT secret from the environment but
    /// `jwt_secret` when given; `configure` adds flags and environment.
    /// Returns once it printed its addresses.
    pub async fn start(
        bin: &str,
        data_dir: &Path,
        jwt_secret: Option<&str>,
        configure: impl FnOnce(&mut Command),
    ) -> ServedGateway {
        Self::launch(bin, data_dir, jwt_secret, None, configure).await
    }

    /// Starts `bin serve` on port 0 with `emulator` (one this test started,
    /// which outlives the process) as its Filestack, on `data_dir`;
    /// otherwise as [`ServedGateway::start`].
    pub async fn start_against(
        bin: &str,
        data_dir: &Path,
        jwt_secret: &str,
        emulator: &TestEmulator,
        configure: impl FnOnce(&mut Command),
    ) -> ServedGateway {
        Self::launch(bin, data_dir, Some(jwt_secret), Some(emulator), configure).await
    }

    async fn launch(
        bin: &str,
        data_dir: &Path,
        jwt_secret: Option<&str>,
        filestack: Option<&TestEmulator>,
        configure: impl FnOnce(&mut Command),
    ) -> ServedGateway {
        let mut command = Command::new(bin);
        command
            .args(SERVE_ON_PORT_ZERO)
            .arg("--data-dir")
            .arg(data_dir)
            .env_remove("FILESTACK_API_KEY")
            .env_remove("DATABASE_URL")
            .env_remove("FILEGATE_JWT_SECRET");
        if let Some(secret) = jwt_secret {
            command.args(["--jwt-secret", secret]);
        }
        if let Some(emulator) = filestack {
            let base = emulator.base_url.as_str();
            command
                .env("FILESTACK_API_KEY", emulator.api_key())
                .env("FILESTACK_APP_SECRET", emulator.app_secret().expose())
                .args(["--filestack-api-url", &format!("{base}/api")])
                .args(["--filestack-upload-url", base, "--filestack-cdn-url", base]);
        }
        configure(&mut command);
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("filegate serve starts");
        let (tx, mut stdout_lines) = mpsc::unbounded_channel();
        let stdout = collect(child.stdout.take().expect("stdout"), Some(tx));
        let (tx, stderr_lines) = mpsc::unbounded_channel();
        let stderr = collect(child.stderr.take().expect("stderr"), Some(tx));
        let addresses = async {
            let (mut grpc, mut http) = (None, None);
            while let Some(line) = stdout_lines.recv().await {
                if line.starts_with("filegate listening:") {
                    grpc = word_after(&line, "grpc=");
                    http = word_after(&line, "http=");
                    if let Some(emulator) = filestack {
                        return (grpc, http, Some(emulator.base_url.clone()));
                    }
                }
                if let Some(emulator) = word_after(&line, "Filestack emulator at ") {
                    return (grpc, http, Some(emulator));
                }
            }
            (grpc, http, None)
        };
        let (grpc, http, emulator) = tokio::time::timeout(PATIENCE, addresses)
            .await
            .expect("start-up lines in time");
        ServedGateway {
            child,
            grpc_addr: grpc.expect("the gRPC address"),
            http_url: format!("http://{}", http.expect("the HTTP address")),
            emulator_url: emulator.expect("the emulator URL"),
            local: filestack.is_none(),
            data_dir: data_dir.to_owned(),
            jwt_secret: jwt_secret.map(str::to_owned),
            stdout_lines,
            stderr_lines,
            stdout,
            stderr,
        }
    }

    /// The embedded emulator (local mode).
    pub fn emulator(&self) -> TestEmulator {
        assert!(
            self.local,
            "not in local mode: use the emulator the test started"
        );
        TestEmulator::local(&self.emulator_url, &self.data_dir)
    }

    /// The next line on stdout that starts with `prefix` (after the
    /// start-up lines [`ServedGateway::start`] read).
    pub async fn line_starting_with(&mut self, prefix: &str) -> String {
        let read = async {
            while let Some(line) = self.stdout_lines.recv().await {
                if line.starts_with(prefix) {
                    return line;
                }
            }
            panic!("stdout closed before a line starting with {prefix:?}");
        };
        tokio::time::timeout(PATIENCE, read)
            .await
            .expect("the line in time")
    }

    /// The next line on stderr (the log) that holds each of `needles`.
    pub async fn log_line_with(&mut self, needles: &[&str]) -> String {
        let read = async {
            while let Some(line) = self.stderr_lines.recv().await {
                if needles.iter().all(|needle| line.contains(needle)) {
                    return line;
                }
            }
            panic!("stderr closed before a line with {needles:?}");
        };
        tokio::time::timeout(PATIENCE, read)
            .await
            .expect("the line in time")
    }

    /// Sends `signal` (a name `kill` knows: `HUP`, `TERM`, ...).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status();
        assert!(sent.expect("kill runs").success(), "SIG{signal} sent");
    }

    /// SIGTERM, a clean exit, then every line of stdout and stderr.
    pub async fn stop(mut self) -> Vec<String> {
        let status = terminate(&mut self.child).await;
        assert!(status.success(), "exit status {status:?}");
        let mut lines = self.stdout.await.expect("stdout reader");
        lines.extend(self.stderr.await.expect("stderr reader"));
        lines
    }
}

/// Sends SIGTERM to `child` and waits (bounded) until it exits.
pub async fn terminate(child: &mut Child) -> ExitStatus {
    let pid = child.id().expect("running").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert!(kill.expect("kill runs").success(), "SIGTERM sent");
    let status = tokio::time::timeout(PATIENCE, child.wait()).await;
    status.expect("exits in time").expect("exit status")
}

/// Collects every line of `pipe`, also sending each one to `lines` while
/// someone listens.
fn collect(
    pipe: impl AsyncRead + Unpin + Send + 'static,
    lines: Option<mpsc::UnboundedSender<String>>,
) -> JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut all = Vec::new();
        let mut reader = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if let Some(tx) = &lines {
                let _ = tx.send(line.clone());
            }
            all.push(line);
        }
        all
    })
}

/// The word after `prefix` in `line`, up to a space or a comma.
fn word_after(line: &str, prefix: &str) -> Option<String> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    Some(rest.split([' ', ',']).next()?.to_owned())
}
