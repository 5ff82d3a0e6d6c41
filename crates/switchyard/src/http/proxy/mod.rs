//! `proxy_pass`: pick a peer, get a connection (pooled or new), send the
//! request up, stream the response down; on failure, the next peer as
//! `proxy_next_upstream` says, with nginx's error-log lines.

mod body;
pub mod cookie;
mod downstream;
pub(crate) mod evaluated;
mod read_body;
mod request;
mod response;
mod send;
mod wire;

use std::sync::Arc;
use std::time::Instant;

use crate::http::generation::Retirement;
use crate::http::h1::body::RequestBody;
use crate::http::h1::response::StatusLine;
use crate::http::h1::upgrade::{ClientUpgrade, Upgraded};
use crate::http::h1::HeaderCase;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;

use self::body::PeerGuard;
use self::downstream::{Downstream, UpstreamBody};
use self::read_body::prepare_body;
use self::request::{build_headers, upstream_uri};
use self::send::{UpBody, Upload, UpstreamError};
use self::wire::ResponseHead;
use super::body::ResponseBody;
use super::exchange::{Exchange, ResponseEnd, Transfer, UpstreamTry};
use super::respond;
use crate::config::model::{LocationConfig, ProxyBind, ProxyPass, Settings};
use crate::observe::error_log;
use crate::transport::tls_client::{strip_port, HandshakeError, UpstreamTls};
use crate::upstream::io::UpstreamIo;
use crate::upstream::pool::{Connection, PoolKey};
use crate::upstream::{PeerAddr, Upstream};

pub use self::body::BodyTooLarge;
pub use self::read_body::ProxiedBefore;

/// Why an attempt failed, for the error log, the status and the retry rule.
enum Failure {
    /// bind() of the `proxy_bind` address: nginx's NGX_ERROR from
    /// ngx_event_connect_peer, a 500 with no next peer.
    Bind(std::io::Error, std::net::IpAddr),
    Connect(std::io::Error),
    ConnectTimeout,
    Handshake(HandshakeError),
    HandshakeTimeout,
    HeaderTimeout,
    Upstream(UpstreamError),
}

impl Failure {
    fn status(&self) -> u16 {
        match self {
            Failure::ConnectTimeout | Failure::HandshakeTimeout | Failure::HeaderTimeout => 504,
            Failure::Bind(..) => 500,
            _ => 502,
        }
    }

    fn is_timeout(&self) -> bool {
        matches!(
            self,
            Failure::ConnectTimeout | Failure::HandshakeTimeout | Failure::HeaderTimeout
        )
    }

    fn is_invalid_header(&self) -> bool {
        matches!(self, Failure::Upstream(UpstreamError::Head(_)))
    }

    fn describe(&self) -> String {
        match self {
            Failure::Bind(e, ip) => format!(
                "bind({ip}) failed ({}) while connecting to upstream",
                error_log::os_error(e)
            ),
            Failure::Connect(e) => format!(
                "connect() failed ({}) while connecting to upstream",
                error_log::os_error(e)
            ),
            Failure::ConnectTimeout => {
                "upstream timed out (110: Connection timed out) while connecting to upstream".into()
            }
            Failure::Handshake(e) => format!("{e} while SSL handshaking to upstream"),
            Failure::HandshakeTimeout => {
                "upstream timed out (110: Connection timed out) while SSL handshaking to upstream".into()
            }
            Failure::HeaderTimeout => {
                "upstream timed out (110: Connection timed out) while reading response header from upstream".into()
            }
            Failure::Upstream(UpstreamError::Closed { .. }) => {
                "upstream prematurely closed connection while reading response header from upstream".into()
            }
            Failure::Upstream(UpstreamError::Recv(e)) => format!(
                "recv() failed ({}) while reading response header from upstream",
                error_log::os_error(e)
            ),
            Failure::Upstream(UpstreamError::Send(e)) => format!(
                "writev() failed ({}) while sending request to upstream",
                error_log::os_error(e)
            ),
            Failure::Upstream(UpstreamError::Head(e)) => {
                format!("{e} while reading response header from upstream")
            }
            Failure::Upstream(UpstreamError::ClientBody(_, words)) => words.clone(),
        }
    }
}

