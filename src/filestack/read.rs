//! Ranged reads of a file's bytes from the CDN (protocol reference, 7.1):
//! `GET {cdn}/security=p:P,s:S/HANDLE` with `Range: bytes=a-b`, signed by
//! [`FilestackClient::download_url`] (`read`, pinned to the handle).
//!
//! The bytes stream as they arrive, nothing is buffered. A request that
//! fails before its answer is retried with the client's [`retry`] policy.
//! A body that breaks (or stalls for the request timeout) is resumed with a
//! new request for the bytes not yet received; a read fails only after
//! `max_attempts` tries in a row without a byte. Every request is signed
//! afresh, so a long read never outlives its policy. Errors never carry
//! the URL, its policy or its signature.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, RANGE};
use tracing::Instrument;

use crate::filestack::client::FilestackClient;
use crate::filestack::error::FilestackError;
use crate::filestack::http::failure;
use crate::filestack::retry::{backoff, retry};
use crate::telemetry;

/// Validity of the policy of each read request (as the File API calls').
const READ_TTL: Duration = Duration::from_secs(300);

/// Longest life of one read request. The client's request timeout bounds a
/// whole request, which does not fit a body read at the caller's pace: a
/// read bounds the wait for the answer and for each chunk instead, and a
/// request that reaches this age is resumed like a broken one.
const READ_REQUEST_LIFETIME: Duration = Duration::from_secs(3600);

/// Bytes `start..end` of a file (`end` exclusive, `start < end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    /// The bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    /// The value of a `Range` header asking for it.
    fn header(&self) -> String {
        format!("bytes={}-{}", self.start, self.end - 1)
    }
}

/// A read in progress: the file's size as Filestack reports it, and the
/// range's bytes, in order. The stream yields exactly the range's bytes, or
/// ends with an error.
pub struct FileRead {
    pub size: u64,
    pub bytes: BoxStream<'static, Result<Bytes, FilestackError>>,
}

impl std::fmt::Debug for FileRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileRead")
            .field("size", &self.size)
            .finish()
    }
}

impl FilestackClient {
    /// Reads `range` of the file `handle`. An unknown handle is
    /// [`FilestackError::NotFound`]; a range starting past the end of the
    /// file [`FilestackError::RangeNotSatisfiable`]; an answer for other
    /// bytes than `range` [`FilestackError::RangeMismatch`].
    pub async fn read_range(
        &self,
        handle: &str,
        range: ByteRange,
    ) -> Result<FileRead, FilestackError> {
        if range.is_empty() {
            return Err(FilestackError::InvalidRequest("an empty range".into()));
        }
        let opened = retry(
            &self.metrics,
            &self.config.retry,
            "read",
            FilestackError::is_retryable,
            || self.open(handle, range),
        )
        .await?;
        let size = opened.size;
        let reader = Reader {
            client: self.clone(),
            handle: handle.to_owned(),
            next: range.start,
            end: range.end,
            size,
            body: Some(opened.body),
            failures: 0,
        };
        let bytes = futures_util::stream::try_unfold(reader, |mut reader| async move {
            let chunk = reader.next_chunk().await?;
            Ok(chunk.map(|chunk| (chunk, reader)))
        });
        Ok(FileRead {
            size,
            bytes: bytes.boxed(),
        })
    }

    /// One request for `range`: its answer checked, its body not read yet;
    /// recorded as a `read` request.
    /// The request has a span of its own, up to the answer's head (the
    /// body is read in the caller's span).
    async fn open(&self, handle: &str, range: ByteRange) -> Result<Opened, FilestackError> {
        let span = telemetry::filestack_span("read", &reqwest::Method::GET);
        async {
            let started = std::time::Instant::now();
            let result = self.open_once(handle, range).await;
            self.metrics.observe("read", &result, started.elapsed());
            let status = match &result {
                Ok(opened) => Some(opened.status),
                Err(error) => error.status(),
            };
            telemetry::filestack_answered(&span, status);
            result
        }
        .instrument(span.clone())
        .await
    }

