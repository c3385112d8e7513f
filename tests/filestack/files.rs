//! The File API of the Filestack client (delete, metadata, store, signed
//! URLs) against the real emulator, over HTTP on 127.0.0.1:0.

use std::time::Duration;

use bytes::Bytes;
use filegate::filestack::urls::{Fit, Format, Resize, Transform};
use filegate::filestack::{
    FilestackClient, FilestackError, MetadataField, Sha256Check, StoredFile, UploadSpec,
};
use serde_json::json;
use support::content::{chunked, data, dimensions, md5_hex, png, sha256, sha256_hex};
use support::emulator::TestEmulator;

/// Upload of `bytes` as `name` of type `mime`, in 4 KiB pieces.
async fn upload(client: &FilestackClient, bytes: &[u8], name: &str, mime: &str) -> StoredFile {
    let spec = UploadSpec {
        size: Some(bytes.len() as u64),
        ..UploadSpec::new(name, mime)
    };
    client
        .upload(chunked(bytes, 4096), spec)
        .await
        .expect("upload succeeds")
}

#[tokio::test]
async fn metadata_fields_come_back_typed() {
    let emulator = TestEmulator::start().await;
    let client = emulator.filestack();
    let bytes = png(40, 30);
    let stored = upload(&client, &bytes, "pixel.png", "image/png").await;
    let fields = [
        MetadataField::Size,
        MetadataField::Mimetype,
        MetadataField::Filename,
        MetadataField::Width,
        MetadataField::Height,
        MetadataField::Uploaded,
        MetadataField::Md5,
        MetadataField::Sha256,
    ];
    let metadata = client
        .metadata(&stored.handle, &fields)
        .await
        .expect("metadata");
    assert_eq!(metadata.size, Some(bytes.len() as u64));
    assert_eq!(metadata.mimetype.as_deref(), Some("image/png"));
    assert_eq!(metadata.filename.as_deref(), Some("pixel.png"));
    assert_eq!((metadata.width, metadata.height), (Some(40), Some(30)));
    assert!(
        metadata.uploaded.is_some_and(|at| at > 1.0e12),
        "milliseconds"
    );
    assert_eq!(metadata.md5, Some(md5_hex(&bytes)));
    assert_eq!(metadata.sha256, Some(sha256_hex(&bytes)));
    assert_eq!(metadata.path, None, "not requested");
}

#[tokio::test]
async fn a_deleted_file_has_no_metadata_and_cannot_be_deleted_again() {
    let emulator = TestEmulator::start().await;
    let client = emulator.filestack();
    let stored = upload(&client, b"short-lived", "a.txt", "text/plain").await;
    client.delete(&stored.handle).await.expect("delete");
    let metadata = client
        .metadata(&stored.handle, &[MetadataField::Size])
        .await;
    assert!(
        matches!(metadata, Err(FilestackError::NotFound)),
        "{metadata:?}"
    );
    let again = client.delete(&stored.handle).await;
    assert!(matches!(again, Err(FilestackError::NotFound)), "{again:?}");
    assert_eq!(emulator.stats().await.stored_files(), 0);
}

#[tokio::test]
async fn metadata_failing_with_503_until_the_budget_is_spent_is_unavailable() {
    let emulator = TestEmulator::start().await;
    let client = emulator.filestack();
    let stored = upload(&client, b"abc", "a.txt", "text/plain").await;
    emulator
        .fault(json!({"route": "metadata", "status": 503, "count": 50}))
        .await;
    let result = client
        .metadata(&stored.handle, &[MetadataField::Size])
        .await;
    let error = result.expect_err("unavailable");
    assert!(matches!(
        error,
        FilestackError::Unavailable {
            status: Some(503),
            ..
        }
    ));
    let attempts = u64::from(client.config().retry.max_attempts);
    assert_eq!(emulator.stats().await.requests("metadata"), attempts);
}

#[tokio::test]
async fn a_small_file_can_be_stored_in_one_request() {
    let emulator = TestEmulator::start().await;
    let client = emulator.filestack();
    let spec = UploadSpec::new("note.bin", "application/octet-stream");
    let bytes = data(70_000);
    let stored = client
        .store(Bytes::from(bytes.clone()), &spec)
        .await
        .expect("store");
    assert_eq!(stored.size, 70_000);
    assert_eq!(stored.sha256, None);
    assert_eq!(emulator.download(&client, &stored.handle).await, bytes);
}

#[tokio::test]
async fn a_stored_file_is_checked_against_its_sha256_before_it_is_sent() {
    let emulator = TestEmulator::start().await;
    let client = emulator.filestack();
    let bytes = Bytes::from(data(70_000));
    let expected = sha256(&bytes);
    let spec = UploadSpec {
        sha256: Sha256Check::Expect(expected),
        ..UploadSpec::new("note.bin", "application/octet-stream")
    };
    let stored = client.store(bytes.clone(), &spec).await.expect("store");
    assert_eq!(stored.sha256, Some(expected));
    let mut other = expected;
    other[31] ^= 1;
    let spec = UploadSpec {
        sha256: Sha256Check::Expect(other),
        ..spec
    };
    let error = client.store(bytes, &spec).await.unwrap_err();
    assert!(
        matches!(error, FilestackError::ChecksumMismatch),
        "{error:?}"
    );
    assert_eq!(emulator.stats().await.stored_files(), 1);
}

#[tokio::test]
async fn a_download_url_opens_only_its_own_file() {
    let emulator = TestEmulator::start().await;
    let client = emulator.filestack();
    let first = upload(&client, b"first", "1.txt", "text/plain").await;
    let second = upload(&client, b"second", "2.txt", "text/plain").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let signed = client
        .download_url(&first.handle, Duration::from_secs(60))
        .expect("valid handle");
    assert!(
        (now + 60..=now + 62).contains(&signed.expires_at),
        "expires {} s from now",
        signed.expires_at - now
    );
    assert_eq!(emulator.get_ok(&signed.url).await, b"first");
    let other = signed.url.replace(&first.handle, &second.handle);
    let response = reqwest::get(&other).await.expect("GET answers");
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn a_signed_thumbnail_url_serves_the_transformed_image() {
    let emulator = TestEmulator::start().await;
    let client = emulator.filestack();
    let stored = upload(&client, &png(64, 48), "photo.png", "image/png").await;
    let transform = Transform::new(&stored.handle)
        .resize(Resize {
            width: Some(16),
            height: Some(16),
            fit: Some(Fit::Crop),
            align: None,
        })
        .output(Format::Png, None);
    let url = client
        .thumbnail_url(&transform, Duration::from_secs(60))
        .expect("valid handle");
    let body = emulator.get_ok(&url.url).await;
    assert_eq!(dimensions(&body), (16, 16));
}

#[tokio::test]
async fn handles_that_are_not_handles_never_reach_the_network() {
    let emulator = TestEmulator::start().await;
    let client = emulator.filestack();
    let deleted = client.delete("../../etc").await;
    assert!(matches!(deleted, Err(FilestackError::InvalidHandle)));
    assert!(client.download_url("a/b", Duration::from_secs(1)).is_err());
    assert_eq!(emulator.stats().await.requests("file_delete"), 0);
}
