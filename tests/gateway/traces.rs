//! OpenTelemetry traces of the real `filegate serve` binary, exported to an
//! OTLP receiver started here: a caller's `traceparent` is continued, each
//! RPC is a server span, each Filestack request a client span whose context
//! reached the emulator in its own `traceparent`, database statements are
//! events, log lines carry the trace id; over OTLP/HTTP and OTLP/gRPC, with
//! the configured headers, and the last spans sent at shutdown.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use filegate::pb::v1 as pb;
use rand::RngExt;
use support::MIB;
use support::content::{data, sha256_hex};
use support::otlp::{OtlpReceiver, ReceivedSpan};
use support::process::ServedGateway;
use support::rpc::{Rpc, messages_with_offsets, spec};
use tokio::process::Command;

const PATIENCE: Duration = Duration::from_secs(60);
const JWT_SECRET: &str = "traces-test-jwt-secret-0123456789";

/// OTLP's span kinds.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;

/// A caller's trace: random ids, sampled.
struct CallerTrace {
    trace_id: String,
    span_id: String,
}

impl CallerTrace {
    fn new() -> CallerTrace {
        let mut rng = rand::rng();
        CallerTrace {
            trace_id: hex::encode(rng.random::<[u8; 16]>()),
            span_id: hex::encode(rng.random::<[u8; 8]>()),
        }
    }

    fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }

    /// `message` as alice, in this trace.
    fn request<T>(&self, gw: &ServedGateway, message: T) -> tonic::Request<T> {
        let mut request = gw.request("alice", message);
        let traceparent = self.traceparent().parse().expect("metadata value");
        request.metadata_mut().insert("traceparent", traceparent);
        request
    }
}

async fn serve(dir: &Path, configure: impl FnOnce(&mut Command)) -> ServedGateway {
    let bin = env!("CARGO_BIN_EXE_filegate");
    ServedGateway::start(bin, dir, Some(JWT_SECRET), |command| {
        command
            .args(["--part-size", "5242880"])
            .env("RUST_LOG", "info")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("OTEL_SERVICE_NAME")
            .env_remove("OTEL_SDK_DISABLED");
        configure(command);
    })
    .await
}

/// GetDocument of a document that does not exist, in `caller`'s trace:
/// refused (NOT_FOUND), and logged as `rpc failed`.
async fn refused_in_trace(served: &ServedGateway, caller: &CallerTrace) {
    let missing = pb::GetDocumentRequest {
        document_id: "doc_AAAAAAAAAAAAAAAAAAAAAAAA".into(),
    };
    let request = caller.request(served, missing);
    let refused = served.client().await.get_document(request).await;
    assert!(refused.is_err(), "an unknown document");
}

/// A whole-file Read of `document_id` in `caller`'s trace, started.
async fn read_in_trace(
    served: &ServedGateway,
    caller: &CallerTrace,
    document_id: &str,
) -> tonic::Streaming<pb::ReadResponse> {
    let read = pb::ReadRequest {
        document_id: document_id.to_owned(),
        ..Default::default()
    };
    served
        .client()
        .await
        .read(caller.request(served, read))
        .await
        .expect("the read starts")
        .into_inner()
}

/// Asserts that the refusal's log line among `lines` names `trace_id`.
fn assert_refusal_logged_in(lines: &[String], trace_id: &str) {
    let traced = format!("trace_id={trace_id}");
    assert!(
        lines
            .iter()
            .any(|line| line.contains("rpc failed") && line.contains(&traced)),
        "the refusal's log line carries {traced}:\n{}",
        lines.join("\n")
    );
}

/// The spans of `trace_id` received once the one named `name` is among them.
async fn trace_with(receiver: &OtlpReceiver, trace_id: &str, name: &str) -> Vec<ReceivedSpan> {
    let arrived = |spans: &[ReceivedSpan]| spans.iter().any(|span| span.name == name);
    receiver.trace(trace_id, PATIENCE, arrived).await
}

/// The span named `name`; panics listing the names when there is none.
fn named<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    spans
        .iter()
        .find(|span| span.name == name)
        .unwrap_or_else(|| {
            let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
            panic!("no span {name} among {names:?}")
        })
}

