//! The caller's deadline (`grpc-timeout`), answered with `DEADLINE_EXCEEDED`.
//!
//! tonic's server already stops a call when its `grpc-timeout` passes, but
//! answers `CANCELLED` "Timeout expired", which clients that see the server's
//! status before their own timer fires (grpc-go does) report as a
//! cancellation, not a deadline. This layer, inside tonic's, applies the
//! same deadline a millisecond earlier and answers `DEADLINE_EXCEEDED`
//! `DEADLINE_EXCEEDED`. Either way the call's future is dropped, so the
//! operation stops on the server too, as a call cancelled by its client does
//! (an Upload leaves no document and no file).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};

use crate::gateway::error::GatewayError;

/// How much earlier than tonic's own timer this layer's fires.
const AHEAD: Duration = Duration::from_millis(1);

/// Applies each call's `grpc-timeout`; see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeadlineLayer;

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline { inner }
    }
}

/// The service of [`DeadlineLayer`].
#[derive(Clone, Debug)]
pub struct Deadline<S> {
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for Deadline<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<http::Response<Body>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let timeout = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_grpc_timeout);
        let call = self.inner.call(request);
        Box::pin(async move {
            let Some(timeout) = timeout else {
                return call.await;
            };
            match tokio::time::timeout(timeout.saturating_sub(AHEAD), call).await {
                Ok(response) => response,
                Err(_) => {
                    tracing::info!(?timeout, "rpc failed: the caller's deadline passed");
                    Ok(tonic::Status::from(GatewayError::DeadlineExceeded(timeout)).into_http())
                }
            }
        })
    }
}

/// The duration of a `grpc-timeout` value: at most 8 digits and a unit
/// (`H`, `M`, `S`, `m`, `u`, `n`), as the gRPC HTTP/2 protocol defines it.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let split = value.len().checked_sub(1)?;
    let (amount, unit) = value.split_at_checked(split)?;
    if amount.is_empty() || amount.len() > 8 || !amount.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = amount.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_values_parse_as_the_protocol_defines_them() {
        let cases = [
            ("2S", Some(Duration::from_secs(2))),
            ("1999m", Some(Duration::from_millis(1999))),
            ("99999999u", Some(Duration::from_micros(99_999_999))),
            ("5n", Some(Duration::from_nanos(5))),
            ("3M", Some(Duration::from_secs(180))),
            ("1H", Some(Duration::from_secs(3600))),
            ("123456789m", None), // more than 8 digits
            ("S", None),
            ("", None),
            ("10", None),
            ("10s", None),
            ("-1S", None),
            ("+1S", None),
            ("1éS", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_grpc_timeout(value), expected, "{value:?}");
        }
    }
}
