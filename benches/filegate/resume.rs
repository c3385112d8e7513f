//! Section 6: what a broken stream costs a resumable upload. Side by side,
//! alternated on one gateway: a plain 256 MiB Upload, and a resumable one
//! (StartUpload) whose first stream is reset halfway, then QueryUpload and
//! a second stream from the persisted offset. Medians.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use filegate::pb::v1::{self as pb, upload_request};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::procs::progress;
use crate::report::median;
use crate::uploads::{self, GatewayClient, Payload};

/// Medians of one size, seconds per upload.
#[derive(Debug, Clone, Serialize)]
pub struct ResumeResult {
    pub size_mib: usize,
    pub plain_seconds: f64,
    pub broken_once_seconds: f64,
    /// Bytes sent again after the break (median), MiB.
    pub resent_mib: f64,
    pub runs: usize,
}

impl ResumeResult {
    pub fn line(&self) -> String {
        format!(
            "Resumable {} MiB broken once at 50 %: {:.2} s against {:.2} s unbroken ({:.2}x), {:.1} MiB sent again (median of {})\n",
            self.size_mib,
            self.broken_once_seconds,
            self.plain_seconds,
            self.broken_once_seconds / self.plain_seconds,
            self.resent_mib,
            self.runs
        )
    }
}

/// Runs the section on `client`'s gateway.
pub async fn run(
    client: &mut GatewayClient,
    payload: &Payload,
    size: usize,
    runs: usize,
) -> anyhow::Result<ResumeResult> {
    let (mut plain, mut broken, mut resent) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..=runs {
        let a = uploads::through_gateway(client, payload, size).await?;
        let (b, again) = broken_once(client, payload, size).await?;
        if run > 0 {
            plain.push(a.as_secs_f64());
            broken.push(b.as_secs_f64());
            resent.push(again as f64 / (1 << 20) as f64);
        }
    }
    let result = ResumeResult {
        size_mib: size >> 20,
        plain_seconds: median(&plain),
        broken_once_seconds: median(&broken),
        resent_mib: median(&resent),
        runs,
    };
    progress(result.line().trim_end());
    Ok(result)
}

/// One resumable upload whose first stream is reset after half the file;
/// the time, and the bytes sent again.
async fn broken_once(
    client: &mut GatewayClient,
    payload: &Payload,
    size: usize,
) -> anyhow::Result<(Duration, u64)> {
    let chunks = payload.chunks(size);
    let started = Instant::now();
    let spec = pb::UploadSpec {
        filename: "resumed.bin".to_owned(),
        content_type: "application/octet-stream".to_owned(),
        size_bytes: Some(size as i64),
        ..Default::default()
    };
    let request = client.request(pb::StartUploadRequest { spec: Some(spec) });
    let id = client
        .raw()
        .start_upload(request)
        .await?
        .into_inner()
        .upload_id;

    // The first stream: half the file, then the call is reset.
    let (tx, rx) = mpsc::channel(2);
    let request = client.request(ReceiverStream::new(rx));
    let mut first = client.clone();
    let call = tokio::spawn(async move { first.raw().upload(request).await });
    let half = chunks.len() / 2;
    let mut sent = 0u64;
    for (n, data) in chunks.iter().take(half).enumerate() {
        let message = message(&id, n == 0, 0, data.clone());
        sent += data.len() as u64;
        if tx.send(message).await.is_err() {
            break;
        }
    }
    call.abort();
    drop(tx);

    // Where it stands, then the rest. Parts that were uploading when the
    // stream broke may still be recorded: a refused offset names the
    // persisted size to resume from.
    let request = client.request(pb::QueryUploadRequest {
        upload_id: id.clone(),
    });
    let mut persisted = client
        .raw()
        .query_upload(request)
        .await?
        .into_inner()
        .persisted_bytes as u64;
    let response = loop {
        let messages: Vec<pb::UploadRequest> = rest_of(&chunks, persisted)
            .into_iter()
            .enumerate()
            .map(|(n, data)| message(&id, n == 0, persisted, data))
            .collect();
        let request = client.request(futures_util::stream::iter(messages));
        match client.raw().upload(request).await {
            Ok(response) => break response.into_inner(),
            Err(status) if status.code() == tonic::Code::OutOfRange => {
                persisted = persisted_in(&status).context("persisted_bytes in the error")?;
            }
            Err(status) => return Err(status.into()),
        }
    };
    let elapsed = started.elapsed();
    let document = response.document.context("the second stream finished it")?;
    anyhow::ensure!(
        document.size_bytes == size as i64,
        "stored {} bytes",
        document.size_bytes
    );
    client.delete(&document.id).await?;
    Ok((elapsed, sent.saturating_sub(persisted)))
}

/// The persisted size an OFFSET_NOT_PERSISTED refusal names.
fn persisted_in(status: &tonic::Status) -> Option<u64> {
    use tonic_types::StatusExt;
    let info = status.get_error_details().error_info().cloned()?;
    info.metadata.get("persisted_bytes")?.parse().ok()
}

fn message(id: &str, first: bool, offset: u64, data: Bytes) -> pb::UploadRequest {
    pb::UploadRequest {
        first_message: first.then(|| upload_request::FirstMessage::UploadId(id.to_owned())),
        write_offset: if first { offset as i64 } else { 0 },
        data,
    }
}

/// The chunks from byte `offset` on.
fn rest_of(chunks: &[Bytes], offset: u64) -> Vec<Bytes> {
    let mut skip = offset as usize;
    let mut rest = Vec::new();
    for chunk in chunks {
        if skip >= chunk.len() {
            skip -= chunk.len();
            continue;
        }
        rest.push(chunk.slice(skip..));
        skip = 0;
    }
    rest
}