/// Whether `span` descends from the span `ancestor` within `spans`.
fn descends_from(spans: &[ReceivedSpan], span: &ReceivedSpan, ancestor: &str) -> bool {
    let by_id: HashMap<&str, &ReceivedSpan> =
        spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let mut parent = span.parent_span_id.as_str();
    while let Some(next) = by_id.get(parent) {
        if next.span_id == ancestor {
            return true;
        }
        parent = next.parent_span_id.as_str();
    }
    false
}

#[tokio::test]
async fn an_upload_continues_the_callers_trace_with_its_filestack_requests_and_statements() {
    let receiver = OtlpReceiver::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let served = serve(dir.path(), |command| {
        command
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.http_url)
            .env("OTEL_BSP_SCHEDULE_DELAY", "50");
    })
    .await;

    // An upload of three parts, in the caller's trace.
    let caller = CallerTrace::new();
    let bytes = data(11 * MIB);
    let upload_spec = pb::UploadSpec {
        sha256: sha256_hex(&bytes),
        ..spec("traced.bin", Some(bytes.len() as i64))
    };
    let messages = messages_with_offsets(upload_spec, &bytes, MIB);
    let request = caller.request(&served, tokio_stream::iter(messages));
    let document = served
        .client()
        .await
        .upload(request)
        .await
        .expect("upload")
        .into_inner()
        .document
        .expect("a document");

    let upload = "filegate.v1.FileGatewayService/Upload";
    let spans = trace_with(&receiver, &caller.trace_id, upload).await;
    let rpc = named(&spans, upload);
    assert_eq!(
        rpc.parent_span_id, caller.span_id,
        "continues the caller's span"
    );
    assert_eq!(rpc.kind, SERVER);
    assert_eq!(rpc.service_name, "filegate");
    assert_eq!(rpc.attribute("rpc.system"), Some("grpc"));
    assert_eq!(
        rpc.attribute("rpc.service"),
        Some("filegate.v1.FileGatewayService")
    );
    assert_eq!(rpc.attribute("rpc.method"), Some("Upload"));
    assert_eq!(rpc.attribute("rpc.grpc.status_code"), Some("0"));
    assert_eq!(rpc.attribute("owner"), Some("alice"));
    assert_ne!(rpc.status_code, 2, "not an error");

    // Every request to Filestack: a client span under the RPC, answered,
    // whose own context the emulator received.
    let requests: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.kind == CLIENT).collect();
    let routes: Vec<&str> = requests
        .iter()
        .filter_map(|s| s.attribute("route"))
        .collect();
    for route in [
        "multipart_start",
        "multipart_upload",
        "part_put",
        "multipart_complete",
    ] {
        assert!(
            routes.contains(&route),
            "a {route} request among {routes:?}"
        );
    }
    let received = served.emulator().stats().await.traceparents();
    for request in &requests {
        assert!(
            descends_from(&spans, request, &rpc.span_id),
            "{request:#?} is part of the RPC"
        );
        assert_eq!(request.attribute("http.response.status_code"), Some("200"));
        let sent = format!("00-{}-{}-01", caller.trace_id, request.span_id);
        assert!(
            received.iter().any(|(_, traceparent)| *traceparent == sent),
            "the emulator received {sent} ({} request); it saw {received:?}",
            request.name
        );
    }

    // The document's statements: sqlx's events on the RPC's spans.
    let statements: Vec<&str> = spans
        .iter()
        .flat_map(|span| &span.events)
        .filter_map(|(_, attributes)| attributes.get("summary").map(String::as_str))
        .collect();
    assert!(
        statements
            .iter()
            .any(|s| s.to_lowercase().starts_with("insert")),
        "an INSERT among the statements {statements:?}"
    );

    // A whole-file Read in another trace: its span lasts to the stream's
    // end, and its request to Filestack is a child of it.
    let reader = CallerTrace::new();
    let mut stream = read_in_trace(&served, &reader, &document.id).await;
    let mut received_bytes = 0;
    while let Some(message) = stream.message().await.expect("a message") {
        received_bytes += message.data.len();
    }
    assert_eq!(received_bytes, bytes.len());
    let read = "filegate.v1.FileGatewayService/Read";
    let spans = trace_with(&receiver, &reader.trace_id, read).await;
    let read_rpc = named(&spans, read);
    assert_eq!(read_rpc.parent_span_id, reader.span_id);
    assert_eq!(read_rpc.attribute("rpc.grpc.status_code"), Some("0"));
    let fetch = spans
        .iter()
        .find(|span| span.kind == CLIENT && span.attribute("route") == Some("read"))
        .expect("the read's request to Filestack");
    assert!(descends_from(&spans, fetch, &read_rpc.span_id));
    let status = fetch.attribute("http.response.status_code");
    assert!(matches!(status, Some("206" | "200")), "{status:?}");
    let sent = format!("00-{}-{}-01", reader.trace_id, fetch.span_id);
    let received = served.emulator().stats().await.traceparents();
    assert!(received.iter().any(|(_, traceparent)| *traceparent == sent));

    // A refused call in another trace: its log line names the trace.
    let refused_in = CallerTrace::new();
    refused_in_trace(&served, &refused_in).await;
    let get = "filegate.v1.FileGatewayService/GetDocument";
    let spans = trace_with(&receiver, &refused_in.trace_id, get).await;
    let refused_rpc = named(&spans, get);
    assert_ne!(refused_rpc.attribute("rpc.grpc.status_code"), Some("0"));
    let looked_up = refused_rpc.events.iter().any(|(_, attributes)| {
        attributes
            .get("summary")
            .is_some_and(|summary| summary.to_lowercase().starts_with("select"))
    });
    assert!(looked_up, "the lookup's statement: {refused_rpc:#?}");

    // A call without a traceparent starts a trace of its own.
    let before: Vec<String> = receiver.spans().into_iter().map(|s| s.span_id).collect();
    served.who_am_i("alice").await.expect("who am i");
    served
        .get_document("alice", &document.id)
        .await
        .expect("get");
    let who = "filegate.v1.FileGatewayService/WhoAmI";
    poll_spans(&receiver, |spans| {
        spans
            .iter()
            .any(|s| s.name == who && !before.contains(&s.span_id))
    })
    .await;
    let spans = receiver.spans();
    let root = spans
        .iter()
        .find(|s| s.name == who && !before.contains(&s.span_id))
        .expect("the WhoAmI span");
    assert!(root.parent_span_id.is_empty(), "a root span: {root:#?}");
    assert_ne!(root.trace_id, caller.trace_id);

    let lines = served.stop().await;
    let announced = format!("traces: OTLP http/protobuf to {}", receiver.http_url);
    assert!(lines.contains(&announced), "the banner says {announced}");
    assert_refusal_logged_in(&lines, &refused_in.trace_id);
}

