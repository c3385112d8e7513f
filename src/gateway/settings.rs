//! Settings of `filegate serve`: every flag is also an environment variable.
//!
//! Without `FILESTACK_API_KEY` the gateway runs in local mode: it starts the
//! emulator in-process, keeps generated development secrets (emulator app
//! secret, JWT secret) in the data dir, and uses SQLite there.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rand::distr::{Alphanumeric, SampleString};

use crate::filestack::upload::MAX_PARTS;
use crate::gateway::Limits;
use crate::gateway::auth::JwtKey;
use crate::gateway::events::{self, WatchLimits};
use crate::gateway::jwks::JwksSource;
use crate::gateway::listener::ListenerLimits;
use crate::gateway::tls::TlsFiles;
use crate::secret::Secret;

/// `filegate serve` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address of the gRPC listener (port 0 picks one).
    #[arg(long, env = "FILEGATE_GRPC_LISTEN", default_value = "127.0.0.1:50051")]
    pub grpc_listen: SocketAddr,
    /// Address of the HTTP listener (health, webhooks).
    #[arg(long, env = "FILEGATE_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
    /// Origins whose pages may call the gRPC listener with gRPC-Web (CORS),
    /// comma-separated `scheme://host[:port]`, or `*` for any. None by
    /// default; local mode adds its own HTTP listener's.
    #[arg(long, env = "FILEGATE_GRPC_WEB_ORIGINS", value_delimiter = ',')]
    pub grpc_web_origins: Vec<String>,
    /// Folder for the SQLite database and local-mode files.
    #[arg(long, env = "FILEGATE_DATA_DIR", default_value = "./filegate-data")]
    pub data_dir: PathBuf,
    /// `postgres://...` or `sqlite://...`; default: SQLite in the data dir.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Filestack API key. Absent: local mode with the embedded emulator.
    #[arg(long, env = "FILESTACK_API_KEY")]
    pub filestack_api_key: Option<String>,
    /// Filestack app secret (signs policies). Required with an API key.
    #[arg(
        long,
        env = "FILESTACK_APP_SECRET",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub filestack_app_secret: Option<Secret>,
    /// Secret of Filestack's webhook signatures.
    #[arg(
        long,
        env = "FILESTACK_WEBHOOK_SECRET",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub filestack_webhook_secret: Option<Secret>,
    /// Base URL of the File API.
    #[arg(
        long,
        env = "FILESTACK_API_URL",
        default_value = "https://www.filestackapi.com/api"
    )]
    pub filestack_api_url: String,
    /// Base URL of the Upload API.
    #[arg(
        long,
        env = "FILESTACK_UPLOAD_URL",
        default_value = "https://upload.filestackapi.com"
    )]
    pub filestack_upload_url: String,
    /// Base URL of the CDN.
    #[arg(
        long,
        env = "FILESTACK_CDN_URL",
        default_value = "https://cdn.filestackcontent.com"
    )]
    pub filestack_cdn_url: String,
    /// Address of the in-process emulator (local mode only).
    #[arg(
        long,
        env = "FILEGATE_EMULATOR_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub emulator_listen: SocketAddr,
    /// Largest file an upload may store, in bytes.
    #[arg(long, env = "FILEGATE_MAX_UPLOAD_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub max_upload_bytes: u64,
    /// TTL of signed URLs when the caller gives none, in seconds.
    #[arg(long, env = "FILEGATE_DEFAULT_URL_TTL_SECS", default_value_t = 300)]
    pub default_url_ttl_secs: u64,
    /// Longest TTL a caller may ask for, in seconds.
    #[arg(long, env = "FILEGATE_MAX_URL_TTL_SECS", default_value_t = 3600)]
    pub max_url_ttl_secs: u64,
    /// Longest wait for the next message of an upload stream, in seconds.
    #[arg(long, env = "FILEGATE_UPLOAD_IDLE_TIMEOUT_SECS", default_value_t = 30)]
    pub upload_idle_timeout_secs: u64,
    /// Multipart part size in bytes (at least 5 MiB).
    #[arg(long, env = "FILEGATE_PART_SIZE", default_value_t = 8 * 1024 * 1024)]
    pub part_size: usize,
    /// Parts of one upload sent to Filestack at once.
    #[arg(long, env = "FILEGATE_PARTS_IN_FLIGHT", default_value_t = 4)]
    pub parts_in_flight: usize,
    /// Whether a file that fits in one part is stored with one Filestack
    /// request (`/api/store`) instead of the four of a multipart upload.
    #[arg(
        long,
        env = "FILEGATE_SINGLE_REQUEST_UPLOADS",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub single_request_uploads: bool,
    /// HS256 secret for caller tokens (at least 16 bytes).
    #[arg(
        long,
        env = "FILEGATE_JWT_SECRET",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub jwt_secret: Option<Secret>,
    /// PEM public key file for RS256/ES256 caller tokens.
    #[arg(long, env = "FILEGATE_JWT_PUBLIC_KEY", value_parser = any_path)]
    pub jwt_public_key: Option<PathBuf>,
    /// JWKS URL of the identity provider whose keys (RS256, ES256) verify
    /// caller tokens, by `kid`: https, or http to a loopback address.
    #[arg(long, env = "FILEGATE_JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,
    /// Time between scheduled fetches of `--jwt-jwks-url`, in seconds.
    #[arg(long, env = "FILEGATE_JWT_JWKS_REFRESH_SECS", default_value_t = 300)]
    pub jwt_jwks_refresh_secs: u64,
    /// Shortest time between two fetches of `--jwt-jwks-url` for tokens
    /// naming an unknown `kid`, in seconds (tokens in between are refused).
    #[arg(long, env = "FILEGATE_JWT_JWKS_MIN_REFRESH_SECS", default_value_t = 30)]
    pub jwt_jwks_min_refresh_secs: u64,
    /// Webhook deliveries signed longer ago than this are refused, in
    /// seconds (a captured delivery cannot be replayed later).
    #[arg(long, env = "FILEGATE_WEBHOOK_MAX_AGE_SECS", default_value_t = 300)]
    pub webhook_max_age_secs: u64,
    /// Largest webhook body accepted, in bytes (larger: 413).
    #[arg(long, env = "FILEGATE_WEBHOOK_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub webhook_max_body_bytes: usize,
    /// Local mode: whether the embedded emulator delivers its webhooks to
    /// this gateway's `/webhooks/filestack` (`--local-webhooks false`: not).
    #[arg(
        long,
        env = "FILEGATE_LOCAL_WEBHOOKS",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub local_webhooks: bool,
    /// Uploads running at once; more wait for a slot.
    #[arg(long, env = "FILEGATE_MAX_CONCURRENT_UPLOADS", default_value_t = 64)]
    pub max_concurrent_uploads: usize,
    /// Bytes all upload buffers together may hold; each upload reserves
    /// part size × (parts in flight + 1) + 6 MiB (one gRPC message and the
    /// HTTP/2 stream window).
    #[arg(long, env = "FILEGATE_UPLOAD_MEMORY_BUDGET_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub upload_memory_budget_bytes: u64,
    /// How long an upload waits for a slot and budget before
    /// RESOURCE_EXHAUSTED, in seconds.
    #[arg(
        long,
        env = "FILEGATE_UPLOAD_ADMISSION_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub upload_admission_timeout_secs: u64,
    /// Deadline of each unary call, in seconds (DEADLINE_EXCEEDED after).
    #[arg(long, env = "FILEGATE_CALL_TIMEOUT_SECS", default_value_t = 30)]
    pub call_timeout_secs: u64,
    /// Timeout of each request to Filestack, in seconds (retried when
    /// idempotent).
    #[arg(long, env = "FILEGATE_FILESTACK_TIMEOUT_SECS", default_value_t = 30)]
    pub filestack_timeout_secs: u64,
    /// An upload journal entry older than this, whose upload never sent
    /// `complete`, belongs to a process that died: it is dropped, in seconds.
    #[arg(
        long,
        env = "FILEGATE_UPLOAD_JOURNAL_STALE_SECS",
        default_value_t = 3600
    )]
    pub upload_journal_stale_secs: u64,
    /// A resumable upload (StartUpload) no stream has written to for this
    /// long is removed and its id answers NOT_FOUND, in seconds. Keep it
    /// shorter than Filestack keeps an unfinished multipart upload.
    #[arg(
        long,
        env = "FILEGATE_UPLOAD_SESSION_EXPIRY_SECS",
        default_value_t = 12 * 3600
    )]
    pub upload_session_expiry_secs: u64,
    /// An upload journal entry that sent `complete` this long ago, and was
    /// not settled by its call, belongs to a process that died: the reaper
    /// settles it (sends `complete` again, deletes the file), in seconds.
    /// Longer than any `complete` takes (`complete` gives up after 60 s).
    #[arg(
        long,
        env = "FILEGATE_UPLOAD_JOURNAL_GRACE_SECS",
        default_value_t = 120
    )]
    pub upload_journal_grace_secs: u64,
    /// After SIGTERM, how long in-flight calls may run before the
    /// remaining connections are closed, in seconds.
    #[arg(long, env = "FILEGATE_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
    /// Document rows kept in memory for the read path (SignedUrl,
    /// Thumbnail, GetDocument, ...); 0 disables the cache. Deletes and
    /// webhook changes evict at once, on every replica (PostgreSQL).
    #[arg(
        long,
        env = "FILEGATE_DOCUMENT_CACHE_ENTRIES",
        default_value_t = 10_000
    )]
    pub document_cache_entries: usize,
    /// Longest time a cached document row is served before it is read
    /// again, in seconds (bounds staleness if a replica's notification is
    /// lost).
    #[arg(long, env = "FILEGATE_DOCUMENT_CACHE_TTL_SECS", default_value_t = 60)]
    pub document_cache_ttl_secs: u64,
    /// Algorithm of `--jwt-public-key`: RS256 or ES256.
    #[arg(long, env = "FILEGATE_JWT_ALGORITHM", default_value = "RS256")]
    pub jwt_algorithm: String,
    /// Required `iss` claim, if any.
    #[arg(long, env = "FILEGATE_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim, if any.
    #[arg(long, env = "FILEGATE_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Most connections open at once on each listener (gRPC, HTTP); at the
    /// limit, new ones wait in the kernel's accept queue until one closes.
    /// Lowered at start-up when the open file limit is too low for it.
    #[arg(long, env = "FILEGATE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// A new connection that has not sent its handshake (gRPC: the HTTP/2
    /// preface; HTTP: its first request head) within this is closed, in
    /// seconds. With TLS, the TLS handshake too must finish within it.
    #[arg(long, env = "FILEGATE_HANDSHAKE_TIMEOUT_SECS", default_value_t = 10)]
    pub handshake_timeout_secs: u64,
    /// PEM certificate chain of the gRPC listener: TLS when set (with
    /// `--tls-key`). Reloaded when the file changes and on SIGHUP.
    #[arg(long, env = "FILEGATE_TLS_CERT", value_parser = any_path)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "FILEGATE_TLS_KEY", value_parser = any_path)]
    pub tls_key: Option<PathBuf>,
    /// PEM bundle of the CAs whose client certificates the gRPC listener
    /// requires (mTLS); needs `--tls-cert`.
    #[arg(long, env = "FILEGATE_TLS_CLIENT_CA", value_parser = any_path)]
    pub tls_client_ca: Option<PathBuf>,
    /// Names (DNS SANs) of the client certificates allowed,
    /// comma-separated; none: any the client CA signed.
    #[arg(long, env = "FILEGATE_TLS_CLIENT_NAMES", value_delimiter = ',')]
    pub tls_client_names: Vec<String>,
    /// Whether the HTTP listener (probes, metrics, webhooks) serves TLS too,
    /// with `--tls-cert` (no client certificates); off by default, for a
    /// listener behind a proxy.
    #[arg(
        long,
        env = "FILEGATE_HTTP_TLS",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub http_tls: bool,
    /// WatchEvents streams served at once by this gateway.
    #[arg(
        long,
        env = "FILEGATE_MAX_WATCH_STREAMS",
        default_value_t = events::DEFAULT_MAX_WATCH_STREAMS
    )]
    pub max_watch_streams: usize,
    /// WatchEvents streams of one owner served at once by this gateway.
    #[arg(
        long,
        env = "FILEGATE_MAX_WATCH_STREAMS_PER_OWNER",
        default_value_t = events::DEFAULT_MAX_WATCH_STREAMS_PER_OWNER
    )]
    pub max_watch_streams_per_owner: usize,
}

