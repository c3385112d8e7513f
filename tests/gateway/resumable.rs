//! Resumable uploads: StartUpload, Upload streams that continue from the
//! persisted offset (parts Filestack acknowledged), QueryUpload and
//! CancelUpload, on one gateway and across replicas sharing PostgreSQL.

use std::time::Duration;

use filegate::pb::v1 as pb;
use support::MIB;
use support::content::{data, sha256_hex};
use support::emulator::TestEmulator;
use support::gateway::TestGateway;
use support::poll_until;
use support::postgres::PostgresDatabase;
use support::process::ServedGateway;
use support::rpc::{OpenUpload, Rpc, field, reason, resume_messages, spec};
use tonic::Code;
use tonic_types::StatusExt;

/// The test gateway's part size: persisted sizes are multiples of it.
const PART: usize = 5 * MIB;

fn spec_with_sha(name: &str, bytes: &[u8]) -> pb::UploadSpec {
    pb::UploadSpec {
        sha256: sha256_hex(bytes),
        ..spec(name, Some(bytes.len() as i64))
    }
}

fn assert_status(status: &tonic::Status, code: Code, expected: &str) {
    assert_eq!(
        (status.code(), reason(status).as_str()),
        (code, expected),
        "{status:?}"
    );
}

/// The persisted size an OUT_OF_RANGE refusal names in its ErrorInfo.
fn persisted_in(status: &tonic::Status) -> u64 {
    assert_status(status, Code::OutOfRange, "OFFSET_NOT_PERSISTED");
    assert_eq!(field(status).as_deref(), Some("write_offset"));
    let info = status
        .get_error_details()
        .error_info()
        .cloned()
        .expect("ErrorInfo");
    info.metadata["persisted_bytes"].parse().expect("a number")
}

async fn persisted(gw: &impl Rpc, id: &str) -> u64 {
    let status = gw.query_upload("alice", id).await.expect("query");
    status.persisted_bytes as u64
}

