//! The two client-connection paths answer alike: a plain HTTP/1.1 request
//! is served by the fast path (http/h1), the same request with a `TE`
//! header by hyper (http/h1/head.rs hands it over; `TE` changes nothing in
//! the answer). Status line, header lines and body must be byte for byte
//! the same, `Date` aside.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use support::{free_port, write_file, Balancer, Echo};

/// Sends one request on a new connection and returns the raw answer.
fn exchange(port: u16, request: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// The answer without its `Date` line, as text.
fn without_date(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .split("\r\n")
        .filter(|line| !line.starts_with("Date: "))
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// An upstream answering every request with a chunked body.
fn chunked_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(100) {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut head = [0u8; 4096];
                let _ = stream.read(&mut head);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
                );
            });
        }
    });
    addr
}

#[test]
fn fast_path_and_hyper_answer_byte_for_byte_alike() {
    let echo = Echo::start("alike", "127.0.0.1:0");
    let chunked = chunked_backend();
    let port = free_port();
    let balancer = Balancer::start_http(
        &format!(
            "upstream echo {{ server {}; }}\n\
             upstream chunked {{ server {chunked}; }}\n\
             server {{ listen 127.0.0.1:{port};\n\
               location = /text {{ return 200 \"some text\"; }}\n\
               location = /redirect {{ return 302 /elsewhere; }}\n\
               location = /teapot {{ return 418; }}\n\
               location /files/ {{ root html; }}\n\
               location /echo {{ proxy_pass http://echo; }}\n\
               location /chunked {{ proxy_pass http://chunked; }}\n\
               location = /empty {{ return 204; }} }}",
            echo.addr
        ),
        &[port],
    );
    write_file(balancer.dir.path(), "html/files/a.txt", "file body\n");
    let requests = [
        "GET /text HTTP/1.1\r\nHost: x\r\nConnection: close\r\n",
        "GET /redirect HTTP/1.1\r\nHost: x\r\nConnection: close\r\n",
        "GET /teapot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n",
        "GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n",
        "GET /files/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n",
        "GET /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n",
        "GET /empty HTTP/1.1\r\nHost: x\r\nConnection: close\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n",
    ];
    for request in requests {
        let body = if request.starts_with("POST") {
            "hello"
        } else {
            ""
        };
        let fast = exchange(port, &format!("{request}\r\n{body}"));
        let hyper = exchange(port, &format!("{request}TE: trailers\r\n\r\n{body}"));
        assert!(!fast.is_empty(), "no answer to {request:?}");
        assert_eq!(
            without_date(&fast),
            without_date(&hyper),
            "the two paths differ for {request:?}"
        );
        assert!(
            String::from_utf8_lossy(&fast).contains("\r\nDate: "),
            "no Date for {request:?}"
        );
    }
}
