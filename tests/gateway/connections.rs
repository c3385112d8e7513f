//! One client must not block the others or the process: silent sockets,
//! too many connections, long-lived streams on one channel, one owner's
//! watches, many uploads on one connection, and shutdown while clients hold
//! connections open.

use std::net::SocketAddr;
use std::time::Duration;

use filegate::pb::v1 as pb;
use filegate::pb::v1::file_gateway_service_client::FileGatewayServiceClient;
use support::content::data;
use support::gateway::TestGateway;
use support::rpc::{OpenUpload, Rpc, data_message, reason, spec, spec_message};
use support::{MIB, poll_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Channel;
use tonic::{Code, Streaming};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

/// Longest wait for something that must happen.
const PATIENCE: Duration = Duration::from_secs(15);

type Client = FileGatewayServiceClient<Channel>;

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .parse()
        .expect("an address")
}

/// A TCP connection that sends nothing (or `first`, and then nothing).
async fn silent_socket(to: SocketAddr, first: &[u8]) -> TcpStream {
    let mut socket = TcpStream::connect(to).await.expect("TCP connects");
    socket.write_all(first).await.expect("write");
    socket
}

/// Waits (bounded) until the gateway closes `socket`: a read returns end of
/// file or an error, having received nothing.
async fn closed_by_the_gateway(mut socket: TcpStream, what: &str) {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(PATIENCE, socket.read(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("{what}: closed in time"));
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "{what}: closed without an answer, got {read:?}"
    );
}

async fn metric(gw: &TestGateway, name: &str) -> u64 {
    gw.metrics([name]).await[0]
}

async fn who_am_i(
    gw: &TestGateway,
    client: &mut Client,
    sub: &str,
) -> Result<String, tonic::Status> {
    let response = client
        .who_am_i(gw.request(sub, pb::WhoAmIRequest {}))
        .await?;
    Ok(response.into_inner().owner)
}

/// A client on a channel of its own (one connection).
async fn connect(gw: &TestGateway) -> Client {
    FileGatewayServiceClient::new(gw.channel().await)
}

async fn watch(
    gw: &TestGateway,
    client: &mut Client,
    sub: &str,
) -> Result<Streaming<pb::Event>, tonic::Status> {
    let request = pb::WatchEventsRequest {
        after_event_id: 0,
        include_payload: false,
    };
    let response = client.watch_events(gw.request(sub, request)).await?;
    Ok(response.into_inner())
}

/// The first message of an upload of `size` bytes.
fn sized_spec(size: usize) -> pb::UploadRequest {
    spec_message(spec("f.bin", Some(size as i64)))
}

/// A whole upload of `bytes` in one call.
async fn upload(
    gw: &TestGateway,
    client: &mut Client,
    bytes: &[u8],
) -> Result<pb::Document, tonic::Status> {
    let mut messages = vec![sized_spec(bytes.len())];
    messages.extend(bytes.chunks(MIB).map(data_message));
    let response = client
        .upload(gw.request("alice", tokio_stream::iter(messages)))
        .await?;
    Ok(response.into_inner().document.expect("document"))
}

/// An Upload of `size` declared bytes on `client`'s connection, its spec sent.
async fn open_upload(gw: &TestGateway, client: &Client, size: usize) -> OpenUpload {
    OpenUpload::open(gw, client, "alice", vec![sized_spec(size)]).await
}

fn assert_refused(status: &tonic::Status, code: Code, expected_reason: &str) {
    assert_eq!(
        (status.code(), reason(status).as_str()),
        (code, expected_reason),
        "{status:?}"
    );
    assert!(
        status.get_error_details().retry_info().is_some(),
        "RetryInfo attached: {status:?}"
    );
}

