//! Document operations other than upload: signed URLs, thumbnails, delete,
//! register, metadata, get, list and the browser upload policy.

use crate::db::{DocumentRow, InsertOutcome, PageCursor};
use crate::filestack::policy::{Call, Policy, Security};
use crate::filestack::urls::{self, Resize, Transform};
use crate::filestack::{
    FilestackError, Metadata, MetadataField, SignedUrl, expiry_in, regex_escape,
};
use crate::gateway::domain::{
    ContentType, DocumentId, Filename, Fit, Handle, ImageFormat, OwnerId, RequestId, ThumbnailSpec,
    Ttl,
};
use crate::gateway::error::GatewayError;
use crate::gateway::{Gateway, now_micros};

/// A policy for a browser upload.
#[derive(Debug, Clone)]
pub struct UploadGrant {
    pub api_key: String,
    pub security: Security,
    pub expires_at: i64,
    pub path: String,
    pub max_size: u64,
}

/// One page of documents.
#[derive(Debug)]
pub struct DocumentPage {
    pub documents: Vec<DocumentRow>,
    pub next: Option<PageCursor>,
}

impl Gateway {
    /// The caller's document, or NOT_FOUND / PERMISSION_DENIED.
    pub(crate) async fn owned_document(
        &self,
        owner: &OwnerId,
        id: &DocumentId,
    ) -> Result<DocumentRow, GatewayError> {
        let row = self
            .db
            .document(id.as_str())
            .await?
            .ok_or(GatewayError::NotFound { what: "document" })?;
        if row.owner != owner.as_str() {
            return Err(GatewayError::PermissionDenied {
                reason: "NOT_DOCUMENT_OWNER",
            });
        }
        Ok(row)
    }

    /// A download URL whose policy allows `read` of this handle only.
    pub async fn signed_url(
        &self,
        owner: &OwnerId,
        id: &DocumentId,
        ttl: Ttl,
    ) -> Result<SignedUrl, GatewayError> {
        let doc = self.owned_document(owner, id).await?;
        Ok(self
            .filestack
            .download_url(&doc.handle, ttl.as_duration())?)
    }

    /// A thumbnail URL whose policy allows `read` and `convert` of this
    /// handle only.
    pub async fn thumbnail(
        &self,
        owner: &OwnerId,
        id: &DocumentId,
        spec: ThumbnailSpec,
        ttl: Ttl,
    ) -> Result<SignedUrl, GatewayError> {
        let doc = self.owned_document(owner, id).await?;
        if !doc.content_type.starts_with("image/") {
            return Err(GatewayError::NotAnImage);
        }
        let transform = thumbnail_transform(&doc.handle, &spec);
        Ok(self
            .filestack
            .thumbnail_url(&transform, ttl.as_duration())?)
    }

    /// Deletes the file at Filestack, then the row. A file already gone at
    /// Filestack still lets the row go; Filestack unavailable keeps the row.
    pub async fn delete(&self, owner: &OwnerId, id: &DocumentId) -> Result<(), GatewayError> {
        let doc = self.owned_document(owner, id).await?;
        match self.filestack.delete(&doc.handle).await {
            Ok(()) => {}
            Err(FilestackError::NotFound) => {
                tracing::info!(handle = %doc.handle, "file already gone at Filestack");
            }
            Err(error) => return Err(error.into()),
        }
        self.db.delete_document(id.as_str()).await?;
        Ok(())
    }

    /// Records a file a browser uploaded straight to Filestack.
    pub async fn register_handle(
        &self,
        owner: &OwnerId,
        handle: &Handle,
        request_id: Option<RequestId>,
    ) -> Result<DocumentRow, GatewayError> {
        if let Some(existing) = self.db.document_by_handle(handle.as_str()).await? {
            let same_request = request_id
                .as_ref()
                .is_some_and(|r| existing.request_id.as_deref() == Some(r.as_str()));
            if existing.owner == owner.as_str() && same_request {
                return Ok(existing);
            }
            return Err(GatewayError::AlreadyExists);
        }
        let fields = [
            MetadataField::Size,
            MetadataField::Mimetype,
            MetadataField::Filename,
            MetadataField::Path,
        ];
        let meta = self.filestack.metadata(handle.as_str(), &fields).await?;
        let path = meta.path.clone().unwrap_or_default();
        if !path.starts_with(&owner.upload_prefix()) {
            return Err(GatewayError::PermissionDenied {
                reason: "HANDLE_OUTSIDE_OWNER_PATH",
            });
        }
        // A browser chose the name and Filestack reported the type: what an
        // upload would refuse is left out (characters of the name such as
        // bidirectional overrides; a type that is no MIME type, which is
        // then guessed from the name as for an upload without one).
        let filename = meta
            .filename
            .as_deref()
            .and_then(Filename::cleaned)
            .map_or_else(|| Filename::parse(handle.as_str()), Ok)?;
        let content_type =
            ContentType::parse_or_guess(meta.mimetype.as_deref().unwrap_or(""), &filename)
                .or_else(|_| ContentType::parse_or_guess("", &filename))?;
        let row = DocumentRow {
            id: DocumentId::generate().as_str().to_owned(),
            owner: owner.as_str().to_owned(),
            handle: handle.as_str().to_owned(),
            url: urls::cdn_url(&self.filestack.config().cdn_url, handle.as_str()),
            filename: filename.as_str().to_owned(),
            content_type: content_type.as_str().to_owned(),
            size_bytes: i64::try_from(meta.size.unwrap_or(0)).unwrap_or(i64::MAX),
            sha256: None,
            request_id: request_id.map(|r| r.as_str().to_owned()),
            origin: "register".to_owned(),
            created_at: now_micros(),
        };
        match self.db.insert_document(&row, None).await? {
            InsertOutcome::Inserted => Ok(row),
            InsertOutcome::DuplicateRequest(existing) if existing.handle == row.handle => {
                Ok(*existing)
            }
            InsertOutcome::DuplicateRequest(_) => {
                Err(GatewayError::RequestIdReused("handle".to_owned()))
            }
            InsertOutcome::HandleTaken => Err(GatewayError::AlreadyExists),
        }
    }

