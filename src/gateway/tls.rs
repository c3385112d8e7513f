//! TLS of the gRPC listener (rustls, aws-lc-rs): the server certificate,
//! optional client certificates (mTLS, with optional pinned names), and
//! certificate rotation without restart.
//!
//! The guarded listener hands over a connection once its first 24 bytes
//! have arrived (a TLS ClientHello passes); the TLS handshake then runs here,
//! concurrently with the other handshakes and the accepts, within the same
//! handshake timeout. A connection whose handshake fails or times out is
//! closed. The certificate and key are read again when their files change
//! (checked every [`RELOAD_POLL`]) and on SIGHUP: new connections get the
//! new certificate, open ones keep theirs, and a reload that fails keeps the
//! old certificate. The private key never appears in logs or errors.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use futures_util::stream::FuturesUnordered;
use futures_util::{Stream, StreamExt};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::gateway::listener::{ConnectionInfo, GuardedListener, GuardedStream};

/// How often the certificate and key files are checked for changes.
pub const RELOAD_POLL: Duration = Duration::from_secs(2);

/// The TLS files of the gRPC listener, from the flags.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain, end-entity first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM bundle of the CAs that sign client certificates: mTLS when set.
    pub client_ca: Option<PathBuf>,
    /// Names (DNS or IP SANs) of the client certificates allowed; empty:
    /// any certificate the CA signed.
    pub client_names: Vec<String>,
}

/// A loaded TLS configuration: the acceptor and its reloadable certificate.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    certs: Arc<ServerCerts>,
    handshake_timeout: Duration,
}

/// The ALPN protocols of the gRPC listener: gRPC over HTTP/2, gRPC-Web
/// over HTTP/1.1.
const GRPC_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("certs", &self.certs)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the files; an error names the file at fault, never the key.
    pub fn load(files: &TlsFiles, handshake_timeout: Duration) -> anyhow::Result<Tls> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs = Arc::new(ServerCerts::load(
            files.cert.clone(),
            files.key.clone(),
            provider.clone(),
        )?);
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = match &files.client_ca {
            Some(path) => builder.with_client_cert_verifier(client_verifier(
                path,
                &files.client_names,
                provider,
            )?),
            None => {
                anyhow::ensure!(
                    files.client_names.is_empty(),
                    "--tls-client-names needs --tls-client-ca"
                );
                builder.with_no_client_auth()
            }
        };
        let mut config = builder.with_cert_resolver(certs.clone());
        config.alpn_protocols = GRPC_ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certs,
            handshake_timeout,
        })
    }

    /// The HTTP listener's TLS: the same (reloaded) certificate, no client
    /// certificates (probes and webhook deliveries have none), HTTP/1.1.
    pub fn for_http(&self) -> anyhow::Result<Tls> {
        let mut config = ServerConfig::builder_with_provider(self.certs.provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(self.certs.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certs: self.certs.clone(),
            handshake_timeout: self.handshake_timeout,
        })
    }

    /// The listener's connections once their TLS handshake is done; up to
    /// `max_handshakes` handshakes run at once.
    pub fn incoming(
        &self,
        listener: GuardedListener,
        max_handshakes: usize,
    ) -> impl Stream<Item = Result<ServedStream, io::Error>> + Send + 'static {
        let acceptor = self.acceptor.clone();
        let timeout = self.handshake_timeout;
        listener
            .into_incoming()
            .map(move |accepted| {
                let acceptor = acceptor.clone();
                async move {
                    match accepted {
                        Ok(stream) => handshake(acceptor, stream, timeout).await,
                        Err(_) => None,
                    }
                }
            })
            .buffer_unordered(max_handshakes.max(1))
            .filter_map(|served| std::future::ready(served.map(Ok)))
    }

    /// Reloads the certificate when its files change and on SIGHUP, until
    /// `stop`.
    pub async fn watch(self, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(RELOAD_POLL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let mut hangup = hangup_signal();
        loop {
            tokio::select! {
                _ = ticks.tick() => self.certs.reload("the files changed", false),
                () = next_hangup(&mut hangup) => self.certs.reload("SIGHUP", true),
                () = stop.cancelled() => return,
            }
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

fn hangup_signal() -> Hangup {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP: certificates reload on file changes only");
                None
            }
        }
    }
    #[cfg(not(unix))]
    None
}

/// Completes at the next SIGHUP; never without one.
async fn next_hangup(signal: &mut Hangup) {
    #[cfg(unix)]
    if let Some(signal) = signal
        && signal.recv().await.is_some()
    {
        return;
    }
    #[cfg(not(unix))]
    let _ = signal;
    std::future::pending::<()>().await
}

type PendingHandshake = Pin<Box<dyn Future<Output = Option<ServedStream>> + Send>>;