/// The error-log context nginx appends: `, client: .., server: .., request: "..", upstream: "..", host: ".."`.
pub fn log_context(ex: &Exchange, upstream_url: Option<&str>) -> String {
    let mut s = format!(
        ", client: {}, server: {}, request: \"{}\"",
        ex.remote_addr(),
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

/// Opens a new upstream connection, with its TLS handshake for
/// `https://` (timed by `proxy_connect_timeout` too, as nginx times it).
async fn connect(
    addr: &PeerAddr,
    settings: &Settings,
    tls: Option<(&UpstreamTls, &str)>,
    bind: Option<std::net::SocketAddr>,
) -> Result<Connection, Failure> {
    let timeout = settings.proxy_connect_timeout;
    let ip = match addr {
        PeerAddr::Inet(a) => *a,
        PeerAddr::Unix(path) => {
            if tls.is_some() {
                return Err(Failure::Connect(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "TLS to a unix socket is not supported yet",
                )));
            }
            return match tokio::time::timeout(timeout, tokio::net::UnixStream::connect(path)).await
            {
                Ok(Ok(s)) => Ok(Connection::new(UpstreamIo::Unix(s))),
                Ok(Err(e)) => Err(Failure::Connect(e)),
                Err(_) => Err(Failure::ConnectTimeout),
            };
        }
    };
    let socket = if ip.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(Failure::Connect)?;
    if let Some(local) = bind {
        socket
            .bind(local)
            .map_err(|e| Failure::Bind(e, local.ip()))?;
    }
    let stream = match tokio::time::timeout(timeout, socket.connect(ip)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(Failure::Connect(e)),
        Err(_) => return Err(Failure::ConnectTimeout),
    };
    let _ = stream.set_nodelay(true);
    let Some((context, name)) = tls else {
        return Ok(Connection::new(UpstreamIo::Plain(stream)));
    };
    match tokio::time::timeout(timeout, context.handshake(stream, name, ip.ip())).await {
        Ok(Ok(s)) => Ok(Connection::new(UpstreamIo::Tls(Box::new(s)))),
        Ok(Err(e)) => Err(Failure::Handshake(e)),
        Err(_) => Err(Failure::HandshakeTimeout),
    }
}

/// The `proxy_bind` address for this request (ngx_http_upstream_set_local):
/// none for `off`, an empty value, or one that is not an address (logged).
fn bind_address(settings: &Settings, ex: &Exchange) -> Option<std::net::SocketAddr> {
    match settings.proxy_bind.as_ref()? {
        ProxyBind::Fixed(addr) => Some(*addr),
        ProxyBind::Vars(template) => {
            let value = template.render(ex);
            if value.is_empty() {
                return None;
            }
            let addr = crate::config::model::parse_bind_address(&value);
            if addr.is_none() {
                error_log::error(
                    Some(ex.conn.id),
                    &format!("invalid local address \"{value}\"{}", log_context(ex, None)),
                );
            }
            addr
        }
    }
}

/// Whether nginx may send this method again to another peer after it was
/// sent once (POST, LOCK and PATCH are not, without `non_idempotent`).
fn idempotent(method: &http::Method) -> bool {
    !matches!(method.as_str(), "POST" | "LOCK" | "PATCH")
}

/// Serves a request through `proxy_pass`; the client's headers are the
/// exchange's (`ex.headers`), not the request's.
pub async fn proxy(
    request: Request<RequestBody>,
    location: &LocationConfig,
    pass: &ProxyPass,
    upstream: Arc<Upstream>,
    ex: &mut Exchange,
) -> Response<ResponseBody> {
    let settings = &location.settings;
    ex.proxy_host = pass.proxy_host.clone();
    ex.proxy_port = pass.proxy_port;
    let (mut parts, incoming) = request.into_parts();
    let http11 = settings.proxy_http_version_11;
    let client_upgrade = parts
        .extensions
        .remove::<ClientUpgrade>()
        .map(|u| (u, parts.extensions.remove::<Retirement>()));

    let again = parts.extensions.remove::<ProxiedBefore>().is_some();
    let (mut body, body_len) = match prepare_body(settings, ex, incoming, again).await {
        Ok(b) => b,
        Err(status) => {
            if status == 408 {
                error_log::log(
                    crate::observe::ErrorLevel::Info,
                    Some(ex.conn.id),
                    &format!(
                        "client timed out (110: Connection timed out) while reading client request body{}",
                        log_context(ex, None)
                    ),
                );
            }
            return respond::error(status, settings.server_tokens);
        }
    };
    let method = match &settings.proxy_method {
        Some(m) => {
            http::Method::from_bytes(m.render(ex).as_bytes()).unwrap_or(parts.method.clone())
        }
        None => parts.method.clone(),
    };
    let uri = upstream_uri(pass, ex);
    let bind = bind_address(settings, ex);
    if uri.is_empty() || uri.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return respond::error(400, settings.server_tokens);
    }
    let (headers, case) = build_headers(
        settings,
        ex,
        &ex.headers,
        parts.extensions.get::<HeaderCase>(),
        body_len,
    );
    // A streamed body of unknown length goes up chunked (HTTP/1.1 only:
    // for HTTP/1.0 such a body was read whole and measured first).
    let chunked = http11 && body_len.is_none() && matches!(body, UpBody::Stream(..));
    let mut head = Vec::with_capacity(512);
    wire::write_request_head(
        &mut head,
        &method,
        &uri,
        http11,
        &headers,
        (!case.is_empty()).then_some(&case),
        chunked,
    );
    let head = bytes::Bytes::from(head);
    // The upstream may keep the connection only if we asked it to.
    let request_keepalive = http11
        && !headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| wire::has_token(v.as_bytes(), b"close"));
    let hash_key: Vec<u8> = match (&upstream.config.method, &upstream.config.hash_key) {
        (balance::Method::IpHash, _) => match ex.client_addr.ip() {
            Some(std::net::IpAddr::V4(v4)) => v4.octets().to_vec(),
            Some(std::net::IpAddr::V6(v6)) => v6.octets().to_vec(),
            // nginx's pseudo address for a Unix socket's peer.
            None => Vec::new(),
        },
        (_, Some(key)) => key.render(ex).into_bytes(),
        _ => Vec::new(),
    };
    let next = &settings.proxy_next_upstream;
    let may_resend = idempotent(&method) || next.non_idempotent;
    let deadline = (!settings.proxy_next_upstream_timeout.is_zero())
        .then(|| Instant::now() + settings.proxy_next_upstream_timeout);
    let out_of_time = || deadline.is_some_and(|d| Instant::now() >= d);

    // nginx's ssl name: proxy_ssl_name or the proxy_pass host, the port
    // stripped; the same for every peer of this request.
    let tls = pass.tls.as_ref().map(|t| {
        let name: Arc<str> = match &t.name {
            Some(template) => Arc::from(strip_port(&template.render(ex))),
            None => Arc::from(strip_port(&pass.proxy_host)),
        };
        (&t.context, name)
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    let Some(mut attempt) = upstream.start() else {
        return no_live(ex, &upstream, settings);
    };
    if settings.proxy_next_upstream_tries > 0 {
        attempt.limit_tries(settings.proxy_next_upstream_tries);
    }
    loop {
        let Some(picked) = upstream.pick(&mut attempt, &hash_key) else {
            return no_live(ex, &upstream, settings);
        };
        // Only the error log needs the upstream URL: built when one is written.
        let url = || {
            format!(
                "{scheme}://{}{}{}",
                picked.addr,
                picked.addr.uri_separator(),
                uri
            )
        };
        let key = PoolKey {
            addr: picked.addr.clone(),
            tls: tls.as_ref().map(|(c, name)| (c.id(), name.clone())),
        };
        let started = Instant::now();
        ex.upstream.push(UpstreamTry {
            addr: picked.label.clone(),
            ..Default::default()
        });
        // Until an attempt fails, the peer is not blamed: a client that goes
        // away mid-request drops this guard, and nginx does not count that
        // against the peer either.
        let mut guard = PeerGuard {
            upstream: upstream.clone(),
            picked: picked.clone(),
            success: true,
        };
        let can_try_again = |attempt: &balance::Attempt| attempt.tries_left() > 0 && !out_of_time();

        // A pooled connection first. One the peer closed while it was idle
        // is replaced by a new one without counting against the peer: a body
        // that can be sent again is simply resent; a streamed one is only
        // sent on a connection seen to be open.
        let mut pooled = upstream
            .pool
            .as_ref()
            .and_then(|p| p.take(&key))
            .filter(|c| body.can_resend() || c.is_alive());
        let outcome = loop {
            let mut connection = match pooled.take() {
                Some(c) => c,
                // Boxed: a kept-alive upstream rarely needs it, and its
                // state would otherwise weigh on every request's future.
                None => match Box::pin(connect(
                    &picked.addr,
                    settings,
                    tls.as_ref().map(|(c, name)| (*c, &**name)),
                    bind,
                ))
                .await
                {
                    Ok(c) => c,
                    Err(f) => break Err((f, None)),
                },
            };
            if let Some(t) = ex.upstream.last_mut() {
                t.connect.get_or_insert(started.elapsed().as_secs_f64());
            }
            connection.requests += 1;
            let sent = tokio::time::timeout(
                settings.proxy_read_timeout,
                send::send(
                    &mut connection,
                    Upload::new(head.clone(), &mut body, chunked),
                    &method,
                ),
            )
            .await;
            match sent {
                Ok(Ok(sent)) => break Ok((connection, sent)),
                Ok(Err(UpstreamError::ClientBody(status, words))) => {
                    // The client's body failed, not the peer: no retry, nginx's status.
                    error_log::log(
                        crate::observe::ErrorLevel::Info,
                        Some(ex.conn.id),
                        &format!("{words}{}", log_context(ex, Some(&url()))),
                    );
                    return respond::error(status, settings.server_tokens);
                }
                Ok(Err(e)) if connection.reused && e.peer_closed_idle() && body.can_resend() => {
                    continue;
                }
                Ok(Err(e)) => break Err((Failure::Upstream(e), Some(()))),
                Err(_) => break Err((Failure::HeaderTimeout, Some(()))),
            }
        };
        let (connection, sent) = match outcome {
            Ok(pair) => pair,
            Err((Failure::Bind(e, ip), _)) => {
                // Not the peer's fault: nginx ends the request here.
                drop(guard);
                error_log::log(
                    crate::observe::ErrorLevel::Crit,
                    Some(ex.conn.id),
                    &format!(
                        "{}{}",
                        Failure::Bind(e, ip).describe(),
                        log_context(ex, Some(&url()))
                    ),
                );
                return respond::error(500, settings.server_tokens);
            }
            Err((failure, sent_any)) => {
                record_failure(ex, &picked, &failure, &url(), started);
                guard.success = false;
                drop(guard);
                let listed = if failure.is_timeout() {
                    next.timeout
                } else if failure.is_invalid_header() {
                    next.invalid_header
                } else {
                    next.error
                };
                // Nothing was sent when connecting failed: any method may go
                // to the next peer; after that, only what may be resent.
                let resendable = sent_any.is_none() || (may_resend && body.can_resend());
                if listed && resendable && can_try_again(&attempt) {
                    continue;
                }
                return respond::error(failure.status(), settings.server_tokens);
            }
        };
        let status = sent.head.status.as_u16();
        let header_time = started.elapsed();
        picked.metrics.response(status, header_time);
        let end = ResponseEnd::new(started);
        let transfer = Transfer {
            sent: sent.sent,
            received: sent.received,
            body: 0,
        };
        if let Some(t) = ex.upstream.last_mut() {
            t.transfer = transfer;
            t.status = Some(status);
            t.header = Some(header_time.as_secs_f64());
            // $upstream_response_time is `-` until the response is over
            // (the header filter, add_header, sees that), as nginx's.
            t.response_end = Some(end.clone());
        }
        let retry_status = next.statuses.contains(&status)
            && may_resend
            && body.can_resend()
            && can_try_again(&attempt);
        if retry_status {
            // 403 and 404 never count against the peer; the 5xx and
            // 429 do when they are listed (they are, to get here).
            guard.success = matches!(status, 403 | 404);
            drop(guard);
            // This try's response is over: the next one starts.
            end.mark();
            continue;
        }
        guard.success = true;
        // As nginx: only a connection whose request went up whole before the
        // answer came is reused. One that answered early may not read the
        // rest; it would reset the next request sent on it.
        let reusable = sent.head.keep_alive
            && request_keepalive
            && !sent.write_failed
            && sent.upload.is_none()
            && upstream.pool.is_some();
        let down = Downstream {
            connection,
            upload: sent.upload,
            reusable,
            key,
            guard,
            end,
            transfer,
        };
        for words in &sent.head.ignored {
            error_log::log(
                crate::observe::ErrorLevel::Warn,
                Some(ex.conn.id),
                &format!(
                    "{words} while reading response header from upstream{}",
                    log_context(ex, Some(&url()))
                ),
            );
        }
        return downstream_response(sent.head, down, settings, pass, ex, client_upgrade);
    }
}

fn record_failure(
    ex: &mut Exchange,
    picked: &crate::upstream::Picked,
    failure: &Failure,
    url: &str,
    started: Instant,
) {
    picked.metrics.failure();
    if let Some(t) = ex.upstream.last_mut() {
        t.response = Some(started.elapsed().as_secs_f64());
        if t.status.is_none() {
            t.status = Some(failure.status());
        }
    }
    error_log::error(
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
        addr: Arc::from(upstream.config.name.as_str()),
        status: Some(502),
        ..Default::default()
    });
    respond::error(502, settings.server_tokens)
}

