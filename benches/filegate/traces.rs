//! What exporting traces costs: the unary levels alternated between a
//! gateway that exports nothing and one that exports every call's span over
//! OTLP/HTTP with the SDK's default batching, to a collector stand-in here
//! that decodes and counts the spans it receives.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde::Serialize;

use crate::report::paired_levels;
use crate::unary::LevelResult;

/// A collector stand-in on port 0: `POST /v1/traces`, counted.
pub struct Sink {
    pub url: String,
    server_spans: Arc<AtomicU64>,
    spans: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    pub async fn start() -> anyhow::Result<Sink> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (server_spans, spans) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let counts = (server_spans.clone(), spans.clone());
        let routes = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| async move {
                let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                    return (axum::http::StatusCode::BAD_REQUEST, Vec::new());
                };
                let all = request
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .flat_map(|s| &s.spans);
                for span in all {
                    counts.1.fetch_add(1, Ordering::Relaxed);
                    if span.kind == SpanKind::Server as i32 {
                        counts.0.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let answer = ExportTraceServiceResponse::default().encode_to_vec();
                (axum::http::StatusCode::OK, answer)
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, routes).await;
        });
        Ok(Sink {
            url,
            server_spans,
            spans,
            task,
        })
    }

    /// `(RPC spans, all spans)` received so far.
    pub fn received(&self) -> (u64, u64) {
        (
            self.server_spans.load(Ordering::Relaxed),
            self.spans.load(Ordering::Relaxed),
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TracesResult {
    /// Each level: (traces exported, nothing exported), medians.
    pub levels: Vec<(LevelResult, LevelResult)>,
    /// Calls made to the exporting gateway.
    pub calls: u64,
    /// RPC (server) spans the collector received from it.
    pub rpc_spans: u64,
    /// All its spans (Filestack requests and upload parts included).
    pub spans: u64,
}

const TABLE_HEADER: &str = "| RPC (row cache on), traces exported vs not, alternated, medians of 3 | concurrency | req/s exported | req/s not | ratio | p99 ms exported | p99 ms not |";

impl TracesResult {
    pub fn table(&self) -> String {
        let mut out = paired_levels(TABLE_HEADER, &self.levels);
        out.push_str(&format!(
            "\nTraces: {} calls to the exporting gateway, {} RPC spans received ({:.1} %), {} spans in all\n",
            self.calls,
            self.rpc_spans,
            100.0 * self.rpc_spans as f64 / self.calls.max(1) as f64,
            self.spans
        ));
        out
    }
}
