//! The one HTTP/1 connection driver (http/h1) against raw clients and a
//! raw backend: what passes through keeps its bytes (header names as they
//! were spelled), and every kind of request the driver serves is answered
//! as nginx answers it (HEAD, HTTP/1.0, chunked bodies, `Expect:
//! 100-continue`, upgrades), in nginx's order of header lines.

mod support;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{free_port, read_response, wait_until, Balancer};

/// A backend that records the head and body of every request and answers
/// each with `answer`.
struct Backend {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Backend {
    fn start(answer: &'static [u8]) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(50) {
                let Ok(mut stream) = stream else { continue };
                let sink = sink.clone();
                std::thread::spawn(move || {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    while let Some(request) = read_request(&mut stream) {
                        sink.lock().unwrap().push(request);
                        if stream.write_all(answer).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Backend { addr, seen }
    }

    fn requests(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    }
}

/// Reads one request (head, and a Content-Length body) from `stream`.
fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => request.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    request.extend_from_slice(&body);
    Some(request)
}

fn start(backend: &Backend, extra: &str) -> (Balancer, u16) {
    let port = free_port();
    let balancer = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port};\n\
               location / {{ proxy_pass http://{}; {extra} }}\n\
               location = /made {{ add_header X-IP $remote_addr; add_header x-lower 1; return 200 made; }} }}",
            backend.addr
        ),
        &[port],
    );
    (balancer, port)
}

/// Sends `request` and reads until the balancer closes the connection.
fn send(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The header names of a response head, in order.
fn names(response: &str) -> Vec<&str> {
    let head = response.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split(':').next())
        .collect()
}

#[test]
fn names_pass_as_spelled_both_ways_and_config_names_as_written() {
    let backend = Backend::start(
        b"HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nX-Custom-Name: v\r\nETAG: \"e\"\r\nContent-Length: 2\r\n\r\nok",
    );
    let (_balancer, port) = start(&backend, "proxy_set_header X-Real-IP $remote_addr;");
    let answer = send(
        port,
        b"GET /p HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Key: k\r\nx-lower: 1\r\nConnection: close\r\n\r\n",
    );
    for line in [
        "\r\nset-cookie: a=1\r\n",
        "\r\nX-Custom-Name: v\r\n",
        "\r\nETAG: \"e\"\r\n",
    ] {
        assert!(answer.contains(line), "no {line:?} in {answer:?}");
    }
    let up = &backend.requests()[0];
    for line in [
        "\r\nSec-WebSocket-Key: k\r\n",
        "\r\nx-lower: 1\r\n",
        "\r\nX-Real-IP: 127.0.0.1\r\n",
        "\r\nHost: ",
        "\r\nConnection: close\r\n",
    ] {
        assert!(up.contains(line), "no {line:?} upstream in {up:?}");
    }
    let made = send(
        port,
        b"GET /made HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(made.contains("\r\nX-IP: 127.0.0.1\r\n"), "{made}");
    assert!(made.contains("\r\nx-lower: 1\r\n"), "{made}");
}

#[test]
fn status_line_and_header_lines_come_as_nginx_writes_them() {
    let backend = Backend::start(
        b"HTTP/1.1 200 OK\r\nX-Before: 1\r\nContent-Type: text/plain\r\nX-After: 2\r\nContent-Length: 2\r\n\r\nok",
    );
    let (_balancer, port) = start(&backend, "");
    let answer = send(
        port,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        names(&answer),
        [
            "Server",
            "Date",
            "Content-Type",
            "Content-Length",
            "Connection",
            "X-Before",
            "X-After"
        ],
        "{answer}"
    );
}

#[test]
fn head_keeps_the_length_sends_no_body_and_keeps_the_connection() {
    let backend = Backend::start(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
    let (_balancer, port) = start(&backend, "");
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /made HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(s);
    let head = read_response(&mut reader).unwrap();
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("5"))
    );
    // The next response starts right after the head: no body came.
    let next = read_response(&mut reader).unwrap();
    assert_eq!((next.status, next.text().as_str()), (200, "made"));
}

