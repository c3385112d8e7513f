//! What the gateway does when things go wrong: Filestack faults (through the
//! emulator's fault injection), a failing database, clients that leave or
//! stall, full limits, a crash, and shutdown with uploads in flight.

use filegate::pb::v1 as pb;
use serde_json::json;
use support::MIB;
use support::content::{data, one_chunk};
use support::gateway::TestGateway;
use support::rpc::{OpenUpload, Rpc, data_message, messages, reason, spec, spec_message};
use tonic::Code;
use tonic_types::StatusExt;

/// `bytes` uploaded as alice in 1 MiB messages, the size declared.
async fn upload_all(gw: &TestGateway, bytes: &[u8]) -> Result<pb::Document, tonic::Status> {
    let spec = spec("file.bin", Some(bytes.len() as i64));
    gw.upload_stream("alice", messages(spec, bytes, MIB)).await
}

/// An Upload of `size` declared bytes, its spec sent.
async fn open_upload(gw: &TestGateway, size: usize) -> OpenUpload {
    let client = gw.client().await;
    let first = vec![spec_message(spec("slow.bin", Some(size as i64)))];
    OpenUpload::open(gw, &client, "alice", first).await
}

/// `(documents, stored files, journal entries)`.
async fn nothing_left(gw: &TestGateway) -> (i64, u64, i64) {
    (
        gw.documents().await,
        gw.stored_files().await,
        gw.journal_entries().await,
    )
}

#[tokio::test]
async fn a_part_put_that_fails_once_still_uploads_identical_bytes() {
    let gw = TestGateway::start().await;
    gw.emulator
        .fault(json!({"route": "part_put", "status": 503, "count": 1}))
        .await;
    let bytes = data(12 * MIB + 123);
    let doc = upload_all(&gw, &bytes)
        .await
        .expect("upload survives one failed part");
    assert!(gw.download("alice", &doc.id).await == bytes, "bytes differ");
    assert_eq!(gw.journal_entries().await, 0);
    gw.stop().await;
}

#[tokio::test]
async fn complete_answering_202_three_times_still_succeeds() {
    let gw = TestGateway::start().await;
    gw.emulator
        .fault(json!({"route": "multipart_complete", "accepted": 3}))
        .await;
    let bytes = data(8 * MIB);
    let doc = upload_all(&gw, &bytes)
        .await
        .expect("upload after three 202s");
    assert!(gw.download("alice", &doc.id).await == bytes, "bytes differ");
    gw.stop().await;
}

#[tokio::test]
async fn filestack_down_is_unavailable_and_leaves_no_row() {
    let gw = TestGateway::start().await;
    gw.emulator
        .fault(json!({"route": "multipart_start", "status": 503, "count": 1000}))
        .await;
    let status = upload_all(&gw, &data(8 * MIB + 1)).await.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::Unavailable, "FILESTACK_UNAVAILABLE")
    );
    assert!(status.get_error_details().retry_info().is_some());
    assert_eq!(nothing_left(&gw).await, (0, 0, 0));
    gw.stop().await;
}

#[tokio::test]
async fn a_stalled_filestack_fails_within_the_request_timeout_and_leaves_no_row() {
    let gw = TestGateway::start_with(&["--filestack-timeout-secs", "1"]).await;
    gw.emulator
        .fault(json!({"route": "multipart_start", "latency_ms": 4000, "count": 1000}))
        .await;
    let started = std::time::Instant::now();
    let status = upload_all(&gw, &data(8 * MIB + 1)).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{status:?}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "bounded by the timeouts"
    );
    assert_eq!(nothing_left(&gw).await, (0, 0, 0));
    gw.stop().await;
}

