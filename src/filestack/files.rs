//! The File API: delete, metadata, simple store, and signed delivery URLs
//! (protocol reference, sections 4.1 and 7).

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::filestack::client::FilestackClient;
use crate::filestack::error::FilestackError;
use crate::filestack::http::{check_handle, join, json};
use crate::filestack::policy::Call;
use crate::filestack::retry::{backoff, retry};
use crate::filestack::upload::{StoredFile, UploadSpec, pick_policy};
use crate::filestack::urls::{Transform, signed_url};

/// A metadata field that can be requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataField {
    Size,
    Mimetype,
    Filename,
    Width,
    Height,
    Uploaded,
    Writeable,
    Md5,
    Sha256,
    Path,
    Container,
    Location,
}

impl MetadataField {
    /// The query parameter name.
    pub fn as_str(self) -> &'static str {
        match self {
            MetadataField::Size => "size",
            MetadataField::Mimetype => "mimetype",
            MetadataField::Filename => "filename",
            MetadataField::Width => "width",
            MetadataField::Height => "height",
            MetadataField::Uploaded => "uploaded",
            MetadataField::Writeable => "writeable",
            MetadataField::Md5 => "md5",
            MetadataField::Sha256 => "sha256",
            MetadataField::Path => "path",
            MetadataField::Container => "container",
            MetadataField::Location => "location",
        }
    }
}

/// A file's metadata; fields not requested (or null, like `width` of a
/// non-image) are `None`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Metadata {
    pub size: Option<u64>,
    pub mimetype: Option<String>,
    pub filename: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Upload time as Filestack sends it (a number; milliseconds since the epoch assumed).
    pub uploaded: Option<f64>,
    pub writeable: Option<bool>,
    pub md5: Option<String>,
    pub sha256: Option<String>,
    pub path: Option<String>,
    pub container: Option<String>,
    pub location: Option<String>,
    pub key: Option<String>,
}

/// A signed URL and when its policy expires (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUrl {
    pub url: String,
    pub expires_at: i64,
}

/// What `/api/store` answers (the MIME type is under `type`).
#[derive(Debug, Deserialize)]
struct StoreAnswer {
    url: String,
    handle: Option<String>,
    size: Option<u64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    mimetype: Option<String>,
    filename: Option<String>,
}

impl FilestackClient {
    /// Deletes a file: `DELETE {api}/file/HANDLE` with a `remove` policy
    /// pinned to the handle. An unknown handle gives [`FilestackError::NotFound`].
    pub async fn delete(&self, handle: &str) -> Result<(), FilestackError> {
        check_handle(handle)?;
        let security = self.sign(&self.handle_policy(handle, &[Call::Remove], SHORT_TTL));
        let url = join(&self.config.api_url, &format!("file/{handle}"));
        let query = [
            ("key", self.config.api_key.as_str()),
            ("policy", &security.policy),
            ("signature", &security.signature),
        ];
        let secrets = [security.policy.as_str(), security.signature.as_str()];
        let mut attempt = 0;
        retry(
            &self.metrics,
            &self.config.retry,
            "file_delete",
            FilestackError::is_retryable,
            || {
                attempt += 1;
                let retried = attempt > 1;
                let request = self.http.delete(&url).query(&query);
                let secrets = &secrets;
                async move {
                    match self.send("file_delete", request, secrets).await {
                        // An earlier attempt deleted it but its answer was lost.
                        Err(FilestackError::NotFound) if retried => Ok(()),
                        // Accepted is not done: asked again until Filestack
                        // says deleted (or gone), so that the document is
                        // never removed while its file may stay.
                        Ok(response) if response.status() == reqwest::StatusCode::ACCEPTED => {
                            Err(FilestackError::Unavailable {
                                status: Some(202),
                                source: "the delete was accepted, not done".into(),
                            })
                        }
                        other => other.map(drop),
                    }
                }
            },
        )
        .await?;
        tracing::info!(handle, "file deleted");
        Ok(())
    }

    /// Reads the requested metadata fields with a `stat` policy pinned to the
    /// handle (`GET {cdn}/HANDLE/metadata?field=true&...`).
    pub async fn metadata(
        &self,
        handle: &str,
        fields: &[MetadataField],
    ) -> Result<Metadata, FilestackError> {
        check_handle(handle)?;
        let security = self.sign(&self.handle_policy(handle, &[Call::Stat], SHORT_TTL));
        let url = join(&self.config.cdn_url, &format!("{handle}/metadata"));
        let mut query: Vec<(&str, &str)> = fields.iter().map(|f| (f.as_str(), "true")).collect();
        query.push(("policy", &security.policy));
        query.push(("signature", &security.signature));
        let secrets = [security.policy.as_str(), security.signature.as_str()];
        retry(
            &self.metrics,
            &self.config.retry,
            "metadata",
            FilestackError::is_retryable,
            || async {
                let response = self
                    .send("metadata", self.http.get(&url).query(&query), &secrets)
                    .await?;
                json(response, "metadata").await
            },
        )
        .await
    }

