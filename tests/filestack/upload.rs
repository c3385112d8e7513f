//! The multipart upload of the Filestack client against the real emulator,
//! over HTTP on 127.0.0.1:0.

use std::time::{Duration, Instant};

use bytes::Bytes;
use filegate::filestack::{
    FilestackClient, FilestackError, MetadataField, Sha256Check, UploadSpec,
};
use futures_util::StreamExt;
use serde_json::json;
use support::MIB;
use support::content::{chunked, data, sha256};
use support::emulator::{TestEmulator, upload_spec};

#[tokio::test]
async fn a_multi_part_upload_round_trips_byte_for_byte_through_a_signed_url() {
    let emulator = TestEmulator::start().await;
    let client = emulator.filestack();
    let bytes = data(12 * MIB + 123);
    let stored = client
        .upload(
            chunked(&bytes, 100_003),
            upload_spec("big.bin", Some(bytes.len() as u64)),
        )
        .await
        .expect("upload succeeds");
    assert_eq!(stored.size, bytes.len() as u64);
    assert_eq!(stored.filename, "big.bin");
    assert_eq!(emulator.download(&client, &stored.handle).await, bytes);
    let stats = emulator.stats().await;
    assert_eq!(stats.requests("multipart_upload"), 3);
    assert_eq!(stats.requests("part_put"), 3);
    assert_eq!(stats.requests("multipart_complete"), 1);
    assert_eq!(stats.stored_files(), 1);
}

#[tokio::test]
async fn a_small_upload_of_unknown_size_is_stored_in_one_part() {
    let emulator = TestEmulator::start().await;
    let client = emulator.filestack();
    let stored = client
        .upload(chunked(b"hello world", 4), upload_spec("hello.txt", None))
        .await
        .expect("upload succeeds");
    assert_eq!(stored.size, 11);
    assert_eq!(
        emulator.download(&client, &stored.handle).await,
        b"hello world"
    );
    assert_eq!(emulator.stats().await.requests("part_put"), 1);
}

#[tokio::test]
async fn an_unknown_size_larger_than_one_part_is_refused_before_starting() {
    let emulator = TestEmulator::start().await;
    let bytes = data(5 * MIB + 1);
    let result = emulator
        .filestack()
        .upload(chunked(&bytes, 65_536), upload_spec("big.bin", None))
        .await;
    assert!(
        matches!(result, Err(FilestackError::SizeRequired)),
        "{result:?}"
    );
    assert_eq!(emulator.stats().await.requests("multipart_start"), 0);
}

#[tokio::test]
async fn a_stream_shorter_than_declared_fails_and_leaves_nothing_stored() {
    let emulator = TestEmulator::start().await;
    let bytes = data(6 * MIB);
    let declared = bytes.len() as u64 + 10;
    let result = emulator
        .filestack()
        .upload(
            chunked(&bytes, 65_536),
            upload_spec("short.bin", Some(declared)),
        )
        .await;
    assert!(
        matches!(result, Err(FilestackError::SizeMismatch { declared: d, received }) if d == declared && received == declared - 10),
        "{result:?}"
    );
    let stats = emulator.stats().await;
    assert_eq!(stats.requests("multipart_complete"), 0);
    assert_eq!(stats.stored_files(), 0);
}

#[tokio::test]
async fn a_stream_longer_than_declared_fails_and_leaves_nothing_stored() {
    let emulator = TestEmulator::start().await;
    let bytes = data(6 * MIB);
    let declared = bytes.len() as u64 - 1;
    let result = emulator
        .filestack()
        .upload(
            chunked(&bytes, 65_536),
            upload_spec("long.bin", Some(declared)),
        )
        .await;
    assert!(
        matches!(result, Err(FilestackError::SizeMismatch { declared: d, .. }) if d == declared),
        "{result:?}"
    );
    let stats = emulator.stats().await;
    assert_eq!(stats.requests("multipart_complete"), 0);
    assert_eq!(stats.stored_files(), 0);
}

#[tokio::test]
async fn the_sha256_of_a_multi_part_upload_is_computed_when_asked_for() {
    let emulator = TestEmulator::start().await;
    let client = emulator.filestack();
    let bytes = data(12 * MIB + 123);
    let expected = sha256(&bytes);
    let size = Some(bytes.len() as u64);
    for check in [Sha256Check::Compute, Sha256Check::Expect(expected)] {
        let spec = UploadSpec {
            sha256: check,
            ..upload_spec("hashed.bin", size)
        };
        let stored = client
            .upload(chunked(&bytes, 100_003), spec)
            .await
            .expect("upload succeeds");
        assert_eq!(stored.sha256, Some(expected), "{check:?}");
        assert_eq!(emulator.download(&client, &stored.handle).await, bytes);
    }
    let stored = client
        .upload(chunked(&bytes, 100_003), upload_spec("plain.bin", size))
        .await
        .expect("upload succeeds");
    assert_eq!(stored.sha256, None);
}

