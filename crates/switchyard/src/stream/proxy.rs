//! The connect phase of a session: pick a peer with the group's balancer,
//! connect within `proxy_connect_timeout`, and on failure move on to the
//! next peer while `proxy_next_upstream`, its tries and its timeout allow
//! (ngx_stream_proxy_connect / ngx_stream_proxy_next_upstream).

use std::sync::Arc;
use std::time::Instant;

use std::net::SocketAddr;

use tokio::net::{TcpSocket, UnixStream};

use super::vars::{Session, Try};
use crate::config::model::{parse_bind_address, ProxyBind, StreamServer};
use crate::observe::error_log;
use crate::transport::tls_client::strip_port;
use crate::upstream::io::UpstreamIo;
use crate::upstream::{PeerAddr, Picked, Upstream};

/// A connected peer: the socket and the balancer's record of the pick,
/// reported as a success when dropped (a session that ends, however it
/// ends after connecting, does not count against the peer, as in nginx).
pub(crate) struct Connected {
    /// The upstream connection, plain or TLS (`proxy_ssl`).
    pub stream: UpstreamIo,
    /// When the attempt started (`$upstream_session_time` counts from it).
    pub started: Instant,
    upstream: Arc<Upstream>,
    picked: Picked,
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.upstream.finish(self.picked.id, true);
    }
}

/// Why no peer could be connected (already logged).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// Every peer is down or failed: the session ends with 502.
    #[error("no peer connected")]
    Exhausted,
    /// The local side could not be set up (`proxy_bind`): 500, as nginx
    /// ends a session whose ngx_event_connect_peer returned NGX_ERROR.
    #[error("the upstream socket could not be set up")]
    Local,
}

/// The `proxy_bind` address for `session`: `Ok(None)` without one (or
/// for an empty value, as nginx).
pub(crate) fn bind_address(
    session: &Session,
    server: &StreamServer,
) -> Result<Option<SocketAddr>, ConnectError> {
    match &server.bind {
        None => Ok(None),
        Some(ProxyBind::Fixed(addr)) => Ok(Some(*addr)),
        Some(ProxyBind::Vars(template)) => {
            let value = template.render(session);
            if value.is_empty() {
                return Ok(None);
            }
            match parse_bind_address(&value) {
                Some(addr) => Ok(Some(addr)),
                None => {
                    error_log::error(
                        Some(session.id),
                        &format!("invalid local address \"{value}\"{}", session.context()),
                    );
                    Err(ConnectError::Local)
                }
            }
        }
    }
}

/// Why opening a connection failed.
enum OpenError {
    /// bind() of the local address.
    Bind(std::io::Error),
    /// socket(), setsockopt() or connect().
    Connect(std::io::Error),
}

/// A connection to `peer`: TCP from `bind` if given, or a Unix socket
/// (which has no local address to bind).
async fn open(
    peer: &PeerAddr,
    bind: Option<SocketAddr>,
    keepalive: bool,
) -> Result<UpstreamIo, OpenError> {
    let peer = match peer {
        PeerAddr::Inet(a) => *a,
        PeerAddr::Unix(path) => {
            return UnixStream::connect(path)
                .await
                .map(UpstreamIo::Unix)
                .map_err(OpenError::Connect);
        }
    };
    let socket = if peer.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(OpenError::Connect)?;
    if let Some(local) = bind {
        socket.bind(local).map_err(OpenError::Bind)?;
    }
    if keepalive {
        socket.set_keepalive(true).map_err(OpenError::Connect)?;
    }
    socket
        .connect(peer)
        .await
        .map(UpstreamIo::Plain)
        .map_err(OpenError::Connect)
}

