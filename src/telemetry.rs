//! Logs and traces.
//!
//! Logs: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), JSON
//! lines when `FILEGATE_LOG_FORMAT=json`.
//!
//! Traces (`serve` only): OpenTelemetry spans exported over OTLP, on when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
//! set (and neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none`
//! says otherwise). The exporter reads the standard variables itself:
//! `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the default, or `grpc`),
//! `_HEADERS`, `_TIMEOUT`, `_COMPRESSION`, their `_TRACES_` forms;
//! `OTEL_TRACES_SAMPLER`(`_ARG`), `OTEL_BSP_*`, `OTEL_SERVICE_NAME` (default
//! `filegate`) and `OTEL_RESOURCE_ATTRIBUTES` are honoured too.
//!
//! Each RPC is a server span ([`rpc_span`], opened by the RPC layer) that
//! continues the caller's W3C `traceparent`; each request to Filestack a
//! client span ([`filestack_span`]) whose context goes onward in the
//! request's `traceparent`; database statements are events on the span that
//! ran them (sqlx's `sqlx::query` events). Log lines inside an RPC carry its
//! `trace_id` (the caller's, even when traces are not exported).
//!
//! Header values (`OTEL_EXPORTER_OTLP_HEADERS` often holds an API key) are
//! handed to the exporter and never logged.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Key, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing::{Span, field};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, FilterFn, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Whether spans are exported: set once, by [`init`].
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// What [`init`] set up; [`Telemetry::shutdown`] sends the spans still
/// queued.
#[must_use = "shut it down at exit, or the last spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Where spans go, for the start-up banner: `None` when not exported.
    pub fn traces_destination(&self) -> Option<String> {
        self.provider.as_ref().map(|_| exporter_summary())
    }

    /// Exports the spans still queued (within the exporter's timeout) and
    /// stops the exporter. Blocks: call it off the async workers.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "traces: the last spans could not be exported");
        }
    }
}

/// Sets up logging, and with `traces` the span exporter the environment
/// asks for. Must run inside the Tokio runtime (the gRPC exporter's
/// connection lives there). A second call (tests starting several servers)
/// keeps the first subscriber and exports nothing.
pub fn init(traces: bool) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("FILEGATE_LOG_FORMAT").is_ok_and(|f| f == "json");
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let logs = if json {
        logs.json().with_filter(filter).boxed()
    } else {
        logs.with_filter(filter).boxed()
    };
    let provider = if traces && traces_configured() {
        Some(tracer_provider()?)
    } else {
        None
    };
    let spans = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("filegate"))
            .with_location(false)
            .with_threads(false)
            .with_filter(span_filter())
    });
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .is_ok();
    if !installed {
        return Ok(Telemetry { provider: None });
    }
    EXPORTING.store(provider.is_some(), Ordering::Relaxed);
    Ok(Telemetry { provider })
}

/// What becomes part of a trace: the gateway's spans (the RPC, Filestack
/// requests, upload parts: `debug` and above) with the events at `info`
/// and above logged inside them, other crates' warnings, and each database
/// statement (sqlx logs them at `debug`). The embedded emulator stands for
/// Filestack, which is not part of the gateway's traces. Decided once per
/// callsite.
fn span_filter() -> FilterFn {
    filter_fn(|metadata| {
        let target = metadata.target();
        let level = *metadata.level();
        if target == "filegate::emulator" || target.starts_with("filegate::emulator::") {
            false
        } else if target == "sqlx::query" {
            level <= Level::DEBUG
        } else if target == "filegate" || target.starts_with("filegate::") {
            level
                <= if metadata.is_span() {
                    Level::DEBUG
                } else {
                    Level::INFO
                }
        } else {
            level <= Level::WARN
        }
    })
}

/// Whether the environment asks for traces.
fn traces_configured() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|value| !value.trim().is_empty());
    let endpoint = set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let disabled =
        std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let exporter_none = std::env::var("OTEL_TRACES_EXPORTER")
        .is_ok_and(|v| v.split(',').any(|e| e.trim().eq_ignore_ascii_case("none")));
    endpoint && !disabled && !exporter_none
}

