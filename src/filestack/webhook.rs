//! Filestack webhook signatures (protocol reference, section 8.2).
//!
//! A delivery carries `FS-Timestamp` (unix seconds) and `FS-Signature`, the
//! lowercase hex HMAC-SHA256 of `"<timestamp>.<raw body>"` under the webhook
//! secret. Verification works on the raw bytes, before anything is parsed.

use std::time::Duration;

use crate::filestack::policy::{constant_time_eq, sign_hex};
use crate::secret::Secret;

/// Header carrying the hex signature.
pub const SIGNATURE_HEADER: &str = "FS-Signature";
/// Header carrying the unix-seconds timestamp.
pub const TIMESTAMP_HEADER: &str = "FS-Timestamp";

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the FS-Signature header is missing")]
    MissingSignature,
    #[error("the FS-Timestamp header is missing or not a number")]
    BadTimestamp,
    #[error("the signature does not match")]
    SignatureMismatch,
    #[error("the delivery is older than the maximum age")]
    TooOld,
    #[error("the delivery's timestamp is in the future")]
    FromTheFuture,
}

/// The signature Filestack sends for `body` at `timestamp`.
pub fn sign(secret: &Secret, timestamp: &str, body: &[u8]) -> String {
    let mut message = Vec::with_capacity(timestamp.len() + 1 + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    sign_hex(secret.expose().as_bytes(), &message)
}

/// What a verifier accepts.
#[derive(Debug, Clone)]
pub struct WebhookVerifier {
    secret: Secret,
    /// Deliveries older than this are refused (replay protection).
    max_age: Duration,
    /// Clock skew tolerated for timestamps ahead of ours.
    max_future_skew: Duration,
}

impl WebhookVerifier {
    pub fn new(secret: Secret, max_age: Duration) -> Self {
        Self {
            secret,
            max_age,
            max_future_skew: Duration::from_secs(60),
        }
    }

    /// Without an age check: only the signature (what the SDKs do).
    pub fn signature_only(secret: Secret) -> Self {
        Self {
            secret,
            max_age: Duration::MAX,
            max_future_skew: Duration::MAX,
        }
    }

    /// Verifies a delivery received at `now_unix` (seconds). The signature is
    /// compared in constant time and case-sensitively, as the SDKs do.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now_unix: i64,
    ) -> Result<(), WebhookError> {
        let signature = signature.ok_or(WebhookError::MissingSignature)?;
        let timestamp = timestamp.map(str::trim).ok_or(WebhookError::BadTimestamp)?;
        let seconds: i64 = timestamp.parse().map_err(|_| WebhookError::BadTimestamp)?;
        let expected = sign(&self.secret, timestamp, body);
        if !constant_time_eq(expected.as_bytes(), signature.trim().as_bytes()) {
            return Err(WebhookError::SignatureMismatch);
        }
        let age = now_unix.saturating_sub(seconds);
        if age > 0 && age as u64 > self.max_age.as_secs() {
            return Err(WebhookError::TooOld);
        }
        if age < 0 && age.unsigned_abs() > self.max_future_skew.as_secs() {
            return Err(WebhookError::FromTheFuture);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{WebhookError, WebhookVerifier, sign};
    use crate::secret::Secret;

    // Protocol reference 11.4, computed with filestack-python 4.0.0.
    const BODY: &str = r#"{"id": 30813791, "action": "fp.upload", "timestamp": 1521733983, "text": {"container": "filestack-uploads-persist-production", "url": "https://cdn.filestackcontent.com/AbCdEfGhIjKlMnOpQrSt", "filename": "image.jpg", "client": "Computer", "key": "S3_KEY", "type": "image/jpeg", "status": "Stored", "size": 158584}}"#;
    const TS: &str = "1521733983";
    const SIG: &str = "fe20357d3c606303e38c1c4166266979258cb77915fa084486922485f13d0526";

    fn verifier() -> WebhookVerifier {
        WebhookVerifier::new(Secret::new("webhook-secret"), Duration::from_secs(300))
    }

    #[test]
    fn the_python_sdk_vectors_are_accepted() {
        assert_eq!(
            sign(&Secret::new("webhook-secret"), TS, BODY.as_bytes()),
            SIG
        );
        assert_eq!(
            verifier().verify(Some(TS), Some(SIG), BODY.as_bytes(), 1_521_733_983 + 10),
            Ok(())
        );
        let js_body = r#"{"id": 6844, "action": "fp.upload", "timestamp": 1559199901, "text": {"url": "http://cdn.filestackapi.dev/xK88QArxRiyVvFzo4p33", "client": "Computer", "data": {"filename": "01 (1).png", "type": "image/png", "size": 881855}}}"#;
        let js = WebhookVerifier::signature_only(Secret::new("Y5cWb1rdRDSTSqEjF5pv"));
        let js_sig = "14495b54b246e1352bb69cd91c5c1bfe2221f2d0330414b3df8f5fb2903db730";
        assert_eq!(
            js.verify(Some("1559199901"), Some(js_sig), js_body.as_bytes(), 0),
            Ok(())
        );
        let py_body =
            r#"{"text": {"filename": "filename.jpg", "key": "kGaeljnga9wkysK6Z_filename.jpg"}}"#;
        let py = WebhookVerifier::signature_only(Secret::new("webhook-secret"));
        let py_sig = "57cbb25386c3d6ff758a7a75cf52ba02cf2b0a1a2d6d5dfb9c886553ca6011cb";
        assert_eq!(
            py.verify(Some("123456789999"), Some(py_sig), py_body.as_bytes(), 0),
            Ok(())
        );
    }

    #[test]
    fn tampering_with_body_signature_or_timestamp_is_refused() {
        let now = 1_521_733_983;
        let v = verifier();
        let tampered = BODY.replace("158584", "158585");
        assert_eq!(
            v.verify(Some(TS), Some(SIG), tampered.as_bytes(), now),
            Err(WebhookError::SignatureMismatch)
        );
        assert_eq!(
            v.verify(Some(TS), Some("deadbeef"), BODY.as_bytes(), now),
            Err(WebhookError::SignatureMismatch)
        );
        assert_eq!(
            v.verify(Some(TS), Some(&SIG.to_uppercase()), BODY.as_bytes(), now),
            Err(WebhookError::SignatureMismatch)
        );
        assert_eq!(
            v.verify(Some("1521733984"), Some(SIG), BODY.as_bytes(), now),
            Err(WebhookError::SignatureMismatch)
        );
        assert_eq!(
            v.verify(Some(TS), None, BODY.as_bytes(), now),
            Err(WebhookError::MissingSignature)
        );
        assert_eq!(
            v.verify(None, Some(SIG), BODY.as_bytes(), now),
            Err(WebhookError::BadTimestamp)
        );
        assert_eq!(
            v.verify(Some("soon"), Some(SIG), BODY.as_bytes(), now),
            Err(WebhookError::BadTimestamp)
        );
    }

    #[test]
    fn a_replayed_old_delivery_or_one_from_the_future_is_refused() {
        let v = verifier();
        assert_eq!(
            v.verify(Some(TS), Some(SIG), BODY.as_bytes(), 1_521_733_983 + 301),
            Err(WebhookError::TooOld)
        );
        assert_eq!(
            v.verify(Some(TS), Some(SIG), BODY.as_bytes(), 1_521_733_983 - 3600),
            Err(WebhookError::FromTheFuture)
        );
    }
}
