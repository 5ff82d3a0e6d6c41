//! One client connection: wait for a head (no buffer while idle), serve
//! it, write the response, repeat, until the connection closes, parks
//! (http/h1/park.rs) or becomes a tunnel after a 101.
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
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_util::io::poll_read_buf;

use super::body::{Feed, RequestBody};
use super::head::{self, BodyFraming, Head, Served};
use super::intake::Intake;
use super::response::HeadFor;
use super::upgrade::{self, UpgradeSender, Upgraded};
use super::writer::write_response;
use crate::config::model::Lingering;
use crate::http::body::ResponseBody;
use crate::http::exchange::ConnInfo;
use crate::http::generation::Generation;
use crate::http::linger;
use crate::http::server::Shared;
use crate::observe::metrics::InState;
use crate::observe::metrics::ListenerMetrics;
use crate::transport::client::ClientStream;

/// The read buffer for a head (most fit in one read).
const READ_SIZE: usize = 4096;

/// How a connection ended.
pub enum Outcome<S> {
    /// Served and closed (or handed to a tunnel).
    Done,
    /// Idle long enough to park (http/h1/park.rs), waiting as it says.
    /// Only a plain socket parks.
    Park(S, Waiting),
    /// The client speaks HTTP/2 (http/h2), having sent these bytes.
    H2(S, bytes::Bytes),
}

/// Which wait a connection is in, and since when.
#[derive(Debug, Clone, Copy)]
pub struct Waiting {
    /// No request yet: the first head is due `client_header_timeout`
    /// after the accept. Else the connection is kept alive.
    pub first: bool,
    /// The accept, or the end of the last response.
    pub since: Instant,
    /// How long a kept-alive connection idles: the last response's
    /// location's `keepalive_timeout` (nginx's timer in
    /// ngx_http_set_keepalive reads the request's location).
    pub keepalive: Duration,
    /// When an idle connection parks (http/h1/park.rs).
    pub park_at: Instant,
}

impl Waiting {
    /// A connection accepted just now.
    pub fn accepted() -> Waiting {
        Waiting::began(true, Instant::now(), Duration::ZERO)
    }

    /// A wait that began at `since`, for a first request or, kept alive,
    /// for `keepalive`.
    pub fn began(first: bool, since: Instant, keepalive: Duration) -> Waiting {
        Waiting {
            first,
            since,
            keepalive,
            park_at: since + super::park::PARK_AFTER,
        }
    }

