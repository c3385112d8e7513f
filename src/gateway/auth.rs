//! Caller authentication: `authorization: Bearer <JWT>` on every call but
//! health and reflection. The token's `sub` is the owner id.
//!
//! HS256 with a shared secret (the default, and what `filegate token`
//! mints), or RS256/ES256 with a PEM public key. `exp` is required, and
//! `nbf`, when present, must have passed (both with 30 s of leeway for
//! clock skew); issuer and audience are checked when configured. `alg: none` and any
//! algorithm other than the configured one are refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataMap;

use crate::gateway::domain::OwnerId;
use crate::gateway::error::GatewayError;
use crate::secret::Secret;

/// How tokens are verified.
#[derive(Clone)]
pub enum JwtKey {
    /// HS256 with a shared secret.
    Hmac(Secret),
    /// RS256 with a PEM public key.
    Rsa(Vec<u8>),
    /// ES256 with a PEM public key.
    Ecdsa(Vec<u8>),
}

/// The claims filegate reads.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// Verifies bearer tokens.
#[derive(Clone)]
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(key: &JwtKey, issuer: Option<&str>, audience: Option<&str>) -> anyhow::Result<Self> {
        let (key, algorithm) = match key {
            JwtKey::Hmac(secret) => {
                anyhow::ensure!(
                    secret.expose().len() >= 16,
                    "the JWT secret must be at least 16 bytes"
                );
                (
                    DecodingKey::from_secret(secret.expose().as_bytes())?,
                    Algorithm::HS256,
                )
            }
            JwtKey::Rsa(pem) => (DecodingKey::from_rsa_pem(pem)?, Algorithm::RS256),
            JwtKey::Ecdsa(pem) => (DecodingKey::from_ec_pem(pem)?, Algorithm::ES256),
        };
        let mut validation = Validation::new(algorithm);
        // A configured issuer or audience must be present, not only match
        // when present.
        let mut required = vec!["exp", "sub"];
        required.extend(issuer.map(|_| "iss"));
        required.extend(audience.map(|_| "aud"));
        validation.set_required_spec_claims(&required);
        validation.leeway = 30;
        // RFC 7519 4.1.5: a token must not be accepted before its `nbf`.
        validation.validate_nbf = true;
        match issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Ok(Self { key, validation })
    }

    /// The owner named by the request's bearer token.
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<OwnerId, GatewayError> {
        let header = metadata
            .get("authorization")
            .ok_or(GatewayError::Unauthenticated(
                "missing authorization metadata",
            ))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or(GatewayError::Unauthenticated(
                "authorization must be 'Bearer <token>'",
            ))?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |error| {
                tracing::debug!(%error, "token refused");
                GatewayError::Unauthenticated("invalid or expired token")
            },
        )?;
        OwnerId::parse(&data.claims.sub).ok_or(GatewayError::Unauthenticated(
            "the token's sub is not a valid owner id",
        ))
    }
}

