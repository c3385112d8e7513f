//! The four calls of a multipart upload (protocol reference, section 5):
//! start, part upload (`/multipart/upload` then `PUT`), and complete.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use reqwest::header::{ETAG, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tracing::Instrument;

use crate::filestack::client::FilestackClient;
use crate::filestack::error::FilestackError;
use crate::filestack::http::{join, json, send};
use crate::filestack::policy::Security;
use crate::filestack::retry::retry;
use crate::filestack::upload::UploadSpec;
use crate::filestack::upload::complete::PendingComplete;
use crate::filestack::upload::parts::Part;

/// Where the file goes (`store` in the JSON bodies).
#[derive(Debug, Serialize)]
pub(crate) struct Store<'a> {
    location: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<&'a str>,
}

/// What `/multipart/start` answered.
#[derive(Debug, Deserialize)]
struct StartAnswer {
    #[serde(default)]
    uri: String,
    #[serde(default)]
    region: String,
    upload_id: String,
    location_url: Option<String>,
}

/// Where to PUT one part.
#[derive(Debug, Deserialize)]
struct PartTarget {
    url: String,
    #[serde(default)]
    headers: HashMap<String, String>,
}

/// One uploaded part, for `/multipart/complete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartEtag {
    pub(crate) part_number: u32,
    pub(crate) etag: String,
}

/// An upload that `/multipart/start` accepted.
pub(crate) struct Session<'a> {
    client: &'a FilestackClient,
    spec: &'a UploadSpec,
    size: u64,
    security: Security,
    answer: StartAnswer,
    /// Scheme and host for every call after start.
    base: String,
}

impl<'a> Session<'a> {
    /// `POST {upload}/multipart/start`, resent only when it surely created nothing.
    pub(crate) async fn start(
        client: &'a FilestackClient,
        spec: &'a UploadSpec,
        size: u64,
        security: Security,
    ) -> Result<Session<'a>, FilestackError> {
        let config = &client.config;
        let body = serde_json::json!({
            "apikey": config.api_key,
            "filename": spec.filename,
            "mimetype": spec.mimetype,
            "size": size,
            "store": store_of(spec),
            "policy": security.policy,
            "signature": security.signature,
        });
        let url = join(&config.upload_url, "multipart/start");
        let secrets = [security.policy.as_str(), security.signature.as_str()];
        let answer: StartAnswer = retry(
            &config.retry,
            "multipart_start",
            FilestackError::is_safe_to_resend,
            || async {
                let response = send(client.http.post(&url).json(&body), &secrets).await?;
                json(response, "multipart/start").await
            },
        )
        .await?;
        let base = location_base(&config.upload_url, answer.location_url.as_deref());
        tracing::debug!(upload_id = %answer.upload_id, %base, "multipart upload started");
        Ok(Session {
            client,
            spec,
            size,
            security,
            answer,
            base,
        })
    }

    /// Uploads part `number` (1-based): asks where, PUTs it, returns its ETag.
    pub(crate) async fn upload_part(
        &self,
        number: u32,
        part: &Part,
    ) -> Result<PartEtag, FilestackError> {
        let bytes = &part.bytes;
        let span = tracing::debug_span!("filestack.part", part = number, size = bytes.len());
        async {
            let md5 = STANDARD.encode(part.md5);
            let target = self.part_target(number, bytes.len(), &md5).await?;
            let headers = header_map(&target.headers)?;
            let url = if target.url.starts_with('/') {
                join(&self.base, &target.url)
            } else {
                target.url
            };
            let config = &self.client.config;
            let etag = retry(
                &config.retry,
                "part_put",
                FilestackError::is_retryable,
                || self.put(&url, &headers, bytes.clone(), number),
            )
            .await?;
            tracing::debug!("part uploaded");
            Ok(PartEtag {
                part_number: number,
                etag,
            })
        }
        .instrument(span)
        .await
    }

    async fn part_target(
        &self,
        number: u32,
        size: usize,
        md5: &str,
    ) -> Result<PartTarget, FilestackError> {
        let config = &self.client.config;
        let body = serde_json::json!({
            "apikey": config.api_key,
            "part": number,
            "size": size,
            "md5": md5,
            "uri": self.answer.uri,
            "region": self.answer.region,
            "upload_id": self.answer.upload_id,
            "store": store_of(self.spec),
            "policy": self.security.policy,
            "signature": self.security.signature,
        });
        let url = join(&self.base, "multipart/upload");
        let secrets = self.secrets();
        retry(
            &config.retry,
            "multipart_upload",
            FilestackError::is_retryable,
            || async {
                let response = send(self.client.http.post(&url).json(&body), &secrets).await?;
                json(response, "multipart/upload").await
            },
        )
        .await
    }

    async fn put(
        &self,
        url: &str,
        headers: &HeaderMap,
        bytes: Bytes,
        number: u32,
    ) -> Result<String, FilestackError> {
        let request = self.client.http.put(url).headers(headers.clone());
        let response = send(request.body(bytes), &[]).await?;
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|value| value.to_str().ok())
            .filter(|value| !value.is_empty())
            .ok_or_else(|| FilestackError::Protocol(format!("part {number}: no ETag")))?;
        Ok(etag.to_owned())
    }

    /// What `/multipart/complete` needs once every part is acknowledged.
    pub(crate) fn pending(&self, parts: Vec<PartEtag>) -> PendingComplete {
        PendingComplete {
            base: self.base.clone(),
            uri: self.answer.uri.clone(),
            region: self.answer.region.clone(),
            upload_id: self.answer.upload_id.clone(),
            filename: self.spec.filename.clone(),
            mimetype: self.spec.mimetype.clone(),
            size: self.size,
            path: self.spec.path.clone(),
            container: self.spec.container.clone(),
            parts,
        }
    }

    fn secrets(&self) -> [&str; 2] {
        [&self.security.policy, &self.security.signature]
    }
}

