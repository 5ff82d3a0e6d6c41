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
