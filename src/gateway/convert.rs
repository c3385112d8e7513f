//! Conversions between checked domain values and proto messages.

use futures_util::{Stream, StreamExt};

use crate::db::DocumentRow;
use crate::filestack::{Metadata, MetadataField, SignedUrl};
use crate::gateway::documents::UploadGrant;
use crate::gateway::domain::{Fit, ImageFormat, ThumbnailSpec};
use crate::gateway::error::GatewayError;
use crate::gateway::read::DocumentRead;
use crate::pb::v1 as pb;

pub fn document(row: DocumentRow) -> pb::Document {
    pb::Document {
        id: row.id,
        handle: row.handle,
        url: row.url,
        filename: row.filename,
        content_type: row.content_type,
        size_bytes: row.size_bytes,
        sha256: row.sha256.unwrap_or_default(),
        create_time: Some(timestamp_from_micros(row.created_at)),
        owner: row.owner,
    }
}

/// The messages of a Read: the first carries the document and the range.
pub fn read_responses(
    read: DocumentRead,
) -> impl Stream<Item = Result<pb::ReadResponse, tonic::Status>> + Send + 'static {
    let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut first = Some((
        document(read.document),
        pb::ContentRange {
            start: to_i64(read.start),
            end: to_i64(read.end),
            complete_length: to_i64(read.size),
        },
    ));
    read.messages.map(move |message| {
        let data = message?;
        let (document, content_range) = first.take().unzip();
        Ok(pb::ReadResponse {
            document,
            content_range,
            data,
        })
    })
}

pub fn timestamp_from_micros(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

pub fn timestamp_from_secs(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

pub fn signed_url(signed: SignedUrl) -> pb::SignedUrlResponse {
    pb::SignedUrlResponse {
        url: signed.url,
        expire_time: Some(timestamp_from_secs(signed.expires_at)),
    }
}

pub fn thumbnail(signed: SignedUrl) -> pb::ThumbnailResponse {
    pb::ThumbnailResponse {
        url: signed.url,
        expire_time: Some(timestamp_from_secs(signed.expires_at)),
    }
}

pub fn upload_grant(grant: UploadGrant) -> pb::UploadPolicyResponse {
    pb::UploadPolicyResponse {
        api_key: grant.api_key,
        policy: grant.security.policy,
        signature: grant.security.signature,
        expire_time: Some(timestamp_from_secs(grant.expires_at)),
        path: grant.path,
        max_size_bytes: i64::try_from(grant.max_size).unwrap_or(i64::MAX),
    }
}

pub fn thumbnail_spec(request: &pb::ThumbnailRequest) -> Result<ThumbnailSpec, GatewayError> {
    let width = ThumbnailSpec::parse_dimension(request.width, "width")?;
    let height = ThumbnailSpec::parse_dimension(request.height, "height")?;
    let fit = match pb::Fit::try_from(request.fit) {
        Ok(pb::Fit::Unspecified | pb::Fit::Crop) => Fit::Crop,
        Ok(pb::Fit::Clip) => Fit::Clip,
        Ok(pb::Fit::Scale) => Fit::Scale,
        Ok(pb::Fit::Max) => Fit::Max,
        Err(_) => return Err(GatewayError::invalid("fit", "unknown fit")),
    };
    let format = match pb::ImageFormat::try_from(request.format) {
        Ok(pb::ImageFormat::Unspecified) => None,
        Ok(pb::ImageFormat::Jpg) => Some(ImageFormat::Jpg),
        Ok(pb::ImageFormat::Png) => Some(ImageFormat::Png),
        Ok(pb::ImageFormat::Webp) => Some(ImageFormat::Webp),
        Ok(pb::ImageFormat::Gif) => Some(ImageFormat::Gif),
        Err(_) => return Err(GatewayError::invalid("format", "unknown image format")),
    };
    Ok(ThumbnailSpec {
        width,
        height,
        fit,
        enhance: request.enhance.unwrap_or(true),
        format,
    })
}

/// Most entries a Metadata request may list (there are 12 fields; a field
/// listed twice is read once).
pub const MAX_METADATA_FIELDS: usize = 64;

/// The fields asked for, each once, in the order first asked.
pub fn metadata_fields(raw: &[i32]) -> Result<Vec<MetadataField>, GatewayError> {
    if raw.len() > MAX_METADATA_FIELDS {
        return Err(GatewayError::invalid(
            "fields",
            format!("at most {MAX_METADATA_FIELDS} entries"),
        ));
    }
    let mut fields: Vec<MetadataField> = Vec::with_capacity(raw.len());
    for field in raw.iter().map(|&value| {
        let field = match pb::MetadataField::try_from(value) {
            Ok(pb::MetadataField::Size) => MetadataField::Size,
            Ok(pb::MetadataField::Mimetype) => MetadataField::Mimetype,
            Ok(pb::MetadataField::Filename) => MetadataField::Filename,
            Ok(pb::MetadataField::Width) => MetadataField::Width,
            Ok(pb::MetadataField::Height) => MetadataField::Height,
            Ok(pb::MetadataField::Uploaded) => MetadataField::Uploaded,
            Ok(pb::MetadataField::Writeable) => MetadataField::Writeable,
            Ok(pb::MetadataField::Md5) => MetadataField::Md5,
            Ok(pb::MetadataField::Sha256) => MetadataField::Sha256,
            Ok(pb::MetadataField::Path) => MetadataField::Path,
            Ok(pb::MetadataField::Container) => MetadataField::Container,
            Ok(pb::MetadataField::Location) => MetadataField::Location,
            Ok(pb::MetadataField::Unspecified) | Err(_) => {
                return Err(GatewayError::invalid(
                    "fields",
                    format!("unknown field {value}"),
                ));
            }
        };
        Ok(field)
    }) {
        let field = field?;
        if !fields.contains(&field) {
            fields.push(field);
        }
    }
    Ok(fields)
}

pub fn metadata(meta: Metadata) -> pb::MetadataResponse {
    let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let to_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    pb::MetadataResponse {
        size_bytes: meta.size.map(to_i64),
        mimetype: meta.mimetype,
        filename: meta.filename,
        width: meta.width.map(to_i32),
        height: meta.height.map(to_i32),
        upload_time: meta
            .uploaded
            .map(|ms| timestamp_from_micros((ms * 1000.0) as i64)),
        writeable: meta.writeable,
        md5: meta.md5,
        sha256: meta.sha256,
        path: meta.path,
        container: meta.container,
        location: meta.location,
    }
}
