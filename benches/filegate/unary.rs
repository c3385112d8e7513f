//! A closed-loop load generator for unary RPCs: `concurrency` workers
//! spread over a few HTTP/2 connections, each sending its next request when
//! the previous one is answered, for a fixed time or a bounded count.

use std::time::{Duration, Instant};

use filegate::pb::v1 as pb;
use serde::Serialize;

use crate::uploads::GatewayClient;

/// The unary RPCs measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Rpc {
    /// Authenticates and nothing else: the ceiling of the stack.
    WhoAmI,
    /// Reads a document row and signs a URL.
    SignedUrl,
    /// Reads a document row.
    GetDocument,
}

/// Most requests one worker sends at one level (bounds memory and time).
const MAX_REQUESTS_PER_WORKER: usize = 200_000;

/// What one RPC did at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct LevelResult {
    pub rpc: Rpc,
    pub concurrency: usize,
    /// Whether the gateway kept document rows in its cache.
    pub row_cache: bool,
    pub requests: usize,
    pub errors: usize,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The gateway and documents one level runs against.
pub struct Target<'a> {
    /// One client per connection; worker `i` uses connection
    /// `i % clients.len()`.
    pub clients: &'a [GatewayClient],
    /// The caller's documents; each worker walks through all of them,
    /// starting at its own offset.
    pub documents: &'a [String],
    /// Whether the gateway runs with its document row cache.
    pub row_cache: bool,
}

/// Runs `rpc` at `concurrency` for `duration` against `target`.
pub async fn run_level(
    target: &Target<'_>,
    rpc: Rpc,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<LevelResult> {
    let clients = target.clients;
    anyhow::ensure!(!clients.is_empty(), "no connection");
    anyhow::ensure!(!target.documents.is_empty(), "no document");
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let client = clients[worker % clients.len()].clone();
        let mut documents = target.documents.to_vec();
        documents.rotate_left(worker % target.documents.len());
        workers.spawn(async move { work(client, rpc, documents, deadline).await });
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    while let Some(joined) = workers.join_next().await {
        let (worker_latencies, worker_errors) = joined?;
        latencies.extend(worker_latencies);
        errors += worker_errors;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Ok(LevelResult {
        rpc,
        concurrency,
        row_cache: target.row_cache,
        requests: latencies.len(),
        errors,
        seconds,
        requests_per_second: latencies.len() as f64 / seconds,
        p50_ms: percentile_ms(&latencies, 0.50),
        p99_ms: percentile_ms(&latencies, 0.99),
    })
}

/// One worker: latencies (µs) of its successful calls, and its error count.
async fn work(
    mut client: GatewayClient,
    rpc: Rpc,
    documents: Vec<String>,
    deadline: Instant,
) -> (Vec<u32>, usize) {
    let mut latencies = Vec::with_capacity(4096);
    let mut errors = 0;
    let mut next = documents.iter().cycle();
    while latencies.len() + errors < MAX_REQUESTS_PER_WORKER && Instant::now() < deadline {
        let document_id = next.next().expect("documents is not empty");
        let started = Instant::now();
        let ok = call(&mut client, rpc, document_id).await;
        let micros = started.elapsed().as_micros();
        if ok {
            latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
        } else {
            errors += 1;
        }
    }
    (latencies, errors)
}

async fn call(client: &mut GatewayClient, rpc: Rpc, document_id: &str) -> bool {
    match rpc {
        Rpc::WhoAmI => {
            let request = client.request(pb::WhoAmIRequest {});
            client.raw().who_am_i(request).await.is_ok()
        }
        Rpc::SignedUrl => {
            let request = client.request(pb::SignedUrlRequest {
                document_id: document_id.to_owned(),
                ttl: None,
            });
            client.raw().signed_url(request).await.is_ok()
        }
        Rpc::GetDocument => {
            let request = client.request(pb::GetDocumentRequest {
                document_id: document_id.to_owned(),
            });
            client.raw().get_document(request).await.is_ok()
        }
    }
}

/// The `q` quantile of sorted microsecond latencies, in milliseconds
/// (nearest rank).
pub fn percentile_ms(sorted_micros: &[u32], q: f64) -> f64 {
    if sorted_micros.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted_micros.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_micros.len()) - 1;
    f64::from(sorted_micros[index]) / 1000.0
}
