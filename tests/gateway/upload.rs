//! Upload through the real gateway (local mode, embedded emulator).

use base64::Engine;
use filegate::pb::v1 as pb;
use filegate::pb::v1::UploadRequest;
use support::MIB;
use support::content::{data, sha256_hex};
use support::frames::message_frame;
use support::gateway::TestGateway;
use support::rpc::{Rpc, data_message, first_message, messages, reason, spec, spec_message};
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test]
async fn a_small_file_in_one_message_becomes_a_document_whose_url_serves_its_bytes() {
    let gw = TestGateway::start().await;
    let bytes = b"hello filegate".to_vec();
    let msg = first_message(spec("hello.txt", None), &bytes);
    let doc = gw.upload_stream("alice", vec![msg]).await.expect("upload");
    assert_eq!(doc.filename, "hello.txt");
    assert_eq!(doc.content_type, "text/plain");
    assert_eq!(doc.size_bytes, bytes.len() as i64);
    assert_eq!(doc.sha256, sha256_hex(&bytes));
    assert_eq!(doc.owner, "alice");
    assert_eq!(doc.handle.len(), 20);
    assert!(doc.id.starts_with("doc_"));
    assert!(doc.create_time.is_some());
    let (hits, misses) = gw.cache_counts().await;
    let url = gw
        .signed_url("alice", &doc.id, None)
        .await
        .expect("signed url");
    assert_eq!(
        gw.cache_counts().await,
        (hits + 1, misses),
        "the upload left its row in the cache"
    );
    assert_eq!(gw.emulator.get(&url.url).await, (200, bytes));
    assert_eq!(gw.documents().await, 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_30_mib_upload_comes_back_identical_through_the_signed_url() {
    let gw = TestGateway::start().await;
    let bytes = data(30 * MIB + 7);
    let declared = Some(bytes.len() as i64);
    let doc = gw
        .upload_stream("alice", messages(spec("big.bin", declared), &bytes, MIB))
        .await
        .expect("upload");
    assert_eq!(doc.size_bytes, bytes.len() as i64);
    assert_eq!(doc.sha256, sha256_hex(&bytes));
    let body = gw.download("alice", &doc.id).await;
    assert!(body == bytes, "downloaded bytes differ");
    gw.stop().await;
}

#[tokio::test]
async fn a_large_upload_without_a_declared_size_is_refused_and_leaves_nothing() {
    let gw = TestGateway::start().await;
    let status = gw
        .upload_stream(
            "alice",
            messages(spec("big.bin", None), &data(6 * MIB), MIB),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "SIZE_REQUIRED");
    assert_eq!((gw.documents().await, gw.stored_files().await), (0, 0));
    gw.stop().await;
}

#[tokio::test]
async fn upload_of_a_file_over_the_cap_is_rejected_and_leaves_no_row() {
    let gw = TestGateway::start_with(&["--max-upload-bytes", "1048576"]).await;
    let declared = gw
        .upload_stream(
            "alice",
            messages(spec("big.bin", Some(2 * MIB as i64)), &[], MIB),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (declared.code(), reason(&declared).as_str()),
        (Code::InvalidArgument, "FILE_TOO_LARGE")
    );
    let streamed = gw
        .upload_stream(
            "alice",
            messages(spec("big.bin", None), &data(MIB + 1), 512 * 1024),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (streamed.code(), reason(&streamed).as_str()),
        (Code::InvalidArgument, "FILE_TOO_LARGE")
    );
    assert_eq!((gw.documents().await, gw.stored_files().await), (0, 0));
    gw.stop().await;
}

#[tokio::test]
async fn bytes_that_differ_from_the_declared_size_are_out_of_range_and_store_nothing() {
    let gw = TestGateway::start().await;
    let fewer = gw
        .upload_stream(
            "alice",
            messages(spec("a.bin", Some(1000)), &data(999), 100),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (fewer.code(), reason(&fewer).as_str()),
        (Code::OutOfRange, "SIZE_MISMATCH")
    );
    let more = gw
        .upload_stream(
            "alice",
            messages(spec("a.bin", Some(6 * MIB as i64)), &data(6 * MIB + 1), MIB),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (more.code(), reason(&more).as_str()),
        (Code::OutOfRange, "SIZE_MISMATCH")
    );
    assert_eq!((gw.documents().await, gw.stored_files().await), (0, 0));
    gw.stop().await;
}

#[tokio::test]
async fn a_wrong_sha256_fails_the_upload_and_keeps_nothing_while_the_right_one_passes() {
    let gw = TestGateway::start().await;
    let bytes = data(7 * MIB);
    let mut wrong = spec("a.bin", Some(bytes.len() as i64));
    wrong.sha256 = sha256_hex(b"something else");
    let status = gw
        .upload_stream("alice", messages(wrong, &bytes, MIB))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::InvalidArgument, "CHECKSUM_MISMATCH")
    );
    assert_eq!((gw.documents().await, gw.stored_files().await), (0, 0));
    let mut right = spec("a.bin", Some(bytes.len() as i64));
    right.sha256 = sha256_hex(&bytes).to_uppercase();
    let doc = gw
        .upload_stream("alice", messages(right, &bytes, MIB))
        .await
        .expect("upload");
    assert_eq!(doc.sha256, sha256_hex(&bytes));
    gw.stop().await;
}

