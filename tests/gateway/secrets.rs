//! The real `filegate serve` binary, logging at trace level and exporting
//! traces, driven through a full scenario: no line of its output holds the
//! app secret, the webhook secret, the JWT secret or the OTLP collector's
//! key, raw, hex or base64. (The TLS private key: `tls.rs`.)

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use filegate::filestack::webhook::sign;
use filegate::pb::v1 as pb;
use filegate::secret::Secret;
use rand::distr::{Alphanumeric, SampleString};
use support::MIB;
use support::auth::{authed, expired_token, token};
use support::content::{data, png, sha256_hex};
use support::gateway::{delivery, post_webhook};
use support::otlp::OtlpReceiver;
use support::process::ServedGateway;
use support::rpc::{Rpc, messages_with_offsets, spec, thumb};
use support::unix_now;
use tonic::Code;

const PATIENCE: Duration = Duration::from_secs(60);

/// The secrets the binary is given.
struct Secrets {
    jwt: String,
    webhook: String,
    /// An OTLP collector's API key, in `OTEL_EXPORTER_OTLP_HEADERS`.
    otlp_key: String,
}

/// Starts the binary in local mode with the given secrets, exporting traces
/// to `collector`, logging text or, with `json`, JSON lines.
async fn serve(
    dir: &Path,
    secrets: &Secrets,
    collector: &OtlpReceiver,
    json: bool,
) -> ServedGateway {
    let bin = env!("CARGO_BIN_EXE_filegate");
    ServedGateway::start(bin, dir, Some(&secrets.jwt), |command| {
        command
            .args(["--part-size", "5242880"])
            .env("FILESTACK_WEBHOOK_SECRET", &secrets.webhook)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.http_url)
            .env(
                "OTEL_EXPORTER_OTLP_HEADERS",
                format!("x-api-key={}", secrets.otlp_key),
            )
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("RUST_LOG", "trace")
            .env("FILEGATE_LOG_FORMAT", if json { "json" } else { "text" });
    })
    .await
}

/// A spec with the declared size, the SHA-256 and a request id.
fn checked_spec(filename: &str, size: Option<i64>, sha256: String) -> pb::UploadSpec {
    pb::UploadSpec {
        sha256,
        request_id: format!("req-{filename}"),
        ..spec(filename, size)
    }
}

/// The spec, then the bytes in 1 MiB messages with their write offsets.
fn messages(spec: pb::UploadSpec, bytes: &[u8]) -> Vec<pb::UploadRequest> {
    messages_with_offsets(spec, bytes, MIB)
}

/// Upload of `bytes` as alice, with every check a client can ask for.
async fn upload(gw: &ServedGateway, name: &str, bytes: &[u8]) -> pb::Document {
    let size = Some(bytes.len() as i64);
    let msgs = messages(checked_spec(name, size, sha256_hex(bytes)), bytes);
    gw.upload_stream("alice", msgs).await.expect("upload")
}

/// Signed URL and thumbnail (both fetched), metadata, get, two list pages
/// and an upload policy.
async fn read_back(gw: &ServedGateway, text: &pb::Document, image: &pb::Document) {
    let emulator = gw.emulator();
    let url = gw.signed_url("alice", &text.id, None).await;
    let (status, _) = emulator.get(&url.expect("signed url").url).await;
    assert_eq!(status, 200, "the signed URL serves the file");
    let url = gw.thumbnail("alice", thumb(&image.id, 16, 16)).await;
    let (status, _) = emulator.get(&url.expect("thumbnail").url).await;
    assert_eq!(status, 200, "the thumbnail URL serves an image");
    let every_field: Vec<pb::MetadataField> = (1..=12)
        .map(|field| pb::MetadataField::try_from(field).expect("a metadata field"))
        .collect();
    gw.metadata("alice", &image.id, &every_field)
        .await
        .expect("metadata");
    gw.get_document("alice", &text.id).await.expect("get");
    let page = gw.list_documents("alice", 1, "").await.expect("list");
    gw.list_documents("alice", 1, &page.next_page_token)
        .await
        .expect("next page");
    gw.upload_policy("alice", 0).await.expect("policy");
}

