//! Client connections: accept, hand each to the HTTP/1 driver (http/h1),
//! route each request to its server and location, answer or proxy, log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::h1::body::RequestBody;
use arc_swap::ArcSwap;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, Version};
use http_body_util::BodyExt;

use crate::transport::accept::{Accepted, Acceptor};
use crate::upstream::addr::PeerAddr;
use tokio::sync::{watch, Semaphore};

use super::body::{LoggedBody, ResponseBody};
use super::exchange::{ConnInfo, Exchange};
use super::generation::Generation;
use super::route::{normalize_uri_with, select_location};
use super::{dispatch, proxy, respond};
use crate::observe::error_log;

/// What every connection task shares.
pub struct Shared {
    /// The configuration in force for new connections.
    pub current: ArcSwap<Generation>,
    /// Bumped on every reload and on graceful shutdown: a connection that
    /// sees it change takes the newest configuration before its next
    /// request (a reload closes nothing), or closes if the process is
    /// stopping or its address is no longer served.
    pub epoch: watch::Receiver<u64>,
    /// Set when the process is shutting down gracefully: accept loops stop.
    pub stopping: watch::Receiver<bool>,
    /// Connection serial numbers.
    pub next_connection: AtomicU64,
    /// The cap on open client connections (`worker_connections` x workers).
    pub connections: Arc<Semaphore>,
}

/// Accepts connections on `listener` until shutdown.
pub async fn accept_loop(listener: Acceptor, shared: Arc<Shared>) {
    let mut stopping = shared.stopping.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopping.wait_for(|s| *s) => return,
        };
        let accepted = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: say so and breathe, as nginx does.
                error_log::log(
                    crate::observe::ErrorLevel::Alert,
                    None,
                    &format!("accept() failed ({})", error_log::os_error(&e)),
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = Slot::admit(&shared) else {
            drop(accepted);
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(error_log::scoped(
            None,
            serve_connection(accepted, shared, slot),
        ));
    }
}

/// A connection's place under `worker_connections`: held wherever the
/// connection is (its task, or the parking lot), given back when it closes.
pub struct Slot {
    /// Held, never read: dropping it frees the place.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Slot {
    /// A place taken from `worker_connections` by a connection (http) or a
    /// session (stream); counted as active until dropped.
    pub fn new(permit: tokio::sync::OwnedSemaphorePermit) -> Slot {
        Slot { _permit: permit }
    }

