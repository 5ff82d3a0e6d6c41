//! `proxy_pass`: pick a peer, connect, send the request up, stream the
//! response down, with nginx's headers, timeouts, retries and error lines.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::{empty, full, BoxError, ResponseBody, TimedBody};
use super::exchange::{Exchange, UpstreamTry};
use super::respond;
use crate::config::model::{LocationConfig, ProxyPass, Settings};
use crate::observe::error_log;
use crate::upstream::{Picked, Upstream};

/// Client request headers nginx never passes up as they are: its own
/// defaults replace them (`Host`, `Connection`, the body framing) or drop
/// them (`Keep-Alive`, `TE`, `Expect`, `Upgrade`).
const NOT_PASSED: [&str; 8] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "te",
    "expect",
    "upgrade",
];

/// Upstream response headers nginx does not pass down by default
/// (`proxy_hide_header`'s defaults and the hop-by-hop ones).
const HIDDEN: [&str; 12] = [
    "date",
    "server",
    "x-pad",
    "x-accel-expires",
    "x-accel-redirect",
    "x-accel-limit-rate",
    "x-accel-buffering",
    "x-accel-charset",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
];

/// The request body as it goes up: kept whole when small or when an
/// HTTP/1.0 upstream needs a length, so that a retry can resend it.
enum UpBody {
    Empty,
    Buffered(Bytes),
    Stream(Incoming),
}

/// Why an attempt failed, for the error log and the status.
enum Failure {
    Connect(std::io::Error),
    ConnectTimeout,
    HeaderTimeout,
    Protocol(hyper::Error),
}

impl Failure {
    fn status(&self) -> u16 {
        match self {
            Failure::ConnectTimeout | Failure::HeaderTimeout => 504,
            _ => 502,
        }
    }

    fn describe(&self) -> String {
        match self {
            Failure::Connect(e) => format!(
                "connect() failed ({}) while connecting to upstream",
                error_log::os_error(e)
            ),
            Failure::ConnectTimeout => "upstream timed out (110: Connection timed out) while connecting to upstream".into(),
            Failure::HeaderTimeout => {
                "upstream timed out (110: Connection timed out) while reading response header from upstream".into()
            }
            Failure::Protocol(e) if e.is_incomplete_message() => {
                "upstream prematurely closed connection while reading response header from upstream".into()
            }
            Failure::Protocol(e) if io_source(e).is_some_and(|io| io.raw_os_error().is_some()) => format!(
                "recv() failed ({}) while reading response header from upstream",
                io_source(e).map(error_log::os_error).unwrap_or_default()
            ),
            Failure::Protocol(e) if e.is_parse() => {
                "upstream sent invalid header while reading response header from upstream".into()
            }
            Failure::Protocol(e) => format!("upstream error ({e}) while reading response header from upstream"),
        }
    }
}

/// The error-log context nginx appends: `, client: .., server: .., request: "..", upstream: "..", host: ".."`.
pub fn log_context(ex: &Exchange, upstream_url: Option<&str>) -> String {
    let mut s = format!(
        ", client: {}, server: {}, request: \"{}\"",
        ex.conn.remote.ip(),
        ex.server_name,
        ex.request_line()
    );
    if let Some(u) = upstream_url {
        s.push_str(&format!(", upstream: \"{u}\""));
    }
    if let Some(h) = ex.headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        s.push_str(&format!(", host: \"{h}\""));
    }
    s
}

/// The URI sent upstream: the client's URI as sent when `proxy_pass` has
/// no URI part; else the location prefix replaced by that part.
fn upstream_uri(pass: &ProxyPass, ex: &Exchange) -> String {
    match (&pass.uri, &pass.location_prefix) {
        (Some(uri), Some(prefix)) if ex.uri.starts_with(prefix.as_str()) => {
            let mut out = uri.clone();
            out.push_str(&escape_path(&ex.uri[prefix.len()..]));
            if let Some(args) = &ex.args {
                out.push('?');
                out.push_str(args);
            }
            out
        }
        _ => ex.raw_uri.clone(),
    }
}

