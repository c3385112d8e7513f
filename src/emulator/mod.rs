//! A Filestack-compatible HTTP server backed by a local folder.
//!
//! One listener plays the three Filestack hosts: the File API (base
//! `http://ADDR/api`), the Upload API (`http://ADDR`) and the CDN
//! (`http://ADDR`). It is strict where Filestack is strict, so that client
//! bugs show up locally, and lenient where the official SDKs differ.
//!
//! # Emulated
//! - Multipart uploads: `POST /multipart/start|upload|commit|complete`, JSON
//!   or form-data bodies (Java/PHP field names, `parts` as `"1:etag;2:etag"`),
//!   Intelligent Ingestion chunks and commits, and the presigned part `PUT`
//!   (`/s3/{upload_id}`), which checks its signature, the announced size and
//!   `Content-MD5` and answers a quoted hex MD5 `ETag`. `complete` checks parts
//!   1..n, their ETags and the total size, then assembles the file.
//! - `POST /api/store/{location}` with a `fileUpload` form field or a raw body.
//! - File API: download (`GET|HEAD /api/file/{handle}`, `dl=true`), delete
//!   (`DELETE /api/file/{handle}`, `POST /api/file/{handle}/remove`, both
//!   need `key`), overwrite (`POST|PUT /api/file/{handle}`), metadata
//!   (`/api/file/{handle}/metadata` and `/{handle}/metadata`; `uploaded` is in
//!   unix milliseconds; md5/sha256 hex; sha1/224/384/512 and exif are `null`).
//!   A File API handle may carry an extension (`HANDLE+png`, the JS SDK's
//!   `retrieve`), which is ignored.
//! - `base64decode=true` on store and overwrite: the body is base64 text and
//!   the file is its decoding (bad base64 is a 400).
//! - Storage locations (`S3`, `gcs`, `azure`, `rackspace`, `dropbox`, any
//!   case): all stored in the local folder; metadata reports the location
//!   asked for, spelled as filestack-python does.
//! - CDN downloads and image transformation chains, with the `security` task
//!   anywhere in the path or `policy`/`signature` in the query.
//! - `Range` on downloads (CDN and File API), as S3 answers it: one range
//!   (`bytes=a-b`, `a-`, `-n`) is 206 with `Content-Range`, a range past the
//!   end 416 with `Content-Range: bytes */size`, a malformed or multi-range
//!   header is ignored (200). Files stream from disk either way.
//! - Security policies (on by default; `--no-security` turns checks off):
//!   signature over the string as received, expiry, `call`, `handle`,
//!   `maxSize`, `minSize`, and `path`/`container` as regular expressions that
//!   must match the whole value, on every request that stores bytes (an
//!   overwrite matches `path` against the file's key). Calls: uploads and store need `pick`;
//!   downloads `read`; transformations `read` and `convert`; metadata `stat`
//!   (`exif` too for `exif=true`); overwrite `write`; delete `remove`. Every
//!   refusal, a missing policy included, is a 403. `upload` and `commit` are
//!   bound to the `upload_id` of a verified `start` and check a policy only
//!   when one is sent (the Python SDK sends none there).
//! - Signed webhooks (`fp.upload`, `fp.overwrite`, `fp.delete`) from a
//!   bounded background queue, retried 3 times with a doubling backoff from
//!   200 ms; delivery ids count up from the start time in microseconds.
//! - Persistence: files and JSON metadata in the data dir survive a restart;
//!   pending (uncompleted) uploads do not. At most 1024 uploads may be
//!   pending; one not completed within 24 hours is forgotten. One data dir
//!   serves one emulator at a time.
//! - Fault injection (`POST|DELETE /_emulator/faults`) and statistics
//!   (`GET /_emulator/stats`). These are unauthenticated: the emulator is a
//!   development tool and must bind to loopback.
//!
//! # Not emulated
//! URL ingestion (`/process`, `url=` bodies), the picker's `/prefetch`, the
//! processing `store` task (GET or POST), JSON-returning tasks (tags, sfw,
//! ocr, …), workflows, video and document conversion, storage other than the
//! local folder, HTTP Basic auth with the app secret, and TLS. A request for
//! one of these endpoints or tasks is a 400 that names it; a CDN URL with a
//! method other than GET or HEAD is a 405.
//! Errors are JSON `{"error": "...", "timestamp": N}` (S3 XML on the part
//! `PUT`): 400 bad params, 403 policy, 404 unknown handle; successes are 200
//! (a delete answers the text `success`). Fault injection may answer
//! anything it is told to.

