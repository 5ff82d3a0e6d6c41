//! Bodies on the proxy path: the client's body going up (bounded by
//! `client_max_body_size`), and the upstream's body going down, which
//! holds the peer (for least_conn and max_conns) and returns the
//! connection to the keepalive pool once it is read to the end.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::http::body::BoxError;
use crate::upstream::pool::Connection;
use crate::upstream::{Picked, Upstream};

/// The request body exceeded `client_max_body_size` while streaming.
#[derive(Debug, thiserror::Error)]
#[error("client intended to send too large body")]
pub struct BodyTooLarge;

/// The client's body, failing once it passes `limit` bytes (0: no limit).
pub struct Limited {
    inner: Incoming,
    seen: u64,
    limit: u64,
}

impl Limited {
    /// Wraps `inner`.
    pub fn new(inner: Incoming, limit: u64) -> Limited {
        Limited {
            inner,
            seen: 0,
            limit,
        }
    }
}

impl Body for Limited {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.limit > 0 && this.seen > this.limit {
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A peer in use: reports success or failure to the balancer when the
/// response is over (least_conn and max_conns count it until then).
pub struct PeerGuard {
    /// The group.
    pub upstream: Arc<Upstream>,
    /// The peer.
    pub picked: Picked,
    /// What to report.
    pub success: bool,
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        self.upstream.finish(self.picked.id, self.success);
    }
}

/// The upstream's response body on its way down. When it has been read to
/// the end, the connection goes back to the pool (if the group keeps
/// connections and hyper says the connection can take another request).
pub struct Downstream<B> {
    inner: B,
    guard: Option<PeerGuard>,
    connection: Option<(SocketAddr, Connection)>,
}

impl<B> Downstream<B> {
    /// Wraps `inner`; `connection` is offered to the pool at the end.
    pub fn new(inner: B, guard: PeerGuard, connection: Option<(SocketAddr, Connection)>) -> Self {
        Downstream {
            inner,
            guard: Some(guard),
            connection,
        }
    }

    fn complete(&mut self) {
        if let (Some((addr, connection)), Some(guard)) =
            (self.connection.take(), self.guard.as_ref())
        {
            if let Some(pool) = guard.upstream.pool.as_ref() {
                pool.put(addr, connection);
            }
        }
        self.guard = None;
    }
}

impl<B> Body for Downstream<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.complete(),
            // hyper stops polling once a body with a known length says it
            // has ended, so the end is noticed here too.
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.complete(),
            Poll::Ready(Some(Err(_))) => {
                // A broken body: the connection is not reused, and the
                // peer is reported as it was (the header arrived).
                this.connection = None;
                this.guard = None;
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
