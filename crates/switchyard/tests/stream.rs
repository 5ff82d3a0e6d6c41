//! The stream module against real TCP backends on loopback: round robin,
//! the next upstream after a refused peer, proxy_timeout, half-close, the
//! access-log line, and a reload that lets a session in flight finish.
//! nginx's stream module is the spec.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{free_port, wait_until, Balancer};

/// A TCP backend on an ephemeral loopback port: each connection is served
/// by `handle` on a thread of its own.
struct Backend {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl Backend {
    fn start(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let addr = listener.local_addr().expect("backend address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let handle = Arc::new(handle);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let handle = handle.clone();
                std::thread::spawn(move || handle(stream));
            }
        });
        Backend { addr, accepted }
    }

    /// Answers every read with `name` followed by what it read.
    fn named(name: &'static str) -> Backend {
        Backend::start(move |mut s| {
            let mut buf = [0u8; 1024];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut reply = name.as_bytes().to_vec();
                reply.extend_from_slice(&buf[..n]);
                if s.write_all(&reply).is_err() {
                    break;
                }
            }
        })
    }
}

/// An address nothing listens on (bound, then released).
fn refused_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

fn start(stream_body: &str) -> Balancer {
    Balancer::start_full(
        &format!(
            "error_log logs/error.log info;\nevents {{}}\nstream {{\n\
             log_format basic \"$remote_addr $upstream_addr $status $bytes_sent $bytes_received $protocol $upstream_bytes_sent $upstream_bytes_received\";\n\
             access_log logs/access.log basic;\n{stream_body}\n}}\n"
        ),
        &[],
        &[],
    )
}

fn connect(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                return s;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot connect to {port}: {e}"),
        }
    }
}

