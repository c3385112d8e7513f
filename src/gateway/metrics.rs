//! Prometheus metrics (prometheus-client), served at `/metrics` on the HTTP
//! listener.
//!
//! Every gRPC call is recorded by one tower layer on the gRPC server
//! ([`GrpcMetricsLayer`]), with the names and labels of go-grpc-prometheus
//! that existing dashboards expect: `grpc_server_started_total`,
//! `grpc_server_handled_total` (with `grpc_code`),
//! `grpc_server_handling_seconds` (a histogram, from the request to the end
//! of the response, streams included), `grpc_server_msg_received_total` and
//! `grpc_server_msg_sent_total`, each labelled `grpc_service`,
//! `grpc_method` and `grpc_type` (`unary`, `client_stream`,
//! `server_stream`, `bidi_stream`). Messages are counted from the gRPC
//! framing as bodies pass, so handlers record nothing. The methods are
//! those of the served services' descriptors (with their `grpc_type`), each
//! resolved to its metrics once at start: a call costs no label hashing,
//! and a path no service has (UNIMPLEMENTED) is recorded as
//! `grpc_service="unknown", grpc_method="unknown"`, so that made-up paths
//! cannot grow the label sets. The gateway's own gauges (`filegate_*`) are
//! read when scraped.
//!
//! The same layer opens each call's span ([`telemetry::rpc_span`]: the
//! caller's trace continued, the fields the handlers record), which ends
//! with the call and carries its status code.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Buf;
use http_body::{Body as HttpBody, Frame, SizeHint};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};
use tracing::{Instrument, Span};

use crate::db::Database;
use crate::filestack::FilestackMetrics;
use crate::gateway::admission::UploadAdmission;
use crate::gateway::error::{complete_foreign_status, not_grpc};
use crate::gateway::listener::Connections;
use crate::{pb, telemetry};

/// go-grpc-prometheus's default buckets (Prometheus's `DefBuckets`), in seconds.
const HANDLING_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The labels of one RPC.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    grpc_service: String,
    grpc_method: String,
    grpc_type: &'static str,
}

/// The labels of one RPC and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandledLabels {
    grpc_service: String,
    grpc_method: String,
    grpc_type: &'static str,
    grpc_code: &'static str,
}

/// The gRPC server's metrics.
#[derive(Debug)]
struct GrpcMetrics {
    started: Family<RpcLabels, Counter>,
    handled: Family<HandledLabels, Counter>,
    handling_seconds: Family<RpcLabels, Histogram>,
    received: Family<RpcLabels, Counter>,
    sent: Family<RpcLabels, Counter>,
}

/// One method's metrics, resolved from the families once.
#[derive(Debug)]
struct MethodMetrics {
    families: Arc<GrpcMetrics>,
    labels: RpcLabels,
    /// `service/method`, the name of its calls' spans.
    span_name: String,
    started: Counter,
    received: Counter,
    sent: Counter,
    handling_seconds: Histogram,
    /// By status code (0..=16), made on first use.
    handled: [OnceLock<Counter>; 17],
}

impl MethodMetrics {
    fn new(families: &Arc<GrpcMetrics>, labels: RpcLabels) -> MethodMetrics {
        MethodMetrics {
            started: families.started.get_or_create(&labels).clone(),
            received: families.received.get_or_create(&labels).clone(),
            sent: families.sent.get_or_create(&labels).clone(),
            handling_seconds: families.handling_seconds.get_or_create(&labels).clone(),
            handled: Default::default(),
            families: families.clone(),
            span_name: format!("{}/{}", labels.grpc_service, labels.grpc_method),
            labels,
        }
    }

    fn handled(&self, code: tonic::Code) -> &Counter {
        self.handled[code as usize].get_or_init(|| {
            let labels = HandledLabels {
                grpc_service: self.labels.grpc_service.clone(),
                grpc_method: self.labels.grpc_method.clone(),
                grpc_type: self.labels.grpc_type,
                grpc_code: code_name(code),
            };
            self.families.handled.get_or_create(&labels).clone()
        })
    }
}