#[test]
fn http10_gets_an_unknown_length_body_delimited_by_the_close() {
    let backend = Backend::start(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
    );
    let (_balancer, port) = start(&backend, "");
    let answer = send(port, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(!answer.contains("Transfer-Encoding"), "{answer}");
    assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nabcdefg"), "{answer}");
    // HTTP/1.1 gets chunks, in nginx's lower-case hex.
    let answer = send(
        port,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        answer.contains("\r\nTransfer-Encoding: chunked\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with("\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"),
        "{answer}"
    );
}

#[test]
fn chunked_request_bodies_are_decoded_and_sent_with_a_length() {
    let backend = Backend::start(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let (_balancer, port) = start(&backend, "");
    let answer = send(
        port,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let up = &backend.requests()[0];
    assert!(up.contains("\r\nContent-Length: 5\r\n"), "{up}");
    assert!(up.ends_with("\r\n\r\nabcde"), "{up}");
    // A broken coding is nginx's 400, and nothing goes up.
    let answer = send(
        port,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert_eq!(backend.requests().len(), 1);
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_read() {
    let backend = Backend::start(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let (_balancer, port) = start(&backend, "");
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "{rest}");
    assert!(backend.requests()[0].ends_with("\r\n\r\nhello"));
}

#[test]
fn an_upgrade_carries_bytes_sent_right_after_the_head() {
    // The backend answers 101 and then echoes what it reads.
    let addr = support::upgrade_echo_backend("websocket");
    let port = free_port();
    let _balancer = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port};\n\
               location / {{ proxy_pass http://{addr}; proxy_http_version 1.1;\n\
                 proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection upgrade; }} }}"
        ),
        &[port],
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // "early" follows the head in the same write: it is the tunnel's.
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly",
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"early") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{text}"
    );
    s.write_all(b"later").unwrap();
    let mut later = [0u8; 5];
    s.read_exact(&mut later).unwrap();
    assert_eq!(&later, b"later");
}

#[test]
fn an_upgraded_request_is_logged_when_its_tunnel_closes_with_the_tunnel_bytes() {
    let addr = support::upgrade_echo_backend("websocket");
    let port = free_port();
    let balancer = Balancer::start_http(
        &format!(
            "log_format t \"$status $bytes_sent $body_bytes_sent\";\n\
             server {{ listen 127.0.0.1:{port}; access_log logs/tunnel.log t;\n\
               location / {{ proxy_pass http://{addr}; proxy_http_version 1.1;\n\
                 proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection upgrade; }} }}"
        ),
        &[port],
    );
    let log = balancer.conf_path().with_file_name("logs/tunnel.log");
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    for word in [&b"first"[..], b"second!"] {
        s.write_all(word).unwrap();
        while !got.ends_with(word) {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    }
    // The 101 is out and the tunnel open: the request is not finished.
    let open = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(open, "", "logged before the tunnel closed");
    drop(s);
    wait_until(Duration::from_secs(10), "the tunnel's log line", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.ends_with('\n'))
    });
    let head = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!("101 {} 12\n", got.len()),
        "{head}-byte head, then the tunnel's 12"
    );
}

#[test]
fn trace_and_connect_are_not_allowed_and_100_precedes_an_unread_body() {
    let backend = Backend::start(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let (_balancer, port) = start(&backend, "");
    let trace = send(port, b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(trace.starts_with("HTTP/1.1 405 Not Allowed\r\n"), "{trace}");
    let connect = send(port, b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        connect.starts_with("HTTP/1.1 405 Not Allowed\r\n"),
        "{connect}"
    );
    let connect = send(port, b"CONNECT / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(connect.starts_with("HTTP/1.1 400 "), "{connect}");
    // `return` never reads the body: nginx's discard still sends the 100.
    let made = send(
        port,
        b"POST /made HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(
        made.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"),
        "{made}"
    );
    assert!(backend.requests().is_empty());
}
