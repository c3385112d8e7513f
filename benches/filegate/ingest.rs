//! The ceiling of gRPC ingest: a server in this process that only drains
//! Upload streams (no hashing, no Filestack), served with tonic's default
//! HTTP/2 windows and with larger ones, fed by the same client as the
//! gateway runs. It tells whether the transport bounds a single upload.

use std::time::{Duration, Instant};

use filegate::pb::v1 as pb;
use filegate::pb::v1::file_gateway_service_server::{FileGatewayService, FileGatewayServiceServer};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, Streaming};

use crate::uploads::{GatewayClient, Payload};

/// HTTP/2 windows of the sink server; `None` keeps tonic's defaults.
#[derive(Debug, Clone, Copy)]
pub struct Windows {
    pub stream: Option<u32>,
    pub connection: Option<u32>,
}

/// Reads every Upload message and answers with the byte count.
struct Sink;

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl FileGatewayService for Sink {
    type WatchEventsStream = tokio_stream::Empty<Result<pb::Event, Status>>;
    type ReadStream = tokio_stream::Empty<Result<pb::ReadResponse, Status>>;

    async fn read(&self, _: Request<pb::ReadRequest>) -> Answer<Self::ReadStream> {
        Err(Status::unimplemented("sink"))
    }

    async fn watch_events(
        &self,
        _: Request<pb::WatchEventsRequest>,
    ) -> Answer<Self::WatchEventsStream> {
        Err(Status::unimplemented("sink"))
    }

    async fn upload(
        &self,
        request: Request<Streaming<pb::UploadRequest>>,
    ) -> Answer<pb::UploadResponse> {
        let mut stream = request.into_inner();
        let mut size = 0i64;
        while let Some(message) = stream.message().await? {
            size += message.data.len() as i64;
        }
        let document = pb::Document {
            size_bytes: size,
            ..Default::default()
        };
        Ok(Response::new(pb::UploadResponse {
            document: Some(document),
            persisted_bytes: size,
        }))
    }
    async fn start_upload(
        &self,
        _: Request<pb::StartUploadRequest>,
    ) -> Answer<pb::StartUploadResponse> {
        Err(Status::unimplemented("sink"))
    }
    async fn query_upload(
        &self,
        _: Request<pb::QueryUploadRequest>,
    ) -> Answer<pb::QueryUploadResponse> {
        Err(Status::unimplemented("sink"))
    }
    async fn cancel_upload(
        &self,
        _: Request<pb::CancelUploadRequest>,
    ) -> Answer<pb::CancelUploadResponse> {
        Err(Status::unimplemented("sink"))
    }
    async fn signed_url(&self, _: Request<pb::SignedUrlRequest>) -> Answer<pb::SignedUrlResponse> {
        Err(Status::unimplemented("sink"))
    }
    async fn thumbnail(&self, _: Request<pb::ThumbnailRequest>) -> Answer<pb::ThumbnailResponse> {
        Err(Status::unimplemented("sink"))
    }
    async fn delete(&self, _: Request<pb::DeleteRequest>) -> Answer<pb::DeleteResponse> {
        Err(Status::unimplemented("sink"))
    }
    async fn register_handle(
        &self,
        _: Request<pb::RegisterHandleRequest>,
    ) -> Answer<pb::RegisterHandleResponse> {
        Err(Status::unimplemented("sink"))
    }
    async fn metadata(&self, _: Request<pb::MetadataRequest>) -> Answer<pb::MetadataResponse> {
        Err(Status::unimplemented("sink"))
    }
    async fn get_document(
        &self,
        _: Request<pb::GetDocumentRequest>,
    ) -> Answer<pb::GetDocumentResponse> {
        Err(Status::unimplemented("sink"))
    }
    async fn list_documents(
        &self,
        _: Request<pb::ListDocumentsRequest>,
    ) -> Answer<pb::ListDocumentsResponse> {
        Err(Status::unimplemented("sink"))
    }
    async fn upload_policy(
        &self,
        _: Request<pb::UploadPolicyRequest>,
    ) -> Answer<pb::UploadPolicyResponse> {
        Err(Status::unimplemented("sink"))
    }
    async fn who_am_i(&self, _: Request<pb::WhoAmIRequest>) -> Answer<pb::WhoAmIResponse> {
        Err(Status::unimplemented("sink"))
    }
}

/// Median MiB/s of `runs` uploads of `size` bytes into a sink served with
/// `windows`.
pub async fn drain_rate(
    windows: Windows,
    payload: &Payload,
    size: usize,
    runs: usize,
) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let service = FileGatewayServiceServer::new(Sink).max_decoding_message_size(8 << 20);
    let server = tonic::transport::Server::builder()
        .initial_stream_window_size(windows.stream)
        .initial_connection_window_size(windows.connection)
        .add_service(service)
        .serve_with_incoming(TcpListenerStream::new(listener));
    let server = tokio::spawn(server);
    let mut client = GatewayClient::connect(&url, "sink").await?;
    let mut rates = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let document = client.upload("sink.bin", payload.chunks(size)).await?;
        let elapsed: Duration = started.elapsed();
        anyhow::ensure!(document.size_bytes == size as i64, "the sink lost bytes");
        rates.push((size >> 20) as f64 / elapsed.as_secs_f64());
    }
    server.abort();
    Ok(crate::report::median(&rates))
}
