//! Stream listeners and sessions: accept, find the server of the local
//! address, proxy, log. A session keeps the configuration generation it
//! started with, so a reload lets it finish on the old one.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use crate::transport::accept::{Accepted, Acceptor};
use crate::upstream::addr::PeerAddr;

use super::copy::{CopyEnd, Counters, Direction, PumpEnd, Shape};
use super::vars::Session;
use crate::config::model::{AccessRule, StreamHandler, StreamServer};
use crate::http::generation::Generation;
use crate::http::server::{Shared, Slot};
use crate::observe::{error_log, ErrorLevel};

/// Accepts sessions on a stream listener until shutdown.
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
                    ErrorLevel::Alert,
                    None,
                    &format!("accept() failed ({})", error_log::os_error(&e)),
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = Slot::admit(&shared) else {
            continue;
        };
        tokio::spawn(serve(accepted, shared.clone(), slot));
    }
}

async fn serve(accepted: Accepted, shared: Arc<Shared>, _slot: Slot) {
    let Accepted {
        stream: mut client,
        remote,
        local,
    } = accepted;
    let generation = shared.current.load_full();
    let id = shared.next_connection.fetch_add(1, Ordering::Relaxed) + 1;
    let Some(bound) = generation.stream.server_for(&local, false).cloned() else {
        // A listener whose server went away in a reload that kept the
        // socket for a moment: nothing can serve it.
        return;
    };
    let server = bound.server.clone();
    // nginx sets TCP_NODELAY on IP connections only.
    if server.tcp_nodelay && matches!(local, PeerAddr::Inet(_)) {
        let _ = client.set_nodelay(true);
    }
    error_log::log(
        ErrorLevel::Info,
        Some(id),
        &format!("client {remote} connected to {}", bound.listen),
    );
    let mut session = Session {
        id,
        remote,
        local,
        listen: bound.listen,
        start: std::time::Instant::now(),
        status: 200,
        bytes_received: 0,
        bytes_sent: 0,
        tries: Vec::new(),
        set: Vec::new(),
        maps: generation.stream.maps.clone(),
        splits: generation.stream.splits.clone(),
        geos: generation.stream.geos.clone(),
        udp: false,
        proxy_protocol: None,
        proxy_protocol_tlvs: None,
        limit_conn_status: None,
        ssl_preread: None,
        ssl: None,
    };
    if bound.proxy_protocol {
        let read = tokio::time::timeout(
            server.proxy_protocol_timeout,
            crate::transport::proxy_protocol::read(&mut client),
        )
        .await;
        match read {
            Ok(Ok(header)) => {
                session.proxy_protocol = header.addrs;
                session.proxy_protocol_tlvs = header.tlvs;
            }
            Ok(Err(e)) => {
                let level = match e {
                    crate::transport::proxy_protocol::ReadError::Header(_) => ErrorLevel::Error,
                    crate::transport::proxy_protocol::ReadError::Io(_) => ErrorLevel::Info,
                };
                error_log::log(
                    level,
                    Some(id),
                    &format!("{e} while reading PROXY protocol{}", session.context()),
                );
                session.status = match e {
                    crate::transport::proxy_protocol::ReadError::Header(_) => 400,
                    crate::transport::proxy_protocol::ReadError::Io(_) => 200,
                };
                bound.log.write(&session);
                return;
            }
            Err(_) => {
                error_log::log(
                    ErrorLevel::Info,
                    Some(id),
                    &format!(
                        "client timed out (110: Connection timed out) while reading PROXY protocol{}",
                        session.context()
                    ),
                );
                bound.log.write(&session);
                return;
            }
        }
    }
    // nginx's phases in order: preaccess (`set`), access, content.
    for (name, value) in &server.set {
        let value = value.render(&session);
        session.set.push((name.clone(), value));
    }
    let limits = super::limit::enter(&mut session, &server, &generation.stream.zones);
    if limits.is_err() {
        session.status = 503;
    } else if !allowed(&server.access, &session.remote) {
        error_log::error(
            Some(id),
            &format!("access forbidden by rule{}", session.context()),
        );
        session.status = 403;
    } else if bound.ssl {
        // The ssl phase (after access, before preread and content).
        match server.ssl.as_deref() {
            Some(tls) => {
                if let Some(mut stream) = super::tls::handshake(&mut session, tls, client).await {
                    content_until_retired(&mut session, &server, &generation, &mut stream).await;
                }
            }
            // Refused at load ("no ssl_certificate ..."); never serve
            // plain bytes on a TLS address.
            None => session.status = 500,
        }
    } else if server.ssl_preread && !super::preread::preread(&mut session, &server, &client).await {
        // The preread ended the session (timeout, EOF, buffer full).
    } else {
        content_until_retired(&mut session, &server, &generation, &mut client).await;
    }
    bound.log.write(&session);
}

