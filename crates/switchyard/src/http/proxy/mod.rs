//! `proxy_pass`: pick a peer, get a connection (pooled or new), send the
//! request up, stream the response down; on failure, the next peer as
//! `proxy_next_upstream` says, with nginx's error-log lines.

mod body;
mod request;
mod response;

use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use self::body::{Downstream, PeerGuard};
use self::request::{build_headers, prepare_body, upstream_uri, UpBody};
use super::body::{ResponseBody, TimedBody};
use super::exchange::{Exchange, UpstreamTry};
use super::respond;
use crate::config::model::{LocationConfig, ProxyPass, Settings};
use crate::observe::error_log;
use crate::upstream::pool::Connection;
use crate::upstream::Upstream;

pub use self::body::BodyTooLarge;

/// Why an attempt failed, for the error log, the status and the retry rule.
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

    fn is_timeout(&self) -> bool {
        matches!(self, Failure::ConnectTimeout | Failure::HeaderTimeout)
    }

    fn is_invalid_header(&self) -> bool {
        matches!(self, Failure::Protocol(e) if e.is_parse())
    }

    fn describe(&self) -> String {
        match self {
            Failure::Connect(e) => format!(
                "connect() failed ({}) while connecting to upstream",
                error_log::os_error(e)
            ),
            Failure::ConnectTimeout => {
                "upstream timed out (110: Connection timed out) while connecting to upstream".into()
            }
            Failure::HeaderTimeout => {
                "upstream timed out (110: Connection timed out) while reading response header from upstream".into()
            }
            Failure::Protocol(e) if e.is_incomplete_message() || e.is_canceled() || e.is_closed() => {
                "upstream prematurely closed connection while reading response header from upstream".into()
            }
            Failure::Protocol(e)
                if body::io_source(e).is_some_and(|io| io.raw_os_error().is_some()) =>
            {
                format!(
                    "recv() failed ({}) while reading response header from upstream",
                    body::io_source(e).map(error_log::os_error).unwrap_or_default()
                )
            }
            Failure::Protocol(e) if e.is_parse() => {
                "upstream sent invalid header while reading response header from upstream".into()
            }
            Failure::Protocol(e) => {
                format!("upstream error ({e}) while reading response header from upstream")
            }
        }
    }
}

