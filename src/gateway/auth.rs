//! Caller authentication: `authorization: Bearer <JWT>` on every call but
//! health and reflection. The token's `sub` is the owner id.
//!
//! HS256 with a shared secret (the default, and what `filegate token`
//! mints), RS256/ES256 with a PEM public key, or RS256/ES256 with the keys
//! an identity provider publishes at a JWKS URL (see [`jwks`], the key
//! named by the token's `kid`). `exp` is required, and `nbf`, when present,
//! must have passed (both with 30 s of leeway for clock skew); issuer and
//! audience are checked when configured. `alg: none` and any algorithm
//! other than the configured one (with a JWKS: the key's) are refused.
//!
//! [`jwks`]: crate::gateway::jwks

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataMap;

use crate::gateway::domain::OwnerId;
use crate::gateway::error::GatewayError;
use crate::gateway::jwks::{Jwks, JwksSource};
use crate::gateway::metrics::GatewayMetrics;
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
    /// RS256 or ES256 with the keys of an identity provider's JWKS URL.
    Jwks(JwksSource),
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

/// The keys tokens are verified with.
#[derive(Clone)]
enum Keys {
    /// One configured key.
    Fixed(DecodingKey),
    /// The provider's, by `kid`.
    Jwks(Arc<Jwks>),
}

/// Verifies bearer tokens.
#[derive(Clone)]
pub struct Authenticator {
    keys: Keys,
    /// The checks of each algorithm tokens may use.
    validations: Vec<Validation>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator with one key; a JWKS is fetched by [`Self::start`].
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
            JwtKey::Jwks(_) => anyhow::bail!("a JWKS is fetched: use Authenticator::start"),
        };
        Ok(Self {
            keys: Keys::Fixed(key),
            validations: vec![validation(algorithm, issuer, audience)],
        })
    }

    /// An authenticator for `key`; with a JWKS URL, once its keys are
    /// fetched (an error if they cannot be), counting its fetches in
    /// `metrics`.
    pub async fn start(
        key: &JwtKey,
        issuer: Option<&str>,
        audience: Option<&str>,
        metrics: GatewayMetrics,
    ) -> anyhow::Result<Self> {
        let JwtKey::Jwks(source) = key else {
            return Self::new(key, issuer, audience);
        };
        Ok(Self {
            keys: Keys::Jwks(Jwks::start(source.clone(), metrics).await?),
            validations: [Algorithm::RS256, Algorithm::ES256]
                .into_iter()
                .map(|algorithm| validation(algorithm, issuer, audience))
                .collect(),
        })
    }

    /// The JWKS the keys come from, if they do (for its refresh task).
    pub fn jwks(&self) -> Option<Arc<Jwks>> {
        match &self.keys {
            Keys::Jwks(jwks) => Some(jwks.clone()),
            Keys::Fixed(_) => None,
        }
    }

    /// The owner named by the request's bearer token.
    pub async fn authenticate(&self, metadata: &MetadataMap) -> Result<OwnerId, GatewayError> {
        let token = bearer(metadata)?;
        let claims = match &self.keys {
            Keys::Fixed(key) => decode(token, key, &self.validations[0])?,
            Keys::Jwks(jwks) => {
                let header = jsonwebtoken::decode_header(token).map_err(refused)?;
                let validation = self
                    .validations
                    .iter()
                    .find(|validation| validation.algorithms == [header.alg])
                    .ok_or(GatewayError::Unauthenticated(
                        "the token's algorithm is not RS256 or ES256",
                    ))?;
                let keys = match header.kid.as_deref() {
                    Some(kid) => jwks.keys_naming(kid).await,
                    None => jwks.keys(),
                };
                let key = keys
                    .find(header.kid.as_deref())
                    .ok_or(GatewayError::Unauthenticated(
                        "the token's kid names no key of the identity provider",
                    ))?;
                if key.algorithm != header.alg {
                    return Err(GatewayError::Unauthenticated(
                        "the token's algorithm is not its key's",
                    ));
                }
                decode(token, &key.key, validation)?
            }
        };
        OwnerId::parse(&claims.sub).ok_or(GatewayError::Unauthenticated(
            "the token's sub is not a valid owner id",
        ))
    }
}

/// The checks of tokens signed with `algorithm`.
fn validation(algorithm: Algorithm, issuer: Option<&str>, audience: Option<&str>) -> Validation {
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
    validation
}