mod auth;
mod base64decode;
mod body;
mod cdn;
mod complete;
mod conn;
pub mod error;
mod faults;
mod fields;
mod file_api;
mod incoming;
mod metadata;
mod middleware;
mod multipart;
mod overwrite;
mod range;
mod replay;
mod routes;
mod s3;
mod state;
mod store;
mod store_api;
pub mod transform;
mod uploads;
mod webhooks;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::emulator::auth::Guard;
use crate::emulator::conn::{Conn, KillableListener};
use crate::emulator::state::State;
use crate::secret::Secret;

/// How an emulator is set up.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Where files, metadata and scratch data live (created if missing).
    pub data_dir: PathBuf,
    /// The API key clients must send.
    pub api_key: String,
    /// The secret policies are signed with.
    pub app_secret: Secret,
    /// Strict policy checks (default true; `--no-security` turns them off).
    pub security: bool,
    /// Where to deliver signed webhooks, if anywhere.
    pub webhook: Option<WebhookTarget>,
}

/// A webhook receiver and the secret deliveries are signed with.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: Secret,
}

/// A bound, not yet serving, emulator.
#[derive(Debug)]
pub struct Emulator {
    listener: KillableListener,
    addr: SocketAddr,
    state: Arc<State>,
}

impl Emulator {
    /// Binds the listener (port 0 works) and opens/creates the data dir.
    pub async fn bind(addr: SocketAddr, config: EmulatorConfig) -> anyhow::Result<Emulator> {
        let store = store::Store::open(&config.data_dir)
            .await
            .with_context(|| format!("opening data dir {}", config.data_dir.display()))?;
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let addr = tcp.local_addr()?;
        let webhooks = config.webhook.map(webhooks::Webhooks::start).transpose()?;
        let state = Arc::new(State {
            api_key: config.api_key,
            guard: Guard {
                app_secret: config.app_secret,
                enabled: config.security,
            },
            store,
            uploads: Default::default(),
            faults: Default::default(),
            completed: Default::default(),
            webhooks,
            host: addr.to_string(),
            bytes_served: Default::default(),
        });
        Ok(Emulator {
            listener: KillableListener::new(tcp),
            addr,
            state,
        })
    }

    /// The address the listener got.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` — the base for all three Filestack roles.
    pub fn base_url(&self) -> String {
        self.state.base_url()
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = routes::router(self.state).into_make_service_with_connect_info::<Conn>();
        tracing::info!(addr = %self.addr, "emulator serving");
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving the emulator")
    }
}

/// Command-line and environment settings of `filegate emulator`.
#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// Address to listen on (keep it on loopback: the emulator is a dev tool).
    #[arg(long, env = "FILEGATE_EMULATOR_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Folder holding the stored files.
    #[arg(
        long,
        env = "FILEGATE_EMULATOR_DATA_DIR",
        default_value = "./filegate-data/emulator"
    )]
    pub data_dir: PathBuf,
    /// API key clients must send.
    #[arg(long, env = "FILESTACK_API_KEY", default_value = "local-api-key")]
    pub api_key: String,
    /// App secret that signs policies.
    #[arg(
        long,
        env = "FILESTACK_APP_SECRET",
        default_value = "local-app-secret",
        hide_env_values = true,
        hide_default_value = true,
        allow_hyphen_values = true
    )]
    pub app_secret: Secret,
    /// URL to POST signed webhooks to.
    #[arg(long, env = "FILESTACK_WEBHOOK_URL", requires = "webhook_secret")]
    pub webhook_url: Option<String>,
    /// Secret that signs webhooks.
    #[arg(
        long,
        env = "FILESTACK_WEBHOOK_SECRET",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub webhook_secret: Option<Secret>,
    /// Turn policy checks off.
    #[arg(long)]
    pub no_security: bool,
}

impl EmulatorArgs {
    /// The configuration these arguments describe.
    pub fn config(self) -> EmulatorConfig {
        let webhook = match (self.webhook_url, self.webhook_secret) {
            (Some(url), Some(secret)) => Some(WebhookTarget { url, secret }),
            _ => None,
        };
        EmulatorConfig {
            data_dir: self.data_dir,
            api_key: self.api_key,
            app_secret: self.app_secret,
            security: !self.no_security,
            webhook,
        }
    }
}

/// `filegate emulator`: binds, prints `filegate emulator listening on URL`
/// on stdout, and serves until SIGINT or SIGTERM.
pub async fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    let listen = args.listen;
    let emulator = Emulator::bind(listen, args.config()).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "filegate emulator listening on {}",
        emulator.base_url()
    )?;
    stdout.flush()?;
    drop(stdout);
    emulator.serve(shutdown_signal()).await
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("emulator shutting down");
}
