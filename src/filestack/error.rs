//! Errors of the Filestack client.
//!
//! Messages carry the upstream status and a short, redacted excerpt of the
//! body; they never carry the app secret, a policy, a signature or a query
//! string (URLs in transport errors are removed before they are kept).

use std::error::Error as StdError;
use std::fmt;

/// A boxed error with the bounds needed to cross tasks.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Longest excerpt of an upstream body kept in an error.
pub const BODY_EXCERPT_LIMIT: usize = 512;

/// What went wrong talking to Filestack.
#[derive(Debug, thiserror::Error)]
pub enum FilestackError {
    /// Filestack refused the request as malformed (4xx other than 401/403/404).
    #[error("Filestack refused the request (status {status}): {body}")]
    BadRequest { status: u16, body: String },
    /// Filestack refused the policy or signature (401/403).
    #[error("Filestack refused the security policy (status {status}): {body}")]
    PolicyRefused { status: u16, body: String },
    /// The handle does not exist (404).
    #[error("Filestack has no such file")]
    NotFound,
    /// Filestack could not be reached or answered 5xx/429; worth retrying later.
    #[error("Filestack is unavailable{}", status_suffix(*.status))]
    Unavailable {
        status: Option<u16>,
        #[source]
        source: BoxError,
    },
    /// The stream did not carry the declared number of bytes.
    #[error("declared size is {declared} bytes but the stream carried {received}")]
    SizeMismatch { declared: u64, received: u64 },
    /// The stream's SHA-256 is not the one expected ([`crate::filestack::upload::Sha256Check::Expect`]).
    #[error("the stream's SHA-256 is not the expected one")]
    ChecksumMismatch,
    /// The size must be declared for files larger than one part.
    #[error("the size must be declared for files larger than one part")]
    SizeRequired,
    /// The caller's byte stream failed.
    #[error("the upload stream failed")]
    Stream(#[source] BoxError),
    /// Filestack answered something this client cannot use.
    #[error("unexpected answer from Filestack: {0}")]
    Protocol(String),
    /// A handle with characters that cannot be a Filestack handle.
    #[error("not a valid Filestack handle")]
    InvalidHandle,
    /// The request could not be built (for example a URL too long): a bug
    /// or an input that should have been refused earlier, never an outage.
    #[error("the request to Filestack could not be built: {0}")]
    InvalidRequest(String),
    /// An empty file: Filestack stores none.
    #[error("an empty file cannot be uploaded")]
    EmptyFile,
    /// A ranged read asked for bytes the file does not have (416).
    #[error("Filestack cannot serve the range (status 416){}", size_suffix(*.size))]
    RangeNotSatisfiable {
        /// The file's size, from `Content-Range: bytes */SIZE`.
        size: Option<u64>,
    },
    /// A ranged read got other bytes than it asked for: another range, more
    /// bytes than the range, or a file whose size changed between the
    /// requests of one read.
    #[error("Filestack served other bytes than the range asked for: {0}")]
    RangeMismatch(String),
    /// Filestack took the request but its answer was lost or unreadable.
    #[error("Filestack's answer was lost")]
    AnswerLost(#[source] Box<FilestackError>),
    /// A request that is not idempotent (`multipart/complete`) may or may
    /// not have taken effect: the file may be stored, under a handle this
    /// client never learnt. Retrying later (with a new upload) is safe; the
    /// caller must keep what it needs to find and delete the file.
    #[error("the upload may or may not have been stored")]
    OutcomeUnknown(#[source] Box<FilestackError>),
}

impl FilestackError {
    /// Whether trying again later may succeed (5xx, 429, timeouts, connection
    /// errors, a lost answer, an unknown outcome).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            FilestackError::Unavailable { .. }
                | FilestackError::AnswerLost(_)
                | FilestackError::OutcomeUnknown(_)
        )
    }

    /// Whether the request may have reached Filestack and taken effect: not
    /// a connection that was never made, a request never built, or an answer
    /// refusing it (4xx other than 408), nor 429 (refused for its rate).
    pub fn may_have_reached_upstream(&self) -> bool {
        match self {
            FilestackError::Unavailable {
                status: Some(status),
                ..
            } => *status != 429,
            FilestackError::Unavailable {
                status: None,
                source,
            } => !source
                .downcast_ref::<reqwest::Error>()
                .is_some_and(reqwest::Error::is_connect),
            FilestackError::AnswerLost(_)
            | FilestackError::OutcomeUnknown(_)
            | FilestackError::Protocol(_) => true,
            _ => false,
        }
    }

    /// Whether the request surely created nothing upstream and may be sent
    /// again even when it is not idempotent: a connection that could not be
    /// made, or a 5xx answer.
    pub fn is_safe_to_resend(&self) -> bool {
        match self {
            FilestackError::Unavailable {
                status: Some(status),
                ..
            } => (500..=599).contains(status),
            FilestackError::Unavailable {
                status: None,
                source,
            } => source
                .downcast_ref::<reqwest::Error>()
                .is_some_and(reqwest::Error::is_connect),
            _ => false,
        }
    }

    /// The upstream HTTP status, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            FilestackError::BadRequest { status, .. }
            | FilestackError::PolicyRefused { status, .. } => Some(*status),
            FilestackError::NotFound => Some(404),
            FilestackError::RangeNotSatisfiable { .. } => Some(416),
            FilestackError::Unavailable { status, .. } => *status,
            _ => None,
        }
    }

    /// A transport error, with its URL (and so any signature) removed. A
    /// request that could not be built is not an outage.
    pub(crate) fn transport(error: reqwest::Error) -> Self {
        if error.is_builder() {
            return FilestackError::InvalidRequest(error.without_url().to_string());
        }
        FilestackError::Unavailable {
            status: None,
            source: Box::new(error.without_url()),
        }
    }
}

