//! ngx_http_gzip_module: which responses are compressed, the header
//! changes, streamed compression, `$gzip_ratio`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use support::{free_port, raw, Balancer, Response};

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn gunzip(body: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut out)
        .expect("a gzip stream");
    out
}

fn ask(port: u16, path: &str, extra: &str) -> Response {
    raw(
        local(port),
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n")
            .as_bytes(),
    )
    .expect("response")
}

const AE: &str = "Accept-Encoding: gzip, deflate\r\n";

/// A backend answering every request with `response` (read per request).
fn backend(head: &str) -> u16 {
    let response: &'static str = Box::leak(format!("{head}{}", "Y".repeat(100)).into_boxed_str());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(1000) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = stream.write_all(response.as_bytes());
        }
    });
    port
}

fn start(extra: &str) -> (Balancer, u16) {
    let port = free_port();
    let conf = format!(
        "log_format ratio \"$request_uri $gzip_ratio\";
        server {{
            listen 127.0.0.1:{port};
            root html;
            types {{ text/html html; text/css css; }}
            gzip on;
            access_log logs/ratio.log ratio;
            location /vary/ {{ gzip_vary on; }}
            location /css/ {{ gzip_types text/css; }}
            location /old/ {{ gzip_http_version 1.0; }}
            location /any/ {{ gzip_proxied any; }}
            location /nomsie/ {{ gzip_disable msie6 \"^curl/\"; }}
            location /min/ {{ gzip_min_length 1000; }}
            {extra}
        }}"
    );
    let b = Balancer::start_http(&conf, &[port]);
    let html = b.dir.path().join("html");
    for dir in ["", "vary", "css", "old", "any", "nomsie", "min"] {
        std::fs::create_dir_all(html.join(dir)).unwrap();
        std::fs::write(html.join(dir).join("page.html"), "X".repeat(300)).unwrap();
        std::fs::write(html.join(dir).join("style.css"), "p{}".repeat(100)).unwrap();
    }
    std::fs::write(html.join("tiny.html"), "tiny").unwrap();
    (b, port)
}

#[test]
fn static_files_are_compressed_with_nginx_s_header_changes() {
    let (b, port) = start("");
    let r = ask(port, "/page.html", AE);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("accept-ranges"), None);
    assert!(r.header("etag").unwrap().starts_with("W/\""), "{r:?}");
    assert_eq!(r.header("vary"), None, "gzip_vary is off");
    // nginx's own gzip header: no name, no time, Unix.
    assert_eq!(&r.body[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    assert_eq!(gunzip(&r.body), "X".repeat(300));
    // Without Accept-Encoding (or with gzip refused) the file goes as it is.
    for extra in ["", "Accept-Encoding: gzip;q=0, deflate\r\n"] {
        let r = ask(port, "/page.html", extra);
        assert_eq!(r.header("content-encoding"), None);
        assert_eq!(r.header("content-length"), Some("300"));
        assert!(r.header("etag").unwrap().starts_with('"'));
    }
    // $gzip_ratio: 300 bytes over the compressed size; empty when plain.
    let log = std::fs::read_to_string(b.dir.path().join("logs/ratio.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let ratio: f64 = lines[0]
        .strip_prefix("/page.html ")
        .unwrap()
        .parse()
        .unwrap();
    let expected = 300.0 / r_len(port);
    assert!((ratio - expected).abs() < 0.01, "{ratio} vs {expected}");
    assert_eq!(lines[1], "/page.html -");
}

fn r_len(port: u16) -> f64 {
    ask(port, "/page.html", AE).body.len() as f64
}

#[test]
fn what_is_not_compressed() {
    let (_b, port) = start("");
    // Not in gzip_types (text/html only by default), then added.
    assert_eq!(ask(port, "/style.css", AE).header("content-encoding"), None);
    let r = ask(port, "/css/style.css", AE);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&r.body), "p{}".repeat(100));
    // Shorter than gzip_min_length (20 by default, then 1000).
    assert_eq!(ask(port, "/tiny.html", AE).header("content-encoding"), None);
    assert_eq!(
        ask(port, "/min/page.html", AE).header("content-encoding"),
        None
    );
    // Not 200, 403 or 404: a 304.
    let etag = ask(port, "/page.html", "")
        .header("etag")
        .unwrap()
        .to_string();
    let r = ask(
        port,
        "/page.html",
        &format!("{AE}If-None-Match: {etag}\r\n"),
    );
    assert_eq!((r.status, r.header("content-encoding")), (304, None));
    // A 404 page is compressed (it is text/html and long enough).
    let r = ask(port, "/missing.html", AE);
    assert_eq!(
        (r.status, r.header("content-encoding")),
        (404, Some("gzip"))
    );
    assert!(gunzip(&r.body).contains("<title>404 Not Found</title>"));
}

#[test]
fn version_proxy_and_browser_rules() {
    let (_b, port) = start("");
    let http10 = |path: &str| {
        raw(
            local(port),
            format!("GET {path} HTTP/1.0\r\n{AE}\r\n").as_bytes(),
        )
        .unwrap()
    };
    assert_eq!(http10("/page.html").header("content-encoding"), None);
    let r = http10("/old/page.html");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&r.body), "X".repeat(300), "read until close");
    // Via: gzip_proxied off by default, `any` compresses.
    let via = format!("{AE}Via: 1.1 cache\r\n");
    assert_eq!(
        ask(port, "/page.html", &via).header("content-encoding"),
        None
    );
    let r = ask(port, "/any/page.html", &via);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    // gzip_disable: msie6 and a regex (case-insensitive).
    let agent = |a: &str| format!("{AE}User-Agent: {a}\r\n");
    for (a, gz) in [
        ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)", None),
        (
            "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)",
            Some("gzip"),
        ),
        ("CURL/8.0", None),
        ("Wget/1.0", Some("gzip")),
    ] {
        let r = ask(port, "/nomsie/page.html", &agent(a));
        assert_eq!(r.header("content-encoding"), gz, "{a}");
    }
}

