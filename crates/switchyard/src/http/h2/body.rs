//! A request body read from an HTTP/2 stream. Flow-control capacity is
//! given back once the handler has taken a whole window's bytes, so a
//! client is only ever ahead of the handler by its window
//! (`http2_body_preread_size` for a stream), as nginx's preread buffer
//! bounds it, and the window opens again by at least that much at once, as
//! nginx opens it when it has taken the preread buffer.

use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::http::body::BoxError;

/// HTTP/2's initial stream window, which a client uses until it applies
/// the server's SETTINGS.
const DEFAULT_WINDOW: usize = 65_535;

/// The stream was reset or the connection failed before the body ended.
#[derive(Debug, thiserror::Error)]
#[error("client prematurely closed stream")]
pub struct StreamCut;

/// The body of one HTTP/2 request.
pub struct H2Body {
    recv: h2::RecvStream,
    /// `Content-Length` as the client declared it (h2 checks the DATA
    /// frames against it).
    declared: Option<u64>,
    /// Bytes handed over so far.
    received: u64,
    /// Bytes handed over whose capacity is not given back yet.
    unreleased: usize,
    /// Given back when this many are: a client that waits for its window
    /// has sent at least this much (its window, or HTTP/2's initial one
    /// before it applied ours).
    release_at: usize,
    /// The DATA frames have ended: trailers (if any) come next.
    data_done: bool,
    done: bool,
}

impl H2Body {
    /// The body `recv` carries, of `declared` bytes if the client said,
    /// on a stream whose window is `window`.
    pub fn new(recv: h2::RecvStream, declared: Option<u64>, window: u32) -> H2Body {
        let done = recv.is_end_stream();
        H2Body {
            recv,
            declared,
            received: 0,
            unreleased: 0,
            release_at: (window as usize).clamp(1, DEFAULT_WINDOW),
            data_done: done,
            done,
        }
    }

    /// Whether the body's length is unknown until it ends: nginx then
    /// takes the request as chunked (buffered whole before it goes to an
    /// HTTP/1.0 upstream, which needs a Content-Length).
    pub fn length_unknown(&self) -> bool {
        self.declared.is_none() && !self.done
    }

    /// The next frame of the body.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if !self.data_done {
            match self.recv.poll_data(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(data))) => {
                    // The bytes are the handler's now: once a window's worth
                    // is, the client may send as much again.
                    self.unreleased += data.len();
                    if self.unreleased >= self.release_at {
                        let _ = self
                            .recv
                            .flow_control()
                            .release_capacity(std::mem::take(&mut self.unreleased));
                    }
                    self.received += data.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(_))) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(Box::new(StreamCut))));
                }
                Poll::Ready(None) => self.data_done = true,
            }
        }
        match self.recv.poll_trailers(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(trailers)) => {
                self.done = true;
                Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))))
            }
            Poll::Ready(Err(_)) => {
                self.done = true;
                Poll::Ready(Some(Err(Box::new(StreamCut))))
            }
        }
    }

    /// Whether nothing more comes.
    pub fn is_end_stream(&self) -> bool {
        self.done
    }

    /// The declared length still to come, when there is one.
    pub fn size_hint(&self) -> SizeHint {
        if self.done {
            return SizeHint::with_exact(0);
        }
        match self.declared {
            Some(n) => SizeHint::with_exact(n.saturating_sub(self.received)),
            None => SizeHint::default(),
        }
    }
}

impl std::fmt::Debug for H2Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Body")
            .field("declared", &self.declared)
            .field("received", &self.received)
            .finish()
    }
}