/// Every method of the served services by path, and the metrics of paths
/// that name none.
#[derive(Debug)]
struct Methods {
    by_path: HashMap<String, Arc<MethodMetrics>>,
    unknown: Arc<MethodMetrics>,
}

impl Methods {
    /// The methods of the services in `descriptor_sets` (encoded
    /// `FileDescriptorSet`s).
    fn new(families: &Arc<GrpcMetrics>, descriptor_sets: &[&[u8]]) -> Methods {
        let mut by_path = HashMap::new();
        for method in pb::methods(descriptor_sets) {
            let grpc_type = match (method.client_streaming, method.server_streaming) {
                (false, false) => "unary",
                (true, false) => "client_stream",
                (false, true) => "server_stream",
                (true, true) => "bidi_stream",
            };
            let path = method.path();
            let labels = RpcLabels {
                grpc_service: method.service,
                grpc_method: method.name,
                grpc_type,
            };
            by_path.insert(path, Arc::new(MethodMetrics::new(families, labels)));
        }
        let unknown = RpcLabels {
            grpc_service: "unknown".to_owned(),
            grpc_method: "unknown".to_owned(),
            grpc_type: "unary",
        };
        Methods {
            by_path,
            unknown: Arc::new(MethodMetrics::new(families, unknown)),
        }
    }

    fn get(&self, path: &str) -> &Arc<MethodMetrics> {
        self.by_path.get(path).unwrap_or(&self.unknown)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FetchLabels {
    trigger: &'static str,
    outcome: &'static str,
}

/// What the gateway itself records as it works (cheap to clone: shared).
#[derive(Clone, Debug)]
pub struct GatewayMetrics {
    upload_bytes: Counter,
    admission_wait_seconds: Histogram,
    admission_refusals: Counter,
    webhook_deliveries: Family<OutcomeLabels, Counter>,
    jwks_fetches: Family<FetchLabels, Counter>,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        GatewayMetrics {
            upload_bytes: Counter::default(),
            admission_wait_seconds: Histogram::new(HANDLING_BUCKETS),
            admission_refusals: Counter::default(),
            webhook_deliveries: Family::default(),
            jwks_fetches: Family::default(),
        }
    }
}

impl GatewayMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "filegate_upload_bytes",
            "File bytes received by uploads (before any check).",
            self.upload_bytes.clone(),
        );
        registry.register(
            "filegate_upload_admission_wait_seconds",
            "How long admitted uploads waited for a slot and buffer budget.",
            self.admission_wait_seconds.clone(),
        );
        registry.register(
            "filegate_upload_admission_refusals",
            "Uploads refused after waiting --upload-admission-timeout-secs (RESOURCE_EXHAUSTED).",
            self.admission_refusals.clone(),
        );
        registry.register(
            "filegate_webhook_deliveries",
            "Webhook deliveries by outcome (stored, duplicate, bad_signature, malformed, not_configured, busy, failed, too_slow).",
            self.webhook_deliveries.clone(),
        );
        registry.register(
            "filegate_jwks_fetches",
            "Fetches of the JWT key set (--jwt-jwks-url) by trigger (start, scheduled, unknown_kid) and outcome (ok, failed).",
            self.jwks_fetches.clone(),
        );
    }

    /// `bytes` file bytes arrived in an upload.
    pub fn upload_bytes(&self, bytes: usize) {
        self.upload_bytes.inc_by(bytes as u64);
    }

    /// An upload was admitted after waiting `waited`.
    pub fn admitted(&self, waited: std::time::Duration) {
        self.admission_wait_seconds.observe(waited.as_secs_f64());
    }

    /// An upload was refused admission.
    pub fn refused_admission(&self) {
        self.admission_refusals.inc();
    }

    /// A fetch of the JWT key set, for `trigger`, succeeded or not.
    pub fn jwks_fetch(&self, trigger: &'static str, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.jwks_fetches
            .get_or_create(&FetchLabels { trigger, outcome })
            .inc();
    }

    /// A webhook delivery ended with `outcome`.
    pub fn webhook_delivery(&self, outcome: &'static str) {
        self.webhook_deliveries
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }
}

