//! One typed helper per RPC of `filegate.v1.FileGatewayService`, called as a
//! user (`sub`) with a valid token over a new connection, and the messages
//! an upload is made of. Tests that build odd requests use [`Rpc::client`]
//! and [`Rpc::request`] directly.

use filegate::pb::v1 as pb;
use filegate::pb::v1::file_gateway_service_client::FileGatewayServiceClient;
use tonic::transport::Channel;
use tonic::{Status, Streaming};
use tonic_types::StatusExt;

use crate::MIB;
use crate::auth::authed;

pub type GatewayClient = FileGatewayServiceClient<Channel>;

/// A new connection to `grpc_url`, accepting messages of up to 8 MiB.
pub async fn connect(grpc_url: String) -> GatewayClient {
    GatewayClient::connect(grpc_url)
        .await
        .expect("gRPC connects")
        .max_decoding_message_size(8 * MIB)
        .max_encoding_message_size(8 * MIB)
}

/// The field a status's BadRequest names first, if any.
pub fn field(status: &Status) -> Option<String> {
    let details = status.get_error_details();
    let violation = details.bad_request()?.field_violations.first()?;
    Some(violation.field.clone())
}

/// The stable reason of a status's ErrorInfo (empty without one).
pub fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// An upload spec with a filename and, if given, a declared size.
pub fn spec(filename: &str, size: Option<i64>) -> pb::UploadSpec {
    pb::UploadSpec {
        filename: filename.into(),
        size_bytes: size,
        ..Default::default()
    }
}

/// `spec` with an idempotency key.
pub fn with_request_id(spec: pb::UploadSpec, request_id: &str) -> pb::UploadSpec {
    pb::UploadSpec {
        request_id: request_id.into(),
        ..spec
    }
}

/// The first message of an upload: the spec alone.
pub fn spec_message(spec: pb::UploadSpec) -> pb::UploadRequest {
    first_message(spec, &[])
}

/// The first message of an upload: the spec and `data`.
pub fn first_message(spec: pb::UploadSpec, data: &[u8]) -> pb::UploadRequest {
    pb::UploadRequest {
        first_message: Some(pb::upload_request::FirstMessage::Spec(spec)),
        data: data.to_vec().into(),
        ..Default::default()
    }
}

/// A message of bytes after the first.
pub fn data_message(data: &[u8]) -> pb::UploadRequest {
    pb::UploadRequest {
        data: data.to_vec().into(),
        ..Default::default()
    }
}

/// The spec in the first message, then the bytes in `chunk`-sized messages.
pub fn messages(spec: pb::UploadSpec, bytes: &[u8], chunk: usize) -> Vec<pb::UploadRequest> {
    let mut out = vec![spec_message(spec)];
    out.extend(bytes.chunks(chunk).map(data_message));
    out
}

/// As [`messages`], each message of bytes with its `write_offset`.
pub fn messages_with_offsets(
    spec: pb::UploadSpec,
    bytes: &[u8],
    chunk: usize,
) -> Vec<pb::UploadRequest> {
    let mut out = messages(spec, bytes, chunk);
    for (index, message) in out.iter_mut().skip(1).enumerate() {
        message.write_offset = (index * chunk) as i64;
    }
    out
}

/// A thumbnail of `width` x `height` with the default fit, format and TTL.
pub fn thumb(id: &str, width: i32, height: i32) -> pb::ThumbnailRequest {
    pb::ThumbnailRequest {
        document_id: id.into(),
        width,
        height,
        ..Default::default()
    }
}

/// What a Read stream delivered, up to its end or its error.
#[derive(Debug, Default)]
pub struct ReadOutcome {
    /// The first message's document and range.
    pub document: Option<pb::Document>,
    pub range: Option<pb::ContentRange>,
    /// Every byte received, in order.
    pub bytes: Vec<u8>,
    /// The size of each message's data, in order.
    pub message_sizes: Vec<usize>,
    /// Messages after the first that carried a document or a range.
    pub repeated_headers: usize,
    /// The status the stream ended with, if not OK.
    pub error: Option<Status>,
}

impl ReadOutcome {
    /// `(start, end, complete_length)` of the range the first message gave.
    pub fn span(&self) -> (i64, i64, i64) {
        let range = self.range.as_ref().expect("a range in the first message");
        (range.start, range.end, range.complete_length)
    }
}

fn ttl(seconds: Option<i64>) -> Option<prost_types::Duration> {
    seconds.map(|seconds| prost_types::Duration { seconds, nanos: 0 })
}

/// A gateway to call: where it listens and how a user gets a token.
///
/// The helpers are awaited where they are called, never spawned, so their
/// futures need no `Send` bound.
#[allow(async_fn_in_trait)]
pub trait Rpc {
    /// `http://host:port` of the gRPC listener.
    fn grpc_url(&self) -> String;

    /// A token for `sub` that the gateway accepts.
    fn token(&self, sub: &str) -> String;

    /// `message` with a bearer token for `sub`.
    fn request<T>(&self, sub: &str, message: T) -> tonic::Request<T> {
        authed(&self.token(sub), message)
    }

