//! The real `filegate serve` binary, logging at trace level, driven through a
//! full scenario: no line of its output holds the app secret, the webhook
//! secret or the JWT secret, raw, hex or base64.

#[path = "support/gateway.rs"]
mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use filegate::filestack::{FilestackClient, FilestackConfig, UploadSpec};
use filegate::gateway::auth::mint_hs256;
use filegate::gateway::settings::LOCAL_API_KEY;
use filegate::pb::v1 as pb;
use filegate::pb::v1::file_gateway_service_client::FileGatewayServiceClient;
use filegate::secret::Secret;
use rand::distr::{Alphanumeric, SampleString};
use support::{MIB, SERVE_ON_PORT_ZERO, data, png, sha256_hex, unix_now};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::Channel;

const PATIENCE: Duration = Duration::from_secs(60);

type Client = FileGatewayServiceClient<Channel>;

/// A running `filegate serve` and the readers of its output.
struct Served {
    child: tokio::process::Child,
    grpc: String,
    http: String,
    emulator: String,
    stdout: JoinHandle<Vec<String>>,
    stderr: JoinHandle<Vec<String>>,
}

/// Collects every line of `pipe`, also sending each one to `lines` while
/// someone listens.
fn collect(
    pipe: impl AsyncRead + Unpin + Send + 'static,
    lines: Option<mpsc::Sender<String>>,
) -> JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut all = Vec::new();
        let mut reader = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if let Some(tx) = &lines {
                let _ = tx.send(line.clone()).await;
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

/// Starts the binary in local mode with the given JWT and webhook secrets,
/// logging text or, with `json`, JSON lines.
async fn serve(dir: &Path, jwt_secret: &str, webhook_secret: &str, json: bool) -> Served {
    let data_dir = dir.to_str().expect("utf-8 temp dir");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_filegate"))
        .args(SERVE_ON_PORT_ZERO)
        .args(["--data-dir", data_dir])
        .args(["--part-size", "5242880", "--jwt-secret", jwt_secret])
        .env("FILESTACK_WEBHOOK_SECRET", webhook_secret)
        .env("RUST_LOG", "trace")
        .env_remove("FILESTACK_API_KEY")
        .env_remove("DATABASE_URL")
        .env_remove("FILEGATE_JWT_SECRET")
        .env("FILEGATE_LOG_FORMAT", if json { "json" } else { "text" })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("filegate serve starts");
    let (tx, mut rx) = mpsc::channel(16);
    let stdout = collect(child.stdout.take().expect("stdout"), Some(tx));
    let stderr = collect(child.stderr.take().expect("stderr"), None);
    let addresses = async {
        let (mut grpc, mut http) = (None, None);
        while let Some(line) = rx.recv().await {
            if line.starts_with("filegate listening:") {
                grpc = word_after(&line, "grpc=");
                http = word_after(&line, "http=");
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
    Served {
        child,
        grpc: format!("http://{}", grpc.expect("the gRPC address")),
        http: format!("http://{}", http.expect("the HTTP address")),
        emulator: emulator.expect("the emulator URL"),
        stdout,
        stderr,
    }
}

/// `message` with `authorization: Bearer <token>`.
fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {token}").parse().expect("header value");
    request.metadata_mut().insert("authorization", value);
    request
}

fn spec(filename: &str, size: Option<i64>, sha256: String) -> pb::UploadSpec {
    pb::UploadSpec {
        filename: filename.into(),
        size_bytes: size,
        sha256,
        request_id: format!("req-{filename}"),
        ..Default::default()
    }
}

/// The spec, then the bytes in 1 MiB messages with their write offsets.
fn messages(spec: pb::UploadSpec, bytes: &[u8]) -> Vec<pb::UploadRequest> {
    let mut out = vec![pb::UploadRequest {
        first_message: Some(pb::upload_request::FirstMessage::Spec(spec)),
        ..Default::default()
    }];
    for (index, chunk) in bytes.chunks(MIB).enumerate() {
        out.push(pb::UploadRequest {
            data: chunk.to_vec().into(),
            write_offset: (index * MIB) as i64,
            ..Default::default()
        });
    }
    out
}

async fn upload(client: &mut Client, token: &str, name: &str, bytes: &[u8]) -> pb::Document {
    let size = Some(bytes.len() as i64);
    let msgs = messages(spec(name, size, sha256_hex(bytes)), bytes);
    let response = client.upload(authed(token, tokio_stream::iter(msgs))).await;
    let document = response.expect("upload").into_inner().document;
    document.expect("a document")
}

/// Signed URL and thumbnail (both fetched), metadata, get, two list pages
/// and an upload policy.
async fn read_back(client: &mut Client, token: &str, text: &pb::Document, image: &pb::Document) {
    let http = reqwest::Client::new();
    let request = pb::SignedUrlRequest {
        document_id: text.id.clone(),
        ttl: None,
    };
    let url = client
        .signed_url(authed(token, request))
        .await
        .expect("signed url");
    let body = http.get(&url.into_inner().url).send().await.expect("GET");
    assert_eq!(body.status(), 200, "the signed URL serves the file");
    let request = pb::ThumbnailRequest {
        document_id: image.id.clone(),
        width: 16,
        height: 16,
        ..Default::default()
    };
    let url = client
        .thumbnail(authed(token, request))
        .await
        .expect("thumbnail");
    let body = http.get(&url.into_inner().url).send().await.expect("GET");
    assert_eq!(body.status(), 200, "the thumbnail URL serves an image");
    let request = pb::MetadataRequest {
        document_id: image.id.clone(),
        fields: (1..=12).collect(),
    };
    client
        .metadata(authed(token, request))
        .await
        .expect("metadata");
    let request = pb::GetDocumentRequest {
        document_id: text.id.clone(),
    };
    client
        .get_document(authed(token, request))
        .await
        .expect("get");
    let first = pb::ListDocumentsRequest {
        page_size: 1,
        page_token: String::new(),
    };
    let page = client
        .list_documents(authed(token, first))
        .await
        .expect("list");
    let next = pb::ListDocumentsRequest {
        page_size: 1,
        page_token: page.into_inner().next_page_token,
    };
    client
        .list_documents(authed(token, next))
        .await
        .expect("next page");
    let policy = pb::UploadPolicyRequest::default();
    client
        .upload_policy(authed(token, policy))
        .await
        .expect("policy");
}

/// A file stored under alice's path straight at the emulator (as a browser
/// would), then registered.
async fn register_browser_upload(client: &mut Client, token: &str, emulator: &str, app: &str) {
    let config = FilestackConfig::emulator(emulator, LOCAL_API_KEY, Secret::new(app));
    let filestack = FilestackClient::new(config).expect("client");
    let spec = UploadSpec {
        path: Some("user-uploads/alice/".into()),
        ..UploadSpec::new("browser.png", "image/png")
    };
    let bytes = bytes::Bytes::from(png(4, 4));
    let stream = tokio_stream::iter(vec![Ok::<_, std::io::Error>(bytes)]);
    let stored = filestack
        .upload(stream, spec)
        .await
        .expect("browser upload");
    let request = pb::RegisterHandleRequest {
        handle: stored.handle,
        request_id: "browser-1".into(),
    };
    client
        .register_handle(authed(token, request))
        .await
        .expect("register");
}

fn assert_refused<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), code, "{what}: {status:?}");
}

