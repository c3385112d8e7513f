//! The gateway killed with SIGKILL in mid-upload and started again: the
//! journal lets the restarted process settle what the dead one left, and the
//! database stays consistent with Filestack.

use std::time::Duration;

use support::MIB;
use support::gateway::scrape_metrics;
use support::poll_until;
use support::process::ServedGateway;
use support::rpc::{Rpc, data_message, messages, spec, spec_message};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const SECRET: &str = "crash-test-jwt-secret";

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
