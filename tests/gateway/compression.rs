//! Compressed messages: gzip and deflate requests on every kind of call,
//! decompression bounded by the message limit, and responses compressed only
//! when the client asks and it pays.

use std::io::Write;

use filegate::pb::v1 as pb;
use flate2::Compression;
use flate2::write::{GzEncoder, ZlibEncoder};
use prost::Message;
use support::MIB;
use support::content::{data, sha256_hex};
use support::frames::{frame, frames};
use support::gateway::TestGateway;
use support::rpc::{
    GatewayClient, Rpc, connect, field, first_message, messages, reason, resume_messages, spec,
    spec_message,
};
use tonic::Code;
use tonic::codec::CompressionEncoding;

const SERVICE: &str = "/filegate.v1.FileGatewayService";
/// The gateway's maximum message size, compressed or not.
const MAX_MESSAGE: usize = 4 * MIB;

/// The test gateway, called by clients that compress every request with
/// `encoding` and accept responses compressed with it.
struct Compressed<'a> {
    gw: &'a TestGateway,
    encoding: CompressionEncoding,
}

impl Rpc for Compressed<'_> {
    fn grpc_url(&self) -> String {
        self.gw.grpc_url()
    }

    fn token(&self, sub: &str) -> String {
        self.gw.token(sub)
    }

    async fn client(&self) -> GatewayClient {
        connect(self.grpc_url())
            .await
            .send_compressed(self.encoding)
            .accept_compressed(self.encoding)
    }
}