/// The registry and the metrics recorded into it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    methods: Arc<Methods>,
    /// What the gateway records as it works.
    pub gateway: GatewayMetrics,
    /// What the Filestack client records.
    pub filestack: FilestackMetrics,
}

impl Metrics {
    /// The registry, with the methods of the services in
    /// `descriptor_sets` (encoded `FileDescriptorSet`s).
    pub fn new(descriptor_sets: &[&[u8]]) -> Metrics {
        let mut registry = Registry::default();
        let grpc = Arc::new(GrpcMetrics {
            started: Family::default(),
            handled: Family::default(),
            handling_seconds: Family::new_with_constructor(|| Histogram::new(HANDLING_BUCKETS)),
            received: Family::default(),
            sent: Family::default(),
        });
        registry.register(
            "grpc_server_started",
            "Total number of RPCs started on the server.",
            grpc.started.clone(),
        );
        registry.register(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            grpc.handled.clone(),
        );
        registry.register(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
            grpc.handling_seconds.clone(),
        );
        registry.register(
            "grpc_server_msg_received",
            "Total number of RPC stream messages received on the server.",
            grpc.received.clone(),
        );
        registry.register(
            "grpc_server_msg_sent",
            "Total number of gRPC stream messages sent by the server.",
            grpc.sent.clone(),
        );
        let gateway = GatewayMetrics::default();
        gateway.register(&mut registry);
        let filestack = FilestackMetrics::default();
        filestack.register(&mut registry);
        Metrics {
            registry,
            methods: Arc::new(Methods::new(&grpc, descriptor_sets)),
            gateway,
            filestack,
        }
    }

    /// Reads `sources` at every scrape.
    pub fn register_gauges(&mut self, sources: GaugeSources) {
        self.registry.register_collector(Box::new(sources));
    }

