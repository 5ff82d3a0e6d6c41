//! The upstream's response body on its way down, read straight from the
//! upstream socket by whoever polls it (hyper's server side, in the
//! client's connection task). It holds the peer (least_conn, max_conns)
//! until the body ends, times each wait by `proxy_read_timeout`, and puts
//! the connection back in the keepalive pool once the body is complete.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ::h1::chunked::{ChunkedDecoder, Step};
use ::h1::Framing;
use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use tokio_util::io::poll_read_buf;

use super::body::PeerGuard;
use super::send::{Upload, READ_SIZE};
use crate::http::body::{poll_wait, BoxError, ReadTimeout};
use crate::http::exchange::{ResponseEnd, Transfer};
use crate::observe::error_log;
use crate::upstream::pool::{Connection, PoolKey};

/// An upstream body that ended badly, in nginx's words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UpstreamBodyError(String);

enum State {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

/// What the response body needs from the attempt that produced it.
pub struct Downstream {
    /// The connection the response came on.
    pub connection: Connection,
    /// The rest of the request, still going up.
    pub upload: Option<Upload>,
    /// Whether the connection may go back to the pool once the body is read.
    pub reusable: bool,
    /// Its pool.
    pub key: PoolKey,
    /// Reports the peer's success or failure.
    pub guard: PeerGuard,
    /// Marked when the response body ends.
    pub end: ResponseEnd,
    /// The bytes moved until the head was in.
    pub transfer: Transfer,
}

/// The response body of one upstream request.
pub struct UpstreamBody {
    connection: Option<Connection>,
    /// The rest of the request, when the upstream answered before it had
    /// all of it (an echo does): it keeps going up as the response comes.
    upload: Option<Upload>,
    state: State,
    /// The connection may carry another request once this body is read.
    reusable: bool,
    key: PoolKey,
    guard: Option<PeerGuard>,
    timeout: Duration,
    /// The `proxy_read_timeout` timer, kept and reset between waits.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether `sleep` times the current wait.
    armed: bool,
    /// Data went out since this body last returned `Pending`: an error is
    /// then held back one turn, so that hyper writes that data to the
    /// client before it aborts the connection (the client must see what
    /// arrived before the break).
    fresh_data: bool,
    held_error: Option<String>,
    /// Marked when the body ends, for `$upstream_response_time`.
    end: ResponseEnd,
    /// The bytes moved so far, for `$upstream_bytes_*` and
    /// `$upstream_response_length`.
    transfer: Transfer,
}

impl UpstreamBody {
    /// The body that follows a response head with `framing` on the
    /// attempt's connection.
    pub fn new(down: Downstream, framing: Framing, timeout: Duration) -> UpstreamBody {
        let Downstream {
            connection,
            upload,
            reusable,
            key,
            guard,
            end,
            transfer,
        } = down;
        let state = match framing {
            Framing::None | Framing::Length(0) => State::Length(0),
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(ChunkedDecoder::default()),
            Framing::UntilClose => State::UntilClose,
        };
        let mut body = UpstreamBody {
            connection: Some(connection),
            upload,
            state,
            reusable,
            key,
            guard: Some(guard),
            timeout,
            sleep: None,
            armed: false,
            fresh_data: false,
            held_error: None,
            end,
            transfer,
        };
        if matches!(body.state, State::Length(0)) {
            // Nothing to read: the connection is free now.
            body.complete();
        }
        body
    }

    /// The body is read to its end: the connection goes back to the pool
    /// when the upstream allows it and nothing unexpected followed.
    fn complete(&mut self) {
        self.end.finish(self.transfer);
        self.state = State::Done;
        self.upload = None;
        let (Some(connection), Some(guard)) = (self.connection.take(), self.guard.take()) else {
            return;
        };
        if self.reusable && connection.buffer.is_empty() {
            if let Some(pool) = guard.upstream.pool.as_ref() {
                pool.put(self.key.clone(), connection);
            }
        }
    }

    /// The body failed: the connection is closed, the peer is reported as
    /// it was (the head had arrived).
    fn fail(
        &mut self,
        words: String,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.end.finish(self.transfer);
        self.state = State::Done;
        self.connection = None;
        self.guard = None;
        if std::mem::take(&mut self.fresh_data) {
            self.held_error = Some(words);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Some(Err(Box::new(UpstreamBodyError(words)))))
    }

