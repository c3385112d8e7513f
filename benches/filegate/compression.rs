//! Section 8: what compressed requests cost an upload. Side by side,
//! alternated on one gateway: a 64 MiB Upload uncompressed, gzip-compressed
//! with incompressible bytes (the worst case: all CPU, no saving), and
//! gzip-compressed with text (about 10:1). Medians.

use bytes::Bytes;
use serde::Serialize;
use tonic::codec::CompressionEncoding;

use crate::procs::progress;
use crate::report::median;
use crate::uploads::{self, GatewayClient, Payload};

const SIZE_MIB: usize = 64;

/// Medians, MiB/s of file bytes.
#[derive(Debug, Clone, Serialize)]
pub struct CompressionResult {
    pub size_mib: usize,
    pub identity_mib_s: f64,
    pub gzip_random_mib_s: f64,
    pub gzip_text_mib_s: f64,
    pub runs: usize,
}

impl CompressionResult {
    pub fn line(&self) -> String {
        format!(
            "Upload {} MiB, requests gzip-compressed: {:.0} MiB/s random bytes ({:.2}x of uncompressed {:.0} MiB/s), {:.0} MiB/s text ({:.2}x) (median of {})\n",
            self.size_mib,
            self.gzip_random_mib_s,
            self.gzip_random_mib_s / self.identity_mib_s,
            self.identity_mib_s,
            self.gzip_text_mib_s,
            self.gzip_text_mib_s / self.identity_mib_s,
            self.runs
        )
    }
}

/// Text that compresses about ten to one, `len` bytes of it.
fn text(len: usize) -> Payload {
    let line = b"2026-12-01T02:40:57Z INFO rpc{rpc=\"Upload\" owner=\"bench\"}: upload stored\n";
    let bytes: Vec<u8> = line.iter().copied().cycle().take(len).collect();
    Payload::from(Bytes::from(bytes))
}

/// Runs the section against `grpc_url`.
pub async fn run(
    grpc_url: &str,
    token: &str,
    random: &Payload,
    runs: usize,
) -> anyhow::Result<CompressionResult> {
    let size = SIZE_MIB << 20;
    let text = text(size);
    let mut plain = GatewayClient::connect(grpc_url, token).await?;
    let mut gzip = GatewayClient::connect(grpc_url, token)
        .await?
        .send_compressed(CompressionEncoding::Gzip);
    let (mut identity, mut gzip_random, mut gzip_text) = (Vec::new(), Vec::new(), Vec::new());
    let rate = |elapsed: std::time::Duration| SIZE_MIB as f64 / elapsed.as_secs_f64();
    for run in 0..=runs {
        let a = uploads::through_gateway(&mut plain, random, size).await?;
        let b = uploads::through_gateway(&mut gzip, random, size).await?;
        let c = uploads::through_gateway(&mut gzip, &text, size).await?;
        if run > 0 {
            identity.push(rate(a));
            gzip_random.push(rate(b));
            gzip_text.push(rate(c));
        }
    }
    let result = CompressionResult {
        size_mib: SIZE_MIB,
        identity_mib_s: median(&identity),
        gzip_random_mib_s: median(&gzip_random),
        gzip_text_mib_s: median(&gzip_text),
        runs,
    };
    progress(result.line().trim_end());
    Ok(result)
}