    async fn open_once(&self, handle: &str, range: ByteRange) -> Result<Opened, FilestackError> {
        let signed = self.download_url(handle, READ_TTL)?;
        let secrets = url_secrets(&signed.url);
        let mut headers = reqwest::header::HeaderMap::new();
        telemetry::inject_context(&mut headers);
        let request = self
            .http
            .get(&signed.url)
            .headers(headers)
            .header(RANGE, range.header())
            .timeout(READ_REQUEST_LIFETIME);
        let head = self.config.request_timeout;
        let response = tokio::time::timeout(head, request.send())
            .await
            .map_err(|elapsed| unavailable(elapsed.into()))?
            .map_err(FilestackError::transport)?;
        let status = response.status().as_u16();
        let size = match response.status() {
            StatusCode::PARTIAL_CONTENT => served_range(&response, range)?,
            StatusCode::OK => whole_file(&response, range)?,
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let size = content_range(&response).and_then(|r| r.size);
                return Err(FilestackError::RangeNotSatisfiable { size });
            }
            status if status.is_success() => {
                return Err(FilestackError::Protocol(format!(
                    "read: unexpected status {status}"
                )));
            }
            _ => return Err(failure(response, &secrets).await),
        };
        tracing::debug!(handle, start = range.start, end = range.end, "reading");
        let body = response
            .bytes_stream()
            .map_err(FilestackError::transport)
            .boxed();
        Ok(Opened { size, status, body })
    }
}

/// An answered request.
struct Opened {
    size: u64,
    /// 206, or 200 for a whole file.
    status: u16,
    body: BoxStream<'static, Result<Bytes, FilestackError>>,
}

/// Where a read is, and the body it is reading.
struct Reader {
    client: FilestackClient,
    handle: String,
    /// Offset of the next byte to yield.
    next: u64,
    end: u64,
    size: u64,
    /// `None` after a failure, until the read is resumed.
    body: Option<BoxStream<'static, Result<Bytes, FilestackError>>>,
    /// Tries in a row that brought no byte.
    failures: u32,
}

impl Reader {
    /// The next bytes of the range, `None` once all have come.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, FilestackError> {
        let idle = self.client.config.request_timeout;
        loop {
            let Some(body) = self.body.as_mut() else {
                return Ok(None);
            };
            let error = match tokio::time::timeout(idle, body.next()).await {
                Ok(Some(Ok(chunk))) => return self.take(chunk).map(Some),
                Ok(None) if self.next == self.end => {
                    self.body = None;
                    return Ok(None);
                }
                Ok(None) => unavailable("the body ended before the range did".into()),
                Ok(Some(Err(error))) => error,
                Err(elapsed) => unavailable(elapsed.into()),
            };
            self.body = None;
            if self.next == self.end {
                // Every byte came; only the end of the body was lost.
                return Ok(None);
            }
            self.resume(error).await?;
        }
    }

    /// Counts `chunk` in; more bytes than the range is a mismatch.
    fn take(&mut self, chunk: Bytes) -> Result<Bytes, FilestackError> {
        let length = chunk.len() as u64;
        if length > self.end - self.next {
            self.body = None;
            return Err(FilestackError::RangeMismatch(format!(
                "more than the {} bytes asked for",
                self.end - self.next
            )));
        }
        if length > 0 {
            self.next += length;
            self.failures = 0;
        }
        Ok(chunk)
    }

    /// After `error`, opens the rest of the range, with backoff, until a
    /// request is answered or `max_attempts` tries in a row brought nothing.
    async fn resume(&mut self, mut error: FilestackError) -> Result<(), FilestackError> {
        let policy = &self.client.config.retry;
        loop {
            self.failures += 1;
            if !error.is_retryable() || self.failures >= policy.max_attempts {
                return Err(error);
            }
            let delay = backoff(policy, self.failures);
            tracing::warn!(
                handle = %self.handle,
                offset = self.next,
                attempt = self.failures,
                ?delay,
                %error,
                "read interrupted, resuming"
            );
            tokio::time::sleep(delay).await;
            self.client.metrics.retried("read");
            let rest = ByteRange {
                start: self.next,
                end: self.end,
            };
            match self.client.open(&self.handle, rest).await {
                Ok(opened) if opened.size != self.size => {
                    return Err(FilestackError::RangeMismatch(format!(
                        "the file's size changed from {} to {} bytes during the read",
                        self.size, opened.size
                    )));
                }
                Ok(opened) => {
                    self.body = Some(opened.body);
                    return Ok(());
                }
                Err(next) => error = next,
            }
        }
    }
}