    /// The layer that records every call of the gRPC server.
    pub fn grpc_layer(&self) -> GrpcMetricsLayer {
        GrpcMetricsLayer {
            methods: self.methods.clone(),
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// The gateway's state read at each scrape (no copy kept between scrapes):
/// uploads and their buffer budget, the document cache, the listeners'
/// connections, the database pool.
#[derive(Debug)]
pub struct GaugeSources {
    pub admission: UploadAdmission,
    pub db: Database,
    pub grpc: Connections,
    pub http: Connections,
}

impl Collector for GaugeSources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let admission = self.admission.gauge();
        let cache = self.db.cache_stats();
        let pool = self.db.pool_stats();
        let gauges: [(&str, &str, u64); 11] = [
            (
                "filegate_uploads_active",
                "Uploads in progress.",
                admission.active_uploads as u64,
            ),
            (
                "filegate_upload_buffer_reserved_bytes",
                "Upload buffer budget reserved by uploads in progress.",
                admission.reserved_bytes,
            ),
            (
                "filegate_upload_buffer_budget_bytes",
                "The configured upload buffer budget.",
                admission.budget_bytes,
            ),
            (
                "filegate_document_cache_entries",
                "Document rows in the cache.",
                cache.entries,
            ),
            (
                "filegate_document_cache_live",
                "Whether the document cache serves rows (PostgreSQL: while listening for other replicas' changes).",
                u64::from(cache.live),
            ),
            (
                "filegate_connections_max",
                "Connections each listener holds at most.",
                self.grpc.max() as u64,
            ),
            (
                "filegate_grpc_connections_open",
                "gRPC connections open (in their handshake or served).",
                self.grpc.open() as u64,
            ),
            (
                "filegate_http_connections_open",
                "HTTP connections open (in their handshake or served).",
                self.http.open() as u64,
            ),
            (
                "filegate_db_connections_open",
                "Database connections open in the pool.",
                u64::from(pool.open),
            ),
            (
                "filegate_db_connections_idle",
                "Open database connections not in use.",
                u64::from(pool.idle),
            ),
            (
                "filegate_db_connections_max",
                "The pool's maximum number of connections.",
                u64::from(pool.max),
            ),
        ];
        for (name, help, value) in gauges {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(metric)?;
        }
        let counters: [(&str, &str, u64); 4] = [
            (
                "filegate_document_cache_hits",
                "Document reads served from the cache.",
                cache.hits,
            ),
            (
                "filegate_document_cache_misses",
                "Document reads that went to the database.",
                cache.misses,
            ),
            (
                "filegate_grpc_handshake_timeouts",
                "gRPC connections closed for sending no HTTP/2 preface in time.",
                self.grpc.handshake_timeouts(),
            ),
            (
                "filegate_http_handshake_timeouts",
                "HTTP connections closed for sending no request head in time.",
                self.http.handshake_timeouts(),
            ),
        ];
        for (name, help, value) in counters {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(metric)?;
        }
        Ok(())
    }
}

/// go-grpc-prometheus's name of a status code (grpc-go's `Code.String()`).
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// Records every call of the service it wraps and runs it in its span;
/// see the module docs.
#[derive(Clone, Debug)]
pub struct GrpcMetricsLayer {
    methods: Arc<Methods>,
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> GrpcMetricsService<S> {
        GrpcMetricsService {
            inner,
            methods: self.methods.clone(),
        }
    }
}

/// The service of [`GrpcMetricsLayer`].
#[derive(Clone, Debug)]
pub struct GrpcMetricsService<S> {
    inner: S,
    methods: Arc<Methods>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> Service<http::Request<Body>> for GrpcMetricsService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<http::Response<Body>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if let Some(refused) = not_grpc(request.headers()) {
            return Box::pin(async move { Ok(refused) });
        }
        let method = self.methods.get(request.uri().path()).clone();
        method.started.inc();
        let labels = &method.labels;
        let span = telemetry::rpc_span(
            &method.span_name,
            &labels.grpc_service,
            &labels.grpc_method,
            request.headers(),
        );
        let received = Recorder::Received(method.received.clone());
        let request = request.map(|body| Body::new(Counted::new(body, received)));
        let call = Call {
            method,
            started: Instant::now(),
            recorded: false,
            span: span.clone(),
        };
        let response = span.in_scope(|| self.inner.call(request));
        let answer = async move {
            let response = response.await?;
            let (mut parts, body) = response.into_parts();
            // A trailers-only answer (an error before any message) has its
            // status in the headers.
            if let Some(code) = complete_foreign_status(&mut parts.headers) {
                let mut call = call;
                call.handled(code);
                return Ok(http::Response::from_parts(parts, body));
            }
            let sent = call.method.sent.clone();
            let body = Counted::new(body, Recorder::Sent { sent, call });
            Ok(http::Response::from_parts(parts, Body::new(body)))
        };
        Box::pin(answer.instrument(span))
    }
}

/// One call, recorded as handled once: when its status is known, or, if
/// the response ends without one (the caller went away), as `Canceled`.
#[derive(Debug)]
struct Call {
    method: Arc<MethodMetrics>,
    started: Instant,
    recorded: bool,
    /// The RPC's span: it ends when the call does (its last message sent,
    /// or the call dropped).
    span: Span,
}

impl Call {
    fn handled(&mut self, code: tonic::Code) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        self.method.handled(code).inc();
        telemetry::rpc_ended(&self.span, code);
        self.method
            .handling_seconds
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.handled(tonic::Code::Cancelled);
    }
}

/// What a counted body records.
#[derive(Debug)]
enum Recorder {
    /// Request messages.
    Received(Counter),
    /// Response messages, and the call's status from the trailers.
    Sent { sent: Counter, call: Call },
}