#[tokio::test]
async fn the_database_failing_after_filestack_completed_deletes_the_stored_file() {
    let gw = TestGateway::start().await;
    // PostgreSQL fails as a full disk would (an outage: UNAVAILABLE);
    // SQLite's trigger can only abort with a constraint error, which is no
    // outage (INTERNAL). Either way the stored file goes.
    gw.execute(
        "CREATE TRIGGER fail_documents BEFORE INSERT ON documents BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        "CREATE FUNCTION fail_documents() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected failure' USING ERRCODE = '53100'; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER fail_documents BEFORE INSERT ON documents FOR EACH ROW EXECUTE FUNCTION fail_documents();",
    )
    .await;
    let status = upload_all(&gw, &data(7 * MIB)).await.unwrap_err();
    let expected = match gw.db.pool() {
        filegate::db::Pool::Sqlite(_) => (Code::Internal, "INTERNAL"),
        filegate::db::Pool::Postgres(_) => (Code::Unavailable, "DATABASE_UNAVAILABLE"),
    };
    assert_eq!((status.code(), reason(&status).as_str()), expected);
    assert_eq!(nothing_left(&gw).await, (0, 0, 0));
    gw.stop().await;
}

/// The budget of exactly one upload: 5 MiB parts × (4 in flight + 1), one
/// 4 MiB message and the 2 MiB stream window (31 MiB).
const ONE_UPLOAD_BUDGET: &str = "32505856";

#[tokio::test]
async fn a_client_that_cancels_mid_stream_leaves_nothing_and_frees_its_budget() {
    let gw = TestGateway::start_with(&["--upload-memory-budget-bytes", ONE_UPLOAD_BUDGET]).await;
    let upload = open_upload(&gw, 12 * MIB).await;
    for chunk in data(6 * MIB).chunks(MIB) {
        upload.tx.send(data_message(chunk)).await.unwrap();
    }
    cancel_then_upload_next(&gw, upload).await;
    gw.stop().await;
}

/// Cancels `upload` once admitted, then uploads 8 MiB more: the cancelled
/// upload reserved 12 + 6 MiB of the 31, the next one reserves 14, and so
/// waits until the cancelled one has cleaned up and given its bytes back.
/// Afterwards only the second upload is left, and no upload holds memory.
async fn cancel_then_upload_next(gw: &TestGateway, upload: OpenUpload) {
    gw.wait_for_active_uploads(1).await;
    upload.call.abort();
    drop(upload.tx);
    let bytes = data(8 * MIB);
    let doc = upload_all(gw, &bytes)
        .await
        .expect("the next upload gets the budget");
    assert_eq!(nothing_left(gw).await, (1, 1, 0));
    assert_eq!(gw.upload_gauges().await, (0, 0), "no upload holds memory");
    assert!(gw.download("alice", &doc.id).await == bytes);
}

#[tokio::test]
async fn a_call_cancelled_while_its_journal_entry_is_written_leaves_no_entry() {
    let gw = TestGateway::start_with(&["--upload-memory-budget-bytes", ONE_UPLOAD_BUDGET]).await;
    // Writing a journal entry takes about half a second, so the call below
    // is cancelled while its entry is being written.
    gw.execute(
        "CREATE TRIGGER slow_journal BEFORE INSERT ON upload_journal BEGIN \
         SELECT count(*) FROM (WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL \
         SELECT x + 1 FROM n WHERE x < 2000000) SELECT x FROM n); END;",
        "CREATE FUNCTION slow_journal() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(0.5); \
         RETURN NEW; END $$ LANGUAGE plpgsql; CREATE TRIGGER slow_journal BEFORE INSERT \
         ON upload_journal FOR EACH ROW EXECUTE FUNCTION slow_journal();",
    )
    .await;
    let upload = open_upload(&gw, 12 * MIB).await;
    // The next upload's own entry is as slow to write: by the time it is
    // stored, the cancelled call's entry has been written, and must have
    // been removed again.
    cancel_then_upload_next(&gw, upload).await;
    gw.stop().await;
}

#[tokio::test]
async fn past_the_budget_an_upload_gets_resource_exhausted_with_retry_info() {
    let gw = TestGateway::start_with(&[
        "--upload-memory-budget-bytes",
        ONE_UPLOAD_BUDGET,
        "--upload-admission-timeout-secs",
        "0",
    ])
    .await;
    let upload = open_upload(&gw, 25 * MIB).await; // 25 MiB of parts + 6 MiB: the whole budget
    upload.tx.send(data_message(&data(MIB))).await.unwrap();
    gw.wait_for_active_uploads(1).await;
    let status = upload_all(&gw, &data(10)).await.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::ResourceExhausted, "RESOURCE_EXHAUSTED")
    );
    assert!(
        status.get_error_details().retry_info().is_some(),
        "RetryInfo attached"
    );
    for _ in 1..25 {
        upload.tx.send(data_message(&data(MIB))).await.unwrap();
    }
    drop(upload.tx);
    upload
        .call
        .await
        .unwrap()
        .expect("the first upload finishes");
    assert_eq!(nothing_left(&gw).await, (1, 1, 0));
    gw.stop().await;
}

