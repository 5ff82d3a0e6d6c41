//! One HTTP/2 connection: the handshake, then every stream as a task of
//! its own running the shared handler, until the client goes, the
//! connection idles out, or a stop sends GOAWAY and lets the streams in
//! flight finish.
//!
//! nginx's waits, as it has them since http2_idle_timeout and
//! http2_recv_timeout became obsolete: the preface and SETTINGS are due
//! within `client_header_timeout` (so is the first stream); a connection
//! with no stream open closes (GOAWAY) after `keepalive_timeout`; with
//! `keepalive_timeout 0`, after `keepalive_requests` streams or once
//! `keepalive_time` has passed, it says GOAWAY as a stream starts and ends
//! when the streams begun finish. A graceful stop, or a reload that ends
//! the connection, is nginx's exiting worker: a connection with no stream
//! open says GOAWAY and closes at once; one with streams in flight
//! finishes them, then says GOAWAY and closes.
//!
//! There is one GOAWAY, with the last stream taken, as nginx's. h2 can
//! say that only as it ends the connection (its `abrupt_shutdown` ends the
//! streams in flight too), so it goes once they have finished rather than
//! as they start, and a stream the client opens meanwhile is refused
//! (RST_STREAM REFUSED_STREAM: not processed, safe to retry), where nginx
//! ignores a stream past its GOAWAY. (h2's own graceful shutdown says
//! GOAWAY twice, first with the highest stream id, and then waits for the
//! answer to a PING, which a client that is not reading never sends.)

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::server::{Builder, SendResponse};
use h2::{Reason, RecvStream};
use http::{Method, Request};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;

use super::linger::Lingering;
use super::meter::{Lengths, Meter, StreamLength};
use super::request::{self, HeadLimits, Refusal};
use super::response::{self, Sending};
use super::rewind::Rewind;
use crate::http::exchange::ConnInfo;
use crate::http::generation::Generation;
use crate::http::server::ConnState;
use crate::observe::metrics::InState;
use crate::observe::{error_log, ErrorLevel};

/// The largest flow-control window HTTP/2 allows: nginx opens the
/// connection's window to it at once, so that only each stream's window
/// (`http2_body_preread_size`) bounds what a client sends ahead.
const MAX_WINDOW: u32 = (1 << 31) - 1;

/// Bytes of response a stream may hold in the codec beyond what the
/// client's window lets go: with `http2_max_concurrent_streams` streams
/// this bounds a connection's buffered output (nginx bounds it by its
/// output chain of `http2_chunk_size` frames).
const SEND_BUFFER: usize = 64 * 1024;

/// Streams the client may reset within one second before the connection
/// is taken as a rapid-reset attack (CVE-2023-44487) and closed with
/// GOAWAY ENHANCE_YOUR_CALM, per `http2_max_concurrent_streams` (nginx
/// allows twice that many new streams per read, and counts refusals up
/// to the same bound).
const RESETS_PER_STREAM_SLOT: u64 = 2;

/// Streams reset by the client, counted per second.
struct ResetWatch {
    since: Instant,
    at_start: u64,
    limit: u64,
}

impl ResetWatch {
    fn new(limit: u64) -> ResetWatch {
        ResetWatch {
            since: Instant::now(),
            at_start: 0,
            limit,
        }
    }

    /// Whether `total` resets so far make more than the limit within the
    /// current second.
    fn over(&mut self, total: u64) -> bool {
        let now = Instant::now();
        if now.duration_since(self.since) > Duration::from_secs(1) {
            self.since = now;
            self.at_start = total;
        }
        total - self.at_start > self.limit
    }
}

/// How a connection's streams are served: what every stream task needs.
struct Streams {
    conn: Arc<ConnInfo>,
    tls: bool,
    limits: HeadLimits,
    /// `http2_body_preread_size`: each stream's window.
    body_window: u32,
    sending: Sending,
    counters: Counters,
    /// What `$request_length` counts of each stream.
    lengths: Arc<Lengths>,
}

