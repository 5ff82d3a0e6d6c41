//! One request on an upstream connection: the head and body go up while
//! the response head is read, so an upstream that answers before it has
//! read the whole body (a 413, say) is heard at once.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::Method;
use http_body::Body;
use tokio::io::AsyncWrite;
use tokio_util::io::poll_read_buf;

use super::body::{BodyTooLarge, ClientBodyTimeout};
use super::wire::{self, ResponseHead};
use crate::http::body::ResponseBody;
use crate::http::outbox::Outbox;
use crate::upstream::io::UpstreamIo;
use crate::upstream::pool::Connection;

/// The largest response head accepted (nginx's limit is
/// `proxy_buffer_size`, which switchyard accepts but does not size by).
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// How much is read from the upstream at a time.
pub const READ_SIZE: usize = 16 * 1024;

/// The request body as it goes up.
pub enum UpBody {
    /// No body.
    Empty,
    /// Held whole: can be sent again on a retry.
    Buffered(Bytes),
    /// Streamed from the client (capped and timed) after the bytes of it
    /// already read: sent once.
    Stream(Bytes, ResponseBody),
    /// A streamed body that has been (partly) sent: cannot be sent again.
    Spent,
}

impl UpBody {
    /// Whether the body can go to another connection or peer.
    pub fn can_resend(&self) -> bool {
        matches!(self, UpBody::Empty | UpBody::Buffered(_))
    }
}

/// What went wrong on the upstream connection.
#[derive(Debug)]
pub enum UpstreamError {
    /// The upstream closed before a complete head; `partial` when part of
    /// one had arrived.
    Closed {
        /// Some bytes of a head had arrived.
        partial: bool,
    },
    /// Reading failed.
    Recv(std::io::Error),
    /// Writing the request failed and no response came.
    Send(std::io::Error),
    /// The head was not valid.
    Head(::h1::ResponseError),
    /// The client's body failed: this status, and nginx's words for it.
    ClientBody(u16, String),
}

impl UpstreamError {
    /// Whether this is what a kept-alive connection that the peer closed
    /// while it was idle looks like: nothing came back at all.
    pub fn peer_closed_idle(&self) -> bool {
        let reset = |e: &std::io::Error| {
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            )
        };
        match self {
            UpstreamError::Closed { partial } => !partial,
            UpstreamError::Recv(e) | UpstreamError::Send(e) => reset(e),
            _ => false,
        }
    }
}

/// The response head, and the request's upload if the upstream answered
/// before all of it went up (it carries on while the response streams).
pub struct Sent {
    /// The response head.
    pub head: ResponseHead,
    /// The rest of the request, still going up.
    pub upload: Option<Upload>,
    /// Writing the request failed (the connection cannot be reused).
    pub write_failed: bool,
    /// Bytes read from the upstream so far (the head, and what of the
    /// body came with it).
    pub received: u64,
    /// Bytes written to it so far.
    pub sent: u64,
}

/// A failure while sending the request.
pub enum WriteFailure {
    /// The socket.
    Io(std::io::Error),
    /// The client's body: this status and nginx's words.
    ClientBody(u16, String),
}

/// The most bytes of the client's body gathered into one write (one chunk
/// of a chunked body).
const GATHER_MAX: usize = 64 * 1024;

/// The request going up: head and body, written as the socket takes them,
/// the body framed as the head announced.
pub struct Upload {
    /// Bytes ready to write, in order.
    pending: Outbox,
    /// The streamed body still to read from the client.
    body: Option<ResponseBody>,
    chunked: bool,
    /// The body's bytes that arrived together, not queued yet: nginx
    /// sends what one read of the client gave as one piece (one chunk).
    gathered: Vec<Bytes>,
    gathered_len: usize,
    /// Whether the task gave the body one more turn to hand over what has
    /// arrived before the gathered bytes are queued.
    yielded: bool,
    /// Bytes written so far (`$upstream_bytes_sent`).
    sent: u64,
}

impl Upload {
    /// The upload of `head` followed by `body`. A streamed body becomes
    /// [`UpBody::Spent`]: it can be sent only once.
    pub fn new(head: Bytes, body: &mut UpBody, chunked: bool) -> Upload {
        let mut pending = Outbox::with(head);
        let mut stream = None;
        match body {
            UpBody::Empty | UpBody::Spent => {}
            UpBody::Buffered(bytes) => pending.push(bytes.clone()),
            UpBody::Stream(..) => {
                if let UpBody::Stream(start, s) = std::mem::replace(body, UpBody::Spent) {
                    // What was read already goes with the head, in one write.
                    if chunked {
                        pending.push_chunk(start);
                    } else if !start.is_empty() {
                        pending.push(start);
                    }
                    stream = Some(s);
                }
            }
        }
        Upload {
            pending,
            body: stream,
            chunked,
            gathered: Vec::new(),
            gathered_len: 0,
            yielded: false,
            sent: 0,
        }
    }

