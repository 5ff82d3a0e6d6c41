//! The request body on its way in: the connection reads it only when the
//! handler asks (as nginx reads a body only when a module wants it),
//! decodes chunked coding, answers `Expect: 100-continue` at that moment,
//! and after the response reads and drops whatever the handler left, so
//! that the connection can carry the next request.

use std::pin::Pin;
use std::task::{Context, Poll};

use ::h1::chunked::{ChunkedDecoder, Step};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::poll_read_buf;

use super::body::Feed;
use crate::config::model::Lingering;
use crate::http::linger;

/// The read size for a request body.
pub const BODY_READ_SIZE: usize = 16 * 1024;

/// What nginx sends before reading a body the client holds back.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A request body being read from its connection.
pub struct Intake {
    feed: Feed,
    /// The decoder of a chunked body.
    chunked: Option<ChunkedDecoder>,
    /// `100 Continue` is due (`Some(0)`) or being written (bytes sent).
    continue_sent: Option<usize>,
}

impl Intake {
    /// The intake of a body of `length` bytes.
    pub fn length(feed: Feed, expect_continue: bool) -> Intake {
        Intake {
            feed,
            chunked: None,
            continue_sent: expect_continue.then_some(0),
        }
    }

    /// The intake of a chunked body.
    pub fn chunked(feed: Feed, expect_continue: bool) -> Intake {
        Intake {
            feed,
            chunked: Some(ChunkedDecoder::default()),
            continue_sent: expect_continue.then_some(0),
        }
    }

    /// Takes what is left to write of a `100 Continue` that is due and was
    /// not (fully) sent because the body was never read: the caller writes
    /// it, the intake will not.
    pub fn take_continue(&mut self) -> &'static [u8] {
        self.continue_sent
            .take()
            .map_or(&[], |sent| &CONTINUE[sent..])
    }

    /// Whether the whole body has been handed over or dropped.
    pub fn is_done(&self) -> bool {
        match &self.chunked {
            Some(decoder) => decoder.is_done(),
            None => self.feed.remaining() == 0,
        }
    }

    /// Gives the body what it waits for: bytes already read, or a read
    /// from the socket. Whether anything was handed over (or the body
    /// ended), so that the handler is worth polling again.
    pub fn step<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        buffer: &mut BytesMut,
        c: &mut Context<'_>,
    ) -> bool {
        let wanted = self.feed.wanted();
        if wanted == 0 || self.is_done() {
            return false;
        }
        loop {
            if buffer.is_empty() {
                // The client holds the body back until it is told to go on.
                if let Some(sent) = self.continue_sent {
                    match write_continue(stream, sent, c) {
                        Poll::Ready(Some(n)) if n == CONTINUE.len() => self.continue_sent = None,
                        Poll::Ready(Some(n)) => {
                            self.continue_sent = Some(n);
                            return false;
                        }
                        Poll::Ready(None) => {
                            self.feed.cut();
                            return true;
                        }
                        Poll::Pending => return false,
                    }
                }
                if buffer.capacity() < BODY_READ_SIZE {
                    buffer.reserve(BODY_READ_SIZE);
                }
                match poll_read_buf(Pin::new(&mut *stream), c, buffer) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        self.feed.cut();
                        return true;
                    }
                    Poll::Ready(Ok(_)) => {}
                    Poll::Pending => return false,
                }
            }
            // Bytes of the body have come: no `100 Continue` is needed now.
            self.continue_sent = None;
            let Some(decoder) = &mut self.chunked else {
                let take = usize::try_from(wanted)
                    .unwrap_or(usize::MAX)
                    .min(buffer.len());
                self.feed.deliver(buffer.split_to(take).freeze());
                return true;
            };
            match decoder.decode(buffer) {
                Ok(Step::Data(range)) => {
                    self.feed.framing(range.start as u64);
                    buffer.advance(range.start);
                    let data = buffer.split_to(range.end - range.start).freeze();
                    self.feed.deliver(data);
                    return true;
                }
                // All framing, nothing handed over yet: read on.
                Ok(Step::NeedMore) => {
                    self.feed.framing(buffer.len() as u64);
                    buffer.clear();
                }
                Ok(Step::Done(n)) => {
                    self.feed.framing(n as u64);
                    buffer.advance(n);
                    self.feed.finish();
                    return true;
                }
                Err(_) => {
                    self.feed.invalid();
                    return true;
                }
            }
        }
    }

    /// Reads and drops what is left of the body; whether all of it came
    /// within the location's lingering limits, which bound nginx's
    /// discarding of a body once the response is done (the first wait a
    /// whole `lingering_timeout`, each later one cut short by
    /// `lingering_time`).
    pub async fn discard<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        buffer: &mut BytesMut,
        lingering: Lingering,
    ) -> bool {
        let deadline = linger::deadline(lingering);
        let mut wait = lingering.timeout;
        loop {
            if !self.drop_buffered(buffer) {
                return false;
            }
            if self.is_done() {
                return true;
            }
            if buffer.capacity() < BODY_READ_SIZE {
                buffer.reserve(BODY_READ_SIZE);
            }
            let read = std::future::poll_fn(|c| poll_read_buf(Pin::new(&mut *stream), c, buffer));
            match tokio::time::timeout(wait, read).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return false,
            }
            match linger::next_wait(lingering, deadline) {
                Some(next) => wait = next,
                None => return false,
            }
        }
    }

    /// Drops the body's bytes that are in `buffer`; false if the coding
    /// is broken.
    fn drop_buffered(&mut self, buffer: &mut BytesMut) -> bool {
        match &mut self.chunked {
            None => {
                let remaining = self.feed.remaining();
                let take = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(buffer.len());
                buffer.advance(take);
                self.feed.consumed(take as u64);
                true
            }
            Some(decoder) => loop {
                if buffer.is_empty() || decoder.is_done() {
                    return true;
                }
                match decoder.decode(buffer) {
                    Ok(Step::Data(range)) => buffer.advance(range.end),
                    Ok(Step::NeedMore) => buffer.clear(),
                    Ok(Step::Done(n)) => buffer.advance(n),
                    Err(_) => return false,
                }
            },
        }
    }
}

/// Writes what is left of `100 Continue` after `sent` bytes; the bytes
/// sent in all, or `None` if the connection failed.
fn write_continue<S: AsyncWrite + Unpin>(
    stream: &mut S,
    sent: usize,
    c: &mut Context<'_>,
) -> Poll<Option<usize>> {
    match Pin::new(stream).poll_write(c, &CONTINUE[sent..]) {
        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Poll::Ready(None),
        Poll::Ready(Ok(n)) => Poll::Ready(Some(sent + n)),
        Poll::Pending => Poll::Pending,
    }
}
