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

/// A client of a port nobody listens on, retrying fast.
async fn closed_port_client() -> FilestackClient {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let mut config =
        FilestackConfig::emulator(&format!("http://{addr}"), "key", Secret::new("secret"));
    config.retry.base_delay = Duration::from_millis(1);
    config.retry.max_delay = Duration::from_millis(5);
    FilestackClient::new(config).expect("valid config")
}

#[tokio::test]
async fn a_closed_port_is_unavailable_and_the_error_names_no_url() {
    let client = closed_port_client().await;
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

/// A client that retries at once (the tests wait for no backoff).
fn quick(emulator: &TestEmulator) -> FilestackClient {
    let mut config = emulator.filestack_config();
    config.retry.base_delay = Duration::from_millis(1);
    config.retry.max_delay = Duration::from_millis(5);
    FilestackClient::new(config).expect("valid config")
}

#[tokio::test]
async fn a_lost_complete_answer_is_an_unknown_outcome_whichever_way_filestack_answers_again() {
    let emulator = TestEmulator::start().await;
    let client = quick(&emulator);
    // Filestack forgets a completed upload (404 to the repeated complete):
    // the client cannot tell whether the file is stored. It is.
    emulator
        .fault(json!({"route": "multipart_complete", "cut_response_after_bytes": 0}))
        .await;
    let error = client
        .upload(chunked(b"stored, answer lost", 5), spec(19))
        .await
        .expect_err("the answer was lost");
    let FilestackError::OutcomeUnknown(last) = &error else {
        panic!("an unknown outcome, not {error:?}");
    };
    assert!(matches!(**last, FilestackError::NotFound), "{error:?}");
    assert!(error.is_retryable());
    assert_eq!(emulator.files().await.len(), 1, "the file is stored");

    // Filestack answers a repeated complete with the file: the client
    // gets the stored file, and no second one is stored.
    emulator.set_repeated_complete("same_file").await;
    for cut in [0, 1, 40] {
        emulator
            .fault(json!({"route": "multipart_complete", "cut_response_after_bytes": cut}))
            .await;
        let bytes = data(100 + cut as usize);
        let stored = client
            .upload(chunked(&bytes, 7), spec(bytes.len()))
            .await
            .expect("the repeated complete names the file");
        assert_eq!(emulator.download(&client, &stored.handle).await, bytes);
    }
    assert_eq!(emulator.files().await.len(), 4);
    // Two attempts for each upload: the lost answer, then the repeat.
    assert_eq!(emulator.stats().await.requests("multipart_complete"), 8);
}

#[tokio::test]
async fn a_complete_refused_or_never_sent_is_no_unknown_outcome() {
    let emulator = TestEmulator::start().await;
    let client = quick(&emulator);
    for (status, refusal) in [
        (400, "BadRequest"),
        (403, "PolicyRefused"),
        (404, "NotFound"),
    ] {
        emulator
            .fault(json!({"route": "multipart_complete", "status": status}))
            .await;
        let error = client
            .upload(chunked(b"refused", 7), spec(7))
            .await
            .expect_err("refused");
        assert!(
            format!("{error:?}").starts_with(refusal) && !error.is_retryable(),
            "{status}: {error:?}"
        );
    }
    // Every part was sent, then Filestack went away: no attempt reached it.
    let parts = client
        .upload_parts(chunked(b"never completed", 5), spec(15))
        .await
        .expect("parts");
    emulator.stop().await;
    let error = client
        .complete(&parts.pending)
        .await
        .expect_err("no Filestack");
    assert!(
        matches!(error, FilestackError::Unavailable { status: None, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_upload_whose_parts_are_sent_can_be_completed_later_by_another_client() {
    let emulator = TestEmulator::start().await;
    let bytes = data(6 * MIB + 5);
    let parts = emulator
        .filestack()
        .upload_parts(chunked(&bytes, 65_536), spec(bytes.len()))
        .await
        .expect("parts");
    let kept = parts.pending.to_json();
    assert!(
        !kept.contains("policy") && !kept.contains("signature"),
        "{kept}"
    );
    assert_eq!(
        emulator.stats().await.stored_files(),
        0,
        "nothing stored yet"
    );
    let pending = filegate::filestack::PendingComplete::from_json(&kept).expect("JSON");
    let later = emulator.filestack();
    let stored = later.complete(&pending).await.expect("completed");
    assert_eq!(stored.size, bytes.len() as u64);
    assert_eq!(emulator.download(&later, &stored.handle).await, bytes);
}

/// A store is not idempotent: sent again only when it surely did not reach
/// Filestack; once it may have stored the file, the outcome is unknown.
#[tokio::test]
async fn a_store_is_sent_again_only_when_it_cannot_have_stored_the_file() {
    let emulator = TestEmulator::start().await;
    let client = emulator.filestack();
    let bytes = bytes::Bytes::from(data(2000));
    let spec = spec(bytes.len());

    // 429: refused for its rate, sent again.
    emulator
        .fault(json!({"route": "store", "status": 429, "count": 2}))
        .await;
    let stored = client.store(bytes.clone(), &spec).await.expect("stored");
    assert_eq!(emulator.download(&client, &stored.handle).await, bytes);
    assert_eq!(emulator.stats().await.requests("store"), 3);

    // A lost answer, a 5xx: the file may be stored; never sent twice.
    for fault in [
        json!({"route": "store", "cut_response_after_bytes": 20}),
        json!({"route": "store", "status": 503}),
    ] {
        let before = emulator.stats().await.requests("store");
        emulator.fault(fault.clone()).await;
        let error = client.store(bytes.clone(), &spec).await.unwrap_err();
        assert!(
            matches!(error, FilestackError::OutcomeUnknown(_)),
            "{fault}: {error:?}"
        );
        assert!(error.is_retryable());
        assert_eq!(
            emulator.stats().await.requests("store"),
            before + 1,
            "{fault}"
        );
    }
    // The cut answer's file was stored; the 503 stored nothing.
    assert_eq!(emulator.stats().await.stored_files(), 2);

    // 400: refused, nothing stored, no outcome to wonder about.
    emulator
        .fault(json!({"route": "store", "status": 400}))
        .await;
    let error = client.store(bytes.clone(), &spec).await.unwrap_err();
    assert!(!error.may_have_reached_upstream(), "{error:?}");
    assert!(!error.is_retryable(), "{error:?}");
    assert_eq!(emulator.stats().await.stored_files(), 2);
}

#[tokio::test]
async fn a_store_to_a_closed_port_is_retried_then_unavailable_without_an_unknown_outcome() {
    let client = closed_port_client().await;
    let error = client
        .store(bytes::Bytes::from_static(b"nowhere"), &spec(7))
        .await
        .unwrap_err();
    assert!(
        matches!(error, FilestackError::Unavailable { status: None, .. }),
        "{error:?}"
    );
    assert!(!error.may_have_reached_upstream());
}
