//! Refused requests, side by side with Debian's nginx: a bad or too long
//! request line, conflicting framing, a bad Host and garbage each go
//! through the server's `error_page` with `$status` the refused status, and
//! each is a line of the access log with its request line as it came.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::nginx::Nginx;
use support::{free_port, wait_until, Balancer};

const REQUESTS: &[&[u8]] = &[
    b"GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"get / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET x HTTP/1.0\r\nHost: .\r\n\r\n",
    b"GET /x HTTP/1.0\r\nHost: .\r\n\r\n",
];

fn conf(port: u16) -> String {
    format!(
        "log_format refusals '$status \"$request\"';\n\
         server {{ listen 127.0.0.1:{port}; access_log logs/access.log refusals;\n\
           large_client_header_buffers 4 1k;\n\
           error_page 400 404 405 414 /caught;\n\
           location /caught {{ return 200 \"caught $status\\n\"; }}\n\
           location /missing {{ return 404; }}\n\
         }}"
    )
}

/// The status line and body of the answer to `request`.
fn answer(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all).into_owned();
    let status = text.lines().next().unwrap_or_default().to_string();
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    format!("{status} | {body}")
}

#[test]
fn refused_requests_go_through_error_page_and_the_access_log_as_in_nginx() {
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(2000));
    let mut requests: Vec<&[u8]> = REQUESTS.to_vec();
    requests.push(long.as_bytes());

    let nginx_port = free_port();
    let nginx = Nginx::start(&conf(nginx_port), nginx_port);
    let ours_port = free_port();
    let ours = Balancer::start_http(&conf(ours_port), &[ours_port]);

    for request in &requests {
        let expected = answer(nginx_port, request);
        let got = answer(ours_port, request);
        assert_eq!(got, expected, "{}", String::from_utf8_lossy(request));
        assert!(expected.contains("caught"), "{expected}");
    }
    wait_until(Duration::from_secs(5), "every access line", || {
        nginx.access_lines().len() == requests.len() && ours.access_lines().len() == requests.len()
    });
    assert_eq!(ours.access_lines(), nginx.access_lines());
}