/// The provider: batches spans and exports them on a thread of its own.
fn tracer_provider() -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .build()
        .map_err(|error| anyhow::anyhow!("OTLP trace exporter: {error}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build())
}

/// `service.name` from `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES`,
/// else `filegate`; `service.version` the crate's.
fn resource() -> Resource {
    let service_name = Key::from_static_str("service.name");
    let named = Resource::builder()
        .build()
        .get(&service_name)
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    let builder = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if named {
        builder.build()
    } else {
        builder.with_service_name("filegate").build()
    }
}

/// The protocol and endpoint spans go to (never the headers). A protocol
/// other than `grpc` (`http/json` is not built in) is `http/protobuf`, as
/// the exporter falls back to it.
fn exporter_summary() -> String {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let asked =
        var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
    let grpc = asked.is_some_and(|protocol| protocol.trim().eq_ignore_ascii_case("grpc"));
    let protocol = if grpc { "grpc" } else { "http/protobuf" };
    let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .unwrap_or_default();
    format!("OTLP {protocol} to {endpoint}")
}

/// Whether spans are exported.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The span of one RPC of `service`, named `name` (`service/method`, as
/// the gRPC path names it), continuing the trace of the caller's
/// `traceparent` (in `headers`). Fields the handlers record (`owner`,
/// `document_id`, ...) are declared here; [`rpc_ended`] records how it
/// ended.
pub fn rpc_span(name: &str, service: &str, method: &str, headers: &http::HeaderMap) -> Span {
    let span = tracing::info_span!(
        "rpc",
        rpc = method,
        trace_id = field::Empty,
        connection = field::Empty,
        owner = field::Empty,
        document_id = field::Empty,
        upload_id = field::Empty,
        handle = field::Empty,
        otel.name = field::Empty,
        otel.kind = field::Empty,
        otel.status_code = field::Empty,
        rpc.grpc.status_code = field::Empty,
    );
    // Most calls carry no traceparent: nothing to parse then.
    let parent = headers
        .contains_key("traceparent")
        .then(|| TraceContextPropagator::new().extract(&HeaderExtractor(headers)));
    if exporting() {
        span.record("otel.name", name);
        span.record("otel.kind", "server");
        if let Some(parent) = parent {
            let _ = span.set_parent(parent);
        }
        span.set_attribute("rpc.system", "grpc");
        span.set_attribute("rpc.service", service.to_owned());
        span.set_attribute("rpc.method", method.to_owned());
        let trace_id = span.context().span().span_context().trace_id();
        span.record("trace_id", field::display(trace_id));
    } else if let Some(parent) = parent
        && parent.span().span_context().is_valid()
    {
        let trace_id = parent.span().span_context().trace_id();
        span.record("trace_id", field::display(trace_id));
    }
    span
}

/// Records the gRPC status an RPC ended with on its span: server-side
/// failures (the ones OpenTelemetry's gRPC conventions count as errors)
/// mark the span as failed.
/// Nothing is recorded when spans are not exported: no log line follows
/// the end of a call.
pub fn rpc_ended(span: &Span, code: tonic::Code) {
    if !exporting() {
        return;
    }
    span.record("rpc.grpc.status_code", code as i64);
    use tonic::Code::*;
    let server_fault = matches!(
        code,
        Unknown | DeadlineExceeded | Unimplemented | Internal | Unavailable | DataLoss
    );
    if server_fault {
        span.record("otel.status_code", "error");
    }
}

/// The span of one request to Filestack (`route` as the metrics name it).
/// Sending it inside this span, with [`inject_context`] on its headers,
/// makes it a child of the RPC in the trace.
pub fn filestack_span(route: &'static str, method: &http::Method) -> Span {
    let span = tracing::info_span!(
        "filestack",
        route,
        otel.name = field::Empty,
        otel.kind = field::Empty,
        otel.status_code = field::Empty,
        http.request.method = field::Empty,
        http.response.status_code = field::Empty,
    );
    if exporting() {
        let name = format!("{method} {route}");
        span.record("otel.name", name.as_str());
        span.record("otel.kind", "client");
        span.record("http.request.method", method.as_str());
    }
    span
}

/// Records a Filestack answer's status (or a transport failure) on its span.
pub fn filestack_answered(span: &Span, status: Option<u16>) {
    if !exporting() {
        return;
    }
    match status {
        Some(status) => {
            span.record("http.response.status_code", i64::from(status));
            if status >= 500 {
                span.record("otel.status_code", "error");
            }
        }
        None => {
            span.record("otel.status_code", "error");
        }
    }
}

/// Writes the current span's context into `headers` as `traceparent` (and
/// `tracestate`), when spans are exported.
pub fn inject_context(headers: &mut http::HeaderMap) {
    if !exporting() {
        return;
    }
    let context = Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Longest `tracestate` sent on to Filestack: the 512 characters W3C Trace
/// Context asks every vendor to propagate. A caller's longer one (up to 32
/// members of 256 characters each) is not forwarded, so that it cannot make
/// the gateway's requests to Filestack too large to be served.
const MAX_TRACESTATE: usize = 512;

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if key.eq_ignore_ascii_case("tracestate") && value.len() > MAX_TRACESTATE {
            return;
        }
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{HeaderExtractor, TraceContextPropagator};
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TraceContextExt;

    #[test]
    fn a_w3c_traceparent_is_read_from_grpc_metadata() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let context = TraceContextPropagator::new().extract(&HeaderExtractor(&headers));
        let span = context.span();
        let remote = span.span_context();
        assert!(remote.is_valid() && remote.is_remote() && remote.is_sampled());
        assert_eq!(
            remote.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(remote.span_id().to_string(), "00f067aa0ba902b7");
    }

    #[test]
    fn a_callers_tracestate_goes_on_only_within_512_characters() {
        use super::HeaderInjector;
        use opentelemetry::propagation::Injector;
        let short = "vendor=abc,other=xyz".to_owned();
        let long = (0..32)
            .map(|i| format!("k{i}={}", "v".repeat(100)))
            .collect::<Vec<_>>()
            .join(",");
        let mut headers = http::HeaderMap::new();
        HeaderInjector(&mut headers).set("traceparent", "00-ab-cd-01".to_owned());
        HeaderInjector(&mut headers).set("tracestate", long);
        assert!(headers.contains_key("traceparent"));
        assert!(!headers.contains_key("tracestate"), "too long to forward");
        HeaderInjector(&mut headers).set("tracestate", short.clone());
        assert_eq!(headers["tracestate"], short.as_str());
    }

    #[test]
    fn a_malformed_traceparent_starts_no_trace() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let mut headers = http::HeaderMap::new();
            headers.insert("traceparent", bad.parse().unwrap());
            let context = TraceContextPropagator::new().extract(&HeaderExtractor(&headers));
            assert!(!context.span().span_context().is_valid(), "{bad}");
        }
    }
}