    /// Admits a new connection or session: counts it as accepted, takes its
    /// place from `worker_connections` (none left: nginx's alert, and
    /// `None`: the caller closes it), then counts it as handled and active.
    pub fn admit(shared: &Shared) -> Option<Slot> {
        let metrics = crate::observe::metrics::global();
        metrics.accepted.fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            error_log::log(
                crate::observe::ErrorLevel::Alert,
                None,
                "worker_connections are not enough, closing a new connection",
            );
            return None;
        };
        metrics.handled.fetch_add(1, Ordering::Relaxed);
        metrics.active.fetch_add(1, Ordering::Relaxed);
        Some(Slot::new(permit))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        crate::observe::metrics::global()
            .active
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a connection carries from request to request, wherever it waits.
pub struct ConnState {
    /// What the driver needs besides the socket.
    pub context: super::h1::conn::ConnectionContext,
    /// Reloads and graceful stops.
    pub epoch: watch::Receiver<u64>,
    /// Its place under `worker_connections`.
    pub slot: Slot,
}

async fn serve_connection(connection: Accepted, shared: Arc<Shared>, slot: Slot) {
    // nginx's c->start_time, taken as the connection is accepted (before
    // any TLS handshake).
    let accepted = std::time::Instant::now();
    let Accepted {
        stream,
        remote,
        local,
    } = connection;
    let generation = shared.current.load_full();
    let id = shared.next_connection.fetch_add(1, Ordering::Relaxed) + 1;
    let listener_metrics = crate::observe::metrics::global().listener(&local);
    let Some(settings) = super::h1::conn::address_settings(&generation, &local) else {
        return;
    };
    listener_metrics.connections.fetch_add(1, Ordering::Relaxed);
    // nginx sets TCP_NODELAY on IP connections only.
    if settings.tcp_nodelay && matches!(local, PeerAddr::Inet(_)) {
        let _ = stream.set_nodelay(true);
    }
    let mut epoch = shared.epoch.clone();
    epoch.mark_unchanged();
    let peer = super::tls::Peer { id, remote, local };
    let timeout = settings.client_header_timeout;
    let mut stream = stream;
    // `listen ... proxy_protocol`: the header comes first, before any TLS.
    let proxied = if generation.is_proxy_protocol(&peer.local) {
        match proxy_protocol_header(&mut stream, &peer, timeout).await {
            Some(header) => Some(header),
            None => return,
        }
    } else {
        None
    };
    let tls = generation.is_ssl(&peer.local);
    let plain = !tls
        || match super::tls::first_byte(&stream, &peer, timeout).await {
            super::tls::FirstByte::Tls => false,
            // Served as HTTP: `handle` answers nginx's 497.
            super::tls::FirstByte::Plain => true,
            super::tls::FirstByte::Gone => return,
        };
    if !plain {
        let Some((tls, handshake)) = super::tls::accept(stream, &generation, &peer, timeout).await
        else {
            return;
        };
        let conn = connection_info(&peer, accepted, Some(handshake), proxied);
        let Some(context) = super::h1::conn::ConnectionContext::new(
            shared.clone(),
            generation,
            conn,
            listener_metrics,
        ) else {
            return;
        };
        let state = ConnState {
            context,
            epoch,
            slot,
        };
        if state
            .context
            .conn
            .tls
            .as_ref()
            .and_then(|h| h.alpn.as_deref())
            == Some("h2")
        {
            super::h2::serve(tls, bytes::Bytes::new(), state).await;
            return;
        }
        // The handshake took the first wait's time: the head is due
        // within `client_header_timeout` of now.
        resume(tls, state, super::h1::conn::Waiting::accepted()).await;
        return;
    }
    let conn = connection_info(&peer, accepted, None, proxied);
    let Some(context) =
        super::h1::conn::ConnectionContext::new(shared.clone(), generation, conn, listener_metrics)
    else {
        return;
    };
    let state = ConnState {
        context,
        epoch,
        slot,
    };
    resume(stream, state, super::h1::conn::Waiting::accepted()).await;
}

fn connection_info(
    peer: &super::tls::Peer,
    accepted: std::time::Instant,
    tls: Option<crate::transport::tls_server::Handshake>,
    proxy_protocol: Option<crate::transport::proxy_protocol::Header>,
) -> Arc<ConnInfo> {
    let (addrs, tlvs) = proxy_protocol.map_or((None, None), |h| (h.addrs, h.tlvs));
    Arc::new(ConnInfo {
        id: peer.id,
        remote: peer.remote.clone(),
        local: peer.local.clone(),
        requests: AtomicU64::new(0),
        tls,
        accepted,
        proxy_protocol: addrs,
        proxy_protocol_tlvs: tlvs,
    })
}

/// Reads the PROXY protocol header a `listen ... proxy_protocol`
/// connection starts with, within `client_header_timeout` (nginx reads it
/// from the first bytes that arrive), or `None` when the connection is to
/// be closed, after nginx's error-log line.
async fn proxy_protocol_header(
    stream: &mut tokio::net::TcpStream,
    peer: &super::tls::Peer,
    timeout: std::time::Duration,
) -> Option<crate::transport::proxy_protocol::Header> {
    use crate::observe::ErrorLevel;
    use crate::transport::proxy_protocol::{read, ReadError};
    let context = format!(
        " while reading PROXY protocol, client: {}, server: {}",
        peer.remote.addr_text(),
        peer.local
    );
    let (level, words) = match tokio::time::timeout(timeout, read(stream)).await {
        Ok(Ok(header)) => return Some(header),
        Ok(Err(e @ ReadError::Header(_))) => (ErrorLevel::Error, e.to_string()),
        Ok(Err(e @ ReadError::Io(_))) => (ErrorLevel::Info, e.to_string()),
        Err(_) => (
            ErrorLevel::Info,
            "client timed out (110: Connection timed out)".to_string(),
        ),
    };
    error_log::log(level, Some(peer.id), &format!("{words}{context}"));
    None
}

/// Serves a connection from where it stands: new, or back from the
/// parking lot with bytes to read.
pub async fn resume<S: crate::transport::client::ClientStream>(
    stream: S,
    mut state: ConnState,
    waiting: super::h1::conn::Waiting,
) {
    use super::h1::conn::{serve, Outcome};
    match serve(stream, &mut state.context, &mut state.epoch, waiting).await {
        Outcome::Done => {}
        Outcome::Park(stream, waiting) => {
            if let Ok(socket) = stream.into_plain_socket() {
                super::h1::park::park(socket, state, waiting);
            }
        }
        Outcome::H2(stream, preread) => super::h2::serve(stream, preread, state).await,
    }
}

/// The codec's head limits from `large_client_header_buffers number size`:
/// a request line or header line over `size` is refused, and so is a head
/// over `number * size` (nginx has no count of header lines of its own:
/// the codec's most lines is the cap); and which header names it takes
/// (`ignore_invalid_headers`, `underscores_in_headers`).
pub fn request_limits(settings: &crate::config::model::Settings) -> ::h1::RequestLimits {
    let (number, size) = settings.large_client_header_buffers;
    let line = usize::try_from(size).unwrap_or(usize::MAX);
    ::h1::RequestLimits {
        line,
        total: line.saturating_mul(usize::try_from(number).unwrap_or(usize::MAX)),
        max_headers: ::h1::MAX_HEADER_LINES,
        ignore_invalid_headers: settings.ignore_invalid_headers,
        underscores_in_headers: settings.underscores_in_headers,
    }
}

/// nginx's info line for a request header line `ignore_invalid_headers`
/// left out.
pub fn ignored_header(line: &[u8], conn: &ConnInfo) {
    error_log::log(
        crate::observe::ErrorLevel::Info,
        Some(conn.id),
        &format!(
            "client sent invalid header line: \"{}\" while reading client request headers, client: {}, server: {}",
            String::from_utf8_lossy(line),
            conn.remote.addr_text(),
            conn.local
        ),
    );
}

/// Logs a head nginx refuses at `info`, in nginx's words (nginx logs
/// client errors there).
pub fn log_refusal(error: &::h1::RequestError, conn: &ConnInfo) {
    let phase = match error {
        ::h1::RequestError::InvalidRequestLine
        | ::h1::RequestError::UnsupportedVersion
        | ::h1::RequestError::RequestLineTooLong => "reading client request line",
        _ => "reading client request headers",
    };
    error_log::log(
        crate::observe::ErrorLevel::Info,
        Some(conn.id),
        &format!(
            "{error} while {phase}, client: {}, server: {}",
            conn.remote.addr_text(),
            conn.local
        ),
    );
}

/// A head the HTTP/1 driver refused before it was a request (a bad or too
/// long request line, headers too large, a version it does not speak):
/// carried on a stand-in request so that the refusal goes through the
/// default server's `error_page` and the access log, as nginx finalizes
/// such a request (its refusal line is logged already).
#[derive(Debug, Clone)]
pub struct EarlyRefusal {
    /// nginx's status for it (494: headers too large, answered as 400).
    pub status: u16,
    /// The request line as far as it came, for `$request`.
    pub line: String,
}

/// Serves one request.
pub async fn handle(
    request: Request<RequestBody>,
    conn: Arc<ConnInfo>,
    generation: &Arc<Generation>,
) -> Response<ResponseBody> {
    conn.requests.fetch_add(1, Ordering::Relaxed);
    let servers = generation.servers_for(&conn.local);
    // nginx's order: the request line's host, then the Host header.
    let host = request.uri().host().or_else(|| {
        request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    });
    // No Host at all (HTTP/1.0) looks for the empty name, `server_name ""`.
    let named = Some(host.unwrap_or(""));
    let Some((server, by_regex)) = super::route::select_server_by_name(servers, named) else {
        return respond::error(500, true);
    };
    // The server's error_log takes the connection's lines, as nginx's
    // virtual server does (none: the main one).
    error_log::use_context(generation.error_log(&server.settings));
    // Client certificates: 421, 495 or 496 as nginx refuses them.
    let ssl_refusal = conn
        .tls
        .as_ref()
        .and_then(|h| super::tls::refusal(h, server, host));
    // An HTTP/2 stream whose Host selects a server with `http2 off` on an
    // address whose `listen` does not say `http2`: nginx's 421
    // (ngx_http_v2_run_request).
    let h2_refused = request.version() == Version::HTTP_2
        && !server.settings.http2
        && !super::h2::listen_http2(generation, &conn.local);
    let uri = normalize_uri_with(request.uri().path(), server.settings.merge_slashes);
    let normalized = uri.is_some();
    let (mut parts, body) = request.into_parts();
    if parts
        .extensions
        .get::<super::h1::upgrade::ClientUpgrade>()
        .is_some()
    {
        // A tunnel this request may start ends with this configuration.
        parts.extensions.insert(generation.retirement());
    }
    let early = parts.extensions.remove::<EarlyRefusal>();
    let rejected = match &early {
        // Logged by the driver as it refused the head.
        Some(refusal) => Some(super::guard::Rejection {
            status: refusal.status,
            message: "",
        }),
        None => super::guard::check_request(&parts).err(),
    };
    // Plain HTTP on a TLS address: nginx's 497 once the request is read.
    let plain_on_ssl = conn.tls.is_none() && generation.is_ssl(&conn.local);

    // nginx finalizes every refused head once its request exists (a bad
    // Host, method or target, TRACE, a head the driver refused), so the
    // server's error_page applies to each (over HTTP/2, an `error_page 400`
    // that says `return 444` resets the stream).
    let headers = std::mem::take(&mut parts.headers);
    let mut ex = Box::new(Exchange::new(
        conn,
        &parts,
        headers,
        // A path that does not normalize (`/../x`) leaves `$uri` found
        // empty, as nginx's failed ngx_http_parse_complex_uri does.
        uri.unwrap_or_default(),
    ));
    ex.server_name = server.primary_name.clone();
    // A regex name's captures are variables ($1.. and named ones), as
    // nginx's ngx_http_find_virtual_server sets them.
    if let Some(by) = by_regex {
        super::rewrite::capture(&mut ex, by.re, &by.host);
    }
    ex.body_read = body.read_count();
    if !normalized {
        ex.bad_uri = true;
        ex.args = None;
    }
    if let Some(refusal) = early {
        ex.request_line_as_sent = Some(refusal.line);
    }
    let request = Request::from_parts(parts, body);
    // Limits come from the location the URI selects before any rewrite.
    let location = if normalized {
        select_location(&server.locations, &ex.uri)
    } else {
        None
    };
    let mut settings = location
        .map(|l| l.settings.clone())
        .unwrap_or_else(|| server.settings.clone());
    let version = request.version();
    // A refused request's body is unread and its framing untrusted: close.
    let close = wants_close(&ex.headers, version)
        || rejected.is_some()
        || plain_on_ssl
        // nginx ends the connection after a certificate refusal.
        || matches!(ssl_refusal, Some((495 | 496, _)))
        || keepalive_ends(&settings, &ex);
    let first_settings = settings.clone();

    let mut response = if !normalized && rejected.is_none() {
        respond::error(400, settings.server_tokens)
    } else {
        let (reply, answered) = if let Some(rejection) = &rejected {
            if !rejection.message.is_empty() {
                let context = proxy::log_context(&ex, None);
                error_log::log(
                    crate::observe::ErrorLevel::Info,
                    Some(ex.conn.id),
                    &format!("{}{context}", rejection.message),
                );
            }
            let settings = server.settings.clone();
            dispatch::respond_status(rejection.status, settings, server, &mut ex, generation).await
        } else if let Some((code, message)) = ssl_refusal {
            error_log::log(
                crate::observe::ErrorLevel::Info,
                Some(ex.conn.id),
                &format!("{message}{}", proxy::log_context(&ex, None)),
            );
            dispatch::respond_status(code, settings.clone(), server, &mut ex, generation).await
        } else if h2_refused {
            error_log::log(
                crate::observe::ErrorLevel::Info,
                Some(ex.conn.id),
                &format!(
                    "client attempted to request the server name for which the negotiated protocol is disabled{}",
                    proxy::log_context(&ex, None)
                ),
            );
            dispatch::respond_status(421, settings.clone(), server, &mut ex, generation).await
        } else if plain_on_ssl {
            error_log::log(
                crate::observe::ErrorLevel::Info,
                Some(ex.conn.id),
                &format!(
                    "client sent plain HTTP request to HTTPS port{}",
                    proxy::log_context(&ex, None)
                ),
            );
            dispatch::respond_status(497, settings.clone(), server, &mut ex, generation).await
        } else if let Some(too_large) = body_too_large(&ex.headers, settings.client_max_body_size) {
            error_log::error(
                Some(ex.conn.id),
                &format!(
                    "client intended to send too large body: {too_large} bytes{}",
                    proxy::log_context(&ex, None)
                ),
            );
            dispatch::respond_status(413, settings.clone(), server, &mut ex, generation).await
        } else {
            dispatch::respond(request, server, &mut ex, generation).await
        };
        settings = answered;
        match reply {
            dispatch::Reply::Response(r) => r,
            dispatch::Reply::Close(code) => {
                // nginx closes without a response; the closest hyper offers is
                // an aborted body, which resets the connection.
                ex.status = code;
                return aborted(ex, generation.access_log(&settings));
            }
        }
    };
    // nginx ends the connection after these, whatever the client asked;
    // and the answering location's keep-alive settings are checked again,
    // as ngx_http_update_location_config checks them at each location.
    let coding = body_coding(&response, &settings, &ex, version);
    let close = close
        || matches!(response.status().as_u16(), 408 | 413)
        // chunked_transfer_encoding off: a body of unknown length ends
        // with the connection (nginx's r->keepalive = 0).
        || coding.until_close
        || (!Arc::ptr_eq(&settings, &first_settings) && keepalive_ends(&settings, &ex));
    finish_headers(&mut response, &settings, close);
    // How the connection lingers if it closes after this response is
    // the answering location's to say (ngx_http_finalize_connection reads
    // the request's location configuration).
    response
        .extensions_mut()
        .insert(super::h1::conn::AfterResponse {
            lingering: settings.lingering,
            keepalive_timeout: settings.keepalive_timeout,
        });
    ex.status = response.status().as_u16();
    if coding.clear_length {
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    if !settings.chunked_transfer_encoding || !coding.trailers.is_empty() {
        // The trailers' names go out as the configuration spells them.
        let mut trailer_case = super::h1::HeaderCase::default();
        for line in &coding.trailers {
            if let Ok(name) = HeaderName::from_bytes(line.name.as_bytes()) {
                trailer_case.note(&name, line.name.as_bytes());
            }
        }
        response
            .extensions_mut()
            .insert(super::h1::response::ChunkedCoding {
                off: !settings.chunked_transfer_encoding,
                trailer_case,
            });
    }
    let log = generation.access_log(&settings);
    if log.is_none() && coding.trailers.is_empty() {
        return response;
    }
    if log.is_some() {
        // Only a log line reads these; without one they are not made.
        ex.header_bytes = estimate_header_bytes(&response);
    }
    if log.as_ref().is_some_and(|l| l.reads_sent_headers()) || !coding.trailers.is_empty() {
        ex.sent_headers = response.headers().clone();
    }
    let tunnel = response
        .extensions()
        .get::<super::body::TunnelLog>()
        .cloned();
    let (parts, body) = response.into_parts();
    let on_error: Option<super::body::OnBodyError> =
        Some(Box::new(|ex: &Exchange, e: &super::body::BoxError| {
            if ex.upstream.is_empty() {
                return;
            }
            // An error that says where it happened keeps its words.
            let e = e.to_string();
            let place = if e.contains(" while ") {
                ""
            } else {
                " while sending to client"
            };
            error_log::error(
                Some(ex.conn.id),
                &format!("{e}{place}{}", proxy::log_context(ex, None)),
            );
        }));
    Response::from_parts(
        parts,
        LoggedBody::new(body, ex, log, on_error)
            .logged_by(tunnel)
            .with_trailers(coding.trailers)
            .boxed_unsync(),
    )
}

/// How a response's body is delimited, as nginx's headers and chunked
/// filters decide it.
#[derive(Default)]
struct BodyCoding {
    /// The `add_trailer` lines that apply (none: the body has no
    /// trailers).
    trailers: Vec<crate::config::model::AddHeader>,
    /// Trailers are expected and the body goes out chunked (HTTP/1.1) or
    /// on HTTP/2: nginx clears the Content-Length.
    clear_length: bool,
    /// `chunked_transfer_encoding off` with a body of unknown length on
    /// HTTP/1.1: delimited by the close.
    until_close: bool,
}

fn body_coding(
    response: &Response<ResponseBody>,
    settings: &crate::config::model::Settings,
    ex: &Exchange,
    version: Version,
) -> BodyCoding {
    // The common case, every response: no trailers, chunked coding on.
    if settings.add_trailers.is_empty() && settings.chunked_transfer_encoding {
        return BodyCoding::default();
    }
    let status = response.status();
    // nginx's chunked filter leaves these alone; they carry no body, so
    // no trailers either (the trailers filter skips a header-only one).
    let bodiless = status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED
        || ex.method == http::Method::HEAD;
    let http11 = version == Version::HTTP_11 || version == Version::HTTP_2;
    let chunks = http11 && settings.chunked_transfer_encoding;
    // HTTP/1.1 writes trailers only in a chunked body; HTTP/2 has frames.
    let trailing = chunks || version == Version::HTTP_2;
    let trailers: Vec<_> = if bodiless || !trailing || settings.add_trailers.is_empty() {
        Vec::new()
    } else {
        let status_applies = super::headers::applies(status.as_u16());
        settings
            .add_trailers
            .iter()
            .filter(|t| status_applies || t.always)
            .cloned()
            .collect()
    };
    // Looked at only with chunked coding off: every response comes here.
    let until_close = !settings.chunked_transfer_encoding
        && !bodiless
        && version == Version::HTTP_11
        && response.headers().get(header::CONTENT_LENGTH).is_none()
        && http_body::Body::size_hint(response.body())
            .exact()
            .is_none();
    BodyCoding {
        clear_length: chunks && !trailers.is_empty(),
        until_close,
        trailers,
    }
}

fn aborted(ex: Box<Exchange>, log: Option<Arc<super::log::AccessLog>>) -> Response<ResponseBody> {
    if let Some(log) = log {
        log.write(&*ex);
    }
    Response::new(Abort.boxed_unsync())
}

/// A body that fails at once: hyper then closes the connection without a
/// complete response, which is what `return 444` means.
struct Abort;

impl http_body::Body for Abort {
    type Data = bytes::Bytes;
    type Error = super::body::BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Ready(Some(Err("connection closed by return 444".into())))
    }
}

fn wants_close(headers: &http::HeaderMap, version: Version) -> bool {
    let connection = headers
        .get(header::CONNECTION)
        .filter(|v| v.to_str().is_ok())
        .map(|v| v.as_bytes());
    let says = |word: &[u8]| {
        connection.is_some_and(|c| c.windows(word.len()).any(|w| w.eq_ignore_ascii_case(word)))
    };
    match version {
        Version::HTTP_10 => !says(b"keep-alive"),
        _ => says(b"close"),
    }
}

fn body_too_large(headers: &http::HeaderMap, limit: u64) -> Option<u64> {
    if limit == 0 {
        return None;
    }
    let length = ::h1::content_length(headers.get(header::CONTENT_LENGTH)?.as_bytes()).ok()?;
    (length > limit).then_some(length)
}

/// Whether the location's keep-alive settings end the connection after
/// this request: `keepalive_timeout 0`, `keepalive_requests` reached,
/// `keepalive_time` passed since the accept, or `keepalive_disable`.
fn keepalive_ends(settings: &crate::config::model::Settings, ex: &Exchange) -> bool {
    settings.keepalive_timeout.is_zero()
        || ex.conn.requests.load(Ordering::Relaxed) >= settings.keepalive_requests
        || ex.conn.accepted.elapsed() > settings.keepalive_time
        || super::keepalive::disabled(&settings.keepalive_disable, &ex.method, &ex.headers)
}

fn finish_headers(
    response: &mut Response<ResponseBody>,
    settings: &crate::config::model::Settings,
    close: bool,
) {
    let switching = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    let server = if settings.server_tokens {
        concat!("switchyard/", env!("CARGO_PKG_VERSION"))
    } else {
        "switchyard"
    };
    // A proxied `Server` is there only with `proxy_pass_header Server`.
    headers
        .entry(header::SERVER)
        .or_insert(HeaderValue::from_static(server));
    if switching {
        // `Connection: upgrade` was set by the proxy.
    } else if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    } else {
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        // `keepalive_timeout TIME HEADER`: how long the connection idles.
        if let Some(seconds) = settings.keepalive_header.filter(|s| *s > 0) {
            if let Ok(v) = HeaderValue::from_str(&format!("timeout={seconds}")) {
                headers.insert(HeaderName::from_static("keep-alive"), v);
            }
        }
    }
}

fn estimate_header_bytes(response: &Response<ResponseBody>) -> u64 {
    let status_line = response
        .extensions()
        .get::<super::h1::response::StatusLine>();
    // The status line, and the Date line the driver adds.
    let mut n = super::h1::response::status_line_len(response.status(), status_line) + 37;
    for (name, value) in response.headers() {
        n += name.as_str().len() + value.len() + 4;
    }
    // The driver writes the Content-Length of a body whose size is known
    // (h1/response.rs), where a body may be.
    let status = response.status();
    let no_body = status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED;
    if !no_body && !response.headers().contains_key(header::CONTENT_LENGTH) {
        if let Some(len) = http_body::Body::size_hint(response.body()).exact() {
            n += "Content-Length: \r\n".len() + len.to_string().len();
        }
    }
    (n + 2) as u64
}