    /// Bytes written to the upstream so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Queues the gathered bytes, as one chunk of a chunked body.
    fn queue_gathered(&mut self) {
        if self.gathered_len == 0 {
            return;
        }
        if self.chunked {
            self.pending
                .push(Bytes::from(format!("{:x}\r\n", self.gathered_len)));
        }
        for piece in self.gathered.drain(..) {
            self.pending.push(piece);
        }
        if self.chunked {
            self.pending.push(Bytes::from_static(b"\r\n"));
        }
        self.gathered_len = 0;
    }

    /// Writes what it can; ready when everything is written.
    pub fn poll_write(
        &mut self,
        stream: &mut UpstreamIo,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), WriteFailure>> {
        loop {
            while !self.pending.is_empty() {
                let n =
                    ready!(self.pending.poll_write_some(stream, cx)).map_err(WriteFailure::Io)?;
                self.sent += n as u64;
            }
            // TLS holds records it could not write yet: they go out before
            // the body is waited for or the response is read (a no-op for
            // plain TCP).
            ready!(Pin::new(&mut *stream).poll_flush(cx)).map_err(WriteFailure::Io)?;
            let Some(body) = self.body.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    self.yielded = false;
                    // Trailers are not passed up.
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            self.gathered_len += data.len();
                            self.gathered.push(data);
                        }
                    }
                    if self.gathered_len >= GATHER_MAX {
                        self.queue_gathered();
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    self.body = None;
                    return Poll::Ready(Err(client_body_failure(e)));
                }
                Poll::Ready(None) => {
                    self.body = None;
                    self.queue_gathered();
                    if self.chunked {
                        self.pending.push_last_chunk();
                    }
                }
                Poll::Pending if self.gathered_len == 0 => return Poll::Pending,
                // One more turn for the body's connection to hand over
                // what it has already read (see request_body::next_if_ready).
                Poll::Pending if !self.yielded => {
                    self.yielded = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => {
                    self.yielded = false;
                    self.queue_gathered();
                }
            }
        }
    }
}

/// Sends the request on `connection` and reads the response head, both at
/// once: an upstream may answer before it has read the whole body.
pub async fn send(
    connection: &mut Connection,
    mut upload: Upload,
    method: &Method,
) -> Result<Sent, UpstreamError> {
    connection.buffer.clear();
    let stream = &mut connection.stream;
    let buffer = &mut connection.buffer;
    let mut written: Option<Result<(), std::io::Error>> = None;
    let mut received = 0u64;
    let head = std::future::poll_fn(|cx| {
        if written.is_none() {
            match upload.poll_write(stream, cx) {
                Poll::Ready(Ok(())) => written = Some(Ok(())),
                Poll::Ready(Err(WriteFailure::Io(e))) => written = Some(Err(e)),
                Poll::Ready(Err(WriteFailure::ClientBody(status, words))) => {
                    return Poll::Ready(Err(UpstreamError::ClientBody(status, words)));
                }
                Poll::Pending => {}
            }
        }
        poll_head(stream, buffer, method, &mut received, cx)
    })
    .await;
    match (head, written) {
        (Ok(head), written) => Ok(Sent {
            head,
            write_failed: matches!(written, Some(Err(_))),
            received,
            sent: upload.sent(),
            upload: written.is_none().then_some(upload),
        }),
        // The upstream refused the request and said nothing: nginx reports
        // the write that failed.
        (Err(UpstreamError::Closed { partial: false } | UpstreamError::Recv(_)), Some(Err(e))) => {
            Err(UpstreamError::Send(e))
        }
        (Err(e), _) => Err(e),
    }
}

/// The client's body failed: its status and nginx's words (the peer is not
/// to blame, and nothing is retried).
fn client_body_failure(e: crate::http::body::BoxError) -> WriteFailure {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
    while let Some(err) = cause {
        if err.is::<ClientBodyTimeout>() {
            return WriteFailure::ClientBody(408, err.to_string());
        }
        if err.is::<BodyTooLarge>() {
            return WriteFailure::ClientBody(413, err.to_string());
        }
        cause = err.source();
    }
    // hyper's own parse error of the client's chunked body.
    WriteFailure::ClientBody(400, format!("client sent invalid request body ({e})"))
}

fn poll_head(
    stream: &mut UpstreamIo,
    buffer: &mut BytesMut,
    method: &Method,
    received: &mut u64,
    cx: &mut Context<'_>,
) -> Poll<Result<ResponseHead, UpstreamError>> {
    loop {
        if !buffer.is_empty() {
            if let Some(head) = wire::parse_response_head(buffer, method, MAX_RESPONSE_HEAD)
                .map_err(UpstreamError::Head)?
            {
                return Poll::Ready(Ok(head));
            }
        }
        buffer.reserve(READ_SIZE);
        // tokio's own read (not `try_read`) notices a short read and waits
        // for the next readiness event instead of trying again in vain.
        match ready!(poll_read_buf(Pin::new(&mut *stream), cx, buffer)) {
            Ok(0) => {
                return Poll::Ready(Err(UpstreamError::Closed {
                    partial: !buffer.is_empty(),
                }))
            }
            Ok(n) => *received += n as u64,
            Err(e) => return Poll::Ready(Err(UpstreamError::Recv(e))),
        }
    }
}