#[test]
fn gzip_vary_marks_every_eligible_response() {
    let (_b, port) = start("");
    for extra in [AE, ""] {
        let r = ask(port, "/vary/page.html", extra);
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{extra:?}");
    }
    // Not eligible (type): no Vary.
    assert_eq!(ask(port, "/vary/style.css", AE).header("vary"), None);
}

#[test]
fn head_gets_the_headers_and_no_body() {
    let (_b, port) = start("");
    let mut s = TcpStream::connect(local(port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!("HEAD /page.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{AE}\r\n").as_bytes(),
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("\r\nContent-Encoding: gzip"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    assert_eq!(body, "");
}

#[test]
fn proxied_responses_follow_gzip_proxied_and_the_upstream_headers() {
    let plain = backend(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 100\r\nETag: \"up\"\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n",
    );
    let encoded = backend(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: br\r\nContent-Length: 100\r\nConnection: close\r\n\r\n",
    );
    let expired = backend(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nExpires: Thu, 01 Jan 1970 00:00:01 GMT\r\nContent-Length: 100\r\nConnection: close\r\n\r\n",
    );
    let (_b, port) = start(&format!(
        "location /plain {{ proxy_pass http://127.0.0.1:{plain}; }}
         location /encoded {{ proxy_pass http://127.0.0.1:{encoded}; }}
         location /expired {{ gzip_proxied expired; proxy_pass http://127.0.0.1:{expired}; }}
         location /fresh {{ gzip_proxied expired; proxy_pass http://127.0.0.1:{plain}; }}"
    ));
    let head = |path: &str, extra: &str| {
        let mut s = TcpStream::connect(local(port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n")
                .as_bytes(),
        )
        .unwrap();
        let mut reader = BufReader::new(s);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) <= 2 {
                break;
            }
            head.push_str(&line);
        }
        head
    };
    let h = head("/plain", AE);
    assert!(h.contains("Content-Encoding: gzip"), "{h}");
    assert!(h.to_ascii_lowercase().contains("etag: w/\"up\""), "{h}");
    assert!(!h.contains("Accept-Ranges"), "{h}");
    assert!(!h.contains("Content-Length"), "{h}");
    // Already encoded: left alone.
    let h = head("/encoded", AE);
    assert!(
        h.contains("Content-Encoding: br") && !h.contains("gzip"),
        "{h}"
    );
    // Through a proxy (Via): only what gzip_proxied allows.
    let via = format!("{AE}Via: 1.0 cache\r\n");
    assert!(!head("/plain", &via).contains("gzip"));
    assert!(head("/expired", &via).contains("Content-Encoding: gzip"));
    // `expired` without an Expires header and nothing else to check: nginx
    // compresses (no Cache-Control, no rule against Last-Modified or ETag).
    assert!(head("/fresh", &via).contains("Content-Encoding: gzip"));
}

/// A proxied body is compressed as it streams: the first part reaches the
/// client, decompressible, before the upstream sends the rest.
#[test]
fn a_streamed_upstream_body_streams_compressed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = listener.local_addr().unwrap().port();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let first = "first part ".repeat(10);
        let _ = stream.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n",
                first.len()
            )
            .as_bytes(),
        );
        let _ = go_rx.recv_timeout(Duration::from_secs(20));
        let _ = stream.write_all(b"4\r\nrest\r\n0\r\n\r\n");
    });
    let (_b, port) = start(&format!(
        "location /stream {{ proxy_pass http://127.0.0.1:{up}; }}"
    ));
    let mut s = TcpStream::connect(local(port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(
        format!("GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{AE}\r\n").as_bytes(),
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.contains("Content-Encoding: gzip"), "{head}");
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    let mut released = false;
    for _ in 0..100 {
        let mut size = String::new();
        reader.read_line(&mut size).unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        let mut chunk = vec![0; n + 2];
        reader.read_exact(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        decoder.write_all(&chunk[..n]).unwrap();
        decoder.flush().unwrap();
        if !released && decoder.get_ref().len() >= 110 {
            assert_eq!(
                String::from_utf8_lossy(decoder.get_ref()),
                "first part ".repeat(10)
            );
            released = true;
            go_tx.send(()).unwrap();
        }
    }
    assert!(released, "the first part never arrived on its own");
    let out = decoder.finish().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out),
        "first part ".repeat(10) + "rest"
    );
}
