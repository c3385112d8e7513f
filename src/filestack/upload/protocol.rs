//! The four calls of a multipart upload (protocol reference, section 5):
//! start, part upload (`/multipart/upload` then `PUT`), and complete.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use reqwest::header::{ETAG, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tracing::Instrument;

use crate::filestack::client::{FilestackClient, expiry_in, regex_escape};
use crate::filestack::error::FilestackError;
use crate::filestack::http::{join, json};
use crate::filestack::policy::{Call, Policy, Security};
use crate::filestack::retry::retry;
use crate::filestack::upload::complete::PendingComplete;
use crate::filestack::upload::parts::Part;
use crate::filestack::upload::{UPLOAD_POLICY_TTL, UploadSpec};

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
pub struct PartEtag {
    pub part_number: u32,
    pub etag: String,
}

/// A multipart upload that `/multipart/start` accepted, with everything
/// the later calls about it need but credentials (a policy is signed for
/// each use), so it can be kept and continued later, by another process if
/// need be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartSession {
    /// Scheme and host for every call after start.
    pub(crate) base: String,
    pub(crate) uri: String,
    pub(crate) region: String,
    pub(crate) upload_id: String,
    pub(crate) filename: String,
    pub(crate) mimetype: String,
    pub(crate) size: u64,
    pub(crate) path: Option<String>,
    pub(crate) container: Option<String>,
}

impl MultipartSession {
    /// The declared size of the file.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// What `/multipart/complete` needs once every part is acknowledged.
    pub fn pending(&self, parts: Vec<PartEtag>) -> PendingComplete {
        PendingComplete {
            session: self.clone(),
            parts,
        }
    }

    /// `pick` only, for at most the file's size, pinned to its path and
    /// container.
    pub(crate) fn policy(&self) -> Policy {
        pick_policy(self.size, self.path.as_deref(), self.container.as_deref())
    }

    fn store(&self) -> Store<'_> {
        store_at(self.path.as_deref(), self.container.as_deref())
    }
}

/// The policy of an upload: `pick` only, for at most `size` bytes, pinned
/// to the path and container (regular expressions: escaped).
pub(crate) fn pick_policy(size: u64, path: Option<&str>, container: Option<&str>) -> Policy {
    let mut policy = Policy::new(expiry_in(UPLOAD_POLICY_TTL), &[Call::Pick]).with_max_size(size);
    policy.path = path.map(regex_escape);
    policy.container = container.map(regex_escape);
    policy
}

/// A multipart session being uploaded to, with its signed policy.
pub(crate) struct Session<'a> {
    client: &'a FilestackClient,
    security: Security,
    state: MultipartSession,
}

impl<'a> Session<'a> {
    /// `POST {upload}/multipart/start`, resent only when it surely created nothing.
    pub(crate) async fn start(
        client: &'a FilestackClient,
        spec: &UploadSpec,
        size: u64,
    ) -> Result<Session<'a>, FilestackError> {
        let config = &client.config;
        let policy = pick_policy(size, spec.path.as_deref(), spec.container.as_deref());
        let security = client.sign(&policy);
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
            &client.metrics,
            &config.retry,
            "multipart_start",
            FilestackError::is_safe_to_resend,
            || async {
                let response = client
                    .send(
                        "multipart_start",
                        client.http.post(&url).json(&body),
                        &secrets,
                    )
                    .await?;
                json(response, "multipart/start").await
            },
        )
        .await?;
        let base = location_base(&config.upload_url, answer.location_url.as_deref());
        tracing::debug!(upload_id = %answer.upload_id, %base, "multipart upload started");
        let state = MultipartSession {
            base,
            uri: answer.uri,
            region: answer.region,
            upload_id: answer.upload_id,
            filename: spec.filename.clone(),
            mimetype: spec.mimetype.clone(),
            size,
            path: spec.path.clone(),
            container: spec.container.clone(),
        };
        Ok(Session {
            client,
            security,
            state,
        })
    }

    /// Continues a session started earlier (here or by another process),
    /// under a policy signed now.
    pub(crate) fn resume(client: &'a FilestackClient, state: MultipartSession) -> Session<'a> {
        Session {
            client,
            security: client.sign(&state.policy()),
            state,
        }
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
                join(&self.state.base, &target.url)
            } else {
                target.url
            };
            let config = &self.client.config;
            let etag = retry(
                &self.client.metrics,
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
            "uri": self.state.uri,
            "region": self.state.region,
            "upload_id": self.state.upload_id,
            "store": self.state.store(),
            "policy": self.security.policy,
            "signature": self.security.signature,
        });
        let url = join(&self.state.base, "multipart/upload");
        let secrets = self.secrets();
        retry(
            &self.client.metrics,
            &config.retry,
            "multipart_upload",
            FilestackError::is_retryable,
            || async {
                let response = self
                    .client
                    .send(
                        "multipart_upload",
                        self.client.http.post(&url).json(&body),
                        &secrets,
                    )
                    .await?;
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
        let response = self
            .client
            .send("part_put", request.body(bytes), &[])
            .await?;
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|value| value.to_str().ok())
            .filter(|value| !value.is_empty())
            .ok_or_else(|| FilestackError::Protocol(format!("part {number}: no ETag")))?;
        Ok(etag.to_owned())
    }

    /// What the session is, to keep or complete.
    pub(crate) fn state(&self) -> &MultipartSession {
        &self.state
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
