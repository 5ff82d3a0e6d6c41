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
