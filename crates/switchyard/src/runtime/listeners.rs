//! Listening sockets: bound before the pid file is written, kept across
//! reloads while their address stays in the configuration. TCP sockets,
//! UDP sockets (stream's `listen ... udp`) and Unix-domain stream sockets
//! (`listen unix:PATH`).

use std::fmt::Display;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::Path;

use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};

use crate::config::model::{SoKeepalive, SocketOpts};
use crate::observe::error_log::{self, os_error};
use crate::observe::ErrorLevel;
use crate::upstream::addr::PeerAddr;

/// A bound stream listening socket.
#[derive(Debug)]
pub enum Listener {
    /// `listen ADDRESS:PORT`.
    Tcp(std::net::TcpListener),
    /// `listen unix:PATH`.
    Unix(UnixListener),
}

impl Listener {
    /// Another descriptor of the same socket, for a worker.
    pub fn try_clone(&self) -> std::io::Result<Listener> {
        Ok(match self {
            Listener::Tcp(l) => Listener::Tcp(l.try_clone()?),
            Listener::Unix(l) => Listener::Unix(l.try_clone()?),
        })
    }
}

/// Binds a stream listening socket for `addr`: TCP as [`bind`] does, or a
/// Unix socket as [`bind_unix`] does.
pub fn bind_listener(
    addr: &PeerAddr,
    opts: &SocketOpts,
    ipv6only: bool,
) -> Result<Listener, String> {
    match addr {
        PeerAddr::Inet(a) => bind(*a, opts, ipv6only).map(Listener::Tcp),
        PeerAddr::Unix(path) => bind_unix(path, addr, opts).map(Listener::Unix),
    }
}

/// Binds `listen unix:PATH` as nginx's ngx_open_listening_sockets does:
/// SO_REUSEADDR, bind (a file already at the path is not removed: the
/// bind fails with nginx's `bind() to unix:PATH failed (98: Address
/// already in use)`), the file made writable by all (chmod 0666; a
/// failure is nginx's emerg line, not fatal), then listen. The options
/// only TCP has (`deferred`, `fastopen=`, `so_keepalive`'s timers) fail on
/// it as in nginx, which logs each as an alert and goes on.
pub fn bind_unix(path: &Path, addr: &PeerAddr, opts: &SocketOpts) -> Result<UnixListener, String> {
    let socket =
        Socket::new(Domain::UNIX, Type::STREAM, None).map_err(|e| failed("socket", addr, e))?;
    let set = |e: std::io::Error| failed("setsockopt", addr, e);
    socket.set_reuse_address(true).map_err(set)?;
    socket
        .set_nonblocking(true)
        .map_err(|e| failed("ioctl", addr, e))?;
    let sockaddr = SockAddr::unix(path).map_err(|e| failed("bind", addr, e))?;
    socket
        .bind(&sockaddr)
        .map_err(|e| failed("bind", addr, e))?;
    if let Err(e) =
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o666))
    {
        error_log::log(
            ErrorLevel::Emerg,
            None,
            &format!("chmod() \"{}\" failed ({})", path.display(), os_error(&e)),
        );
    }
    socket
        .listen(opts.backlog)
        .map_err(|e| failed("listen", addr, e))?;
    // ngx_configure_listening_sockets: buffer sizes and SO_KEEPALIVE apply
    // to any socket; TCP's own options are tried and their failure logged.
    let ignored = |what: String, e: std::io::Error| {
        error_log::log(
            ErrorLevel::Alert,
            None,
            &format!("{what} {addr} failed, ignored ({})", os_error(&e)),
        );
    };
    if let Some(n) = opts.rcvbuf {
        if let Err(e) = socket.set_recv_buffer_size(n) {
            ignored(format!("setsockopt(SO_RCVBUF, {n})"), e);
        }
    }
    if let Some(n) = opts.sndbuf {
        if let Err(e) = socket.set_send_buffer_size(n) {
            ignored(format!("setsockopt(SO_SNDBUF, {n})"), e);
        }
    }
    if let Some(keepalive) = opts.keepalive {
        let on = !matches!(keepalive, SoKeepalive::Off);
        if let Err(e) = socket.set_keepalive(on) {
            ignored(format!("setsockopt(SO_KEEPALIVE, {})", i32::from(on)), e);
        }
        if let SoKeepalive::On {
            idle,
            interval,
            count,
        } = keepalive
        {
            for (name, option, value) in [
                ("TCP_KEEPIDLE", libc::TCP_KEEPIDLE, idle),
                ("TCP_KEEPINTVL", libc::TCP_KEEPINTVL, interval),
                ("TCP_KEEPCNT", libc::TCP_KEEPCNT, count),
            ] {
                if let Some(v) = value {
                    let v = i32::try_from(v).unwrap_or(i32::MAX);
                    if let Err(e) = setsockopt_int(&socket, libc::IPPROTO_TCP, option, v) {
                        ignored(format!("setsockopt({name}, {v})"), e);
                    }
                }
            }
        }
    }
    if let Some(n) = opts.fastopen {
        let n = i32::try_from(n).unwrap_or(i32::MAX);
        if let Err(e) = setsockopt_int(&socket, libc::IPPROTO_TCP, libc::TCP_FASTOPEN, n) {
            ignored("setsockopt(TCP_FASTOPEN)".to_string(), e);
        }
    }
    if opts.deferred {
        if let Err(e) = setsockopt_int(&socket, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, 1) {
            ignored("setsockopt(TCP_DEFER_ACCEPT, 1) for".to_string(), e);
        }
    }
    Ok(UnixListener::from(std::os::fd::OwnedFd::from(socket)))
}

/// Removes a Unix socket's file, as nginx does when it stops listening on
/// it (at exit, or when a reload drops the `listen`): its failure is
/// nginx's emerg line.
pub fn unlink_unix(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        error_log::log(
            ErrorLevel::Emerg,
            None,
            &format!("unlink() {} failed ({})", path.display(), os_error(&e)),
        );
    }
}

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
fn failed(call: &str, addr: impl Display, e: std::io::Error) -> String {
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
