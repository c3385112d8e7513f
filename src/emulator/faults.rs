//! Fault injection and request statistics (`/_emulator/faults`,
//! `/_emulator/stats`), applied by one middleware in front of every route.
//!
//! These endpoints are unauthenticated: the emulator is a development tool
//! meant to bind to loopback.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde::Deserialize;

use crate::emulator::error::ApiError;

/// The routes faults can target, as named in `/_emulator/faults`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    MultipartStart,
    MultipartUpload,
    PartPut,
    MultipartCommit,
    MultipartComplete,
    Store,
    FileGet,
    FileDelete,
    FileOverwrite,
    Metadata,
    Cdn,
    Emulator,
}

impl Route {
    const NAMED: [Route; 11] = [
        Route::MultipartStart,
        Route::MultipartUpload,
        Route::PartPut,
        Route::MultipartCommit,
        Route::MultipartComplete,
        Route::Store,
        Route::FileGet,
        Route::FileDelete,
        Route::FileOverwrite,
        Route::Metadata,
        Route::Cdn,
    ];

    /// The route's name in fault specs and stats.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::MultipartStart => "multipart_start",
            Route::MultipartUpload => "multipart_upload",
            Route::PartPut => "part_put",
            Route::MultipartCommit => "multipart_commit",
            Route::MultipartComplete => "multipart_complete",
            Route::Store => "store",
            Route::FileGet => "file_get",
            Route::FileDelete => "file_delete",
            Route::FileOverwrite => "file_overwrite",
            Route::Metadata => "metadata",
            Route::Cdn => "cdn",
            Route::Emulator => "emulator",
        }
    }

    fn parse(name: &str) -> Option<Route> {
        Route::NAMED.into_iter().find(|r| r.as_str() == name)
    }

    /// Which route a request goes to.
    pub fn classify(method: &Method, path: &str) -> Route {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            ["_emulator", ..] => Route::Emulator,
            ["multipart", "start"] => Route::MultipartStart,
            ["multipart", "upload"] => Route::MultipartUpload,
            ["multipart", "commit"] => Route::MultipartCommit,
            ["multipart", "complete"] => Route::MultipartComplete,
            ["s3", ..] => Route::PartPut,
            ["api", "store", ..] => Route::Store,
            ["api", "file", _, "metadata"] | [_, "metadata"] => Route::Metadata,
            ["api", "file", _, "remove"] => Route::FileDelete,
            ["api", "file", _] if method == Method::DELETE => Route::FileDelete,
            ["api", "file", _] if method == Method::POST || method == Method::PUT => {
                Route::FileOverwrite
            }
            ["api", "file", ..] => Route::FileGet,
            _ => Route::Cdn,
        }
    }
}

/// One `POST /_emulator/faults` body.
#[derive(Debug, Clone, Deserialize)]
pub struct FaultSpec {
    pub route: String,
    pub status: Option<u16>,
    pub count: Option<u32>,
    pub latency_ms: Option<u64>,
    pub accepted: Option<u32>,
    pub cut_after_bytes: Option<u64>,
    pub cut_response_after_bytes: Option<u64>,
    pub corrupt_byte_at: Option<u64>,
}

/// What to do to one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Action {
    pub status: Option<StatusCode>,
    pub latency: Option<Duration>,
    pub cut_after_bytes: Option<u64>,
    /// Let the request run to the end, then cut the connection after this
    /// many bytes of the answer's body (0: before the status line).
    pub cut_response_after_bytes: Option<u64>,
    /// Let the request run, then flip every bit of the answer body's byte
    /// at this offset (no change when the body is shorter).
    pub corrupt_byte_at: Option<u64>,
    /// Answer 202 with an empty body.
    pub accepted: bool,
}

#[derive(Debug)]
struct Rule {
    action: Action,
    remaining: u32,
}

/// Armed faults, per-route request counts, and the `traceparent`s the last
/// requests carried.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<HashMap<Route, VecDeque<Rule>>>,
    counts: Mutex<BTreeMap<&'static str, u64>>,
    traceparents: Mutex<VecDeque<(&'static str, String)>>,
}