/// Settings resolved from the flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub args: ServeArgs,
    pub limits: Limits,
    /// Connections of each listener, as asked for (before the open file
    /// limit is checked).
    pub listeners: ListenerLimits,
    /// WatchEvents streams.
    pub watch: WatchLimits,
    /// TLS of the gRPC listener; `None`: plaintext.
    pub tls: Option<TlsFiles>,
    pub database_url: String,
    pub jwt_key: JwtKey,
    /// `Some` in local mode: the emulator's app secret.
    pub local_app_secret: Option<Secret>,
    /// The secret of webhook signatures: `FILESTACK_WEBHOOK_SECRET`, or in
    /// local mode one generated in the data dir. `None`: the webhook
    /// endpoint refuses every delivery.
    pub webhook_secret: Option<Secret>,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JwtKey::Hmac(_) => "Hmac([redacted])",
            JwtKey::Rsa(_) => "Rsa(..)",
            JwtKey::Ecdsa(_) => "Ecdsa(..)",
            JwtKey::Jwks(_) => "Jwks(..)",
        })
    }
}

/// The API key of the local emulator.
pub const LOCAL_API_KEY: &str = "local-api-key";

/// A path as given, the empty one included: clap's own path parser refuses
/// an empty value, but an empty `FILEGATE_TLS_CERT=` (a container template)
/// means "not given", which [`ServeArgs::without_empty_values`] decides.
fn any_path(value: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(value))
}

