//! gRPC-Web beside gRPC on the gRPC listener, for browsers: tonic-web
//! translates the requests (HTTP/1.1 included: a browser speaks HTTP/2 only
//! over TLS), and CORS lets the pages of the configured origins call.
//!
//! Browsers can make unary and server-streaming calls (WatchEvents, Read);
//! a client-streaming Upload cannot be sent over gRPC-Web, which is why a
//! browser uploads straight to Filestack under an UploadPolicy and then
//! calls RegisterHandle.
//!
//! CORS: no origin is allowed unless configured (`--grpc-web-origins`);
//! local mode adds the origin of its own HTTP listener. Same-origin pages
//! (filegate behind a proxy that serves the page too) need no CORS.

use std::time::Duration;

use anyhow::Context;
use tonic::codegen::http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(2 * 60 * 60);

/// Request headers a gRPC-Web client sends besides the CORS-safe ones,
/// W3C trace context included (OpenTelemetry's browser instrumentation
/// adds it to calls to allowed origins).
const REQUEST_HEADERS: [&str; 8] = [
    "authorization",
    "content-type",
    "grpc-timeout",
    "x-grpc-web",
    "x-user-agent",
    "connect-protocol-version",
    "traceparent",
    "tracestate",
];

/// Response headers a gRPC-Web client reads (a call refused before any
/// message answers with its status in the headers).
const RESPONSE_HEADERS: [&str; 4] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "grpc-encoding",
];

/// The CORS layer for `origins`: exact origins such as
/// `https://console.example.com`, or `*` for any.
pub fn cors(origins: &[String]) -> anyhow::Result<CorsLayer> {
    let allow = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        let parsed = origins
            .iter()
            .map(|origin| parse_origin(origin))
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(parsed)
    };
    Ok(CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::POST])
        .allow_headers(REQUEST_HEADERS.map(HeaderName::from_static))
        .expose_headers(RESPONSE_HEADERS.map(HeaderName::from_static))
        .max_age(PREFLIGHT_MAX_AGE))
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing after.
fn parse_origin(origin: &str) -> anyhow::Result<HeaderValue> {
    let (scheme, rest) = origin
        .split_once("://")
        .with_context(|| format!("gRPC-Web origin {origin:?} has no scheme (https://host)"))?;
    anyhow::ensure!(
        matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains(['/', '?', '#']),
        "gRPC-Web origin {origin:?} is not scheme://host[:port]"
    );
    HeaderValue::from_str(origin).with_context(|| format!("gRPC-Web origin {origin:?}"))
}

#[cfg(test)]
mod tests {
    use super::parse_origin;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for good in [
            "https://console.example.com",
            "http://127.0.0.1:8080",
            "http://localhost:3000",
        ] {
            assert!(parse_origin(good).is_ok(), "{good}");
        }
        for bad in [
            "console.example.com",
            "https://",
            "https://example.com/",
            "https://example.com/app",
            "ftp://example.com",
            "https://exa mple.com\n",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad:?}");
        }
    }
}