#[tokio::test]
async fn a_file_sent_in_three_streams_is_stored_once_and_checked_whole() {
    let gw = TestGateway::start().await;
    let bytes = data(2 * PART + 123_456);
    let started = gw
        .start_upload("alice", spec_with_sha("three.bin", &bytes))
        .await
        .expect("started");
    assert_eq!(started.part_size_bytes, PART as i64);
    assert!(started.expire_time.is_some());
    let id = started.upload_id.as_str();
    assert_eq!(persisted(&gw, id).await, 0);

    // A stream that ends after 1.4 parts persists one part: the partial
    // one is not sent, and the next stream starts where it starts.
    let first = gw
        .resume_upload("alice", id, 0, &bytes[..PART + 2 * MIB], MIB)
        .await
        .expect("first stream");
    assert_eq!((first.document, first.persisted_bytes), (None, PART as i64));
    assert_eq!(persisted(&gw, id).await, PART as u64);

    // Any other offset is refused with the persisted size, and changes
    // nothing.
    for wrong in [0, PART as u64 + 2 * MIB as u64, PART as u64 - 1] {
        let status = gw
            .resume_upload("alice", id, wrong, &bytes[wrong as usize..], MIB)
            .await
            .unwrap_err();
        assert_eq!(persisted_in(&status), PART as u64, "at {wrong}");
    }
    assert_eq!(persisted(&gw, id).await, PART as u64);

    let second = gw
        .resume_upload("alice", id, PART as u64, &bytes[PART..2 * PART + 10], MIB)
        .await
        .expect("second stream");
    assert_eq!(second.persisted_bytes, 2 * PART as i64);
    let last = gw
        .resume_upload("alice", id, 2 * PART as u64, &bytes[2 * PART..], MIB)
        .await
        .expect("last stream");
    let doc = last.document.expect("finished");
    assert_eq!(last.persisted_bytes, bytes.len() as i64);
    assert_eq!(doc.sha256, sha256_hex(&bytes));
    assert_eq!(doc.size_bytes, bytes.len() as i64);
    assert!(gw.download("alice", &doc.id).await == bytes);

    // Finished: QueryUpload has the document; a repeated last stream
    // returns it again; no second file.
    let status = gw.query_upload("alice", id).await.expect("query");
    assert_eq!(status.persisted_bytes, bytes.len() as i64);
    assert_eq!(status.document.expect("the document").id, doc.id);
    let again = gw
        .resume_upload("alice", id, bytes.len() as u64, &[], MIB)
        .await
        .expect("again");
    assert_eq!(again.document.expect("the document").id, doc.id);
    // The last stream repeated as it was (its answer lost, say), or any
    // stream within the file, gets the document too; past the end does not.
    for offset in [2 * PART as u64, 0] {
        let again = gw
            .resume_upload("alice", id, offset, &bytes[offset as usize..], MIB)
            .await
            .expect("a repeated stream");
        assert_eq!(again.document.expect("the document").id, doc.id);
        assert_eq!(again.persisted_bytes, bytes.len() as i64);
    }
    let past = gw
        .resume_upload("alice", id, bytes.len() as u64 + 1, &[], MIB)
        .await
        .unwrap_err();
    assert_eq!(persisted_in(&past), bytes.len() as u64);
    let stats = gw.emulator.stats().await;
    assert_eq!(stats.requests("multipart_start"), 1);
    assert_eq!(stats.requests("multipart_complete"), 1);
    assert_eq!(
        stats.requests("part_put"),
        3,
        "a partial part at the end of a stream is never sent"
    );
    assert_eq!(gw.stored_files().await, 1);
    assert_eq!(gw.journal_entries().await, 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_broken_stream_keeps_every_part_filestack_acknowledged() {
    let gw = TestGateway::start().await;
    let bytes = data(3 * PART);
    let started = gw
        .start_upload("alice", spec("broken.bin", Some(bytes.len() as i64)))
        .await
        .expect("started");
    let id = started.upload_id.clone();
    let first = resume_messages(&id, 0, &bytes[..2 * PART + MIB], MIB);
    let open = OpenUpload::open(&gw, &gw.client().await, "alice", first).await;
    // Both whole parts are acknowledged, then the call is reset.
    poll_until(Duration::from_secs(20), "two parts persisted", || async {
        persisted(&gw, &id).await == 2 * PART as u64
    })
    .await;
    open.call.abort();
    drop(open.tx);
    let doc = gw
        .resume_upload("alice", &id, 2 * PART as u64, &bytes[2 * PART..], MIB)
        .await
        .expect("resumed")
        .document
        .expect("finished");
    assert!(gw.download("alice", &doc.id).await == bytes);
    assert!(gw.orphans().await.is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn bytes_that_differ_from_the_declared_sha256_end_the_upload_and_keep_nothing() {
    let gw = TestGateway::start().await;
    let bytes = data(PART + 1000);
    let mut other = bytes.clone();
    other[PART + 10] ^= 1;
    let id = gw
        .start_upload("alice", spec_with_sha("bad.bin", &bytes))
        .await
        .expect("started")
        .upload_id;
    gw.resume_upload("alice", &id, 0, &other[..PART], MIB)
        .await
        .expect("one part");
    let status = gw
        .resume_upload("alice", &id, PART as u64, &other[PART..], MIB)
        .await
        .unwrap_err();
    assert_status(&status, Code::InvalidArgument, "CHECKSUM_MISMATCH");
    let status = gw.query_upload("alice", &id).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(gw.stored_files().await, 0);
    assert_eq!(gw.journal_entries().await, 0);
    assert_eq!(gw.documents().await, 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_cancelled_upload_leaves_nothing_and_its_id_is_not_found() {
    let gw = TestGateway::start().await;
    let bytes = data(PART + 10);
    let id = gw
        .start_upload("alice", spec("cancel.bin", Some(bytes.len() as i64)))
        .await
        .expect("started")
        .upload_id;
    gw.resume_upload("alice", &id, 0, &bytes[..PART], MIB)
        .await
        .expect("one part");
    gw.cancel_upload("alice", &id).await.expect("cancelled");
    let query = gw.query_upload("alice", &id).await.unwrap_err();
    let resume = gw
        .resume_upload("alice", &id, PART as u64, &bytes[PART..], MIB)
        .await
        .unwrap_err();
    let cancel = gw.cancel_upload("alice", &id).await.unwrap_err();
    for status in [query, resume, cancel] {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    assert_eq!(gw.stored_files().await, 0);
    assert_eq!(gw.journal_entries().await, 0);
    assert_eq!(gw.emulator.stats().await.requests("multipart_complete"), 0);

    // A finished upload cannot be cancelled: its document stays.
    let small = data(1000);
    let id = gw
        .start_upload("alice", spec("done.bin", Some(1000)))
        .await
        .expect("started")
        .upload_id;
    let doc = gw
        .resume_upload("alice", &id, 0, &small, MIB)
        .await
        .expect("finished")
        .document
        .expect("a document");
    let status = gw.cancel_upload("alice", &id).await.unwrap_err();
    assert_status(&status, Code::FailedPrecondition, "UPLOAD_FINISHED");
    assert_eq!(gw.download("alice", &doc.id).await, small);
    gw.stop().await;
}

#[tokio::test]
async fn another_callers_or_a_malformed_upload_id_is_refused() {
    let gw = TestGateway::start().await;
    let id = gw
        .start_upload("alice", spec("mine.bin", Some(10)))
        .await
        .expect("started")
        .upload_id;
    let query = gw.query_upload("bob", &id).await.unwrap_err();
    let resume = gw
        .resume_upload("bob", &id, 0, b"0123456789", MIB)
        .await
        .unwrap_err();
    let cancel = gw.cancel_upload("bob", &id).await.unwrap_err();
    for status in [query, resume, cancel] {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    assert_eq!(persisted(&gw, &id).await, 0, "alice's upload is untouched");
    for malformed in ["", "upl_short", "doc_AbCdEfGhIjKlMnOpQrStUvWx"] {
        let status = gw.query_upload("alice", malformed).await.unwrap_err();
        assert_eq!(
            (status.code(), field(&status).as_deref()),
            (Code::InvalidArgument, Some("upload_id")),
            "{malformed:?}"
        );
    }
    let status = gw
        .start_upload("alice", spec("unsized.bin", None))
        .await
        .unwrap_err();
    assert_status(&status, Code::InvalidArgument, "SIZE_REQUIRED");
    let too_long = gw
        .resume_upload("alice", &id, 0, b"eleven bytes", MIB)
        .await
        .unwrap_err();
    assert_status(&too_long, Code::OutOfRange, "SIZE_MISMATCH");
    gw.stop().await;
}

#[tokio::test]
async fn a_newer_stream_takes_over_and_the_older_one_stops() {
    let gw = TestGateway::start().await;
    let bytes = data(3 * PART);
    let id = gw
        .start_upload("alice", spec("twice.bin", Some(bytes.len() as i64)))
        .await
        .expect("started")
        .upload_id;
    let first = resume_messages(&id, 0, &bytes[..PART], MIB);
    let older = OpenUpload::open(&gw, &gw.client().await, "alice", first).await;
    poll_until(
        Duration::from_secs(20),
        "the older stream persisted a part",
        || async { persisted(&gw, &id).await == PART as u64 },
    )
    .await;
    // The newer stream finishes the upload while the older one is open.
    let doc = gw
        .resume_upload("alice", &id, PART as u64, &bytes[PART..], MIB)
        .await
        .expect("the newer stream")
        .document
        .expect("finished");
    // The older stream's next part is refused.
    for message in resume_messages(&id, PART as u64, &bytes[PART..2 * PART], MIB) {
        let message = pb::UploadRequest {
            first_message: None,
            write_offset: 0,
            ..message
        };
        if older.tx.send(message).await.is_err() {
            break;
        }
    }
    drop(older.tx);
    let status = older.call.await.expect("joined").unwrap_err();
    assert_status(&status, Code::Aborted, "UPLOAD_TAKEN_OVER");
    assert!(gw.download("alice", &doc.id).await == bytes);
    assert_eq!(gw.stored_files().await, 1);
    gw.stop().await;
}

#[tokio::test]
async fn an_idle_upload_expires_and_its_id_is_not_found() {
    let gw = TestGateway::start().await;
    let id = gw
        .start_upload("alice", spec("idle.bin", Some(10)))
        .await
        .expect("started")
        .upload_id;
    assert_eq!(gw.journal_entries().await, 1);
    // The reaper runs at start-up; with no idle time allowed, it removes
    // the upload.
    let gw = gw.restart(&["--upload-session-expiry-secs", "0"]).await;
    let status = gw.query_upload("alice", &id).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(gw.journal_entries().await, 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_broken_by_a_killed_replica_resumes_on_another() {
    let Some(database) = PostgresDatabase::for_test().await else {
        return;
    };
    const SECRET: &str = "replica-test-jwt-secret";
    let emulator = TestEmulator::start().await;
    let bin = env!("CARGO_BIN_EXE_filegate");
    let replica = |dir: &std::path::Path| {
        let url = database.url.clone();
        let dir = dir.to_owned();
        let emulator = &emulator;
        async move {
            ServedGateway::start_against(bin, &dir, SECRET, emulator, |command| {
                command.args(["--database-url", &url, "--part-size", "5242880"]);
            })
            .await
        }
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = replica(dir_a.path()).await;
    let b = replica(dir_b.path()).await;
    let bytes = data(2 * PART + 777);
    let id = a
        .start_upload("alice", spec_with_sha("replicas.bin", &bytes))
        .await
        .expect("started on A")
        .upload_id;
    let first = resume_messages(&id, 0, &bytes[..PART + 3 * MIB], MIB);
    let open = OpenUpload::open(&a, &a.client().await, "alice", first).await;
    poll_until(Duration::from_secs(20), "A persisted a part", || async {
        persisted(&b, &id).await == PART as u64
    })
    .await;
    a.child.start_kill().unwrap();
    a.child.wait().await.unwrap();
    assert!(open.call.await.unwrap().is_err(), "the stream died with A");
    let status = b
        .resume_upload("alice", &id, 0, &bytes, MIB)
        .await
        .unwrap_err();
    assert_eq!(persisted_in(&status), PART as u64);
    let doc = b
        .resume_upload("alice", &id, PART as u64, &bytes[PART..], MIB)
        .await
        .expect("resumed on B")
        .document
        .expect("finished");
    assert_eq!(doc.sha256, sha256_hex(&bytes));
    let url = b.signed_url("alice", &doc.id, None).await.expect("url").url;
    assert!(emulator.get_ok(&url).await == bytes);
    assert_eq!(emulator.stats().await.stored_files(), 1);
    b.stop().await;
    database.drop_database().await;
}

/// A stream that sends more than the declared size is OUT_OF_RANGE, and
/// the part its extra bytes came with (the file's last) is not persisted:
/// the upload cannot be finished with the refused stream's bytes, only by
/// sending the file's end again; for a last part that is whole or shorter.
#[tokio::test]
async fn a_stream_past_the_declared_size_persists_none_of_the_last_part() {
    let gw = TestGateway::start().await;
    for size in [PART + 1000, 2 * PART] {
        let bytes = data(size);
        let started = gw
            .start_upload("alice", spec_with_sha("over.bin", &bytes))
            .await
            .expect("started");
        let id = started.upload_id.as_str();
        let mut over = bytes.clone();
        over.extend_from_slice(b"!!");
        let status = gw
            .resume_upload("alice", id, 0, &over, MIB)
            .await
            .unwrap_err();
        assert_status(&status, Code::OutOfRange, "SIZE_MISMATCH");
        let last_part = (size - 1) / PART * PART;
        assert_eq!(persisted(&gw, id).await, last_part as u64, "size {size}");
        let finish = gw
            .resume_upload("alice", id, size as u64, &[], MIB)
            .await
            .unwrap_err();
        assert_eq!(persisted_in(&finish), last_part as u64);
        let done = gw
            .resume_upload("alice", id, last_part as u64, &bytes[last_part..], MIB)
            .await
            .expect("the file's end sent again");
        let doc = done.document.expect("finished");
        assert_eq!(doc.sha256, sha256_hex(&bytes));
        assert!(gw.download("alice", &doc.id).await == bytes);
    }
    assert_eq!(gw.stored_files().await, 2);
    assert_eq!(gw.journal_entries().await, 0);
    gw.stop().await;
}

/// StartUpload with a request id a finished upload has: for the same file,
/// the upload is finished from the start (QueryUpload has the document, a
/// first stream gets it, nothing is stored again); for another file,
/// ALREADY_EXISTS REQUEST_ID_REUSED. A plain Upload that takes a started
/// upload's request id first makes that upload's finish REQUEST_ID_REUSED,
/// and its file is not kept.
#[tokio::test]
async fn a_request_id_already_used_gives_a_finished_upload_or_is_refused() {
    let gw = TestGateway::start().await;
    let bytes = data(PART + 10);
    let keyed = pb::UploadSpec {
        request_id: "key-1".into(),
        ..spec_with_sha("keyed.bin", &bytes)
    };
    let doc = gw
        .upload_stream("alice", support::rpc::messages(keyed.clone(), &bytes, MIB))
        .await
        .expect("plain upload");
    let started = gw
        .start_upload("alice", keyed.clone())
        .await
        .expect("the same file");
    let id = started.upload_id.as_str();
    let status = gw.query_upload("alice", id).await.expect("query");
    assert_eq!(status.persisted_bytes, bytes.len() as i64);
    assert_eq!(status.document.expect("finished").id, doc.id);
    let first = gw
        .resume_upload("alice", id, 0, &bytes, MIB)
        .await
        .expect("a first stream");
    assert_eq!(first.document.expect("the document").id, doc.id);
    let other = data(PART + 11);
    let refused = gw
        .start_upload(
            "alice",
            pb::UploadSpec {
                request_id: "key-1".into(),
                ..spec_with_sha("keyed.bin", &other)
            },
        )
        .await
        .unwrap_err();
    assert_status(&refused, Code::AlreadyExists, "REQUEST_ID_REUSED");

    // The key taken by a plain Upload of another file while the resumable
    // upload is under way.
    let started = gw
        .start_upload(
            "alice",
            pb::UploadSpec {
                request_id: "key-2".into(),
                ..spec_with_sha("late.bin", &bytes)
            },
        )
        .await
        .expect("started");
    let id = started.upload_id.as_str();
    let small = b"another file".to_vec();
    gw.upload_stream(
        "alice",
        vec![support::rpc::first_message(
            pb::UploadSpec {
                request_id: "key-2".into(),
                ..spec("late.bin", None)
            },
            &small,
        )],
    )
    .await
    .expect("the plain upload");
    let status = gw.query_upload("alice", id).await.expect("query");
    assert!(status.document.is_none(), "not this upload's document");
    let finish = gw
        .resume_upload("alice", id, 0, &bytes, MIB)
        .await
        .unwrap_err();
    assert_status(&finish, Code::AlreadyExists, "REQUEST_ID_REUSED");
    assert_eq!(gw.documents().await, 2);
    gw.wait_until_settled().await;
    assert_eq!(gw.stored_files().await, 2);
    gw.stop().await;
}
