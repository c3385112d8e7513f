//! Verification keys from an identity provider's JWKS URL
//! (`--jwt-jwks-url`).
//!
//! The key set is fetched at start-up (a failure stops the start: a gateway
//! that can verify nothing must not report ready), then kept in memory and
//! fetched again every `refresh`, and when a token names a `kid` the set
//! does not hold, at most once per `min_refresh` so that tokens with made-up
//! `kid`s cannot make filegate hammer the provider. A fetch that fails, or
//! answers something that is not a key set with a usable key, keeps the
//! previous keys and logs a warning.
//!
//! Usable keys: RSA (RS256) and EC P-256 (ES256) keys for signatures (`use`
//! absent or `sig`; `alg`, when given, the one of the key type). Any other
//! key (encryption keys, HMAC `oct` keys, other curves) is skipped. A key
//! without `kid` is used only when it is the set's only key; it then
//! verifies tokens whatever their `kid`.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::Url;
use tokio_util::sync::CancellationToken;

use crate::gateway::metrics::GatewayMetrics;

/// How long one fetch of the key set may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest key set read; a larger answer is garbage.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Redirects followed (each to an allowed URL).
const MAX_REDIRECTS: usize = 5;

/// Where the keys come from and how often they are fetched again.
#[derive(Debug, Clone)]
pub struct JwksSource {
    pub url: Url,
    /// Time between scheduled fetches.
    pub refresh: Duration,
    /// Shortest time between two fetches for unknown `kid`s.
    pub min_refresh: Duration,
}

impl JwksSource {
    /// A source whose URL is `https`, or `http` to a loopback address: keys
    /// fetched in the clear over a network could be swapped for an
    /// attacker's on the way.
    pub fn new(url: &str, refresh: Duration, min_refresh: Duration) -> anyhow::Result<Self> {
        let url =
            Url::parse(url).with_context(|| format!("--jwt-jwks-url {url:?} is not a URL"))?;
        anyhow::ensure!(
            allowed(&url),
            "--jwt-jwks-url must be https (or http to a loopback address such as 127.0.0.1), not {url}"
        );
        anyhow::ensure!(
            !refresh.is_zero() && !min_refresh.is_zero(),
            "--jwt-jwks-refresh-secs and --jwt-jwks-min-refresh-secs must be at least 1"
        );
        Ok(Self {
            url,
            refresh,
            min_refresh,
        })
    }
}

/// `https`, or `http` to a loopback host.
fn allowed(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host_str() {
            Some("localhost") => true,
            Some(host) => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()),
            None => false,
        },
        _ => false,
    }
}

/// One usable key of the set.
pub struct VerifyingKey {
    pub kid: Option<String>,
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// The keys of one fetch.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl KeySet {
    /// The usable keys of a JWKS document; an error when it is not one or
    /// holds no usable key.
    pub fn parse(body: &[u8]) -> anyhow::Result<KeySet> {
        #[derive(serde::Deserialize)]
        struct Raw {
            keys: Vec<serde_json::Value>,
        }
        let raw: Raw = serde_json::from_slice(body).context("the answer is not a JWKS")?;
        let mut keys: Vec<VerifyingKey> = raw
            .keys
            .into_iter()
            .filter_map(|value| usable(&serde_json::from_value(value).ok()?))
            .collect();
        if keys.len() > 1 {
            keys.retain(|key| key.kid.is_some());
        }
        anyhow::ensure!(
            !keys.is_empty(),
            "the JWKS has no usable key (RS256, or ES256 on P-256, for signatures)"
        );
        Ok(KeySet { keys })
    }

    /// The key a token's `kid` names, or the set's only key when it has no
    /// `kid`.
    pub fn find(&self, kid: Option<&str>) -> Option<&VerifyingKey> {
        match (self.keys.as_slice(), kid) {
            ([only], _) if only.kid.is_none() => Some(only),
            (keys, Some(kid)) => keys.iter().find(|key| key.kid.as_deref() == Some(kid)),
            (_, None) => None,
        }
    }

    fn kids(&self) -> Vec<&str> {
        self.keys
            .iter()
            .map(|key| key.kid.as_deref().unwrap_or("(none)"))
            .collect()
    }
}