#[tokio::test]
async fn a_stream_with_another_sha256_fails_before_complete_and_leaves_nothing_stored() {
    let emulator = TestEmulator::start().await;
    let bytes = data(12 * MIB + 123);
    let mut expected = sha256(&bytes);
    expected[0] ^= 0x80;
    let spec = UploadSpec {
        sha256: Sha256Check::Expect(expected),
        ..upload_spec("tampered.bin", Some(bytes.len() as u64))
    };
    let result = emulator
        .filestack()
        .upload(chunked(&bytes, 100_003), spec)
        .await;
    assert!(
        matches!(result, Err(FilestackError::ChecksumMismatch)),
        "{result:?}"
    );
    let stats = emulator.stats().await;
    assert_eq!(stats.requests("multipart_start"), 1);
    assert_eq!(stats.requests("multipart_complete"), 0);
    assert_eq!(stats.stored_files(), 0);
}

#[tokio::test]
async fn a_part_put_failing_once_with_503_succeeds_after_a_retry() {
    let emulator = TestEmulator::start().await;
    emulator
        .fault(json!({"route": "part_put", "status": 503, "count": 1}))
        .await;
    let client = emulator.filestack();
    let bytes = data(7 * MIB);
    let stored = client
        .upload(
            chunked(&bytes, 65_536),
            upload_spec("retry.bin", Some(bytes.len() as u64)),
        )
        .await
        .expect("upload succeeds after a retry");
    assert_eq!(emulator.download(&client, &stored.handle).await, bytes);
    let stats = emulator.stats().await;
    assert_eq!(stats.requests("part_put"), 3, "two parts and one retry");
    assert_eq!(stats.stored_files(), 1);
}

#[tokio::test]
async fn a_start_answering_503_once_is_sent_again() {
    let emulator = TestEmulator::start().await;
    emulator
        .fault(json!({"route": "multipart_start", "status": 503, "count": 1}))
        .await;
    let stored = emulator
        .filestack()
        .upload(chunked(b"abc", 3), upload_spec("a.txt", Some(3)))
        .await
        .expect("upload succeeds");
    assert_eq!(stored.size, 3);
    assert_eq!(emulator.stats().await.requests("multipart_start"), 2);
}

#[tokio::test]
async fn a_start_refused_as_a_bad_request_is_not_sent_again() {
    let emulator = TestEmulator::start().await;
    emulator
        .fault(json!({"route": "multipart_start", "status": 400, "count": 5}))
        .await;
    let result = emulator
        .filestack()
        .upload(chunked(b"abc", 3), upload_spec("a.txt", Some(3)))
        .await;
    assert!(
        matches!(result, Err(FilestackError::BadRequest { status: 400, .. })),
        "{result:?}"
    );
    assert_eq!(emulator.stats().await.requests("multipart_start"), 1);
}

#[tokio::test]
async fn complete_answering_202_three_times_succeeds() {
    let emulator = TestEmulator::start().await;
    emulator
        .fault(json!({"route": "multipart_complete", "accepted": 3}))
        .await;
    let client = emulator.filestack();
    let stored = client
        .upload(
            chunked(b"assembled later", 5),
            upload_spec("late.txt", Some(15)),
        )
        .await
        .expect("upload succeeds after 202s");
    assert_eq!(
        emulator.download(&client, &stored.handle).await,
        b"assembled later"
    );
    assert_eq!(emulator.stats().await.requests("multipart_complete"), 4);
}

#[tokio::test]
async fn a_stream_error_aborts_the_upload_with_no_file() {
    let emulator = TestEmulator::start().await;
    let good = chunked(&data(6 * MIB), 65_536);
    let failing = good.chain(futures_util::stream::iter([Err(std::io::Error::other(
        "client went away",
    ))]));
    let result = emulator
        .filestack()
        .upload(failing, upload_spec("broken.bin", Some(20 * MIB as u64)))
        .await;
    assert!(
        matches!(result, Err(FilestackError::Stream(_))),
        "{result:?}"
    );
    let stats = emulator.stats().await;
    assert_eq!(stats.requests("multipart_complete"), 0);
    assert_eq!(stats.stored_files(), 0);
}

#[tokio::test]
async fn a_persistent_503_gives_unavailable_within_the_retry_budget() {
    let emulator = TestEmulator::start().await;
    emulator
        .fault(json!({"route": "multipart_upload", "status": 503, "count": 50}))
        .await;
    let client = emulator.filestack();
    let started = Instant::now();
    let result = client
        .upload(chunked(b"never", 5), upload_spec("never.txt", Some(5)))
        .await;
    let error = result.expect_err("the upload fails");
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(error.status(), Some(503));
    let attempts = u64::from(client.config().retry.max_attempts);
    assert_eq!(
        emulator.stats().await.requests("multipart_upload"),
        attempts
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the budget"
    );
    assert_eq!(emulator.stats().await.stored_files(), 0);
}