impl ServeArgs {
    /// Optional values given empty (`FILESTACK_API_KEY=` in a container
    /// template, say) count as not given: an empty API key is local mode,
    /// not a key.
    pub fn without_empty_values(mut self) -> ServeArgs {
        fn text(value: Option<String>) -> Option<String> {
            value.filter(|v| !v.trim().is_empty())
        }
        fn secret(value: Option<Secret>) -> Option<Secret> {
            value.filter(|v| !v.expose().trim().is_empty())
        }
        self.filestack_api_key = text(self.filestack_api_key);
        self.database_url = text(self.database_url);
        self.jwt_issuer = text(self.jwt_issuer);
        self.jwt_audience = text(self.jwt_audience);
        self.jwt_jwks_url = text(self.jwt_jwks_url);
        self.filestack_app_secret = secret(self.filestack_app_secret);
        self.filestack_webhook_secret = secret(self.filestack_webhook_secret);
        self.jwt_secret = secret(self.jwt_secret);
        self.jwt_public_key = self.jwt_public_key.filter(|p| !p.as_os_str().is_empty());
        self.grpc_web_origins
            .retain(|origin| !origin.trim().is_empty());
        self.tls_cert = self.tls_cert.filter(|p| !p.as_os_str().is_empty());
        self.tls_key = self.tls_key.filter(|p| !p.as_os_str().is_empty());
        self.tls_client_ca = self.tls_client_ca.filter(|p| !p.as_os_str().is_empty());
        self.tls_client_names.retain(|name| !name.trim().is_empty());
        self
    }
}