/// The key a JWK describes, if filegate verifies with keys of its kind.
fn usable(jwk: &Jwk) -> Option<VerifyingKey> {
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|usage| *usage != PublicKeyUse::Signature)
    {
        return None;
    }
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return None;
    }
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        _ => return None,
    };
    if jwk
        .common
        .key_algorithm
        .is_some_and(|alg| alg != algorithm.into())
    {
        return None;
    }
    Some(VerifyingKey {
        kid: jwk.common.key_id.clone(),
        algorithm,
        key: DecodingKey::from_jwk(jwk).ok()?,
    })
}

/// The provider's keys, as last fetched.
pub struct Jwks {
    source: JwksSource,
    http: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    /// Held by whoever fetches, so fetches never overlap; holds when the
    /// last fetch for an unknown `kid` began.
    fetching: Arc<tokio::sync::Mutex<Option<Instant>>>,
    /// Counts the fetches.
    metrics: GatewayMetrics,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("url", &self.source.url.as_str())
            .finish_non_exhaustive()
    }
}

impl Jwks {
    /// Fetches the key set; an error when that fails.
    pub async fn start(source: JwksSource, metrics: GatewayMetrics) -> anyhow::Result<Arc<Jwks>> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    attempt.error("too many redirects")
                } else if allowed(attempt.url()) {
                    attempt.follow()
                } else {
                    attempt.error("redirected to a URL that is neither https nor loopback")
                }
            }))
            .build()?;
        let jwks = Jwks {
            source,
            http,
            keys: RwLock::default(),
            fetching: Arc::default(),
            metrics,
        };
        let fetched = jwks.fetch().await;
        jwks.metrics.jwks_fetch("start", fetched.is_ok());
        let keys = fetched
            .with_context(|| format!("fetching the JWT keys from {}", jwks.source.url.as_str()))?;
        tracing::info!(url = jwks.source.url.as_str(), kids = ?keys.kids(), "JWT keys fetched");
        jwks.store(keys);
        Ok(Arc::new(jwks))
    }

    /// The keys in use.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn store(&self, keys: KeySet) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
    }

    /// The keys, fetched again first if `kid` is not among them and no
    /// fetch for an unknown `kid` began within `min_refresh`. Callers that
    /// arrive while a fetch runs wait for it rather than start another.
    pub async fn keys_naming(self: &Arc<Self>, kid: &str) -> Arc<KeySet> {
        let keys = self.keys();
        if keys.find(Some(kid)).is_some() {
            return keys;
        }
        let mut last = self.fetching.clone().lock_owned().await;
        let keys = self.keys();
        if keys.find(Some(kid)).is_some()
            || last.is_some_and(|at| at.elapsed() < self.source.min_refresh)
        {
            return keys;
        }
        *last = Some(Instant::now());
        // The fetch runs to its end, holding the lock, even if this call
        // goes away: the calls waiting for it get its keys.
        let jwks = self.clone();
        let fetch = tokio::spawn(async move {
            jwks.refresh("unknown_kid").await;
            drop(last);
        });
        let _ = fetch.await;
        self.keys()
    }

    /// Fetches the keys every `refresh` until `stop` (which also ends a
    /// fetch under way).
    pub async fn refresh_every(self: Arc<Self>, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(self.source.refresh);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let scheduled = async {
            loop {
                ticks.tick().await;
                let _fetching = self.fetching.lock().await;
                self.refresh("scheduled").await;
            }
        };
        tokio::select! {
            () = scheduled => {}
            () = stop.cancelled() => {}
        }
    }

    /// One fetch, for `why` (`scheduled`, `unknown_kid`): new keys replace
    /// the old, a failure keeps them.
    async fn refresh(&self, why: &'static str) {
        let fetched = self.fetch().await;
        self.metrics.jwks_fetch(why, fetched.is_ok());
        match fetched {
            Ok(keys) => {
                let before = self.keys().kids().join(",");
                let after = keys.kids().join(",");
                if before != after {
                    tracing::info!(why, kids = after, "JWT keys changed");
                }
                self.store(keys);
            }
            Err(error) => tracing::warn!(
                why,
                url = self.source.url.as_str(),
                error = format!("{error:#}"),
                "could not refresh the JWT keys: the previous ones stay in use"
            ),
        }
    }

    async fn fetch(&self) -> anyhow::Result<KeySet> {
        let mut response = self
            .http
            .get(self.source.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await?
            .error_for_status()?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            anyhow::ensure!(
                body.len() + chunk.len() <= MAX_BODY_BYTES,
                "the answer is larger than {MAX_BODY_BYTES} bytes"
            );
            body.extend_from_slice(&chunk);
        }
        KeySet::parse(&body)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{Algorithm, EncodingKey};
    use serde_json::json;

    use super::{JwksSource, KeySet};

    // Test-only key pairs (openssl genpkey), never used outside tests.
    const RSA_PRIVATE: &str = include_str!("../../tests/fixtures/jwt/rsa-private.pem");
    const EC_PRIVATE: &str = include_str!("../../tests/fixtures/jwt/ec-private.pem");

    /// The public JWK of a test key pair, with `extra` members.
    fn jwk(algorithm: Algorithm, extra: serde_json::Value) -> serde_json::Value {
        let key = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()),
            _ => EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()),
        }
        .unwrap();
        let mut value =
            serde_json::to_value(Jwk::from_encoding_key(&key, algorithm).unwrap()).unwrap();
        value.as_object_mut().unwrap().remove("alg");
        for (name, member) in extra.as_object().unwrap() {
            value[name] = member.clone();
        }
        value
    }

    fn set(keys: serde_json::Value) -> anyhow::Result<KeySet> {
        KeySet::parse(json!({ "keys": keys }).to_string().as_bytes())
    }

    fn rsa(kid: Option<&str>) -> serde_json::Value {
        match kid {
            Some(kid) => jwk(Algorithm::RS256, json!({"kid": kid})),
            None => jwk(Algorithm::RS256, json!({})),
        }
    }

    #[test]
    fn rsa_and_p256_signing_keys_are_used_and_others_skipped() {
        let keys = set(json!([
            rsa(Some("r")),
            jwk(Algorithm::ES256, json!({"kid": "e", "use": "sig", "alg": "ES256"})),
            jwk(Algorithm::ES256, json!({"kid": "p384", "crv": "P-384"})),
            jwk(Algorithm::ES256, json!({"kid": "es-as-rs", "alg": "RS256"})),
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            jwk(Algorithm::RS256, json!({"kid": "enc", "use": "enc"})),
            jwk(Algorithm::RS256, json!({"kid": "ps", "alg": "PS256"})),
            jwk(Algorithm::RS256, json!({"kid": "no-verify", "key_ops": ["encrypt"]})),
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AA"},
            {"kty": "weird", "kid": "w"},
        ]))
        .unwrap();
        assert_eq!(keys.kids(), ["r", "e"]);
        assert_eq!(keys.find(Some("r")).unwrap().algorithm, Algorithm::RS256);
        assert_eq!(keys.find(Some("e")).unwrap().algorithm, Algorithm::ES256);
        for kid in [
            "p384",
            "es-as-rs",
            "hmac",
            "enc",
            "ps",
            "no-verify",
            "ed",
            "w",
            "nope",
        ] {
            assert!(keys.find(Some(kid)).is_none(), "{kid}");
        }
        assert!(keys.find(None).is_none());
    }

    #[test]
    fn a_key_without_kid_serves_every_token_only_when_it_is_alone() {
        let alone = set(json!([rsa(None)])).unwrap();
        assert!(alone.find(None).is_some());
        assert!(alone.find(Some("any")).is_some());
        let with_others = set(json!([rsa(None), rsa(Some("r"))])).unwrap();
        assert_eq!(with_others.kids(), ["r"]);
        assert!(with_others.find(None).is_none());
        let named = set(json!([rsa(Some("r"))])).unwrap();
        assert!(named.find(None).is_none(), "a token must name a named key");
    }

    #[test]
    fn garbage_and_sets_without_a_usable_key_are_errors() {
        assert!(KeySet::parse(b"<html>down</html>").is_err());
        assert!(KeySet::parse(b"{}").is_err());
        assert!(set(json!([])).is_err());
        assert!(set(json!([{"kty": "oct", "k": "c2VjcmV0"}])).is_err());
    }

    #[test]
    fn the_url_must_be_https_or_loopback_http() {
        let source =
            |url: &str| JwksSource::new(url, Duration::from_secs(1), Duration::from_secs(1));
        for good in [
            "https://idp.example.com/.well-known/jwks.json",
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]:9000/jwks",
        ] {
            assert!(source(good).is_ok(), "{good}");
        }
        for bad in [
            "http://idp.example.com/jwks",
            "http://10.0.0.1/jwks",
            "file:///etc/jwks.json",
            "ftp://127.0.0.1/jwks",
            "not a url",
        ] {
            assert!(source(bad).is_err(), "{bad}");
        }
        assert!(
            JwksSource::new("https://idp/jwks", Duration::ZERO, Duration::from_secs(1)).is_err()
        );
    }
}