/// Serves an HTTP/2 connection on `stream`, whose first bytes `preread`
/// were already read from it (the client preface, or part of it).
pub async fn serve<S>(stream: S, preread: Bytes, state: ConnState)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ConnState {
        mut context,
        mut epoch,
        slot,
    } = state;
    // Held until the connection closes: it counts under worker_connections.
    let _slot = slot;
    let tls = context.conn.tls.is_some();
    let Some(settings) =
        crate::http::h1::conn::address_settings(&context.generation, &context.conn.local)
    else {
        return;
    };
    let (number, size) = settings.large_client_header_buffers;
    let limits = HeadLimits {
        field: usize::try_from(size).unwrap_or(usize::MAX),
        total: usize::try_from(number.saturating_mul(size)).unwrap_or(usize::MAX),
        ignore_invalid_headers: settings.ignore_invalid_headers,
        underscores_in_headers: settings.underscores_in_headers,
    };
    // h2 refuses a head past its own limit with 431 (and counts 32 bytes
    // more per field than nginx does): twice nginx's limit leaves the
    // decision to nginx's rule in request.rs, and still bounds decoding.
    let header_limit = u32::try_from(limits.total.saturating_mul(2)).unwrap_or(u32::MAX);
    let concurrent = settings.http2_max_concurrent_streams;
    let mut builder = Builder::new();
    builder
        // SETTINGS_MAX_CONCURRENT_STREAMS: more open streams are refused
        // (REFUSED_STREAM), as nginx refuses them.
        .max_concurrent_streams(concurrent)
        .initial_window_size(settings.http2_body_preread_size)
        .initial_connection_window_size(MAX_WINDOW)
        // The bound on a decoded header list (the CONTINUATION flood is
        // bounded by it too: h2 stops decoding past it, and ends the
        // connection with ENHANCE_YOUR_CALM when a block runs far over).
        .max_header_list_size(header_limit)
        // Rapid reset: streams opened and reset before the accept loop
        // takes them. h2 ends the connection with ENHANCE_YOUR_CALM past
        // this; streams reset after they were accepted are counted below.
        .max_pending_accept_reset_streams(usize::try_from(concurrent).unwrap_or(usize::MAX).max(20))
        // Streams the client made us reset (malformed heads, flow-control
        // errors): nginx's bound on refused streams, max(streams, 100).
        .max_local_error_reset_streams(Some(
            usize::try_from(concurrent).unwrap_or(usize::MAX).max(100),
        ))
        .max_send_buffer_size(SEND_BUFFER);
    // SETTINGS and PING floods need no setting: h2 answers one at a time
    // and reads no further frame while an answer waits to be written, so
    // a client that sends without reading only stalls its own connection.
    let lengths = Arc::new(Lengths::default());
    let metered = Meter::new(Rewind::new(stream, preread), lengths.clone());
    let io = Lingering::new(metered, settings.lingering);
    let handshake = tokio::time::timeout(context.header_timeout, builder.handshake(io)).await;
    let mut conn: h2::server::Connection<Lingering<Meter<Rewind<S>>>, Bytes> = match handshake {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            log_connection_error(&context.conn, &e);
            return;
        }
        Err(_) => {
            error_log::log(
                ErrorLevel::Info,
                Some(context.conn.id),
                &format!(
                    "client timed out while waiting for the HTTP/2 preface, client: {}, server: {}",
                    context.conn.remote.addr_text(),
                    context.conn.local
                ),
            );
            return;
        }
    };
    let streams = Streams {
        conn: context.conn.clone(),
        tls,
        limits,
        body_window: settings.http2_body_preread_size,
        sending: Sending {
            head_request: false,
            chunk_size: settings.http2_chunk_size,
            send_timeout: context.send_timeout,
        },
        counters: Counters {
            listener: context.listener.clone(),
            resets: Arc::new(AtomicU64::new(0)),
        },
        lengths,
    };
    let mut resets = ResetWatch::new(u64::from(concurrent).max(50) * RESETS_PER_STREAM_SLOT);
    let mut tasks: JoinSet<()> = JoinSet::new();
    let started = Instant::now();
    let mut idle_since = started;
    let mut accepted: u64 = 0;
    // Set once GOAWAY has gone (or the connection is to close): no new
    // stream is taken.
    let mut closing = false;
    // Set while the connection is to close once its streams are done:
    // then GOAWAY goes and the connection closes, as nginx's does when its
    // last stream ends after GOAWAY.
    let mut draining = false;
    // A stop or reload that ends the connection: its configuration's
    // retirement (`worker_shutdown_timeout` run out) ends the streams
    // still in flight, as nginx's shutdown timer closes them.
    let mut retired: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(std::future::pending());
    loop {
        let idle = tasks.is_empty();
        // Before the first stream the head is awaited for
        // client_header_timeout, as nginx sets its first timer; after
        // that an idle connection waits keepalive_timeout.
        let idle_deadline = if accepted == 0 {
            idle_since + context.header_timeout
        } else {
            idle_since + context.keepalive_timeout
        };
        tokio::select! {
            next = next_event(&mut conn, draining && idle) => match next {
                Event::Drained => {
                    // Every stream has finished and its frames are with
                    // the codec: GOAWAY with the last stream taken, then
                    // the close (after what is queued is written).
                    conn.abrupt_shutdown(Reason::NO_ERROR);
                    draining = false;
                }
                Event::Next(Some(Ok((_, mut respond)))) if closing => {
                    // Past nginx's GOAWAY, which h2 can only say later.
                    respond.send_reset(Reason::REFUSED_STREAM);
                }
                Event::Next(Some(Ok((head, respond)))) => {
                    accepted += 1;
                    start_stream(&mut tasks, &mut conn, &streams, &context.generation, head, respond);
                    // nginx's test as each stream starts: keepalive_timeout
                    // 0, keepalive_requests streams (each stream counts as
                    // a request) or keepalive_time since the accept say
                    // GOAWAY, and the streams begun are finished.
                    let last = context.keepalive_timeout.is_zero()
                        || accepted >= settings.keepalive_requests
                        || started.elapsed() > settings.keepalive_time;
                    if last && !closing {
                        closing = true;
                        draining = true;
                    }
                    if resets.over(streams.counters.resets.load(Ordering::Relaxed)) {
                        error_log::log(
                            ErrorLevel::Info,
                            Some(context.conn.id),
                            &format!(
                                "client sent too many stream resets, client: {}, server: {}",
                                context.conn.remote.addr_text(),
                                context.conn.local
                            ),
                        );
                        conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                        closing = true;
                        draining = false;
                    }
                }
                Event::Next(Some(Err(e))) => {
                    log_connection_error(&context.conn, &e);
                    break;
                }
                Event::Next(None) => break,
            },
            Some(_) = tasks.join_next(), if !idle => {
                if tasks.is_empty() {
                    idle_since = Instant::now();
                }
            }
            // keepalive_timeout with no stream open: nginx says GOAWAY
            // and closes at once (once what h2 still holds is written).
            _ = tokio::time::sleep_until(idle_deadline.into()), if idle && !closing => {
                closing = true;
                draining = true;
            }
            // A reload: new streams take the newest configuration, as the
            // next request of a kept-alive HTTP/1 connection does (streams
            // in flight keep the one they started with); a graceful stop,
            // or a configuration that no longer serves the address, ends
            // the connection as nginx's exiting worker does: at once when
            // no stream is open, else with GOAWAY, once the streams in
            // flight finish.
            changed = epoch.changed(), if !closing => {
                epoch.mark_unchanged();
                if changed.is_err() || !context.refresh() {
                    closing = true;
                    draining = true;
                    retired = Box::pin(context.generation.retirement().wait());
                }
            }
            _ = &mut retired => break,
        }
    }
    // The connection is gone: streams still running lose their client.
    tasks.abort_all();
}

