//! The tonic handlers. Each one is the same shape: authenticate, parse the
//! request into domain types, call one operation, convert the result. Each
//! runs in its call's span (opened by the RPC layer, see
//! [`crate::telemetry::rpc_span`]), on which it records the owner, the
//! document id, the upload id and the handle.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use tracing::Span;

use crate::gateway::app::MAX_UPLOADS_PER_CONNECTION;
use crate::gateway::documents::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::gateway::domain::{DocumentId, Handle, OwnerId, RequestId, Ttl, UploadId};
use crate::gateway::error::GatewayError;
use crate::gateway::listener::{ConnectionInfo, UploadOnConnection};
use crate::gateway::read::ReadSpec;
use crate::gateway::upload::grpc::{OpenedUpload, checked_spec, open_upload};
use crate::gateway::upload::resumable::Written;
use crate::gateway::{Gateway, compression, convert, events};
use crate::pb::v1 as pb;
use crate::pb::v1::file_gateway_service_server::FileGatewayService;

/// The gRPC face of a [`Gateway`].
#[derive(Debug, Clone)]
pub struct GatewayService {
    gateway: Arc<Gateway>,
}

impl GatewayService {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway }
    }

    fn call_deadline(&self) -> Deadline {
        Deadline::Call(self.gateway.limits.call_timeout)
    }

    /// The caller, recorded on the call's span.
    async fn authenticate(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<OwnerId, GatewayError> {
        let owner = self.gateway.auth.authenticate(metadata).await?;
        Span::current().record("owner", owner.as_str());
        Ok(owner)
    }

    fn ttl(&self, raw: Option<&prost_types::Duration>) -> Result<Ttl, GatewayError> {
        let limits = &self.gateway.limits;
        Ttl::parse(raw, limits.default_ttl, limits.max_ttl)
    }
}

/// How long an operation may run.
#[derive(Clone, Copy)]
enum Deadline {
    /// A unary call: the configured call timeout.
    Call(Duration),
    /// A stream: bounded by its own idle timeout instead.
    Stream,
}

/// Runs an operation and maps its error to a status (logged in the call's
/// span). While the gateway drains, new calls are refused with UNAVAILABLE
/// `DRAINING`; the others are counted until they end, so that shutdown waits
/// for them.
async fn respond<T>(
    gateway: &Gateway,
    deadline: Deadline,
    operation: impl Future<Output = Result<T, GatewayError>>,
) -> Result<Response<T>, Status> {
    let result = match gateway.drain.begin() {
        None => Err(GatewayError::draining()),
        Some(_call) => match deadline {
            Deadline::Stream => operation.await,
            Deadline::Call(limit) => tokio::time::timeout(limit, operation)
                .await
                .unwrap_or(Err(GatewayError::CallTimeout(limit))),
        },
    };
    if let Err(error) = &result {
        let (code, reason) = error.code_and_reason();
        tracing::info!(?code, reason, "rpc failed");
    }
    result.map(Response::new).map_err(Status::from)
}

/// [`respond`] for a call with one answer, which is compressed (when the
/// client accepts it) only if that pays.
async fn respond_unary<M: prost::Message>(
    gateway: &Gateway,
    deadline: Deadline,
    operation: impl Future<Output = Result<M, GatewayError>>,
) -> Result<Response<M>, Status> {
    respond(gateway, deadline, operation)
        .await
        .map(compression::compress_if_it_pays)
}

/// Parses a document id, recorded on the call's span first (even when
/// malformed, so a refused call can be traced).
fn document_id(raw: &str) -> Result<DocumentId, GatewayError> {
    Span::current().record("document_id", raw);
    DocumentId::parse(raw)
}

/// Parses an upload id, recorded on the call's span first.
fn upload_id(raw: &str) -> Result<UploadId, GatewayError> {
    Span::current().record("upload_id", raw);
    UploadId::parse(raw)
}