/// Sends `message` and reads until `want` bytes came or the peer closed.
fn exchange(port: u16, message: &[u8], want: usize) -> Vec<u8> {
    let mut s = connect(port);
    s.write_all(message).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while got.len() < want {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

#[test]
fn round_robin_across_tcp_backends() {
    let (a, b) = (Backend::named("A"), Backend::named("B"));
    let port = free_port();
    let lb = start(&format!(
        "upstream u {{ server {}; server {}; }}\n\
         server {{ listen 127.0.0.1:{port}; proxy_pass u; }}",
        a.addr, b.addr
    ));
    let mut seen = String::new();
    for _ in 0..6 {
        let reply = exchange(port, b"x", 2);
        seen.push(*reply.first().expect("a reply") as char);
    }
    assert!(
        seen == "ABABAB" || seen == "BABABA",
        "sessions alternate between the backends: {seen}"
    );
    assert_eq!(a.accepted.load(Ordering::SeqCst), 3);
    assert_eq!(b.accepted.load(Ordering::SeqCst), 3);
    drop(lb);
}

#[test]
fn next_upstream_after_a_refused_peer_and_502_without_it() {
    let live = Backend::named("L");
    let dead = refused_addr();
    let (port, strict) = (free_port(), free_port());
    let lb = start(&format!(
        "upstream u {{ server {dead}; server {}; }}\n\
         upstream only {{ server {dead}; }}\n\
         server {{ listen 127.0.0.1:{port}; proxy_pass u; }}\n\
         server {{ listen 127.0.0.1:{strict}; proxy_pass only; }}",
        live.addr
    ));
    for _ in 0..4 {
        assert_eq!(
            exchange(port, b"q", 2),
            b"Lq",
            "every session reaches the live peer"
        );
    }
    let wanted = format!(
        "connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: 127.0.0.1:{port}, upstream: \"{dead}\", bytes from/to client:0/0, bytes from/to upstream:0/0"
    );
    wait_until(Duration::from_secs(5), "the connect() failure", || {
        lb.error_log_text().contains(&wanted)
    });
    // The first session tried the dead peer, then the live one.
    wait_until(Duration::from_secs(5), "four access-log lines", || {
        lb.access_lines().len() >= 4
    });
    let first = &lb.access_lines()[0];
    assert_eq!(
        first,
        &format!("127.0.0.1 {dead}, {} 200 2 1 TCP 0, 1 0, 2", live.addr),
        "{first}"
    );
    // A group with no live peer: the session closes at once, logged 502.
    let mut s = connect(strict);
    assert!(read_to_end(&mut s).is_empty(), "nothing is proxied");
    wait_until(Duration::from_secs(5), "the 502 line", || {
        lb.access_lines()
            .iter()
            .any(|l| l == &format!("127.0.0.1 {dead} 502 0 0 TCP 0 0"))
    });
}

#[test]
fn proxy_next_upstream_off_stops_at_the_first_failure() {
    let live = Backend::named("L");
    let dead = refused_addr();
    let port = free_port();
    let lb = start(&format!(
        "upstream u {{ server {dead} max_fails=0; server {} max_fails=0; }}\n\
         server {{ listen 127.0.0.1:{port}; proxy_pass u; proxy_next_upstream off; }}",
        live.addr
    ));
    let replies: Vec<Vec<u8>> = (0..2).map(|_| exchange(port, b"q", 2)).collect();
    assert!(
        replies.iter().any(|r| r.is_empty()),
        "the session that picked the dead peer is not moved on: {replies:?}"
    );
    assert!(replies.iter().any(|r| r == b"Lq"), "{replies:?}");
    drop(lb);
}

#[test]
fn proxy_timeout_closes_an_idle_session() {
    // A backend that reads and never answers.
    let silent = Backend::start(|mut s| {
        let mut buf = [0u8; 64];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    });
    let port = free_port();
    let lb = start(&format!(
        "server {{ listen 127.0.0.1:{port}; proxy_pass {}; proxy_timeout 1s; }}",
        silent.addr
    ));
    let mut s = connect(port);
    s.write_all(b"hello").unwrap();
    let started = Instant::now();
    assert!(read_to_end(&mut s).is_empty());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "closed after {took:?}, proxy_timeout is 1s"
    );
    wait_until(Duration::from_secs(5), "the timeout line", || {
        lb.error_log_text().contains(&format!(
            "connection timed out (110: Connection timed out) while proxying connection, client: 127.0.0.1, server: 127.0.0.1:{port}, upstream: \"{}\", bytes from/to client:5/0, bytes from/to upstream:0/5",
            silent.addr
        ))
    });
}

/// A backend that reads until the client's end, then answers and closes.
fn answers_after_eof() -> Backend {
    Backend::start(|mut s| {
        let got = read_to_end(&mut s);
        let _ = s.write_all(format!("got {}", got.len()).as_bytes());
    })
}

#[test]
fn half_close_passes_the_end_of_one_direction() {
    let backend = answers_after_eof();
    let (on, off) = (free_port(), free_port());
    let _lb = start(&format!(
        "server {{ listen 127.0.0.1:{on}; proxy_pass {0}; proxy_half_close on; }}\n\
         server {{ listen 127.0.0.1:{off}; proxy_pass {0}; }}",
        backend.addr
    ));
    let mut s = connect(on);
    s.write_all(b"four").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        read_to_end(&mut s),
        b"got 4",
        "with proxy_half_close the answer after the client's end comes back"
    );
    // Without it (nginx's default) the client's end ends the session.
    let mut s = connect(off);
    s.write_all(b"four").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert!(read_to_end(&mut s).is_empty());
}

#[test]
fn access_log_line_of_a_session() {
    let backend = Backend::named("B");
    let port = free_port();
    let lb = start(&format!(
        "server {{ listen 127.0.0.1:{port}; proxy_pass {}; }}",
        backend.addr
    ));
    let mut s = connect(port);
    s.write_all(b"abc").unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"Babc");
    drop(s);
    wait_until(Duration::from_secs(5), "the access-log line", || {
        !lb.access_lines().is_empty()
    });
    assert_eq!(
        lb.access_lines(),
        vec![format!("127.0.0.1 {} 200 4 3 TCP 3 4", backend.addr)]
    );
    assert!(
        lb.error_log_text()
            .contains("client disconnected, bytes from/to client:3/4, bytes from/to upstream:4/3"),
        "{}",
        lb.error_log_text()
    );
}

