//! An OTLP trace receiver on port 0, as a collector would run it: OTLP/HTTP
//! (`POST /v1/traces`, protobuf) on one port, OTLP/gRPC
//! (`TraceService/Export`) on another. It decodes what it receives and
//! keeps the spans and the request headers, for tests to read.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// One span as received, ids in lowercase hex.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// OTLP's `SpanKind`: 2 server, 3 client.
    pub kind: i32,
    /// OTLP's status code: 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    pub attributes: BTreeMap<String, String>,
    /// Each event's name and attributes.
    pub events: Vec<(String, BTreeMap<String, String>)>,
    /// The resource's `service.name`.
    pub service_name: String,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Received {
    spans: Mutex<Vec<ReceivedSpan>>,
    headers: Mutex<Vec<HeaderMap>>,
    arrived: Notify,
}

impl Received {
    fn take(&self, request: ExportTraceServiceRequest, headers: HeaderMap) {
        let mut spans = Vec::new();
        for resource_spans in request.resource_spans {
            let resource = resource_spans.resource.unwrap_or_default();
            let service_name = attributes(&resource.attributes)
                .remove("service.name")
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(ReceivedSpan {
                        trace_id: hex::encode(&span.trace_id),
                        span_id: hex::encode(&span.span_id),
                        parent_span_id: hex::encode(&span.parent_span_id),
                        name: span.name,
                        kind: span.kind,
                        status_code: span.status.map_or(0, |status| status.code),
                        attributes: attributes(&span.attributes),
                        events: span
                            .events
                            .into_iter()
                            .map(|event| (event.name, attributes(&event.attributes)))
                            .collect(),
                        service_name: service_name.clone(),
                    });
                }
            }
        }
        self.spans.lock().expect("spans").extend(spans);
        self.headers.lock().expect("headers").push(headers);
        self.arrived.notify_waiters();
    }
}

/// Attributes as text: strings as they are, other values as Rust prints them.
fn attributes(pairs: &[KeyValue]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|pair| (pair.key.clone(), value_text(pair.value.as_ref())))
        .collect()
}

fn value_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
        Some(any_value::Value::DoubleValue(number)) => number.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// The receiver, serving until dropped.
pub struct OtlpReceiver {
    /// Base URL of OTLP/HTTP (the exporter appends `/v1/traces`).
    pub http_url: String,
    /// URL of OTLP/gRPC.
    pub grpc_url: String,
    received: Arc<Received>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct GrpcReceiver(Arc<Received>);

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = request.metadata().clone().into_headers();
        self.0.take(request.into_inner(), headers);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl OtlpReceiver {
    pub async fn start() -> OtlpReceiver {
        let received = Arc::new(Received::default());
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let http_url = format!("http://{}", http.local_addr().expect("address"));
        let state = received.clone();
        let routes = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| async move {
                match ExportTraceServiceRequest::decode(body) {
                    Ok(request) => {
                        state.take(request, headers);
                        let answer = ExportTraceServiceResponse::default().encode_to_vec();
                        (StatusCode::OK, answer)
                    }
                    Err(_) => (StatusCode::BAD_REQUEST, Vec::new()),
                }
            }),
        );
        let http_task = tokio::spawn(async move {
            let _ = axum::serve(http, routes).await;
        });
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let grpc_url = format!("http://{}", grpc.local_addr().expect("address"));
        let service = TraceServiceServer::new(GrpcReceiver(received.clone()));
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(grpc);
        let grpc_task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        OtlpReceiver {
            http_url,
            grpc_url,
            received,
            tasks: vec![http_task, grpc_task],
        }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.spans.lock().expect("spans").clone()
    }

    /// The headers of every export request received so far.
    pub fn request_headers(&self) -> Vec<HeaderMap> {
        self.received.headers.lock().expect("headers").clone()
    }

    /// The spans of `trace_id` once `complete` holds for them; panics after
    /// `patience`.
    pub async fn trace(
        &self,
        trace_id: &str,
        patience: Duration,
        complete: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let wait = async {
            loop {
                let arrived = self.received.arrived.notified();
                let spans: Vec<ReceivedSpan> = self
                    .spans()
                    .into_iter()
                    .filter(|span| span.trace_id == trace_id)
                    .collect();
                if complete(&spans) {
                    return spans;
                }
                arrived.await;
            }
        };
        match tokio::time::timeout(patience, wait).await {
            Ok(spans) => spans,
            Err(_) => {
                let spans: Vec<_> = self
                    .spans()
                    .into_iter()
                    .filter(|span| span.trace_id == trace_id)
                    .collect();
                panic!("trace {trace_id} not complete in {patience:?}: {spans:#?}")
            }
        }
    }
}