/// A stream the client opened: its head and where its answer goes.
type Opened = (Request<RecvStream>, SendResponse<Bytes>);

/// What the connection's driver says next.
// Large, but only ever returned and matched at once, never stored.
#[allow(clippy::large_enum_variant)]
enum Event {
    /// A new stream, an error, or the end of the connection (`None`).
    Next(Option<Result<Opened, h2::Error>>),
    /// While draining: no stream is left in the codec, so every frame of
    /// every stream has gone to the transport's buffer.
    Drained,
}

/// Drives the connection until it has a new stream or ends; with
/// `drain`, also until the codec holds no stream (each poll that writes
/// what the streams queued is followed by a look at what is left, so
/// the last one written ends the wait).
fn next_event<'a, S>(
    conn: &'a mut h2::server::Connection<S, Bytes>,
    drain: bool,
) -> impl Future<Output = Event> + 'a
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    std::future::poll_fn(move |cx| match conn.poll_accept(cx) {
        Poll::Ready(next) => Poll::Ready(Event::Next(next)),
        Poll::Pending if drain && !conn.has_streams() => Poll::Ready(Event::Drained),
        Poll::Pending => Poll::Pending,
    })
}

/// Turns an accepted stream into a request and starts its task, or
/// answers it here when nginx refuses its head.
fn start_stream<S>(
    tasks: &mut JoinSet<()>,
    conn: &mut h2::server::Connection<S, Bytes>,
    streams: &Streams,
    generation: &Arc<Generation>,
    head: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut sending = streams.sending;
    sending.head_request = head.method() == Method::HEAD;
    // Kept for a refusal's `$request` (shared, not copied).
    let (method, target) = (head.method().clone(), head.uri().clone());
    let ignored = |name: &http::HeaderName| {
        error_log::log(
            ErrorLevel::Info,
            Some(streams.conn.id),
            &format!(
                "client sent invalid header: \"{name}\" while processing HTTP/2 connection, client: {}, server: {}",
                streams.conn.remote.addr_text(),
                streams.conn.local
            ),
        );
    };
    let request = match request::convert(
        head,
        streams.tls,
        streams.limits,
        streams.body_window,
        ignored,
    ) {
        Ok(request) => request,
        Err(refusal @ (Refusal::FieldTooLarge | Refusal::HeaderTooLarge)) => {
            log_refusal(&streams.conn, &refusal);
            conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
            return;
        }
        Err(refusal @ Refusal::Status { status, .. }) => {
            log_refusal(&streams.conn, &refusal);
            // A stand-in request takes the refusal through the server's
            // error_page and the access log, as nginx finalizes the
            // stream's request with the status.
            let mut stand_in = Request::new(crate::http::h1::body::RequestBody::Empty);
            *stand_in.version_mut() = http::Version::HTTP_2;
            stand_in
                .extensions_mut()
                .insert(crate::http::server::EarlyRefusal {
                    status,
                    line: format!(
                        "{method} {} HTTP/2.0",
                        target.path_and_query().map_or("/", |p| p.as_str())
                    ),
                });
            stand_in
        }
    };
    let mut request = request;
    if let Some(count) = streams.lengths.of(u32::from(respond.stream_id())) {
        request.extensions_mut().insert(StreamLength(count));
    }
    let task = stream_task(
        request,
        respond,
        streams.conn.clone(),
        generation.clone(),
        sending,
        streams.counters.clone(),
    );
    tasks.spawn(crate::observe::error_log::scoped(None, task));
}