#[test]
fn reload_lets_a_session_in_flight_finish() {
    let (old, new) = (Backend::named("O"), Backend::named("N"));
    let port = free_port();
    let conf = |addr: SocketAddr| {
        format!(
            "error_log logs/error.log info;\nevents {{}}\nstream {{\n\
             server {{ listen 127.0.0.1:{port}; proxy_pass {addr}; }}\n}}\n"
        )
    };
    let lb = Balancer::start_full(&conf(old.addr), &[], &[]);
    let mut s = connect(port);
    s.write_all(b"1").unwrap();
    let mut buf = [0u8; 2];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"O1");
    lb.rewrite_conf(&conf(new.addr));
    lb.signal(libc::SIGHUP);
    wait_until(
        Duration::from_secs(10),
        "a new session on the new backend",
        || exchange(port, b"2", 2) == b"N2",
    );
    // The session opened before the reload is still proxied to the old one.
    s.write_all(b"3").unwrap();
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"O3");
}

/// With `worker_shutdown_timeout`, a session of a replaced configuration
/// is closed that long after the reload, as nginx's old worker closes the
/// connections it still holds; without it the session goes on (above).
#[test]
fn reload_closes_old_sessions_after_worker_shutdown_timeout() {
    let backend = Backend::named("O");
    let port = free_port();
    let conf = |extra: &str| {
        format!(
            "error_log logs/error.log info;\nworker_shutdown_timeout 50ms;\nevents {{}}\nstream {{\n\
             server {{ listen 127.0.0.1:{port}; proxy_pass {}; {extra} }}\n}}\n",
            backend.addr
        )
    };
    let lb = Balancer::start_full(&conf(""), &[], &[]);
    let mut s = connect(port);
    s.write_all(b"1").unwrap();
    let mut buf = [0u8; 2];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"O1");
    lb.rewrite_conf(&conf("proxy_timeout 1h;"));
    lb.signal(libc::SIGHUP);
    // The close comes 50 ms after the reload takes: the read sees the end
    // well within its 10 s timeout (a session left open would time it out).
    let started = Instant::now();
    assert!(read_to_end(&mut s).is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

/// A UDP backend answering each datagram with `name` and what it got.
fn udp_backend(name: &'static str) -> SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp backend");
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let mut reply = name.as_bytes().to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = socket.send_to(&reply, from);
        }
    });
    addr
}

/// A free UDP port on loopback (bound, then released).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free udp port")
}

#[test]
fn udp_round_robin_with_proxy_responses() {
    let (a, b) = (udp_backend("A"), udp_backend("B"));
    let port = free_udp_port();
    let lb = start(&format!(
        "upstream u {{ server {a}; server {b}; }}\n\
         server {{ listen 127.0.0.1:{port} udp; proxy_pass u; proxy_responses 1; proxy_timeout 2s; }}"
    ));
    let mut seen = String::new();
    for i in 0..4 {
        // A new client address each time: a new session.
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 64];
        // Datagrams may be lost before the listener is up: bounded retries.
        let n = (0..20)
            .find_map(|_| {
                client.send_to(b"q", ("127.0.0.1", port)).ok()?;
                client.recv(&mut buf).ok()
            })
            .unwrap_or_else(|| panic!("no answer to datagram {i}"));
        assert_eq!(&buf[1..n], b"q");
        seen.push(buf[0] as char);
    }
    assert!(seen == "ABAB" || seen == "BABA", "{seen}");
    wait_until(Duration::from_secs(5), "four UDP access-log lines", || {
        lb.access_lines().len() >= 4
    });
    let line = &lb.access_lines()[0];
    assert!(
        line.ends_with(" 200 2 1 UDP 1 2"),
        "one datagram each way, logged as UDP: {line}"
    );
}