fn store_of(spec: &UploadSpec) -> Store<'_> {
    store_at(spec.path.as_deref(), spec.container.as_deref())
}

/// The `store` object of a request about a file going to `path` and `container`.
pub(crate) fn store_at<'a>(path: Option<&'a str>, container: Option<&'a str>) -> Store<'a> {
    Store {
        location: "S3",
        path,
        container,
    }
}

/// The base of the calls after start: `location_url` when it is a full URL,
/// else `host[:port]` with the scheme of the upload URL; the upload URL
/// itself when absent.
pub(crate) fn location_base(upload_url: &str, location_url: Option<&str>) -> String {
    let upload_url = upload_url.trim_end_matches('/');
    match location_url.map(str::trim).filter(|l| !l.is_empty()) {
        None => upload_url.to_owned(),
        Some(full) if full.starts_with("http://") || full.starts_with("https://") => {
            full.trim_end_matches('/').to_owned()
        }
        Some(host) => {
            let scheme = upload_url.split_once("://").map_or("https", |(s, _)| s);
            format!("{scheme}://{}", host.trim_end_matches('/'))
        }
    }
}

/// The headers the part PUT must carry, exactly as returned.
fn header_map(headers: &HashMap<String, String>) -> Result<HeaderMap, FilestackError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes());
        let value = HeaderValue::from_str(value);
        match (name, value) {
            (Ok(name), Ok(value)) => map.insert(name, value),
            _ => return Err(FilestackError::Protocol("invalid part header".into())),
        };
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::location_base;

    #[test]
    fn a_bare_location_takes_the_scheme_of_the_upload_url() {
        let base = location_base("http://127.0.0.1:9", Some("127.0.0.1:4000"));
        assert_eq!(base, "http://127.0.0.1:4000");
        let base = location_base("https://upload.filestackapi.com", Some("upload-eu.x.com"));
        assert_eq!(base, "https://upload-eu.x.com");
    }

    #[test]
    fn a_full_or_missing_location_is_used_as_it_is() {
        let base = location_base("https://u.example", Some("http://other:1/"));
        assert_eq!(base, "http://other:1");
        assert_eq!(
            location_base("https://u.example/", None),
            "https://u.example"
        );
        assert_eq!(
            location_base("https://u.example", Some("")),
            "https://u.example"
        );
    }
}