/// The HTTP listener (axum): plaintext, or TLS with the handshakes run
/// concurrently with the accepts.
pub struct ServedListener {
    inner: GuardedListener,
    tls: Option<Tls>,
    pending: FuturesUnordered<PendingHandshake>,
}

impl ServedListener {
    pub fn new(inner: GuardedListener, tls: Option<Tls>) -> Self {
        Self {
            inner,
            tls,
            pending: FuturesUnordered::new(),
        }
    }
}

impl axum::serve::Listener for ServedListener {
    type Io = ServedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (ServedStream, SocketAddr) {
        let Self {
            inner,
            tls,
            pending,
        } = self;
        let Some(tls) = tls else {
            let stream = inner.next().await;
            let peer = stream.info().peer;
            return (ServedStream::Plain(stream), peer);
        };
        loop {
            tokio::select! {
                Some(done) = pending.next(), if !pending.is_empty() => {
                    if let Some(stream) = done {
                        let peer = stream.guarded().info().peer;
                        return (stream, peer);
                    }
                }
                stream = inner.next() => pending.push(Box::pin(handshake(
                    tls.acceptor.clone(),
                    stream,
                    tls.handshake_timeout,
                ))),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        axum::serve::Listener::local_addr(&self.inner)
    }
}

/// The TLS handshake of one connection, within `timeout`; `None` closes it.
async fn handshake(
    acceptor: TlsAcceptor,
    stream: GuardedStream,
    timeout: Duration,
) -> Option<ServedStream> {
    let peer = stream.info().peer;
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(ServedStream::Tls(Box::new(tls))),
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed: connection closed");
            None
        }
        Err(_) => {
            tracing::info!(
                %peer,
                timeout_secs = timeout.as_secs_f64(),
                "closed a connection whose TLS handshake did not finish in time"
            );
            None
        }
    }
}

/// The server certificate and key, swapped when their files change.
struct ServerCerts {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// Digest of the files last read, so unchanged files are not parsed
    /// again, and a broken pair is reported once.
    seen: Mutex<[u8; 32]>,
}

impl std::fmt::Debug for ServerCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCerts")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ServerCerts {
    fn load(cert: PathBuf, key: PathBuf, provider: Arc<CryptoProvider>) -> anyhow::Result<Self> {
        let (digest, certified) = read_pair(&cert, &key, &provider)?;
        Ok(Self {
            cert,
            key,
            provider,
            current: RwLock::new(Arc::new(certified)),
            seen: Mutex::new(digest),
        })
    }

    /// Reads the files again; swaps the certificate when they changed and
    /// hold a valid pair, else keeps the old one (a WARN says why).
    fn reload(&self, why: &str, announce_unchanged: bool) {
        let (cert, key) = match (std::fs::read(&self.cert), std::fs::read(&self.key)) {
            (Ok(cert), Ok(key)) => (cert, key),
            (Err(error), _) => {
                return tracing::warn!(path = %self.cert.display(), %error, "cannot read the TLS certificate: keeping the current one");
            }
            (_, Err(error)) => {
                return tracing::warn!(path = %self.key.display(), %error, "cannot read the TLS private key: keeping the current certificate");
            }
        };
        let digest = digest(&cert, &key);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if *seen == digest {
                if announce_unchanged {
                    tracing::info!(reason = why, "TLS certificate files unchanged");
                }
                return;
            }
            *seen = digest;
        }
        match parse_pair(&cert, &self.cert, &key, &self.key, &self.provider) {
            Ok(certified) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(certified);
                tracing::info!(reason = why, cert = %self.cert.display(), "TLS certificate reloaded");
            }
            Err(error) => tracing::warn!(
                reason = why,
                error = format!("{error:#}"),
                "TLS certificate reload failed: keeping the current one"
            ),
        }
    }
}

impl ResolvesServerCert for ServerCerts {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn digest(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update((cert.len() as u64).to_be_bytes());
    hash.update(cert);
    hash.update(key);
    hash.finalize().into()
}

fn read_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> anyhow::Result<([u8; 32], CertifiedKey)> {
    let cert = std::fs::read(cert_path)
        .with_context(|| format!("reading the TLS certificate {}", cert_path.display()))?;
    let key = std::fs::read(key_path)
        .with_context(|| format!("reading the TLS private key {}", key_path.display()))?;
    let certified = parse_pair(&cert, cert_path, &key, key_path, provider)?;
    Ok((digest(&cert, &key), certified))
}

/// The certificate chain and key of these PEM files, checked to match.
fn parse_pair(
    cert: &[u8],
    cert_path: &Path,
    key: &[u8],
    key_path: &Path,
    provider: &CryptoProvider,
) -> anyhow::Result<CertifiedKey> {
    let chain = parse_certs(cert, cert_path)?;
    // The key's own errors are not shown: they could quote its bytes.
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|error| match error {
        pem::Error::NoItemsFound => {
            anyhow::anyhow!("no PEM private key in {}", key_path.display())
        }
        _ => anyhow::anyhow!("the private key in {} is not valid PEM", key_path.display()),
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|error| {
        anyhow::anyhow!(
            "the private key in {} does not fit the certificate in {} ({})",
            key_path.display(),
            cert_path.display(),
            redacted_key_error(&error)
        )
    })
}

/// What a key error may say: its kind only.
fn redacted_key_error(error: &rustls::Error) -> &'static str {
    match error {
        rustls::Error::InconsistentKeys(_) => "they do not match",
        _ => "unsupported or invalid key",
    }
}