fn downstream_response(
    head: ResponseHead,
    down: Downstream,
    settings: &Settings,
    pass: &ProxyPass,
    ex: &mut Exchange,
    client_upgrade: Option<(ClientUpgrade, Option<Retirement>)>,
) -> Response<ResponseBody> {
    if head.status == StatusCode::SWITCHING_PROTOCOLS {
        return upgrade(head, down, settings, ex, client_upgrade);
    }
    let mut headers = response::filter_headers(&head.headers, settings);
    let rewritten = response::rewrite_redirects(&mut headers, settings, pass, ex);
    cookie::rewrite_set_cookies(&mut headers, &settings.proxy_cookie, ex);
    ex.upstream_headers = head.headers;
    let case = head.case;
    let status_line = StatusLine {
        status: head.status,
        reason: head.reason,
    };
    let mut body =
        UpstreamBody::new(down, head.framing, settings.proxy_read_timeout).boxed_unsync();
    if settings.proxy_limit_rate > 0 {
        // proxy_limit_rate paces the reads from the upstream from here on
        // (nginx's event pipe starts its clock as the response starts).
        let pace = crate::http::limit_rate::Pace {
            rate: settings.proxy_limit_rate,
            after: 0,
            start: tokio::time::Instant::now(),
            head: 0,
        };
        body = crate::http::limit_rate::Limited::new(body, Some(pace), Vec::new()).boxed_unsync();
    }
    let mut out = Response::new(body);
    *out.status_mut() = head.status;
    *out.headers_mut() = headers;
    if !case.is_empty() {
        out.extensions_mut().insert(case);
    }
    // The common `200 OK` goes without: each extension is an allocation.
    if status_line.differs_from_nginx() {
        out.extensions_mut().insert(status_line);
    }
    if rewritten {
        crate::http::dispatch::absolute_location(&mut out, settings, ex);
    }
    out
}

