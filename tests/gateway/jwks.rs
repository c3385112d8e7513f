//! Keys from an identity provider (`--jwt-jwks-url`): a JWKS served by a
//! local HTTP server that counts its fetches, with keys generated here and
//! rotated mid-test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use filegate::pb::v1 as pb;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::auth::{authed, token};
use support::gateway::{JWT_SECRET, TestGateway};
use support::rpc::{Rpc, reason};
use support::{poll_until, unix_now};
use tokio::sync::oneshot;
use tonic::{Code, Status};

/// A key the provider signs with.
struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    key: EncodingKey,
}

impl SigningKey {
    /// A new P-256 key.
    fn es256(kid: &str) -> SigningKey {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("an EC key");
        let pkcs8 = pair.to_pkcs8v1().expect("PKCS#8");
        SigningKey {
            kid: kid.to_owned(),
            algorithm: Algorithm::ES256,
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
        }
    }

    /// The test RSA key pair of `tests/fixtures/jwt`.
    fn rs256(kid: &str) -> SigningKey {
        let pem = include_str!("../fixtures/jwt/rsa-private.pem");
        SigningKey {
            kid: kid.to_owned(),
            algorithm: Algorithm::RS256,
            key: EncodingKey::from_rsa_pem(pem.as_bytes()).expect("an RSA key"),
        }
    }

    /// The public JWK, as a provider publishes it.
    fn jwk(&self) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.algorithm).expect("a JWK");
        jwk.common.key_id = Some(self.kid.clone());
        serde_json::to_value(jwk).expect("JSON")
    }

    /// A token with these claims, naming this key.
    fn sign(&self, claims: Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).expect("a token")
    }

    /// A token for `sub`, valid for ten minutes.
    fn token(&self, sub: &str) -> String {
        self.sign(json!({"sub": sub, "exp": unix_now() + 600}))
    }
}

/// What the provider answers.
#[derive(Clone)]
enum Answer {
    /// The JWKS of these keys.
    Keys(Value),
    /// 503.
    Down,
    /// 200 with a body that is no JWKS.
    Garbage,
}