/// The error-log context nginx appends: `, client: .., server: .., request: "..", upstream: "..", host: ".."`.
pub fn log_context(ex: &Exchange, upstream_url: Option<&str>) -> String {
    let mut s = format!(
        ", client: {}, server: {}, request: \"{}\"",
        ex.client_addr,
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

/// Opens a new upstream connection (HTTP/1.x, with upgrades allowed).
async fn connect(addr: std::net::SocketAddr, settings: &Settings) -> Result<Connection, Failure> {
    let stream = match tokio::time::timeout(
        settings.proxy_connect_timeout,
        TcpStream::connect(addr),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(Failure::Connect(e)),
        Err(_) => return Err(Failure::ConnectTimeout),
    };
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake::<_, ResponseBody>(TokioIo::new(stream))
        .await
        .map_err(Failure::Protocol)?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    Ok(Connection {
        sender,
        born: Instant::now(),
        requests: 0,
        reused: false,
    })
}

/// Whether nginx may send this method again to another peer after it was
/// sent once (POST, LOCK and PATCH are not, without `non_idempotent`).
fn idempotent(method: &http::Method) -> bool {
    !matches!(method.as_str(), "POST" | "LOCK" | "PATCH")
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
    ex.upstream_name = Some(upstream.config.name.clone());
    ex.proxy_port = upstream
        .config
        .servers
        .first()
        .map(|s| s.port)
        .unwrap_or(80);
    let (mut parts, incoming) = request.into_parts();
    let http11 = settings.proxy_http_version_11;
    let client_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();

    let (body, body_len) = match prepare_body(settings, ex, &parts.headers, incoming).await {
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
    let mut body = Some(body);
    let method = match &settings.proxy_method {
        Some(m) => {
            http::Method::from_bytes(m.render(ex).as_bytes()).unwrap_or(parts.method.clone())
        }
        None => parts.method.clone(),
    };
    let uri = upstream_uri(pass, ex);
    let Ok(up_uri) = uri.parse::<http::Uri>() else {
        return respond::error(400, settings.server_tokens);
    };
    let headers = build_headers(settings, ex, &parts.headers, body_len);
    let hash_key: Vec<u8> = match (&upstream.config.method, &upstream.config.hash_key) {
        (balance::Method::IpHash, _) => match ex.client_addr {
            std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
            std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
        },
        (_, Some(key)) => key.render(ex).into_bytes(),
        _ => Vec::new(),
    };
    let next = &settings.proxy_next_upstream;
    let may_resend = idempotent(&method) || next.non_idempotent;
    let deadline = (!settings.proxy_next_upstream_timeout.is_zero())
        .then(|| Instant::now() + settings.proxy_next_upstream_timeout);
    let out_of_time = || deadline.is_some_and(|d| Instant::now() >= d);

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
        let url = || format!("http://{}{}", picked.addr, uri);
        let started = Instant::now();
        ex.upstream.push(UpstreamTry {
            addr: picked.addr.to_string(),
            ..Default::default()
        });
        // Until an attempt fails, the peer is not blamed: a client that goes
        // away mid-request drops this guard, and nginx does not count that
        // against the peer either.
        let mut guard = Some(PeerGuard {
            upstream: upstream.clone(),
            picked: picked.clone(),
            success: true,
        });
        let can_try_again = |attempt: &balance::Attempt| attempt.tries_left() > 0 && !out_of_time();

        // A pooled connection first; one the peer closed while idle is
        // replaced by a new one, without counting against the peer.
        let mut pooled = match upstream.pool.as_ref().and_then(|p| p.take(picked.addr)) {
            // Wait (briefly) for hyper to finish the previous exchange on it.
            Some(mut c) => {
                match tokio::time::timeout(std::time::Duration::from_millis(100), c.sender.ready())
                    .await
                {
                    Ok(Ok(())) => Some(c),
                    _ => None,
                }
            }
            None => None,
        };
        let (mut connection, response) = loop {
            let mut connection = match pooled.take() {
                Some(c) => c,
                None => match connect(picked.addr, settings).await {
                    Ok(c) => c,
                    Err(f) => {
                        record_failure(ex, &f, &url(), started);
                        if let Some(g) = guard.as_mut() {
                            g.success = false;
                        }
                        guard = None;
                        // Nothing was sent: any method may go to the next peer.
                        let retry = if f.is_timeout() {
                            next.timeout
                        } else {
                            next.error
                        };
                        if retry && can_try_again(&attempt) {
                            break (None, None);
                        }
                        return respond::error(f.status(), settings.server_tokens);
                    }
                },
            };
            if let Some(t) = ex.upstream.last_mut() {
                t.connect.get_or_insert(started.elapsed().as_secs_f64());
            }
            let Some(this_body) = body.take() else {
                return respond::error(502, settings.server_tokens);
            };
            let (up_body, rest) =
                this_body.for_attempt(settings.client_max_body_size, settings.client_body_timeout);
            let mut up_request = Request::new(up_body);
            *up_request.method_mut() = method.clone();
            *up_request.uri_mut() = up_uri.clone();
            *up_request.version_mut() = if http11 {
                Version::HTTP_11
            } else {
                Version::HTTP_10
            };
            *up_request.headers_mut() = headers.clone();
            connection.requests += 1;
            let sent = tokio::time::timeout(
                settings.proxy_read_timeout,
                connection.sender.try_send_request(up_request),
            )
            .await;
            match sent {
                Ok(Ok(response)) => {
                    body = rest;
                    break (Some(connection), Some(Ok(response)));
                }
                Ok(Err(mut e)) => {
                    // Not written at all on a reused connection: the peer
                    // closed it while idle. Resend on a new connection.
                    if connection.reused {
                        if let Some(unsent) = e.take_message() {
                            body = Some(rest.unwrap_or_else(|| UpBody::Unsent(unsent.into_body())));
                            continue;
                        }
                        if e.error().is_incomplete_message() || e.error().is_canceled() {
                            if let Some(r) = rest {
                                body = Some(r);
                                continue;
                            }
                        }
                    }
                    body = rest;
                    let e = e.into_error();
                    if let Some((status, why)) = body::client_body_failure(&e) {
                        // The client's body failed, not the peer: no retry, nginx's status.
                        error_log::log(
                            crate::observe::ErrorLevel::Info,
                            Some(ex.conn.id),
                            &format!("{why}{}", log_context(ex, Some(&url()))),
                        );
                        return respond::error(status, settings.server_tokens);
                    }
                    break (None, Some(Err(Failure::Protocol(e))));
                }
                Err(_) => {
                    body = rest;
                    break (None, Some(Err(Failure::HeaderTimeout)));
                }
            }
        };
        let (Some(response), Some(mut guard)) = (response, guard) else {
            continue;
        };
        match response {
            Ok(response) => {
                let status = response.status().as_u16();
                picked.metrics.response(status, started.elapsed());
                if let Some(t) = ex.upstream.last_mut() {
                    t.status = Some(status);
                    t.header = Some(started.elapsed().as_secs_f64());
                    t.response = t.header;
                }
                let retry_status = next.statuses.contains(&status)
                    && may_resend
                    && body.is_some()
                    && can_try_again(&attempt);
                if retry_status {
                    // 403 and 404 never count against the peer; the 5xx and
                    // 429 do when they are listed (they are, to get here).
                    guard.success = matches!(status, 403 | 404);
                    drop(guard);
                    continue;
                }
                guard.success = true;
                let keep = connection.take().map(|c| (picked.addr, c));
                return downstream_response(
                    response,
                    settings,
                    pass,
                    ex,
                    guard,
                    keep,
                    client_upgrade,
                );
            }
            Err(failure) => {
                record_failure(ex, &failure, &url(), started);
                guard.success = false;
                drop(guard);
                let listed = if failure.is_timeout() {
                    next.timeout
                } else if failure.is_invalid_header() {
                    next.invalid_header
                } else {
                    next.error
                };
                if listed && may_resend && body.is_some() && can_try_again(&attempt) {
                    continue;
                }
                return respond::error(failure.status(), settings.server_tokens);
            }
        }
    }
}

fn record_failure(ex: &mut Exchange, failure: &Failure, url: &str, started: Instant) {
    if let (Some(t), Some(upstream)) = (ex.upstream.last(), ex.upstream_name.as_deref()) {
        crate::observe::metrics::global()
            .peer(upstream, &t.addr)
            .failure();
    }
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
        addr: upstream.config.name.clone(),
        status: Some(502),
        ..Default::default()
    });
    respond::error(502, settings.server_tokens)
}

