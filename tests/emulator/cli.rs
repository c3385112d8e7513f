//! `filegate emulator` as a process: the stdout line scripts parse, SIGTERM,
//! and `--help` that never shows a secret.

use std::process::Stdio;

use support::process::terminate;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_filegate");

#[tokio::test]
async fn the_emulator_prints_its_url_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["emulator", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("FILESTACK_APP_SECRET", "cli-secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next_line().await.unwrap().unwrap();
    let url = line
        .strip_prefix("filegate emulator listening on http://127.0.0.1:")
        .map(|port| format!("http://127.0.0.1:{port}"))
        .unwrap_or_else(|| panic!("unexpected first line: {line}"));
    let stats = reqwest::get(format!("{url}/_emulator/stats"))
        .await
        .unwrap();
    assert_eq!(stats.status(), 200);
    let status = terminate(&mut child).await;
    assert!(status.success(), "exit status {status}");
    assert_eq!(lines.next_line().await.unwrap(), None, "one line on stdout");
}

#[tokio::test]
async fn help_shows_no_secret_values() {
    let output = Command::new(BIN)
        .args(["emulator", "--help"])
        .env("FILESTACK_APP_SECRET", "app-secret-value-42")
        .env("FILESTACK_WEBHOOK_SECRET", "hook-secret-value-42")
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("--app-secret"), "{help}");
    assert!(help.contains("FILEGATE_EMULATOR_DATA_DIR"), "{help}");
    assert!(!help.contains("value-42"), "{help}");
    assert!(!help.contains("local-app-secret"), "{help}");
}