    /// Metadata read from Filestack with a `stat` policy pinned to the handle.
    pub async fn metadata(
        &self,
        owner: &OwnerId,
        id: &DocumentId,
        fields: &[MetadataField],
    ) -> Result<Metadata, GatewayError> {
        let doc = self.owned_document(owner, id).await?;
        let fields = if fields.is_empty() {
            &DEFAULT_METADATA[..]
        } else {
            fields
        };
        Ok(self.filestack.metadata(&doc.handle, fields).await?)
    }

    /// One page of the caller's documents, newest first.
    pub async fn list(
        &self,
        owner: &OwnerId,
        page_size: u32,
        after: Option<PageCursor>,
    ) -> Result<DocumentPage, GatewayError> {
        let limit = i64::from(page_size) + 1;
        let mut documents = self
            .db
            .list_documents(owner.as_str(), limit, after.as_ref())
            .await?;
        let next = if documents.len() > page_size as usize {
            documents.truncate(page_size as usize);
            documents.last().map(PageCursor::after)
        } else {
            None
        };
        Ok(DocumentPage { documents, next })
    }

    /// A `pick`-only policy pinned to the caller's path and a size limit.
    pub fn upload_policy(
        &self,
        owner: &OwnerId,
        ttl: Ttl,
        max_size: Option<u64>,
    ) -> Result<UploadGrant, GatewayError> {
        let cap = self.limits.max_upload_bytes;
        let max_size = match max_size {
            None => cap,
            Some(size) if (1..=cap).contains(&size) => size,
            Some(_) => {
                return Err(GatewayError::invalid(
                    "max_size_bytes",
                    format!("must be between 1 and {cap} bytes"),
                ));
            }
        };
        let expires_at = expiry_in(ttl.as_duration());
        let path = owner.upload_prefix();
        let policy = Policy::new(expires_at, &[Call::Pick])
            .with_path(format!("^{}.*", regex_escape(&path)))
            .with_max_size(max_size);
        Ok(UploadGrant {
            api_key: self.filestack.config().api_key.clone(),
            security: self.filestack.sign(&policy),
            expires_at,
            path,
            max_size,
        })
    }
}

/// Default page size of ListDocuments.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page size of ListDocuments.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// What Metadata returns when no field is asked for (Filestack's defaults).
const DEFAULT_METADATA: [MetadataField; 8] = [
    MetadataField::Size,
    MetadataField::Mimetype,
    MetadataField::Filename,
    MetadataField::Uploaded,
    MetadataField::Writeable,
    MetadataField::Location,
    MetadataField::Path,
    MetadataField::Container,
];

/// The CDN tasks of a thumbnail: resize, then enhance, then output.
fn thumbnail_transform(handle: &str, spec: &ThumbnailSpec) -> Transform {
    let fit = match spec.fit {
        Fit::Clip => urls::Fit::Clip,
        Fit::Crop => urls::Fit::Crop,
        Fit::Scale => urls::Fit::Scale,
        Fit::Max => urls::Fit::Max,
    };
    let resize = Resize {
        width: Some(spec.width),
        height: Some(spec.height),
        fit: Some(fit),
        align: None,
    };
    let mut transform = Transform::new(handle).resize(resize);
    if spec.enhance {
        transform = transform.enhance();
    }
    if let Some(format) = spec.format {
        let format = match format {
            ImageFormat::Jpg => urls::Format::Jpg,
            ImageFormat::Png => urls::Format::Png,
            ImageFormat::Webp => urls::Format::Webp,
            ImageFormat::Gif => urls::Format::Gif,
        };
        transform = transform.output(format, None);
    }
    transform
}
