//! `/metrics`: per-RPC metrics with go-grpc-prometheus's names and labels,
//! checked after known calls.

use support::MIB;
use support::content::data;
use support::frames::frame;
use support::gateway::TestGateway;
use support::rpc::{Rpc, messages, spec};

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
        let answer = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .expect("client")
            .post(format!("{}/{SERVICE}/{method}", gw.grpc_url))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
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

    // The gateway's own gauges are there too.
    assert!(text.contains("\nfilegate_uploads_active 0\n"), "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "OpenMetrics text");
    gw.stop().await;
}
