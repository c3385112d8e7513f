//! A lost answer from Filestack never orphans a file or misleads the
//! caller: when the connection breaks while Filestack answers the request
//! that stores the file (`multipart/complete` of a multipart upload, the
//! one `/api/store` of a small file), the outcome is unknown, not "not
//! found". The caller gets UNAVAILABLE with RetryInfo, a retry with the same
//! request id yields exactly one document, and the reaper (sending
//! `complete` again, or matching Filestack's `fp.upload` webhook to the
//! upload's own storage path) deletes the file that has no document,
//! whichever way Filestack answers a repeated `complete`.

use filegate::pb::v1 as pb;
use serde_json::json;
use support::gateway::{TestGateway, delivery};
use support::rpc::{Rpc, first_message, reason, spec, spec_message, with_request_id};
use support::{MIB, content::data};
use tonic::Code;
use tonic_types::StatusExt;

/// How a test's uploads reach Filestack.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// Multipart (the gateway is told to use it for every file): the
    /// storing request is `complete`.
    Multipart,
    /// Small files in one request: the storing request is the store.
    Store,
}

impl Path {
    /// The emulator route of the request that stores the file.
    fn route(self) -> &'static str {
        match self {
            Path::Multipart => "multipart_complete",
            Path::Store => "store",
        }
    }

    async fn gateway(self, extra: &[&str]) -> TestGateway {
        let mut args = extra.to_vec();
        if let Path::Multipart = self {
            args.extend(["--single-request-uploads", "false"]);
        }
        TestGateway::start_with(&args).await
    }
}

/// Where the answer to `complete` is cut: before the status line, after one
/// byte of the body, in the middle of it, and one byte short of its end.
const CUTS: [u64; 4] = [0, 1, 40, 150];

/// `bytes` as alice's `name`, with `request_id`.
async fn upload(
    gw: &TestGateway,
    name: &str,
    bytes: &[u8],
    request_id: &str,
) -> Result<pb::Document, tonic::Status> {
    let spec = with_request_id(spec(name, Some(bytes.len() as i64)), request_id);
    let mut messages = vec![spec_message(spec)];
    messages.extend(bytes.chunks(MIB).map(support::rpc::data_message));
    gw.upload_stream("alice", messages).await
}

fn assert_unknown_outcome(status: &tonic::Status) {
    assert_eq!(
        (status.code(), reason(status).as_str()),
        (Code::Unavailable, "FILESTACK_UNAVAILABLE"),
        "{status:?}"
    );
    assert!(
        status.get_error_details().retry_info().is_some(),
        "RetryInfo: {status:?}"
    );
}

/// The length of the emulator's answer to `complete` for `lost.bin` of
/// 6 MiB and a few bytes (the handle, path and size have fixed lengths), so
/// a cut can fall one byte short of its end.
async fn complete_answer_len(gw: &TestGateway) -> u64 {
    let doc = upload(gw, "lost.bin", &data(6 * MIB), "")
        .await
        .expect("probe");
    let stored = gw
        .emulator
        .files()
        .await
        .into_iter()
        .find(|(handle, _)| *handle == doc.handle)
        .expect("the probe is stored");
    let answer = json!({
        "handle": doc.handle, "url": doc.url, "filename": "lost.bin", "size": 6 * MIB,
        "mimetype": "application/octet-stream", "status": "Stored",
        "container": "filegate-emulator", "key": stored.1,
    });
    answer.to_string().len() as u64
}

/// The length of the emulator's answer to the store of `stored.bin` of
/// 1000 to 1009 bytes.
async fn store_answer_len(gw: &TestGateway) -> u64 {
    let doc = upload(gw, "stored.bin", &data(1000), "")
        .await
        .expect("probe");
    let stored = gw
        .emulator
        .files()
        .await
        .into_iter()
        .find(|(handle, _)| *handle == doc.handle)
        .expect("the probe is stored");
    let answer = json!({
        "url": doc.url, "handle": doc.handle, "size": 1000,
        "type": "application/octet-stream", "mimetype": "application/octet-stream",
        "filename": "stored.bin", "key": stored.1, "container": "filegate-emulator",
    });
    answer.to_string().len() as u64
}