/// Counts an upload on its connection; RESOURCE_EXHAUSTED past
/// [`MAX_UPLOADS_PER_CONNECTION`], before any of its data is read (its
/// stream is reset and its flow-control window returned).
fn upload_on_connection<T>(
    request: &Request<T>,
) -> Result<Option<UploadOnConnection>, GatewayError> {
    let Some(connection) = request.extensions().get::<ConnectionInfo>() else {
        return Ok(None);
    };
    Span::current().record("connection", connection.id);
    match connection.start_upload(MAX_UPLOADS_PER_CONNECTION) {
        Some(counted) => Ok(Some(counted)),
        None => Err(GatewayError::ResourceExhausted {
            what: "too many uploads on this connection: open another channel",
            reason: "TOO_MANY_UPLOADS_ON_CONNECTION",
            retry_after: Duration::from_secs(1),
        }),
    }
}

fn record_document(id: &str) {
    Span::current().record("document_id", id);
}

/// The stream of a WatchEvents call.
type WatchEventsStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<pb::Event, Status>> + Send>>;

/// The stream of a Read call.
type ReadStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<pb::ReadResponse, Status>> + Send>>;

#[tonic::async_trait]
impl FileGatewayService for GatewayService {
    type WatchEventsStream = WatchEventsStream;
    type ReadStream = ReadStream;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<WatchEventsStream>, Status> {
        respond(&self.gateway, Deadline::Stream, async move {
            let owner = self.authenticate(request.metadata()).await?;
            let request = request.into_inner();
            let include_payload = request.include_payload;
            let stream = self
                .gateway
                .watch_events(owner, request.after_event_id)?
                .map(move |item| {
                    item.map(|row| events::to_proto(row, include_payload))
                        .map_err(Status::from)
                });
            Ok(Box::pin(stream) as WatchEventsStream)
        })
        .await
    }

    async fn read(
        &self,
        request: Request<pb::ReadRequest>,
    ) -> Result<Response<ReadStream>, Status> {
        respond(&self.gateway, Deadline::Stream, async move {
            let owner = self.authenticate(request.metadata()).await?;
            let request = request.into_inner();
            let id = document_id(&request.document_id)?;
            let spec = ReadSpec::parse(request.read_offset, request.read_limit)?;
            let read = self.gateway.read(&owner, &id, spec).await?;
            Span::current().record("handle", read.document.handle.as_str());
            Ok(Box::pin(convert::read_responses(read)) as ReadStream)
        })
        .await
    }

    async fn upload(
        &self,
        request: Request<Streaming<pb::UploadRequest>>,
    ) -> Result<Response<pb::UploadResponse>, Status> {
        let gateway = &self.gateway;
        respond_unary(&self.gateway, Deadline::Stream, async move {
            let owner = self.authenticate(request.metadata()).await?;
            let _on_connection = upload_on_connection(&request)?;
            let limits = &gateway.limits;
            let opened = open_upload(
                request.into_inner(),
                limits.upload_idle_timeout,
                limits.max_upload_bytes,
            )
            .await?
            .counted(&gateway.metrics);
            let row = match opened {
                OpenedUpload::New { spec, bytes } => gateway.upload(&owner, spec, bytes).await?,
                OpenedUpload::Resume {
                    upload_id,
                    offset,
                    bytes,
                } => {
                    Span::current().record("upload_id", upload_id.as_str());
                    match gateway
                        .write_upload(&owner, &upload_id, offset, bytes)
                        .await?
                    {
                        Written::Finished(row) => *row,
                        Written::Persisted(persisted) => {
                            return Ok(pb::UploadResponse {
                                document: None,
                                persisted_bytes: persisted as i64,
                            });
                        }
                    }
                }
            };
            record_document(&row.id);
            Span::current().record("handle", row.handle.as_str());
            Ok(pb::UploadResponse {
                persisted_bytes: row.size_bytes,
                document: Some(convert::document(row)),
            })
        })
        .await
    }

