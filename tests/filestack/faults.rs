//! Transport failures seen by the Filestack client: cut connections, slow
//! answers, endless 202s and a closed port.

use std::time::Duration;

use filegate::filestack::{FilestackClient, FilestackConfig, FilestackError, UploadSpec};
use filegate::secret::Secret;
use serde_json::json;
use support::MIB;
use support::content::{chunked, data};
use support::emulator::{TestEmulator, upload_spec};

/// A spec for `fault.bin` of `size` bytes.
fn spec(size: usize) -> UploadSpec {
    upload_spec("fault.bin", Some(size as u64))
}

#[tokio::test]
async fn a_part_put_whose_connection_is_cut_mid_body_is_sent_again() {
    let emulator = TestEmulator::start().await;
    emulator
        .fault(json!({"route": "part_put", "cut_after_bytes": 100_000, "count": 1}))
        .await;
    let client = emulator.filestack();
    let bytes = data(6 * MIB);
    let stored = client
        .upload(chunked(&bytes, 65_536), spec(bytes.len()))
        .await
        .expect("upload succeeds after the cut");
    assert_eq!(emulator.download(&client, &stored.handle).await, bytes);
    assert_eq!(emulator.stats().await.requests("part_put"), 3);
}

#[tokio::test]
async fn a_part_announcement_slower_than_the_request_timeout_is_sent_again() {
    let emulator = TestEmulator::start().await;
    let mut config = emulator.filestack_config();
    config.request_timeout = Duration::from_millis(300);
    let client = FilestackClient::new(config).expect("valid config");
    emulator
        .fault(json!({"route": "multipart_upload", "latency_ms": 3000, "count": 1}))
        .await;
    let stored = client
        .upload(chunked(b"patience", 8), spec(8))
        .await
        .expect("upload succeeds after a timeout");
    assert_eq!(stored.size, 8);
    assert_eq!(emulator.stats().await.requests("multipart_upload"), 2);
}

#[tokio::test]
async fn a_complete_that_keeps_answering_202_gives_up_after_the_complete_timeout() {
    let emulator = TestEmulator::start().await;
    let mut config = emulator.filestack_config();
    config.complete_timeout = Duration::from_millis(300);
    let client = FilestackClient::new(config).expect("valid config");
    emulator
        .fault(json!({"route": "multipart_complete", "accepted": 10_000}))
        .await;
    let result = client.upload(chunked(b"never done", 5), spec(10)).await;
    let error = result.expect_err("gives up");
    // The parts were accepted: the file may still be assembled and stored.
    let FilestackError::OutcomeUnknown(last) = &error else {
        panic!("the outcome is unknown: {error:?}");
    };
    assert!(
        matches!(
            **last,
            FilestackError::Unavailable {
                status: Some(202),
                ..
            }
        ),
        "{error:?}"
    );
    let completes = emulator.stats().await.requests("multipart_complete");
    assert!((2..100).contains(&completes), "{completes} attempts");
    assert_eq!(emulator.stats().await.stored_files(), 0);
}

#[tokio::test]
async fn a_closed_port_is_unavailable_and_the_error_names_no_url() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let mut config =
        FilestackConfig::emulator(&format!("http://{addr}"), "key", Secret::new("secret"));
    config.retry.base_delay = Duration::from_millis(1);
    config.retry.max_delay = Duration::from_millis(5);
    let client = FilestackClient::new(config).expect("valid config");
    let error = client
        .delete("AbCdEfGhIjKlMnOpQrSt")
        .await
        .expect_err("nobody listens");
    assert!(error.is_retryable(), "{error:?}");
    assert!(
        error.is_safe_to_resend(),
        "a refused connection created nothing"
    );
    let mut shown = format!("{error} {error:?}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        shown.push_str(&cause.to_string());
        source = cause.source();
    }
    assert!(!shown.contains("signature"), "{shown}");
    assert!(!shown.contains("policy="), "{shown}");
}