/// The content phase, cut short when the configuration the session runs
/// on is retired (`worker_shutdown_timeout` after a reload replaced it),
/// as nginx's old worker closes the connections it still holds then.
async fn content_until_retired<C: super::tls::Downstream>(
    session: &mut Session,
    server: &StreamServer,
    generation: &Generation,
    client: &mut C,
) {
    let retired = generation.retirement();
    tokio::select! {
        () = content(session, server, generation, client) => {}
        () = retired.wait() => {}
    }
}

/// The access phase: the first rule that matches decides; none matching
/// allows.
pub(crate) fn allowed(rules: &[AccessRule], remote: &PeerAddr) -> bool {
    crate::config::access::allowed(rules, crate::config::access::Client::of(remote))
}

/// The content phase: `return`, `proxy_pass`, or nothing (500).
async fn content<C: super::tls::Downstream>(
    session: &mut Session,
    server: &StreamServer,
    generation: &Generation,
    client: &mut C,
) {
    match &server.handler {
        StreamHandler::Return(text) => {
            let value = text.render_bytes(&*session);
            match client.write_all(&value).await {
                Ok(()) => {
                    session.bytes_sent = value.len() as u64;
                    let _ = client.shutdown().await;
                }
                Err(e) => error_log::log(
                    ErrorLevel::Info,
                    Some(session.id),
                    &format!(
                        "send() failed ({}){}",
                        error_log::os_error(&e),
                        session.context()
                    ),
                ),
            }
            return;
        }
        StreamHandler::Proxy(_) | StreamHandler::ProxyVars(_) => {}
        StreamHandler::None => {
            // nginx: no content handler ends the session with 500 ("no
            // handler for server", a debug line).
            session.status = 500;
            return;
        }
    }
    let Some(upstream) = super::target::upstream_for(session, server, generation).await else {
        session.status = 500;
        return;
    };
    let mut connected = match super::proxy::connect(session, server, upstream).await {
        Ok(c) => c,
        Err(super::proxy::ConnectError::Exhausted) => {
            session.status = 502;
            return;
        }
        Err(super::proxy::ConnectError::Local) => {
            session.status = 500;
            return;
        }
    };
    let mut header_len = 0u64;
    if server.proxy_protocol {
        let header = proxy_protocol_v1(&session.remote, &session.local);
        // Over TLS, the header went in the clear before the handshake.
        let tls = matches!(connected.stream, crate::upstream::io::UpstreamIo::Tls(_));
        let sent = if tls {
            Ok(())
        } else {
            connected.stream.write_all(header.as_bytes()).await
        };
        if let Err(e) = sent {
            error_log::error(
                Some(session.id),
                &format!(
                    "send() failed ({}) while sending PROXY protocol header to upstream{}",
                    error_log::os_error(&e),
                    session.context()
                ),
            );
            session.status = 502;
            return;
        }
        header_len = header.len() as u64;
    }
    let counters = Counters::new();
    let shape = Shape {
        size: server.buffer_size,
        upload_rate: server.upload_rate.value(&*session),
        download_rate: server.download_rate.value(&*session),
        half_close: server.half_close,
    };
    let end = client
        .copy_with(&mut connected.stream, shape, server.timeout, &counters)
        .await;
    session.bytes_received = counters.from_client.load(Ordering::Relaxed);
    session.bytes_sent = counters.to_client.load(Ordering::Relaxed);
    if let Some(t) = session.tries.last_mut() {
        t.sent = counters.to_upstream.load(Ordering::Relaxed) + header_len;
        t.received = counters.from_upstream.load(Ordering::Relaxed);
        t.first_byte = counters
            .first_byte()
            .map(|d| d + t.connect.unwrap_or_default());
        t.session = Some(connected.started.elapsed());
    }
    log_end(session, &end);
}

