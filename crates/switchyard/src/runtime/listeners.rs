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
    let fail =
        |call: &str, e: std::io::Error| format!("{call}() to {addr} failed ({})", os_error(&e));
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| fail("socket", e))?;
    socket
        .set_reuse_address(true)
        .map_err(|e| fail("setsockopt", e))?;
    if addr.is_ipv6() {
        socket
            .set_only_v6(ipv6only)
            .map_err(|e| fail("setsockopt", e))?;
    }
    socket.set_nonblocking(true).map_err(|e| fail("ioctl", e))?;
    socket.bind(&addr.into()).map_err(|e| fail("bind", e))?;
    socket.listen(backlog).map_err(|e| fail("listen", e))?;
    Ok(socket.into())
}

/// Binds a UDP `addr` for `listen ... udp` (SO_REUSEADDR, IPV6_V6ONLY);
/// errors in nginx's words as for TCP.
pub fn bind_udp(addr: SocketAddr, ipv6only: bool) -> Result<std::net::UdpSocket, String> {
    let fail =
        |call: &str, e: std::io::Error| format!("{call}() to {addr} failed ({})", os_error(&e));
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| fail("socket", e))?;
    socket
        .set_reuse_address(true)
        .map_err(|e| fail("setsockopt", e))?;
    if addr.is_ipv6() {
        socket
            .set_only_v6(ipv6only)
            .map_err(|e| fail("setsockopt", e))?;
    }
    socket.set_nonblocking(true).map_err(|e| fail("ioctl", e))?;
    socket.bind(&addr.into()).map_err(|e| fail("bind", e))?;
    Ok(socket.into())
}
