//! nginx's ssl phase of a stream session (`listen ... ssl`): the TLS
//! handshake within `ssl_handshake_timeout`, logged and ended as nginx's
//! stream ssl module ends it (status 500 on any failure or timeout).

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::copy::{CopyEnd, Counters, Shape};
use super::vars::Session;
use crate::observe::{error_log, ErrorLevel};
use crate::transport::tls_server::{Handshake, TlsServer};
use crate::upstream::io::UpstreamIo;

/// Runs the handshake; on success the session knows what was negotiated
/// (`$ssl_*`), on failure the reason is logged and the status is 500.
pub(crate) async fn handshake(
    session: &mut Session,
    tls: &TlsServer,
    client: TcpStream,
) -> Option<TlsStream<TcpStream>> {
    let accepted = tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(client)).await;
    match accepted {
        Ok(Ok(stream)) => {
            session.ssl = Some(Handshake::of(stream.get_ref().1));
            Some(stream)
        }
        Ok(Err(e)) => {
            let message = crate::transport::tls_server::handshake_failure(&e);
            // Client-side failures are info in nginx's stream module.
            error_log::log(
                ErrorLevel::Info,
                Some(session.id),
                &format!("{message} while SSL handshaking{}", session.context()),
            );
            session.status = 500;
            None
        }
        Err(_) => {
            // nginx ends a timed-out handshake without a log line.
            session.status = 500;
            None
        }
    }
}

/// A client connection the content phase can write to and copy from: a
/// bare socket or a terminated TLS stream.
pub(crate) trait Downstream: AsyncRead + AsyncWrite + Unpin {
    /// Copies between this client and `upstream` (see [`super::copy::copy`]).
    fn copy_with<'a>(
        &'a mut self,
        upstream: &'a mut UpstreamIo,
        shape: Shape,
        timeout: Duration,
        counters: &'a Counters,
    ) -> impl Future<Output = CopyEnd> + 'a;
}

impl Downstream for TcpStream {
    fn copy_with<'a>(
        &'a mut self,
        upstream: &'a mut UpstreamIo,
        shape: Shape,
        timeout: Duration,
        counters: &'a Counters,
    ) -> impl Future<Output = CopyEnd> + 'a {
        super::copy::copy(self, upstream, shape, timeout, counters)
    }
}

impl Downstream for TlsStream<TcpStream> {
    fn copy_with<'a>(
        &'a mut self,
        upstream: &'a mut UpstreamIo,
        shape: Shape,
        timeout: Duration,
        counters: &'a Counters,
    ) -> impl Future<Output = CopyEnd> + 'a {
        super::copy::copy_stream(self, upstream, shape, timeout, counters)
    }
}
