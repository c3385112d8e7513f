//! Webhooks sent by the emulator, received by a small server in the test.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use filegate::emulator::WebhookTarget;
use filegate::filestack::policy::Call;
use filegate::filestack::webhook::WebhookVerifier;
use filegate::secret::Secret;
use serde_json::Value;
use support::emulator::{API_KEY, TestEmulator, handle_of, policy, query};
use support::unix_now;
use tokio::sync::mpsc;

const SECRET: &str = "hook-secret";

struct Delivery {
    timestamp: Option<String>,
    signature: Option<String>,
    body: Bytes,
}

#[derive(Clone)]
struct Receiver {
    tx: mpsc::Sender<Delivery>,
    fail_first: Arc<AtomicU32>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let delivery = Delivery {
        timestamp: header("fs-timestamp"),
        signature: header("fs-signature"),
        body,
    };
    receiver.tx.send(delivery).await.unwrap();
    let failing = receiver
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

/// Starts a receiver that answers 500 to its first `fail_first` deliveries.
async fn receiver(fail_first: u32) -> (String, mpsc::Receiver<Delivery>) {
    let (tx, rx) = mpsc::channel(16);
    let state = Receiver {
        tx,
        fail_first: Arc::new(AtomicU32::new(fail_first)),
    };
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

async fn next(rx: &mut mpsc::Receiver<Delivery>) -> (Delivery, Value) {
    let delivery = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a delivery within 10 s")
        .unwrap();
    let verifier = WebhookVerifier::new(Secret::new(SECRET), Duration::from_secs(300));
    let now = unix_now();
    verifier
        .verify(
            delivery.timestamp.as_deref(),
            delivery.signature.as_deref(),
            &delivery.body,
            now,
        )
        .expect("the signature verifies");
    let json = serde_json::from_slice(&delivery.body).unwrap();
    (delivery, json)
}

/// An emulator that sends its webhooks to `url`, signed with [`SECRET`].
async fn emulator_with_webhooks(url: &str) -> TestEmulator {
    let target = WebhookTarget {
        url: url.to_owned(),
        secret: Secret::new(SECRET),
    };
    TestEmulator::start_with(|config| config.webhook = Some(target)).await
}

/// Stores `text` as a text file; its handle.
async fn store(emu: &TestEmulator, text: &str) -> String {
    handle_of(&emu.store_raw(text.as_bytes().to_vec(), "text/plain").await)
}

#[tokio::test]
async fn uploads_overwrites_and_deletes_send_signed_webhooks() {
    let (url, mut rx) = receiver(0).await;
    let emu = emulator_with_webhooks(&url).await;
    let client = emu.http();
    let handle = store(&emu, "hello").await;
    let (_, upload) = next(&mut rx).await;
    assert_eq!(upload["action"], "fp.upload");
    assert_eq!(upload["text"]["url"], format!("{}/{handle}", emu.base_url));
    assert_eq!(upload["text"]["size"], 5);
    assert_eq!(upload["text"]["status"], "Stored");
    assert!(upload["timestamp"].as_i64().unwrap() <= unix_now());
    let file = format!("{}/api/file/{handle}", emu.base_url);
    let write = emu.sign(&policy(&[Call::Write]));
    client
        .post(&file)
        .query(&query(&write))
        .body("hello!")
        .send()
        .await
        .unwrap();
    let (_, overwrite) = next(&mut rx).await;
    assert_eq!(overwrite["action"], "fp.overwrite");
    assert_eq!(overwrite["text"]["size"], 6);
    let mut remove = query(&emu.sign(&policy(&[Call::Remove])));
    remove.push(("key", API_KEY.to_owned()));
    client.delete(&file).query(&remove).send().await.unwrap();
    let (_, delete) = next(&mut rx).await;
    assert_eq!(delete["action"], "fp.delete");
    let ids: Vec<i64> = [&upload, &overwrite, &delete]
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
}

#[tokio::test]
async fn a_refused_delivery_is_retried_with_the_same_body() {
    let (url, mut rx) = receiver(2).await;
    let emu = emulator_with_webhooks(&url).await;
    store(&emu, "retry me").await;
    let (first, _) = next(&mut rx).await;
    let (second, _) = next(&mut rx).await;
    let (third, json) = next(&mut rx).await;
    assert_eq!(first.body, second.body);
    assert_eq!(second.body, third.body);
    assert_eq!(json["action"], "fp.upload");
}
