//! The request URI as nginx decodes it.

mod support;

use std::net::SocketAddr;

use support::{raw, Balancer, Response};

fn send(port: u16, head: &str) -> Response {
    raw(SocketAddr::from(([127, 0, 0, 1], port)), head.as_bytes()).expect("response")
}

fn get_with(port: u16, path: &str, extra: &str) -> Response {
    send(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n"),
    )
}

#[test]
fn a_broken_percent_escape_is_a_bad_request() {
    let port = support::free_port();
    let conf = format!(
        "server {{ listen 127.0.0.1:{port}; server_name localhost;
           location / {{ add_header X-URI \"[$uri]\"; return 204; }} }}"
    );
    let _b = Balancer::start_http(&conf, &[port]);
    for bad in ["/foo/bar%", "/foo/bar%1", "/a%zz/b", "/a%4g"] {
        let r = get_with(port, bad, "");
        assert_eq!(r.status, 400, "{bad}");
    }
    // A good escape is decoded before the location sees it, and `..` after.
    let r = get_with(port, "/a/%62/../c%2Ed", "");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("x-uri"), Some("[/a/c.d]"));
}