/// Calls refused for their token, their input or their owner.
async fn refusals(client: &mut Client, alice: &str, bob: &str, jwt_secret: &str, text: &str) {
    let wrong_key = Secret::new("not-the-gateway-secret-at-all");
    let forged = mint_hs256(&wrong_key, "alice", Duration::from_secs(60)).expect("token");
    let claims = serde_json::json!({"sub": "alice", "exp": 1_000});
    let key = jsonwebtoken::EncodingKey::from_secret(jwt_secret.as_bytes()).expect("key");
    let expired = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key);
    let expired = expired.expect("token");
    for token in [forged.as_str(), expired.as_str(), "not-a-jwt"] {
        let result = client.who_am_i(authed(token, pb::WhoAmIRequest {})).await;
        assert_refused(result, Code::Unauthenticated, "a bad token");
    }
    let bad_uploads = [
        spec("", None, String::new()),
        spec("a.txt", None, sha256_hex(b"other bytes")),
        spec("a.txt", Some(99), String::new()),
    ];
    for bad in bad_uploads {
        let msgs = tokio_stream::iter(messages(bad, b"some bytes"));
        let result = client.upload(authed(alice, msgs)).await;
        assert!(result.is_err(), "a bad upload is refused");
    }
    let request = pb::GetDocumentRequest {
        document_id: text.to_owned(),
    };
    let result = client.get_document(authed(bob, request)).await;
    assert_refused(result, Code::PermissionDenied, "another owner's document");
    let request = pb::RegisterHandleRequest {
        handle: "UnknownHandle0000000".into(),
        request_id: String::new(),
    };
    let result = client.register_handle(authed(alice, request)).await;
    assert_refused(result, Code::NotFound, "an unknown handle");
}

