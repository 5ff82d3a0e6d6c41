//! Listening sockets: bound before the pid file is written, kept across
//! reloads while their address stays in the configuration.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};

use crate::config::model::{SoKeepalive, SocketOpts};
use crate::observe::error_log::os_error;

/// Binds `addr` as nginx does (SO_REUSEADDR, IPV6_V6ONLY, the options of
/// `listen`'s parameters, the backlog); the error is nginx's
/// `bind() to ADDR failed (98: Address already in use)`.
pub fn bind(
    addr: SocketAddr,
    opts: &SocketOpts,
    ipv6only: bool,
) -> Result<std::net::TcpListener, String> {
    let socket = bound(addr, Type::STREAM, Protocol::TCP, opts, ipv6only)?;
    let set = |e: std::io::Error| failed("setsockopt", addr, e);
    match opts.keepalive {
        None => {}
        Some(SoKeepalive::Off) => socket.set_keepalive(false).map_err(set)?,
        Some(SoKeepalive::On {
            idle,
            interval,
            count,
        }) => {
            socket.set_keepalive(true).map_err(set)?;
            let secs = |s: u32| std::time::Duration::from_secs(u64::from(s));
            let mut k = TcpKeepalive::new();
            let mut any = false;
            if let Some(s) = idle {
                k = k.with_time(secs(s));
                any = true;
            }
            if let Some(s) = interval {
                k = k.with_interval(secs(s));
                any = true;
            }
            if let Some(n) = count {
                k = k.with_retries(n);
                any = true;
            }
            if any {
                socket.set_tcp_keepalive(&k).map_err(set)?;
            }
        }
    }
    socket
        .listen(opts.backlog)
        .map_err(|e| failed("listen", addr, e))?;
    // nginx sets these after listen(); a failure is its alert, not fatal.
    if opts.deferred {
        setsockopt_int(&socket, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, 1)
            .map_err(|e| failed("setsockopt(TCP_DEFER_ACCEPT)", addr, e))?;
    }
    if let Some(n) = opts.fastopen {
        let n = i32::try_from(n).unwrap_or(i32::MAX);
        setsockopt_int(&socket, libc::IPPROTO_TCP, libc::TCP_FASTOPEN, n)
            .map_err(|e| failed("setsockopt(TCP_FASTOPEN)", addr, e))?;
    }
    Ok(socket.into())
}

/// An integer socket option socket2 has no setter for.
fn setsockopt_int(socket: &Socket, level: i32, name: i32, value: i32) -> std::io::Result<()> {
    // SAFETY: the fd is open for the call; the value is a c_int of the
    // size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// nginx's words for a failed socket call: `bind() to ADDR failed (98: ...)`.
fn failed(call: &str, addr: SocketAddr, e: std::io::Error) -> String {
    format!("{call}() to {addr} failed ({})", os_error(&e))
}

/// A non-blocking socket of `kind` bound to `addr`, with SO_REUSEADDR,
/// for IPv6 IPV6_V6ONLY as `ipv6only` says, and the buffer sizes.
fn bound(
    addr: SocketAddr,
    kind: Type,
    protocol: Protocol,
    opts: &SocketOpts,
    ipv6only: bool,
) -> Result<Socket, String> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))
        .map_err(|e| failed("socket", addr, e))?;
    let set = |e: std::io::Error| failed("setsockopt", addr, e);
    socket.set_reuse_address(true).map_err(set)?;
    if addr.is_ipv6() {
        socket.set_only_v6(ipv6only).map_err(set)?;
    }
    if let Some(n) = opts.rcvbuf {
        socket.set_recv_buffer_size(n).map_err(set)?;
    }
    if let Some(n) = opts.sndbuf {
        socket.set_send_buffer_size(n).map_err(set)?;
    }
    socket
        .set_nonblocking(true)
        .map_err(|e| failed("ioctl", addr, e))?;
    socket
        .bind(&addr.into())
        .map_err(|e| failed("bind", addr, e))?;
    Ok(socket)
}

/// Binds a UDP `addr` for `listen ... udp` (SO_REUSEADDR, IPV6_V6ONLY,
/// the buffer sizes); errors in nginx's words as for TCP.
pub fn bind_udp(
    addr: SocketAddr,
    opts: &SocketOpts,
    ipv6only: bool,
) -> Result<std::net::UdpSocket, String> {
    Ok(bound(addr, Type::DGRAM, Protocol::UDP, opts, ipv6only)?.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::SockRef;

    fn getsockopt_int(fd: i32, level: i32, name: i32) -> i32 {
        let mut value: i32 = 0;
        let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
        // SAFETY: value and len are valid for the call.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                level,
                name,
                std::ptr::from_mut(&mut value).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        value
    }

    fn any_port() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn buffer_sizes_are_set() {
        let opts = SocketOpts {
            rcvbuf: Some(40000),
            sndbuf: Some(30000),
            ..SocketOpts::default()
        };
        let l = bind(any_port(), &opts, true).unwrap();
        let s = SockRef::from(&l);
        // Linux doubles what is asked for its bookkeeping.
        assert_eq!(s.recv_buffer_size().unwrap(), 2 * 40000);
        assert_eq!(s.send_buffer_size().unwrap(), 2 * 30000);
        let u = bind_udp(any_port(), &opts, true).unwrap();
        assert_eq!(SockRef::from(&u).recv_buffer_size().unwrap(), 2 * 40000);
        let plain = bind(any_port(), &SocketOpts::default(), true).unwrap();
        assert_ne!(SockRef::from(&plain).recv_buffer_size().unwrap(), 2 * 40000);
    }

    #[test]
    fn keepalive_and_its_timers_are_set() {
        let opts = SocketOpts {
            keepalive: Some(SoKeepalive::On {
                idle: Some(30),
                interval: None,
                count: Some(4),
            }),
            ..SocketOpts::default()
        };
        let l = bind(any_port(), &opts, true).unwrap();
        let s = SockRef::from(&l);
        assert!(s.keepalive().unwrap());
        assert_eq!(s.keepalive_time().unwrap().as_secs(), 30);
        assert_eq!(s.keepalive_retries().unwrap(), 4);
        let plain = bind(any_port(), &SocketOpts::default(), true).unwrap();
        assert!(!SockRef::from(&plain).keepalive().unwrap());
    }

    #[test]
    fn deferred_and_fastopen_are_set() {
        let opts = SocketOpts {
            deferred: true,
            fastopen: Some(16),
            ..SocketOpts::default()
        };
        let l = bind(any_port(), &opts, true).unwrap();
        let fd = l.as_raw_fd();
        assert!(getsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT) > 0);
        assert_eq!(
            getsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_FASTOPEN),
            16
        );
        let plain = bind(any_port(), &SocketOpts::default(), true).unwrap();
        let fd = plain.as_raw_fd();
        assert_eq!(
            getsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT),
            0
        );
        assert_eq!(getsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_FASTOPEN), 0);
    }
}
