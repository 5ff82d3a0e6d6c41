//! nginx's preread phase: with `ssl_preread on`, the client's first bytes
//! are peeked at (they stay in the socket, for the upstream) until they
//! hold a whole TLS ClientHello or show they are not one.

use tokio::net::TcpStream;

use super::vars::Session;
use crate::config::model::StreamServer;
use crate::observe::{error_log, ErrorLevel};

/// nginx's preread phase with `ssl_preread on`: peeks at the client's
/// first bytes (they stay in the socket for the upstream) until they hold
/// a whole ClientHello, are not one, or `preread_buffer_size` is full.
/// Returns false when the session ends here: on `preread_timeout` or
/// EOF (status 200, as nginx), or a full buffer (400).
pub async fn preread(session: &mut Session, server: &StreamServer, client: &TcpStream) -> bool {
    use super::ssl_preread::{parse, Preread};
    let mut buf = vec![0u8; server.preread_buffer_size.max(1)];
    let mut seen = 0;
    let deadline = tokio::time::Instant::now() + server.preread_timeout;
    // Bytes of a hello not whole yet: nginx's module has its context, so
    // a session that ends here logs its variables found (and empty).
    let partial = |session: &mut Session, seen: usize| {
        if seen > 0 {
            session.ssl_preread = Some(super::ssl_preread::ClientHello::default());
        }
    };
    loop {
        let peeked = tokio::time::timeout_at(deadline, peek_more(client, &mut buf, seen)).await;
        let n = match peeked {
            Err(_) => {
                // Timed out: nginx ends the session with 200.
                partial(session, seen);
                return false;
            }
            Ok(Ok(0)) => {
                partial(session, seen);
                return false;
            }
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                error_log::log(
                    ErrorLevel::Info,
                    Some(session.id),
                    &format!(
                        "recv() failed ({}){}",
                        error_log::os_error(&e),
                        session.context()
                    ),
                );
                partial(session, seen);
                return false;
            }
        };
        seen = n;
        match parse(&buf[..n]) {
            Preread::Hello(hello) => {
                session.ssl_preread = Some(hello);
                return true;
            }
            Preread::NotHello => return true,
            Preread::NeedMore if n < buf.len() => continue,
            Preread::NeedMore => {
                partial(session, seen);
                error_log::error(
                    Some(session.id),
                    &format!("preread buffer full{}", session.context()),
                );
                session.status = 400;
                return false;
            }
        }
    }
}

/// Peeks at what the client has sent, waiting until there is more than
/// `seen` bytes (or EOF, with or without bytes unread: 0). A peek that finds
/// nothing new clears the socket's readiness, so the wait is for new bytes,
/// not a spin.
async fn peek_more(client: &TcpStream, buf: &mut [u8], seen: usize) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    loop {
        let ready = client.ready(tokio::io::Interest::READABLE).await?;
        let result = client.try_io(tokio::io::Interest::READABLE, || {
            // SAFETY: buf is a valid, writable buffer of buf.len() bytes
            // for the duration of the call.
            let n = unsafe {
                libc::recv(
                    client.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_PEEK,
                )
            };
            match n {
                n if n < 0 => Err(std::io::Error::last_os_error()),
                0 => Ok(0),
                n if n as usize > seen => Ok(n as usize),
                // Nothing new, and the client has shut its side: nginx's
                // pending EOF, the end of the preread.
                _ if ready.is_read_closed() => Ok(0),
                // Nothing new since the last look: wait for the next bytes.
                _ => Err(std::io::ErrorKind::WouldBlock.into()),
            }
        });
        match result {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}
