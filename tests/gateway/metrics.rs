//! `/metrics`: per-RPC metrics with go-grpc-prometheus's names and labels,
//! checked after known calls.

use std::time::Duration;

use serde_json::json;
use support::content::data;
use support::frames::frame;
use support::gateway::TestGateway;
use support::rpc::{Rpc, messages, spec};
use support::{MIB, poll_until};

const SERVICE: &str = "filegate.v1.FileGatewayService";

/// The value of the sample `name` whose labels include every pair of
/// `labels`, 0 when there is none.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix('{')?;
            let (set, value) = rest.split_once("} ")?;
            let matches = labels.iter().all(|(key, value)| {
                set.split(',')
                    .any(|pair| pair == format!("{key}=\"{value}\""))
            });
            matches.then(|| value.trim().parse::<f64>().expect("a number"))
        })
        .sum()
}

/// The value of the sample `name` that has no labels.
fn sample_plain(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} missing"))
        .trim()
        .parse()
        .expect("a number")
}

async fn scrape(gw: &TestGateway) -> String {
    reqwest::get(format!("{}/metrics", gw.http_url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

#[tokio::test]
async fn filestack_retries_and_webhook_deliveries_are_counted_by_route_and_outcome() {
    let gw = TestGateway::start().await;
    gw.emulator
        .fault(json!({"route": "part_put", "status": 503, "count": 1}))
        .await;
    let bytes = data(6 * MIB);
    gw.upload_stream(
        "alice",
        messages(spec("big.bin", Some(bytes.len() as i64)), &bytes, MIB),
    )
    .await
    .expect("a multipart upload, one part retried");
    poll_until(
        Duration::from_secs(30),
        "the fp.upload delivery counted",
        || async {
            let text = scrape(&gw).await;
            sample(
                &text,
                "filegate_webhook_deliveries_total",
                &[("outcome", "stored")],
            ) >= 1.0
        },
    )
    .await;
    let refused = reqwest::Client::new()
        .post(format!("{}/webhooks/filestack", gw.http_url))
        .body("{}")
        .send()
        .await
        .expect("an answer");
    assert_eq!(refused.status(), 401);

    let text = scrape(&gw).await;
    let part_put = [("route", "part_put")];
    assert_eq!(
        sample(&text, "filestack_retries_total", &part_put),
        1.0,
        "{text}"
    );
    let unavailable = [("route", "part_put"), ("outcome", "unavailable")];
    assert_eq!(sample(&text, "filestack_requests_total", &unavailable), 1.0);
    let ok = [("route", "part_put"), ("outcome", "ok")];
    assert_eq!(
        sample(&text, "filestack_requests_total", &ok),
        2.0,
        "two parts"
    );
    for route in ["multipart_start", "multipart_complete"] {
        let labels = [("route", route), ("outcome", "ok")];
        assert_eq!(
            sample(&text, "filestack_requests_total", &labels),
            1.0,
            "{route}"
        );
    }
    let bad = [("outcome", "bad_signature")];
    assert_eq!(
        sample(&text, "filegate_webhook_deliveries_total", &bad),
        1.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn every_rpc_is_counted_by_method_type_and_code() {
    let gw = TestGateway::start().await;
    for _ in 0..2 {
        gw.who_am_i("alice").await.expect("WhoAmI");
    }
    let mut client = gw.client().await;
    let refused = client
        .who_am_i(tonic::Request::new(filegate::pb::v1::WhoAmIRequest {}))
        .await
        .expect_err("no token");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let bytes = data(2 * MIB + 10);
    let upload_messages = messages(spec("m.bin", None), &bytes, MIB);
    let uploaded = upload_messages.len() as f64;
    let document = gw
        .upload_stream("alice", upload_messages)
        .await
        .expect("upload");
    let read = gw.read("alice", &document.id, 0, 0).await.expect("read");
    // Made-up methods: UNIMPLEMENTED, all under one label set.
    for method in ["Nope", "AlsoNope"] {
        let answer = gw
            .raw_grpc(&format!("{SERVICE}/{method}"), None)
            .body(frame(false, b""))
            .send()
            .await
            .expect("an answer");
        assert_eq!(answer.headers()["grpc-status"], "12", "UNIMPLEMENTED");
    }

    let text = reqwest::get(format!("{}/metrics", gw.http_url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let unary = |method| {
        [
            ("grpc_service", SERVICE),
            ("grpc_method", method),
            ("grpc_type", "unary"),
        ]
    };
    let who = unary("WhoAmI");
    assert_eq!(
        sample(&text, "grpc_server_started_total", &who),
        3.0,
        "{text}"
    );
    let ok = [&who[..], &[("grpc_code", "OK")]].concat();
    let unauthenticated = [&who[..], &[("grpc_code", "Unauthenticated")]].concat();
    assert_eq!(sample(&text, "grpc_server_handled_total", &ok), 2.0);
    assert_eq!(
        sample(&text, "grpc_server_handled_total", &unauthenticated),
        1.0
    );
    assert_eq!(
        sample(&text, "grpc_server_handling_seconds_count", &who),
        3.0
    );
    assert_eq!(sample(&text, "grpc_server_msg_received_total", &who), 3.0);

    let upload = [("grpc_method", "Upload"), ("grpc_type", "client_stream")];
    assert_eq!(
        sample(&text, "grpc_server_msg_received_total", &upload),
        uploaded
    );
    assert_eq!(sample(&text, "grpc_server_msg_sent_total", &upload), 1.0);
    let upload_ok = [&upload[..], &[("grpc_code", "OK")]].concat();
    assert_eq!(sample(&text, "grpc_server_handled_total", &upload_ok), 1.0);

    let reads = [("grpc_method", "Read"), ("grpc_type", "server_stream")];
    let sent = read.message_sizes.len() as f64;
    assert_eq!(sample(&text, "grpc_server_msg_sent_total", &reads), sent);
    assert_eq!(
        sample(
            &text,
            "grpc_server_handled_total",
            &[&reads[..], &[("grpc_code", "OK")]].concat()
        ),
        1.0
    );

    let unknown = [("grpc_service", "unknown"), ("grpc_method", "unknown")];
    assert_eq!(sample(&text, "grpc_server_started_total", &unknown), 2.0);
    assert!(
        !text.contains("Nope"),
        "a made-up method has no labels of its own"
    );

    // Filestack calls: the one-request store and the read, each once.
    let store = [("route", "store"), ("outcome", "ok")];
    assert_eq!(sample(&text, "filestack_requests_total", &store), 1.0);
    let read_ok = [("route", "read"), ("outcome", "ok")];
    assert_eq!(sample(&text, "filestack_requests_total", &read_ok), 1.0);
    assert_eq!(
        sample(
            &text,
            "filestack_request_seconds_count",
            &[("route", "read")]
        ),
        1.0
    );
    // The upload's bytes, its admission, the pool.
    assert_eq!(
        sample_plain(&text, "filegate_upload_bytes_total"),
        bytes.len() as f64
    );
    assert_eq!(
        sample_plain(&text, "filegate_upload_admission_wait_seconds_count"),
        1.0
    );
    assert!(
        sample_plain(&text, "filegate_db_connections_max") >= 1.0,
        "{text}"
    );

    // The gateway's own gauges are there too.
    assert!(text.contains("\nfilegate_uploads_active 0\n"), "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "OpenMetrics text");
    gw.stop().await;
}
