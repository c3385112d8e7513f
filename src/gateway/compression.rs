//! Message compression: which request encodings are accepted, and when a
//! response is compressed.
//!
//! Requests may be compressed with gzip or deflate (what grpcio, grpc-java,
//! grpc-go and grpc-js send when a channel turns compression on) on every
//! service. zstd is not offered: none of those clients sends it without a
//! plug-in, and it would add a C library to the build. A compressed message is inflated into a buffer bounded by the
//! service's maximum message size: one that inflates past it (a
//! decompression bomb) is refused with `RESOURCE_EXHAUSTED` (unary calls) or
//! `INVALID_ARGUMENT` `STREAM_FAILED` (Upload) after at most that many bytes,
//! never by growing memory.
//!
//! A response is compressed only when the client's `grpc-accept-encoding`
//! asks for it and compression pays: unary answers of at least
//! [`MIN_COMPRESSED_RESPONSE_BYTES`] (a page of documents), never the
//! messages of server streams: Read carries file bytes, which are often
//! compressed already (images, archives) and are checked against their
//! SHA-256 by the caller anyway, and WatchEvents messages are each too small
//! for a compressed message to be smaller.

use std::sync::LazyLock;

use tonic::Response;
use tonic::body::Body;
use tonic::codec::CompressionEncoding;
use tonic::codegen::http;
use tower::util::MapRequestLayer;

/// The encodings accepted in requests and offered for responses, in the
/// order preferred when a client accepts several.
pub const ENCODINGS: [CompressionEncoding; 2] =
    [CompressionEncoding::Gzip, CompressionEncoding::Deflate];

/// Unary answers smaller than this are sent uncompressed: gzip's own framing
/// (18 bytes) and the CPU cost outweigh what it saves.
pub const MIN_COMPRESSED_RESPONSE_BYTES: usize = 1024;

/// The paths of the gateway's server-streaming methods (Read, WatchEvents),
/// whose messages are never compressed: read from the proto's descriptor,
/// so that a new streaming RPC follows the rule too.
static UNCOMPRESSED_STREAMS: LazyLock<Vec<String>> = LazyLock::new(|| {
    crate::pb::methods(&[crate::pb::FILE_DESCRIPTOR_SET])
        .into_iter()
        .filter(|method| method.server_streaming)
        .map(|method| method.path())
        .collect()
});

/// The server layer that applies [`plain_streaming_responses`].
pub type PlainStreamingResponses = MapRequestLayer<fn(http::Request<Body>) -> http::Request<Body>>;

/// [`plain_streaming_responses`] as a layer of the gRPC server.
pub fn plain_streaming_responses_layer() -> PlainStreamingResponses {
    MapRequestLayer::new(plain_streaming_responses::<Body>)
}

/// Removes `grpc-accept-encoding` from calls to the server-streaming
/// methods, so that tonic sends their messages uncompressed. (tonic decides
/// compression once per stream from that header; a stream's messages cannot
/// opt out one by one.)
pub fn plain_streaming_responses<B>(mut request: http::Request<B>) -> http::Request<B> {
    let path = request.uri().path();
    if UNCOMPRESSED_STREAMS.iter().any(|stream| stream == path) {
        request.headers_mut().remove("grpc-accept-encoding");
    }
    request
}

/// Keeps a unary answer uncompressed when it is too small for compression
/// to pay.
pub fn compress_if_it_pays<M: prost::Message>(mut response: Response<M>) -> Response<M> {
    if response.get_ref().encoded_len() < MIN_COMPRESSED_RESPONSE_BYTES {
        response.disable_compression();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(path: &str) -> http::Request<()> {
        http::Request::builder()
            .uri(format!("http://gateway{path}"))
            .header("grpc-accept-encoding", "gzip,deflate")
            .body(())
            .unwrap()
    }

    #[test]
    fn only_streaming_methods_lose_their_accept_encoding() {
        assert_eq!(UNCOMPRESSED_STREAMS.len(), 2, "{:?}", *UNCOMPRESSED_STREAMS);
        for path in [
            "/filegate.v1.FileGatewayService/Read",
            "/filegate.v1.FileGatewayService/WatchEvents",
        ] {
            let request = plain_streaming_responses(call(path));
            assert!(!request.headers().contains_key("grpc-accept-encoding"));
        }
        for path in [
            "/filegate.v1.FileGatewayService/ListDocuments",
            "/filegate.v1.FileGatewayService/Upload",
            "/grpc.health.v1.Health/Check",
        ] {
            let request = plain_streaming_responses(call(path));
            assert_eq!(request.headers()["grpc-accept-encoding"], "gzip,deflate");
        }
    }
}
