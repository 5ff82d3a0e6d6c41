//! `listen`'s socket parameters reach the listening socket of the running
//! server (read back from the process with pidfd_getfd and getsockopt).

mod support;

use std::os::fd::{FromRawFd, OwnedFd};

use socket2::SockRef;
use support::{free_port, Balancer};

/// The listening socket of process `pid` on TCP `port`, duplicated into
/// this process.
fn listening_socket(pid: i32, port: u16) -> OwnedFd {
    // SAFETY: plain syscalls on integers; a returned fd is owned here.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(
        pidfd >= 0,
        "pidfd_open: {}",
        std::io::Error::last_os_error()
    );
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    use std::os::fd::AsRawFd;
    for target in 0..1024 {
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) };
        if fd < 0 {
            continue;
        }
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let s = SockRef::from(&fd);
        let is_it = s
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|a| a.port() == port)
            && s.r#type().is_ok_and(|t| t == socket2::Type::STREAM);
        if is_it {
            return fd;
        }
    }
    panic!("no listening socket on port {port} in process {pid}");
}

fn int_opt(fd: &OwnedFd, level: i32, name: i32) -> i32 {
    use std::os::fd::AsRawFd;
    let mut value: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: value and len are valid for the call.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_mut(&mut value).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0);
    value
}

#[test]
fn http_listen_parameters_set_the_socket_options() {
    let (tuned, plain) = (free_port(), free_port());
    let b = Balancer::start_http(
        &format!(
            "server {{
                listen 127.0.0.1:{tuned} rcvbuf=40000 sndbuf=30000 so_keepalive=2m:10:5
                       deferred fastopen=7 backlog=33;
                return 200;
            }}
            server {{ listen 127.0.0.1:{plain}; return 200; }}"
        ),
        &[tuned, plain],
    );
    let fd = listening_socket(b.pid(), tuned);
    let s = SockRef::from(&fd);
    // Linux doubles the buffer sizes asked for.
    assert_eq!(s.recv_buffer_size().unwrap(), 80000);
    assert_eq!(s.send_buffer_size().unwrap(), 60000);
    assert!(s.keepalive().unwrap());
    assert_eq!(s.keepalive_time().unwrap().as_secs(), 120);
    assert_eq!(s.keepalive_interval().unwrap().as_secs(), 10);
    assert_eq!(s.keepalive_retries().unwrap(), 5);
    assert!(int_opt(&fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT) > 0);
    assert_eq!(int_opt(&fd, libc::IPPROTO_TCP, libc::TCP_FASTOPEN), 7);
    let fd = listening_socket(b.pid(), plain);
    let s = SockRef::from(&fd);
    assert_ne!(s.recv_buffer_size().unwrap(), 80000);
    assert!(!s.keepalive().unwrap());
    assert_eq!(int_opt(&fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT), 0);
    assert_eq!(int_opt(&fd, libc::IPPROTO_TCP, libc::TCP_FASTOPEN), 0);
}

#[test]
fn stream_listen_parameters_set_the_socket_options() {
    let port = free_port();
    let b = Balancer::start_full(
        &format!(
            "error_log logs/error.log info;\nevents {{}}\nstream {{
                server {{ listen 127.0.0.1:{port} rcvbuf=40000 so_keepalive=on; return x; }}
            }}\n"
        ),
        &[port],
        &[],
    );
    let fd = listening_socket(b.pid(), port);
    let s = SockRef::from(&fd);
    assert_eq!(s.recv_buffer_size().unwrap(), 80000);
    assert!(s.keepalive().unwrap());
}

/// Socket parameters go on one `listen` of an address only, as nginx says.
#[test]
fn options_on_two_listens_of_one_address_fail_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nginx.conf");
    let test = |text: &str| {
        std::fs::write(&conf, format!("events {{}}\nhttp {{\n{text}\n}}\n")).unwrap();
        let out = std::process::Command::new(support::BIN)
            .arg("-t")
            .arg("-c")
            .arg(&conf)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = test(
        "server { listen 127.0.0.1:8080 rcvbuf=8k; server_name a; }\n\
         server { listen 127.0.0.1:8080 backlog=10; server_name b; }",
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "duplicate listen options for 127.0.0.1:8080 in {}:4",
            conf.display()
        )),
        "{err}"
    );
    let (code, err) = test(
        "server { listen 127.0.0.1:8080 rcvbuf=8k; server_name a; }\n\
         server { listen 127.0.0.1:8080; server_name b; }",
    );
    assert_eq!(code, Some(0), "{err}");
}

/// `listen ADDR:FIRST-LAST` listens on every port of the range, each
/// with the server's configuration.
#[test]
fn a_port_range_listens_on_each_port() {
    // Two free ports in a row.
    let first = (0..50)
        .map(|_| free_port())
        .find(|p| *p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok())
        .expect("two free ports in a row");
    let second = first + 1;
    let _b = Balancer::start_http(
        &format!("server {{ listen 127.0.0.1:{first}-{second}; return 200 \"$server_port\"; }}"),
        &[first, second],
    );
    assert_eq!(support::get(first, "/").text(), first.to_string());
    assert_eq!(support::get(second, "/").text(), second.to_string());
}

/// `listen ... proxy_protocol`: the PROXY header (v1 here) names the
/// client for `$proxy_protocol_*` and, from a trusted peer, for
/// `real_ip_header proxy_protocol`; a broken header closes the connection
/// with nginx's error line, and nothing is served.
#[test]
fn a_proxy_protocol_listener_reads_the_header_first() {
    use std::io::{Read, Write};
    let (port, real) = (free_port(), free_port());
    // realip at server level: a location's runs after `return` (nginx's
    // preaccess phase), so that the rewrite phase sees the peer still.
    let balancer = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port} proxy_protocol;
                return 200 \"$proxy_protocol_addr:$proxy_protocol_port $proxy_protocol_server_addr:$proxy_protocol_server_port $remote_addr\";
            }}
            server {{ listen 127.0.0.1:{real} proxy_protocol;
                set_real_ip_from 127.0.0.1; real_ip_header proxy_protocol;
                return 200 \"$remote_addr:$remote_port\";
            }}"
        ),
        &[port, real],
    );
    let ask = |header: &str, path: &str| {
        let port = if path == "/real" { real } else { port };
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(s, "{header}GET {path} HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let v1 = "PROXY TCP4 192.0.2.1 192.0.2.2 123 5678\r\n";
    assert!(
        ask(v1, "/").ends_with("\r\n\r\n192.0.2.1:123 192.0.2.2:5678 127.0.0.1"),
        "{}",
        ask(v1, "/")
    );
    assert!(ask(v1, "/real").ends_with("\r\n\r\n192.0.2.1:123"));
    assert!(ask("PROXY UNKNOWN\r\n", "/").ends_with("\r\n\r\n: : 127.0.0.1"));
    assert_eq!(ask("GARBAGE\r\n", "/"), "");
    support::wait_until(
        std::time::Duration::from_secs(5),
        "the broken header logged",
        || {
            balancer.error_log_text().contains("[error] ")
                && balancer.error_log_text().contains(
                    "broken header: \"GARBAGE\" while reading PROXY protocol, client: 127.0.0.1",
                )
        },
    );
}