/// Waits until the spans received so far satisfy `done`.
async fn poll_spans(receiver: &OtlpReceiver, done: impl Fn(&[ReceivedSpan]) -> bool) {
    support::poll_until(PATIENCE, "the spans", || {
        let spans = receiver.spans();
        let ready = done(&spans);
        async move { ready }
    })
    .await;
}

#[tokio::test]
async fn traces_go_over_otlp_grpc_with_the_configured_headers_and_the_last_ones_at_shutdown() {
    const KEY: &str = "s3cr3t-collector-key-9f2a71";
    let receiver = OtlpReceiver::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let served = serve(dir.path(), |command| {
        command
            .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &receiver.grpc_url)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            .env(
                "OTEL_EXPORTER_OTLP_HEADERS",
                format!("x-collector-key=k%20{KEY},x-tenant=files"),
            )
            // The exporter's own debug lines name the headers: only names.
            .env("RUST_LOG", "trace")
            .env("OTEL_SERVICE_NAME", "filegate-east")
            // Nothing is sent before shutdown: the exit must flush.
            .env("OTEL_BSP_SCHEDULE_DELAY", "600000");
    })
    .await;
    let caller = CallerTrace::new();
    let request = caller.request(&served, pb::WhoAmIRequest {});
    let owner = served.client().await.who_am_i(request).await;
    assert_eq!(owner.expect("who am i").into_inner().owner, "alice");
    assert!(
        receiver.spans().is_empty(),
        "nothing exported before shutdown"
    );

    let lines = served.stop().await;
    let leaked: Vec<&String> = lines.iter().filter(|line| line.contains(KEY)).collect();
    assert!(
        leaked.is_empty(),
        "the collector key in the log: {leaked:?}"
    );
    let announced = format!("traces: OTLP grpc to {}", receiver.grpc_url);
    assert!(lines.contains(&announced), "the banner says {announced}");
    let spans: Vec<ReceivedSpan> = receiver
        .spans()
        .into_iter()
        .filter(|span| span.trace_id == caller.trace_id)
        .collect();
    let rpc = named(&spans, "filegate.v1.FileGatewayService/WhoAmI");
    assert_eq!(rpc.parent_span_id, caller.span_id);
    assert_eq!(rpc.service_name, "filegate-east");
    let headers = receiver.request_headers();
    assert!(!headers.is_empty());
    for sent in headers {
        let key = sent.get("x-collector-key").map(|v| v.as_bytes().to_vec());
        assert_eq!(key, Some(format!("k {KEY}").into_bytes()));
        assert_eq!(
            sent.get("x-tenant").map(|v| v.as_bytes()),
            Some(&b"files"[..])
        );
    }
}