/// An identity provider's JWKS endpoint on 127.0.0.1, port 0.
struct Provider {
    url: String,
    answer: Arc<Mutex<Answer>>,
    fetches: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Provider {
    async fn publishing(keys: &[&SigningKey]) -> Provider {
        let answer = Arc::new(Mutex::new(Answer::Garbage));
        let fetches = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get({
                let answer = answer.clone();
                let fetches = fetches.clone();
                move || async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let answer = answer.lock().unwrap().clone();
                    let response: Response = match answer {
                        Answer::Keys(set) => axum::Json(set).into_response(),
                        Answer::Down => StatusCode::SERVICE_UNAVAILABLE.into_response(),
                        Answer::Garbage => "<html>maintenance</html>".into_response(),
                    };
                    response
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().expect("bound")
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("provider serves");
        });
        let provider = Provider {
            url,
            answer,
            fetches,
            stop: Some(stop),
            task: Some(task),
        };
        provider.publish(keys);
        provider
    }

    fn publish(&self, keys: &[&SigningKey]) {
        let keys: Vec<Value> = keys.iter().map(|key| key.jwk()).collect();
        self.answer(Answer::Keys(json!({ "keys": keys })));
    }

    fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    /// Requests served so far.
    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until two more fetches began: the first of them has
    /// then been dealt with (fetches never overlap).
    async fn wait_for_a_fetch_dealt_with(&self) {
        let seen = self.fetches();
        poll_until(Duration::from_secs(10), "two more fetches", || async {
            self.fetches() >= seen + 2
        })
        .await;
    }

    /// Stops serving: connections are refused from now on.
    async fn stop(mut self) {
        let _ = self.stop.take().expect("running").send(());
        self.task.take().expect("running").await.expect("stopped");
    }
}

/// A gateway verifying with the provider's keys, and `extra` flags.
async fn gateway(provider: &Provider, extra: &[&str]) -> TestGateway {
    let mut flags = vec!["--jwt-jwks-url", provider.url.as_str()];
    flags.extend_from_slice(extra);
    TestGateway::start_with(&flags).await
}

/// WhoAmI with `token`.
async fn who_am_i(gw: &TestGateway, token: &str) -> Result<String, Status> {
    let response = gw
        .client()
        .await
        .who_am_i(authed(token, pb::WhoAmIRequest {}))
        .await?;
    Ok(response.into_inner().owner)
}

/// Asserts that `token` is refused as UNAUTHENTICATED, with its ErrorInfo.
async fn assert_refused(gw: &TestGateway, token: &str, what: &str) {
    let status = who_am_i(gw, token).await.expect_err(what);
    assert_eq!(status.code(), Code::Unauthenticated, "{what}");
    assert_eq!(reason(&status), "UNAUTHENTICATED", "{what}");
    assert!(!status.message().contains(token), "{what}: no token echoed");
}

#[tokio::test]
async fn tokens_signed_with_a_published_rsa_or_ec_key_authenticate_their_subject() {
    let rsa = SigningKey::rs256("rsa-1");
    let ec = SigningKey::es256("ec-1");
    let provider = Provider::publishing(&[&rsa, &ec]).await;
    let gw = gateway(&provider, &[]).await;
    assert_eq!(who_am_i(&gw, &rsa.token("alice")).await.unwrap(), "alice");
    assert_eq!(who_am_i(&gw, &ec.token("bob")).await.unwrap(), "bob");
    assert_eq!(provider.fetches(), 1, "fetched once, at start");

    // The algorithm must be the named key's, and tokens must name a key.
    let ec_as_rsa = SigningKey {
        kid: rsa.kid.clone(),
        ..SigningKey::es256("unused")
    };
    assert_refused(&gw, &ec_as_rsa.token("alice"), "ES256 under an RSA kid").await;
    let no_kid = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &json!({"sub": "alice", "exp": unix_now() + 600}),
        &ec.key,
    )
    .unwrap();
    assert_refused(&gw, &no_kid, "no kid among several keys").await;
    assert_refused(&gw, &token(JWT_SECRET, "alice"), "HS256").await;
    gw.stop().await;
}