#[test]
fn deny_closes_with_403_and_allow_lets_through() {
    let backend = Backend::named("B");
    let (open, closed) = (free_port(), free_port());
    let lb = start(&format!(
        "server {{ listen 127.0.0.1:{open}; allow 127.0.0.1; deny all; proxy_pass {0}; }}\n\
         server {{ listen 127.0.0.1:{closed}; deny 127.0.0.0/8; proxy_pass {0}; }}",
        backend.addr
    ));
    assert_eq!(exchange(open, b"x", 2), b"Bx");
    let mut s = connect(closed);
    assert!(
        read_to_end(&mut s).is_empty(),
        "a denied client gets nothing"
    );
    wait_until(Duration::from_secs(5), "the 403 line", || {
        lb.access_lines()
            .iter()
            .any(|l| l == "127.0.0.1 - 403 0 0 TCP - -")
    });
    assert!(lb.error_log_text().contains(&format!(
        "access forbidden by rule, client: 127.0.0.1, server: 127.0.0.1:{closed}"
    )));
    assert_eq!(
        backend.accepted.load(Ordering::SeqCst),
        1,
        "only the allowed session reached it"
    );
}

#[test]
fn limit_conn_refuses_a_second_session_with_503() {
    let backend = Backend::named("B");
    let port = free_port();
    let lb = start(&format!(
        "limit_conn_zone $remote_addr zone=one:1m;\n\
         server {{ listen 127.0.0.1:{port}; limit_conn one 1; proxy_pass {}; }}",
        backend.addr
    ));
    let mut first = connect(port);
    first.write_all(b"1").unwrap();
    let mut buf = [0u8; 2];
    first.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"B1", "the first session is proxied");
    let mut second = connect(port);
    assert!(read_to_end(&mut second).is_empty(), "the second is refused");
    wait_until(Duration::from_secs(5), "the 503 line", || {
        lb.access_lines().iter().any(|l| l.contains(" 503 "))
    });
    assert!(lb
        .error_log_text()
        .contains("limiting connections by zone \"one\", client: 127.0.0.1"));
    // Once the first ends, its count is given back.
    drop(first);
    wait_until(Duration::from_secs(5), "a session admitted again", || {
        exchange(port, b"3", 2) == b"B3"
    });
}

