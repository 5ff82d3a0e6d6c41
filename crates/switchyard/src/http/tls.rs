//! TLS termination on an http `listen ... ssl` address (ngx_http_ssl_module):
//! the handshake before the first request. The client's SNI picks the
//! server whose certificate is served, by nginx's virtual-server rules
//! (ngx_http_ssl_servername); no SNI, or a name no server has, gets the
//! address's default server. Requests are still routed by their Host, as
//! in nginx. The handshake is bounded by `client_header_timeout`, as
//! nginx's post-accept timer bounds it; failures are logged at `info`, as
//! nginx logs what clients do wrong.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::generation::Generation;
use super::route::select_server;
use crate::observe::{error_log, ErrorLevel};
use crate::transport::tls_server::{handshake_failure, Handshake};

/// Who is shaking hands, for the log lines.
pub struct Peer {
    /// The connection's serial number.
    pub id: u64,
    /// The client's address.
    pub remote: std::net::SocketAddr,
    /// The address it connected to.
    pub local: std::net::SocketAddr,
}

impl Peer {
    fn log(&self, message: &str) {
        error_log::log(
            ErrorLevel::Info,
            Some(self.id),
            &format!(
                "{message} while SSL handshaking, client: {}, server: {}",
                self.remote.ip(),
                self.local
            ),
        );
    }
}

/// What the first byte on a TLS address says.
pub enum FirstByte {
    /// A TLS (or SSLv2-style) ClientHello: shake hands.
    Tls,
    /// Anything else: plain HTTP, which nginx reads and answers with its
    /// 497 (`The plain HTTP request was sent to HTTPS port`).
    Plain,
    /// The client closed, or sent nothing in time.
    Gone,
}

/// Looks at the first byte without taking it, as nginx's
/// ngx_http_ssl_handshake peeks: 0x16 starts a TLS record, a set high bit
/// an SSLv2-style hello.
pub async fn first_byte(tcp: &TcpStream, peer: &Peer, timeout: Duration) -> FirstByte {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(timeout, tcp.peek(&mut byte)).await {
        Ok(Ok(1..)) if byte[0] == 0x16 || byte[0] & 0x80 != 0 => FirstByte::Tls,
        Ok(Ok(1..)) => FirstByte::Plain,
        Ok(_) => FirstByte::Gone,
        Err(_) => {
            peer.log("client timed out (110: Connection timed out)");
            FirstByte::Gone
        }
    }
}

/// Runs the server side of the handshake within `timeout`; `None` when it
/// failed (logged) and the connection is to be closed.
pub async fn accept(
    tcp: TcpStream,
    generation: &Arc<Generation>,
    peer: &Peer,
    timeout: Duration,
) -> Option<(TlsStream<TcpStream>, Handshake)> {
    let deadline = Instant::now() + timeout;
    let lazy = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
    let start = match tokio::time::timeout_at(deadline.into(), lazy).await {
        Ok(Ok(start)) => start,
        Ok(Err(e)) => {
            peer.log(&handshake_failure(&e));
            return None;
        }
        Err(_) => {
            peer.log("client timed out (110: Connection timed out)");
            return None;
        }
    };
    let sni = start.client_hello().server_name().map(str::to_string);
    let servers = generation.servers_for(peer.local);
    let Some(tls) = select_server(servers, sni.as_deref()).and_then(|s| s.tls.clone()) else {
        peer.log("no \"ssl_certificate\" is defined in server listening on SSL port");
        return None;
    };
    let config = tls.acceptor.config().clone();
    match tokio::time::timeout_at(deadline.into(), start.into_stream(config)).await {
        Ok(Ok(stream)) => {
            let handshake = Handshake::of(stream.get_ref().1);
            Some((stream, handshake))
        }
        Ok(Err(e)) => {
            peer.log(&handshake_failure(&e));
            None
        }
        Err(_) => {
            peer.log("client timed out (110: Connection timed out)");
            None
        }
    }
}