#[tokio::test]
async fn silent_sockets_are_closed_after_the_handshake_timeout_while_calls_go_on() {
    let gw = TestGateway::start_with(&["--handshake-timeout-secs", "1"]).await;
    let grpc = addr(&gw.grpc_url);
    let http = addr(&gw.http_url);
    let silent_grpc = silent_socket(grpc, b"").await;
    let half_preface = silent_socket(grpc, b"PRI * HTTP/2.0\r\n").await;
    let silent_http = silent_socket(http, b"").await;
    let half_head = silent_socket(http, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;

    let mut client = connect(&gw).await;
    assert_eq!(
        who_am_i(&gw, &mut client, "alice").await.expect("a call"),
        "alice"
    );
    let (status, _) = gw.emulator.get(&format!("{}/healthz", gw.http_url)).await;
    assert_eq!(status, 200);

    closed_by_the_gateway(silent_grpc, "a silent gRPC socket").await;
    closed_by_the_gateway(half_preface, "half an HTTP/2 preface").await;
    closed_by_the_gateway(silent_http, "a silent HTTP socket").await;
    closed_by_the_gateway(half_head, "half a request head").await;
    assert_eq!(
        metric(&gw, "filegate_grpc_handshake_timeouts_total").await,
        2
    );
    assert_eq!(
        metric(&gw, "filegate_http_handshake_timeouts_total").await,
        2
    );

    // The channel that completed its handshake is still served.
    assert_eq!(
        who_am_i(&gw, &mut client, "bob").await.expect("a call"),
        "bob"
    );
    gw.stop().await;
}

#[tokio::test]
async fn past_the_connection_limit_new_connections_wait_and_are_served_once_a_slot_frees() {
    let gw =
        TestGateway::start_with(&["--max-connections", "3", "--handshake-timeout-secs", "1"]).await;
    assert_eq!(metric(&gw, "filegate_connections_max").await, 3);
    let grpc = addr(&gw.grpc_url);
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(silent_socket(grpc, b"").await);
    }
    poll_until(PATIENCE, "three connections open", || async {
        metric(&gw, "filegate_grpc_connections_open").await == 3
    })
    .await;

    // A caller over the limit waits in the accept queue, and is served once
    // a silent socket timed out (and so was closed before it was accepted).
    let mut client = connect(&gw).await;
    let owner = tokio::time::timeout(PATIENCE, who_am_i(&gw, &mut client, "alice"))
        .await
        .expect("served once the silent sockets are gone")
        .expect("a call");
    assert_eq!(owner, "alice");
    let closed = silent
        .iter()
        .filter(|socket| {
            let mut buf = [0u8; 1];
            match socket.try_read(&mut buf) {
                Ok(n) => n == 0,
                Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
            }
        })
        .count();
    assert!(closed >= 1, "served only after a silent socket was closed");
    for socket in silent {
        closed_by_the_gateway(socket, "a silent socket").await;
    }

    // The slots came back: three callers at once, and never more than
    // three connections.
    let mut others = vec![client.clone()];
    for _ in 0..2 {
        others.push(connect(&gw).await);
    }
    for client in &mut others {
        who_am_i(&gw, client, "bob").await.expect("a call");
    }
    assert_eq!(metric(&gw, "filegate_grpc_connections_open").await, 3);
    let mut fourth = connect(&gw).await;
    let waiting = {
        let request = gw.request("carol", pb::WhoAmIRequest {});
        tokio::spawn(async move { fourth.who_am_i(request).await })
    };
    assert_eq!(metric(&gw, "filegate_grpc_connections_open").await, 3);
    assert!(!waiting.is_finished(), "no slot for a fourth connection");
    drop(client);
    others.remove(0);
    let served = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("served once a connection closed")
        .expect("task")
        .expect("a call");
    assert_eq!(served.into_inner().owner, "carol");
    assert_eq!(metric(&gw, "filegate_grpc_connections_open").await, 3);
    gw.stop().await;
}

#[tokio::test]
async fn silent_sockets_an_idle_channel_and_a_health_watch_do_not_delay_exit() {
    let gw = TestGateway::start_with(&["--shutdown-grace-secs", "60"]).await;
    let silent_grpc = silent_socket(addr(&gw.grpc_url), b"").await;
    let silent_http = silent_socket(addr(&gw.http_url), b"").await;
    let mut idle = connect(&gw).await;
    who_am_i(&gw, &mut idle, "alice").await.expect("a call");
    let mut health = HealthClient::new(gw.channel().await);
    let mut statuses = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    let first = statuses.message().await.expect("stream").expect("a status");
    assert_eq!(first.status, ServingStatus::Serving as i32);

    tokio::time::timeout(Duration::from_secs(5), gw.stop())
        .await
        .expect("the gateway exits well within the grace period");
    closed_by_the_gateway(silent_grpc, "a silent gRPC socket").await;
    closed_by_the_gateway(silent_http, "a silent HTTP socket").await;
    drop((idle, statuses));
}

#[tokio::test]
async fn a_hundred_watch_streams_on_one_channel_leave_room_for_unary_calls_and_uploads() {
    let gw = TestGateway::start().await;
    let mut client = connect(&gw).await;
    let mut streams = Vec::new();
    for i in 0..100 {
        let owner = format!("watcher-{}", i % 4);
        let stream = tokio::time::timeout(PATIENCE, watch(&gw, &mut client, &owner))
            .await
            .unwrap_or_else(|_| panic!("watch {i} opened in time"))
            .expect("watch");
        streams.push(stream);
    }
    let owner = tokio::time::timeout(PATIENCE, who_am_i(&gw, &mut client, "alice"))
        .await
        .expect("a unary call in time")
        .expect("a call");
    assert_eq!(owner, "alice");
    let bytes = data(1000);
    let doc = tokio::time::timeout(PATIENCE, upload(&gw, &mut client, &bytes))
        .await
        .expect("an upload in time")
        .expect("upload");
    assert_eq!(doc.size_bytes, 1000);
    drop(streams);
    gw.stop().await;
}

