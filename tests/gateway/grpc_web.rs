//! gRPC-Web on the gRPC listener, as a browser sends it (HTTP/1.1, the
//! `application/grpc-web+proto` framing, trailers in the body), and CORS.

use filegate::pb::v1 as pb;
use prost::Message;
use reqwest::header::HeaderMap;
use support::MIB;
use support::content::data;
use support::frames::{frames, message_frame};
use support::gateway::TestGateway;
use support::rpc::{Rpc, messages, spec};

const SERVICE: &str = "/filegate.v1.FileGatewayService";
const ALLOWED: &str = "https://console.example.com";

/// What a gRPC-Web call answered: the HTTP status and headers, the
/// messages, and the trailers (from the body's trailer frame, or the
/// headers of a trailers-only answer).
struct WebReply {
    http_status: u16,
    headers: HeaderMap,
    messages: Vec<Vec<u8>>,
    trailers: String,
}

impl WebReply {
    fn grpc_status(&self) -> String {
        let from_body = self
            .trailers
            .lines()
            .find_map(|line| line.strip_prefix("grpc-status:"))
            .map(|status| status.trim().to_owned());
        from_body.unwrap_or_else(|| {
            self.headers
                .get("grpc-status")
                .and_then(|status| status.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        })
    }
}

/// A gRPC-Web call over HTTP/1.1, as alice unless `token` is `None`.
async fn web_call(
    gw: &TestGateway,
    method: &str,
    request: impl Message,
    token: Option<String>,
) -> WebReply {
    let body = message_frame(&request);
    let mut call = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client")
        .post(format!("{}{SERVICE}/{method}", gw.grpc_url))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", ALLOWED)
        .body(body);
    if let Some(token) = token {
        call = call.header("authorization", format!("Bearer {token}"));
    }
    let response = call.send().await.expect("an HTTP/1.1 answer");
    let http_status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body");
    let (mut messages, mut trailers) = (Vec::new(), String::new());
    for frame in frames(&body) {
        if frame.trailers() {
            trailers.push_str(&String::from_utf8_lossy(&frame.payload));
        } else {
            messages.push(frame.payload);
        }
    }
    WebReply {
        http_status,
        headers,
        messages,
        trailers,
    }
}

#[tokio::test]
async fn unary_and_server_streaming_calls_work_over_grpc_web() {
    let gw = TestGateway::start_with(&["--grpc-web-origins", ALLOWED]).await;
    let token = Some(gw.token("alice"));

    let reply = web_call(&gw, "WhoAmI", pb::WhoAmIRequest {}, token.clone()).await;
    assert_eq!(
        (reply.http_status, reply.grpc_status().as_str()),
        (200, "0")
    );
    let [message] = &reply.messages[..] else {
        panic!("{} messages", reply.messages.len());
    };
    let who = pb::WhoAmIResponse::decode(&message[..]).expect("WhoAmI");
    assert_eq!(who.owner, "alice");
    assert_eq!(reply.headers["access-control-allow-origin"], ALLOWED);

    // Server streaming: a Read of a stored file, every byte.
    let bytes = data(3 * MIB + 5);
    let document = gw
        .upload_stream("alice", messages(spec("web.bin", None), &bytes, MIB))
        .await
        .expect("upload");
    let read = pb::ReadRequest {
        document_id: document.id,
        read_offset: 0,
        read_limit: 0,
    };
    let reply = web_call(&gw, "Read", read, token).await;
    assert_eq!(reply.grpc_status(), "0", "trailers: {}", reply.trailers);
    assert!(
        reply.messages.len() > 1,
        "{} messages",
        reply.messages.len()
    );
    let mut read_back = Vec::new();
    for message in &reply.messages {
        read_back.extend(
            pb::ReadResponse::decode(&message[..])
                .expect("a message")
                .data,
        );
    }
    assert!(read_back == bytes, "Read over gRPC-Web returns the file");

    // A refused call: its status where a browser can read it.
    let reply = web_call(&gw, "WhoAmI", pb::WhoAmIRequest {}, None).await;
    assert_eq!(reply.grpc_status(), "16", "UNAUTHENTICATED");
    let exposed = reply.headers["access-control-expose-headers"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    for header in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(header), "{header} not exposed: {exposed}");
    }
    gw.stop().await;
}

/// A browser's preflight for a gRPC-Web call from `origin`.
async fn preflight(gw: &TestGateway, origin: &str) -> HeaderMap {
    let response = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}{SERVICE}/WhoAmI", gw.grpc_url),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-grpc-web,x-user-agent,grpc-timeout,traceparent",
        )
        .send()
        .await
        .expect("a preflight answer");
    response.headers().clone()
}

#[tokio::test]
async fn only_configured_origins_and_local_modes_own_page_pass_cors() {
    let gw = TestGateway::start_with(&["--grpc-web-origins", ALLOWED]).await;
    let allowed = preflight(&gw, ALLOWED).await;
    assert_eq!(allowed["access-control-allow-origin"], ALLOWED);
    let headers = allowed["access-control-allow-headers"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    for header in [
        "authorization",
        "x-grpc-web",
        "grpc-timeout",
        "traceparent",
        "tracestate",
    ] {
        assert!(headers.contains(header), "{header} not allowed: {headers}");
    }
    let other = preflight(&gw, "https://evil.example").await;
    assert!(!other.contains_key("access-control-allow-origin"));
    // The test gateway runs in local mode: its own HTTP listener's page may call.
    let own_page = preflight(&gw, &gw.http_url).await;
    assert_eq!(
        own_page["access-control-allow-origin"],
        gw.http_url.as_str()
    );
    gw.stop().await;

    let gw = TestGateway::start().await;
    let unconfigured = preflight(&gw, ALLOWED).await;
    assert!(!unconfigured.contains_key("access-control-allow-origin"));
    gw.stop().await;
}
