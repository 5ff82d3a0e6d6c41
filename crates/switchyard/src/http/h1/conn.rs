//! One client connection on the fast path: wait for a head (no buffer
//! while idle), serve it, write the response, repeat; hand the connection
//! to hyper at the first request the fast path does not take.
//!
//! nginx's waits apply as in `http/idle.rs`: the first head must arrive
//! within `client_header_timeout` of the accept; between requests the
//! connection may idle for `keepalive_timeout`, and a head that has started
//! must be complete within `client_header_timeout` of its first byte.
//! Writes that make no progress for `send_timeout` end the connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body::Body;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::io::poll_read_buf;

use super::body::{Feed, RequestBody};
use super::head::{self, Head};
use super::response::{encode_head, Framing};
use crate::http::body::{poll_wait, ResponseBody};
use crate::http::exchange::ConnInfo;
use crate::http::generation::Generation;
use crate::http::outbox::Outbox;
use crate::observe::error_log;
use crate::observe::metrics::ListenerMetrics;

/// A head longer than this goes to hyper (which applies
/// `large_client_header_buffers`); ordinary heads are far shorter.
const HEAD_LIMIT: usize = 8192;

/// The read buffer for a head (most fit in one read).
const READ_SIZE: usize = 4096;

/// The read buffer for a request body, when one is fed.
const BODY_READ_SIZE: usize = 16 * 1024;

/// How a fast-path connection ended.
pub enum Outcome {
    /// Served and closed.
    Done,
    /// A request the fast path does not take: hyper serves the connection
    /// from here, starting with these bytes already read.
    Fallback(TcpStream, Bytes),
    /// Idle long enough to park (http/h1/park.rs), waiting as it says.
    Park(TcpStream, Waiting),
}

/// Which wait a connection is in, and since when.
#[derive(Debug, Clone, Copy)]
pub struct Waiting {
    /// No request yet: the first head is due `client_header_timeout`
    /// after the accept. Else the connection is kept alive.
    pub first: bool,
    /// The accept, or the end of the last response.
    pub since: Instant,
    /// When an idle connection parks (http/h1/park.rs).
    pub park_at: Instant,
}

impl Waiting {
    /// A connection accepted just now.
    pub fn accepted() -> Waiting {
        Waiting::began(true, Instant::now())
    }

    /// A wait that began at `since`.
    pub fn began(first: bool, since: Instant) -> Waiting {
        Waiting {
            first,
            since,
            park_at: since + super::park::PARK_AFTER,
        }
    }

    /// When the wait runs out if no byte arrives.
    pub fn deadline(&self, cx: &ConnectionContext) -> Instant {
        if self.first {
            self.since + cx.header_timeout
        } else {
            self.since + cx.keepalive_timeout
        }
    }
}

/// What a connection needs besides its socket.
pub struct ConnectionContext {
    /// The configuration it was accepted under.
    pub generation: Arc<Generation>,
    /// Its identity and counters.
    pub conn: Arc<ConnInfo>,
    /// Its listener's counters.
    pub listener: Arc<ListenerMetrics>,
    /// `client_header_timeout`.
    pub header_timeout: Duration,
    /// `keepalive_timeout` (not zero: a zero one goes to hyper).
    pub keepalive_timeout: Duration,
    /// `send_timeout` (zero: none).
    pub send_timeout: Duration,
    /// Whether an idle connection may park (http/h1/park.rs).
    pub park: bool,
}

enum Wait {
    Head(http::request::Parts, u64),
    Fallback(Option<Bytes>),
    Park,
    Close,
}

/// Serves `stream` until it closes or needs hyper.
pub async fn serve(
    mut stream: TcpStream,
    cx: &ConnectionContext,
    epoch: &mut watch::Receiver<u64>,
    mut waiting: Waiting,
) -> Outcome {
    let mut buffer = BytesMut::new();
    loop {
        let (parts, body_length) =
            match wait_for_head(&mut stream, &mut buffer, waiting, cx, epoch).await {
                Wait::Head(parts, length) => (parts, length),
                Wait::Fallback(None) => return Outcome::Fallback(stream, buffer.freeze()),
                Wait::Fallback(Some(head)) => {
                    let mut read = BytesMut::with_capacity(head.len() + buffer.len());
                    read.extend_from_slice(&head);
                    read.extend_from_slice(&buffer);
                    return Outcome::Fallback(stream, read.freeze());
                }
                Wait::Park => return Outcome::Park(stream, waiting),
                Wait::Close => {
                    let _ = stream.shutdown().await;
                    return Outcome::Done;
                }
            };
        // Boxed: an idle connection's task holds only the wait for a head.
        let keep = Box::pin(serve_one(
            &mut stream,
            &mut buffer,
            parts,
            body_length,
            cx,
            epoch,
        ))
        .await;
        if !keep {
            let _ = stream.shutdown().await;
            return Outcome::Done;
        }
        if buffer.is_empty() {
            // Idle: hold no buffer until the next request starts.
            buffer = BytesMut::new();
        }
        waiting = Waiting::began(false, Instant::now());
    }
}

