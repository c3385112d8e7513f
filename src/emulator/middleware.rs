//! The middleware in front of every route: counts requests per route, keeps
//! the `traceparent`s they carry, and applies armed faults (status, latency, 202, cut connection, lost answer,
//! a corrupted byte).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures_util::{Stream, StreamExt};
use tracing::Instrument;

use crate::emulator::conn::Conn;
use crate::emulator::error::ApiError;
use crate::emulator::faults::{Action, Route};
use crate::emulator::state::Shared;

/// Counts the request, applies faults armed for its route, and runs it in a
/// span naming the route.
pub async fn faults(
    State(state): State<Shared>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    req: Request,
    next: Next,
) -> Response {
    let route = Route::classify(req.method(), req.uri().path());
    if let Some(traceparent) = req.headers().get("traceparent") {
        state
            .faults
            .traced(route, &String::from_utf8_lossy(traceparent.as_bytes()));
    }
    let span = tracing::info_span!(
        "emulator",
        route = route.as_str(),
        method = %req.method(),
        peer = %conn.peer
    );
    let response = apply(state, conn, route, req, next).instrument(span).await;
    tracing::debug!(route = route.as_str(), status = %response.status(), "emulator answered");
    response
}

async fn apply(state: Shared, conn: Conn, route: Route, req: Request, next: Next) -> Response {
    let Some(action) = state.faults.take(route) else {
        return next.run(req).await;
    };
    let corrupt_at = action.corrupt_byte_at;
    let response = answer(action, conn, req, next).await;
    match corrupt_at {
        Some(offset) => corrupt(response, offset),
        None => response,
    }
}

/// The answer to a request with a fault armed: the fault's own, or the
/// route's, delayed or cut as the fault says.
async fn answer(action: Action, conn: Conn, req: Request, next: Next) -> Response {
    if let Some(budget) = action.cut_response_after_bytes {
        return lose_answer(req, next, conn, action.latency, budget).await;
    }
    if let Some(latency) = action.latency {
        tokio::time::sleep(latency).await;
    }
    if action.accepted {
        drain(req).await;
        return StatusCode::ACCEPTED.into_response();
    }
    if let Some(status) = action.status {
        drain(req).await;
        return ApiError::new(status, "injected fault").into_response();
    }
    let Some(budget) = action.cut_after_bytes else {
        return next.run(req).await;
    };
    let budget = Arc::new(AtomicU64::new(budget));
    let (parts, body) = req.into_parts();
    let body = Body::from_stream(Cut::new(
        body.into_data_stream(),
        budget.clone(),
        conn.clone(),
    ));
    let response = next.run(Request::from_parts(parts, body)).await;
    if budget.load(Ordering::SeqCst) == 0 {
        conn.kill();
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = Body::from_stream(Cut::new(body.into_data_stream(), budget, conn));
    Response::from_parts(parts, body)
}

/// Runs the request (it takes effect), waits `latency`, then answers with
/// at most `budget` bytes of the body before cutting the connection (0:
/// before the status line). A budget past the body's end delays the answer
/// without cutting it.
async fn lose_answer(
    req: Request,
    next: Next,
    conn: Conn,
    latency: Option<std::time::Duration>,
    budget: u64,
) -> Response {
    let response = next.run(req).await;
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }
    if budget == 0 {
        conn.kill();
        return response;
    }
    let (parts, body) = response.into_parts();
    let budget = Arc::new(AtomicU64::new(budget));
    let body = Body::from_stream(Cut::new(body.into_data_stream(), budget, conn));
    Response::from_parts(parts, body)
}

/// `response` with every bit of its body's byte at `offset` flipped.
fn corrupt(response: Response, offset: u64) -> Response {
    let (parts, body) = response.into_parts();
    let mut passed = 0u64;
    let body = body.into_data_stream().map(move |chunk| {
        let chunk = chunk?;
        let start = passed;
        passed += chunk.len() as u64;
        if !(start..passed).contains(&offset) {
            return Ok(chunk);
        }
        let mut changed = BytesMut::from(&chunk[..]);
        changed[(offset - start) as usize] ^= 0xFF;
        Ok::<_, axum::Error>(changed.freeze())
    });
    Response::from_parts(parts, Body::from_stream(body))
}

/// Reads and discards a request body, so an injected answer comes after the
/// whole request, as a real handler's would: answering first and closing the
/// connection under a client still sending is what `cut_after_bytes` is for.
async fn drain(req: Request) {
    let mut body = req.into_body().into_data_stream();
    while let Some(Ok(_)) = body.next().await {}
}

/// A body stream that lets `budget` bytes through, then kills the
/// connection and fails. Before the kill it yields once, so that the server
/// flushes what it has buffered (the status line and the bytes let
/// through) rather than losing it with the connection.
struct Cut<S> {
    inner: S,
    budget: Arc<AtomicU64>,
    conn: Conn,
    yielded: bool,
}

impl<S> Cut<S> {
    fn new(inner: S, budget: Arc<AtomicU64>, conn: Conn) -> Self {
        Self {
            inner,
            budget,
            conn,
            yielded: false,
        }
    }

    fn cut(&self) -> Poll<Option<Result<Bytes, std::io::Error>>> {
        self.conn.kill();
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "connection cut by fault injection",
        ))))
    }
}

impl<S, E> Stream for Cut<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let left = self.budget.load(Ordering::SeqCst);
        if left == 0 && !self.yielded {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if left == 0 {
            return self.cut();
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(mut bytes))) => {
                if bytes.len() as u64 > left {
                    bytes.truncate(left as usize);
                }
                self.budget.fetch_sub(bytes.len() as u64, Ordering::SeqCst);
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) => {
                Poll::Ready(Some(Err(std::io::Error::other(e.to_string()))))
            }
            other => other.map(|_| None),
        }
    }
}