fn size_suffix(size: Option<u64>) -> String {
    size.map(|s| format!(": the file has {s} bytes"))
        .unwrap_or_default()
}

fn status_suffix(status: Option<u16>) -> String {
    status.map(|s| format!(" (status {s})")).unwrap_or_default()
}

/// An upstream answer with a retryable status, kept as the source of
/// [`FilestackError::Unavailable`].
#[derive(Debug)]
pub struct UpstreamStatus {
    pub status: u16,
    pub body: String,
}

impl fmt::Display for UpstreamStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "upstream answered {}: {}", self.status, self.body)
    }
}

impl StdError for UpstreamStatus {}

/// Maps a non-success status and its body to an error. `secrets` (policy,
/// signature) are replaced in the body before it is kept.
pub(crate) fn from_status(status: u16, body: &[u8], secrets: &[&str]) -> FilestackError {
    let body = excerpt(body, secrets);
    match status {
        401 | 403 => FilestackError::PolicyRefused { status, body },
        404 => FilestackError::NotFound,
        408 | 429 | 500..=599 => FilestackError::Unavailable {
            status: Some(status),
            source: Box::new(UpstreamStatus { status, body }),
        },
        400..=499 => FilestackError::BadRequest { status, body },
        _ => FilestackError::Protocol(format!("unexpected status {status}")),
    }
}

/// A printable, bounded, redacted excerpt of an upstream body.
pub(crate) fn excerpt(body: &[u8], secrets: &[&str]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut text = text.into_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "[redacted]");
    }
    let mut cut: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(BODY_EXCERPT_LIMIT)
        .collect();
    if text.chars().count() > BODY_EXCERPT_LIMIT {
        cut.push('…');
    }
    cut.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::{BODY_EXCERPT_LIMIT, FilestackError, excerpt, from_status};

    #[test]
    fn statuses_map_to_the_documented_variants() {
        assert!(matches!(
            from_status(400, b"bad", &[]),
            FilestackError::BadRequest { status: 400, .. }
        ));
        assert!(matches!(
            from_status(403, b"no", &[]),
            FilestackError::PolicyRefused { status: 403, .. }
        ));
        assert!(matches!(
            from_status(404, b"", &[]),
            FilestackError::NotFound
        ));
        let unavailable = from_status(503, b"down", &[]);
        assert!(unavailable.is_retryable());
        assert_eq!(unavailable.status(), Some(503));
        assert!(from_status(429, b"", &[]).is_retryable());
        assert!(!from_status(400, b"", &[]).is_retryable());
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_built_is_no_outage_and_never_reached_filestack() {
        let client = reqwest::Client::new();
        let built = client.get("http://[not a host/x").send().await.unwrap_err();
        let error = FilestackError::transport(built);
        assert!(
            matches!(error, FilestackError::InvalidRequest(_)),
            "{error:?}"
        );
        assert!(!error.is_retryable());
        assert!(!error.may_have_reached_upstream());
    }

    #[test]
    fn refusals_reached_nothing_and_lost_answers_may_have() {
        for status in [400, 401, 403, 404, 429] {
            assert!(
                !from_status(status, b"", &[]).may_have_reached_upstream(),
                "{status}"
            );
        }
        for status in [500, 502, 503, 504, 408] {
            let error = from_status(status, b"", &[]);
            assert!(error.may_have_reached_upstream(), "{status}");
            assert!(error.is_retryable(), "{status}");
        }
        let lost = FilestackError::AnswerLost(Box::new(FilestackError::Protocol("cut".into())));
        assert!(lost.may_have_reached_upstream() && lost.is_retryable());
        let unknown = FilestackError::OutcomeUnknown(Box::new(FilestackError::NotFound));
        assert!(unknown.is_retryable());
    }

    #[test]
    fn only_5xx_answers_are_safe_to_resend_for_non_idempotent_calls() {
        assert!(from_status(503, b"", &[]).is_safe_to_resend());
        assert!(!from_status(429, b"", &[]).is_safe_to_resend());
        assert!(!from_status(400, b"", &[]).is_safe_to_resend());
    }

    #[test]
    fn a_body_echoing_the_policy_and_signature_is_redacted() {
        let error = from_status(
            403,
            br#"policy error: (signature: "abc123"; policy "eyJwb2xp")"#,
            &["eyJwb2xp", "abc123"],
        );
        let shown = error.to_string();
        assert!(!shown.contains("abc123"), "{shown}");
        assert!(!shown.contains("eyJwb2xp"), "{shown}");
        assert!(shown.contains("403"), "{shown}");
    }

    #[test]
    fn long_bodies_are_cut_to_a_bounded_excerpt() {
        let body = "x".repeat(10_000);
        let cut = excerpt(body.as_bytes(), &[]);
        assert_eq!(cut.chars().count(), BODY_EXCERPT_LIMIT + 1);
    }
}
