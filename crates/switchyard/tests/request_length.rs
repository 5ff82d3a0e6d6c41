//! `$request_length` over HTTP/1.1 against a real `switchyard echo`
//! backend: the head's bytes plus the body's bytes as read (chunked framing
//! included), nothing of a body that is discarded unread, as nginx's
//! `r->request_length`. Every expected number is the length of bytes this
//! test sends.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::{free_port, wait_until, Balancer, Echo};

/// A balancer logging `$request_length` per request, proxying `/` to `echo`
/// (which reads the body) and answering `/discard` itself (which does not).
fn start(echo: &Echo) -> (Balancer, SocketAddr) {
    let port = free_port();
    let lb = Balancer::start_http(
        &format!(
            "log_format rl '$request_method $uri $request_length';\n\
             server {{\n\
                 listen 127.0.0.1:{port};\n\
                 access_log logs/access.log rl;\n\
                 location / {{ proxy_pass http://{}; }}\n\
                 location /discard {{ return 200 \"length=$request_length\"; }}\n\
             }}",
            echo.addr
        ),
        &[port],
    );
    (lb, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Sends `head` and `body` on a new connection; the response, and the log
/// line that request wrote (the `n`th line of the log).
fn exchange(
    lb: &Balancer,
    addr: SocketAddr,
    head: &str,
    body: &[u8],
    n: usize,
) -> (support::Response, String) {
    let mut request = head.as_bytes().to_vec();
    request.extend_from_slice(body);
    let response = support::raw(addr, &request).expect("request");
    wait_until(Duration::from_secs(10), "the access-log line", || {
        lb.access_lines().len() > n
    });
    (response, lb.access_lines()[n].clone())
}

#[test]
fn request_length_counts_head_and_body_as_read() {
    let echo = Echo::start("a", "127.0.0.1:0");
    let (lb, addr) = start(&echo);

    let get =
        "GET /a?x=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: t/1\r\nConnection: close\r\n\r\n";
    let (r, line) = exchange(&lb, addr, get, b"", 0);
    assert_eq!(r.status, 200);
    assert_eq!(line, format!("GET /a {}", get.len()));

    let body = b"hello, length";
    let post = format!(
        "POST /b HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (r, line) = exchange(&lb, addr, &post, body, 1);
    assert_eq!(r.status, 200);
    assert_eq!(line, format!("POST /b {}", post.len() + body.len()));

    // Sizes, an extension, line ends, the last chunk and a trailer: all of
    // it was read for the body, and all of it counts.
    let chunked = "POST /c HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let framed = b"5\r\nhello\r\na;ext=1\r\n, chunked!\r\n0\r\nX-Trailer: 1\r\n\r\n";
    let (r, line) = exchange(&lb, addr, chunked, framed, 2);
    assert_eq!(r.status, 200);
    assert_eq!(line, format!("POST /c {}", chunked.len() + framed.len()));

    // A body nobody reads is discarded, and nginx does not count it; the
    // variable reads the same in the response as in the log.
    let discard = format!(
        "POST /discard HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (r, line) = exchange(&lb, addr, &discard, body, 3);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), format!("length={}", discard.len()));
    assert_eq!(line, format!("POST /discard {}", discard.len()));
}

#[test]
fn blank_lines_before_the_request_line_do_not_count() {
    let echo = Echo::start("a", "127.0.0.1:0");
    let (lb, addr) = start(&echo);
    let get = "GET /d HTTP/1.0\r\nHost: localhost\r\n\r\n";
    let (r, line) = exchange(&lb, addr, &format!("\r\n\r\n{get}"), b"", 0);
    assert_eq!(r.status, 200);
    assert_eq!(line, format!("GET /d {}", get.len()));
}