/// Mints an HS256 token for `sub`, valid for `ttl` (`filegate token`, tests).
pub fn mint_hs256(secret: &Secret, sub: &str, ttl: Duration) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let claims = Claims {
        sub: sub.to_owned(),
        exp: (now + ttl).as_secs(),
        iss: None,
        aud: None,
    };
    let key = EncodingKey::from_secret(secret.expose().as_bytes())?;
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &key,
    )?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use tonic::metadata::MetadataMap;

    use super::{Authenticator, JwtKey, mint_hs256};
    use crate::secret::Secret;

    fn secret() -> Secret {
        Secret::new("a-test-secret-of-some-length")
    }

    fn bearer(token: &str) -> MetadataMap {
        let mut map = MetadataMap::new();
        map.insert("authorization", format!("Bearer {token}").parse().unwrap());
        map
    }

    fn auth() -> Authenticator {
        Authenticator::new(&JwtKey::Hmac(secret()), None, None).unwrap()
    }

    #[test]
    fn a_minted_token_authenticates_its_subject() {
        let token = mint_hs256(&secret(), "alice", Duration::from_secs(60)).unwrap();
        assert_eq!(
            auth().authenticate(&bearer(&token)).unwrap().as_str(),
            "alice"
        );
    }

    #[test]
    fn missing_malformed_wrong_key_and_unsafe_subjects_are_refused() {
        let auth = auth();
        assert!(auth.authenticate(&MetadataMap::new()).is_err());
        assert!(auth.authenticate(&bearer("not.a.jwt")).is_err());
        let other = mint_hs256(
            &Secret::new("another-secret-entirely"),
            "alice",
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(auth.authenticate(&bearer(&other)).is_err());
        let sneaky = mint_hs256(&secret(), "../bob", Duration::from_secs(60)).unwrap();
        assert!(auth.authenticate(&bearer(&sneaky)).is_err());
    }

    #[test]
    fn an_alg_none_token_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"alice","exp":99999999999}"#);
        let token = format!("{header}.{claims}.");
        assert!(auth().authenticate(&bearer(&token)).is_err());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let claims = super::Claims {
            sub: "alice".into(),
            exp: 1_000,
            iss: None,
            aud: None,
        };
        let key = jsonwebtoken::EncodingKey::from_secret(secret().expose().as_bytes()).unwrap();
        let token = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap();
        assert!(auth().authenticate(&bearer(&token)).is_err());
    }

    #[test]
    fn a_token_is_refused_before_its_not_before_time() {
        use jsonwebtoken::{EncodingKey, Header};
        let key = EncodingKey::from_secret(secret().expose().as_bytes()).unwrap();
        let now = future() - 600;
        let token = |nbf: u64| {
            signed(
                Header::default(),
                &key,
                serde_json::json!({"sub": "alice", "exp": now + 3600, "nbf": nbf}),
            )
        };
        assert!(auth().authenticate(&bearer(&token(now + 600))).is_err());
        // Within the leeway for clock skew, and in the past: accepted.
        assert!(auth().authenticate(&bearer(&token(now + 10))).is_ok());
        assert!(auth().authenticate(&bearer(&token(now - 60))).is_ok());
    }

    // Test-only key pairs (openssl genpkey), never used outside tests.
    const RSA_PRIVATE: &str = include_str!("../../tests/fixtures/jwt/rsa-private.pem");
    const RSA_PUBLIC: &str = include_str!("../../tests/fixtures/jwt/rsa-public.pem");
    const EC_PRIVATE: &str = include_str!("../../tests/fixtures/jwt/ec-private.pem");
    const EC_PUBLIC: &str = include_str!("../../tests/fixtures/jwt/ec-public.pem");

    fn signed(
        header: jsonwebtoken::Header,
        key: &jsonwebtoken::EncodingKey,
        claims: serde_json::Value,
    ) -> String {
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    fn future() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600
    }

    #[test]
    fn rs256_and_es256_tokens_verify_with_their_public_keys_only() {
        use jsonwebtoken::{Algorithm, EncodingKey, Header};
        let claims = serde_json::json!({"sub": "alice", "exp": future()});
        let rsa =
            Authenticator::new(&JwtKey::Rsa(RSA_PUBLIC.as_bytes().to_vec()), None, None).unwrap();
        let ec =
            Authenticator::new(&JwtKey::Ecdsa(EC_PUBLIC.as_bytes().to_vec()), None, None).unwrap();
        let rsa_token = signed(
            Header::new(Algorithm::RS256),
            &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
            claims.clone(),
        );
        let ec_token = signed(
            Header::new(Algorithm::ES256),
            &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
            claims,
        );
        assert_eq!(
            rsa.authenticate(&bearer(&rsa_token)).unwrap().as_str(),
            "alice"
        );
        assert_eq!(
            ec.authenticate(&bearer(&ec_token)).unwrap().as_str(),
            "alice"
        );
        assert!(
            rsa.authenticate(&bearer(&ec_token)).is_err(),
            "wrong algorithm"
        );
        assert!(
            ec.authenticate(&bearer(&rsa_token)).is_err(),
            "wrong algorithm"
        );
        let hs = mint_hs256(&secret(), "alice", Duration::from_secs(60)).unwrap();
        assert!(
            rsa.authenticate(&bearer(&hs)).is_err(),
            "an HS256 token is refused by an RS256 gateway"
        );
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        use jsonwebtoken::{EncodingKey, Header};
        let key = EncodingKey::from_secret(secret().expose().as_bytes()).unwrap();
        let auth = Authenticator::new(
            &JwtKey::Hmac(secret()),
            Some("https://idp.internal"),
            Some("filegate"),
        )
        .unwrap();
        let good = signed(
            Header::default(),
            &key,
            serde_json::json!({"sub": "alice", "exp": future(), "iss": "https://idp.internal", "aud": "filegate"}),
        );
        assert!(auth.authenticate(&bearer(&good)).is_ok());
        let wrong_iss = signed(
            Header::default(),
            &key,
            serde_json::json!({"sub": "alice", "exp": future(), "iss": "https://evil", "aud": "filegate"}),
        );
        let wrong_aud = signed(
            Header::default(),
            &key,
            serde_json::json!({"sub": "alice", "exp": future(), "iss": "https://idp.internal", "aud": "other"}),
        );
        let none = signed(
            Header::default(),
            &key,
            serde_json::json!({"sub": "alice", "exp": future()}),
        );
        for token in [wrong_iss, wrong_aud, none] {
            assert!(auth.authenticate(&bearer(&token)).is_err());
        }
    }
}