/// Text that compresses well, `len` bytes of it.
fn text(len: usize) -> Vec<u8> {
    b"filegate stores files at Filestack for internal services.\n"
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

#[tokio::test]
async fn gzip_and_deflate_requests_work_on_every_kind_of_call() {
    let gw = TestGateway::start().await;
    for encoding in [CompressionEncoding::Gzip, CompressionEncoding::Deflate] {
        let rpc = Compressed { gw: &gw, encoding };
        let owner = format!("{encoding:?}").to_lowercase();

        // Client streaming: a multipart upload of compressible and of random bytes.
        let mut bytes = text(6 * MIB);
        bytes.extend(data(3 * MIB));
        let mut upload = spec("mixed.txt", Some(bytes.len() as i64));
        upload.sha256 = sha256_hex(&bytes);
        let document = rpc
            .upload_stream(&owner, messages(upload, &bytes, MIB))
            .await
            .unwrap_or_else(|status| panic!("{encoding:?} upload: {status:?}"));
        assert_eq!(document.size_bytes, bytes.len() as i64);
        assert_eq!(document.sha256, sha256_hex(&bytes));

        // Unary calls.
        assert_eq!(rpc.who_am_i(&owner).await.expect("WhoAmI"), owner);
        let metadata = rpc
            .metadata(&owner, &document.id, &[pb::MetadataField::Sha256])
            .await
            .expect("Metadata");
        assert_eq!(metadata.sha256.as_deref(), Some(document.sha256.as_str()));
        let page = rpc.list_documents(&owner, 10, "").await.expect("List");
        assert_eq!(page.documents.len(), 1);

        // Server streaming: the whole file back.
        let read = rpc.read(&owner, &document.id, 0, 0).await.expect("Read");
        assert!(read.bytes == bytes, "{encoding:?}: Read returns the upload");

        // A resumable upload continued by a compressed stream.
        let resumed = text(MIB + 17);
        let started = rpc
            .start_upload(&owner, spec("resumed.txt", Some(resumed.len() as i64)))
            .await
            .expect("StartUpload");
        let stream = resume_messages(&started.upload_id, 0, &resumed, MIB);
        let request = rpc.request(&owner, tokio_stream::iter(stream));
        let reply = rpc.client().await.upload(request).await.expect("resume");
        let finished = reply.into_inner().document.expect("a document");
        assert_eq!(finished.sha256, sha256_hex(&resumed));
    }
    gw.wait_until_settled().await;
    gw.stop().await;
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// A gzip stream of `len` zero bytes, written a MiB at a time (it is about
/// a thousand times smaller than what it inflates to).
fn gzip_bomb(len: usize) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![0; MIB];
    for _ in 0..len / MIB {
        encoder.write_all(&zeros).expect("gzip");
    }
    encoder.finish().expect("gzip")
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("deflate");
    encoder.finish().expect("deflate")
}

/// What a gRPC call sent over plain HTTP/2 answered.
struct RawReply {
    headers: reqwest::header::HeaderMap,
    /// Each message: (compressed flag, payload).
    messages: Vec<(bool, Vec<u8>)>,
}

impl RawReply {
    /// The grpc-status of a trailers-only answer (an error before any
    /// message).
    fn status(&self) -> Option<i32> {
        let status = self.headers.get("grpc-status")?.to_str().ok()?;
        status.parse().ok()
    }
}

/// Calls `method` with `body` (whole frames) and the given `grpc-encoding`
/// and `grpc-accept-encoding`, as alice.
async fn raw_call(
    gw: &TestGateway,
    method: &str,
    encoding: Option<&str>,
    accept: Option<&str>,
    body: Vec<u8>,
) -> RawReply {
    let mut request = gw
        .raw_grpc(method.trim_start_matches('/'), Some("alice"))
        .body(body);
    if let Some(encoding) = encoding {
        request = request.header("grpc-encoding", encoding);
    }
    if let Some(accept) = accept {
        request = request.header("grpc-accept-encoding", accept);
    }
    let response = request.send().await.expect("HTTP/2 call");
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body");
    let messages = frames(&body)
        .into_iter()
        .map(|frame| (frame.compressed(), frame.payload))
        .collect();
    RawReply { headers, messages }
}

/// Health and reflection take compressed requests too: a channel with
/// compression on compresses every call it makes.
#[tokio::test]
async fn health_and_reflection_take_compressed_requests() {
    let gw = TestGateway::start().await;
    let health = raw_call(
        &gw,
        "/grpc.health.v1.Health/Check",
        Some("gzip"),
        None,
        frame(true, &gzip(b"")),
    )
    .await;
    assert_eq!(health.status(), None, "{:?}", health.headers);
    // HealthCheckResponse { status: SERVING }
    assert_eq!(health.messages, [(false, vec![0x08, 0x01])]);
    for version in ["v1", "v1alpha"] {
        // ServerReflectionRequest { list_services: "" }
        let list_services = [0x3a, 0x00];
        let reflection = raw_call(
            &gw,
            &format!("/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo"),
            Some("deflate"),
            None,
            frame(true, &deflate(&list_services)),
        )
        .await;
        assert_eq!(
            reflection.status(),
            None,
            "{version}: {:?}",
            reflection.headers
        );
        let [(_, listed)] = &reflection.messages[..] else {
            panic!("{version}: {} messages", reflection.messages.len());
        };
        assert!(
            listed
                .windows(SERVICE.len() - 1)
                .any(|w| w == &SERVICE.as_bytes()[1..]),
            "{version}: the service listed"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_message_that_inflates_past_the_limit_is_refused_and_leaves_nothing() {
    let gw = TestGateway::start().await;
    let bomb = gzip_bomb(256 * MIB);
    assert!(bomb.len() < MIB, "a bomb of {} bytes", bomb.len());

    // A unary request.
    let reply = raw_call(
        &gw,
        &format!("{SERVICE}/Metadata"),
        Some("gzip"),
        None,
        frame(true, &bomb),
    )
    .await;
    assert_eq!(reply.status(), Some(Code::ResourceExhausted as i32));

    // A message of an Upload stream, after a valid spec.
    let first = spec_message(spec("bomb.bin", None));
    let mut body = frame(true, &gzip(&first.encode_to_vec()));
    body.extend(frame(true, &bomb));
    let reply = raw_call(&gw, &format!("{SERVICE}/Upload"), Some("gzip"), None, body).await;
    assert_eq!(reply.status(), Some(Code::InvalidArgument as i32));
    let message = reply.headers["grpc-message"].to_str().unwrap_or_default();
    assert!(message.contains("size%20limit"), "grpc-message: {message}");

    // A message that inflates to just under the limit is accepted.
    let bytes = vec![0; 3 * MIB];
    let rpc = Compressed {
        gw: &gw,
        encoding: CompressionEncoding::Gzip,
    };
    let document = rpc
        .upload_stream(
            "alice",
            vec![first_message(spec("zeros.bin", None), &bytes)],
        )
        .await
        .expect("a 3 MiB message, compressed");
    assert_eq!(document.size_bytes, bytes.len() as i64);
    let too_big = rpc
        .upload_stream(
            "alice",
            vec![first_message(
                spec("big.bin", None),
                &vec![0; MAX_MESSAGE + 1],
            )],
        )
        .await
        .expect_err("a message over 4 MiB once inflated");
    assert_eq!(too_big.code(), Code::InvalidArgument);
    assert_eq!(reason(&too_big), "STREAM_FAILED");
    assert_eq!(field(&too_big).as_deref(), Some("stream"));

    gw.wait_until_settled().await;
    assert_eq!(gw.documents().await, 1, "only the 3 MiB upload is stored");
    gw.stop().await;
}

#[tokio::test]
async fn responses_are_compressed_only_when_asked_and_when_it_pays() {
    let gw = TestGateway::start().await;
    for n in 0..20 {
        let name = format!("document-{n:02}.txt");
        gw.upload_stream("alice", vec![first_message(spec(&name, None), b"x")])
            .await
            .expect("upload");
    }
    let list = pb::ListDocumentsRequest {
        page_size: 20,
        page_token: String::new(),
    };
    let list = frame(false, &list.encode_to_vec());
    let path = format!("{SERVICE}/ListDocuments");

    // A page of 20 documents, asked for with gzip: compressed.
    let reply = raw_call(&gw, &path, None, Some("gzip"), list.clone()).await;
    assert_eq!(reply.headers["grpc-encoding"], "gzip");
    let [(compressed, payload)] = &reply.messages[..] else {
        panic!("{} messages", reply.messages.len());
    };
    assert!(*compressed, "the page is compressed");
    let mut inflated = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&payload[..]),
        &mut inflated,
    )
    .expect("gunzip");
    assert!(payload.len() < inflated.len() / 2, "compression pays");
    let page = pb::ListDocumentsResponse::decode(&inflated[..]).expect("a page");
    assert_eq!(page.documents.len(), 20);

    // The same with deflate; and without asking: not compressed.
    let reply = raw_call(&gw, &path, None, Some("deflate"), list.clone()).await;
    assert_eq!(reply.headers["grpc-encoding"], "deflate");
    assert!(reply.messages[0].0, "compressed with deflate");
    let reply = raw_call(&gw, &path, None, None, list).await;
    assert!(!reply.headers.contains_key("grpc-encoding"));
    assert!(!reply.messages[0].0, "uncompressed when not asked");

    // A small answer is not worth compressing, even when asked.
    let who = frame(true, &deflate(&pb::WhoAmIRequest {}.encode_to_vec()));
    let path = format!("{SERVICE}/WhoAmI");
    let reply = raw_call(&gw, &path, Some("deflate"), Some("gzip"), who).await;
    let [(compressed, payload)] = &reply.messages[..] else {
        panic!("{} messages", reply.messages.len());
    };
    assert!(!compressed, "a small answer is sent as it is");
    let owner = pb::WhoAmIResponse::decode(&payload[..]).expect("WhoAmI");
    assert_eq!(owner.owner, "alice");

    // File bytes are never compressed, however compressible.
    let bytes = text(3 * MIB);
    let document = gw
        .upload_stream("alice", messages(spec("text.txt", None), &bytes, MIB))
        .await
        .expect("upload");
    let read = pb::ReadRequest {
        document_id: document.id,
        read_offset: 0,
        read_limit: 0,
    };
    let path = format!("{SERVICE}/Read");
    let reply = raw_call(
        &gw,
        &path,
        None,
        Some("gzip"),
        frame(false, &read.encode_to_vec()),
    )
    .await;
    assert!(!reply.headers.contains_key("grpc-encoding"));
    assert!(
        reply.messages.len() > 1,
        "{} messages",
        reply.messages.len()
    );
    let mut read_back = Vec::new();
    for (compressed, payload) in &reply.messages {
        assert!(!compressed, "a Read message was compressed");
        read_back.extend(
            pb::ReadResponse::decode(&payload[..])
                .expect("a message")
                .data,
        );
    }
    assert!(read_back == bytes, "Read returns the file");
    gw.stop().await;
}