async fn wait_for_head(
    stream: &mut TcpStream,
    buffer: &mut BytesMut,
    waiting: Waiting,
    cx: &ConnectionContext,
    epoch: &mut watch::Receiver<u64>,
) -> Wait {
    let mut head_started = (!buffer.is_empty()).then(Instant::now);
    loop {
        if !buffer.is_empty() {
            match head::parse(buffer, HEAD_LIMIT) {
                Head::Serve { parts, body } => return Wait::Head(parts, body),
                Head::Fallback(head) => return Wait::Fallback(head),
                Head::Partial => {}
            }
        }
        let deadline = match head_started {
            Some(started) if !waiting.first => started + cx.header_timeout,
            _ => waiting.deadline(cx),
        };
        let idle = buffer.is_empty();
        // One timer: the deadline, or earlier, the moment to park.
        let parks = idle && cx.park && waiting.park_at < deadline;
        let wake = if parks { waiting.park_at } else { deadline };
        tokio::select! {
            // Bytes that have arrived are read before any reason to close.
            biased;
            ready = stream.readable() => {
                if ready.is_err() {
                    return Wait::Close;
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                return if parks { Wait::Park } else { Wait::Close };
            }
            // A reload or graceful stop: an idle connection closes now.
            _ = epoch.changed(), if idle => return Wait::Close,
        }
        if buffer.capacity() - buffer.len() < 1024 {
            buffer.reserve(READ_SIZE);
        }
        // One try: tokio takes a new socket as readable before anything
        // has arrived. tokio's own read (not `try_read`) notices a short
        // read, so the next wait really waits.
        let read =
            std::future::poll_fn(|c| Poll::Ready(poll_read_buf(Pin::new(&mut *stream), c, buffer)))
                .await;
        match read {
            // Closed, or half-closed with no request: nothing to answer.
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Wait::Close,
            Poll::Ready(Ok(_)) => {
                head_started.get_or_insert_with(Instant::now);
            }
            Poll::Pending => {
                if buffer.is_empty() {
                    *buffer = BytesMut::new();
                }
            }
        }
    }
}

/// Serves one request; whether the connection may carry another.
async fn serve_one(
    stream: &mut TcpStream,
    buffer: &mut BytesMut,
    parts: http::request::Parts,
    body_length: u64,
    cx: &ConnectionContext,
    epoch: &mut watch::Receiver<u64>,
) -> bool {
    let (feed, body) = if body_length > 0 {
        let (feed, body) = Feed::new(body_length);
        (Some(feed), RequestBody::Fed(body))
    } else {
        (None, RequestBody::Empty)
    };
    let metrics = crate::observe::metrics::global();
    metrics.requests.fetch_add(1, Ordering::Relaxed);
    cx.listener.requests.fetch_add(1, Ordering::Relaxed);
    metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let handler = Box::pin(crate::http::server::handle(
        Request::from_parts(parts, body),
        cx.conn.clone(),
        &cx.generation,
    ));
    let mut response = drive(stream, buffer, feed.as_ref(), handler).await;
    metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    let reloading = epoch.has_changed().unwrap_or(true);
    if reloading && response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        // Finish this one on the old configuration, then close.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let close_asked = response
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| super::has_token(v.as_bytes(), b"close"));
    let complete = write_response(stream, buffer, feed.as_ref(), response, cx).await;

    // A body the handler left unread is read and dropped, as nginx
    // discards it, so that the connection can carry the next request (and
    // a close never meets unread bytes, which would reset the connection
    // under the response).
    if !complete {
        return false;
    }
    let unread = feed.as_ref().map_or(0, Feed::remaining);
    let drained = unread == 0 || discard(stream, buffer, unread).await;
    drained && !close_asked
}

/// nginx's `lingering_timeout`: the longest wait for more of a body being
/// discarded.
const DISCARD_WAIT: Duration = Duration::from_secs(5);

/// nginx's `lingering_time`: the longest a body is discarded for.
const DISCARD_TIME: Duration = Duration::from_secs(30);

/// Reads and drops `length` bytes of request body; whether all came.
async fn discard(stream: &mut TcpStream, buffer: &mut BytesMut, mut length: u64) -> bool {
    let deadline = Instant::now() + DISCARD_TIME;
    loop {
        let take = usize::try_from(length)
            .unwrap_or(usize::MAX)
            .min(buffer.len());
        buffer.advance(take);
        length -= take as u64;
        if length == 0 {
            return true;
        }
        if buffer.capacity() < BODY_READ_SIZE {
            buffer.reserve(BODY_READ_SIZE);
        }
        let wait = DISCARD_WAIT.min(deadline.saturating_duration_since(Instant::now()));
        let read = std::future::poll_fn(|c| poll_read_buf(Pin::new(&mut *stream), c, buffer));
        match tokio::time::timeout(wait, read).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return false,
        }
    }
}