fn downstream_response(
    response: Response<Incoming>,
    settings: &Settings,
    pass: &ProxyPass,
    ex: &mut Exchange,
    guard: PeerGuard,
    connection: Option<(std::net::SocketAddr, Connection)>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response<ResponseBody> {
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        return upgrade(response, settings, ex, guard, client_upgrade);
    }
    let (parts, body) = response.into_parts();
    let mut headers = response::filter_headers(&parts.headers, settings, false);
    response::rewrite_redirects(&mut headers, settings, pass, ex);
    ex.upstream_headers = parts.headers;
    let timed = TimedBody::new(body, settings.proxy_read_timeout);
    let mut out = Response::new(Downstream::new(timed, guard, connection).boxed_unsync());
    *out.status_mut() = parts.status;
    *out.headers_mut() = headers;
    out
}

/// A 101 from the upstream: answer the client with it, then join the two
/// upgraded connections (WebSocket and any other `Upgrade`) byte for byte.
fn upgrade(
    response: Response<Incoming>,
    settings: &Settings,
    ex: &mut Exchange,
    guard: PeerGuard,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response<ResponseBody> {
    let Some(client_upgrade) = client_upgrade else {
        // The client did not ask to upgrade: nginx would not either.
        return respond::error(502, settings.server_tokens);
    };
    let mut headers = response::filter_headers(response.headers(), settings, true);
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    ex.upstream_headers = response.headers().clone();
    let conn_id = ex.conn.id;
    tokio::spawn(async move {
        let _guard = guard;
        let (upstream_io, client_io) =
            match tokio::join!(hyper::upgrade::on(response), client_upgrade) {
                (Ok(u), Ok(c)) => (u, c),
                (Err(e), _) | (_, Err(e)) => {
                    error_log::error(Some(conn_id), &format!("upgrade failed ({e})"));
                    return;
                }
            };
        let mut upstream_io = TokioIo::new(upstream_io);
        let mut client_io = TokioIo::new(client_io);
        let _ = tokio::io::copy_bidirectional(&mut client_io, &mut upstream_io).await;
    });
    let mut out = Response::new(crate::http::body::empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *out.headers_mut() = headers;
    out
}