    /// When the wait runs out if no byte arrives.
    pub fn deadline(&self, cx: &ConnectionContext) -> Instant {
        if self.first {
            self.since + cx.header_timeout
        } else {
            self.since + self.keepalive
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
    /// `large_client_header_buffers`, as the codec's limits.
    pub limits: ::h1::RequestLimits,
    /// `client_header_timeout`.
    pub header_timeout: Duration,
    /// `keepalive_timeout` (zero: every response closes the connection).
    pub keepalive_timeout: Duration,
    /// `send_timeout` (zero: none).
    pub send_timeout: Duration,
    /// Whether an idle connection may park (http/h1/park.rs).
    pub park: bool,
    /// `server_tokens` of the address's default server, for refusals.
    pub server_tokens: bool,
    /// `tcp_nodelay` of the address's default server.
    pub tcp_nodelay: bool,
    /// The lingering settings of the address's default server: a refused
    /// head has no location, so its close lingers by these.
    pub lingering: Lingering,
    /// Where a newer configuration is found after a reload.
    pub shared: Arc<Shared>,
}

impl ConnectionContext {
    /// The context of a connection to `conn.local` under `generation`;
    /// `None` if no server listens there.
    pub fn new(
        shared: Arc<Shared>,
        generation: Arc<Generation>,
        conn: Arc<ConnInfo>,
        listener: Arc<ListenerMetrics>,
    ) -> Option<ConnectionContext> {
        let settings = address_settings(&generation, &conn.local)?;
        Some(ConnectionContext {
            generation,
            conn,
            listener,
            limits: crate::http::server::request_limits(&settings),
            header_timeout: settings.client_header_timeout,
            keepalive_timeout: settings.keepalive_timeout,
            send_timeout: settings.send_timeout,
            park: !settings.keepalive_timeout.is_zero(),
            server_tokens: settings.server_tokens,
            tcp_nodelay: settings.tcp_nodelay,
            lingering: settings.lingering,
            shared,
        })
    }

    /// After a reload: takes the newest configuration for the next request,
    /// so that a kept-alive connection is never closed under a client about
    /// to send on it (nginx's old workers close them; here nothing is lost).
    /// False when the process is stopping, the address is no longer served,
    /// or the replaced configuration set `worker_shutdown_timeout` (which
    /// asks for nginx's closing): the connection closes.
    pub fn refresh(&mut self) -> bool {
        if *self.shared.stopping.borrow() {
            return false;
        }
        let current = self.shared.current.load_full();
        if Arc::ptr_eq(&current, &self.generation) {
            return true;
        }
        // `worker_shutdown_timeout` in the replaced configuration asks for
        // nginx's behaviour: its connections end with it (in-flight
        // requests finish first, tunnels when the timeout runs out).
        if self.generation.model.main.worker_shutdown_timeout.is_some() {
            return false;
        }
        let Some(settings) = address_settings(&current, &self.conn.local) else {
            return false;
        };
        self.limits = crate::http::server::request_limits(&settings);
        self.header_timeout = settings.client_header_timeout;
        self.keepalive_timeout = settings.keepalive_timeout;
        self.send_timeout = settings.send_timeout;
        self.park = !settings.keepalive_timeout.is_zero();
        self.server_tokens = settings.server_tokens;
        self.tcp_nodelay = settings.tcp_nodelay;
        self.lingering = settings.lingering;
        self.generation = current;
        true
    }
}

/// The connection-level settings of an address: its default server's.
pub fn address_settings(
    generation: &Generation,
    local: &crate::upstream::addr::PeerAddr,
) -> Option<Arc<crate::config::model::Settings>> {
    let servers = generation.servers_for(local);
    servers
        .iter()
        .find(|(_, default)| *default)
        .or_else(|| servers.first())
        .map(|(s, _)| s.settings.clone())
}

enum Wait {
    Head(Box<Served>),
    H2,
    Refuse(::h1::RequestError),
    Park,
    Close,
}

/// What became of a connection after one request.
enum Next {
    /// It may carry another request, after idling at most this long.
    Keep(Duration),
    /// It closes: lingering as `Closing` says, or (`None`: the response
    /// failed, or the discarding of a body ran out) at once, as nginx ends
    /// a connection in error without lingering.
    Close(Option<Closing>),
    /// It is now the client's side of a tunnel.
    Upgrade(UpgradeSender),
}

/// What the answering location says of the connection after its
/// response: how it lingers if it closes, how long it idles if kept alive.
#[derive(Debug, Clone, Copy)]
pub struct AfterResponse {
    /// `lingering_close`, `lingering_time`, `lingering_timeout`.
    pub lingering: Lingering,
    /// `keepalive_timeout`.
    pub keepalive_timeout: Duration,
}

/// How a connection whose response asked for the close may linger.
#[derive(Clone, Copy)]
struct Closing {
    /// The lingering settings of the location that answered.
    lingering: Lingering,
    /// The request had a body that was not discarded to its end: nginx's
    /// `r->lingering_close`, one reason for `lingering_close on` to linger.
    body: bool,
}

/// Serves `stream` until it closes, parks or becomes a tunnel.
pub async fn serve<S: ClientStream>(
    mut stream: S,
    cx: &mut ConnectionContext,
    epoch: &mut watch::Receiver<u64>,
    mut waiting: Waiting,
) -> Outcome<S> {
    let mut buffer = BytesMut::new();
    // The connection carried a pipelined request (nginx's `c->pipeline`),
    // a reason for `lingering_close on` to linger when it closes.
    let mut pipelined = false;
    // This request's head was in the buffer when the last one ended
    // (nginx's `r->pipeline`, `$pipe`).
    let mut this_pipelined = false;
    loop {
        // A reload since the last request (or while parked): the next
        // request is the new configuration's.
        if epoch.has_changed().unwrap_or(true) {
            epoch.mark_unchanged();
            if !cx.refresh() {
                let _ = stream.shutdown().await;
                return Outcome::Done;
            }
        }
        let mut served = match wait_for_head(&mut stream, &mut buffer, waiting, cx, epoch).await {
            Wait::Head(served) => served,
            Wait::Refuse(e) => {
                refuse(&mut stream, &mut buffer, &e, this_pipelined, cx).await;
                return Outcome::Done;
            }
            Wait::Park => return Outcome::Park(stream, waiting),
            Wait::H2 => return Outcome::H2(stream, buffer.split().freeze()),
            Wait::Close => {
                let _ = stream.shutdown().await;
                return Outcome::Done;
            }
        };
        if this_pipelined {
            served.parts.extensions.insert(head::Pipelined);
        }
        // Boxed: an idle connection's task holds only the wait for a head.
        let next = Box::pin(serve_one(&mut stream, &mut buffer, served, cx)).await;
        let idle_for = match next {
            Next::Keep(keepalive) => keepalive,
            Next::Close(closing) => {
                close(&mut stream, &mut buffer, closing, pipelined, cx).await;
                return Outcome::Done;
            }
            Next::Upgrade(sender) => {
                let read = buffer.split().freeze();
                sender.send(Upgraded {
                    stream: Box::new(stream),
                    read,
                });
                return Outcome::Done;
            }
        };
        this_pipelined = !buffer.is_empty();
        if this_pipelined {
            pipelined = true;
        } else {
            // Idle: hold no buffer until the next request starts.
            buffer = BytesMut::new();
        }
        waiting = Waiting::began(false, Instant::now(), idle_for);
    }
}

async fn wait_for_head<S: ClientStream>(
    stream: &mut S,
    buffer: &mut BytesMut,
    waiting: Waiting,
    cx: &mut ConnectionContext,
    epoch: &mut watch::Receiver<u64>,
) -> Wait {
    let mut head_started = (!buffer.is_empty()).then(Instant::now);
    // stub_status's Reading, from the wait for a head's rest until this returns.
    let mut reading = None;
    // HTTP/2 with prior knowledge: nginx looks for the preface in a new
    // connection's first bytes when the address takes HTTP/2 (http/h2).
    // Over TLS, ALPN decides (the acceptor hands `h2` connections over);
    // plain bytes on a TLS address are never HTTP/2 (nginx's `!hc->ssl`):
    // they get the 497 page, a preface included.
    let mut http2 = waiting.first
        && cx.conn.tls.is_none()
        && !cx.generation.is_ssl(&cx.conn.local)
        && crate::http::h2::enabled(&cx.generation, &cx.conn.local);
    loop {
        if http2 && !buffer.is_empty() {
            match crate::http::h2::preface(buffer) {
                crate::http::h2::Preface::Whole => return Wait::H2,
                crate::http::h2::Preface::Partial => {}
                crate::http::h2::Preface::No => http2 = false,
            }
        }
        if !http2 && !buffer.is_empty() {
            match head::parse(buffer, &cx.limits) {
                Head::Serve(served) => {
                    for line in &served.ignored {
                        crate::http::server::ignored_header(line, &cx.conn);
                    }
                    return Wait::Head(served);
                }
                Head::Refuse(e) => return Wait::Refuse(e),
                Head::Partial => {}
            }
        }
        let deadline = match head_started {
            Some(started) if !waiting.first => started + cx.header_timeout,
            _ => waiting.deadline(cx),
        };
        let idle = buffer.is_empty();
        if !idle && reading.is_none() {
            // Part of a head is here and the rest is awaited.
            reading = Some(InState::enter(&crate::observe::metrics::global().reading));
        }
        // One timer: the deadline, or earlier, the moment to park.
        let parks =
            idle && cx.park && stream.plain_socket().is_some() && waiting.park_at < deadline;
        let wake = if parks { waiting.park_at } else { deadline };
        tokio::select! {
            // Bytes that have arrived are read before any reason to close.
            biased;
            arrived = arrive(stream, buffer) => {
                match arrived {
                    Err(_) | Ok(Arrival::Read(0)) => return Wait::Close,
                    Ok(Arrival::Read(_)) => {
                        head_started.get_or_insert_with(Instant::now);
                        continue;
                    }
                    Ok(Arrival::Readable) => {}
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                return if parks { Wait::Park } else { Wait::Close };
            }
            // A reload: an idle connection takes the new configuration
            // and waits on; a graceful stop closes it now.
            _ = epoch.changed(), if idle => {
                epoch.mark_unchanged();
                if !cx.refresh() {
                    return Wait::Close;
                }
                continue;
            }
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

/// What a wait for the client's bytes found.
enum Arrival {
    /// A plain socket is readable; nothing was read yet.
    Readable,
    /// Bytes were read into the buffer (0: the client closed).
    Read(usize),
}

/// Waits for the client's next bytes: on a plain socket without touching
/// the buffer (an idle connection holds none); on any other stream by
/// reading into it, since the stream may hold bytes its socket no longer
/// shows (`read_buf` is cancel-safe: nothing is lost when a timer wins).
async fn arrive<S: ClientStream>(
    stream: &mut S,
    buffer: &mut BytesMut,
) -> std::io::Result<Arrival> {
    if let Some(socket) = stream.plain_socket() {
        socket.readable().await?;
        return Ok(Arrival::Readable);
    }
    if buffer.capacity() - buffer.len() < 1024 {
        buffer.reserve(READ_SIZE);
    }
    stream.read_buf(buffer).await.map(Arrival::Read)
}

/// Answers a head nginx refuses, then closes as nginx does: by the
/// address's default server's `lingering_close` (nginx finalizes such a
/// request with the default server's configuration). Under `on` it
/// lingers as a rule: the parser stopped inside what was read, so bytes
/// past the refusal are there (nginx's `header_in->pos < last`), or the
/// head was refused as too large, which nginx marks for lingering.
async fn refuse<S: ClientStream>(
    stream: &mut S,
    buffer: &mut BytesMut,
    error: &::h1::RequestError,
    pipelined: bool,
    cx: &ConnectionContext,
) {
    crate::http::server::log_refusal(error, &cx.conn);
    // A stand-in request carries the refusal through the default server's
    // error_page and the access log (http/server.rs, EarlyRefusal).
    let line_end = buffer
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buffer.len())
        // As much as nginx's buffer holds of a line too long for it.
        .min(cx.limits.line);
    let line = String::from_utf8_lossy(&buffer[..line_end]).into_owned();
    let mut stand_in = Request::new(RequestBody::Empty);
    stand_in
        .extensions_mut()
        .insert(crate::http::server::EarlyRefusal {
            status: error.status(),
            line,
        });
    if pipelined {
        stand_in.extensions_mut().insert(head::Pipelined);
    }
    let response = Box::pin(crate::http::server::handle(
        stand_in,
        cx.conn.clone(),
        &cx.generation,
    ))
    .await;
    let request = HeadFor {
        head_request: false,
        chunked: true,
    };
    if write_response(stream, buffer, None, &[], response, request, cx).await {
        let closing = Closing {
            lingering: cx.lingering,
            body: true,
        };
        close(stream, buffer, Some(closing), false, cx).await;
    }
}

/// Closes a connection after its last response: shuts the write side,
/// then lingers (http/linger.rs) if `closing` says the client may still be
/// sending, as ngx_http_finalize_connection decides. A stop ends the
/// lingering at once, as nginx closes lingering connections on exit
/// (they are reusable), so that they do not hold up the stop.
async fn close<S: ClientStream>(
    stream: &mut S,
    buffer: &mut BytesMut,
    closing: Option<Closing>,
    pipelined: bool,
    cx: &ConnectionContext,
) {
    let lingers = closing.is_some_and(|closing| {
        linger::wanted(closing.lingering, || {
            closing.body || pipelined || !buffer.is_empty() || readable(stream, buffer)
        })
    });
    let _ = stream.shutdown().await;
    if let Some(closing) = closing.filter(|_| lingers) {
        let mut stopping = cx.shared.stopping.clone();
        tokio::select! {
            _ = linger::drain(stream, closing.lingering) => {}
            _ = stopping.wait_for(|stop| *stop) => {}
        }
    }
}

/// Whether the client has sent bytes not yet read (nginx's
/// `c->read->ready`): one read that does not wait, into `buffer`, which
/// is dropped with the connection anyway.
fn readable<S: ClientStream>(stream: &mut S, buffer: &mut BytesMut) -> bool {
    if buffer.capacity() - buffer.len() < 1024 {
        buffer.reserve(READ_SIZE);
    }
    let mut c = Context::from_waker(Waker::noop());
    matches!(
        poll_read_buf(Pin::new(stream), &mut c, buffer),
        Poll::Ready(Ok(n)) if n > 0
    )
}

/// Serves one request.
async fn serve_one<S: ClientStream>(
    stream: &mut S,
    buffer: &mut BytesMut,
    served: Box<Served>,
    cx: &ConnectionContext,
) -> Next {
    let Served {
        mut parts,
        body: framing,
        expect_continue,
        upgrade: asks_upgrade,
        ignored: _,
    } = *served;
    let (mut intake, body) = match framing {
        BodyFraming::None => (None, RequestBody::Empty),
        BodyFraming::Length(n) => {
            let (feed, body) = Feed::new(n);
            (
                Some(Intake::length(feed, expect_continue)),
                RequestBody::Fed(body),
            )
        }
        BodyFraming::Chunked => {
            let (feed, body) = Feed::chunked();
            (
                Some(Intake::chunked(feed, expect_continue)),
                RequestBody::Fed(body),
            )
        }
    };
    let upgrade_sender = asks_upgrade.then(|| {
        let (sender, receiver) = upgrade::pair();
        parts.extensions.insert(receiver);
        sender
    });
    let request = HeadFor {
        head_request: parts.method == Method::HEAD,
        chunked: parts.version != Version::HTTP_10,
    };
    let metrics = crate::observe::metrics::global();
    metrics.requests.fetch_add(1, Ordering::Relaxed);
    cx.listener.requests.fetch_add(1, Ordering::Relaxed);
    // Writing until the response is written and any unread body dropped.
    let _writing = InState::enter(&metrics.in_flight);
    let handler = Box::pin(crate::http::server::handle(
        Request::from_parts(parts, body),
        cx.conn.clone(),
        &cx.generation,
    ));
    let mut response = drive(stream, buffer, intake.as_mut(), handler).await;
    // A `100 Continue` never sent because the body was never read goes
    // before the response, as nginx's discarding of the body sends it;
    // not before a 413, for which nginx refuses the body unread.
    let interim: &'static [u8] = match (intake.as_mut(), response.status().as_u16()) {
        (_, 413) => &[],
        (Some(intake), _) => intake.take_continue(),
        (None, _) if expect_continue => super::intake::CONTINUE,
        (None, _) => &[],
    };
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    let stopping = *cx.shared.stopping.borrow();
    // The answering location's lingering and keep-alive settings
    // (http/server.rs puts them on the response); the address's default
    // server's otherwise.
    let after = response
        .extensions()
        .get::<AfterResponse>()
        .copied()
        .unwrap_or(AfterResponse {
            lingering: cx.lingering,
            keepalive_timeout: cx.keepalive_timeout,
        });
    let lingering = after.lingering;
    // A graceful stop: finish this one, then close; with keepalive_timeout
    // 0 every response closes; a body of unknown length to an HTTP/1.0
    // client is delimited by the close. (A reload closes nothing: the next
    // request takes the new configuration.)
    if !switching
        && (stopping || after.keepalive_timeout.is_zero() || until_close(&response, request))
    {
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        headers.remove("keep-alive");
    }
    let close_asked = response
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| super::has_token(v.as_bytes(), b"close"));
    let complete = write_response(
        stream,
        buffer,
        intake.as_mut(),
        interim,
        response,
        request,
        cx,
    )
    .await;
    if !complete {
        return Next::Close(None);
    }
    if switching {
        return match upgrade_sender {
            Some(sender) => Next::Upgrade(sender),
            None => Next::Close(None),
        };
    }
    // A body the handler left unread is read and dropped, as nginx
    // discards it, so that the connection can carry the next request (and
    // a close never meets unread bytes, which would reset the connection
    // under the response). A body the handler read keeps nginx's mark
    // for lingering; one discarded to its end loses it.
    let (drained, body) = match intake.as_mut() {
        Some(intake) if !intake.is_done() => {
            (intake.discard(stream, buffer, lingering).await, false)
        }
        Some(_) => (true, true),
        None => (true, false),
    };
    if !drained {
        return Next::Close(None);
    }
    if close_asked {
        Next::Close(Some(Closing { lingering, body }))
    } else {
        Next::Keep(after.keepalive_timeout)
    }
}

/// Whether the response's body can only be delimited by closing the
/// connection: one of unknown length to a client that cannot take chunks.
fn until_close(response: &Response<ResponseBody>, request: HeadFor) -> bool {
    let status = response.status();
    let no_body = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    !request.chunked
        && !request.head_request
        && !no_body
        && !response.headers().contains_key(header::CONTENT_LENGTH)
        && response.body().size_hint().exact().is_none()
}

/// Polls the handler, feeding the request body from the socket whenever
/// the handler waits for it.
async fn drive<S: ClientStream>(
    stream: &mut S,
    buffer: &mut BytesMut,
    mut intake: Option<&mut Intake>,
    mut handler: Pin<Box<impl Future<Output = Response<ResponseBody>>>>,
) -> Response<ResponseBody> {
    std::future::poll_fn(|c| loop {
        if let Poll::Ready(response) = handler.as_mut().poll(c) {
            return Poll::Ready(response);
        }
        let fed = intake
            .as_deref_mut()
            .is_some_and(|i| i.step(stream, buffer, c));
        if !fed {
            return Poll::Pending;
        }
    })
    .await
}