/// The PROXY protocol v1 header nginx sends for a client (`proxy_protocol
/// on`): `PROXY TCP4 client server cport sport\r\n`, TCP6 for IPv6.
/// A client on a Unix socket has no address to tell: `PROXY UNKNOWN`.
pub(crate) fn proxy_protocol_v1(client: &PeerAddr, local: &PeerAddr) -> String {
    let family = match (client.inet(), local.inet()) {
        (Some(client @ SocketAddr::V4(_)), Some(local @ SocketAddr::V4(_))) => {
            ("TCP4", client, local)
        }
        (Some(client @ SocketAddr::V6(_)), Some(local @ SocketAddr::V6(_))) => {
            ("TCP6", client, local)
        }
        _ => return "PROXY UNKNOWN\r\n".to_string(),
    };
    let (family, client, local) = family;
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        client.ip(),
        local.ip(),
        client.port(),
        local.port()
    )
}

/// The lines nginx's stream proxy writes when a session ends.
fn log_end(session: &Session, end: &CopyEnd) {
    let id = Some(session.id);
    match end {
        CopyEnd::TimedOut => error_log::log(
            ErrorLevel::Info,
            id,
            &format!(
                "connection timed out (110: Connection timed out) while proxying connection{}",
                session.context()
            ),
        ),
        CopyEnd::Closed(direction, how) => {
            let side = match direction {
                Direction::Upstream => "client",
                Direction::Downstream => "upstream",
            };
            match how {
                PumpEnd::Eof => {}
                PumpEnd::ReadError(e) => {
                    // nginx logs a failed recv() from the upstream as an
                    // error, from the client as info.
                    let (level, from) = match direction {
                        Direction::Upstream => (ErrorLevel::Info, "client"),
                        Direction::Downstream => (ErrorLevel::Error, "upstream"),
                    };
                    error_log::log(
                        level,
                        id,
                        &format!(
                            "recv() failed ({}) while proxying and reading from {from}{}",
                            error_log::os_error(e),
                            session.context()
                        ),
                    );
                }
                PumpEnd::WriteError(e) => {
                    let (level, to) = match direction {
                        Direction::Upstream => (ErrorLevel::Error, "upstream"),
                        Direction::Downstream => (ErrorLevel::Info, "client"),
                    };
                    error_log::log(
                        level,
                        id,
                        &format!(
                            "send() failed ({}) while proxying and sending to {to}{}",
                            error_log::os_error(e),
                            session.context()
                        ),
                    );
                }
            }
            error_log::log(
                ErrorLevel::Info,
                id,
                &format!("{side} disconnected, {}", session.byte_counts()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_protocol_v1_headers() {
        let addr = |text: &str| -> PeerAddr { text.parse().unwrap() };
        let v4 = proxy_protocol_v1(&addr("127.0.0.1:5000"), &addr("127.0.0.2:80"));
        assert_eq!(v4, "PROXY TCP4 127.0.0.1 127.0.0.2 5000 80\r\n");
        let v6 = proxy_protocol_v1(&addr("[::1]:5000"), &addr("[::1]:81"));
        assert_eq!(v6, "PROXY TCP6 ::1 ::1 5000 81\r\n");
        // A client on a Unix socket has no address to tell.
        let unix = proxy_protocol_v1(&addr("unix:"), &addr("unix:/run/s.sock"));
        assert_eq!(unix, "PROXY UNKNOWN\r\n");
    }
}