impl Settings {
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Settings> {
        let args = args.without_empty_values();
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("creating the data dir {}", args.data_dir.display()))?;
        let local = args.filestack_api_key.is_none();
        if !local && args.filestack_app_secret.is_none() {
            anyhow::bail!("FILESTACK_APP_SECRET is required with FILESTACK_API_KEY");
        }
        let local_app_secret = if local {
            Some(local_secret(&args.data_dir, "emulator-app-secret")?)
        } else {
            None
        };
        let webhook_secret = match &args.filestack_webhook_secret {
            Some(secret) => Some(secret.clone()),
            None if local => Some(local_webhook_secret(&args.data_dir)?),
            None => None,
        };
        let jwt_key = jwt_key(&args, local)?;
        let database_url = match &args.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", args.data_dir.join("filegate.db").display()),
        };
        anyhow::ensure!(
            args.part_size >= 5 * 1024 * 1024,
            "the part size must be at least 5 MiB"
        );
        anyhow::ensure!(
            args.max_upload_bytes.div_ceil(args.part_size as u64) <= MAX_PARTS,
            "a file of --max-upload-bytes would need more than {MAX_PARTS} parts of --part-size: raise the part size"
        );
        anyhow::ensure!(
            args.parts_in_flight >= 1,
            "at least one part must be in flight"
        );
        anyhow::ensure!(
            args.max_connections >= 1,
            "at least one connection must be allowed"
        );
        anyhow::ensure!(
            args.handshake_timeout_secs >= 1,
            "the handshake timeout must be at least one second"
        );
        let listeners = ListenerLimits {
            max_connections: args.max_connections,
            handshake_timeout: Duration::from_secs(args.handshake_timeout_secs),
        };
        let tls = tls_files(&args)?;
        let watch = WatchLimits {
            total: args.max_watch_streams,
            per_owner: args.max_watch_streams_per_owner,
        };
        let limits = Limits {
            max_upload_bytes: args.max_upload_bytes,
            default_ttl: Duration::from_secs(args.default_url_ttl_secs),
            max_ttl: Duration::from_secs(args.max_url_ttl_secs),
            upload_idle_timeout: Duration::from_secs(args.upload_idle_timeout_secs),
            call_timeout: Duration::from_secs(args.call_timeout_secs),
            journal_stale_after: Duration::from_secs(args.upload_journal_stale_secs),
            journal_grace: Duration::from_secs(args.upload_journal_grace_secs),
            single_request_uploads: args.single_request_uploads,
            upload_session_expiry: Duration::from_secs(args.upload_session_expiry_secs),
        };
        Ok(Settings {
            args,
            limits,
            listeners,
            watch,
            tls,
            database_url,
            jwt_key,
            local_app_secret,
            webhook_secret,
        })
    }

    pub fn is_local(&self) -> bool {
        self.local_app_secret.is_some()
    }
}