#[test]
fn proxy_protocol_header_is_seen_by_the_backend() {
    // Echoes everything it reads, unprefixed.
    let backend = Backend::start(|mut s| {
        let mut buf = [0u8; 1024];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 || s.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let port = free_port();
    let _lb = start(&format!(
        "server {{ listen 127.0.0.1:{port}; proxy_pass {}; proxy_protocol on; }}",
        backend.addr
    ));
    let mut s = connect(port);
    let client_port = s.local_addr().unwrap().port();
    s.write_all(b"data").unwrap();
    let wanted = format!("PROXY TCP4 127.0.0.1 127.0.0.1 {client_port} {port}\r\ndata");
    let mut got = vec![0u8; wanted.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), wanted);
}

#[test]
fn listen_proxy_protocol_reads_the_header_and_refuses_garbage() {
    let backend = Backend::named("B");
    let port = free_port();
    let lb = Balancer::start_full(
        &format!(
            "error_log logs/error.log info;\nevents {{}}\nstream {{\n\
             log_format pp \"$proxy_protocol_addr:$proxy_protocol_port $remote_addr $status\";\n\
             server {{ listen 127.0.0.1:{port} proxy_protocol; proxy_pass {}; access_log logs/access.log pp; }}\n}}\n",
            backend.addr
        ),
        &[],
        &[],
    );
    let mut s = connect(port);
    s.write_all(b"PROXY TCP4 192.0.2.1 192.0.2.2 1111 80\r\nping")
        .unwrap();
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(
        &buf, b"Bping",
        "the backend gets the bytes after the header only"
    );
    drop(s);
    let mut s = connect(port);
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert!(read_to_end(&mut s).is_empty());
    wait_until(Duration::from_secs(5), "two access-log lines", || {
        lb.access_lines().len() >= 2
    });
    let mut lines = lb.access_lines();
    lines.sort();
    assert_eq!(
        lines,
        vec!["-:- 127.0.0.1 400", "192.0.2.1:1111 127.0.0.1 200"]
    );
    assert!(lb.error_log_text().contains(
        "broken header: \"GET / HTTP/1.0\" while reading PROXY protocol, client: 127.0.0.1"
    ));
}

#[test]
fn proxy_pass_with_variables_picks_per_session() {
    let (a, b) = (Backend::named("A"), Backend::named("B"));
    let (to_group, to_addr, to_name) = (free_port(), free_port(), free_port());
    let lb = start(&format!(
        "upstream grp {{ server {a}; }}\n\
         map $server_port $target {{ {to_group} grp; {to_addr} {b}; default nowhere.example:1; }}\n\
         server {{ listen 127.0.0.1:{to_group}; listen 127.0.0.1:{to_addr}; listen 127.0.0.1:{to_name}; proxy_pass $target; }}",
        a = a.addr,
        b = b.addr
    ));
    assert_eq!(exchange(to_group, b"1", 2), b"A1", "a value naming a group");
    assert_eq!(exchange(to_addr, b"2", 2), b"B2", "an address:port value");
    let mut s = connect(to_name);
    assert!(
        read_to_end(&mut s).is_empty(),
        "a host name needs a resolver"
    );
    wait_until(Duration::from_secs(5), "the resolver line", || {
        lb.error_log_text()
            .contains("no resolver defined to resolve nowhere.example, client: 127.0.0.1")
    });
    wait_until(Duration::from_secs(5), "the 500 line", || {
        lb.access_lines().iter().any(|l| l.contains(" 500 "))
    });
}

#[test]
fn status_json_shows_stream_upstreams() {
    let backend = Backend::named("B");
    let (stream_port, http_port) = (free_port(), free_port());
    let _lb = Balancer::start_full(
        &format!(
            "events {{}}\n\
             http {{ server {{ listen 127.0.0.1:{http_port}; location /status {{ status_page; }} }} }}\n\
             stream {{ upstream u {{ server {}; }} server {{ listen 127.0.0.1:{stream_port}; proxy_pass u; }} }}\n",
            backend.addr
        ),
        &[http_port],
        &[],
    );
    assert_eq!(exchange(stream_port, b"x", 2), b"Bx");
    let status = support::get(http_port, "/status.json").text();
    let json: serde_json::Value = serde_json::from_str(&status).expect("json");
    let groups = json["upstreams"].as_array().expect("upstreams");
    let group = groups
        .iter()
        .find(|g| g["name"] == "stream:u")
        .unwrap_or_else(|| panic!("no stream:u in {status}"));
    assert_eq!(group["peers"][0]["peer"], backend.addr.to_string());
    assert_eq!(group["peers"][0]["requests"], 1);
}

#[test]
fn proxy_download_rate_paces_the_bytes_to_the_client() {
    // Sends 2000 bytes as soon as it reads anything, then closes.
    let bulk = Backend::start(|mut s| {
        let mut buf = [0u8; 16];
        if s.read(&mut buf).is_ok() {
            let _ = s.write_all(&[b'z'; 2000]);
        }
    });
    let port = free_port();
    let _lb = start(&format!(
        "server {{ listen 127.0.0.1:{port}; proxy_pass {}; proxy_download_rate 1000; }}",
        bulk.addr
    ));
    let mut s = connect(port);
    let started = Instant::now();
    s.write_all(b"go").unwrap();
    let got = read_to_end(&mut s);
    let took = started.elapsed();
    assert_eq!(got.len(), 2000, "every byte arrives");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "2000 bytes at 1000 bytes/s took {took:?}"
    );
}

#[test]
fn proxy_bind_sets_the_source_address() {
    // Answers with the address the connection came from.
    let backend = Backend::start(|mut s| {
        let from = s
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let mut buf = [0u8; 16];
        if s.read(&mut buf).is_ok() {
            let _ = s.write_all(from.as_bytes());
        }
    });
    let port = free_port();
    let _lb = start(&format!(
        "server {{ listen 127.0.0.1:{port}; proxy_pass {}; proxy_bind 127.0.0.2; }}",
        backend.addr
    ));
    let mut s = connect(port);
    s.write_all(b"who").unwrap();
    assert_eq!(read_to_end(&mut s), b"127.0.0.2");
}