#[tokio::test]
async fn a_token_whose_kid_is_not_published_is_unauthenticated() {
    let published = SigningKey::es256("published");
    let provider = Provider::publishing(&[&published]).await;
    let gw = gateway(&provider, &[]).await;
    let stranger = SigningKey::es256("stranger");
    assert_refused(&gw, &stranger.token("alice"), "unknown kid").await;
    // Signed by another key under the published kid.
    let impostor = SigningKey {
        kid: "published".into(),
        ..SigningKey::es256("unused")
    };
    assert_refused(&gw, &impostor.token("alice"), "wrong signature").await;
    assert_eq!(
        who_am_i(&gw, &published.token("alice")).await.unwrap(),
        "alice"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_key_published_mid_test_verifies_its_first_token_at_once_and_the_old_key_keeps_working() {
    let old = SigningKey::es256("2024-old");
    let provider = Provider::publishing(&[&old]).await;
    // The default refresh (300 s): only a token naming the new key can
    // bring it in during this test.
    let gw = gateway(&provider, &[]).await;
    assert_eq!(who_am_i(&gw, &old.token("alice")).await.unwrap(), "alice");

    let new = SigningKey::es256("2025-new");
    provider.publish(&[&old, &new]);
    assert_eq!(who_am_i(&gw, &new.token("bob")).await.unwrap(), "bob");
    assert_eq!(provider.fetches(), 2, "one fetch for the new kid");
    assert_eq!(who_am_i(&gw, &old.token("alice")).await.unwrap(), "alice");
    assert_eq!(who_am_i(&gw, &new.token("bob")).await.unwrap(), "bob");
    assert_eq!(provider.fetches(), 2, "known kids fetch nothing");
    let fetches = gw
        .metrics([
            r#"filegate_jwks_fetches_total{trigger="start",outcome="ok"}"#,
            r#"filegate_jwks_fetches_total{trigger="unknown_kid",outcome="ok"}"#,
        ])
        .await;
    assert_eq!(fetches, [1, 1], "the fetches, counted by trigger");
    gw.stop().await;
}

#[tokio::test]
async fn a_key_removed_from_the_set_is_refused_after_the_next_scheduled_refresh() {
    let old = SigningKey::es256("old");
    let new = SigningKey::rs256("new");
    let provider = Provider::publishing(&[&old, &new]).await;
    let gw = gateway(&provider, &["--jwt-jwks-refresh-secs", "1"]).await;
    assert_eq!(who_am_i(&gw, &old.token("alice")).await.unwrap(), "alice");

    provider.publish(&[&new]);
    poll_until(Duration::from_secs(10), "the old key dropped", || async {
        who_am_i(&gw, &old.token("alice")).await.is_err()
    })
    .await;
    assert_refused(&gw, &old.token("alice"), "removed key").await;
    assert_eq!(who_am_i(&gw, &new.token("bob")).await.unwrap(), "bob");
    gw.stop().await;
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_the_keys_once_per_interval_and_refuses_the_rest_at_once() {
    let known = SigningKey::es256("known");
    let provider = Provider::publishing(&[&known]).await;
    // Defaults: refresh every 300 s, unknown kids at most every 30 s.
    let gw = gateway(&provider, &[]).await;
    let stranger = SigningKey::es256("unused");
    let client = gw.client().await;
    let calls = (0..64).map(|n| {
        let mut client = client.clone();
        let forged = SigningKey {
            kid: format!("made-up-{n}"),
            algorithm: stranger.algorithm,
            key: stranger.key.clone(),
        };
        async move {
            client
                .who_am_i(authed(&forged.token("mallory"), pb::WhoAmIRequest {}))
                .await
                .expect_err("forged")
                .code()
        }
    });
    let codes = futures_util::future::join_all(calls).await;
    assert_eq!(codes, vec![Code::Unauthenticated; 64]);
    assert_eq!(
        provider.fetches(),
        2,
        "start, then one fetch for all of them"
    );

    // Within the interval even a genuinely new key waits for it (or for the
    // scheduled refresh), and known keys work throughout.
    let new = SigningKey::es256("new");
    provider.publish(&[&known, &new]);
    assert_refused(&gw, &new.token("bob"), "a new kid within the interval").await;
    assert_eq!(provider.fetches(), 2, "refused without a fetch");
    assert_eq!(who_am_i(&gw, &known.token("alice")).await.unwrap(), "alice");
    gw.stop().await;
}

#[tokio::test]
async fn the_last_keys_keep_working_while_the_provider_is_down_or_answers_garbage() {
    let key = SigningKey::es256("k1");
    let provider = Provider::publishing(&[&key]).await;
    let gw = gateway(
        &provider,
        &[
            "--jwt-jwks-refresh-secs",
            "1",
            "--jwt-jwks-min-refresh-secs",
            "1",
        ],
    )
    .await;
    let no_usable_key = json!({"keys": [{"kty": "oct", "kid": "k1", "k": "c2VjcmV0"}]});
    for (answer, what) in [
        (Answer::Down, "503"),
        (Answer::Garbage, "garbage"),
        (Answer::Keys(json!({"keys": []})), "an empty set"),
        (Answer::Keys(no_usable_key), "no usable key"),
    ] {
        provider.answer(answer);
        provider.wait_for_a_fetch_dealt_with().await;
        assert_eq!(
            who_am_i(&gw, &key.token("alice")).await.unwrap(),
            "alice",
            "{what}"
        );
    }

    // Unreachable: a token naming an unknown key makes the gateway fetch
    // while the call waits; the fetch fails and the keys stay.
    provider.stop().await;
    let unknown = SigningKey::es256("k2");
    assert_refused(&gw, &unknown.token("bob"), "provider unreachable").await;
    assert_eq!(who_am_i(&gw, &key.token("alice")).await.unwrap(), "alice");
    let [scheduled_failed, unknown_kid_failed] = gw
        .metrics([
            r#"filegate_jwks_fetches_total{trigger="scheduled",outcome="failed"}"#,
            r#"filegate_jwks_fetches_total{trigger="unknown_kid",outcome="failed"}"#,
        ])
        .await;
    assert!(
        scheduled_failed >= 4,
        "the four bad answers: {scheduled_failed}"
    );
    assert_eq!(unknown_kid_failed, 1, "the fetch for k2");
    gw.stop().await;
}

#[tokio::test]
async fn issuer_and_audience_are_still_checked_with_keys_from_a_jwks() {
    let key = SigningKey::rs256("rsa");
    let provider = Provider::publishing(&[&key]).await;
    let gw = gateway(
        &provider,
        &[
            "--jwt-issuer",
            "https://idp.example.com",
            "--jwt-audience",
            "filegate",
        ],
    )
    .await;
    let exp = unix_now() + 600;
    let good = key.sign(json!({"sub": "alice", "exp": exp,
        "iss": "https://idp.example.com", "aud": "filegate"}));
    assert_eq!(who_am_i(&gw, &good).await.unwrap(), "alice");
    for (claims, what) in [
        (
            json!({"sub": "alice", "exp": exp, "iss": "https://evil.example.com", "aud": "filegate"}),
            "wrong issuer",
        ),
        (
            json!({"sub": "alice", "exp": exp, "iss": "https://idp.example.com", "aud": "other"}),
            "wrong audience",
        ),
        (json!({"sub": "alice", "exp": exp}), "neither"),
        (
            json!({"sub": "alice", "exp": 1_000, "iss": "https://idp.example.com", "aud": "filegate"}),
            "expired",
        ),
    ] {
        assert_refused(&gw, &key.sign(claims), what).await;
    }
    gw.stop().await;
}

#[tokio::test]
async fn the_gateway_does_not_start_without_keys_from_the_provider() {
    let key = SigningKey::es256("k1");
    let provider = Provider::publishing(&[&key]).await;
    let flags = ["--jwt-jwks-url", provider.url.as_str()];
    for (answer, cause) in [
        (Answer::Down, "503"),
        (Answer::Garbage, "not a JWKS"),
        (Answer::Keys(json!({"keys": []})), "no usable key"),
    ] {
        provider.answer(answer);
        let error = TestGateway::try_start_with(&flags)
            .await
            .err()
            .expect("no start");
        let error = format!("{error:#}");
        assert!(
            error.contains("fetching the JWT keys from http://127.0.0.1") && error.contains(cause),
            "{error}"
        );
    }
    let url = provider.url.clone();
    provider.stop().await;
    let error = TestGateway::try_start_with(&["--jwt-jwks-url", &url])
        .await
        .err()
        .expect("no start while unreachable");
    assert!(
        format!("{error:#}").contains("fetching the JWT keys"),
        "{error:#}"
    );

    for (flags, expected) in [
        (
            vec![
                "--jwt-jwks-url",
                "https://idp.example.com/jwks",
                "--jwt-secret",
                JWT_SECRET,
            ],
            "--jwt-jwks-url (FILEGATE_JWT_JWKS_URL) cannot be combined with --jwt-secret",
        ),
        (
            vec![
                "--jwt-public-key",
                "/nonexistent/public.pem",
                "--jwt-secret",
                JWT_SECRET,
            ],
            "--jwt-public-key (FILEGATE_JWT_PUBLIC_KEY) cannot be combined with --jwt-secret",
        ),
        (
            vec!["--jwt-jwks-url", "http://idp.example.com/jwks"],
            "must be https (or http to a loopback address",
        ),
        (
            vec!["--jwt-jwks-url", "file:///etc/jwks.json"],
            "must be https",
        ),
    ] {
        let error = TestGateway::try_start_with(&flags)
            .await
            .err()
            .expect("refused flags");
        assert!(format!("{error:#}").contains(expected), "{error:#}");
    }
}
