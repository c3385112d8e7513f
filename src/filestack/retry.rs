//! Capped exponential backoff with jitter, and a loop that retries a step.

use std::future::Future;
use std::time::Duration;

use crate::filestack::config::RetryPolicy;
use crate::filestack::error::FilestackError;
use crate::filestack::metrics::FilestackMetrics;

/// The delay before retry number `retry` (1 for the first retry): the capped
/// exponential delay `min(max_delay, base_delay × 2^(retry-1))`, of which the
/// upper half is random ("equal jitter"), so concurrent parts do not retry in
/// lockstep and the delay never exceeds `max_delay`.
pub fn backoff(policy: &RetryPolicy, retry: u32) -> Duration {
    let capped = capped_delay(policy, retry);
    let half = capped / 2;
    let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    let jitter = if jitter_nanos == 0 {
        0
    } else {
        rand::random_range(0..=jitter_nanos)
    };
    half + Duration::from_nanos(jitter)
}

/// `min(max_delay, base_delay × 2^(retry-1))`, without jitter.
fn capped_delay(policy: &RetryPolicy, retry: u32) -> Duration {
    let exponent = retry.saturating_sub(1).min(30);
    policy
        .base_delay
        .saturating_mul(1u32 << exponent)
        .min(policy.max_delay)
}

/// Runs `op` until it succeeds, fails with an error `retryable` refuses, or
/// `policy.max_attempts` attempts were made; sleeps [`backoff`] in between.
/// Each retry is counted in `metrics` under `step`.
pub(crate) async fn retry<T, F, Fut>(
    metrics: &FilestackMetrics,
    policy: &RetryPolicy,
    step: &'static str,
    retryable: fn(&FilestackError) -> bool,
    mut op: F,
) -> Result<T, FilestackError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, FilestackError>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(error) if attempt < policy.max_attempts && retryable(&error) => {
                let delay = backoff(policy, attempt);
                tracing::warn!(step, attempt, ?delay, %error, "Filestack call failed, retrying");
                tokio::time::sleep(delay).await;
                metrics.retried(step);
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{backoff, capped_delay};
    use crate::filestack::config::RetryPolicy;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        }
    }

    #[test]
    fn delays_double_until_the_cap() {
        let policy = policy();
        let delays: Vec<_> = (1..=6).map(|n| capped_delay(&policy, n)).collect();
        let millis: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn jittered_delays_stay_between_half_the_capped_delay_and_the_cap() {
        let policy = policy();
        for retry in 1..=40 {
            let capped = capped_delay(&policy, retry);
            for _ in 0..50 {
                let delay = backoff(&policy, retry);
                assert!(delay <= capped && delay <= policy.max_delay, "{delay:?}");
                assert!(delay >= capped / 2, "{delay:?}");
            }
        }
    }

    #[test]
    fn a_huge_retry_number_does_not_overflow() {
        let policy = policy();
        assert_eq!(capped_delay(&policy, u32::MAX), policy.max_delay);
    }
}