#[tokio::test]
async fn json_log_lines_carry_the_trace_id_in_their_span() {
    let dir = tempfile::tempdir().expect("temp dir");
    let served = serve(dir.path(), |command| {
        command.env("FILEGATE_LOG_FORMAT", "json");
    })
    .await;
    let caller = CallerTrace::new();
    refused_in_trace(&served, &caller).await;
    let lines = served.stop().await;
    let refusal = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["fields"]["message"] == "rpc failed")
        .expect("the refusal as a JSON line");
    assert_eq!(
        refusal["span"]["trace_id"],
        caller.trace_id.as_str(),
        "{refusal}"
    );
    assert_eq!(refusal["span"]["rpc"], "GetDocument", "{refusal}");
}

#[tokio::test]
async fn without_an_otlp_endpoint_nothing_is_exported_and_logs_keep_the_callers_trace_id() {
    let receiver = OtlpReceiver::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    // Every other OTLP setting, but no endpoint.
    let served = serve(dir.path(), |command| {
        command
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            .env("OTEL_BSP_SCHEDULE_DELAY", "50");
    })
    .await;
    let caller = CallerTrace::new();
    refused_in_trace(&served, &caller).await;

    // A read that fails after its handler returned, while its stream is
    // sent: what it logs is in the call's span too.
    let document = served.upload("alice", "corrupt.bin", vec![7; 4096]).await;
    served
        .emulator()
        .fault(serde_json::json!({"route": "cdn", "corrupt_byte_at": 100}))
        .await;
    let reader = CallerTrace::new();
    let mut stream = read_in_trace(&served, &reader, &document.id).await;
    let failed = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("a corrupted read ends without error"),
            Err(status) => break status,
        }
    };
    assert_eq!(failed.code(), tonic::Code::DataLoss, "{failed:?}");

    let lines = served.stop().await;
    assert!(
        !lines.iter().any(|line| line.starts_with("traces:")),
        "no exporter announced"
    );
    assert_refusal_logged_in(&lines, &caller.trace_id);
    let traced = format!("trace_id={}", reader.trace_id);
    assert!(
        lines.iter().any(|line| line.contains("DATA_CORRUPTED")
            && line.contains(&traced)
            && line.contains("rpc=\"Read\"")),
        "the corrupted read's log line is in its call's span:\n{}",
        lines.join("\n")
    );
    assert!(receiver.spans().is_empty());
}

#[tokio::test]
async fn an_unreachable_collector_fails_no_call_and_does_not_hold_up_shutdown() {
    // A port nothing listens on any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", closed.local_addr().expect("address"));
    drop(closed);
    let dir = tempfile::tempdir().expect("temp dir");
    let served = serve(dir.path(), |command| {
        command
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_BSP_SCHEDULE_DELAY", "50");
    })
    .await;
    let caller = CallerTrace::new();
    for _ in 0..20 {
        let request = caller.request(&served, pb::WhoAmIRequest {});
        let owner = served.client().await.who_am_i(request).await;
        assert_eq!(owner.expect("who am i").into_inner().owner, "alice");
    }
    let bytes = data(MIB);
    let document = served
        .upload("alice", "while-down.bin", bytes.clone())
        .await;
    assert_eq!(document.size_bytes, bytes.len() as i64);
    // Exits cleanly (stop checks the status and bounds the wait), the
    // export of the last spans given up after its timeout.
    served.stop().await;
}