/// Re-escapes a decoded path the way nginx does before sending it up.
fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn build_headers(
    settings: &Settings,
    ex: &Exchange,
    client: &HeaderMap,
    body_len: Option<u64>,
) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(client.len() + 4);
    for (name, value) in &settings.proxy_set_headers {
        let rendered = value.render(ex);
        if rendered.is_empty() {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&rendered),
        ) {
            headers.append(n, v);
        }
    }
    for (name, value) in client {
        let n = name.as_str();
        if NOT_PASSED.contains(&n)
            || settings
                .proxy_set_headers
                .iter()
                .any(|(s, _)| s.eq_ignore_ascii_case(n))
        {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    if let Some(len) = body_len {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    headers
}

/// A peer in use: reports success or failure to the balancer when the
/// response is over (least_conn counts it until then).
struct PeerGuard {
    upstream: Arc<Upstream>,
    picked: Picked,
    success: bool,
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        self.upstream.finish(self.picked.id, self.success);
    }
}

/// Serves a request through `proxy_pass`.
pub async fn proxy(
    request: Request<Incoming>,
    location: &LocationConfig,
    pass: &ProxyPass,
    upstream: Arc<Upstream>,
    ex: &mut Exchange,
) -> Response<ResponseBody> {
    let settings = &location.settings;
    ex.proxy_host = pass.proxy_host.clone();
    ex.proxy_port = upstream
        .config
        .servers
        .first()
        .map(|s| s.port)
        .unwrap_or(80);
    let (parts, incoming) = request.into_parts();
    let http11 = settings.proxy_http_version_11;

    let declared_len = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let chunked = parts.headers.contains_key(header::TRANSFER_ENCODING);
    let mut body = if !chunked && declared_len.unwrap_or(0) == 0 {
        UpBody::Empty
    } else if chunked && !http11 {
        // An HTTP/1.0 upstream needs a Content-Length: read the body first,
        // as nginx does with proxy_request_buffering.
        let limit = settings.client_max_body_size;
        match read_limited(incoming, limit).await {
            Ok(bytes) => UpBody::Buffered(bytes),
            Err(status) => return respond::error(status, settings.server_tokens),
        }
    } else {
        UpBody::Stream(incoming)
    };
    let body_len = match &body {
        UpBody::Empty => declared_len.filter(|_| !chunked),
        UpBody::Buffered(b) => Some(b.len() as u64),
        UpBody::Stream(_) => declared_len.filter(|_| !chunked),
    };
    let uri = upstream_uri(pass, ex);
    let headers = build_headers(settings, ex, &parts.headers, body_len);
    let hash_key: Vec<u8> = match (&upstream.config.method, &upstream.config.hash_key) {
        (balance::Method::IpHash, _) => match ex.conn.remote.ip() {
            std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
            std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
        },
        (_, Some(key)) => key.render(ex).into_bytes(),
        _ => Vec::new(),
    };

    let Some(mut attempt) = upstream.start() else {
        return no_live(ex, &upstream, settings);
    };
    loop {
        let Some(picked) = upstream.pick(&mut attempt, &hash_key) else {
            return no_live(ex, &upstream, settings);
        };
        let url = format!("http://{}{}", picked.addr, uri);
        let started = Instant::now();
        ex.upstream.push(UpstreamTry {
            addr: picked.addr.to_string(),
            ..Default::default()
        });
        let mut guard = PeerGuard {
            upstream: upstream.clone(),
            picked: picked.clone(),
            success: false,
        };
        let stream = match tokio::time::timeout(
            settings.proxy_connect_timeout,
            TcpStream::connect(picked.addr),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let f = Failure::Connect(e);
                record_failure(ex, &f, &url, started);
                drop(guard);
                if attempt.tries_left() > 0 {
                    continue;
                }
                return respond::error(f.status(), settings.server_tokens);
            }
            Err(_) => {
                let f = Failure::ConnectTimeout;
                record_failure(ex, &f, &url, started);
                drop(guard);
                if attempt.tries_left() > 0 {
                    continue;
                }
                return respond::error(f.status(), settings.server_tokens);
            }
        };
        let _ = stream.set_nodelay(true);
        if let Some(t) = ex.upstream.last_mut() {
            t.connect = Some(started.elapsed().as_secs_f64());
        }
        let handshake = hyper::client::conn::http1::Builder::new()
            .title_case_headers(true)
            .handshake::<_, ResponseBody>(TokioIo::new(stream))
            .await;
        let (mut sender, connection) = match handshake {
            Ok(pair) => pair,
            Err(e) => {
                let f = Failure::Protocol(e);
                record_failure(ex, &f, &url, started);
                return respond::error(f.status(), settings.server_tokens);
            }
        };
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let (up_body, retry_body) = match std::mem::replace(&mut body, UpBody::Empty) {
            UpBody::Empty => (empty(), Some(UpBody::Empty)),
            UpBody::Buffered(b) => (full(b.clone()), Some(UpBody::Buffered(b))),
            UpBody::Stream(s) => (
                client_body(
                    s,
                    settings.client_max_body_size,
                    settings.client_body_timeout,
                ),
                None,
            ),
        };
        let mut up_request = Request::new(up_body);
        *up_request.method_mut() = parts.method.clone();
        *up_request.uri_mut() = match uri.parse() {
            Ok(u) => u,
            Err(_) => return respond::error(400, settings.server_tokens),
        };
        *up_request.version_mut() = if http11 {
            Version::HTTP_11
        } else {
            Version::HTTP_10
        };
        *up_request.headers_mut() = headers.clone();
        let response =
            tokio::time::timeout(settings.proxy_read_timeout, sender.send_request(up_request))
                .await;
        let failure = match response {
            Ok(Ok(response)) => {
                let status = response.status().as_u16();
                if let Some(t) = ex.upstream.last_mut() {
                    t.status = Some(status);
                    t.header = Some(started.elapsed().as_secs_f64());
                    t.response = t.header;
                }
                guard.success = true;
                return downstream_response(response, settings, ex, guard);
            }
            Ok(Err(e)) => {
                if let Some((status, why)) = client_body_failure(&e) {
                    // The client's body failed, not the peer: no retry, nginx's status.
                    guard.success = true;
                    error_log::log(
                        crate::observe::ErrorLevel::Info,
                        Some(ex.conn.id),
                        &format!("{why}{}", log_context(ex, Some(&url))),
                    );
                    return respond::error(status, settings.server_tokens);
                }
                Failure::Protocol(e)
            }
            Err(_) => Failure::HeaderTimeout,
        };
        record_failure(ex, &failure, &url, started);
        drop(guard);
        match retry_body {
            Some(b) if attempt.tries_left() > 0 => body = b,
            _ => return respond::error(failure.status(), settings.server_tokens),
        }
    }
}