#[tokio::test]
async fn an_upload_signed_with_the_wrong_secret_is_refused_without_leaking_it() {
    let emulator = TestEmulator::start().await;
    let mut config = emulator.filestack_config();
    config.app_secret = filegate::secret::Secret::new("not-the-secret");
    let client = FilestackClient::new(config).expect("valid config");
    let result = client
        .upload(chunked(b"abc", 3), upload_spec("a.txt", Some(3)))
        .await;
    let error = result.expect_err("refused");
    assert!(
        matches!(error, FilestackError::PolicyRefused { status: 403, .. }),
        "{error:?}"
    );
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("not-the-secret"), "{shown}");
    assert!(!shown.contains("signature="), "{shown}");
}

#[tokio::test]
async fn an_upload_larger_than_one_part_uses_every_part_in_order() {
    let emulator = TestEmulator::start().await;
    let mut config = emulator.filestack_config();
    config.parts_in_flight = 1;
    let client = FilestackClient::new(config).expect("valid config");
    let bytes = data(16 * MIB + 1);
    let stream = futures_util::stream::iter(
        bytes
            .chunks(3 * MIB + 7)
            .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let stored = client
        .upload(stream, upload_spec("ordered.bin", Some(bytes.len() as u64)))
        .await
        .expect("upload succeeds");
    assert_eq!(emulator.download(&client, &stored.handle).await, bytes);
    assert_eq!(emulator.stats().await.requests("part_put"), 4);
}

#[tokio::test]
async fn the_stream_is_read_only_as_fast_as_parts_are_uploaded() {
    let emulator = TestEmulator::start().await;
    let mut config = emulator.filestack_config();
    config.parts_in_flight = 1;
    let client = FilestackClient::new(config).expect("valid config");
    emulator
        .fault(json!({"route": "multipart_upload", "latency_ms": 100, "count": 4}))
        .await;
    let (part_size, chunk) = (5 * MIB, MIB);
    let bytes = data(4 * part_size);
    let seen = std::sync::Mutex::new(Vec::new());
    let stream = futures_util::stream::unfold(0, |offset| {
        let (emulator, bytes, seen) = (&emulator, &bytes, &seen);
        async move {
            if offset >= bytes.len() {
                return None;
            }
            let puts = emulator.stats().await.requests("part_put");
            seen.lock()
                .expect("lock")
                .push((offset / part_size + 1, puts));
            let piece = Bytes::copy_from_slice(&bytes[offset..offset + chunk]);
            Some((Ok::<_, std::io::Error>(piece), offset + chunk))
        }
    });
    client
        .upload(stream, upload_spec("paced.bin", Some(bytes.len() as u64)))
        .await
        .expect("upload succeeds");
    // Reading part p with one slot means parts 1..p-1 are done: p-1 PUTs arrived.
    let seen = seen.into_inner().expect("lock");
    assert_eq!(seen.len(), 20);
    for (part, puts) in seen {
        assert!(
            puts as usize + 1 >= part,
            "part {part} read after {puts} PUTs"
        );
    }
}

#[tokio::test]
async fn an_upload_lands_under_the_path_and_container_its_policy_is_pinned_to() {
    let emulator = TestEmulator::start().await;
    let client = emulator.filestack();
    let spec = UploadSpec {
        container: Some("bucket.one".into()),
        ..upload_spec("placed.txt", Some(6))
    };
    let stored = client
        .upload(chunked(b"placed", 2), spec)
        .await
        .expect("upload succeeds");
    let fields = [MetadataField::Path, MetadataField::Container];
    let metadata = client
        .metadata(&stored.handle, &fields)
        .await
        .expect("metadata");
    let path = metadata.path.expect("a path");
    assert!(path.starts_with("user-uploads/alice/"), "{path}");
    assert_eq!(metadata.container.as_deref(), Some("bucket.one"));
}

#[tokio::test]
async fn a_multipart_session_started_by_one_client_is_finished_by_another() {
    let emulator = TestEmulator::start().await;
    let bytes = data(5 * MIB + 1234);
    let spec = upload_spec("resumed.bin", Some(bytes.len() as u64));
    let first = emulator.filestack();
    let session = first
        .start_multipart(&spec, bytes.len() as u64)
        .await
        .expect("started");
    let part_one = first
        .upload_part(
            &session,
            1,
            bytes::Bytes::copy_from_slice(&bytes[..5 * MIB]),
        )
        .await
        .expect("part 1");
    // The session as it is kept in the database, read by another process.
    let kept = serde_json::to_string(&session).expect("serializes");
    let session: filegate::filestack::MultipartSession =
        serde_json::from_str(&kept).expect("deserializes");
    let second = emulator.filestack();
    let part_two = second
        .upload_part(
            &session,
            2,
            bytes::Bytes::copy_from_slice(&bytes[5 * MIB..]),
        )
        .await
        .expect("part 2");
    let stored = second
        .complete(&session.pending(vec![part_one, part_two]))
        .await
        .expect("completed");
    assert_eq!(stored.size, bytes.len() as u64);
    assert!(emulator.download(&second, &stored.handle).await == bytes);
}