#[tokio::test]
async fn a_retry_with_the_same_request_id_returns_the_same_document_and_stores_one_file() {
    let gw = TestGateway::start().await;
    let mut first = spec("a.txt", None);
    first.request_id = "req-42".into();
    let msgs = messages(first, b"idempotent", 4);
    let a = gw
        .upload_stream("alice", msgs.clone())
        .await
        .expect("first");
    let b = gw
        .upload_stream("alice", msgs.clone())
        .await
        .expect("retry");
    assert_eq!(a, b);
    assert_eq!((gw.documents().await, gw.stored_files().await), (1, 1));
    // Another owner's key space is separate.
    let c = gw.upload_stream("bob", msgs).await.expect("bob");
    assert_ne!(a.id, c.id);
    gw.stop().await;
}

/// A request id names one upload: used again for another file (another
/// name, type, declared size or checksum, or a multipart upload of other
/// bytes), the call is ALREADY_EXISTS REQUEST_ID_REUSED naming what
/// differs, and nothing more is stored; the same file gets the document.
#[tokio::test]
async fn a_request_id_used_again_for_another_file_is_refused_and_stores_nothing() {
    let gw = TestGateway::start().await;
    let bytes = b"the first file".to_vec();
    let first = pb::UploadSpec {
        sha256: sha256_hex(&bytes),
        request_id: "req-reused".into(),
        ..spec("first.txt", Some(bytes.len() as i64))
    };
    let doc = gw
        .upload_stream("alice", vec![first_message(first.clone(), &bytes)])
        .await
        .expect("first");
    let other = b"another file, longer".to_vec();
    let big = data(6 * MIB);
    let cases = [
        (
            pb::UploadSpec {
                filename: "second.txt".into(),
                ..first.clone()
            },
            bytes.clone(),
            "spec.filename",
        ),
        (
            pb::UploadSpec {
                content_type: "application/json".into(),
                ..first.clone()
            },
            bytes.clone(),
            "spec.content_type",
        ),
        (
            pb::UploadSpec {
                size_bytes: Some(other.len() as i64),
                sha256: String::new(),
                ..first.clone()
            },
            other.clone(),
            "spec.size_bytes",
        ),
        (
            pb::UploadSpec {
                sha256: sha256_hex(b"the first filf"),
                ..first.clone()
            },
            b"the first filf".to_vec(),
            "spec.sha256",
        ),
        (
            pb::UploadSpec {
                size_bytes: Some(big.len() as i64),
                sha256: sha256_hex(&big),
                ..first.clone()
            },
            big.clone(),
            "spec.size_bytes, spec.sha256",
        ),
    ];
    for (spec, bytes, differs) in cases {
        let status = gw
            .upload_stream("alice", messages(spec, &bytes, MIB))
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (Code::AlreadyExists, "REQUEST_ID_REUSED"),
            "{status:?}"
        );
        assert!(status.message().contains(differs), "{status:?}");
    }
    // The same file again (its spec without the optional fields too) gets
    // the document.
    let same = gw
        .upload_stream("alice", vec![first_message(first.clone(), &bytes)])
        .await
        .expect("the same file");
    assert_eq!(same, doc);
    let bare = pb::UploadSpec {
        size_bytes: None,
        sha256: String::new(),
        ..first
    };
    let bare = gw
        .upload_stream("alice", vec![first_message(bare, &bytes)])
        .await
        .expect("the same file, undeclared");
    assert_eq!(bare, doc);
    assert_eq!((gw.documents().await, gw.stored_files().await), (1, 1));
    assert_eq!(gw.journal_entries().await, 0);
    gw.stop().await;
}