/// The token of `authorization: Bearer <token>`. More than one
/// `authorization` entry is refused: which one a proxy or a library would
/// pick differs, so none is.
fn bearer(metadata: &MetadataMap) -> Result<&str, GatewayError> {
    let mut headers = metadata.get_all("authorization").iter();
    let header = headers.next().ok_or(GatewayError::Unauthenticated(
        "missing authorization metadata",
    ))?;
    if headers.next().is_some() {
        return Err(GatewayError::Unauthenticated(
            "more than one authorization entry",
        ));
    }
    header
        .to_str()
        .ok()
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .ok_or(GatewayError::Unauthenticated(
            "authorization must be 'Bearer <token>'",
        ))
}

fn decode(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Claims, GatewayError> {
    jsonwebtoken::decode::<Claims>(token, key, validation)
        .map(|data| data.claims)
        .map_err(refused)
}

fn refused(error: jsonwebtoken::errors::Error) -> GatewayError {
    tracing::debug!(%error, "token refused");
    GatewayError::Unauthenticated("invalid or expired token")
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
    use futures_util::FutureExt;
    use tonic::metadata::MetadataMap;

    use super::{Authenticator, JwtKey, mint_hs256};
    use crate::gateway::domain::OwnerId;
    use crate::gateway::error::GatewayError;
    use crate::secret::Secret;

    fn secret() -> Secret {
        Secret::new("a-test-secret-of-some-length")
    }

    fn bearer(token: &str) -> MetadataMap {
        let mut map = MetadataMap::new();
        map.insert("authorization", format!("Bearer {token}").parse().unwrap());
        map
    }

    /// A fixed key never waits.
    fn verify(auth: &Authenticator, metadata: &MetadataMap) -> Result<OwnerId, GatewayError> {
        auth.authenticate(metadata)
            .now_or_never()
            .expect("a fixed key never waits")
    }

    fn auth() -> Authenticator {
        Authenticator::new(&JwtKey::Hmac(secret()), None, None).unwrap()
    }

    #[test]
    fn a_minted_token_authenticates_its_subject() {
        let token = mint_hs256(&secret(), "alice", Duration::from_secs(60)).unwrap();
        assert_eq!(verify(&auth(), &bearer(&token)).unwrap().as_str(), "alice");
    }

    #[test]
    fn missing_malformed_wrong_key_and_unsafe_subjects_are_refused() {
        let auth = auth();
        assert!(verify(&auth, &MetadataMap::new()).is_err());
        assert!(verify(&auth, &bearer("not.a.jwt")).is_err());
        let other = mint_hs256(
            &Secret::new("another-secret-entirely"),
            "alice",
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(verify(&auth, &bearer(&other)).is_err());
        let sneaky = mint_hs256(&secret(), "../bob", Duration::from_secs(60)).unwrap();
        assert!(verify(&auth, &bearer(&sneaky)).is_err());
    }

    #[test]
    fn an_alg_none_token_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"alice","exp":99999999999}"#);
        let token = format!("{header}.{claims}.");
        assert!(verify(&auth(), &bearer(&token)).is_err());
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
        assert!(verify(&auth(), &bearer(&token)).is_err());
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
        assert!(verify(&auth(), &bearer(&token(now + 600))).is_err());
        // Within the leeway for clock skew, and in the past: accepted.
        assert!(verify(&auth(), &bearer(&token(now + 10))).is_ok());
        assert!(verify(&auth(), &bearer(&token(now - 60))).is_ok());
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
        assert_eq!(verify(&rsa, &bearer(&rsa_token)).unwrap().as_str(), "alice");
        assert_eq!(verify(&ec, &bearer(&ec_token)).unwrap().as_str(), "alice");
        assert!(verify(&rsa, &bearer(&ec_token)).is_err(), "wrong algorithm");
        assert!(verify(&ec, &bearer(&rsa_token)).is_err(), "wrong algorithm");
        let hs = mint_hs256(&secret(), "alice", Duration::from_secs(60)).unwrap();
        assert!(
            verify(&rsa, &bearer(&hs)).is_err(),
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
        assert!(verify(&auth, &bearer(&good)).is_ok());
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
            assert!(verify(&auth, &bearer(&token)).is_err());
        }
    }
}