/// Posts one delivery signed with the webhook secret and one signed with
/// another secret.
async fn post_deliveries(http_url: &str, webhook_secret: &str) {
    let body = serde_json::json!({
        "id": "secrets-test-1", "action": "fp.upload", "timestamp": unix_now(),
        "text": {"url": "https://cdn.filestackcontent.com/TestDeliveryHandle00", "key": "user-uploads/alice/t.bin"},
    })
    .to_string();
    let timestamp = unix_now().to_string();
    let http = reqwest::Client::new();
    for (secret, status) in [(webhook_secret, 200), ("a-wrong-webhook-secret", 401)] {
        let signature =
            filegate::filestack::webhook::sign(&Secret::new(secret), &timestamp, body.as_bytes());
        let response = http
            .post(format!("{http_url}/webhooks/filestack"))
            .header("FS-Timestamp", &timestamp)
            .header("FS-Signature", signature)
            .body(body.clone())
            .send()
            .await
            .expect("webhook POST");
        assert_eq!(response.status(), status, "delivery signed with {secret:?}");
    }
}

/// Reads `events` until each (action, handle) in `wanted` was seen.
async fn await_events(events: &mut tonic::Streaming<pb::Event>, mut wanted: Vec<(&str, String)>) {
    let read = async {
        while !wanted.is_empty() {
            let event = events
                .message()
                .await
                .expect("the stream")
                .expect("an event");
            wanted.retain(|(action, handle)| (*action, handle) != (&event.action, &event.handle));
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("the events in time");
}

/// A secret and its obvious encodings: hex, and standard and URL-safe
/// base64 at each of the three byte alignments it can have inside a longer
/// encoded text (only the characters that depend on the secret alone).
fn encodings(secret: &str) -> Vec<String> {
    let bytes = secret.as_bytes();
    let mut forms = vec![secret.to_owned(), hex::encode(bytes)];
    for shift in 0..3 {
        let mut shifted = vec![0u8; shift];
        shifted.extend_from_slice(bytes);
        let (start, end) = ((8 * shift).div_ceil(6), 8 * (shift + bytes.len()) / 6);
        for encoded in [STANDARD.encode(&shifted), URL_SAFE.encode(&shifted)] {
            forms.push(encoded[start..end].to_owned());
        }
    }
    forms
}

/// Each line that holds a form of a secret, named by the secret and the
/// line's number (1-based) in `lines`.
fn leaks(lines: &[String], secrets: &[(&str, &str)]) -> Vec<String> {
    let mut found = Vec::new();
    for (name, secret) in secrets {
        let forms = encodings(secret);
        for (number, line) in lines.iter().enumerate() {
            if forms.iter().any(|form| line.contains(form.as_str())) {
                found.push(format!("the {name} in line {}: {line}", number + 1));
            }
        }
    }
    found
}

#[test]
fn a_secret_is_found_raw_in_hex_and_inside_base64_text_at_any_alignment() {
    let secret = "s3cr3t-value-of-some-length";
    let secrets = [("test secret", secret)];
    for prefix in ["", "a", "ab", "abc"] {
        let standard = STANDARD.encode(format!("{prefix}{secret}!"));
        let url_safe = URL_SAFE.encode(format!("{prefix}{secret}?>"));
        for line in [standard, url_safe] {
            assert_eq!(
                leaks(std::slice::from_ref(&line), &secrets).len(),
                1,
                "{line}"
            );
        }
    }
    let raw_and_hex = [format!("key={secret}"), hex::encode(secret)];
    assert_eq!(leaks(&raw_and_hex, &secrets).len(), 2);
    let innocent = ["policy=eyJleHBpcnkiOjF9".to_owned()];
    assert!(leaks(&innocent, &secrets).is_empty());
}

/// SIGTERM, then the exit status and every line of stdout and stderr.
async fn stop(mut served: Served) -> Vec<String> {
    let pid = served.child.id().expect("running").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert!(kill.expect("kill runs").success(), "SIGTERM sent");
    let status = tokio::time::timeout(PATIENCE, served.child.wait()).await;
    let status = status.expect("exits in time").expect("exit status");
    assert!(status.success(), "exit status {status:?}");
    let mut lines = served.stdout.await.expect("stdout reader");
    lines.extend(served.stderr.await.expect("stderr reader"));
    lines
}

#[tokio::test]
async fn a_full_scenario_logged_at_trace_level_never_prints_a_secret() {
    scenario_never_prints_a_secret(false).await;
}

#[tokio::test]
async fn a_full_scenario_logged_as_json_at_trace_level_never_prints_a_secret() {
    scenario_never_prints_a_secret(true).await;
}

/// Runs the whole scenario and searches every output line for the secrets.
async fn scenario_never_prints_a_secret(json: bool) {
    let random = || Alphanumeric.sample_string(&mut rand::rng(), 32);
    let (jwt_secret, webhook_secret) = (format!("jwt-{}", random()), format!("whk-{}", random()));
    let dir = tempfile::tempdir().expect("temp dir");
    let served = serve(dir.path(), &jwt_secret, &webhook_secret, json).await;
    let app_secret = std::fs::read_to_string(dir.path().join("emulator-app-secret"));
    let app_secret = app_secret.expect("the local app secret").trim().to_owned();
    let jwt = Secret::new(jwt_secret.as_str());
    let alice = mint_hs256(&jwt, "alice", Duration::from_secs(600)).expect("token");
    let bob = mint_hs256(&jwt, "bob", Duration::from_secs(600)).expect("token");
    let mut client = Client::connect(served.grpc.clone())
        .await
        .expect("gRPC connects");
    client
        .who_am_i(authed(&alice, pb::WhoAmIRequest {}))
        .await
        .expect("who am i");
    let text = upload(&mut client, &alice, "notes.txt", b"alice's notes").await;
    let big = upload(&mut client, &alice, "big.bin", &data(11 * MIB + 5)).await;
    let image = upload(&mut client, &alice, "pic.png", &png(32, 24)).await;
    read_back(&mut client, &alice, &text, &image).await;
    register_browser_upload(&mut client, &alice, &served.emulator, &app_secret).await;
    refusals(&mut client, &alice, &bob, &jwt_secret, &text.id).await;
    post_deliveries(&served.http, &webhook_secret).await;
    let watch = pb::WatchEventsRequest {
        after_event_id: 0,
        include_payload: true,
    };
    let events = client
        .watch_events(authed(&alice, watch))
        .await
        .expect("watch");
    let mut events = events.into_inner();
    let uploads = [&text, &big, &image].map(|d| ("fp.upload", d.handle.clone()));
    await_events(&mut events, uploads.to_vec()).await;
    let delete = pb::DeleteRequest {
        document_id: big.id.clone(),
    };
    client.delete(authed(&alice, delete)).await.expect("delete");
    await_events(&mut events, vec![("fp.delete", big.handle.clone())]).await;
    drop((events, client));
    let lines = stop(served).await;
    assert!(
        lines.iter().any(|l| l.contains("TRACE")),
        "trace logging was on"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("webhook delivery recorded")),
        "webhooks were logged"
    );
    let secrets = [
        ("app secret", app_secret.as_str()),
        ("webhook secret", webhook_secret.as_str()),
        ("JWT secret", jwt_secret.as_str()),
    ];
    let found = leaks(&lines, &secrets);
    assert!(
        found.is_empty(),
        "{} of {} lines hold a secret:\n{}",
        found.len(),
        lines.len(),
        found.join("\n")
    );
}
