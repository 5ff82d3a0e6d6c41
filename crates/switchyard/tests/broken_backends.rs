//! Broken backends (issue 8): raw TCP peers that refuse, reset, hang, lie
//! or stop half way. Each test asserts what the client sees and the error
//! log's line; the last one repeats a broken exchange 2,000 times and
//! checks that the balancer's descriptors and memory come back.

mod support;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{free_port, read_response, wait_until, Balancer};

/// A raw backend: every accepted connection goes to `behave` on its own thread.
fn backend(behave: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let behave = Arc::new(behave);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let behave = behave.clone();
            std::thread::spawn(move || behave(stream));
        }
    });
    addr
}

/// Reads a request head (up to the blank line), returns it.
fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    head
}

/// Closes with a RST instead of a FIN (SO_LINGER 0).
fn reset(stream: TcpStream) {
    let socket = socket2::Socket::from(stream);
    let _ = socket.set_linger(Some(Duration::ZERO));
    drop(socket);
}

fn start(upstream: SocketAddr, extra: &str) -> (Balancer, SocketAddr) {
    let port = free_port();
    let conf = format!(
        "proxy_connect_timeout 1s;\nproxy_read_timeout 1s;\nclient_max_body_size 10m;\n{extra}\n\
         server {{\n    listen 127.0.0.1:{port};\n    location / {{ proxy_pass http://{upstream}; }}\n}}\n"
    );
    let balancer = Balancer::start_http(&conf, &[port]);
    (balancer, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// `GET /` with `Connection: close`; every byte the client receives.
fn get_raw(addr: SocketAddr) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => panic!("no end in 10 s"),
            Err(_) => break,
        }
    }
    out
}

fn status_of(raw: &[u8]) -> u16 {
    read_response(&mut BufReader::new(raw))
        .map(|r| r.status)
        .unwrap_or(0)
}