/// Runs the handler for one stream and sends its response; a client that
/// resets the stream first ends the handler (and any upstream request it
/// made) there, as nginx finalizes a reset stream.
async fn stream_task(
    request: Request<crate::http::h1::body::RequestBody>,
    mut respond: SendResponse<Bytes>,
    conn: Arc<ConnInfo>,
    generation: Arc<Generation>,
    sending: Sending,
    counters: Counters,
) {
    let metrics = crate::observe::metrics::global();
    metrics.requests.fetch_add(1, Ordering::Relaxed);
    counters.listener.requests.fetch_add(1, Ordering::Relaxed);
    let _writing = InState::enter(&metrics.in_flight);
    let handler: Pin<Box<dyn Future<Output = _> + Send>> =
        Box::pin(crate::http::server::handle(request, conn, &generation));
    let reset = std::future::poll_fn(|cx| respond.poll_reset(cx));
    let response = tokio::select! {
        response = handler => Some(response),
        _ = reset => None,
    };
    let sent = match response {
        Some(response) => response::send(respond, response, sending).await,
        None => false,
    };
    if !sent {
        counters.resets.fetch_add(1, Ordering::Relaxed);
    }
}

/// The counters a stream task adds to.
#[derive(Clone)]
struct Counters {
    /// The listener's request count.
    listener: Arc<crate::observe::metrics::ListenerMetrics>,
    /// Streams the client reset before their response was sent.
    resets: Arc<AtomicU64>,
}

fn log_connection_error(conn: &ConnInfo, e: &h2::Error) {
    // A client that just went is no error; one that broke the protocol is
    // a client error, which nginx logs at info.
    if e.is_io() {
        return;
    }
    error_log::log(
        ErrorLevel::Info,
        Some(conn.id),
        &format!(
            "client sent invalid HTTP/2 data ({e}) while processing HTTP/2 connection, client: {}, server: {}",
            conn.remote.addr_text(),
            conn.local
        ),
    );
}

fn log_refusal(conn: &ConnInfo, refusal: &Refusal) {
    error_log::log(
        ErrorLevel::Info,
        Some(conn.id),
        &format!(
            "{refusal} while processing HTTP/2 connection, client: {}, server: {}",
            conn.remote.addr_text(),
            conn.local
        ),
    );
}
