//! `send_timeout`: a client that stops reading for longer than this between
//! two successive writes is cut off, as nginx does ("client timed out ...
//! while sending response to client"). hyper has no such timer, so it sits
//! under hyper, around the client's socket.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::observe::error_log;

/// nginx's error-log words when `send_timeout` runs out.
pub const TIMED_OUT: &str =
    "client timed out (110: Connection timed out) while sending response to client";

/// A client stream whose writes must make progress within `timeout`.
pub struct SendTimeout<S> {
    inner: S,
    timeout: Duration,
    /// Kept across writes and reset when a stall starts (see
    /// `body::poll_wait`).
    sleep: Option<Pin<Box<Sleep>>>,
    /// Whether `sleep` times the current stall.
    armed: bool,
    connection: u64,
}

impl<S> SendTimeout<S> {
    /// Wraps `inner` (connection number `connection`, for the error log).
    /// A zero timeout disables the timer.
    pub fn new(inner: S, timeout: Duration, connection: u64) -> Self {
        SendTimeout {
            inner,
            timeout,
            sleep: None,
            armed: false,
            connection,
        }
    }

    /// Called when a write is pending: Err once the client stalled too long.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.timeout.is_zero() {
            return Poll::Pending;
        }
        let this = &mut *self;
        match super::body::poll_wait(&mut this.sleep, &mut this.armed, this.timeout, cx) {
            Poll::Ready(()) => {
                error_log::log(
                    crate::observe::ErrorLevel::Info,
                    Some(self.connection),
                    TIMED_OUT,
                );
                Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "send_timeout"))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.stalled(cx).map(Err),
            ready => {
                self.armed = false;
                ready
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.stalled(cx).map(Err),
            ready => {
                self.armed = false;
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.stalled(cx).map(Err),
            ready => {
                self.armed = false;
                ready
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