/// A 101 from the upstream: answer the client with it, then join the two
/// upgraded connections (WebSocket and any other `Upgrade`) byte for byte.
fn upgrade(
    head: ResponseHead,
    down: Downstream,
    settings: &Settings,
    ex: &mut Exchange,
    client_upgrade: Option<(ClientUpgrade, Option<Retirement>)>,
) -> Response<ResponseBody> {
    let Some((client_upgrade, retirement)) = client_upgrade else {
        // The client did not ask to upgrade: nginx would not either.
        down.end.mark();
        return respond::error(502, settings.server_tokens);
    };
    let mut headers = response::filter_headers(&head.headers, settings);
    // nginx's header copy handlers run before it looks at the status, so
    // a 101's cookies are rewritten too.
    cookie::rewrite_set_cookies(&mut headers, &settings.proxy_cookie, ex);
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    ex.upstream_headers = head.headers;
    let case = head.case;
    let conn_id = ex.conn.id;
    let Downstream {
        connection,
        guard,
        end,
        ..
    } = down;
    let (tunnel_log, logged) = crate::http::body::TunnelLog::pair();
    // The tunnel's lines go where its request's went.
    tokio::spawn(error_log::scoped(error_log::current(), async move {
        let _guard = guard;
        let to_client = join_upgraded(client_upgrade, retirement, connection, conn_id).await;
        // The response is over when the tunnel closes.
        end.mark();
        // The request is logged as its tunnel closes, with what the
        // tunnel carried to the client, as nginx finalizes it then.
        if let Ok((mut ex, log)) = logged.await {
            ex.body_bytes_sent += to_client;
            log.write(&*ex);
        }
    }));
    let mut out = Response::new(crate::http::body::empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *out.headers_mut() = headers;
    if !case.is_empty() {
        out.extensions_mut().insert(case);
    }
    out.extensions_mut().insert(tunnel_log);
    out
}

/// Joins the client's upgraded connection to the upstream's, byte for
/// byte, until either side closes (or the configuration retires); the
/// bytes that went to the client.
async fn join_upgraded(
    client_upgrade: ClientUpgrade,
    retirement: Option<Retirement>,
    mut connection: crate::upstream::pool::Connection,
    conn_id: u64,
) -> u64 {
    use tokio::io::AsyncWriteExt;
    let Upgraded {
        stream: mut client_io,
        read,
    } = match client_upgrade.wait().await {
        Ok(c) => c,
        Err(e) => {
            error_log::error(Some(conn_id), &format!("upgrade failed ({e})"));
            return 0;
        }
    };
    // What the client sent after its request head belongs to the
    // upstream; what the upstream sent after its 101, to the client.
    if !read.is_empty() && connection.stream.write_all(&read).await.is_err() {
        return 0;
    }
    let mut to_client = 0;
    if !connection.buffer.is_empty() {
        if client_io.write_all(&connection.buffer).await.is_err() {
            return 0;
        }
        to_client = connection.buffer.len() as u64;
        connection.buffer.clear();
    }
    // Counted as written, not from the copy's result: a retirement ends
    // the copy without one.
    let mut client_io = Counted {
        inner: client_io,
        written: to_client,
    };
    let tunnel = tokio::io::copy_bidirectional(&mut client_io, &mut connection.stream);
    match retirement {
        Some(retirement) => {
            tokio::select! {
                _ = tunnel => {}
                () = retirement.wait() => {}
            }
        }
        None => {
            let _ = tunnel.await;
        }
    }
    client_io.written
}

/// A stream that counts the bytes written to it.
struct Counted<S> {
    inner: S,
    written: u64,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, data);
        if let std::task::Poll::Ready(Ok(n)) = polled {
            self.written += n as u64;
        }
        polled
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
