//! A served connection: the bytes its handshake left unread, its slot, and
//! the switch that closes it from outside its task.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use super::{ConnectionInfo, Connections};

/// Closes one connection from outside its task.
#[derive(Debug, Default)]
pub(super) struct Switch {
    closed: AtomicBool,
    waker: AtomicWaker,
}

impl Switch {
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    /// Registers the connection's task, then tells whether it is closed.
    fn poll_closed(&self, cx: &Context<'_>) -> io::Result<()> {
        self.waker.register(cx.waker());
        if self.closed.load(Ordering::SeqCst) {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection closed by the gateway",
            ))
        } else {
            Ok(())
        }
    }
}

/// A served connection: its handshake bytes are read again first, it
/// holds its listener slot until dropped, and it can be closed from outside.
#[derive(Debug)]
pub struct GuardedStream {
    pub(super) inner: TcpStream,
    pub(super) replay: Vec<u8>,
    pub(super) replayed: usize,
    pub(super) switch: Arc<Switch>,
    pub(super) info: ConnectionInfo,
    pub(super) connections: Connections,
    pub(super) _slot: OwnedSemaphorePermit,
}

impl GuardedStream {
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }
}

impl Drop for GuardedStream {
    fn drop(&mut self) {
        self.connections.lock().remove(&self.info.id);
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.switch.poll_closed(cx)?;
        if self.replayed < self.replay.len() {
            let this = &mut *self;
            let rest = &this.replay[this.replayed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.replayed += n;
            if this.replayed == this.replay.len() {
                this.replay = Vec::new();
                this.replayed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.switch.poll_closed(cx)?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.switch.poll_closed(cx)?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.switch.poll_closed(cx)?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for GuardedStream {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        self.info.clone()
    }
}
