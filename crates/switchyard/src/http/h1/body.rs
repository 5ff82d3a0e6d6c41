//! The client's request body. On the fast path the connection owns the
//! socket and feeds the body: the body says it wants bytes, the connection
//! reads them (from what it already has, or from the socket) and hands
//! them over (a chunked body decoded first). Nothing is read before the
//! handler asks.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::http::body::BoxError;

/// A request's body.
pub enum RequestBody {
    /// No body.
    Empty,
    /// The body, fed by its connection.
    Fed(FedBody),
    /// The body of an HTTP/2 stream (http/h2/body.rs).
    H2(crate::http::h2::H2Body),
}

impl RequestBody {
    /// The count of the body's bytes read for the handler, for
    /// `$request_length`; `None` for a body the connection does not feed.
    pub fn read_count(&self) -> Option<BodyRead> {
        match self {
            RequestBody::Fed(fed) => Some(BodyRead(fed.feed.clone())),
            RequestBody::Empty | RequestBody::H2(_) => None,
        }
    }

    /// Whether the body's length is known only at its end (a chunked
    /// HTTP/1.1 body says so in its head; an HTTP/2 body without
    /// Content-Length does not).
    pub fn length_unknown(&self) -> bool {
        matches!(self, RequestBody::H2(h2) if h2.length_unknown())
    }
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
            RequestBody::Fed(fed) => fed.poll(cx),
            RequestBody::H2(h2) => h2.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Fed(fed) => fed.feed.lock().is_none_or(|s| s.ended()),
            RequestBody::H2(h2) => h2.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Fed(fed) => fed
                .feed
                .lock()
                .filter(|s| !s.chunked)
                .map(|s| SizeHint::with_exact(s.left()))
                .unwrap_or_default(),
            RequestBody::H2(h2) => h2.size_hint(),
        }
    }
}

/// The client closed its connection before the whole body arrived.
#[derive(Debug, thiserror::Error)]
#[error("client prematurely closed connection")]
pub struct BodyCut;

/// The client's chunked body broke the coding (nginx answers 400).
#[derive(Debug, thiserror::Error)]
#[error("client sent invalid chunked body")]
pub struct InvalidChunkedBody;

/// What the body and its connection share.
#[derive(Debug, Default)]
pub struct FeedState {
    /// Bytes still to come from the connection (a chunked body: `u64::MAX`
    /// until its last chunk).
    remaining: u64,
    /// The body is chunked: its length is not known.
    chunked: bool,
    /// The chunked coding was broken.
    invalid: bool,
    /// Bytes handed over and not yet taken by the body.
    chunk: Option<Bytes>,
    /// The body is waiting for bytes.
    wants: bool,
    waker: Option<Waker>,
    cut: bool,
    /// Bytes read from the connection for the body, chunked framing
    /// included: nginx adds what it reads for a body to
    /// `request_length`, and nothing of a body it discards.
    read: u64,
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

    /// A feed for a chunked body, and the body it feeds.
    pub fn chunked() -> (Feed, FedBody) {
        let shared = Arc::new(Mutex::new(FeedState {
            remaining: u64::MAX,
            chunked: true,
            ..FeedState::default()
        }));
        (Feed(shared.clone()), FedBody { feed: Feed(shared) })
    }

    /// The chunked body has ended: nothing more comes.
    pub fn finish(&self) {
        let Some(mut s) = self.lock() else { return };
        s.remaining = 0;
        if let Some(waker) = s.waker.take() {
            waker.wake();
        }
    }

    /// The chunked body broke its coding.
    pub fn invalid(&self) {
        let Some(mut s) = self.lock() else { return };
        s.invalid = true;
        if let Some(waker) = s.waker.take() {
            waker.wake();
        }
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
        if !s.chunked {
            s.remaining = s.remaining.saturating_sub(data.len() as u64);
        }
        s.read += data.len() as u64;
        s.chunk = Some(data);
        s.wants = false;
        if let Some(waker) = s.waker.take() {
            waker.wake();
        }
    }

    /// `n` bytes of chunked framing (sizes, extensions, line ends, the
    /// last chunk and trailers) were read for the body: they count in
    /// `$request_length` as nginx counts what it read.
    pub fn framing(&self, n: u64) {
        let Some(mut s) = self.lock() else { return };
        s.read += n;
    }

    /// `n` bytes of the body were read and dropped, never handed over.
    pub fn consumed(&self, n: u64) {
        let Some(mut s) = self.lock() else { return };
        if !s.chunked {
            s.remaining = s.remaining.saturating_sub(n);
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

/// A look at how much of a fed body was read (for `$request_length`).
#[derive(Debug, Clone)]
pub struct BodyRead(Feed);

impl BodyRead {
    /// Bytes read for the body so far; what was discarded is not counted.
    pub fn bytes(&self) -> u64 {
        self.0.lock().map_or(0, |s| s.read)
    }
}

/// The body's side.
pub struct FedBody {
    feed: Feed,
}

impl FedBody {
    /// Whether the body is chunked (its length known only at its end).
    pub fn is_chunked(&self) -> bool {
        self.feed.lock().is_some_and(|s| s.chunked)
    }

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
        if s.invalid {
            return Poll::Ready(Some(Err(Box::new(InvalidChunkedBody))));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_was_read_for_the_body_not_what_was_discarded() {
        let (feed, body) = Feed::chunked();
        let count = RequestBody::Fed(body).read_count().expect("fed");
        feed.framing(3); // "5\r\n"
        feed.deliver(Bytes::from_static(b"hello"));
        feed.framing(7); // "\r\n0\r\n\r\n"
        assert_eq!(count.bytes(), 15);
        let (feed, body) = Feed::new(10);
        let count = RequestBody::Fed(body).read_count().expect("fed");
        feed.deliver(Bytes::from_static(b"abcd"));
        feed.consumed(6);
        assert_eq!(count.bytes(), 4, "discarded bytes are not counted");
        assert!(RequestBody::Empty.read_count().is_none());
    }
}
