//! `POST /multipart/complete` (protocol reference, section 5.5), the one
//! step of an upload that is not idempotent as far as the client can tell:
//! Filestack's answer to a repeated `complete` is not documented (the same
//! file again, or 404 for an upload id it has forgotten).
//!
//! So every attempt is classified: one that surely did not reach Filestack
//! (no connection) or that Filestack refused (4xx) completed nothing; any
//! other (a connection broken while answering, a timeout, 5xx, 202, an
//! answer that cannot be read) may have stored the file. Once an attempt may
//! have, a later refusal (404 included) says nothing about the file, and the
//! result is [`FilestackError::OutcomeUnknown`]: the caller must keep what
//! it needs to find the file (its [`PendingComplete`], its storage path).

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::filestack::client::FilestackClient;
use crate::filestack::error::{FilestackError, UpstreamStatus};
use crate::filestack::http::{check_handle, join, json};
use crate::filestack::retry::backoff;
use crate::filestack::upload::StoredFile;
use crate::filestack::upload::protocol::{MultipartSession, PartEtag, store_at};

/// An upload whose parts Filestack acknowledged, with everything
/// `/multipart/complete` needs but the credentials (a fresh policy is signed
/// for each call), so it can be kept (in the upload journal) and completed
/// later, by another process if need be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingComplete {
    #[serde(flatten)]
    pub(crate) session: MultipartSession,
    pub(crate) parts: Vec<PartEtag>,
}

impl PendingComplete {
    /// The JSON form kept in the upload journal.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the journal's JSON form back.
    pub fn from_json(text: &str) -> Option<PendingComplete> {
        serde_json::from_str(text).ok()
    }

    /// The declared size of the file.
    pub fn size(&self) -> u64 {
        self.session.size
    }
}

#[derive(Debug, Deserialize)]
struct CompleteAnswer {
    handle: String,
    url: Option<String>,
    size: Option<u64>,
    mimetype: Option<String>,
    filename: Option<String>,
}

/// What one attempt did.
enum Attempt {
    Stored(Box<CompleteAnswer>),
    /// 202: the parts are accepted, the file is still being assembled.
    Accepted,
}

impl FilestackClient {
    /// Completes `pending`: the stored file, or an error. Retried while
    /// Filestack answers 202 (bounded by `complete_timeout`) or fails in a
    /// retryable way (bounded by the retry policy); see the module
    /// documentation for [`FilestackError::OutcomeUnknown`].
    pub async fn complete(&self, pending: &PendingComplete) -> Result<StoredFile, FilestackError> {
        let config = &self.config;
        let deadline = Instant::now() + config.complete_timeout;
        let (mut accepted, mut failures) = (0, 0);
        let mut may_have_stored = false;
        loop {
            let error = match self.complete_once(pending).await {
                Ok(Attempt::Stored(answer)) => {
                    return stored_file(&config.cdn_url, pending, *answer)
                        .map_err(|error| FilestackError::OutcomeUnknown(Box::new(error)));
                }
                Ok(Attempt::Accepted) => {
                    may_have_stored = true;
                    accepted += 1;
                    let delay = backoff(&config.retry, accepted);
                    if Instant::now() + delay > deadline {
                        return Err(FilestackError::OutcomeUnknown(Box::new(
                            FilestackError::Unavailable {
                                status: Some(202),
                                source: Box::new(UpstreamStatus {
                                    status: 202,
                                    body: format!("still assembling after {accepted} attempts"),
                                }),
                            },
                        )));
                    }
                    tracing::debug!(accepted, ?delay, "complete accepted, not done yet");
                    tokio::time::sleep(delay).await;
                    self.metrics.retried("multipart_complete");
                    continue;
                }
                Err(error) => error,
            };
            may_have_stored |= error.may_have_reached_upstream();
            failures += 1;
            if error.is_retryable() && failures < config.retry.max_attempts {
                let delay = backoff(&config.retry, failures);
                tracing::warn!(attempt = failures, ?delay, %error, may_have_stored, "multipart/complete failed, retrying");
                tokio::time::sleep(delay).await;
                self.metrics.retried("multipart_complete");
                continue;
            }
            return Err(if may_have_stored {
                FilestackError::OutcomeUnknown(Box::new(error))
            } else {
                error
            });
        }
    }

    async fn complete_once(&self, pending: &PendingComplete) -> Result<Attempt, FilestackError> {
        let config = &self.config;
        let session = &pending.session;
        let security = self.sign(&session.policy());
        let body = serde_json::json!({
            "apikey": config.api_key,
            "filename": session.filename,
            "mimetype": session.mimetype,
            "size": session.size,
            "store": store_at(session.path.as_deref(), session.container.as_deref()),
            "policy": security.policy,
            "signature": security.signature,
            "uri": session.uri,
            "region": session.region,
            "upload_id": session.upload_id,
            "parts": pending.parts,
        });
        let url = join(&session.base, "multipart/complete");
        let secrets = [security.policy.as_str(), security.signature.as_str()];
        let response = self
            .send(
                "multipart_complete",
                self.http.post(&url).json(&body),
                &secrets,
            )
            .await?;
        if response.status() == reqwest::StatusCode::ACCEPTED {
            return Ok(Attempt::Accepted);
        }
        // A 200 whose answer is lost or unreadable stored the file all the
        // same: the caller learns that the outcome is unknown.
        json(response, "multipart/complete")
            .await
            .map(|answer| Attempt::Stored(Box::new(answer)))
            .map_err(|error| FilestackError::AnswerLost(Box::new(error)))
    }
}

fn stored_file(
    cdn_url: &str,
    pending: &PendingComplete,
    answer: CompleteAnswer,
) -> Result<StoredFile, FilestackError> {
    check_handle(&answer.handle)
        .map_err(|_| FilestackError::Protocol("complete: invalid handle".into()))?;
    let url = answer.url.unwrap_or_else(|| join(cdn_url, &answer.handle));
    Ok(StoredFile {
        handle: answer.handle,
        url,
        size: answer.size.unwrap_or(pending.session.size),
        mimetype: answer
            .mimetype
            .unwrap_or_else(|| pending.session.mimetype.clone()),
        filename: answer
            .filename
            .unwrap_or_else(|| pending.session.filename.clone()),
        sha256: None,
    })
}