    /// A new connection, accepting messages of up to 8 MiB.
    async fn client(&self) -> GatewayClient {
        connect(self.grpc_url()).await
    }

    /// Upload of `messages`.
    async fn upload_stream(
        &self,
        sub: &str,
        messages: Vec<pb::UploadRequest>,
    ) -> Result<pb::Document, Status> {
        let request = self.request(sub, tokio_stream::iter(messages));
        let response = self.client().await.upload(request).await?;
        Ok(response.into_inner().document.expect("a document"))
    }

    /// StartUpload of `spec`.
    async fn start_upload(
        &self,
        sub: &str,
        spec: pb::UploadSpec,
    ) -> Result<pb::StartUploadResponse, Status> {
        let request = pb::StartUploadRequest { spec: Some(spec) };
        let mut client = self.client().await;
        Ok(client
            .start_upload(self.request(sub, request))
            .await?
            .into_inner())
    }

    async fn query_upload(&self, sub: &str, id: &str) -> Result<pb::QueryUploadResponse, Status> {
        let request = pb::QueryUploadRequest {
            upload_id: id.into(),
        };
        let mut client = self.client().await;
        Ok(client
            .query_upload(self.request(sub, request))
            .await?
            .into_inner())
    }

    async fn cancel_upload(&self, sub: &str, id: &str) -> Result<(), Status> {
        let request = pb::CancelUploadRequest {
            upload_id: id.into(),
        };
        let mut client = self.client().await;
        client.cancel_upload(self.request(sub, request)).await?;
        Ok(())
    }

    /// An Upload stream that continues resumable upload `id` from `offset`
    /// with `bytes`, in messages of `chunk` bytes.
    async fn resume_upload(
        &self,
        sub: &str,
        id: &str,
        offset: u64,
        bytes: &[u8],
        chunk: usize,
    ) -> Result<pb::UploadResponse, Status> {
        let messages = resume_messages(id, offset, bytes, chunk);
        let request = self.request(sub, tokio_stream::iter(messages));
        Ok(self.client().await.upload(request).await?.into_inner())
    }

    /// Upload of `bytes` as `filename`, in one message; it must succeed.
    async fn upload(&self, sub: &str, filename: &str, bytes: Vec<u8>) -> pb::Document {
        let message = first_message(spec(filename, None), &bytes);
        self.upload_stream(sub, vec![message])
            .await
            .expect("upload")
    }

    /// SignedUrl, valid for `ttl` seconds (the default without).
    async fn signed_url(
        &self,
        sub: &str,
        id: &str,
        ttl_secs: Option<i64>,
    ) -> Result<pb::SignedUrlResponse, Status> {
        let request = pb::SignedUrlRequest {
            document_id: id.into(),
            ttl: ttl(ttl_secs),
        };
        let mut client = self.client().await;
        let response = client.signed_url(self.request(sub, request)).await?;
        Ok(response.into_inner())
    }

    async fn thumbnail(
        &self,
        sub: &str,
        request: pb::ThumbnailRequest,
    ) -> Result<pb::ThumbnailResponse, Status> {
        let mut client = self.client().await;
        let response = client.thumbnail(self.request(sub, request)).await?;
        Ok(response.into_inner())
    }

    async fn delete(&self, sub: &str, id: &str) -> Result<(), Status> {
        let request = pb::DeleteRequest {
            document_id: id.into(),
        };
        self.client()
            .await
            .delete(self.request(sub, request))
            .await?;
        Ok(())
    }

    /// RegisterHandle; the document it answers.
    async fn register_handle(
        &self,
        sub: &str,
        handle: &str,
        request_id: &str,
    ) -> Result<pb::Document, Status> {
        let request = pb::RegisterHandleRequest {
            handle: handle.into(),
            request_id: request_id.into(),
        };
        let mut client = self.client().await;
        let response = client.register_handle(self.request(sub, request)).await?;
        Ok(response.into_inner().document.expect("a document"))
    }

    /// Metadata of `fields` (the default fields when empty).
    async fn metadata(
        &self,
        sub: &str,
        id: &str,
        fields: &[pb::MetadataField],
    ) -> Result<pb::MetadataResponse, Status> {
        let request = pb::MetadataRequest {
            document_id: id.into(),
            fields: fields.iter().map(|f| *f as i32).collect(),
        };
        let mut client = self.client().await;
        let response = client.metadata(self.request(sub, request)).await?;
        Ok(response.into_inner())
    }

    async fn get_document(&self, sub: &str, id: &str) -> Result<pb::Document, Status> {
        let request = pb::GetDocumentRequest {
            document_id: id.into(),
        };
        let mut client = self.client().await;
        let response = client.get_document(self.request(sub, request)).await?;
        Ok(response.into_inner().document.expect("a document"))
    }

