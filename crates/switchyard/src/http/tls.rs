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

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::generation::Generation;
use super::route::select_server;
use crate::observe::{error_log, ErrorLevel};
use crate::transport::client_cert::{Verdict, VerifyClient};
use crate::transport::tls_server::{handshake_failure, ClientVerification, Handshake};

/// Who is shaking hands, for the log lines.
pub struct Peer {
    /// The connection's serial number.
    pub id: u64,
    /// The client's address.
    pub remote: crate::upstream::addr::PeerAddr,
    /// The address it connected to.
    pub local: crate::upstream::addr::PeerAddr,
}

impl Peer {
    fn log(&self, message: &str) {
        error_log::log(
            ErrorLevel::Info,
            Some(self.id),
            &format!(
                "{message} while SSL handshaking, client: {}, server: {}",
                self.remote.addr_text(),
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
    let curves = crate::transport::tls_server::offered_curves(&start.client_hello());
    let servers = generation.servers_for(&peer.local);
    let chosen = select_server(servers, sni.as_deref());
    if chosen.is_some_and(|s| s.reject_handshake) {
        // nginx's SNI callback answers with a fatal `unrecognized_name`
        // alert: a plaintext alert record (TLSv1.2 record version, as
        // every version's first flight uses).
        let mut io = start.io;
        let _ = io
            .write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70])
            .await;
        let _ = io.shutdown().await;
        peer.log("SSL_do_handshake() failed (SSL: handshake rejected by \"ssl_reject_handshake\")");
        return None;
    }
    // A server without certificates of its own leaves the handshake to the
    // default server's context, as nginx's SNI callback switches only to a
    // server that has one.
    let by_name = chosen.and_then(|s| s.tls.clone());
    let Some(tls) = by_name.or_else(|| select_server(servers, None).and_then(|s| s.tls.clone()))
    else {
        peer.log("no \"ssl_certificate\" is defined in server listening on SSL port");
        return None;
    };
    let config = tls.acceptor.config().clone();
    match tokio::time::timeout_at(deadline.into(), start.into_stream(config)).await {
        Ok(Ok(stream)) => {
            let mut handshake = Handshake::of(stream.get_ref().1);
            handshake.curves = curves;
            if let Some(auth) = &tls.client_auth {
                handshake.client = Some(ClientVerification::of(stream.get_ref().1, auth));
            }
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

/// What nginx's request processing says of a TLS connection's request
/// before anything else (ngx_http_set_virtual_server and
/// ngx_http_process_request): the status it is refused with and the info
/// line logged, if it is.
pub fn refusal(
    handshake: &Handshake,
    server: &crate::config::model::ServerConfig,
    host: Option<&str>,
) -> Option<(u16, String)> {
    let mode = server.verify_client;
    if mode == VerifyClient::Off {
        return None;
    }
    // A Host other than the name the handshake was for may not reach a
    // server that verifies clients: its certificate was checked for
    // another (nginx's 421).
    if let (Some(sni), Some(host)) = (handshake.server_name.as_deref(), host) {
        let host = host.trim_end_matches('.');
        let host = super::route::strip_port(host);
        if !host.eq_ignore_ascii_case(sni) {
            return Some((
                421,
                "client attempted to request the server name different from the one that was negotiated"
                    .to_string(),
            ));
        }
    }
    let verdict = handshake
        .client
        .as_ref()
        .map(|c| c.verdict)
        .unwrap_or_default();
    match verdict {
        Verdict::Failed(code, why)
            if !(mode == VerifyClient::OptionalNoCa && verify_error_optional(code)) =>
        {
            Some((
                495,
                format!("client SSL certificate verify error: ({code}:{why})"),
            ))
        }
        Verdict::None if mode == VerifyClient::On => {
            Some((496, "client sent no required SSL certificate".to_string()))
        }
        _ => None,
    }
}

/// The verification errors `optional_no_ca` lets through (nginx's
/// ngx_ssl_verify_error_optional): those about a missing or untrusted
/// issuer.
fn verify_error_optional(code: u32) -> bool {
    matches!(code, 2 | 18 | 19 | 20 | 21)
}
