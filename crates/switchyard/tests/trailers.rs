//! How a response's body is delimited and what follows it, byte for byte:
//! `add_trailer` (a chunked body, no Content-Length), `chunked_transfer_encoding
//! off`, `add_header` values with control bytes, and the request headers
//! nginx takes once only.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::{free_port, Balancer};

/// The bytes of the whole answer to `request` (which asks for the close).
fn exchange(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn get11(port: u16, path: &str) -> String {
    exchange(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    )
}

#[test]
fn add_trailer_ends_a_chunked_body_and_reads_earlier_trailers() {
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port}; server_name localhost;\n\
               add_trailer X-Var $host;\n\
               add_trailer X-Empty '';\n\
               add_trailer X-Sent-Trailer $sent_trailer_x_var;\n\
               add_trailer X-Always on always;\n\
               location / {{ return 200 SEE-THIS; }}\n\
               location /missing {{ return 404; }}\n\
               location /off {{ chunked_transfer_encoding off; return 200 SEE-THIS; }} }}"
        ),
        &[port],
    );
    let r = get11(port, "/");
    let (head, body) = r.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("\r\nTransfer-Encoding: chunked"), "{r}");
    assert!(
        !head.contains("Content-Length"),
        "cleared for trailers: {r}"
    );
    assert!(!head.contains("X-Var"), "{r}");
    assert_eq!(
        body,
        "8\r\nSEE-THIS\r\n0\r\nX-Var: localhost\r\nX-Sent-Trailer: localhost\r\nX-Always: on\r\n\r\n"
    );
    // Another status: only the `always` line.
    let r = get11(port, "/missing");
    assert!(r.ends_with("\r\n0\r\nX-Always: on\r\n\r\n"), "{r}");
    // HTTP/1.0 has no chunks: the length stays, no trailer goes.
    let r = exchange(port, "GET / HTTP/1.0\r\n\r\n");
    assert!(r.contains("Content-Length: 8\r\n"), "{r}");
    assert!(r.ends_with("\r\n\r\nSEE-THIS"), "{r}");
    // Nor on HEAD, nor where chunked coding is off.
    let r = exchange(
        port,
        "HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(
        r.contains("Content-Length: 8\r\n") && !r.contains("X-Always"),
        "{r}"
    );
    let r = get11(port, "/off");
    assert!(
        r.contains("Content-Length: 8\r\n") && r.ends_with("SEE-THIS"),
        "{r}"
    );
}

#[test]
fn chunked_transfer_encoding_off_delimits_an_unknown_length_by_the_close() {
    let port = free_port();
    // gzip makes the length unknown until the body ends.
    let _b = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port}; gzip on; gzip_min_length 1; gzip_types text/plain;\n\
               location / {{ return 200 SEE-THIS-SEE-THIS; }}\n\
               location /off {{ chunked_transfer_encoding off; return 200 SEE-THIS-SEE-THIS; }} }}"
        ),
        &[port],
    );
    let ask = |path: &str| {
        exchange(
            port,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\n\r\n"),
        )
    };
    // Chunked as usual.
    let on = exchange(
        port,
        "GET / HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    );
    assert!(on.contains("\r\nTransfer-Encoding: chunked\r\n"), "{on:?}");
    // Off: no chunks, no length; the close ends the body, and says so.
    let off = ask("/off");
    let (head, body) = off.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{off:?}");
    assert!(head.contains("\r\nContent-Encoding: gzip"), "{off:?}");
    assert!(
        !head.contains("Transfer-Encoding") && !head.contains("Content-Length"),
        "{off:?}"
    );
    assert!(head.contains("\r\nConnection: close"), "{off:?}");
    assert!(body.starts_with('\u{1f}'), "the gzip magic: {off:?}");
}

#[test]
fn an_add_header_value_keeps_its_control_bytes() {
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port};\n\
               location / {{ add_header X-Foo \"x:$arg_x\\n\"; add_header X-URI \"[$uri]\"; return 204; }} }}"
        ),
        &[port],
    );
    let r = get11(port, "/a%02b?x=1");
    assert!(r.contains("\r\nX-Foo: x:1\n\r\n"), "{r:?}");
    assert!(r.contains("\r\nX-URI: [/a\u{2}b]\r\n"), "{r:?}");
}

#[test]
fn a_request_header_nginx_takes_once_is_refused_when_repeated() {
    let port = free_port();
    let b = Balancer::start_http(
        &format!("server {{ listen 127.0.0.1:{port}; location / {{ return 200 ok; }} }}"),
        &[port],
    );
    let r = exchange(
        port,
        "GET / HTTP/1.1\r\nHost: localhost\r\nIf-Match: \"a\"\r\nIf-Match: \"b\"\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 400 Bad Request"), "{r}");
    support::wait_until(Duration::from_secs(5), "the info line", || {
        b.error_log_text().contains(
            "client sent duplicate header line: \"If-Match: \"b\"\", previous value: \"If-Match: \"a\"\"",
        )
    });
    // Headers that may repeat still pass.
    let r = exchange(
        port,
        "GET / HTTP/1.1\r\nHost: localhost\r\nVia: a\r\nVia: b\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[test]
fn proxy_limit_rate_paces_the_upstream_body() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    support::write_file(dir.path(), "data", &"X".repeat(40_000));
    let _b = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port};\n\
               location / {{ proxy_pass http://127.0.0.1:{port}/data; proxy_limit_rate 20000; }}\n\
               location /fast {{ proxy_pass http://127.0.0.1:{port}/data; proxy_buffering off; proxy_limit_rate 20000; }}\n\
               location /data {{ root {}; }} }}",
            dir.path().display()
        ),
        &[port],
    );
    // 20000 bytes go in the first second, the rest once it has passed.
    let started = Instant::now();
    let r = get11(port, "/");
    assert!(
        r.ends_with(&"X".repeat(40_000)),
        "{}",
        &r[..200.min(r.len())]
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    // Without buffering nginx does not pace: the body is whole at once.
    let r = get11(port, "/fast");
    assert!(r.ends_with(&"X".repeat(40_000)));
}
