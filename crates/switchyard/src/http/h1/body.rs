//! The client's request body. On the fast path the connection owns the
//! socket and feeds the body: the body says it wants bytes, the connection
//! reads them (from what it already has, or from the socket) and hands
//! them over. Nothing is read before the handler asks, as with hyper.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::http::body::BoxError;

/// A request's body, from either connection path.
pub enum RequestBody {
    /// No body.
    Empty,
    /// hyper's body (the connection is served by hyper).
    Hyper(Incoming),
    /// The fast path's body, fed by its connection.
    Fed(FedBody),
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Hyper(incoming) => Pin::new(incoming)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(Into::into))),
            RequestBody::Fed(fed) => fed.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Hyper(incoming) => incoming.is_end_stream(),
            RequestBody::Fed(fed) => fed.feed.lock().is_none_or(|s| s.ended()),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Hyper(incoming) => incoming.size_hint(),
            RequestBody::Fed(fed) => fed
                .feed
                .lock()
                .map(|s| SizeHint::with_exact(s.left()))
                .unwrap_or_default(),
        }
    }
}

/// The client closed its connection before the whole body arrived.
#[derive(Debug, thiserror::Error)]
#[error("client prematurely closed connection")]
pub struct BodyCut;

/// What the body and its connection share.
#[derive(Debug, Default)]
pub struct FeedState {
    /// Bytes still to come from the connection.
    remaining: u64,
    /// Bytes handed over and not yet taken by the body.
    chunk: Option<Bytes>,
    /// The body is waiting for bytes.
    wants: bool,
    waker: Option<Waker>,
    cut: bool,
}

impl FeedState {
    fn ended(&self) -> bool {
        self.remaining == 0 && self.chunk.is_none()
    }

    fn left(&self) -> u64 {
        self.remaining + self.chunk.as_ref().map_or(0, |c| c.len() as u64)
    }
}

/// The connection's side of a fed body.
#[derive(Debug, Clone)]
pub struct Feed(Arc<Mutex<FeedState>>);

impl Feed {
    /// A feed for a body of `length` bytes, and the body it feeds.
    pub fn new(length: u64) -> (Feed, FedBody) {
        let shared = Arc::new(Mutex::new(FeedState {
            remaining: length,
            ..FeedState::default()
        }));
        (Feed(shared.clone()), FedBody { feed: Feed(shared) })
    }

    fn lock(&self) -> Option<std::sync::MutexGuard<'_, FeedState>> {
        self.0.lock().ok()
    }

    /// How many bytes the body is waiting for now (0: none wanted now).
    pub fn wanted(&self) -> u64 {
        self.lock()
            .filter(|s| s.wants && s.chunk.is_none())
            .map_or(0, |s| s.remaining)
    }

    /// Bytes the body has not received yet (read or not).
    pub fn remaining(&self) -> u64 {
        self.lock().map_or(0, |s| s.remaining)
    }

    /// Hands `data` (at most what is wanted) to the body.
    pub fn deliver(&self, data: Bytes) {
        let Some(mut s) = self.lock() else { return };
        s.remaining = s.remaining.saturating_sub(data.len() as u64);
        s.chunk = Some(data);
        s.wants = false;
        if let Some(waker) = s.waker.take() {
            waker.wake();
        }
    }

    /// The connection closed before the body was complete.
    pub fn cut(&self) {
        let Some(mut s) = self.lock() else { return };
        s.cut = true;
        if let Some(waker) = s.waker.take() {
            waker.wake();
        }
    }
}

/// The body's side.
pub struct FedBody {
    feed: Feed,
}

impl FedBody {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(mut s) = self.feed.lock() else {
            return Poll::Ready(Some(Err(Box::new(BodyCut))));
        };
        if let Some(chunk) = s.chunk.take() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if s.remaining == 0 {
            return Poll::Ready(None);
        }
        if s.cut {
            return Poll::Ready(Some(Err(Box::new(BodyCut))));
        }
        s.wants = true;
        if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}