    async fn start_upload(
        &self,
        request: Request<pb::StartUploadRequest>,
    ) -> Result<Response<pb::StartUploadResponse>, Status> {
        respond_unary(&self.gateway, self.call_deadline(), async move {
            let owner = self.authenticate(request.metadata()).await?;
            let request = request.into_inner();
            let spec = request.spec.ok_or_else(|| {
                GatewayError::invalid_because("spec", "SPEC_REQUIRED", "the spec is required")
            })?;
            let spec = checked_spec(&spec, self.gateway.limits.max_upload_bytes)?;
            let started = self.gateway.start_upload(&owner, spec).await?;
            Span::current().record("upload_id", started.upload_id.as_str());
            Ok(pb::StartUploadResponse {
                upload_id: started.upload_id.as_str().to_owned(),
                part_size_bytes: started.part_size as i64,
                expire_time: Some(convert::timestamp_from_micros(started.expires_at)),
            })
        })
        .await
    }

    async fn query_upload(
        &self,
        request: Request<pb::QueryUploadRequest>,
    ) -> Result<Response<pb::QueryUploadResponse>, Status> {
        respond_unary(&self.gateway, self.call_deadline(), async move {
            let owner = self.authenticate(request.metadata()).await?;
            let id = upload_id(&request.into_inner().upload_id)?;
            let status = self.gateway.query_upload(&owner, &id).await?;
            Ok(pb::QueryUploadResponse {
                persisted_bytes: status.persisted_bytes as i64,
                size_bytes: status.size_bytes as i64,
                document: status.document.map(convert::document),
                expire_time: Some(convert::timestamp_from_micros(status.expires_at)),
            })
        })
        .await
    }

    async fn cancel_upload(
        &self,
        request: Request<pb::CancelUploadRequest>,
    ) -> Result<Response<pb::CancelUploadResponse>, Status> {
        respond_unary(&self.gateway, self.call_deadline(), async move {
            let owner = self.authenticate(request.metadata()).await?;
            let id = upload_id(&request.into_inner().upload_id)?;
            self.gateway.cancel_upload(&owner, &id).await?;
            Ok(pb::CancelUploadResponse {})
        })
        .await
    }

    async fn signed_url(
        &self,
        request: Request<pb::SignedUrlRequest>,
    ) -> Result<Response<pb::SignedUrlResponse>, Status> {
        respond_unary(&self.gateway, self.call_deadline(), async move {
            let owner = self.authenticate(request.metadata()).await?;
            let request = request.into_inner();
            let id = document_id(&request.document_id)?;
            let ttl = self.ttl(request.ttl.as_ref())?;
            let signed = self.gateway.signed_url(&owner, &id, ttl).await?;
            Ok(convert::signed_url(signed))
        })
        .await
    }

    async fn thumbnail(
        &self,
        request: Request<pb::ThumbnailRequest>,
    ) -> Result<Response<pb::ThumbnailResponse>, Status> {
        respond_unary(&self.gateway, self.call_deadline(), async move {
            let owner = self.authenticate(request.metadata()).await?;
            let request = request.into_inner();
            let id = document_id(&request.document_id)?;
            let spec = convert::thumbnail_spec(&request)?;
            let ttl = self.ttl(request.ttl.as_ref())?;
            let signed = self.gateway.thumbnail(&owner, &id, spec, ttl).await?;
            Ok(convert::thumbnail(signed))
        })
        .await
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        respond_unary(&self.gateway, self.call_deadline(), async move {
            let owner = self.authenticate(request.metadata()).await?;
            let request = request.into_inner();
            let id = document_id(&request.document_id)?;
            self.gateway.delete(&owner, &id).await?;
            Ok(pb::DeleteResponse {})
        })
        .await
    }

