//! The gateway killed with SIGKILL in mid-upload and started again: the
//! journal lets the restarted process settle what the dead one left, and the
//! database stays consistent with Filestack.

#[path = "support/gateway.rs"]
mod support;

use std::process::Stdio;
use std::time::Duration;

use filegate::pb::v1 as pb;
use filegate::pb::v1::file_gateway_service_client::FileGatewayServiceClient;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use support::{MIB, SERVE_ON_PORT_ZERO};

const SECRET: &str = "crash-test-jwt-secret";

struct Running {
    child: Child,
    grpc: String,
    http: String,
    emulator: String,
}

async fn serve(data_dir: &str, extra: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_filegate"))
        .args(SERVE_ON_PORT_ZERO)
        .args([
            "--data-dir",
            data_dir,
            "--jwt-secret",
            SECRET,
            "--part-size",
            "5242880",
        ])
        .args(extra)
        .env_remove("FILESTACK_API_KEY")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("filegate serve starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let read = async {
        let (mut grpc, mut http) = (String::new(), String::new());
        while let Some(line) = lines.next_line().await.unwrap() {
            for word in line.split_whitespace() {
                if let Some(addr) = word.strip_prefix("grpc=") {
                    grpc = format!("http://{addr}");
                }
                if let Some(addr) = word.strip_prefix("http=") {
                    http = format!("http://{addr}");
                }
            }
            if let Some(rest) = line.strip_prefix("local mode: Filestack emulator at ") {
                let emulator = rest.split(',').next().unwrap().to_owned();
                return (grpc, http, emulator);
            }
        }
        panic!("stdout closed early");
    };
    let (grpc, http, emulator) = tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("started in time");
    Running {
        child,
        grpc,
        http,
        emulator,
    }
}

fn authed<T>(message: T) -> tonic::Request<T> {
    let token = filegate::gateway::auth::mint_hs256(
        &filegate::secret::Secret::new(SECRET),
        "alice",
        Duration::from_secs(600),
    )
    .unwrap();
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn spec(size: usize) -> pb::UploadRequest {
    let spec = pb::UploadSpec {
        filename: "f.bin".into(),
        size_bytes: Some(size as i64),
        ..Default::default()
    };
    pb::UploadRequest {
        first_message: Some(pb::upload_request::FirstMessage::Spec(spec)),
        ..Default::default()
    }
}

fn chunk(len: usize) -> pb::UploadRequest {
    pb::UploadRequest {
        data: vec![7u8; len].into(),
        ..Default::default()
    }
}

async fn active_uploads(http: &str) -> u64 {
    let text = reqwest::get(format!("{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("filegate_uploads_active "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

async fn stored_files(emulator: &str) -> u64 {
    let stats: serde_json::Value = reqwest::get(format!("{emulator}/_emulator/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["stored_files"].as_u64().unwrap()
}

#[tokio::test]
async fn a_gateway_killed_mid_upload_restarts_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let mut first = serve(&data_dir, &[]).await;
    let mut client = FileGatewayServiceClient::connect(first.grpc.clone())
        .await
        .unwrap();
    let kept = client
        .upload(authed(tokio_stream::iter(vec![spec(MIB), chunk(MIB)])))
        .await
        .expect("a complete upload")
        .into_inner()
        .document
        .unwrap();

    let (tx, rx) = mpsc::channel(4);
    let mut upload_client = client.clone();
    let in_flight =
        tokio::spawn(async move { upload_client.upload(authed(ReceiverStream::new(rx))).await });
    tx.send(spec(12 * MIB)).await.unwrap();
    for _ in 0..6 {
        tx.send(chunk(MIB)).await.unwrap();
    }
    let wait = async {
        while active_uploads(&first.http).await != 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("the upload is in flight");

    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();
    assert!(
        in_flight.await.unwrap().is_err(),
        "the killed gateway did not finish the upload"
    );
    drop(tx);

    let mut second = serve(&data_dir, &["--upload-journal-stale-secs", "0"]).await;
    let mut client = FileGatewayServiceClient::connect(second.grpc.clone())
        .await
        .unwrap();
    // The reaper runs before the gRPC server serves.
    let doc = client
        .get_document(authed(pb::GetDocumentRequest {
            document_id: kept.id.clone(),
        }))
        .await
        .unwrap();
    assert_eq!(doc.into_inner().document.unwrap().size_bytes, MIB as i64);

    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}/filegate.db", data_dir))
        .await
        .unwrap();
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
        stored_files(&second.emulator).await,
        1,
        "only the complete upload is stored"
    );

    let pid = second.child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(30), second.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}
