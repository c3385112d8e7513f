//! What the Filestack client records: every request by route and outcome,
//! its latency, and the retries of each route. The families live in the
//! client; a gateway registers them in its registry ([`FilestackMetrics::register`]).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::filestack::error::FilestackError;

/// Latency buckets, seconds: Filestack answers in tens of milliseconds to
/// seconds (a part upload, an assembling `complete`).
const SECONDS_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    route: &'static str,
    outcome: &'static str,
}

/// The client's metric families (cheap to clone: they are shared).
#[derive(Clone, Debug)]
pub struct FilestackMetrics {
    requests: Family<OutcomeLabels, Counter>,
    seconds: Family<RouteLabels, Histogram>,
    retries: Family<RouteLabels, Counter>,
}

impl Default for FilestackMetrics {
    fn default() -> Self {
        FilestackMetrics {
            requests: Family::default(),
            seconds: Family::new_with_constructor(|| Histogram::new(SECONDS_BUCKETS)),
            retries: Family::default(),
        }
    }
}

impl FilestackMetrics {
    /// Registers `filestack_requests_total{route, outcome}`,
    /// `filestack_request_seconds{route}` and `filestack_retries_total{route}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "filestack_requests",
            "Requests to Filestack by route and outcome (ok, bad_request, policy_refused, not_found, unavailable, error).",
            self.requests.clone(),
        );
        registry.register(
            "filestack_request_seconds",
            "Time from sending a request to Filestack to its answer's head, by route.",
            self.seconds.clone(),
        );
        registry.register(
            "filestack_retries",
            "Requests to Filestack sent again after a retryable failure, by route.",
            self.retries.clone(),
        );
    }

    /// One request of `route` that ended with `result` after `elapsed`.
    pub(crate) fn observe<T>(
        &self,
        route: &'static str,
        result: &Result<T, FilestackError>,
        elapsed: Duration,
    ) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(FilestackError::BadRequest { .. }) => "bad_request",
            Err(FilestackError::PolicyRefused { .. }) => "policy_refused",
            Err(FilestackError::NotFound) => "not_found",
            Err(FilestackError::Unavailable { .. }) => "unavailable",
            Err(_) => "error",
        };
        self.requests
            .get_or_create(&OutcomeLabels { route, outcome })
            .inc();
        self.seconds
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
    }

    /// A request of `route` is sent again.
    pub(crate) fn retried(&self, route: &'static str) {
        self.retries.get_or_create(&RouteLabels { route }).inc();
    }
}