/// Connects to a peer of `upstream` for `session`, logging each failure
/// as nginx words it; every attempt is recorded in `session.tries`.
pub(crate) async fn connect(
    session: &mut Session,
    server: &StreamServer,
    upstream: Arc<Upstream>,
) -> Result<Connected, ConnectError> {
    let key = match &upstream.config.hash_key {
        Some(template) => template.render(&*session).into_bytes(),
        None => Vec::new(),
    };
    let bind = bind_address(session, server)?;
    let started = Instant::now();
    let out_of_time = || {
        !server.next_upstream_timeout.is_zero() && started.elapsed() >= server.next_upstream_timeout
    };
    let Some(mut attempt) = upstream.start() else {
        no_live(session, &upstream);
        return Err(ConnectError::Exhausted);
    };
    if server.next_upstream_tries > 0 {
        attempt.limit_tries(server.next_upstream_tries);
    }
    loop {
        let Some(picked) = upstream.pick(&mut attempt, &key) else {
            no_live(session, &upstream);
            return Err(ConnectError::Exhausted);
        };
        let try_started = Instant::now();
        session.tries.push(Try {
            addr: picked.label.clone(),
            ..Default::default()
        });
        let result = tokio::time::timeout(
            server.connect_timeout,
            open(&picked.addr, bind, server.socket_keepalive),
        )
        .await;
        let failure = match result {
            Ok(Ok(stream)) => {
                let local = match &stream {
                    UpstreamIo::Plain(tcp) => {
                        if server.tcp_nodelay {
                            let _ = tcp.set_nodelay(true);
                        }
                        tcp.local_addr().map(|a| a.to_string()).ok()
                    }
                    _ => Some("unix:".to_string()),
                };
                if let Some(local) = local {
                    error_log::log(
                        crate::observe::ErrorLevel::Info,
                        Some(session.id),
                        &format!("proxy {local} connected to {}", picked.addr),
                    );
                }
                match handshake(session, server, &upstream, stream, &picked.addr).await {
                    Ok(stream) => {
                        if let Some(t) = session.tries.last_mut() {
                            t.connect = Some(try_started.elapsed());
                        }
                        upstream.connected(picked.id);
                        return Ok(Connected {
                            stream,
                            started: try_started,
                            upstream,
                            picked,
                        });
                    }
                    Err(words) => words,
                }
            }
            Ok(Err(OpenError::Bind(e))) => {
                error_log::log(
                    crate::observe::ErrorLevel::Crit,
                    Some(session.id),
                    &format!(
                        "bind({}) failed ({}) while connecting to upstream{}",
                        bind.map(|b| b.ip().to_string()).unwrap_or_default(),
                        error_log::os_error(&e),
                        session.context()
                    ),
                );
                upstream.finish(picked.id, true);
                return Err(ConnectError::Local);
            }
            Ok(Err(OpenError::Connect(e))) => format!(
                "connect() failed ({}) while connecting to upstream",
                error_log::os_error(&e)
            ),
            Err(_) => "upstream timed out (110: Connection timed out) while connecting to upstream"
                .to_string(),
        };
        error_log::error(Some(session.id), &format!("{failure}{}", session.context()));
        if let Some(t) = session.tries.last_mut() {
            t.session = Some(try_started.elapsed());
        }
        picked.metrics.failure();
        upstream.finish(picked.id, false);
        if attempt.tries_left() == 0 || !server.next_upstream || out_of_time() {
            return Err(ConnectError::Exhausted);
        }
    }
}

/// `proxy_ssl on`: the handshake on a connected socket, within
/// `proxy_connect_timeout` (nginx times it so); the failure in nginx's
/// words otherwise.
async fn handshake(
    session: &Session,
    server: &StreamServer,
    upstream: &Upstream,
    stream: UpstreamIo,
    peer: &PeerAddr,
) -> Result<UpstreamIo, String> {
    let Some(tls) = &server.upstream_tls else {
        return Ok(stream);
    };
    let (UpstreamIo::Plain(mut stream), Some(ip)) = (stream, peer.ip()) else {
        return Err("SSL to a unix socket is not supported yet".to_string());
    };
    if server.proxy_protocol {
        // nginx sends the PROXY header in the clear, before the handshake.
        use tokio::io::AsyncWriteExt;
        let header = super::session::proxy_protocol_v1(&session.remote, &session.local);
        if let Err(e) = stream.write_all(header.as_bytes()).await {
            return Err(format!(
                "send() failed ({}) while sending PROXY protocol header to upstream",
                error_log::os_error(&e)
            ));
        }
    }
    // nginx's ssl name: proxy_ssl_name, else the proxy_pass target, the
    // port stripped.
    let name = match &tls.name {
        Some(template) => strip_port(&template.render(session)).to_string(),
        None => strip_port(&upstream.config.name).to_string(),
    };
    match tokio::time::timeout(
        server.connect_timeout,
        tls.context.handshake(stream, &name, ip),
    )
    .await
    {
        Ok(Ok(s)) => Ok(UpstreamIo::Tls(Box::new(s))),
        Ok(Err(e)) => Err(format!("{e} while SSL handshaking to upstream")),
        Err(_) => Err(
            "upstream timed out (110: Connection timed out) while SSL handshaking to upstream"
                .to_string(),
        ),
    }
}

/// nginx's "no live upstreams": the attempt is recorded under the group's
/// name (`$upstream_addr` shows it, as nginx shows it).
pub(crate) fn no_live(session: &mut Session, upstream: &Upstream) {
    session.tries.push(Try {
        addr: Arc::from(upstream.config.name.as_str()),
        ..Default::default()
    });
    error_log::error(
        Some(session.id),
        &format!(
            "no live upstreams while connecting to upstream{}",
            session.context()
        ),
    );
}