    /// A CDN URL that reads the file for `ttl` (`read` pinned to the handle).
    pub fn download_url(&self, handle: &str, ttl: Duration) -> Result<SignedUrl, FilestackError> {
        check_handle(handle)?;
        let policy = self.handle_policy(handle, &[Call::Read], ttl);
        let url = signed_url(&self.config.cdn_url, handle, &self.sign(&policy));
        Ok(SignedUrl {
            url,
            expires_at: policy.expiry,
        })
    }

    /// A signed URL of a transformation (`read` + `convert` pinned to its handle).
    pub fn thumbnail_url(
        &self,
        transform: &Transform,
        ttl: Duration,
    ) -> Result<SignedUrl, FilestackError> {
        let handle = transform.handle();
        check_handle(handle)?;
        let policy = self.handle_policy(handle, &[Call::Read, Call::Convert], ttl);
        let url = transform.signed_url(&self.config.cdn_url, &self.sign(&policy));
        Ok(SignedUrl {
            url,
            expires_at: policy.expiry,
        })
    }

    /// Stores a file in one request (`POST {api}/store/S3`, raw body), after
    /// its size and SHA-256 are checked, under the same `pick` policy a
    /// multipart upload of it would have (size, path and container pinned).
    ///
    /// A store is not idempotent: it is sent again only when an attempt
    /// surely did not reach Filestack (no connection, 429). Once an attempt
    /// may have stored the file (a broken or unreadable answer, a timeout,
    /// 5xx), the result is [`FilestackError::OutcomeUnknown`]: the caller
    /// must keep what it needs to find the file (its storage path).
    pub async fn store(
        &self,
        bytes: Bytes,
        spec: &UploadSpec,
    ) -> Result<StoredFile, FilestackError> {
        let size = bytes.len() as u64;
        if size == 0 {
            return Err(FilestackError::EmptyFile);
        }
        if let Some(declared) = spec.size.filter(|&declared| declared != size) {
            return Err(FilestackError::SizeMismatch {
                declared,
                received: size,
            });
        }
        let sha256 = spec
            .sha256
            .is_wanted()
            .then(|| Sha256::digest(&bytes).into());
        let sha256 = spec.sha256.verify(sha256)?;
        let policy = pick_policy(size, spec.path.as_deref(), spec.container.as_deref());
        let security = self.sign(&policy);
        let url = join(&self.config.api_url, "store/S3");
        let mut query = vec![
            ("key", self.config.api_key.as_str()),
            ("filename", &spec.filename),
            ("mimetype", &spec.mimetype),
            ("policy", &security.policy),
            ("signature", &security.signature),
        ];
        query.extend(spec.path.as_deref().map(|path| ("path", path)));
        query.extend(spec.container.as_deref().map(|c| ("container", c)));
        let secrets = [security.policy.as_str(), security.signature.as_str()];
        let mut failures = 0;
        let answer: StoreAnswer = loop {
            let request = self
                .http
                .post(&url)
                .query(&query)
                .header(reqwest::header::CONTENT_TYPE, &spec.mimetype)
                .body(bytes.clone());
            let attempt = match self.send("store", request, &secrets).await {
                // A 200 whose answer is lost or unreadable stored the file.
                Ok(response) => json(response, "store")
                    .await
                    .map_err(|error| FilestackError::AnswerLost(Box::new(error))),
                Err(error) => Err(error),
            };
            let error = match attempt {
                Ok(answer) => break answer,
                Err(error) => error,
            };
            if error.may_have_reached_upstream() {
                return Err(FilestackError::OutcomeUnknown(Box::new(error)));
            }
            failures += 1;
            if !error.is_retryable() || failures >= self.config.retry.max_attempts {
                return Err(error);
            }
            let delay = backoff(&self.config.retry, failures);
            tracing::warn!(attempt = failures, ?delay, %error, "store did not reach Filestack, retrying");
            tokio::time::sleep(delay).await;
            self.metrics.retried("store");
        };
        stored_file(&self.config.cdn_url, spec, size, sha256, answer)
            .map_err(|error| FilestackError::OutcomeUnknown(Box::new(error)))
    }
}

/// The stored file a store answer names.
fn stored_file(
    cdn_url: &str,
    spec: &UploadSpec,
    size: u64,
    sha256: Option<[u8; 32]>,
    answer: StoreAnswer,
) -> Result<StoredFile, FilestackError> {
    let handle = match answer.handle {
        Some(handle) => handle,
        None => answer.url.rsplit('/').next().unwrap_or_default().to_owned(),
    };
    check_handle(&handle).map_err(|_| FilestackError::Protocol("store: no handle".into()))?;
    let url = match answer.url {
        url if url.is_empty() => join(cdn_url, &handle),
        url => url,
    };
    Ok(StoredFile {
        handle,
        url,
        size: answer.size.unwrap_or(size),
        mimetype: answer
            .mimetype
            .or(answer.kind)
            .unwrap_or_else(|| spec.mimetype.clone()),
        filename: answer.filename.unwrap_or_else(|| spec.filename.clone()),
        sha256,
    })
}

/// Validity of the policies of one File API call.
const SHORT_TTL: Duration = Duration::from_secs(300);