fn expect_log(balancer: &Balancer, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !balancer.error_log_text().contains(line) {
        assert!(
            Instant::now() < deadline,
            "no {line:?} in the error log:\n{}",
            balancer.error_log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn split_head(raw: &[u8]) -> (String, &[u8]) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    (
        String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase(),
        &raw[end..],
    )
}

#[test]
fn refusing_backend_gives_502() {
    let port = free_port();
    let (balancer, addr) = start(SocketAddr::from(([127, 0, 0, 1], port)), "");
    assert_eq!(status_of(&get_raw(addr)), 502);
    expect_log(
        &balancer,
        "connect() failed (111: Connection refused) while connecting to upstream",
    );
}

#[test]
fn resetting_backend_gives_502() {
    let upstream = backend(|mut s| {
        read_head(&mut s);
        reset(s);
    });
    let (balancer, addr) = start(upstream, "");
    assert_eq!(status_of(&get_raw(addr)), 502);
    expect_log(
        &balancer,
        "recv() failed (104: Connection reset by peer) while reading response header from upstream",
    );
}

#[test]
fn hanging_backend_gives_504_after_proxy_read_timeout() {
    let upstream = backend(|mut s| {
        read_head(&mut s);
        std::thread::sleep(Duration::from_secs(5));
    });
    let (balancer, addr) = start(upstream, "");
    let started = Instant::now();
    assert_eq!(status_of(&get_raw(addr)), 504);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    expect_log(
        &balancer,
        "upstream timed out (110: Connection timed out) while reading response header from upstream",
    );
}

#[test]
fn partial_header_then_close_gives_502() {
    let upstream = backend(|mut s| {
        read_head(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Le");
    });
    let (balancer, addr) = start(upstream, "");
    assert_eq!(status_of(&get_raw(addr)), 502);
    expect_log(
        &balancer,
        "upstream prematurely closed connection while reading response header from upstream",
    );
}

/// A response head that never ends within the limit (64 KiB here; nginx's
/// `proxy_buffer_size`) is refused with nginx's words, never buffered on.
#[test]
fn endless_response_head_gives_502() {
    let upstream = backend(|mut s| {
        read_head(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
        let line = format!("X-Long: {}\r\n", "v".repeat(1000));
        for _ in 0..100 {
            if s.write_all(line.as_bytes()).is_err() {
                return;
            }
        }
    });
    let (balancer, addr) = start(upstream, "");
    assert_eq!(status_of(&get_raw(addr)), 502);
    expect_log(
        &balancer,
        "upstream sent too big header while reading response header from upstream",
    );
}

#[test]
fn invalid_status_line_gives_502() {
    let upstream = backend(|mut s| {
        read_head(&mut s);
        let _ = s.write_all(b"HTTP/1.1 OK 200\r\nContent-Length: 2\r\n\r\nok");
    });
    let (balancer, addr) = start(upstream, "");
    assert_eq!(status_of(&get_raw(addr)), 502);
    expect_log(
        &balancer,
        "upstream sent invalid header while reading response header from upstream",
    );
}

/// With a Content-Length the client sees fewer bytes than announced and the
/// connection closes: never a complete-looking response.
#[test]
fn close_mid_body_with_length_is_visible_to_the_client() {
    let upstream = backend(|mut s| {
        read_head(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
        let _ = s.write_all(&[b'a'; 40]);
    });
    let (balancer, addr) = start(upstream, "");
    let raw = get_raw(addr);
    let (head, body) = split_head(&raw);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-length: 100"), "{head}");
    assert_eq!(body.len(), 40, "the client must see the truncation");
    expect_log(
        &balancer,
        "upstream prematurely closed connection while reading upstream",
    );
}

/// Chunked: the client's stream lacks the terminating zero chunk.
#[test]
fn close_mid_body_chunked_has_no_last_chunk() {
    let upstream = backend(|mut s| {
        read_head(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
        std::thread::sleep(Duration::from_millis(50));
        let _ = s.write_all(b"5\r\nwor");
    });
    let (balancer, addr) = start(upstream, "");
    let raw = get_raw(addr);
    let (head, body) = split_head(&raw);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(
        !body.ends_with(b"0\r\n\r\n"),
        "a complete chunked body: {:?}",
        String::from_utf8_lossy(body)
    );
    assert!(
        String::from_utf8_lossy(body).contains("hello"),
        "{:?}",
        String::from_utf8_lossy(body)
    );
    expect_log(
        &balancer,
        "upstream prematurely closed connection while reading upstream",
    );
}

/// A backend whose head makes the body's length ambiguous: the client gets
/// nginx's 502 (never the body with a length guessed one way or the other)
/// and the error log nginx's words for what was wrong.
fn ambiguous_framing_gives_502(response: &'static [u8], line: &str) {
    let upstream = backend(move |mut s| {
        read_head(&mut s);
        let _ = s.write_all(response);
    });
    let (balancer, addr) = start(upstream, "");
    let raw = get_raw(addr);
    assert_eq!(status_of(&raw), 502, "{:?}", String::from_utf8_lossy(&raw));
    assert!(
        !String::from_utf8_lossy(&raw).contains("hello"),
        "the backend's body was passed on: {:?}",
        String::from_utf8_lossy(&raw)
    );
    expect_log(&balancer, line);
}

#[test]
fn duplicate_content_length_gives_502() {
    ambiguous_framing_gives_502(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "upstream sent duplicate header line: \"Content-Length: 5\", previous value: \"Content-Length: 5\" while reading response header from upstream",
    );
}

#[test]
fn differing_content_lengths_give_502() {
    ambiguous_framing_gives_502(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 3\r\n\r\nhello",
        "upstream sent duplicate header line: \"content-length: 3\", previous value: \"Content-Length: 5\" while reading response header from upstream",
    );
}

#[test]
fn invalid_content_length_gives_502() {
    ambiguous_framing_gives_502(
        b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
        "upstream sent invalid \"Content-Length\" header: \"Content-Length: +5\" while reading response header from upstream",
    );
}

#[test]
fn content_length_list_gives_502() {
    ambiguous_framing_gives_502(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
        "upstream sent invalid \"Content-Length\" header: \"Content-Length: 5, 5\" while reading response header from upstream",
    );
}

#[test]
fn unknown_transfer_encoding_gives_502() {
    ambiguous_framing_gives_502(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello",
        "upstream sent unknown \"Transfer-Encoding\": \"gzip\" while reading response header from upstream",
    );
}

#[test]
fn content_length_and_transfer_encoding_give_502() {
    ambiguous_framing_gives_502(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "upstream sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time while reading response header from upstream",
    );
}

#[test]
fn transfer_encoding_and_content_length_give_502() {
    ambiguous_framing_gives_502(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "upstream sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time while reading response header from upstream",
    );
}

/// A header line nginx cannot parse is named in the log up to the byte
/// that broke it, as nginx names it.
#[test]
fn invalid_header_line_is_named_in_the_log() {
    ambiguous_framing_gives_502(
        b"HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 5\r\n\r\nhello",
        "upstream sent invalid header: \"Bad\\x20...\" while reading response header from upstream",
    );
}

/// A chunked body that breaks its coding half way: what came before the
/// break reaches the client, the end of the body never does.
#[test]
fn invalid_chunk_mid_body_is_visible_to_the_client() {
    let upstream = backend(|mut s| {
        read_head(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
        std::thread::sleep(Duration::from_millis(50));
        let _ = s.write_all(b"5\nworld\r\n0\r\n\r\n");
        std::thread::sleep(Duration::from_millis(200));
    });
    let (balancer, addr) = start(upstream, "");
    let raw = get_raw(addr);
    let (head, body) = split_head(&raw);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let body = String::from_utf8_lossy(body);
    assert!(body.contains("hello"), "{body:?}");
    assert!(
        !body.contains("world") && !body.ends_with("0\r\n\r\n"),
        "{body:?}"
    );
    expect_log(
        &balancer,
        "upstream sent invalid chunked response while reading upstream",
    );
}

/// A backend's header names reach the client as the backend spelled them
/// (lower case, mixed case, all capitals), as nginx passes them.
#[test]
fn backend_header_names_keep_their_case() {
    let upstream = backend(|mut s| {
        read_head(&mut s);
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nX-Custom-Name: v\r\nX-IP: 1\r\nContent-Length: 2\r\n\r\nok",
        );
    });
    let (_balancer, addr) = start(upstream, "");
    let raw = get_raw(addr);
    let text = String::from_utf8_lossy(&raw);
    for line in [
        "\r\nset-cookie: a=1\r\n",
        "\r\nX-Custom-Name: v\r\n",
        "\r\nX-IP: 1\r\n",
    ] {
        assert!(text.contains(line), "no {line:?} in {text:?}");
    }
}

/// Bytes past the upstream's Content-Length are not the client's.
#[test]
fn bytes_past_content_length_are_not_forwarded() {
    let upstream = backend(|mut s| {
        read_head(&mut s);
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nX-Smuggled: 1\r\n\r\n",
        );
        std::thread::sleep(Duration::from_millis(200));
    });
    let (_balancer, addr) = start(upstream, "");
    let raw = get_raw(addr);
    let (head, body) = split_head(&raw);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, b"hello");
}

/// A backend that answers without reading a large request body, then
/// resets: the client gets the backend's answer, no hang, and the balancer
/// keeps serving.
#[test]
fn backend_that_never_reads_the_body() {
    let upstream = backend(|mut s| {
        let head = read_head(&mut s);
        if head.starts_with(b"POST") {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly");
            std::thread::sleep(Duration::from_millis(300));
            reset(s);
        } else {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    let (_balancer, addr) = start(upstream, "");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = vec![b'x'; 4 << 20];
    let started = Instant::now();
    s.write_all(
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    // The balancer may stop reading once the exchange is over.
    let writer = {
        let mut s = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = s.write_all(&body);
        })
    };
    let response = read_response(&mut BufReader::new(&mut s)).expect("a response");
    // The early answer is passed on as it came (nginx does the same once it
    // has sent the body it buffered).
    assert_eq!((response.status, response.text().as_str()), (200, "early"));
    assert!(started.elapsed() < Duration::from_secs(8));
    drop(s);
    let _ = writer.join();
    assert_eq!(status_of(&get_raw(addr)), 200, "the balancer still serves");
}

/// Interim responses (100, 103) are not the answer: the final one is.
#[test]
fn interim_responses_then_final_status() {
    let upstream = backend(|mut s| {
        read_head(&mut s);
        let _ = s.write_all(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone",
        );
    });
    let (_balancer, addr) = start(upstream, "");
    let raw = get_raw(addr);
    let (head, body) = split_head(&raw);
    assert!(head.starts_with("http/1.1 201"), "{head}");
    assert_eq!(body, b"done");
}

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// 2,000 exchanges with a backend that resets half the time and closes
/// mid-body the other half: descriptors and RSS come back near baseline.
#[test]
fn broken_exchanges_do_not_leak() {
    let upstream = backend(|mut s| {
        let head = read_head(&mut s);
        if head.starts_with(b"GET /reset") {
            reset(s);
        } else {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort");
        }
    });
    let (balancer, addr) = start(upstream, "access_log off;");
    let pid = balancer.pid();
    let exchange = |i: usize| {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let path = if i.is_multiple_of(2) {
            "/reset"
        } else {
            "/short"
        };
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    };
    for i in 0..200 {
        exchange(i);
    }
    std::thread::sleep(Duration::from_millis(300));
    let (fds, rss) = (fd_count(pid), rss_kb(pid));
    for i in 0..2000 {
        exchange(i);
    }
    let settled = || fd_count(pid) <= fds + 4;
    wait_until(
        Duration::from_secs(5),
        "descriptors back to baseline",
        settled,
    );
    let grown = rss_kb(pid).saturating_sub(rss);
    assert!(
        grown < 16 * 1024,
        "RSS grew by {grown} kB over 2,000 broken exchanges (baseline {rss} kB)"
    );
}