/// The caller's deadline passes while a multipart upload waits for bytes:
/// the server answers DEADLINE_EXCEEDED itself (a client that reads the
/// server's status sees a deadline, not a cancellation), stops the upload,
/// and a retry with the same request id stores the file once.
#[tokio::test]
async fn an_upload_past_the_callers_deadline_is_deadline_exceeded_and_leaves_nothing() {
    let gw = TestGateway::start().await;
    let bytes = data(12 * MIB);
    let mut late = spec("late.bin", Some(bytes.len() as i64));
    late.request_id = "req-late".into();
    // Plain HTTP/2, so that the answer is the server's: a gRPC client would
    // end the call on its own timer.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(16);
    tx.send(Ok(message_frame(&spec_message(late.clone()))))
        .await
        .expect("queued");
    for chunk in bytes[..6 * MIB].chunks(MIB) {
        tx.send(Ok(message_frame(&data_message(chunk))))
            .await
            .expect("queued");
    }
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let answer = gw
        .raw_grpc("filegate.v1.FileGatewayService/Upload", Some("alice"))
        .header("grpc-timeout", "1500m")
        .body(body)
        .send()
        .await
        .expect("an answer before the stream ends");
    let header = |name: &str| {
        answer.headers()[name]
            .to_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("grpc-status"), "4", "DEADLINE_EXCEEDED");
    let details = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(header("grpc-status-details-bin").trim_end_matches('='))
        .expect("base64 details");
    let status = tonic::Status::with_details(Code::DeadlineExceeded, "", details.into());
    assert_eq!(reason(&status), "DEADLINE_EXCEEDED");
    drop(tx);
    gw.wait_until_settled().await;
    assert_eq!(gw.documents().await, 0);

    let document = gw
        .upload_stream("alice", messages(late, &bytes, MIB))
        .await
        .expect("the retry");
    assert_eq!(document.sha256, sha256_hex(&bytes));
    gw.wait_until_settled().await;
    assert_eq!((gw.documents().await, gw.stored_files().await), (1, 1));
    gw.stop().await;
}

#[tokio::test]
async fn malformed_streams_are_invalid_arguments() {
    let gw = TestGateway::start().await;
    let empty = gw.upload_stream("alice", vec![]).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    let data_first = gw
        .upload_stream("alice", vec![data_message(b"x")])
        .await
        .unwrap_err();
    assert_eq!(
        (data_first.code(), reason(&data_first).as_str()),
        (Code::InvalidArgument, "SPEC_REQUIRED")
    );
    let mut two = messages(spec("a.txt", None), b"abc", 3);
    two.push(spec_message(spec("b.txt", None)));
    let two_specs = gw.upload_stream("alice", two).await.unwrap_err();
    assert_eq!(
        (two_specs.code(), reason(&two_specs).as_str()),
        (Code::InvalidArgument, "SPEC_REPEATED")
    );
    for name in [
        "",
        "../etc/passwd",
        "a/b",
        "a\\b",
        "nul\0byte",
        &"n".repeat(2048),
    ] {
        let status = gw
            .upload_stream("alice", messages(spec(name, None), b"abc", 3))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{name:?}");
        let violations = status
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations.clone())
            .unwrap_or_default();
        assert_eq!(
            violations.first().map(|v| v.field.as_str()),
            Some("spec.filename")
        );
    }
    let negative = gw
        .upload_stream("alice", messages(spec("a", Some(-1)), b"abc", 3))
        .await
        .unwrap_err();
    assert_eq!(negative.code(), Code::InvalidArgument);
    let offset = UploadRequest {
        write_offset: 99,
        ..data_message(b"x")
    };
    let mut bad_offset = messages(spec("a", None), b"abc", 3);
    bad_offset.push(offset);
    let status = gw.upload_stream("alice", bad_offset).await.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::OutOfRange, "OFFSET_MISMATCH")
    );
    assert_eq!((gw.documents().await, gw.stored_files().await), (0, 0));
    gw.stop().await;
}

/// Requests of the emulator's upload routes: (store, multipart start).
async fn upload_requests(gw: &TestGateway) -> (u64, u64) {
    let stats = gw.emulator.stats().await;
    (stats.requests("store"), stats.requests("multipart_start"))
}

