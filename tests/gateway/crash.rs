//! The gateway killed with SIGKILL in mid-upload and started again: the
//! journal lets the restarted process settle what the dead one left, and the
//! database stays consistent with Filestack.

use std::time::Duration;

use support::MIB;
use support::emulator::TestEmulator;
use support::gateway::scrape_metrics;
use support::poll_until;
use support::process::ServedGateway;
use support::rpc::{Rpc, data_message, messages, spec, spec_message};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const SECRET: &str = "crash-test-jwt-secret";

/// Every file in parts, small ones too: the storing request is `complete`.
const MULTIPART: [&str; 2] = ["--single-request-uploads", "false"];

async fn serve(data_dir: &std::path::Path, extra: &[&str]) -> ServedGateway {
    let bin = env!("CARGO_BIN_EXE_filegate");
    ServedGateway::start(bin, data_dir, Some(SECRET), |command| {
        command.args(["--part-size", "5242880"]).args(extra);
    })
    .await
}

#[tokio::test]
async fn a_gateway_killed_mid_upload_restarts_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = serve(dir.path(), &[]).await;
    let kept = first
        .upload_stream(
            "alice",
            messages(spec("f.bin", Some(MIB as i64)), &vec![7; MIB], MIB),
        )
        .await
        .expect("a complete upload");

    let (tx, rx) = mpsc::channel(4);
    let mut upload_client = first.client().await;
    let request = first.request("alice", ReceiverStream::new(rx));
    let in_flight = tokio::spawn(async move { upload_client.upload(request).await });
    tx.send(spec_message(spec("f.bin", Some(12 * MIB as i64))))
        .await
        .unwrap();
    for _ in 0..6 {
        tx.send(data_message(&vec![7; MIB])).await.unwrap();
    }
    let http = reqwest::Client::new();
    poll_until(
        Duration::from_secs(20),
        "the upload is in flight",
        || async {
            scrape_metrics(&http, &first.http_url, ["filegate_uploads_active"]).await == [1]
        },
    )
    .await;

    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();
    assert!(
        in_flight.await.unwrap().is_err(),
        "the killed gateway did not finish the upload"
    );
    drop(tx);

    let second = serve(dir.path(), &["--upload-journal-stale-secs", "0"]).await;
    // The reaper runs before the gRPC server serves.
    let doc = second.get_document("alice", &kept.id).await.unwrap();
    assert_eq!(doc.size_bytes, MIB as i64);

    let db_url = format!("sqlite://{}/filegate.db", dir.path().display());
    let db = sqlx::SqlitePool::connect(&db_url).await.unwrap();
    let documents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM documents")
        .fetch_one(&db)
        .await
        .unwrap();
    let journal: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM upload_journal")
        .fetch_one(&db)
        .await
        .unwrap();
    db.close().await;
    assert_eq!((documents, journal), (1, 0));
    assert_eq!(
        second.emulator().stats().await.stored_files(),
        1,
        "only the complete upload is stored"
    );
    second.stop().await;
}

/// Makes every insert into `documents` of the SQLite file in `dir` take
/// seconds (a trigger that counts to 50 million), so the process can be
/// killed while it records a document.
async fn slow_document_inserts(dir: &std::path::Path) -> sqlx::SqlitePool {
    let db_url = format!("sqlite://{}/filegate.db", dir.display());
    let db = sqlx::SqlitePool::connect(&db_url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TRIGGER slow_documents BEFORE INSERT ON documents BEGIN \
         SELECT count(*) FROM (WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL \
         SELECT x + 1 FROM n WHERE x < 50000000) SELECT x FROM n); END;",
    )
    .execute(&db)
    .await
    .unwrap();
    db
}

/// Starts an upload of one small message and kills the gateway once
/// Filestack has completed it (the gateway is then recording its row).
async fn kill_after_complete(gateway: &mut ServedGateway, emulator: &TestEmulator) {
    let mut client = gateway.client().await;
    let message = support::rpc::first_message(spec("crash.bin", None), b"completed, no row");
    let request = gateway.request("alice", tokio_stream::iter(vec![message]));
    let call = tokio::spawn(async move { client.upload(request).await });
    poll_until(
        Duration::from_secs(20),
        "Filestack stored the file",
        || async { emulator.stats().await.stored_files() == 1 },
    )
    .await;
    gateway.child.start_kill().unwrap();
    gateway.child.wait().await.unwrap();
    assert!(
        call.await.unwrap().is_err(),
        "the call died with the gateway"
    );
}

