//! Listening sockets: bound before the pid file is written, kept across
//! reloads while their address stays in the configuration.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use crate::observe::error_log::os_error;

/// Binds `addr` as nginx does (SO_REUSEADDR, the backlog, IPV6_V6ONLY);
/// the error is nginx's `bind() to ADDR failed (98: Address already in use)`.
pub fn bind(
    addr: SocketAddr,
    backlog: i32,
    ipv6only: bool,
) -> Result<std::net::TcpListener, String> {
    let socket = bound(addr, Type::STREAM, Protocol::TCP, ipv6only)?;
    socket
        .listen(backlog)
        .map_err(|e| failed("listen", addr, e))?;
    Ok(socket.into())
}

/// nginx's words for a failed socket call: `bind() to ADDR failed (98: ...)`.
fn failed(call: &str, addr: SocketAddr, e: std::io::Error) -> String {
    format!("{call}() to {addr} failed ({})", os_error(&e))
}

/// A non-blocking socket of `kind` bound to `addr`, with SO_REUSEADDR and,
/// for IPv6, IPV6_V6ONLY as `ipv6only` says.
fn bound(
    addr: SocketAddr,
    kind: Type,
    protocol: Protocol,
    ipv6only: bool,
) -> Result<Socket, String> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))
        .map_err(|e| failed("socket", addr, e))?;
    socket
        .set_reuse_address(true)
        .map_err(|e| failed("setsockopt", addr, e))?;
    if addr.is_ipv6() {
        socket
            .set_only_v6(ipv6only)
            .map_err(|e| failed("setsockopt", addr, e))?;
    }
    socket
        .set_nonblocking(true)
        .map_err(|e| failed("ioctl", addr, e))?;
    socket
        .bind(&addr.into())
        .map_err(|e| failed("bind", addr, e))?;
    Ok(socket)
}

/// Binds a UDP `addr` for `listen ... udp` (SO_REUSEADDR, IPV6_V6ONLY);
/// errors in nginx's words as for TCP.
pub fn bind_udp(addr: SocketAddr, ipv6only: bool) -> Result<std::net::UdpSocket, String> {
    Ok(bound(addr, Type::DGRAM, Protocol::UDP, ipv6only)?.into())
}
