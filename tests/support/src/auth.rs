//! Tokens, good and bad, and requests that carry them.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use filegate::gateway::auth::mint_hs256;
use filegate::secret::Secret;
use serde_json::{Value, json};

use crate::unix_now;

/// A token for `sub`, valid for ten minutes, signed (HS256) with `secret`.
pub fn token(secret: &str, sub: &str) -> String {
    mint_hs256(&Secret::new(secret), sub, Duration::from_secs(600)).expect("a token")
}

/// A token with these claims, signed with `secret`.
pub fn signed_token(claims: Value, algorithm: jsonwebtoken::Algorithm, secret: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).expect("an HMAC key");
    jsonwebtoken::encode(&jsonwebtoken::Header::new(algorithm), &claims, &key).expect("a token")
}

/// A token for alice signed with `secret` that expired in 1970.
pub fn expired_token(secret: &str) -> String {
    let claims = json!({"sub": "alice", "exp": 1_000});
    signed_token(claims, jsonwebtoken::Algorithm::HS256, secret)
}

/// An unsigned token for alice (`"alg": "none"`), not yet expired.
pub fn alg_none_token() -> String {
    let later = unix_now() + 600;
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"alice","exp":{later}}}"#))
    )
}

/// `message` with `authorization` set to `value`.
pub fn with_authorization<T>(message: T, value: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = value.parse().expect("a header value");
    request.metadata_mut().insert("authorization", value);
    request
}

/// `message` with `authorization: Bearer <token>`.
pub fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    with_authorization(message, &format!("Bearer {token}"))
}
