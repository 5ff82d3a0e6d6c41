//! ngx_http_gzip_static_module and ngx_http_gunzip_filter_module: a
//! precompressed `.gz` served in place of its file, and a gzipped response
//! decompressed for a client that does not take gzip.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use support::{free_port, raw, wait_until, Balancer, Response};

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn ask(port: u16, method: &str, path: &str, extra: &str) -> Response {
    raw(
        local(port),
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n")
            .as_bytes(),
    )
    .expect("response")
}

const AE: &str = "Accept-Encoding: gzip\r\n";

/// A backend answering every request with `head` and then `body`.
fn backend(head: &str, body: Vec<u8>) -> u16 {
    let mut response = head.as_bytes().to_vec();
    response.extend(body);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(100) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = stream.write_all(&response);
        }
    });
    port
}

const PLAIN: &str = "the plain file\n";

fn start(extra: &str) -> (Balancer, u16, Vec<u8>) {
    let port = free_port();
    let conf = format!(
        "server {{
            listen 127.0.0.1:{port};
            root html;
            types {{ text/html html; }}
            location /on/ {{ gzip_static on; }}
            location /vary/ {{ gzip_static on; gzip_vary on; }}
            location /always/ {{ gzip_static always; gunzip on; gzip_vary on; }}
            {extra}
        }}"
    );
    let b = Balancer::start_http(&conf, &[port]);
    let html = b.dir.path().join("html");
    let packed = gzip(b"the precompressed copy\n");
    for dir in ["on", "vary", "always"] {
        std::fs::create_dir_all(html.join(dir)).unwrap();
        std::fs::write(html.join(dir).join("page.html"), PLAIN).unwrap();
        std::fs::write(html.join(dir).join("page.html.gz"), &packed).unwrap();
        std::fs::write(html.join(dir).join("alone.html"), PLAIN).unwrap();
    }
    (b, port, packed)
}

#[test]
fn gzip_static_sends_the_gz_to_a_client_that_takes_gzip() {
    let (_b, port, packed) = start("");
    let r = ask(port, "GET", "/on/page.html", AE);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    // The type is the plain file's, the length and body the .gz's.
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(r.header("content-length"), Some(&*packed.len().to_string()));
    assert_eq!(r.body, packed);
    assert_eq!(r.header("vary"), None, "gzip_vary is off");
    // A client without gzip, or a file without a .gz, gets the plain file.
    for (path, extra) in [("/on/page.html", ""), ("/on/alone.html", AE)] {
        let r = ask(port, "GET", path, extra);
        assert_eq!(r.header("content-encoding"), None, "{path}");
        assert_eq!(r.text(), PLAIN, "{path}");
    }
    // HEAD has the .gz's headers and no body.
    let mut s = TcpStream::connect(local(port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!("HEAD /on/page.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{AE}\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("\r\nContent-Encoding: gzip"), "{head}");
    assert_eq!(body, "");
}

#[test]
fn gzip_vary_marks_only_files_that_have_a_gz() {
    let (_b, port, _) = start("");
    for extra in [AE, ""] {
        let r = ask(port, "GET", "/vary/page.html", extra);
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{extra:?}");
    }
    let r = ask(port, "GET", "/vary/alone.html", AE);
    assert_eq!(r.header("vary"), None);
}

#[test]
fn gzip_static_always_with_gunzip_serves_every_client() {
    let (_b, port, packed) = start("");
    let r = ask(port, "GET", "/always/page.html", AE);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.body, packed);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    let r = ask(port, "GET", "/always/page.html", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.header("accept-ranges"), None);
    assert!(r.header("etag").unwrap().starts_with("W/\""), "{r:?}");
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(r.text(), "the precompressed copy\n");
}

#[test]
fn gunzip_inflates_a_proxied_body_of_several_members() {
    let mut body = gzip(&b"first member ".repeat(2000));
    body.extend(gzip(b"second member"));
    let up = backend(
        &format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\
             ETag: \"abc\"\r\nConnection: close\r\n\r\n",
            body.len()
        ),
        body.clone(),
    );
    let (_b, port, _) = start(&format!(
        "location /up/ {{ gunzip on; proxy_pass http://127.0.0.1:{up}; }}"
    ));
    let r = ask(port, "GET", "/up/x", "");
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("etag"), Some("W/\"abc\""));
    assert_eq!(
        r.text(),
        format!("{}second member", "first member ".repeat(2000))
    );
    // A client that takes gzip gets the backend's bytes.
    let r = ask(port, "GET", "/up/x", AE);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.body, body);
}

#[test]
fn a_body_that_is_not_gzip_is_cut_short_with_nginx_s_log_line() {
    let junk = b"this is not gzip at all".to_vec();
    let up = backend(
        &format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            junk.len()
        ),
        junk,
    );
    let (b, port, _) = start(&format!(
        "location /up/ {{ gunzip on; proxy_pass http://127.0.0.1:{up}; }}"
    ));
    // No complete response: as in nginx, the head is held back for the
    // first piece of body, which never comes, and the connection closes.
    let mut s = TcpStream::connect(local(port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /up/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(!text.ends_with("0\r\n\r\n"), "a complete body: {text}");
    wait_until(Duration::from_secs(5), "the error-log line", || {
        b.error_log_text().contains("inflate() failed: 0, -3")
    });
}

#[test]
fn bad_values_have_nginx_s_messages() {
    let check = support::check_conf(
        "events {}\nhttp {\nserver { location / { gzip_static sometimes; } }\n}\n",
    );
    check.assert_error("invalid value \"sometimes\"", 3);
    let check = support::check_conf("events {}\nhttp {\ngunzip_buffers 0 4k;\n}\n");
    check.assert_error("\"gunzip_buffers\" directive invalid value", 3);
}