/// The TLS files of the flags: certificate and key both or neither; the
/// client CA and names only with them.
fn tls_files(args: &ServeArgs) -> anyhow::Result<Option<TlsFiles>> {
    let (cert, key) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        (None, None) => {
            anyhow::ensure!(
                !args.http_tls,
                "--http-tls (FILEGATE_HTTP_TLS) needs --tls-cert and --tls-key"
            );
            anyhow::ensure!(
                args.tls_client_ca.is_none() && args.tls_client_names.is_empty(),
                "--tls-client-ca (FILEGATE_TLS_CLIENT_CA) and --tls-client-names (FILEGATE_TLS_CLIENT_NAMES) need --tls-cert and --tls-key"
            );
            return Ok(None);
        }
        (Some(_), None) => anyhow::bail!(
            "--tls-cert (FILEGATE_TLS_CERT) needs --tls-key (FILEGATE_TLS_KEY): give both or neither"
        ),
        (None, Some(_)) => anyhow::bail!(
            "--tls-key (FILEGATE_TLS_KEY) needs --tls-cert (FILEGATE_TLS_CERT): give both or neither"
        ),
    };
    anyhow::ensure!(
        !(args.http_tls && args.filestack_api_key.is_none() && args.local_webhooks),
        "local mode's emulator delivers its webhooks over plaintext HTTP: with --http-tls (FILEGATE_HTTP_TLS) set --local-webhooks false"
    );
    anyhow::ensure!(
        args.tls_client_names.is_empty() || args.tls_client_ca.is_some(),
        "--tls-client-names (FILEGATE_TLS_CLIENT_NAMES) needs --tls-client-ca (FILEGATE_TLS_CLIENT_CA)"
    );
    Ok(Some(TlsFiles {
        cert,
        key,
        client_ca: args.tls_client_ca.clone(),
        client_names: args
            .tls_client_names
            .iter()
            .map(|name| name.trim().to_owned())
            .collect(),
    }))
}