/// How many `traceparent`s are kept (the oldest go first).
const MAX_TRACEPARENTS: usize = 1024;

/// Longest latency a fault may add.
const MAX_LATENCY_MS: u64 = 60_000;
/// Most rules armed on one route.
const MAX_RULES: usize = 64;

impl Faults {
    /// Arms a fault.
    pub fn arm(&self, spec: FaultSpec) -> Result<(), ApiError> {
        let route = Route::parse(&spec.route)
            .ok_or_else(|| ApiError::bad_request(format!("unknown route {}", spec.route)))?;
        let status = spec
            .status
            .map(StatusCode::from_u16)
            .transpose()
            .map_err(|_| ApiError::bad_request("invalid status"))?;
        let latency = spec.latency_ms.map(|ms| ms.min(MAX_LATENCY_MS));
        let action = Action {
            status,
            latency: latency.map(Duration::from_millis),
            cut_after_bytes: spec.cut_after_bytes,
            cut_response_after_bytes: spec.cut_response_after_bytes,
            corrupt_byte_at: spec.corrupt_byte_at,
            accepted: spec.accepted.is_some(),
        };
        if action == Action::default() {
            return Err(ApiError::bad_request(
                "a fault needs status, latency_ms, accepted, cut_after_bytes, cut_response_after_bytes or corrupt_byte_at",
            ));
        }
        let remaining = spec.accepted.or(spec.count).unwrap_or(1);
        let mut rules = self.rules.lock().map_err(ApiError::internal_lock)?;
        let queue = rules.entry(route).or_default();
        if queue.len() >= MAX_RULES {
            return Err(ApiError::bad_request("too many faults armed on this route"));
        }
        queue.push_back(Rule { action, remaining });
        Ok(())
    }

    /// Disarms every fault.
    pub fn clear(&self) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.clear();
        }
    }

    /// Counts a request to `route` and takes the fault armed for it, if any.
    pub fn take(&self, route: Route) -> Option<Action> {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(route.as_str()).or_default() += 1;
        }
        let mut rules = self.rules.lock().ok()?;
        let queue = rules.get_mut(&route)?;
        let rule = queue.front_mut()?;
        let action = rule.action.clone();
        rule.remaining = rule.remaining.saturating_sub(1);
        if rule.remaining == 0 {
            queue.pop_front();
        }
        Some(action)
    }

    /// Requests seen per route.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Keeps the W3C `traceparent` a request to `route` carried, so that a
    /// test can tell which of its calls' spans reached Filestack.
    pub fn traced(&self, route: Route, traceparent: &str) {
        if let Ok(mut seen) = self.traceparents.lock() {
            if seen.len() == MAX_TRACEPARENTS {
                seen.pop_front();
            }
            seen.push_back((route.as_str(), traceparent.chars().take(128).collect()));
        }
    }

    /// The last `traceparent`s, oldest first, with their routes.
    pub fn traceparents(&self) -> Vec<(&'static str, String)> {
        self.traceparents
            .lock()
            .map(|seen| seen.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl ApiError {
    fn internal_lock<T>(_: std::sync::PoisonError<T>) -> ApiError {
        ApiError::internal("fault registry lock poisoned")
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::Route;

    #[test]
    fn requests_are_classified_by_route() {
        let cases = [
            (Method::POST, "/multipart/start", Route::MultipartStart),
            (Method::PUT, "/s3/abc", Route::PartPut),
            (Method::GET, "/api/file/H/metadata", Route::Metadata),
            (Method::GET, "/H/metadata", Route::Metadata),
            (Method::DELETE, "/api/file/H", Route::FileDelete),
            (Method::POST, "/api/file/H/remove", Route::FileDelete),
            (Method::POST, "/api/file/H", Route::FileOverwrite),
            (Method::HEAD, "/api/file/H", Route::FileGet),
            (Method::GET, "/resize=width:2/H", Route::Cdn),
            (Method::GET, "/H", Route::Cdn),
        ];
        for (method, path, route) in cases {
            assert_eq!(Route::classify(&method, path), route, "{path}");
        }
    }
}
