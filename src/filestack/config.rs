//! Settings of the Filestack client. Every base URL is configuration, so the
//! same code talks to Filestack or to the emulator.

use std::time::Duration;

use crate::secret::Secret;

/// Filestack's File API base.
pub const DEFAULT_API_URL: &str = "https://www.filestackapi.com/api";
/// Filestack's Upload API base (`/multipart/start` goes here).
pub const DEFAULT_UPLOAD_URL: &str = "https://upload.filestackapi.com";
/// Filestack's CDN and processing base.
pub const DEFAULT_CDN_URL: &str = "https://cdn.filestackcontent.com";
/// Smallest part Filestack (S3) accepts, except for the last one.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Default part size.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// Largest part this client will hold in memory.
pub const MAX_PART_SIZE: usize = 256 * 1024 * 1024;
/// Most parts uploading at once.
pub const MAX_PARTS_IN_FLIGHT: usize = 32;

/// How transient failures are retried: capped exponential backoff with jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included (at least 1).
    pub max_attempts: u32,
    /// Delay before the first retry (before jitter).
    pub base_delay: Duration,
    /// Largest delay between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// Settings of a [`FilestackClient`](super::FilestackClient).
#[derive(Debug, Clone)]
pub struct FilestackConfig {
    /// The application's API key (public).
    pub api_key: String,
    /// The application's secret, used to sign policies.
    pub app_secret: Secret,
    /// File API base, e.g. `https://www.filestackapi.com/api`.
    pub api_url: String,
    /// Upload API base, e.g. `https://upload.filestackapi.com`.
    pub upload_url: String,
    /// CDN base, e.g. `https://cdn.filestackcontent.com`.
    pub cdn_url: String,
    /// Bytes per multipart part (the last one is shorter); at least 5 MiB.
    pub part_size: usize,
    /// Parts uploading at once.
    pub parts_in_flight: usize,
    /// Time limit of one HTTP request (a part PUT included).
    pub request_timeout: Duration,
    /// Time limit for connecting.
    pub connect_timeout: Duration,
    /// How long `/multipart/complete` may keep answering 202 before giving up.
    pub complete_timeout: Duration,
    /// Retries of idempotent steps.
    pub retry: RetryPolicy,
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes, got {0}")]
    PartSize(usize),
    #[error("parts_in_flight must be between 1 and {MAX_PARTS_IN_FLIGHT}, got {0}")]
    PartsInFlight(usize),
    #[error("retry.max_attempts must be at least 1")]
    MaxAttempts,
    #[error("{name} is not an http(s) URL: {value}")]
    Url { name: &'static str, value: String },
    #[error("api_key is empty")]
    ApiKey,
    #[error("the HTTP client could not be built: {0}")]
    Http(String),
}

impl FilestackConfig {
    /// Real Filestack with default sizes and timeouts.
    pub fn new(api_key: impl Into<String>, app_secret: Secret) -> Self {
        Self {
            api_key: api_key.into(),
            app_secret,
            api_url: DEFAULT_API_URL.to_owned(),
            upload_url: DEFAULT_UPLOAD_URL.to_owned(),
            cdn_url: DEFAULT_CDN_URL.to_owned(),
            part_size: DEFAULT_PART_SIZE,
            parts_in_flight: 4,
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            complete_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }

    /// The emulator at `base_url` (e.g. `http://127.0.0.1:4010`), which serves
    /// the Upload API and the CDN at its root and the File API under `/api`.
    pub fn emulator(base_url: &str, api_key: impl Into<String>, app_secret: Secret) -> Self {
        let base = base_url.trim_end_matches('/');
        Self {
            api_url: format!("{base}/api"),
            upload_url: base.to_owned(),
            cdn_url: base.to_owned(),
            ..Self::new(api_key, app_secret)
        }
    }

    /// Checks the limits; [`FilestackClient::new`](super::FilestackClient::new) calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return Err(ConfigError::PartSize(self.part_size));
        }
        if !(1..=MAX_PARTS_IN_FLIGHT).contains(&self.parts_in_flight) {
            return Err(ConfigError::PartsInFlight(self.parts_in_flight));
        }
        if self.retry.max_attempts == 0 {
            return Err(ConfigError::MaxAttempts);
        }
        if self.api_key.is_empty() {
            return Err(ConfigError::ApiKey);
        }
        let urls = [
            ("api_url", &self.api_url),
            ("upload_url", &self.upload_url),
            ("cdn_url", &self.cdn_url),
        ];
        for (name, value) in urls {
            let parsed = reqwest::Url::parse(value).ok();
            if !parsed.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()) {
                return Err(ConfigError::Url {
                    name,
                    value: value.clone(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{ConfigError, FilestackConfig, MIN_PART_SIZE};
    use crate::secret::Secret;

    #[test]
    fn parts_smaller_than_five_mebibytes_are_refused() {
        let mut config = FilestackConfig::new("key", Secret::new("s"));
        assert_eq!(config.validate(), Ok(()));
        config.part_size = MIN_PART_SIZE - 1;
        assert_eq!(
            config.validate(),
            Err(ConfigError::PartSize(MIN_PART_SIZE - 1))
        );
    }

    #[test]
    fn the_emulator_configuration_points_every_base_at_the_emulator() {
        let config = FilestackConfig::emulator("http://127.0.0.1:9/", "key", Secret::new("s"));
        assert_eq!(config.api_url, "http://127.0.0.1:9/api");
        assert_eq!(config.upload_url, "http://127.0.0.1:9");
        assert_eq!(config.cdn_url, "http://127.0.0.1:9");
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn a_base_url_without_a_scheme_is_refused() {
        let mut config = FilestackConfig::new("key", Secret::new("s"));
        config.cdn_url = "cdn.example.com".into();
        assert!(matches!(
            config.validate(),
            Err(ConfigError::Url {
                name: "cdn_url",
                ..
            })
        ));
    }
}
