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

use http_body_util::BodyExt;

use crate::http::body::{BoxError, ResponseBody};
use crate::observe::error_log;
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
        let polled = Pin::new(&mut this.inner)
            .poll_frame(cx)
            .map(|frame| frame.map(|f| f.map_err(upstream_body_error)));
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

/// The client stopped sending its body for longer than `client_body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("client timed out (110: Connection timed out) while reading client request body")]
pub struct ClientBodyTimeout;

/// The client's body as it streams up: capped at `limit`, each read within `timeout`.
pub fn client_body(incoming: Incoming, limit: u64, timeout: std::time::Duration) -> ResponseBody {
    crate::http::body::TimedBody::new(Limited::new(incoming, limit), timeout)
        .map_err(|e| -> BoxError {
            if e.is::<crate::http::body::ReadTimeout>() {
                Box::new(ClientBodyTimeout)
            } else {
                e
            }
        })
        .boxed_unsync()
}

/// When sending failed because of the client's body: its status and nginx's
/// words (the peer is not to blame, and nothing is retried).
pub fn client_body_failure(e: &hyper::Error) -> Option<(u16, String)> {
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if err.is::<ClientBodyTimeout>() {
            return Some((408, err.to_string()));
        }
        if err.is::<BodyTooLarge>() {
            return Some((413, err.to_string()));
        }
        if err.is::<hyper::Error>() {
            // hyper's own parse error of the client's chunked body.
            return Some((400, format!("client sent invalid request body ({err})")));
        }
        source = err.source();
    }
    None
}

/// The I/O error under an error, if that is what it was.
pub fn io_source<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut source = e.source();
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = err.source();
    }
    None
}

/// An upstream body that ended badly, in nginx's words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UpstreamBodyError(String);

/// nginx's words for an error while reading the upstream's body.
fn upstream_body_error(e: BoxError) -> BoxError {
    let Some(hyper_error) = e.downcast_ref::<hyper::Error>() else {
        return e;
    };
    let os_error = io_source(hyper_error).filter(|io| io.raw_os_error().is_some());
    let words = if let Some(io) = os_error {
        format!(
            "recv() failed ({}) while reading upstream",
            error_log::os_error(io)
        )
    } else if hyper_error.is_incomplete_message()
        || io_source(hyper_error).is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
    {
        "upstream prematurely closed connection while reading upstream".to_string()
    } else {
        format!("upstream sent invalid body ({hyper_error}) while reading upstream")
    };
    Box::new(UpstreamBodyError(words))
}