/// A timeout waiting for Filestack, as an outage.
fn unavailable(source: crate::filestack::error::BoxError) -> FilestackError {
    FilestackError::Unavailable {
        status: None,
        source,
    }
}

/// A `Content-Range` value: `bytes FIRST-LAST/SIZE` or `bytes */SIZE`
/// (`SIZE` may be `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ContentRange {
    span: Option<(u64, u64)>,
    size: Option<u64>,
}

fn content_range(response: &reqwest::Response) -> Option<ContentRange> {
    parse_content_range(response.headers().get(CONTENT_RANGE)?.to_str().ok()?)
}

fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (span, size) = rest.split_once('/')?;
    let size = match size.trim() {
        "*" => None,
        size => Some(size.parse().ok()?),
    };
    let span = match span.trim() {
        "*" => None,
        span => {
            let (first, last) = span.split_once('-')?;
            Some((first.trim().parse().ok()?, last.trim().parse().ok()?))
        }
    };
    Some(ContentRange { span, size })
}

/// The file's size from a 206 answer, which must serve exactly `range`.
fn served_range(response: &reqwest::Response, range: ByteRange) -> Result<u64, FilestackError> {
    let served = content_range(response);
    match served {
        Some(ContentRange {
            span: Some((first, last)),
            size: Some(size),
        }) if first == range.start && last + 1 == range.end && range.end <= size => Ok(size),
        _ => Err(FilestackError::RangeMismatch(format!(
            "asked for {}, got Content-Range {:?}",
            range.header(),
            response.headers().get(CONTENT_RANGE)
        ))),
    }
}

/// The file's size from a 200 answer: the whole file, which `range` must be.
fn whole_file(response: &reqwest::Response, range: ByteRange) -> Result<u64, FilestackError> {
    match response.content_length() {
        Some(length) if range.start == 0 && length == range.end => Ok(length),
        length => Err(FilestackError::RangeMismatch(format!(
            "asked for {}, got the whole file ({length:?} bytes)",
            range.header()
        ))),
    }
}

/// The policy and signature in a signed URL's `security=p:P,s:S` task, to
/// redact from error bodies.
fn url_secrets(url: &str) -> Vec<&str> {
    url.split('/')
        .filter_map(|segment| segment.strip_prefix("security="))
        .flat_map(|task| task.split(','))
        .filter_map(|pair| pair.split_once(':').map(|(_, value)| value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{ByteRange, ContentRange, parse_content_range, url_secrets};
    use crate::filestack::policy::Security;
    use crate::filestack::urls::signed_url;

    #[test]
    fn a_range_asks_for_its_first_and_last_byte() {
        let range = ByteRange { start: 5, end: 10 };
        assert_eq!(range.header(), "bytes=5-9");
        assert_eq!(range.len(), 5);
    }

    #[test]
    fn content_ranges_parse_as_rfc_9110_writes_them() {
        let full = parse_content_range("bytes 0-99/1000");
        assert_eq!(
            full,
            Some(ContentRange {
                span: Some((0, 99)),
                size: Some(1000)
            })
        );
        let unsatisfied = parse_content_range("bytes */1000");
        assert_eq!(
            unsatisfied,
            Some(ContentRange {
                span: None,
                size: Some(1000)
            })
        );
        assert_eq!(parse_content_range("bytes 0-9/*").unwrap().size, None);
        for bad in ["items 0-1/2", "bytes 0-x/2", "bytes 0-1", ""] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_secrets_of_a_signed_url_are_its_policy_and_signature() {
        let security = Security {
            policy: "eyJleHBpcnkiOjF9".into(),
            signature: "abc123".into(),
        };
        let url = signed_url("http://cdn.example", "HANDLE", &security);
        assert_eq!(url_secrets(&url), ["eyJleHBpcnkiOjF9", "abc123"]);
    }
}
