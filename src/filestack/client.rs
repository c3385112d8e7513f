//! The client value: configuration, one pooled HTTP client, and policy signing.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::Instrument;

use crate::filestack::config::{ConfigError, FilestackConfig};
use crate::filestack::error::FilestackError;
use crate::filestack::http;
use crate::filestack::metrics::FilestackMetrics;
use crate::filestack::policy::{Call, Policy, Security};
use crate::telemetry;

/// Talks to Filestack (or the emulator). Cheap to clone: clones share the
/// configuration and the connection pool.
#[derive(Debug, Clone)]
pub struct FilestackClient {
    pub(crate) config: Arc<FilestackConfig>,
    pub(crate) http: reqwest::Client,
    pub(crate) metrics: FilestackMetrics,
}

impl FilestackClient {
    /// Checks `config` and builds the HTTP client.
    pub fn new(config: FilestackConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .pool_max_idle_per_host(config.parts_in_flight * 2)
            // A redirect would carry a signed query string to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| ConfigError::Http(error.to_string()))?;
        Ok(Self {
            config: Arc::new(config),
            http,
            metrics: FilestackMetrics::default(),
        })
    }

    /// The same client, recording into `metrics` (registered by the caller).
    pub fn with_metrics(mut self, metrics: FilestackMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sends `request`, one request of `route`, as [`http::send`] does, in a
    /// span of its own whose context it carries (`traceparent`), and
    /// records it.
    pub(crate) async fn send(
        &self,
        route: &'static str,
        request: reqwest::RequestBuilder,
        secrets: &[&str],
    ) -> Result<reqwest::Response, FilestackError> {
        let (client, request) = request.build_split();
        let mut request = match request {
            Ok(request) => request,
            Err(error) => {
                // Never sent (a URL too long, say), still counted.
                let failed = Err(FilestackError::transport(error));
                self.metrics.observe(route, &failed, Duration::ZERO);
                return failed;
            }
        };
        let span = telemetry::filestack_span(route, request.method());
        async {
            telemetry::inject_context(request.headers_mut());
            let started = std::time::Instant::now();
            let result = http::send(
                reqwest::RequestBuilder::from_parts(client, request),
                secrets,
            )
            .await;
            self.metrics.observe(route, &result, started.elapsed());
            telemetry::filestack_answered(&span, answer_status(&result));
            result
        }
        .instrument(span.clone())
        .await
    }

    /// The configuration in use.
    pub fn config(&self) -> &FilestackConfig {
        &self.config
    }

    /// Encodes and signs `policy` with the app secret.
    pub fn sign(&self, policy: &Policy) -> Security {
        Security::sign(policy, &self.config.app_secret)
    }

    /// The narrowest policy for `calls` on one handle, valid for `ttl` from now.
    pub fn handle_policy(&self, handle: &str, calls: &[Call], ttl: Duration) -> Policy {
        Policy::new(expiry_in(ttl), calls).with_handle(handle)
    }
}

/// The HTTP status Filestack answered `result` with: `None` when no answer
/// came.
fn answer_status(result: &Result<reqwest::Response, FilestackError>) -> Option<u16> {
    match result {
        Ok(response) => Some(response.status().as_u16()),
        Err(error) => error.status(),
    }
}

/// Unix seconds `ttl` from now (rounded up, at least one second ahead).
pub(crate) fn expiry_in(ttl: Duration) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let ttl = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i64::try_from(now.saturating_add(ttl.max(1))).unwrap_or(i64::MAX)
}

/// `text` with regex metacharacters escaped: a policy's `path` and
/// `container` are regular expressions.
pub(crate) fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{FilestackClient, expiry_in, regex_escape};
    use crate::filestack::config::FilestackConfig;
    use crate::filestack::policy::Call;
    use crate::secret::Secret;

    #[test]
    fn a_handle_policy_is_pinned_to_the_handle_and_the_calls() {
        let config = FilestackConfig::new("key", Secret::new("s"));
        let client = FilestackClient::new(config).unwrap();
        let before = expiry_in(Duration::ZERO);
        let policy = client.handle_policy("abc", &[Call::Remove], Duration::from_secs(300));
        assert_eq!(policy.handle.as_deref(), Some("abc"));
        assert_eq!(policy.call, Some(vec![Call::Remove]));
        assert!(policy.expiry >= before + 299 && policy.expiry <= before + 301);
        let security = client.sign(&policy);
        assert_eq!(
            security.verify(&Secret::new("s")).unwrap(),
            policy,
            "signed with the app secret"
        );
    }

    #[test]
    fn policy_paths_escape_regex_metacharacters_only() {
        assert_eq!(regex_escape("user-uploads/alice/"), "user-uploads/alice/");
        assert_eq!(regex_escape("a.b/(c)+"), r"a\.b/\(c\)\+");
    }
}