/// Polls the handler, feeding the request body from the socket whenever
/// the handler waits for it.
async fn drive(
    stream: &mut TcpStream,
    buffer: &mut BytesMut,
    feed: Option<&Feed>,
    mut handler: Pin<Box<impl Future<Output = Response<ResponseBody>>>>,
) -> Response<ResponseBody> {
    std::future::poll_fn(|c| loop {
        if let Poll::Ready(response) = handler.as_mut().poll(c) {
            return Poll::Ready(response);
        }
        if !feed_step(stream, buffer, feed, c) {
            return Poll::Pending;
        }
    })
    .await
}

/// Gives the request body what it waits for: bytes already read, or a
/// read from the socket. Whether anything was handed over.
fn feed_step(
    stream: &mut TcpStream,
    buffer: &mut BytesMut,
    feed: Option<&Feed>,
    c: &mut Context<'_>,
) -> bool {
    let Some(feed) = feed else { return false };
    let wanted = feed.wanted();
    if wanted == 0 {
        return false;
    }
    if buffer.is_empty() {
        if buffer.capacity() < READ_SIZE {
            buffer.reserve(BODY_READ_SIZE);
        }
        match poll_read_buf(Pin::new(&mut *stream), c, buffer) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                feed.cut();
                return true;
            }
            Poll::Ready(Ok(_)) => {}
            Poll::Pending => return false,
        }
    }
    let take = usize::try_from(wanted)
        .unwrap_or(usize::MAX)
        .min(buffer.len());
    feed.deliver(buffer.split_to(take).freeze());
    true
}

/// Writes the response; whether it went out complete (the connection can
/// carry another request).
async fn write_response(
    stream: &mut TcpStream,
    buffer: &mut BytesMut,
    feed: Option<&Feed>,
    response: Response<ResponseBody>,
    cx: &ConnectionContext,
) -> bool {
    let (parts, mut body) = response.into_parts();
    let mut head = Vec::with_capacity(256);
    let framing = encode_head(&mut head, parts.status, &parts.headers, &body.size_hint());
    let mut writer = Writer {
        out: Outbox::with(Bytes::from(head)),
        framing,
        left: match framing {
            Framing::Length(n) => n,
            _ => 0,
        },
        ended: None,
    };
    if matches!(framing, Framing::Empty | Framing::Length(0)) {
        writer.ended = Some(true);
    }
    // send_timeout: the timer is kept and reset between stalls.
    let mut stall: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut stalled = false;
    // The first piece of body goes out with the head when it is ready at
    // once; a body that fails before anything was written sends nothing
    // at all (`return 444`, an upstream that broke at once).
    if writer.ended.is_none() {
        let first = std::future::poll_fn(|c| Poll::Ready(Pin::new(&mut body).poll_frame(c))).await;
        match first {
            Poll::Ready(Some(Err(_))) => return false,
            Poll::Ready(frame) => writer.take(frame),
            Poll::Pending => {}
        }
    }
    std::future::poll_fn(|c| loop {
        while !writer.out.is_empty() {
            match writer.out.poll_write_some(stream, c) {
                Poll::Ready(Ok(_)) => stalled = false,
                Poll::Ready(Err(_)) => return Poll::Ready(false),
                Poll::Pending => {
                    if feed_step(stream, buffer, feed, c) {
                        continue;
                    }
                    let timed_out = !cx.send_timeout.is_zero()
                        && poll_wait(&mut stall, &mut stalled, cx.send_timeout, c).is_ready();
                    if timed_out {
                        error_log::log(
                            crate::observe::ErrorLevel::Info,
                            Some(cx.conn.id),
                            crate::http::send_timeout::TIMED_OUT,
                        );
                        return Poll::Ready(false);
                    }
                    return Poll::Pending;
                }
            }
        }
        if let Some(complete) = writer.ended {
            return Poll::Ready(complete);
        }
        match Pin::new(&mut body).poll_frame(c) {
            // A body that breaks mid-way: the client sees the cut.
            Poll::Ready(Some(Err(_))) => return Poll::Ready(false),
            Poll::Ready(frame) => writer.take(frame),
            Poll::Pending => {
                if !feed_step(stream, buffer, feed, c) {
                    return Poll::Pending;
                }
            }
        }
    })
    .await
}

/// The response's bytes on their way out.
struct Writer {
    out: Outbox,
    framing: Framing,
    /// Body bytes still due under `Content-Length`.
    left: u64,
    /// The body has ended: whether it was complete.
    ended: Option<bool>,
}

impl Writer {
    /// Queues a frame of the body (`None`: its end).
    fn take(
        &mut self,
        frame: Option<Result<http_body::Frame<Bytes>, crate::http::body::BoxError>>,
    ) {
        match frame {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else { return };
                if data.is_empty() {
                    return;
                }
                if self.framing == Framing::Chunked {
                    self.out.push_chunk(data);
                } else {
                    let n = (data.len() as u64).min(self.left);
                    self.left -= n;
                    self.out.push(data.slice(..n as usize));
                    if self.left == 0 {
                        self.ended = Some(true);
                    }
                }
            }
            None => {
                if self.framing == Framing::Chunked {
                    self.out.push_last_chunk();
                }
                // Shorter than announced: the connection must close.
                self.ended = Some(self.left == 0);
            }
            Some(Err(_)) => self.ended = Some(false),
        }
    }
}
