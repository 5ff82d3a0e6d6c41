//! The request URI as nginx decodes it, static-file ranges under
//! `If-Range`, and the host of an absolute redirect when the request's Host
//! is invalid.

mod support;

use std::net::SocketAddr;

use support::{raw, write_file, Balancer, Response};

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

/// A 1000-byte file served from a fresh root, with `body` in the server.
fn static_server(body: &str) -> (Balancer, u16, tempfile::TempDir) {
    let docs = tempfile::tempdir().expect("tempdir");
    let text: String = (0..100).map(|i| format!("X{i:03}XXXXXX")).collect();
    for name in ["plain.html", "notime.html", "oldtime.html"] {
        write_file(docs.path(), name, &text);
    }
    let port = support::free_port();
    let conf = format!(
        "server {{ listen 127.0.0.1:{port}; server_name localhost; root {};\n{body}\n}}",
        docs.path().display()
    );
    let b = Balancer::start_http(&conf, &[port]);
    (b, port, docs)
}

#[test]
fn if_range_serves_the_range_only_for_the_same_entity() {
    let (_b, port, _d) = static_server(
        r#"location /notime.html { add_header Last-Modified ""; }
           location /oldtime.html { add_header Last-Modified "Mon, 28 Sep 1970 06:00:00 GMT"; }"#,
    );
    let range = "Range: bytes=0-9\r\n";
    let full = get_with(port, "/plain.html", "");
    let modified = full
        .header("last-modified")
        .expect("last-modified")
        .to_string();
    let etag = full.header("etag").expect("etag").to_string();

    let r = get_with(port, "/plain.html", range);
    assert_eq!((r.status, r.text().as_str()), (206, "X000XXXXXX"));
    for matching in [modified.as_str(), etag.as_str()] {
        let r = get_with(
            port,
            "/plain.html",
            &format!("{range}If-Range: {matching}\r\n"),
        );
        assert_eq!(r.status, 206, "If-Range: {matching}");
    }
    // Anything else, a weak tag of the same entity included (the comparison
    // is strong), sends the whole file.
    let weak = format!("W/{etag}");
    for other in [
        "wrong",
        "\"other\"",
        weak.as_str(),
        "Mon, 28 Sep 1970 06:00:00 GMT",
    ] {
        let r = get_with(
            port,
            "/plain.html",
            &format!("{range}If-Range: {other}\r\n"),
        );
        assert_eq!((r.status, r.body.len()), (200, 1000), "If-Range: {other}");
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
    }

    // add_header removes the time: no date can match, and none is sent.
    let r = get_with(
        port,
        "/notime.html",
        &format!("{range}If-Range: {modified}\r\n"),
    );
    assert_eq!(r.status, 200);
    assert!(!r
        .raw_headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("last-modified")));
    // add_header replaces the time: it is the one If-Range must name.
    let old = "Mon, 28 Sep 1970 06:00:00 GMT";
    let r = get_with(
        port,
        "/oldtime.html",
        &format!("{range}If-Range: {modified}\r\n"),
    );
    assert_eq!(r.status, 200);
    let sent: Vec<_> = r
        .raw_headers
        .iter()
        .filter(|h| h.to_ascii_lowercase().starts_with("last-modified"))
        .collect();
    assert_eq!(sent, [&format!("Last-Modified: {old}")]);
    let r = get_with(
        port,
        "/oldtime.html",
        &format!("{range}If-Range: {old}\r\n"),
    );
    assert_eq!(r.status, 206);
}

#[test]
fn an_invalid_host_reaches_error_page_and_redirects_to_the_local_address() {
    let port = support::free_port();
    let conf = format!(
        "server {{ listen 127.0.0.1:{port}; server_name name;
           error_page 400 /bounce;
           location /bounce {{ return 301 /redirect; }} }}"
    );
    let _b = Balancer::start_http(&conf, &[port]);
    let r = send(port, "GET /x HTTP/1.0\r\nHost: .\r\n\r\n");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(format!("http://127.0.0.1:{port}/redirect").as_str())
    );
    // A valid Host names the redirect's host.
    let r = send(port, "GET /bounce HTTP/1.0\r\nHost: other\r\n\r\n");
    assert_eq!(
        r.header("location"),
        Some(format!("http://other:{port}/redirect").as_str())
    );
    // A head refused for more than its Host goes there too, as nginx's
    // (tests/refusals.rs compares with it).
    let r = send(port, "GET x HTTP/1.0\r\nHost: .\r\n\r\n");
    assert_eq!(r.status, 301);
}