fn record_failure(ex: &mut Exchange, failure: &Failure, url: &str, started: Instant) {
    if let Some(t) = ex.upstream.last_mut() {
        t.response = Some(started.elapsed().as_secs_f64());
        if t.status.is_none() {
            t.status = Some(failure.status());
        }
    }
    let level = match failure {
        Failure::ConnectTimeout | Failure::HeaderTimeout => crate::observe::ErrorLevel::Error,
        _ => crate::observe::ErrorLevel::Error,
    };
    error_log::log(
        level,
        Some(ex.conn.id),
        &format!("{}{}", failure.describe(), log_context(ex, Some(url))),
    );
}

fn no_live(ex: &mut Exchange, upstream: &Upstream, settings: &Settings) -> Response<ResponseBody> {
    error_log::error(
        Some(ex.conn.id),
        &format!(
            "no live upstreams while connecting to upstream{}",
            log_context(
                ex,
                Some(&format!("http://{}{}", upstream.config.name, ex.raw_uri))
            )
        ),
    );
    ex.upstream.push(UpstreamTry {
        addr: upstream.config.name.clone(),
        status: Some(502),
        ..Default::default()
    });
    respond::error(502, settings.server_tokens)
}

fn downstream_response(
    response: Response<Incoming>,
    settings: &Settings,
    ex: &mut Exchange,
    guard: PeerGuard,
) -> Response<ResponseBody> {
    let (parts, body) = response.into_parts();
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 2);
    for (name, value) in &parts.headers {
        if HIDDEN.contains(&name.as_str()) {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    ex.upstream_headers = parts.headers;
    let timed = TimedBody::new(body, settings.proxy_read_timeout);
    let guarded = Guarded {
        inner: timed,
        _guard: guard,
    };
    let mut out = Response::new(guarded.boxed_unsync());
    *out.status_mut() = parts.status;
    *out.headers_mut() = headers;
    out
}

/// The I/O error under a hyper error, if that is what it was.
fn io_source<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut source = e.source();
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = err.source();
    }
    None
}

