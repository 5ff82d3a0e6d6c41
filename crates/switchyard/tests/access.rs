//! ngx_http_access_module: `allow` / `deny` in the access phase.

mod support;

use std::net::SocketAddr;

use support::{free_port, get, raw, Balancer};

fn start() -> (Balancer, u16) {
    let port = free_port();
    let conf = format!(
        "deny 192.0.2.0/24;
        server {{
            listen 127.0.0.1:{port};
            root html;
            location /open/ {{ allow 127.0.0.1; deny all; }}
            location /closed/ {{ allow 10.0.0.0/8; deny 127.0.0.0/8; allow all; }}
            location /outer/ {{
                deny all;
                location /outer/inner/ {{ allow all; }}
            }}
            location /inner/ {{ }}
            location /real/ {{
                set_real_ip_from 127.0.0.1;
                deny 198.51.100.7;
            }}
            location /ret/ {{ deny all; return 200 \"returned\\n\"; }}
            location /caught/ {{ deny all; error_page 403 /forbidden.html; }}
            location = /forbidden.html {{ }}
            location /v6/ {{ deny ::1; deny unix:; }}
        }}"
    );
    let b = Balancer::start_http(&conf, &[port]);
    // Files are looked up per request: written once the prefix exists.
    let html = b.dir.path().join("html");
    for dir in [
        "open",
        "closed",
        "outer/inner",
        "inner",
        "real",
        "ret",
        "caught",
        "v6",
    ] {
        std::fs::create_dir_all(html.join(dir)).unwrap();
        std::fs::write(html.join(dir).join("index.html"), format!("{dir}\n")).unwrap();
    }
    std::fs::write(html.join("forbidden.html"), "custom 403\n").unwrap();
    (b, port)
}

#[test]
fn rules_decide_in_order_and_log_denials() {
    let (b, port) = start();
    assert_eq!(get(port, "/open/").status, 200);
    assert_eq!(get(port, "/open/").text(), "open\n");
    let r = get(port, "/closed/");
    assert_eq!(r.status, 403);
    assert!(
        r.text().contains("<title>403 Forbidden</title>"),
        "{}",
        r.text()
    );
    // Rules of another family or of unix peers do not match an IPv4 client.
    assert_eq!(get(port, "/v6/").status, 200);
    // `return` runs in the rewrite phase, before access: nginx answers it.
    assert_eq!(get(port, "/ret/").text(), "returned\n");
    // A denial is an error page error_page can replace.
    let r = get(port, "/caught/");
    assert_eq!((r.status, r.text().as_str()), (403, "custom 403\n"));
    let log = b.error_log_text();
    assert!(
        log.lines().any(|l| l.contains("[error]")
            && l.contains("access forbidden by rule, client: 127.0.0.1, server: , request: \"GET /closed/ HTTP/1.1\", host: \"localhost:")),
        "{log}"
    );
    assert_eq!(
        support::count_lines(&log, "access forbidden by rule"),
        2,
        "{log}"
    );
}

#[test]
fn a_level_with_rules_replaces_the_outer_list() {
    let (_b, port) = start();
    assert_eq!(get(port, "/outer/").status, 403);
    assert_eq!(get(port, "/outer/inner/").status, 200);
    // /inner/ has no rules: http's `deny 192.0.2.0/24` applies and lets
    // 127.0.0.1 through.
    assert_eq!(get(port, "/inner/").status, 200);
}

#[test]
fn the_address_after_realip_is_checked() {
    let (_b, port) = start();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let ask = |ip: &str| {
        raw(
            addr,
            format!("GET /real/ HTTP/1.0\r\nHost: x\r\nX-Real-IP: {ip}\r\n\r\n").as_bytes(),
        )
        .unwrap()
        .status
    };
    assert_eq!(ask("198.51.100.7"), 403);
    assert_eq!(ask("198.51.100.8"), 200);
    // http's `deny 192.0.2.0/24` is replaced by the location's own rule.
    assert_eq!(ask("192.0.2.1"), 200);
}

#[test]
fn bad_rules_fail_the_load_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        "events {}\nhttp {\n server {\n  listen 127.0.0.1:1;\n  allow 10.0.0.0/33;\n }\n}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("-t")
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "invalid parameter \"10.0.0.0/33\" in {}:5",
            conf.display()
        )),
        "{err}"
    );
}

/// `limit_except`: the methods it lists (GET bringing HEAD) are served by
/// the location; any other gets the block's configuration: its access
/// rules, and its `proxy_pass` or else the location's.
#[test]
fn limit_except_gives_other_methods_its_block() {
    let (port, second) = (free_port(), free_port());
    let conf = format!(
        "server {{ listen 127.0.0.1:{second}; return 200 \"second $request_uri\"; }}
        server {{
            listen 127.0.0.1:{port};
            location = /target {{ return 200 \"target $request_method\"; }}
            location /guarded {{
                proxy_pass http://127.0.0.1:{port}/target;
                limit_except GET {{ deny all; }}
            }}
            location /passed {{
                proxy_pass http://127.0.0.1:{port}/target;
                limit_except GET POST {{ allow all; }}
            }}
            location /elsewhere {{
                proxy_pass http://127.0.0.1:{port}/target;
                limit_except GET {{ proxy_pass http://127.0.0.1:{second}; }}
            }}
        }}"
    );
    let _b = Balancer::start_http(&conf, &[port, second]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let ask = |method: &str, path: &str| {
        raw(
            addr,
            format!("{method} {path} HTTP/1.0\r\nContent-Length: 0\r\n\r\n").as_bytes(),
        )
        .unwrap()
    };
    assert_eq!(get(port, "/guarded").text(), "target GET");
    // HEAD comes with GET: answered, not refused.
    let head = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"HEAD /guarded HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(ask("POST", "/guarded").status, 403);
    assert_eq!(ask("DELETE", "/guarded").status, 403);
    assert_eq!(ask("POST", "/passed").text(), "target POST");
    // Not listed, allowed by the block: the location's proxy_pass still.
    assert_eq!(ask("PUT", "/passed").text(), "target PUT");
    // The block's own proxy_pass (no URI part: the request's goes on).
    assert_eq!(get(port, "/elsewhere").text(), "target GET");
    assert_eq!(ask("POST", "/elsewhere").text(), "second /elsewhere");
}
