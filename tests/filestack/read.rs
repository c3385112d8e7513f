//! Ranged reads of the Filestack client against the real emulator: exact
//! bytes, refusals, retries before the first byte and resumption of a body
//! that breaks.

use std::time::Duration;

use filegate::filestack::{ByteRange, FileRead, FilestackClient, FilestackError};
use futures_util::TryStreamExt;
use serde_json::json;
use support::MIB;
use support::content::{chunked, data};
use support::emulator::{TestEmulator, upload_spec};

/// Uploads `len` test bytes; the bytes and the handle.
async fn stored(
    emulator: &TestEmulator,
    client: &FilestackClient,
    len: usize,
) -> (Vec<u8>, String) {
    let bytes = data(len);
    let spec = upload_spec("read.bin", Some(len as u64));
    let stored = client
        .upload(chunked(&bytes, 65_536), spec)
        .await
        .expect("upload succeeds");
    assert_eq!(emulator.stats().await.requests("cdn"), 0);
    (bytes, stored.handle)
}

/// Every byte of `read`, or the error it ended with.
async fn collect(read: FileRead) -> Result<Vec<u8>, FilestackError> {
    let chunks: Vec<_> = read.bytes.try_collect().await?;
    Ok(chunks.concat())
}

fn range(start: usize, end: usize) -> ByteRange {
    ByteRange {
        start: start as u64,
        end: end as u64,
    }
}

#[tokio::test]
async fn a_range_reads_exactly_its_bytes_and_reports_the_file_size() {
    let emulator = TestEmulator::start().await;
    let client = emulator.filestack();
    let (bytes, handle) = stored(&emulator, &client, 3 * MIB + 17).await;
    for (start, end) in [
        (0, bytes.len()),
        (100, 200_100),
        (bytes.len() - 1, bytes.len()),
    ] {
        let read = client
            .read_range(&handle, range(start, end))
            .await
            .expect("the read starts");
        assert_eq!(read.size, bytes.len() as u64);
        let got = collect(read).await.expect("every byte");
        assert!(got == bytes[start..end], "bytes {start}..{end}");
    }
    assert_eq!(
        emulator.stats().await.requests("cdn"),
        3,
        "one request each"
    );
}

#[tokio::test]
async fn a_range_past_the_end_and_an_unknown_handle_are_told_apart() {
    let emulator = TestEmulator::start().await;
    let client = emulator.filestack();
    let (_, handle) = stored(&emulator, &client, 1000).await;
    let past = client.read_range(&handle, range(1000, 2000)).await;
    assert!(
        matches!(
            past,
            Err(FilestackError::RangeNotSatisfiable { size: Some(1000) })
        ),
        "{past:?}"
    );
    let unknown = client
        .read_range("AAAAAAAAAAAAAAAAAAAA", range(0, 10))
        .await;
    assert!(
        matches!(unknown, Err(FilestackError::NotFound)),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn a_body_cut_mid_way_is_resumed_from_the_next_byte() {
    let emulator = TestEmulator::start().await;
    let client = emulator.filestack();
    let (bytes, handle) = stored(&emulator, &client, 2 * MIB).await;
    emulator
        .fault(json!({"route": "cdn", "cut_response_after_bytes": 300_000, "count": 2}))
        .await;
    let read = client
        .read_range(&handle, range(1000, bytes.len()))
        .await
        .expect("the read starts");
    let got = collect(read).await.expect("every byte despite two cuts");
    assert!(got == bytes[1000..], "the bytes are right");
    assert_eq!(emulator.stats().await.requests("cdn"), 3, "two resumptions");
}

#[tokio::test]
async fn failures_before_the_first_byte_are_retried_then_unavailable() {
    let emulator = TestEmulator::start().await;
    let mut config = emulator.filestack_config();
    config.request_timeout = Duration::from_millis(300);
    let client = FilestackClient::new(config).expect("valid config");
    let (bytes, handle) = stored(&emulator, &client, 1000).await;
    emulator
        .fault(json!({"route": "cdn", "status": 503, "count": 1}))
        .await;
    emulator
        .fault(json!({"route": "cdn", "latency_ms": 3000, "count": 1}))
        .await;
    let read = client.read_range(&handle, range(0, 1000)).await;
    let got = collect(read.expect("read after a 503 and a timeout")).await;
    assert!(got.expect("every byte") == bytes);
    assert_eq!(emulator.stats().await.requests("cdn"), 3);
    emulator
        .fault(json!({"route": "cdn", "status": 503, "count": 100}))
        .await;
    let down = client.read_range(&handle, range(0, 1000)).await;
    assert!(
        matches!(
            down,
            Err(FilestackError::Unavailable {
                status: Some(503),
                ..
            })
        ),
        "{down:?}"
    );
    let attempts = u64::from(client.config().retry.max_attempts);
    assert_eq!(emulator.stats().await.requests("cdn"), 3 + attempts);
}

#[tokio::test]
async fn a_body_that_keeps_breaking_fails_unavailable_without_secrets_in_the_error() {
    let emulator = TestEmulator::start().await;
    let client = emulator.filestack();
    let (_, handle) = stored(&emulator, &client, MIB).await;
    emulator
        .fault(json!({"route": "cdn", "cut_response_after_bytes": 300_000, "count": 1}))
        .await;
    emulator
        .fault(json!({"route": "cdn", "cut_response_after_bytes": 0, "count": 100}))
        .await;
    let read = client
        .read_range(&handle, range(0, MIB))
        .await
        .expect("the read starts");
    let error = collect(read)
        .await
        .expect_err("no byte after the first cut");
    assert!(error.is_retryable(), "an outage: {error:?}");
    let attempts = u64::from(client.config().retry.max_attempts);
    assert_eq!(emulator.stats().await.requests("cdn"), attempts);
    // The signed URL, and so its policy and signature, is nowhere in it.
    let shown = format!("{error} {error:?}");
    for secret in ["security=", emulator.base_url.as_str()] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

#[tokio::test]
async fn a_file_overwritten_between_a_cut_and_its_resumption_is_a_mismatch() {
    let emulator = TestEmulator::start().await;
    let client = emulator.filestack();
    let (_, handle) = stored(&emulator, &client, MIB).await;
    emulator
        .fault(json!({"route": "cdn", "cut_response_after_bytes": 300_000, "count": 1}))
        .await;
    let read = client
        .read_range(&handle, range(0, MIB))
        .await
        .expect("the read starts");
    emulator.overwrite(&handle, data(MIB / 2)).await;
    let result = collect(read).await.map(|bytes| bytes.len());
    let error = result.expect_err("the file changed");
    assert!(
        matches!(
            error,
            FilestackError::RangeMismatch(_) | FilestackError::RangeNotSatisfiable { .. }
        ),
        "{error:?}"
    );
}
