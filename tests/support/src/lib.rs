//! The harness of filegate's integration tests (`tests/gateway`,
//! `tests/emulator`, `tests/filestack`): the real gateway and the real
//! emulator on port 0, typed calls to them, and the bytes, tokens and
//! databases the tests need.
//!
//! - [`gateway::TestGateway`]: the gateway in-process, on a fresh database.
//! - [`rpc::Rpc`]: one typed helper per RPC, as a given user.
//! - [`emulator::TestEmulator`]: an emulator (started here, or a gateway's
//!   embedded one) with its faults, statistics and HTTP protocol.
//! - [`process::ServedGateway`]: `filegate serve` as a child process.
//! - [`postgres`]: databases on a PostgreSQL server, and when tests skip.
//! - [`auth`], [`content`]: tokens, test bytes, images and digests.
//! - [`frames`]: gRPC's message framing, for calls made by hand.
//! - [`otlp::OtlpReceiver`]: an OpenTelemetry collector's trace receiver.

use std::time::Duration;

pub mod auth;
pub mod content;
pub mod emulator;
pub mod frames;
pub mod gateway;
pub mod otlp;
pub mod postgres;
pub mod process;
pub mod rpc;

pub const MIB: usize = 1024 * 1024;

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Awaits `done` every 10 ms until it holds, for at most `limit`.
pub async fn poll_until<F, Fut>(limit: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let wait = async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(limit, wait)
        .await
        .unwrap_or_else(|_| panic!("{what} in time"));
}