#[tokio::test]
async fn an_upload_that_stops_sending_gets_deadline_exceeded_and_leaves_nothing() {
    let gw = TestGateway::start_with(&["--upload-idle-timeout-secs", "1"]).await;
    let upload = open_upload(&gw, 2 * MIB).await;
    upload.tx.send(data_message(&data(MIB))).await.unwrap();
    let status = upload.call.await.unwrap().unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::DeadlineExceeded, "UPLOAD_IDLE_TIMEOUT")
    );
    assert_eq!(nothing_left(&gw).await, (0, 0, 0));
    drop(upload.tx);
    gw.stop().await;
}

#[tokio::test]
async fn the_reaper_deletes_a_file_completed_at_filestack_without_a_row() {
    let gw = TestGateway::start().await;
    let kept = upload_all(&gw, &data(100)).await.expect("a normal upload");
    // What a crash between Filestack's complete and the row leaves behind.
    let spec = filegate::filestack::UploadSpec::new("orphan.bin", "application/octet-stream");
    let orphan = gw
        .emulator
        .filestack()
        .upload(one_chunk(&data(50)), spec)
        .await
        .expect("stored")
        .handle;
    let insert = format!(
        "INSERT INTO upload_journal (id, owner, filename, handle, started_at, completed_at) \
         VALUES ('upl_crashed', 'alice', 'orphan.bin', '{orphan}', 1000, 2000)"
    );
    gw.execute(&insert, &insert).await;
    assert_eq!(gw.stored_files().await, 2);
    let gw = gw.restart(&[]).await;
    // The reaper runs before the gRPC server serves: once a call is
    // answered, it is done.
    gw.get_document("alice", &kept.id)
        .await
        .expect("the kept document");
    assert_eq!(
        nothing_left(&gw).await,
        (1, 1, 0),
        "the orphan is gone, the document stays"
    );
    gw.stop().await;
}

#[tokio::test]
async fn shutdown_refuses_new_calls_and_lets_uploads_in_flight_finish() {
    let mut gw = TestGateway::start().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(gw.channel().await);
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status, 1, "SERVING");
    let mut client = gw.client().await;
    let upload = open_upload(&gw, 2 * MIB).await;
    upload.tx.send(data_message(&data(MIB))).await.unwrap();
    gw.wait_for_active_uploads(1).await;
    gw.begin_shutdown();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status,
        2,
        "NOT_SERVING at once"
    );
    let refused = client
        .who_am_i(gw.request("alice", pb::WhoAmIRequest {}))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    upload.tx.send(data_message(&data(MIB))).await.unwrap();
    drop(upload.tx);
    let doc = upload
        .call
        .await
        .unwrap()
        .expect("the upload in flight finishes");
    assert_eq!(doc.size_bytes, 2 * MIB as i64);
    assert_eq!(gw.documents().await, 1);
    drop(watch);
    gw.stop().await;
}

#[tokio::test]
async fn uploads_queued_past_the_budget_on_one_connection_all_finish() {
    // Waiting uploads keep their unread bytes in their HTTP/2 windows; the
    // connection window must leave room for the admitted ones to go on.
    let gw = TestGateway::start_with(&["--upload-memory-budget-bytes", ONE_UPLOAD_BUDGET]).await;
    let client = gw.client().await;
    let mut uploads = tokio::task::JoinSet::new();
    for i in 0..8 {
        let bytes = data(6 * MIB + i);
        let spec = spec("queued.bin", Some(bytes.len() as i64));
        let messages = messages(spec, &bytes, MIB);
        let request = gw.request("alice", tokio_stream::iter(messages));
        let mut client = client.clone();
        uploads.spawn(async move { client.upload(request).await.map(|r| r.into_inner()) });
    }
    while let Some(done) = uploads.join_next().await {
        done.unwrap().expect("a queued upload finishes");
    }
    assert_eq!(nothing_left(&gw).await, (8, 8, 0));
    gw.stop().await;
}
