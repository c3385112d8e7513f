//! The guarded TCP listener of the gRPC and HTTP servers.
//!
//! Each listener holds at most `max_connections` connections at once: at the
//! limit it stops accepting until one closes, and clients wait in the
//! kernel's accept queue (Go's `netutil.LimitListener`). A new connection is
//! handed to the server only once its handshake has arrived (gRPC: the
//! 24-byte HTTP/2 client preface; HTTP: the head of its first request);
//! one that has not sent it within the handshake timeout is closed. So a
//! silent socket never reaches the server, and when the server stops
//! accepting, every connection still in its handshake closes with the
//! listener. [`Connections::close_all`] closes the accepted ones too.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

mod descriptors;
mod stream;

pub use descriptors::{fit_to_descriptors, raise_descriptor_limit};
pub use stream::GuardedStream;
use stream::Switch;

/// The HTTP/2 client connection preface (RFC 9113, 3.4).
const HTTP2_PREFACE_BYTES: usize = 24;

/// The most an HTTP handshake reads while looking for the end of the first
/// request head; a longer head is handed to the server as it is.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The header of a TLS record (RFC 8446, 5.1).
const TLS_RECORD_HEADER_BYTES: usize = 5;

/// The longest pause after a failed `accept` (out of descriptors, say).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// The limits of one listener, resolved from the flags.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// Connections open at once (in their handshake or served).
    pub max_connections: usize,
    /// How long a new connection may take to send its handshake.
    pub handshake_timeout: Duration,
}

/// What a new connection must send before it is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// gRPC: the HTTP/2 client preface.
    Http2Preface,
    /// HTTP/1 (or HTTP/2 with prior knowledge): the head of the first
    /// request, through its blank line.
    RequestHead,
    /// TLS: the header of the first record (of the ClientHello); the TLS
    /// handshake itself comes after, under its own timeout.
    TlsRecord,
}

/// The connections of one listener: their slots, how many were closed in
/// their handshake, and the switch that closes them all.
#[derive(Debug, Clone)]
pub struct Connections {
    shared: Arc<Registry>,
}

#[derive(Debug)]
struct Registry {
    limits: ListenerLimits,
    slots: Arc<Semaphore>,
    served: Mutex<HashMap<u64, Arc<Switch>>>,
    next_id: AtomicU64,
    handshake_timeouts: AtomicU64,
}

impl Connections {
    pub fn new(limits: ListenerLimits) -> Self {
        let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            shared: Arc::new(Registry {
                limits: ListenerLimits {
                    max_connections: max,
                    ..limits
                },
                slots: Arc::new(Semaphore::new(max)),
                served: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                handshake_timeouts: AtomicU64::new(0),
            }),
        }
    }

    /// The most connections open at once.
    pub fn max(&self) -> usize {
        self.shared.limits.max_connections
    }

    /// Connections open (in their handshake or served).
    pub fn open(&self) -> usize {
        self.max() - self.shared.slots.available_permits()
    }

    /// Connections closed because their handshake did not arrive in time.
    pub fn handshake_timeouts(&self) -> u64 {
        self.shared.handshake_timeouts.load(Ordering::Relaxed)
    }

    /// Fails every further read and write of every connection served, so
    /// the server drops them.
    pub fn close_all(&self) {
        for switch in self.lock().values() {
            switch.close();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Switch>>> {
        self.shared
            .served
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn register(&self, id: u64) -> Arc<Switch> {
        let switch = Arc::new(Switch::default());
        self.lock().insert(id, switch.clone());
        switch
    }
}

/// What handlers learn about the connection of their call (tonic puts it in
/// every request's extensions).
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// Unique within the listener.
    pub id: u64,
    pub peer: SocketAddr,
    uploads: Arc<AtomicUsize>,
}

impl ConnectionInfo {
    /// One more upload on this connection, unless `max` are running.
    pub fn start_upload(&self, max: usize) -> Option<UploadOnConnection> {
        self.uploads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| UploadOnConnection {
                uploads: self.uploads.clone(),
            })
    }
}

/// An upload counted on its connection until dropped.
#[derive(Debug)]
pub struct UploadOnConnection {
    uploads: Arc<AtomicUsize>,
}

impl Drop for UploadOnConnection {
    fn drop(&mut self) {
        self.uploads.fetch_sub(1, Ordering::SeqCst);
    }
}

type PendingHandshake = Pin<Box<dyn Future<Output = Option<GuardedStream>> + Send>>;

/// A TCP listener that bounds its connections and their handshakes.
pub struct GuardedListener {
    listener: TcpListener,
    handshake: Handshake,
    nodelay: bool,
    connections: Connections,
    pending: FuturesUnordered<PendingHandshake>,
}

