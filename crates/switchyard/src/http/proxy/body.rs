//! The client's body on its way up, bounded by `client_max_body_size` and
//! `client_body_timeout`; and the guard that holds a peer while it serves.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::http::h1::body::RequestBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use http_body_util::BodyExt;

use crate::http::body::{BoxError, ResponseBody};
use crate::upstream::{Picked, Upstream};

/// The request body exceeded `client_max_body_size` while streaming.
#[derive(Debug, thiserror::Error)]
#[error("client intended to send too large body")]
pub struct BodyTooLarge;

/// The client's body, failing once it passes `limit` bytes (0: no limit).
pub struct Limited {
    inner: RequestBody,
    seen: u64,
    limit: u64,
}

impl Limited {
    /// Wraps `inner`.
    pub fn new(inner: RequestBody, limit: u64) -> Limited {
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
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
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

/// The client stopped sending its body for longer than `client_body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("client timed out (110: Connection timed out) while reading client request body")]
pub struct ClientBodyTimeout;

/// The client's body as it streams up after its first `seen` bytes:
/// capped at `limit` in all, each read within `timeout`.
pub fn client_body(
    incoming: RequestBody,
    limit: u64,
    timeout: std::time::Duration,
    seen: u64,
) -> ResponseBody {
    let mut limited = Limited::new(incoming, limit);
    limited.seen = seen;
    crate::http::body::TimedBody::new(limited, timeout)
        .map_err(|e| -> BoxError {
            if e.is::<crate::http::body::ReadTimeout>() {
                Box::new(ClientBodyTimeout)
            } else {
                e
            }
        })
        .boxed_unsync()
}
