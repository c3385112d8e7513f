//! TLS of the gRPC listener: server TLS, mTLS with pinned client names, and
//! certificate rotation without restart. Certificates are made here with
//! rcgen; the client is tonic's channel over a tokio-rustls connection, so
//! the test sees the certificate the server presented.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use filegate::pb::v1 as pb;
use filegate::pb::v1::file_gateway_service_client::FileGatewayServiceClient;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use support::gateway::TestGateway;
use support::poll_until;
use support::process::ServedGateway;
use support::rpc::Rpc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

/// Longest wait for something that must happen.
const PATIENCE: Duration = Duration::from_secs(20);

/// A test CA.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).expect("CA cert").pem();
        Ca {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` and its key, in PEM.
    fn leaf(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let params = CertificateParams::new(names).expect("leaf params");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        Leaf {
            cert: cert.pem(),
            der: cert.der().clone(),
            key: key.serialize_pem(),
        }
    }
}

struct Leaf {
    cert: String,
    der: CertificateDer<'static>,
    key: String,
}

/// Writes `contents` at `path` at once (rename), as a deployment would.
fn replace(path: &Path, contents: &str) {
    let staged = path.with_extension("new");
    std::fs::write(&staged, contents).expect("write");
    std::fs::rename(&staged, path).expect("rename");
}

/// The server's files in a temp dir, and the flags naming them.
struct ServerFiles {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    client_ca: PathBuf,
}

impl ServerFiles {
    fn new(leaf: &Leaf, client_ca: &Ca) -> ServerFiles {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = ServerFiles {
            cert: dir.path().join("server.pem"),
            key: dir.path().join("server.key"),
            client_ca: dir.path().join("client-ca.pem"),
            _dir: dir,
        };
        replace(&files.cert, &leaf.cert);
        replace(&files.key, &leaf.key);
        replace(&files.client_ca, &client_ca.pem);
        files
    }

    fn flags(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }

    fn mtls_flags(&self) -> Vec<String> {
        let mut flags = self.flags();
        flags.extend([
            "--tls-client-ca".into(),
            self.client_ca.display().to_string(),
        ]);
        flags
    }
}

async fn start(flags: &[String]) -> TestGateway {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    TestGateway::start_with(&flags).await
}

fn addr(gw: &impl Rpc) -> SocketAddr {
    gw.grpc_url()
        .trim_start_matches("http://")
        .parse()
        .expect("an address")
}

/// A client trusting `roots`, presenting `identity` if any.
fn client_config(roots: &str, identity: Option<&Leaf>) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(roots.as_bytes()) {
        store.add(cert.expect("root PEM")).expect("root");
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(store);
    let mut config = match identity {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![leaf.der.clone()],
                PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).expect("client key"),
            )
            .expect("client identity"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    // Every connection a full handshake: a resumed session would report
    // the certificate of the session it resumes.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// The certificate the server presented on a connection.
type Presented = Arc<Mutex<Option<CertificateDer<'static>>>>;

/// A channel over TLS to `localhost` at `addr`, and what the server
/// presented on its connection.
async fn tls_channel(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> Result<(Channel, Presented), String> {
    let presented: Presented = Arc::default();
    let seen = presented.clone();
    let connector = tower::service_fn(move |_: Uri| {
        let config = config.clone();
        let seen = seen.clone();
        async move {
            let tcp = TcpStream::connect(addr).await?;
            let name = ServerName::try_from("localhost").expect("a name");
            let tls = TlsConnector::from(config).connect(name, tcp).await?;
            *seen.lock().expect("lock") = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|cert| cert.clone().into_owned());
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).expect("endpoint");
    let connect = endpoint.connect_with_connector(connector);
    match tokio::time::timeout(PATIENCE, connect).await {
        Ok(Ok(channel)) => Ok((channel, presented)),
        Ok(Err(error)) => Err(format!("connect: {error:?}")),
        Err(_) => Err("connect timed out".into()),
    }
}

async fn who_am_i_on(gw: &impl Rpc, channel: Channel) -> Result<String, String> {
    let mut client = FileGatewayServiceClient::new(channel);
    let call = client.who_am_i(gw.request("alice", pb::WhoAmIRequest {}));
    match tokio::time::timeout(PATIENCE, call).await {
        Ok(Ok(response)) => Ok(response.into_inner().owner),
        Ok(Err(status)) => Err(format!("call: {status:?}")),
        Err(_) => Err("call timed out".into()),
    }
}

/// WhoAmI on a new TLS connection.
async fn who_am_i(gw: &TestGateway, config: Arc<ClientConfig>) -> Result<String, String> {
    let (channel, _) = tls_channel(addr(gw), config).await?;
    who_am_i_on(gw, channel).await
}

#[tokio::test]
async fn tls_serves_clients_trusting_its_ca_only() {
    let ca = Ca::new("server CA");
    let files = ServerFiles::new(&ca.leaf(&["localhost"]), &ca);
    let gw = start(&files.flags()).await;

    let owner = who_am_i(&gw, client_config(&ca.pem, None)).await;
    assert!(
        owner.is_ok(),
        "a client trusting the CA is served: {owner:?}"
    );

    let other = Ca::new("another CA");
    let refused = who_am_i(&gw, client_config(&other.pem, None)).await;
    assert!(refused.is_err(), "a client trusting another CA fails");

    let plaintext = tokio::time::timeout(PATIENCE, gw.who_am_i("alice"))
        .await
        .expect("a plaintext call ends in time");
    assert!(
        plaintext.is_err(),
        "a plaintext client fails: {plaintext:?}"
    );
}

#[tokio::test]
async fn tls_needs_both_the_certificate_and_the_key() {
    let ca = Ca::new("server CA");
    let files = ServerFiles::new(&ca.leaf(&["localhost"]), &ca);
    let cert = files.cert.display().to_string();
    let key = files.key.display().to_string();
    for flags in [["--tls-cert", cert.as_str()], ["--tls-key", key.as_str()]] {
        let error = TestGateway::try_start_with(&flags)
            .await
            .err()
            .expect("refused");
        assert!(
            error.to_string().contains("both or neither"),
            "{flags:?}: {error}"
        );
    }
    let error = TestGateway::try_start_with(&["--tls-cert", &cert, "--tls-key", &cert])
        .await
        .err()
        .expect("a certificate is no key");
    let message = format!("{error:#}");
    assert!(message.contains("private key"), "{message}");
}

#[tokio::test]
async fn tls_client_certificates_from_the_client_ca_only() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let files = ServerFiles::new(&server_ca.leaf(&["localhost"]), &client_ca);
    let gw = start(&files.mtls_flags()).await;

    let anonymous = who_am_i(&gw, client_config(&server_ca.pem, None)).await;
    assert!(
        anonymous.is_err(),
        "a client without a certificate is refused"
    );

    let stranger = Ca::new("stranger CA").leaf(&["app.test"]);
    let refused = who_am_i(&gw, client_config(&server_ca.pem, Some(&stranger))).await;
    assert!(refused.is_err(), "a certificate from another CA is refused");

    let app = client_ca.leaf(&["app.test"]);
    let owner = who_am_i(&gw, client_config(&server_ca.pem, Some(&app))).await;
    assert!(
        owner.is_ok(),
        "a certificate of the client CA is served: {owner:?}"
    );
}

#[tokio::test]
async fn tls_client_names_pin_the_client_identities() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let files = ServerFiles::new(&server_ca.leaf(&["localhost"]), &client_ca);
    let mut flags = files.mtls_flags();
    flags.extend(["--tls-client-names".into(), "app.test,worker.test".into()]);
    let gw = start(&flags).await;

    for name in ["app.test", "worker.test"] {
        let leaf = client_ca.leaf(&[name]);
        let owner = who_am_i(&gw, client_config(&server_ca.pem, Some(&leaf))).await;
        assert!(owner.is_ok(), "{name} is served: {owner:?}");
    }
    let pinned_out = client_ca.leaf(&["intruder.test"]);
    let refused = who_am_i(&gw, client_config(&server_ca.pem, Some(&pinned_out))).await;
    assert!(refused.is_err(), "a name not pinned is refused");
}

#[tokio::test]
async fn tls_certificate_rotates_without_restart() {
    let ca = Ca::new("server CA");
    let first = ca.leaf(&["localhost"]);
    let files = ServerFiles::new(&first, &ca);
    let gw = start(&files.flags()).await;
    let config = client_config(&ca.pem, None);

    let (open, presented) = tls_channel(addr(&gw), config.clone())
        .await
        .expect("connects");
    who_am_i_on(&gw, open.clone()).await.expect("served");
    assert_eq!(presented.lock().unwrap().as_ref(), Some(&first.der));

    // A broken pair is not loaded: the old certificate stays.
    replace(&files.cert, "not a certificate");
    let rotated = ca.leaf(&["localhost", "rotated.test"]);
    replace(&files.key, &rotated.key);
    replace(&files.cert, &rotated.cert);

    poll_until(PATIENCE, "new connections get the new certificate", || {
        let config = config.clone();
        let gw = &gw;
        let rotated = &rotated;
        async move {
            let (channel, presented) = tls_channel(addr(gw), config).await.expect("connects");
            who_am_i_on(gw, channel).await.expect("served");
            presented.lock().unwrap().as_ref() == Some(&rotated.der)
        }
    })
    .await;

    who_am_i_on(&gw, open)
        .await
        .expect("the connection opened before the rotation still works");
    assert_eq!(
        presented.lock().unwrap().as_ref(),
        Some(&first.der),
        "on the same connection"
    );
}

/// `pem` with one character of its body changed: still PEM, no longer a key.
fn corrupted(pem: &str) -> String {
    let mut lines: Vec<String> = pem.lines().map(str::to_owned).collect();
    let line = &mut lines[1];
    let middle = line.len() / 2;
    let changed = if &line[middle..=middle] == "A" {
        "B"
    } else {
        "A"
    };
    line.replace_range(middle..=middle, changed);
    lines.join("\n") + "\n"
}

/// What of a PEM private key must never be logged: each line of its body,
/// and its DER in hex, whole and by 16-byte pieces; but not the pieces its
/// certificate (which is public, and logged by rustls at trace level)
/// holds too: a PKCS#8 key carries its public key.
fn key_forms(pem: &str, cert: Option<&Leaf>) -> Vec<String> {
    let public = cert.map(|leaf| (hex::encode(&leaf.der), leaf.cert.clone()));
    let private = |form: &String| {
        public
            .as_ref()
            .is_none_or(|(der, pem)| !der.contains(form.as_str()) && !pem.contains(form.as_str()))
    };
    let body: Vec<&str> = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let mut forms: Vec<String> = body
        .iter()
        .filter(|line| line.len() >= 16)
        .map(|line| (*line).to_owned())
        .collect();
    if let Ok(der) =
        base64::engine::Engine::decode(&base64::engine::general_purpose::STANDARD, body.concat())
    {
        forms.push(hex::encode(&der));
        forms.extend(der.chunks_exact(16).map(hex::encode));
    }
    forms.into_iter().filter(private).collect()
}

#[tokio::test]
async fn tls_sighup_reloads_the_certificate_and_no_private_key_is_ever_logged() {
    let ca = Ca::new("server CA");
    let first = ca.leaf(&["localhost"]);
    let files = ServerFiles::new(&first, &ca);
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = env!("CARGO_BIN_EXE_filegate");
    let secret = "tls-sighup-test-jwt-secret-0123456789";
    let mut served = ServedGateway::start(bin, dir.path(), Some(secret), |command| {
        command.args(files.flags()).env("RUST_LOG", "trace");
    })
    .await;
    let config = client_config(&ca.pem, None);
    let (channel, presented) = tls_channel(addr(&served), config.clone())
        .await
        .expect("connects");
    who_am_i_on(&served, channel).await.expect("served");
    assert_eq!(presented.lock().unwrap().as_ref(), Some(&first.der));
    let mut keys = vec![(first.key.clone(), Some(first))];

    // The files are also polled (every 2 s): when the poll sees a pair
    // first, SIGHUP finds the files unchanged, and a fresh pair is tried.
    let mut rotated = None;
    for attempt in 0..3 {
        let leaf = ca.leaf(&["localhost", &format!("sighup-{attempt}.test")]);
        replace(&files.key, &leaf.key);
        replace(&files.cert, &leaf.cert);
        served.signal("HUP");
        let line = served.log_line_with(&["TLS certificate", "SIGHUP"]).await;
        if line.contains("reloaded") {
            rotated = Some(leaf);
            break;
        }
        keys.push((leaf.key.clone(), Some(leaf)));
    }
    let rotated = rotated.expect("a SIGHUP reloaded a replaced pair");
    let (channel, presented) = tls_channel(addr(&served), config.clone())
        .await
        .expect("connects");
    who_am_i_on(&served, channel).await.expect("served");
    assert_eq!(presented.lock().unwrap().as_ref(), Some(&rotated.der));

    // A key that does not parse: refused, the last good pair kept.
    let broken = corrupted(&ca.leaf(&["localhost"]).key);
    keys.push((broken.clone(), None));
    replace(&files.key, &broken);
    served.signal("HUP");
    let line = served.log_line_with(&["TLS certificate", "SIGHUP"]).await;
    assert!(
        line.contains("reload failed") || line.contains("unchanged"),
        "{line}"
    );
    let (channel, presented) = tls_channel(addr(&served), config).await.expect("connects");
    who_am_i_on(&served, channel).await.expect("served");
    assert_eq!(presented.lock().unwrap().as_ref(), Some(&rotated.der));

    let lines = served.stop().await;
    assert!(
        lines.iter().any(|l| l.contains("TRACE")),
        "trace logging was on"
    );
    keys.push((rotated.key.clone(), Some(rotated)));
    for (key, cert) in &keys {
        for form in key_forms(key, cert.as_ref()) {
            let leaked: Vec<&String> = lines.iter().filter(|l| l.contains(&form)).collect();
            assert!(leaked.is_empty(), "a private key in the log: {leaked:?}");
        }
    }
}

/// `GET path` over TLS to the HTTP listener with `config`: the response.
async fn https_get(
    gw: &TestGateway,
    config: Arc<ClientConfig>,
    path: &str,
) -> std::io::Result<(String, Option<CertificateDer<'static>>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = gw.http_url.trim_start_matches("https://");
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("a name");
    let mut tls = TlsConnector::from(config).connect(name, tcp).await?;
    let presented = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|cert| cert.clone().into_owned());
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await?;
    Ok((response, presented))
}

#[tokio::test]
async fn tls_on_the_http_listener_with_http_tls() {
    let ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let leaf = ca.leaf(&["localhost"]);
    let files = ServerFiles::new(&leaf, &client_ca);
    let mut flags = files.mtls_flags();
    flags.extend([
        "--http-tls".into(),
        "true".into(),
        "--local-webhooks".into(),
        "false".into(),
    ]);
    let gw = start(&flags).await;

    // Probes carry no client certificate: the HTTP listener asks for none.
    let mut config = (*client_config(&ca.pem, None)).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let (response, presented) =
        tokio::time::timeout(PATIENCE, https_get(&gw, Arc::new(config), "/healthz"))
            .await
            .expect("answered in time")
            .expect("served over TLS");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok"), "{response}");
    assert_eq!(presented.as_ref(), Some(&leaf.der));

    let plaintext = reqwest::get(gw.http_url.replace("https://", "http://") + "/healthz").await;
    assert!(plaintext.is_err(), "plaintext HTTP fails: {plaintext:?}");
}

#[tokio::test]
async fn tls_a_stalled_handshake_blocks_no_one_and_is_closed_in_time() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = Ca::new("server CA");
    let files = ServerFiles::new(&ca.leaf(&["localhost"]), &ca);
    let mut flags = files.flags();
    flags.extend(["--handshake-timeout-secs".into(), "2".into()]);
    let gw = start(&flags).await;

    // Past the guarded listener's 24 bytes, inside a ClientHello record
    // that never ends.
    let mut stalled = TcpStream::connect(addr(&gw)).await.expect("connects");
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0x3f, 0xfc, 0x03, 0x03,
    ];
    hello.resize(64, 0);
    stalled.write_all(&hello).await.expect("write");

    let started = std::time::Instant::now();
    let owner = who_am_i(&gw, client_config(&ca.pem, None)).await;
    assert!(
        owner.is_ok(),
        "served beside a stalled handshake: {owner:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "not held up by the stalled handshake: {:?}",
        started.elapsed()
    );

    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(PATIENCE, stalled.read(&mut buf))
        .await
        .expect("the stalled connection is closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?}");
}