impl std::fmt::Debug for GuardedListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedListener")
            .field("listener", &self.listener)
            .field("handshake", &self.handshake)
            .field("limits", &self.connections.shared.limits)
            .field("in_handshake", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl GuardedListener {
    /// Serves `listener`'s connections within the limits of `connections`.
    pub fn new(listener: TcpListener, handshake: Handshake, connections: Connections) -> Self {
        Self {
            listener,
            handshake,
            nodelay: false,
            connections,
            pending: FuturesUnordered::new(),
        }
    }

    /// Sets TCP_NODELAY on every connection.
    pub fn with_nodelay(mut self) -> Self {
        self.nodelay = true;
        self
    }

    /// The next connection whose handshake arrived. Cancel-safe: a
    /// connection accepted but not yet returned stays in its handshake.
    pub async fn next(&mut self) -> GuardedStream {
        let mut backoff = Duration::from_millis(5);
        loop {
            let Self {
                listener,
                handshake,
                nodelay,
                connections,
                pending,
            } = self;
            let shared = &connections.shared;
            tokio::select! {
                Some(done) = pending.next(), if !pending.is_empty() => {
                    if let Some(stream) = done {
                        return stream;
                    }
                }
                accepted = accept(listener, &shared.slots) => match accepted {
                    Ok((stream, peer, slot)) => {
                        backoff = Duration::from_millis(5);
                        if *nodelay && let Err(error) = stream.set_nodelay(true) {
                            tracing::debug!(%error, "cannot set TCP_NODELAY");
                        }
                        let id = shared.next_id.fetch_add(1, Ordering::Relaxed) + 1;
                        let timeout = shared.limits.handshake_timeout;
                        let accepted = Accepted { stream, peer, id, slot };
                        pending.push(Box::pin(accepted.handshake(
                            *handshake,
                            timeout,
                            connections.clone(),
                        )));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                    }
                },
            }
        }
    }

    /// The connections handed out so far, until dropped.
    pub fn into_incoming(
        self,
    ) -> impl futures_util::Stream<Item = Result<GuardedStream, io::Error>> + Send + 'static {
        futures_util::stream::unfold(self, |mut listener| async move {
            let stream = listener.next().await;
            Some((Ok(stream), listener))
        })
    }
}

/// A slot, then a connection (cancel-safe: the slot goes back on cancel).
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> io::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| io::Error::other("the connection slots are closed"))?;
    let (stream, peer) = listener.accept().await?;
    Ok((stream, peer, slot))
}

/// A connection accepted, its handshake not yet read.
struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    slot: OwnedSemaphorePermit,
}

impl Accepted {
    /// Reads the handshake within `timeout`; `None` when it does not come.
    async fn handshake(
        mut self,
        handshake: Handshake,
        timeout: Duration,
        connections: Connections,
    ) -> Option<GuardedStream> {
        let read = tokio::time::timeout(timeout, read_handshake(&mut self.stream, handshake));
        let replay = match read.await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(error)) => {
                tracing::debug!(peer = %self.peer, %error, "connection closed in its handshake");
                return None;
            }
            Err(_) => {
                connections
                    .shared
                    .handshake_timeouts
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    peer = %self.peer,
                    timeout_secs = timeout.as_secs_f64(),
                    "closed a connection that sent no handshake in time"
                );
                return None;
            }
        };
        let switch = connections.register(self.id);
        Some(GuardedStream {
            inner: self.stream,
            replay,
            replayed: 0,
            switch,
            info: ConnectionInfo {
                id: self.id,
                peer: self.peer,
                uploads: Arc::new(AtomicUsize::new(0)),
            },
            connections,
            _slot: self.slot,
        })
    }
}

/// Reads until the handshake is complete; the bytes read.
async fn read_handshake(stream: &mut TcpStream, handshake: Handshake) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(match handshake {
        Handshake::Http2Preface => HTTP2_PREFACE_BYTES,
        Handshake::RequestHead => 1024,
        Handshake::TlsRecord => TLS_RECORD_HEADER_BYTES,
    });
    loop {
        let want = match handshake {
            Handshake::Http2Preface => HTTP2_PREFACE_BYTES - bytes.len(),
            Handshake::RequestHead => (MAX_HEAD_BYTES - bytes.len()).min(8 * 1024),
            Handshake::TlsRecord => TLS_RECORD_HEADER_BYTES - bytes.len(),
        };
        let searched = bytes.len().saturating_sub(3);
        let read = (&mut *stream)
            .take(want as u64)
            .read_buf(&mut bytes)
            .await?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before the handshake",
            ));
        }
        let complete = match handshake {
            Handshake::Http2Preface => bytes.len() == HTTP2_PREFACE_BYTES,
            Handshake::TlsRecord => bytes.len() == TLS_RECORD_HEADER_BYTES,
            Handshake::RequestHead => {
                bytes.len() >= MAX_HEAD_BYTES || ends_a_head(&bytes[searched..])
            }
        };
        if complete {
            return Ok(bytes);
        }
    }
}

/// Whether `bytes` hold the blank line that ends a request head (CRLF, or
/// the bare LF that HTTP/1 servers also accept).
fn ends_a_head(bytes: &[u8]) -> bool {
    bytes.windows(4).any(|w| w == b"\r\n\r\n") || bytes.windows(2).any(|w| w == b"\n\n")
}

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (GuardedStream, SocketAddr) {
        let stream = self.next().await;
        let peer = stream.info.peer;
        (stream, peer)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::ends_a_head;

    #[test]
    fn a_head_ends_at_its_blank_line() {
        assert!(ends_a_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(ends_a_head(b"GET / HTTP/1.1\n\n"));
        assert!(ends_a_head(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
        assert!(!ends_a_head(b"GET / HTTP/1.1\r\nHost: x\r\n"));
    }
}