    async fn list_documents(
        &self,
        sub: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ListDocumentsResponse, Status> {
        let request = pb::ListDocumentsRequest {
            page_size,
            page_token: page_token.into(),
        };
        let mut client = self.client().await;
        let response = client.list_documents(self.request(sub, request)).await?;
        Ok(response.into_inner())
    }

    /// UploadPolicy with the default TTL.
    async fn upload_policy(
        &self,
        sub: &str,
        max_size_bytes: i64,
    ) -> Result<pb::UploadPolicyResponse, Status> {
        let request = pb::UploadPolicyRequest {
            ttl: None,
            max_size_bytes,
        };
        let mut client = self.client().await;
        let response = client.upload_policy(self.request(sub, request)).await?;
        Ok(response.into_inner())
    }

    /// WhoAmI; the owner it names.
    async fn who_am_i(&self, sub: &str) -> Result<String, Status> {
        let request = self.request(sub, pb::WhoAmIRequest {});
        let response = self.client().await.who_am_i(request).await?;
        Ok(response.into_inner().owner)
    }

    /// Read of `read_limit` bytes from `read_offset`, gathered until the
    /// stream ends; a call refused before any message is `Err`, as is a
    /// stream that ends with an error.
    async fn read(
        &self,
        sub: &str,
        id: &str,
        read_offset: i64,
        read_limit: i64,
    ) -> Result<ReadOutcome, Status> {
        let outcome = self.read_outcome(sub, id, read_offset, read_limit).await?;
        match outcome.error {
            Some(status) => Err(status),
            None => Ok(outcome),
        }
    }

    /// As [`Rpc::read`], keeping what arrived before a stream's error.
    async fn read_outcome(
        &self,
        sub: &str,
        id: &str,
        read_offset: i64,
        read_limit: i64,
    ) -> Result<ReadOutcome, Status> {
        let request = pb::ReadRequest {
            document_id: id.into(),
            read_offset,
            read_limit,
        };
        let mut client = self.client().await;
        let mut stream = client.read(self.request(sub, request)).await?.into_inner();
        let mut outcome = ReadOutcome::default();
        loop {
            match stream.message().await {
                Ok(Some(message)) => {
                    if outcome.message_sizes.is_empty() {
                        outcome.document = message.document;
                        outcome.range = message.content_range;
                    } else if message.document.is_some() || message.content_range.is_some() {
                        outcome.repeated_headers += 1;
                    }
                    outcome.message_sizes.push(message.data.len());
                    outcome.bytes.extend_from_slice(&message.data);
                }
                Ok(None) => return Ok(outcome),
                Err(status) => {
                    outcome.error = Some(status);
                    return Ok(outcome);
                }
            }
        }
    }

    /// WatchEvents after the event id `after`.
    async fn watch_events(
        &self,
        sub: &str,
        after: i64,
        include_payload: bool,
    ) -> Result<Streaming<pb::Event>, Status> {
        let request = pb::WatchEventsRequest {
            after_event_id: after,
            include_payload,
        };
        let mut client = self.client().await;
        let response = client.watch_events(self.request(sub, request)).await?;
        Ok(response.into_inner())
    }
}

/// The messages of an Upload stream that continues resumable upload `id`
/// from `offset` with `bytes` (at least one message, even without bytes).
pub fn resume_messages(
    id: &str,
    offset: u64,
    bytes: &[u8],
    chunk: usize,
) -> Vec<pb::UploadRequest> {
    let mut messages: Vec<pb::UploadRequest> = bytes.chunks(chunk).map(data_message).collect();
    if messages.is_empty() {
        messages.push(data_message(&[]));
    }
    messages[0].first_message = Some(pb::upload_request::FirstMessage::UploadId(id.into()));
    messages[0].write_offset = offset as i64;
    messages
}

/// An Upload whose messages the test sends one at a time, the call running
/// in a task: to hold an upload open, cut it, or race it with others.
pub struct OpenUpload {
    pub tx: tokio::sync::mpsc::Sender<pb::UploadRequest>,
    pub call: tokio::task::JoinHandle<Result<pb::Document, Status>>,
}

impl OpenUpload {
    /// Opens an Upload as `sub` on `client`'s connection and sends `first`.
    pub async fn open(
        rpc: &impl Rpc,
        client: &GatewayClient,
        sub: &str,
        first: Vec<pb::UploadRequest>,
    ) -> OpenUpload {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let request = rpc.request(sub, tokio_stream::wrappers::ReceiverStream::new(rx));
        let mut client = client.clone();
        let call = tokio::spawn(async move {
            let response = client.upload(request).await?.into_inner();
            response
                .document
                .ok_or_else(|| Status::internal("the answer has no document"))
        });
        for message in first {
            tx.send(message).await.expect("queued");
        }
        OpenUpload { tx, call }
    }

    /// Sends `bytes` and the end of the stream; the call's result.
    pub async fn finish(self, bytes: &[u8]) -> Result<pb::Document, Status> {
        for chunk in bytes.chunks(MIB) {
            self.tx.send(data_message(chunk)).await.expect("queued");
        }
        drop(self.tx);
        tokio::time::timeout(std::time::Duration::from_secs(15), self.call)
            .await
            .expect("the upload ends in time")
            .expect("upload task")
    }
}