fn jwt_key(args: &ServeArgs, local: bool) -> anyhow::Result<JwtKey> {
    if let Some(url) = &args.jwt_jwks_url {
        anyhow::ensure!(
            args.jwt_secret.is_none() && args.jwt_public_key.is_none(),
            "--jwt-jwks-url (FILEGATE_JWT_JWKS_URL) cannot be combined with --jwt-secret (FILEGATE_JWT_SECRET) or --jwt-public-key (FILEGATE_JWT_PUBLIC_KEY): choose one source of keys"
        );
        return Ok(JwtKey::Jwks(JwksSource::new(
            url,
            Duration::from_secs(args.jwt_jwks_refresh_secs),
            Duration::from_secs(args.jwt_jwks_min_refresh_secs),
        )?));
    }
    if let Some(path) = &args.jwt_public_key {
        anyhow::ensure!(
            args.jwt_secret.is_none(),
            "--jwt-public-key (FILEGATE_JWT_PUBLIC_KEY) cannot be combined with --jwt-secret (FILEGATE_JWT_SECRET): choose one source of keys"
        );
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        return match args.jwt_algorithm.as_str() {
            "RS256" => Ok(JwtKey::Rsa(pem)),
            "ES256" => Ok(JwtKey::Ecdsa(pem)),
            other => anyhow::bail!("unsupported JWT algorithm {other}: use RS256 or ES256"),
        };
    }
    if let Some(secret) = &args.jwt_secret {
        return Ok(JwtKey::Hmac(secret.clone()));
    }
    if local {
        return Ok(JwtKey::Hmac(local_jwt_secret(&args.data_dir)?));
    }
    anyhow::bail!(
        "set FILEGATE_JWT_SECRET, FILEGATE_JWT_PUBLIC_KEY or FILEGATE_JWT_JWKS_URL: callers must authenticate"
    )
}

const LOCAL_JWT_SECRET_FILE: &str = "dev-jwt-secret";

/// The development JWT secret of a local-mode data dir (created on first use).
pub fn local_jwt_secret(data_dir: &Path) -> anyhow::Result<Secret> {
    local_secret(data_dir, LOCAL_JWT_SECRET_FILE)
}

/// The development JWT secret a local-mode gateway created in `data_dir`;
/// an error when there is none (`filegate token` never creates one).
pub fn existing_local_jwt_secret(data_dir: &Path) -> anyhow::Result<Secret> {
    let path = data_dir.join(LOCAL_JWT_SECRET_FILE);
    let raw = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no development JWT secret at {}: start `filegate serve --data-dir {}` in local mode first, or pass --jwt-secret",
            path.display(),
            data_dir.display()
        )
    })?;
    Ok(Secret::new(raw.trim()))
}

/// The webhook secret of a local-mode data dir (created on first use): the
/// embedded emulator signs its deliveries with it.
pub fn local_webhook_secret(data_dir: &Path) -> anyhow::Result<Secret> {
    local_secret(data_dir, "webhook-secret")
}

/// A random secret kept in `data_dir/name`, readable by the owner only.
fn local_secret(data_dir: &Path, name: &str) -> anyhow::Result<Secret> {
    let path = data_dir.join(name);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(Secret::new(existing.trim()));
    }
    std::fs::create_dir_all(data_dir)?;
    let secret = Alphanumeric.sample_string(&mut rand::rng(), 48);
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    Ok(Secret::new(secret))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}