    /// Reads more from the upstream into the buffer: `Ok(0)` at its close.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let Some(connection) = self.connection.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        if connection.buffer.capacity() - connection.buffer.len() < 1024 {
            connection.buffer.reserve(READ_SIZE);
        }
        let read = poll_read_buf(Pin::new(&mut connection.stream), cx, &mut connection.buffer);
        if let Poll::Ready(Ok(n)) = read {
            self.transfer.received += n as u64;
        }
        read
    }

    /// Takes the next piece of body from the buffer, if there is one.
    fn decode(&mut self) -> Result<Option<Frame<Bytes>>, String> {
        let Some(connection) = self.connection.as_mut() else {
            return Ok(None);
        };
        let buffer = &mut connection.buffer;
        let (data, ended) = match &mut self.state {
            State::Length(left) if !buffer.is_empty() => {
                let take = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(buffer.len());
                *left -= take as u64;
                (Some(buffer.split_to(take).freeze()), *left == 0)
            }
            // The decoder names where the data lies; the data is then split
            // off the buffer, shared, not copied.
            State::Chunked(decoder) => match decoder.decode(buffer) {
                Ok(Step::Data(range)) => {
                    buffer.advance(range.start);
                    (Some(buffer.split_to(range.len()).freeze()), false)
                }
                Ok(Step::NeedMore) => {
                    buffer.clear();
                    (None, false)
                }
                Ok(Step::Done(used)) => {
                    buffer.advance(used);
                    (None, true)
                }
                Err(e) => return Err(format!("{} while reading upstream", e.upstream_message())),
            },
            State::UntilClose if !buffer.is_empty() => (Some(buffer.split().freeze()), false),
            _ => (None, false),
        };
        if let Some(d) = &data {
            self.transfer.body += d.len() as u64;
        }
        if ended {
            self.complete();
        }
        Ok(data.map(Frame::data))
    }
}

impl Drop for UpstreamBody {
    /// A body not read to its end (the client went, a HEAD) still ends
    /// its response now, for `$upstream_response_time`.
    fn drop(&mut self) {
        self.end.mark();
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(words) = this.held_error.take() {
            return Poll::Ready(Some(Err(Box::new(UpstreamBodyError(words)))));
        }
        if let (Some(upload), Some(connection)) = (this.upload.as_mut(), this.connection.as_mut()) {
            let written = upload.poll_write(&mut connection.stream, cx);
            this.transfer.sent = upload.sent();
            match written {
                Poll::Ready(Ok(())) => this.upload = None,
                Poll::Ready(Err(_)) => {
                    // The rest of the request cannot go up; the response
                    // may still come whole, but the connection is spent.
                    this.upload = None;
                    this.reusable = false;
                }
                Poll::Pending => {}
            }
        }
        loop {
            match this.decode() {
                Ok(Some(frame)) => {
                    this.fresh_data = true;
                    return Poll::Ready(Some(Ok(frame)));
                }
                Ok(None) => {}
                Err(words) => return this.fail(words, cx),
            }
            if matches!(this.state, State::Done) {
                return Poll::Ready(None);
            }
            match this.poll_fill(cx) {
                Poll::Ready(Ok(0)) => {
                    if matches!(this.state, State::UntilClose) {
                        // The close is the end of this body; the connection is spent.
                        this.reusable = false;
                        this.complete();
                        return Poll::Ready(None);
                    }
                    return this.fail(
                        "upstream prematurely closed connection while reading upstream".into(),
                        cx,
                    );
                }
                Poll::Ready(Ok(_)) => {
                    this.armed = false;
                }
                Poll::Ready(Err(e)) => {
                    return this.fail(
                        format!(
                            "recv() failed ({}) while reading upstream",
                            error_log::os_error(&e)
                        ),
                        cx,
                    )
                }
                Poll::Pending => {
                    this.fresh_data = false;
                    return match poll_wait(&mut this.sleep, &mut this.armed, this.timeout, cx) {
                        Poll::Ready(()) => {
                            this.end.mark();
                            this.state = State::Done;
                            this.connection = None;
                            this.guard = None;
                            Poll::Ready(Some(Err(Box::new(ReadTimeout))))
                        }
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held_error.is_none() && matches!(self.state, State::Done | State::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(left) => SizeHint::with_exact(left),
            State::Done if self.held_error.is_none() => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