#[tokio::test]
async fn a_file_that_fits_in_one_part_takes_one_filestack_request() {
    let gw = TestGateway::start().await;
    let part = 5 * MIB; // the test gateway's part size
    // Declared at exactly one part, or undeclared and sent in several
    // messages: one store each.
    let whole_part = data(part);
    let declared = Some(part as i64);
    let doc = gw
        .upload_stream(
            "alice",
            messages(spec("part.bin", declared), &whole_part, MIB),
        )
        .await
        .expect("one part");
    assert_eq!(doc.sha256, sha256_hex(&whole_part));
    let small = data(20 * 1024);
    let doc_small = gw
        .upload_stream("alice", messages(spec("small.bin", None), &small, 4096))
        .await
        .expect("undeclared, five messages");
    assert_eq!(upload_requests(&gw).await, (2, 0));
    assert!(gw.download("alice", &doc.id).await == whole_part);
    assert_eq!(gw.download("alice", &doc_small.id).await, small);
    // One byte more than a part: multipart.
    let larger = data(part + 1);
    gw.upload_stream(
        "alice",
        messages(spec("larger.bin", Some(larger.len() as i64)), &larger, MIB),
    )
    .await
    .expect("multipart");
    assert_eq!(upload_requests(&gw).await, (2, 1));
    assert_eq!(gw.journal_entries().await, 0);
    assert!(gw.orphans().await.is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn a_small_file_is_checked_before_its_one_request_and_refused_files_store_nothing() {
    let gw = TestGateway::start().await;
    let bytes = data(5000);
    let wrong_sha = pb_spec_with_sha("bad.bin", &sha256_hex(b"other bytes"));
    let cases: Vec<(Vec<UploadRequest>, Code, &str)> = vec![
        (
            vec![first_message(wrong_sha, &bytes)],
            Code::InvalidArgument,
            "CHECKSUM_MISMATCH",
        ),
        (
            vec![first_message(spec("short.bin", Some(5001)), &bytes)],
            Code::OutOfRange,
            "SIZE_MISMATCH",
        ),
        (
            vec![first_message(spec("long.bin", Some(4999)), &bytes)],
            Code::OutOfRange,
            "SIZE_MISMATCH",
        ),
        (
            messages(spec("undeclared.bin", None), &data(8 * MIB + 1), MIB),
            Code::InvalidArgument,
            "SIZE_REQUIRED",
        ),
    ];
    for (messages, code, expected) in cases {
        let status = gw.upload_stream("alice", messages).await.unwrap_err();
        assert_eq!((status.code(), reason(&status).as_str()), (code, expected));
    }
    assert_eq!(
        upload_requests(&gw).await,
        (0, 0),
        "nothing reached Filestack"
    );
    assert_eq!(gw.journal_entries().await, 0);
    assert_eq!(gw.documents().await, 0);
    gw.stop().await;
}

fn pb_spec_with_sha(filename: &str, sha256: &str) -> pb::UploadSpec {
    pb::UploadSpec {
        sha256: sha256.to_owned(),
        ..spec(filename, None)
    }
}

#[tokio::test]
async fn one_request_and_multipart_uploads_record_the_same_document_and_metadata() {
    let one_request = TestGateway::start().await;
    let multipart = TestGateway::start_with(&["--single-request-uploads", "false"]).await;
    let bytes = data(30_000);
    let mut seen = Vec::new();
    for gw in [&one_request, &multipart] {
        let message = first_message(spec("report.pdf", Some(bytes.len() as i64)), &bytes);
        let doc = gw
            .upload_stream("alice", vec![message])
            .await
            .expect("upload");
        let fields = [
            pb::MetadataField::Size,
            pb::MetadataField::Mimetype,
            pb::MetadataField::Filename,
            pb::MetadataField::Writeable,
            pb::MetadataField::Md5,
            pb::MetadataField::Sha256,
            pb::MetadataField::Path,
            pb::MetadataField::Container,
            pb::MetadataField::Location,
        ];
        let meta = gw
            .metadata("alice", &doc.id, &fields)
            .await
            .expect("metadata");
        let path = meta.path.clone().expect("a storage path");
        assert!(
            path.starts_with("user-uploads/alice/upl_"),
            "the upload's own path: {path}"
        );
        assert_eq!(gw.download("alice", &doc.id).await, bytes);
        // What differs by nature: ids, handles, times, the path's entry.
        seen.push((
            (
                doc.filename,
                doc.content_type,
                doc.size_bytes,
                doc.sha256,
                doc.owner,
            ),
            (
                meta.size_bytes,
                meta.mimetype,
                meta.filename,
                meta.sha256,
                meta.md5,
            ),
            (meta.container, meta.location, meta.writeable),
            doc.url.trim_end_matches(&doc.handle).len(),
        ));
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(upload_requests(&one_request).await, (1, 0));
    assert_eq!(upload_requests(&multipart).await, (0, 1));
    one_request.stop().await;
    multipart.stop().await;
}