/// The journal entries `(completing_at set, complete_request set, handle)`.
async fn journal(db: &sqlx::SqlitePool) -> Vec<(bool, bool, Option<String>)> {
    sqlx::query_as::<_, (Option<i64>, Option<String>, Option<String>)>(
        "SELECT completing_at, complete_request, handle FROM upload_journal",
    )
    .fetch_all(db)
    .await
    .unwrap()
    .into_iter()
    .map(|(at, request, handle)| (at.is_some(), request.is_some(), handle))
    .collect()
}

#[tokio::test]
async fn a_gateway_killed_between_complete_and_its_row_leaves_a_file_the_restart_deletes() {
    // Filestack (the emulator, in this process) outlives the gateway and
    // answers a repeated complete with the file it stored.
    let emulator = TestEmulator::start().await;
    emulator.set_repeated_complete("same_file").await;
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_filegate");
    let mut first = ServedGateway::start_against(bin, dir.path(), SECRET, &emulator, |command| {
        command.args(MULTIPART);
    })
    .await;
    let db = slow_document_inserts(dir.path()).await;
    kill_after_complete(&mut first, &emulator).await;
    assert_eq!(
        journal(&db).await,
        [(true, true, None)],
        "the entry names the upload and holds its complete request"
    );
    sqlx::raw_sql("DROP TRIGGER slow_documents")
        .execute(&db)
        .await
        .unwrap();

    let grace = ["--upload-journal-grace-secs", "0"];
    let second = ServedGateway::start_against(bin, dir.path(), SECRET, &emulator, |command| {
        command.args(grace).args(MULTIPART);
    })
    .await;
    // The reaper runs before the gRPC server serves: once a call is
    // answered, complete sent again has named the file, which has no
    // document, and the file is deleted.
    let page = second.list_documents("alice", 10, "").await.unwrap();
    assert!(page.documents.is_empty());
    assert_eq!(
        emulator.stats().await.stored_files(),
        0,
        "the file is deleted"
    );
    assert!(journal(&db).await.is_empty());
    db.close().await;
    second.stop().await;
}

#[tokio::test]
async fn a_file_filestack_will_not_name_after_a_crash_is_deleted_when_its_webhook_arrives() {
    // Filestack answers a repeated complete with 404; its fp.upload webhook
    // reaches the restarted gateway.
    named_by_its_webhook_after_a_crash(&MULTIPART).await;
}

#[tokio::test]
async fn a_small_file_stored_before_a_crash_is_deleted_when_its_webhook_arrives() {
    // A store cannot be sent again: only its fp.upload webhook names it.
    named_by_its_webhook_after_a_crash(&[]).await;
}

async fn named_by_its_webhook_after_a_crash(extra: &[&str]) {
    let emulator = TestEmulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_filegate");
    const WEBHOOK_SECRET: &str = "crash-test-webhook-secret";
    let webhook = ["--filestack-webhook-secret", WEBHOOK_SECRET];
    let mut first = ServedGateway::start_against(bin, dir.path(), SECRET, &emulator, |command| {
        command.args(webhook).args(extra);
    })
    .await;
    let db = slow_document_inserts(dir.path()).await;
    kill_after_complete(&mut first, &emulator).await;
    sqlx::raw_sql("DROP TRIGGER slow_documents")
        .execute(&db)
        .await
        .unwrap();
    let second = ServedGateway::start_against(bin, dir.path(), SECRET, &emulator, |command| {
        command
            .args(webhook)
            .args(extra)
            .args(["--upload-journal-grace-secs", "0"]);
    })
    .await;
    // Once a call is answered, the reaper has sent complete again and got
    // 404 (or, for a store, had nothing to send): the entry waits without
    // a request.
    second.list_documents("alice", 10, "").await.unwrap();
    assert_eq!(journal(&db).await, [(true, false, None)]);
    assert_eq!(emulator.stats().await.stored_files(), 1);
    let files = emulator.files().await;
    let (handle, key) = &files[0];
    let body = support::gateway::delivery(
        "crash-1",
        "fp.upload",
        serde_json::json!({"url": format!("https://cdn.filestackcontent.com/{handle}"), "key": key}),
    );
    let timestamp = support::unix_now().to_string();
    let secret = filegate::secret::Secret::new(WEBHOOK_SECRET);
    let signature = filegate::filestack::webhook::sign(&secret, &timestamp, body.as_bytes());
    let http = reqwest::Client::new();
    let status = support::gateway::post_webhook(
        &http,
        &second.http_url,
        body.as_bytes(),
        Some(&timestamp),
        Some(&signature),
    )
    .await;
    assert_eq!(status, 200);
    poll_until(
        Duration::from_secs(20),
        "the reaper deleted the file",
        || async { emulator.stats().await.stored_files() == 0 && journal(&db).await.is_empty() },
    )
    .await;
    db.close().await;
    second.stop().await;
}