#[tokio::test]
async fn a_store_answer_cut_at_any_byte_is_unavailable_and_the_stored_file_is_deleted() {
    // A store cannot be sent again: Filestack's fp.upload webhook (local
    // mode delivers it) names the file under the upload's own path.
    let gw = Path::Store.gateway(&[]).await;
    let full = store_answer_len(&gw).await;
    assert!(full > CUTS[3], "the answer is longer than the cuts");
    for (n, cut) in CUTS.into_iter().chain([full - 1]).enumerate() {
        gw.emulator
            .fault(json!({"route": "store", "cut_response_after_bytes": cut}))
            .await;
        let bytes = data(1000 + n);
        let request_id = format!("lost-{cut}");
        let status = upload(&gw, "stored.bin", &bytes, &request_id)
            .await
            .expect_err("the answer was lost");
        assert_unknown_outcome(&status);
        let doc = upload(&gw, "stored.bin", &bytes, &request_id)
            .await
            .expect("the retry stores it");
        assert_eq!(gw.download("alice", &doc.id).await, bytes, "cut at {cut}");
        gw.wait_until_settled().await;
    }
    assert_eq!(gw.documents().await, 1 + CUTS.len() as i64 + 1);
    assert_eq!(gw.stored_files().await, gw.documents().await as u64);
    assert_eq!(
        gw.emulator.stats().await.requests("multipart_start"),
        0,
        "small files take one request"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_complete_answer_cut_at_any_byte_is_unavailable_and_the_stored_file_is_deleted() {
    // Filestack answers the repeated complete with 404 (the emulator's
    // default); its fp.upload webhook reaches the gateway (local mode).
    let gw = Path::Multipart.gateway(&[]).await;
    let full = complete_answer_len(&gw).await;
    assert!(full > CUTS[3], "the answer is longer than the cuts");
    for (n, cut) in CUTS.into_iter().chain([full - 1]).enumerate() {
        gw.emulator
            .fault(json!({"route": "multipart_complete", "cut_response_after_bytes": cut}))
            .await;
        let bytes = data(6 * MIB + n);
        let request_id = format!("lost-{cut}");
        let status = upload(&gw, "lost.bin", &bytes, &request_id)
            .await
            .expect_err("the answer was lost");
        assert_unknown_outcome(&status);
        let doc = upload(&gw, "lost.bin", &bytes, &request_id)
            .await
            .expect("the retry stores it");
        assert_eq!(gw.download("alice", &doc.id).await, bytes, "cut at {cut}");
        let again = upload(&gw, "lost.bin", &bytes, &request_id)
            .await
            .expect("a second retry");
        assert_eq!(again.id, doc.id, "one document for the request id");
        gw.wait_until_settled().await;
    }
    assert_eq!(gw.documents().await, 1 + CUTS.len() as i64 + 1);
    assert_eq!(gw.stored_files().await, gw.documents().await as u64);
    gw.stop().await;
}

#[tokio::test]
async fn when_filestack_answers_a_repeated_complete_with_the_file_the_upload_succeeds_once() {
    let gw = Path::Multipart.gateway(&[]).await;
    gw.emulator.set_repeated_complete("same_file").await;
    for cut in CUTS {
        gw.emulator
            .fault(json!({"route": "multipart_complete", "cut_response_after_bytes": cut}))
            .await;
        let bytes = data(1000 + cut as usize);
        let doc = upload(&gw, "again.bin", &bytes, "")
            .await
            .expect("the repeated complete names the file");
        assert_eq!(gw.download("alice", &doc.id).await, bytes);
    }
    let stats = gw.emulator.stats().await;
    assert_eq!(stats.requests("multipart_complete"), 2 * CUTS.len() as u64);
    assert_eq!(gw.stored_files().await, CUTS.len() as u64, "no second file");
    assert_eq!(gw.journal_entries().await, 0);
    assert!(gw.orphans().await.is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn without_webhooks_the_reaper_sends_complete_again_and_deletes_the_file_it_names() {
    let gw = Path::Multipart
        .gateway(&["--local-webhooks", "false"])
        .await;
    gw.emulator.set_repeated_complete("same_file").await;
    // Every attempt of the call loses its answer (5 attempts); the
    // reaper's own attempt gets through.
    gw.emulator
        .fault(json!({"route": "multipart_complete", "cut_response_after_bytes": 10, "count": 5}))
        .await;
    let status = upload(&gw, "cut.bin", b"five times lost", "")
        .await
        .expect_err("every answer was lost");
    assert_unknown_outcome(&status);
    gw.wait_until_settled().await;
    assert_eq!(
        gw.stored_files().await,
        0,
        "the file the reaper found is deleted"
    );
    assert_eq!(gw.emulator.stats().await.requests("multipart_complete"), 6);
    gw.stop().await;
}

#[tokio::test]
async fn a_file_filestack_will_not_name_again_is_deleted_when_its_webhook_names_it() {
    file_named_only_by_its_webhook(Path::Multipart).await;
}

#[tokio::test]
async fn a_stored_file_whose_answer_was_lost_is_deleted_when_its_webhook_names_it() {
    file_named_only_by_its_webhook(Path::Store).await;
}

async fn file_named_only_by_its_webhook(path: Path) {
    let gw = path.gateway(&["--local-webhooks", "false"]).await;
    gw.emulator
        .fault(json!({"route": path.route(), "cut_response_after_bytes": 0}))
        .await;
    let status = upload(&gw, "late.bin", b"named by its webhook", "")
        .await
        .expect_err("the answer was lost");
    assert_unknown_outcome(&status);
    // The reaper sent complete again, got 404, and keeps waiting (a store
    // has no request to send again): the entry stays, abandoned, without
    // its request.
    support::poll_until(
        std::time::Duration::from_secs(20),
        "the reaper forgot the complete request",
        || async {
            let journal = gw.journal().await;
            journal.len() == 1 && journal[0].complete_request.is_none()
        },
    )
    .await;
    let entry = gw.journal().await.remove(0);
    assert!(entry.abandoned_at.is_some());
    assert!(entry.handle.is_none());
    let files = gw.emulator.files().await;
    let [(handle, key)] = files.as_slice() else {
        panic!("one stored file: {files:?}");
    };
    assert!(
        key.starts_with(&format!("user-uploads/alice/{}/", entry.id)),
        "the upload's own path names its entry: {key}"
    );
    // A webhook for another owner's path, or naming no entry, changes nothing.
    let text = |key: &str| json!({"url": format!("https://cdn.filestackcontent.com/{handle}"), "key": key});
    let foreign = key.replacen("alice", "bob", 1);
    assert_eq!(
        gw.deliver(&delivery("w1", "fp.upload", text(&foreign)))
            .await,
        200
    );
    assert_eq!(gw.journal().await[0].handle, None);
    // Filestack's fp.upload for the file names it.
    assert_eq!(
        gw.deliver(&delivery("w2", "fp.upload", text(key))).await,
        200
    );
    gw.wait_until_settled().await;
    assert_eq!(gw.stored_files().await, 0);
    assert_eq!(gw.documents().await, 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_complete_refused_outright_leaves_no_entry_behind() {
    refused_outright(Path::Multipart).await;
}

#[tokio::test]
async fn a_store_refused_outright_leaves_no_entry_behind() {
    refused_outright(Path::Store).await;
}

async fn refused_outright(path: Path) {
    let gw = path.gateway(&[]).await;
    gw.emulator
        .fault(json!({"route": path.route(), "status": 400}))
        .await;
    let status = upload(&gw, "refused.bin", b"refused", "")
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_eq!(gw.journal_entries().await, 0, "nothing can be stored");
    assert_eq!(gw.stored_files().await, 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_call_cancelled_while_complete_runs_leaves_the_file_to_the_reaper() {
    cancelled_while_storing(Path::Multipart).await;
}

#[tokio::test]
async fn a_call_cancelled_while_the_store_runs_leaves_the_file_to_the_reaper() {
    cancelled_while_storing(Path::Store).await;
}

async fn cancelled_while_storing(path: Path) {
    let gw = path.gateway(&[]).await;
    // The storing request stores the file at once but answers 2 s later;
    // the caller gives up after 300 ms.
    gw.emulator
        .fault(json!({"route": path.route(), "cut_response_after_bytes": 1_000_000, "latency_ms": 2000}))
        .await;
    let spec = with_request_id(spec("slow.bin", None), "cancelled");
    let message = first_message(spec, b"cancelled while completing");
    let mut request = gw.request("alice", tokio_stream::iter(vec![message]));
    request.set_timeout(std::time::Duration::from_millis(300));
    let status = gw
        .client()
        .await
        .upload(request)
        .await
        .expect_err("the caller gave up");
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    // complete stored the file after the call ended; it does not stay.
    support::poll_until(
        std::time::Duration::from_secs(20),
        "complete stored the file",
        || async { !gw.emulator.files().await.is_empty() || gw.documents().await > 0 },
    )
    .await;
    gw.wait_until_settled().await;
    assert_eq!(gw.documents().await, 0);
    gw.stop().await;
}

/// A write lock on the upload journal held by the test: uploads wait in the
/// write of their entry until it is released.
enum JournalLock {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl JournalLock {
    async fn take(gw: &TestGateway) -> JournalLock {
        match gw.db.pool() {
            filegate::db::Pool::Sqlite(pool) => {
                let mut conn = pool.acquire().await.expect("a connection");
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut *conn)
                    .await
                    .expect("the write lock");
                JournalLock::Sqlite(conn)
            }
            filegate::db::Pool::Postgres(pool) => {
                let mut tx = pool.begin().await.expect("a transaction");
                sqlx::query("LOCK TABLE upload_journal IN EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await
                    .expect("the table lock");
                JournalLock::Postgres(tx)
            }
        }
    }

    async fn release(self) {
        match self {
            JournalLock::Sqlite(mut conn) => {
                sqlx::query("COMMIT")
                    .execute(&mut *conn)
                    .await
                    .expect("released");
            }
            JournalLock::Postgres(tx) => tx.commit().await.expect("released"),
        }
    }
}

/// A call cancelled before its one store request is sent stored nothing:
/// its journal entry goes at once, not kept as "may be stored" for the
/// reaper (which would wait a day for a webhook that never comes).
#[tokio::test]
async fn an_upload_cancelled_before_its_store_is_sent_leaves_no_journal_entry() {
    let gw = TestGateway::start().await;
    let lock = JournalLock::take(&gw).await;
    let mut client = gw.client().await;
    let bytes = b"cancelled while its entry is written".to_vec();
    let message = first_message(spec("cancelled.txt", Some(bytes.len() as i64)), &bytes);
    let request = gw.request("alice", tokio_stream::iter(vec![message]));
    let call = tokio::spawn(async move { client.upload(request).await });
    gw.wait_for_active_uploads(1).await;
    call.abort();
    let cancelled = |text: &str| {
        text.lines().any(|line| {
            line.starts_with("grpc_server_handled_total{")
                && line.contains("grpc_code=\"Canceled\"")
                && line.contains("grpc_method=\"Upload\"")
                && !line.ends_with(" 0")
        })
    };
    let http = reqwest::Client::new();
    support::poll_until(
        std::time::Duration::from_secs(20),
        "the gateway saw the call cancelled",
        || async {
            let text = http
                .get(format!("{}/metrics", gw.http_url))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text");
            cancelled(&text)
        },
    )
    .await;
    lock.release().await;
    gw.wait_for_active_uploads(0).await;
    assert_eq!(gw.journal_entries().await, 0, "{:?}", gw.journal().await);
    assert_eq!(gw.emulator.stats().await.requests("store"), 0);
    assert_eq!((gw.documents().await, gw.stored_files().await), (0, 0));
    gw.stop().await;
}