/// An upstream body that ended badly, in nginx's words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UpstreamBodyError(String);

/// nginx's words for an error while reading the upstream's body.
fn upstream_body_error(e: BoxError) -> BoxError {
    let Some(hyper_error) = e.downcast_ref::<hyper::Error>() else {
        return e;
    };
    let os_error = io_source(hyper_error).filter(|io| io.raw_os_error().is_some());
    let words = if let Some(io) = os_error {
        format!(
            "recv() failed ({}) while reading upstream",
            error_log::os_error(io)
        )
    } else if hyper_error.is_incomplete_message()
        || io_source(hyper_error).is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
    {
        "upstream prematurely closed connection while reading upstream".to_string()
    } else {
        format!("upstream sent invalid body ({hyper_error}) while reading upstream")
    };
    Box::new(UpstreamBodyError(words))
}

/// Keeps the peer guard alive as long as the response body is.
struct Guarded<B> {
    inner: B,
    _guard: PeerGuard,
}

impl<B> http_body::Body for Guarded<B>
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        std::pin::Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map(|frame| frame.map(|f| f.map_err(upstream_body_error)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The request body exceeded `client_max_body_size` while streaming.
#[derive(Debug, thiserror::Error)]
#[error("client intended to send too large body")]
pub struct BodyTooLarge;

/// Streams the client's body up, failing once it passes `limit` (0: no limit).
fn limited_stream(incoming: Incoming, limit: u64) -> ResponseBody {
    Limited {
        inner: incoming,
        seen: 0,
        limit,
    }
    .boxed_unsync()
}

struct Limited {
    inner: Incoming,
    seen: u64,
    limit: u64,
}

impl http_body::Body for Limited {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.limit > 0 && this.seen > this.limit {
                        return std::task::Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                }
                std::task::Poll::Ready(Some(Ok(frame)))
            }
            std::task::Poll::Ready(Some(Err(e))) => std::task::Poll::Ready(Some(Err(Box::new(e)))),
            std::task::Poll::Ready(None) => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The client stopped sending its body for longer than `client_body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("client timed out (110: Connection timed out) while reading client request body")]
pub struct ClientBodyTimeout;

/// The client's body as it streams up: capped at `limit`, each read within `timeout`.
fn client_body(incoming: Incoming, limit: u64, timeout: std::time::Duration) -> ResponseBody {
    super::body::TimedBody::new(limited_stream(incoming, limit), timeout)
        .map_err(|e| -> BoxError {
            if e.is::<super::body::ReadTimeout>() {
                Box::new(ClientBodyTimeout)
            } else {
                e
            }
        })
        .boxed_unsync()
}

/// When sending failed because of the client's body: its status and nginx's words.
fn client_body_failure(e: &hyper::Error) -> Option<(u16, String)> {
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if err.is::<ClientBodyTimeout>() {
            return Some((408, err.to_string()));
        }
        if err.is::<BodyTooLarge>() {
            return Some((413, err.to_string()));
        }
        if err.is::<hyper::Error>() {
            // hyper's own parse error of the client's chunked body.
            return Some((400, format!("client sent invalid request body ({err})")));
        }
        source = err.source();
    }
    None
}

/// Reads a whole body, refusing more than `limit` bytes (0: no limit) with 413.
async fn read_limited(mut incoming: Incoming, limit: u64) -> Result<Bytes, u16> {
    let mut buffer = bytes::BytesMut::new();
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|_| 400u16)?;
        if let Some(data) = frame.data_ref() {
            if limit > 0 && (buffer.len() + data.len()) as u64 > limit {
                return Err(413);
            }
            buffer.extend_from_slice(data);
        }
    }
    Ok(buffer.freeze())
}