#[tokio::test]
async fn watch_streams_are_capped_per_owner_and_in_total() {
    let gw = TestGateway::start_with(&[
        "--max-watch-streams",
        "3",
        "--max-watch-streams-per-owner",
        "2",
    ])
    .await;
    let mut client = connect(&gw).await;
    let first = watch(&gw, &mut client, "alice").await.expect("alice 1");
    let _second = watch(&gw, &mut client, "alice").await.expect("alice 2");
    let refused = watch(&gw, &mut client, "alice").await.expect_err("alice 3");
    assert_refused(
        &refused,
        Code::ResourceExhausted,
        "TOO_MANY_WATCH_STREAMS_FOR_OWNER",
    );
    let _bob = watch(&gw, &mut client, "bob").await.expect("another owner");
    let refused = watch(&gw, &mut client, "carol")
        .await
        .expect_err("over the total");
    assert_refused(&refused, Code::ResourceExhausted, "TOO_MANY_WATCH_STREAMS");

    // A stream that ends gives its place back.
    drop(first);
    let carol = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(stream) = watch(&gw, &mut client, "carol").await {
                return stream;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("a place freed");
    drop(carol);
    gw.stop().await;
}

#[tokio::test]
async fn the_seventeenth_upload_on_one_connection_is_refused_while_another_connection_uploads() {
    let gw = TestGateway::start().await;
    let client = connect(&gw).await;
    let size = 1000;
    let mut uploads = Vec::new();
    for _ in 0..16 {
        uploads.push(open_upload(&gw, &client, size).await);
    }
    gw.wait_for_active_uploads(16).await;

    let extra = open_upload(&gw, &client, size).await;
    let refused = tokio::time::timeout(PATIENCE, extra.call)
        .await
        .expect("refused at once")
        .expect("upload task")
        .expect_err("a 17th upload on the connection");
    assert_refused(
        &refused,
        Code::ResourceExhausted,
        "TOO_MANY_UPLOADS_ON_CONNECTION",
    );

    let mut other = connect(&gw).await;
    upload(&gw, &mut other, &data(size))
        .await
        .expect("an upload on another connection");
    let mut same = client.clone();
    who_am_i(&gw, &mut same, "alice")
        .await
        .expect("a unary call on the full connection");

    for upload in uploads {
        upload
            .finish(&data(size))
            .await
            .expect("a running upload finishes");
    }
    let mut same = client.clone();
    upload(&gw, &mut same, &data(size))
        .await
        .expect("the connection uploads again");
    assert_eq!(gw.documents().await, 18);
    gw.stop().await;
}

#[tokio::test]
async fn while_draining_new_calls_get_draining_an_upload_and_a_read_finish_and_watches_end() {
    let mut gw = TestGateway::start_with(&["--shutdown-grace-secs", "60"]).await;
    let mut client = connect(&gw).await;
    let health = HealthClient::new(gw.channel().await);
    // A Read that has taken its first message when the drain begins.
    let stored = data(24 * MIB);
    let document = upload(&gw, &mut client, &stored).await.expect("stored");
    let read = pb::ReadRequest {
        document_id: document.id,
        read_offset: 0,
        read_limit: 0,
    };
    let mut reading = client
        .read(gw.request("alice", read))
        .await
        .expect("a read")
        .into_inner();
    let mut read_back = reading
        .message()
        .await
        .expect("a message")
        .expect("the first")
        .data
        .to_vec();
    let running = open_upload(&gw, &client, 2 * MIB).await;
    running
        .tx
        .send(data_message(&data(MIB)))
        .await
        .expect("queued");
    gw.wait_for_active_uploads(1).await;
    let mut events = watch(&gw, &mut client, "alice").await.expect("watch");

    gw.begin_shutdown();
    poll_until(PATIENCE, "health NOT_SERVING", || {
        let mut health = health.clone();
        async move {
            let response = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            response.is_ok_and(|r| r.into_inner().status == ServingStatus::NotServing as i32)
        }
    })
    .await;

    let refused = who_am_i(&gw, &mut client, "alice")
        .await
        .expect_err("draining");
    assert_refused(&refused, Code::Unavailable, "DRAINING");
    let mut fresh = connect(&gw).await;
    let refused = who_am_i(&gw, &mut fresh, "alice")
        .await
        .expect_err("draining");
    assert_refused(&refused, Code::Unavailable, "DRAINING");
    let refused = watch(&gw, &mut client, "alice")
        .await
        .expect_err("draining");
    assert_refused(&refused, Code::Unavailable, "DRAINING");

    // Events recorded before the drain (the stored file's fp.upload) may
    // come first; the stream then ends with the status.
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match events.message().await {
                Ok(Some(_event)) => continue,
                Ok(None) => panic!("the watch ended without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the watch ends");
    assert_refused(&ended, Code::Unavailable, "DRAINING");

    let doc = running
        .finish(&data(MIB))
        .await
        .expect("the running upload finishes");
    assert_eq!(doc.size_bytes, 2 * MIB as i64);
    assert_eq!(gw.documents().await, 2);
    while let Some(message) = reading.message().await.expect("the read goes on") {
        read_back.extend_from_slice(&message.data);
    }
    assert!(
        read_back == stored,
        "the read in progress delivered the whole file"
    );
    tokio::time::timeout(Duration::from_secs(5), gw.stop())
        .await
        .expect("exits once the upload finished");
    drop((client, fresh, health));
}