/// A body whose gRPC messages are counted as they pass (the 5-byte frame
/// headers are followed through the data, however it is split).
struct Counted<B> {
    inner: B,
    recorder: Recorder,
    /// Bytes of the current frame header seen so far.
    header: [u8; 5],
    header_len: usize,
    /// Bytes of the current message still to come.
    remaining: u64,
}

impl<B> Counted<B> {
    fn new(inner: B, recorder: Recorder) -> Counted<B> {
        Counted {
            inner,
            recorder,
            header: [0; 5],
            header_len: 0,
            remaining: 0,
        }
    }

    /// Follows the framing through `data`; the messages that began in it.
    fn messages_in(&mut self, mut data: &[u8]) -> u64 {
        let mut began = 0;
        while !data.is_empty() {
            if self.remaining > 0 {
                let skip = data
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.remaining -= skip as u64;
                data = &data[skip..];
                continue;
            }
            let take = (5 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
            self.header_len += take;
            data = &data[take..];
            if self.header_len == 5 {
                self.header_len = 0;
                self.remaining = u64::from(u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]));
                began += 1;
            }
        }
        began
    }
}

impl<B> HttpBody for Counted<B>
where
    B: HttpBody + Unpin,
    B::Data: Buf,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        // A streamed answer's messages are made while its body is polled,
        // after the handler returned: in the call's span, so that what
        // they log (a corrupted read, ...) names the call.
        let entered = match &this.recorder {
            Recorder::Sent { call, .. } => Some(call.span.enter()),
            Recorder::Received(_) => None,
        };
        let mut frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        drop(entered);
        if let (Some(Ok(frame)), Recorder::Sent { call, .. }) = (&mut frame, &mut this.recorder)
            && let Some(trailers) = frame.trailers_mut()
        {
            call.handled(complete_foreign_status(trailers).unwrap_or(tonic::Code::Unknown));
        }
        if let Some(Ok(frame)) = &frame {
            if let Some(data) = frame.data_ref() {
                let messages = this.messages_in(data.chunk());
                if messages > 0 {
                    match &this.recorder {
                        Recorder::Received(counter) => counter.inc_by(messages),
                        Recorder::Sent { sent, .. } => sent.inc_by(messages),
                    };
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_counted_however_the_frames_are_split() {
        let mut stream = Vec::new();
        for len in [0u32, 3, 70_000, 1] {
            stream.push(0);
            stream.extend(len.to_be_bytes());
            stream.extend(std::iter::repeat_n(7, len as usize));
        }
        for split in [1, 2, 5, 6, 4096, stream.len()] {
            let mut counted = Counted::new((), Recorder::Received(Counter::default()));
            let total: u64 = stream.chunks(split).map(|c| counted.messages_in(c)).sum();
            assert_eq!(total, 4, "chunks of {split}");
        }
    }

    #[test]
    fn methods_get_go_grpc_prometheus_labels_from_the_descriptors() {
        let metrics = Metrics::new(&[crate::pb::FILE_DESCRIPTOR_SET]);
        let labels = |path: &str| metrics.methods.get(path).labels.clone();
        let upload = labels("/filegate.v1.FileGatewayService/Upload");
        assert_eq!(
            (
                upload.grpc_service.as_str(),
                upload.grpc_method.as_str(),
                upload.grpc_type
            ),
            ("filegate.v1.FileGatewayService", "Upload", "client_stream")
        );
        assert_eq!(
            labels("/filegate.v1.FileGatewayService/Read").grpc_type,
            "server_stream"
        );
        assert_eq!(
            labels("/filegate.v1.FileGatewayService/WhoAmI").grpc_type,
            "unary"
        );
        for made_up in ["/filegate.v1.FileGatewayService/Nope", "/x/y", "/", ""] {
            assert_eq!(labels(made_up).grpc_method, "unknown", "{made_up:?}");
        }
        assert_eq!(code_name(tonic::Code::Cancelled), "Canceled");
        assert_eq!(code_name(tonic::Code::Ok), "OK");
    }
}