fn parse_certs(pem: &[u8], path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a valid PEM certificate file", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "no PEM certificate in {}",
        path.display()
    );
    Ok(certs)
}

/// Client certificates signed by the CAs of `ca_path`, with one of `names`
/// when any are given.
fn client_verifier(
    ca_path: &Path,
    names: &[String],
    provider: Arc<CryptoProvider>,
) -> anyhow::Result<Arc<dyn ClientCertVerifier>> {
    let pem = std::fs::read(ca_path)
        .with_context(|| format!("reading the TLS client CA {}", ca_path.display()))?;
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(&pem, ca_path)? {
        roots
            .add(cert)
            .with_context(|| format!("a CA certificate in {}", ca_path.display()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .with_context(|| format!("the TLS client CA {}", ca_path.display()))?;
    if names.is_empty() {
        return Ok(verifier);
    }
    let names = names
        .iter()
        .map(|name| {
            ServerName::try_from(name.trim().to_owned())
                .with_context(|| format!("--tls-client-names: {name:?} is not a DNS name or IP"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Arc::new(PinnedNames {
        inner: verifier,
        names,
    }))
}

/// A client verifier that also requires one of `names` in the certificate.
#[derive(Debug)]
struct PinnedNames {
    inner: Arc<dyn ClientCertVerifier>,
    names: Vec<ServerName<'static>>,
}

impl ClientCertVerifier for PinnedNames {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if self
            .names
            .iter()
            .any(|name| cert.verify_is_valid_for_subject_name(name).is_ok())
        {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A connection of the gRPC listener: plaintext or TLS over the guarded
/// stream (whose connection info the handlers see either way).
#[derive(Debug)]
pub enum ServedStream {
    Plain(GuardedStream),
    Tls(Box<tokio_rustls::server::TlsStream<GuardedStream>>),
}

impl ServedStream {
    fn guarded(&self) -> &GuardedStream {
        match self {
            ServedStream::Plain(stream) => stream,
            ServedStream::Tls(stream) => stream.get_ref().0,
        }
    }
}

impl tonic::transport::server::Connected for ServedStream {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        self.guarded().info().clone()
    }
}

impl AsyncRead for ServedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServedStream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            ServedStream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServedStream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            ServedStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServedStream::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            ServedStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ServedStream::Plain(stream) => stream.is_write_vectored(),
            ServedStream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServedStream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            ServedStream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServedStream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            ServedStream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    fn served(certs: &ServerCerts) -> CertificateDer<'static> {
        certs.current.read().unwrap().cert[0].clone()
    }

    #[test]
    fn a_failed_reload_keeps_the_certificate_and_never_shows_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let (cert, key) = pair("first.test");
        std::fs::write(&cert_path, &cert).unwrap();
        std::fs::write(&key_path, &key).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs = ServerCerts::load(cert_path.clone(), key_path.clone(), provider.clone())
            .expect("loads");
        let first = served(&certs);

        // A key that does not match, then a mangled key: refused, and the
        // errors quote neither key.
        let (_, other_key) = pair("other.test");
        std::fs::write(&key_path, &other_key).unwrap();
        certs.reload("test", false);
        assert_eq!(served(&certs), first);
        let error = read_pair(&cert_path, &key_path, &provider).unwrap_err();
        let mangled = other_key.replace('A', "!");
        std::fs::write(&key_path, &mangled).unwrap();
        certs.reload("test", false);
        assert_eq!(served(&certs), first);
        let mangled_error = read_pair(&cert_path, &key_path, &provider).unwrap_err();
        for error in [format!("{error:#}"), format!("{mangled_error:#}")] {
            assert!(error.contains("key.pem"), "{error}");
            for line in other_key.lines().chain(mangled.lines()) {
                if !line.starts_with("-----") {
                    assert!(!error.contains(line), "{error}");
                }
            }
        }

        // A good pair is loaded.
        let (cert, key) = pair("second.test");
        std::fs::write(&key_path, &key).unwrap();
        std::fs::write(&cert_path, &cert).unwrap();
        certs.reload("test", false);
        assert_ne!(served(&certs), first);
    }
}