/// A file stored under alice's path straight at the emulator (as a browser
/// would), then registered.
async fn register_browser_upload(gw: &ServedGateway) {
    let handle = gw.emulator().browser_upload("user-uploads/alice/").await;
    gw.register_handle("alice", &handle, "browser-1")
        .await
        .expect("register");
}

fn assert_refused<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), code, "{what}: {status:?}");
}

/// Calls refused for their token, their input or their owner.
async fn refusals(gw: &ServedGateway, jwt_secret: &str, text: &str) {
    let forged = token("not-the-gateway-secret-at-all", "alice");
    let expired = expired_token(jwt_secret);
    let mut client = gw.client().await;
    for token in [forged.as_str(), expired.as_str(), "not-a-jwt"] {
        let result = client.who_am_i(authed(token, pb::WhoAmIRequest {})).await;
        assert_refused(result, Code::Unauthenticated, "a bad token");
    }
    let bad_uploads = [
        checked_spec("", None, String::new()),
        checked_spec("a.txt", None, sha256_hex(b"other bytes")),
        checked_spec("a.txt", Some(99), String::new()),
    ];
    for bad in bad_uploads {
        let result = gw
            .upload_stream("alice", messages(bad, b"some bytes"))
            .await;
        assert!(result.is_err(), "a bad upload is refused");
    }
    let result = gw.get_document("bob", text).await;
    assert_refused(result, Code::PermissionDenied, "another owner's document");
    let result = gw
        .register_handle("alice", "UnknownHandle0000000", "")
        .await;
    assert_refused(result, Code::NotFound, "an unknown handle");
}

/// Posts one delivery signed with the webhook secret and one signed with
/// another secret.
async fn post_deliveries(http_url: &str, webhook_secret: &str) {
    let text = serde_json::json!({
        "url": "https://cdn.filestackcontent.com/TestDeliveryHandle00",
        "key": "user-uploads/alice/t.bin",
    });
    let body = delivery("secrets-test-1", "fp.upload", text);
    let timestamp = unix_now().to_string();
    let http = reqwest::Client::new();
    for (secret, status) in [(webhook_secret, 200), ("a-wrong-webhook-secret", 401)] {
        let signature = sign(&Secret::new(secret), &timestamp, body.as_bytes());
        let (timestamp, signature) = (Some(timestamp.as_str()), Some(signature.as_str()));
        let answer = post_webhook(&http, http_url, body.as_bytes(), timestamp, signature).await;
        assert_eq!(answer, status, "delivery signed with {secret:?}");
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
    let secrets = Secrets {
        jwt: format!("jwt-{}", random()),
        webhook: format!("whk-{}", random()),
        otlp_key: format!("otlp-{}", random()),
    };
    let (jwt_secret, webhook_secret) = (secrets.jwt.clone(), secrets.webhook.clone());
    let collector = OtlpReceiver::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let served = serve(dir.path(), &secrets, &collector, json).await;
    let app_secret = served.emulator().app_secret().expose().to_owned();
    served.who_am_i("alice").await.expect("who am i");
    let text = upload(&served, "notes.txt", b"alice's notes").await;
    let big = upload(&served, "big.bin", &data(11 * MIB + 5)).await;
    let image = upload(&served, "pic.png", &png(32, 24)).await;
    read_back(&served, &text, &image).await;
    register_browser_upload(&served).await;
    refusals(&served, &jwt_secret, &text.id).await;
    post_deliveries(&served.http_url, &webhook_secret).await;
    let events = served.watch_events("alice", 0, true).await;
    let mut events = events.expect("watch");
    let uploads = [&text, &big, &image].map(|d| ("fp.upload", d.handle.clone()));
    await_events(&mut events, uploads.to_vec()).await;
    served.delete("alice", &big.id).await.expect("delete");
    await_events(&mut events, vec![("fp.delete", big.handle.clone())]).await;
    drop(events);
    let lines = served.stop().await;
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
    let key_sent = collector.request_headers().iter().any(|headers| {
        headers.get("x-api-key").map(|v| v.as_bytes()) == Some(secrets.otlp_key.as_bytes())
    });
    assert!(key_sent, "traces were exported with the collector's key");
    let secrets = [
        ("app secret", app_secret.as_str()),
        ("webhook secret", webhook_secret.as_str()),
        ("JWT secret", jwt_secret.as_str()),
        ("OTLP header", secrets.otlp_key.as_str()),
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