    async fn register_handle(
        &self,
        request: Request<pb::RegisterHandleRequest>,
    ) -> Result<Response<pb::RegisterHandleResponse>, Status> {
        respond_unary(&self.gateway, self.call_deadline(), async move {
            let owner = self.authenticate(request.metadata()).await?;
            let request = request.into_inner();
            let handle = Handle::parse(&request.handle)?;
            Span::current().record("handle", handle.as_str());
            let request_id = RequestId::parse(&request.request_id, "request_id")?;
            let row = self
                .gateway
                .register_handle(&owner, &handle, request_id)
                .await?;
            record_document(&row.id);
            Ok(pb::RegisterHandleResponse {
                document: Some(convert::document(row)),
            })
        })
        .await
    }

    async fn metadata(
        &self,
        request: Request<pb::MetadataRequest>,
    ) -> Result<Response<pb::MetadataResponse>, Status> {
        respond_unary(&self.gateway, self.call_deadline(), async move {
            let owner = self.authenticate(request.metadata()).await?;
            let request = request.into_inner();
            let id = document_id(&request.document_id)?;
            let fields = convert::metadata_fields(&request.fields)?;
            let meta = self.gateway.metadata(&owner, &id, &fields).await?;
            Ok(convert::metadata(meta))
        })
        .await
    }

    async fn get_document(
        &self,
        request: Request<pb::GetDocumentRequest>,
    ) -> Result<Response<pb::GetDocumentResponse>, Status> {
        respond_unary(&self.gateway, self.call_deadline(), async move {
            let owner = self.authenticate(request.metadata()).await?;
            let request = request.into_inner();
            let id = document_id(&request.document_id)?;
            let row = self.gateway.owned_document(&owner, &id).await?;
            Ok(pb::GetDocumentResponse {
                document: Some(convert::document(row)),
            })
        })
        .await
    }

    async fn list_documents(
        &self,
        request: Request<pb::ListDocumentsRequest>,
    ) -> Result<Response<pb::ListDocumentsResponse>, Status> {
        respond_unary(&self.gateway, self.call_deadline(), async move {
            let owner = self.authenticate(request.metadata()).await?;
            let request = request.into_inner();
            let page_size = match request.page_size {
                0 => DEFAULT_PAGE_SIZE,
                n if n > 0 && n as u32 <= MAX_PAGE_SIZE => n as u32,
                _ => {
                    return Err(GatewayError::invalid(
                        "page_size",
                        "must be between 0 and 1000",
                    ));
                }
            };
            let tokens = &self.gateway.page_tokens;
            let cursor = match request.page_token.as_str() {
                "" => None,
                token => Some(tokens.open(&owner, token)?),
            };
            let page = self.gateway.list(&owner, page_size, cursor).await?;
            Ok(pb::ListDocumentsResponse {
                documents: page.documents.into_iter().map(convert::document).collect(),
                next_page_token: page
                    .next
                    .map(|cursor| tokens.seal(&owner, &cursor))
                    .unwrap_or_default(),
            })
        })
        .await
    }

    async fn upload_policy(
        &self,
        request: Request<pb::UploadPolicyRequest>,
    ) -> Result<Response<pb::UploadPolicyResponse>, Status> {
        respond_unary(&self.gateway, self.call_deadline(), async move {
            let owner = self.authenticate(request.metadata()).await?;
            let request = request.into_inner();
            let ttl = self.ttl(request.ttl.as_ref())?;
            let max_size = match request.max_size_bytes {
                0 => None,
                n if n > 0 => Some(n as u64),
                _ => {
                    return Err(GatewayError::invalid(
                        "max_size_bytes",
                        "must not be negative",
                    ));
                }
            };
            let grant = self.gateway.upload_policy(&owner, ttl, max_size)?;
            Ok(convert::upload_grant(grant))
        })
        .await
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        respond_unary(&self.gateway, self.call_deadline(), async move {
            let owner = self.authenticate(request.metadata()).await?;
            Ok(pb::WhoAmIResponse {
                owner: owner.as_str().to_owned(),
            })
        })
        .await
    }
}
