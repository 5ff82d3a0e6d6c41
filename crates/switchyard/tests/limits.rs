//! limit_req, limit_conn and limit_rate in http: statuses, delays, the
//! variables and nginx's error-log lines, on a real process.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::{free_port, get, Balancer};

fn start(body: &str, port: u16) -> Balancer {
    let b = Balancer::start_http(body, &[port]);
    let html = b.dir.path().join("html");
    std::fs::create_dir_all(&html).unwrap();
    std::fs::write(html.join("index.html"), "index\n").unwrap();
    std::fs::write(html.join("big"), vec![b'x'; 30000]).unwrap();
    b
}

#[test]
fn limit_req_burst_nodelay_status_and_log() {
    let port = free_port();
    let b = start(
        &format!(
            "limit_req_zone $binary_remote_addr zone=one:1m rate=2r/s;
            limit_req_zone $arg_k zone=bykey:1m rate=1r/m;
            server {{
                listen 127.0.0.1:{port};
                root html;
                add_header X-Limit $limit_req_status always;
                location / {{ limit_req zone=one burst=1 nodelay; }}
                location /custom/ {{
                    alias html/;
                    limit_req zone=bykey; limit_req_status 429; limit_req_log_level warn;
                    error_page 429 /index.html;
                }}
                location /dry/ {{ alias html/; limit_req zone=bykey; limit_req_dry_run on; }}
            }}"
        ),
        port,
    );
    // The first passes, the burst of one passes at once, the third is over.
    let first = get(port, "/");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-limit"), Some("PASSED"));
    let second = get(port, "/");
    assert_eq!(second.status, 200);
    assert_eq!(second.header("x-limit"), Some("PASSED"), "nodelay");
    let third = get(port, "/");
    assert_eq!(third.status, 503);
    assert_eq!(third.header("x-limit"), Some("REJECTED"));
    assert!(third.text().contains("503 Service Temporarily Unavailable"));
    let log = b.error_log_text();
    assert!(
        log.contains("[error]")
            && log.contains("limiting requests, excess: 1.")
            && log.contains(
                " by zone \"one\", client: 127.0.0.1, server: , request: \"GET / HTTP/1.1\""
            ),
        "{log}"
    );

    // A key of its own; an empty key is not limited.
    assert_eq!(get(port, "/custom/?k=a").status, 200);
    let refused = get(port, "/custom/?k=a");
    assert_eq!(refused.status, 429, "limit_req_status");
    assert_eq!(refused.text(), "index\n", "error_page catches it");
    assert_eq!(get(port, "/custom/?k=b").status, 200);
    for _ in 0..3 {
        assert_eq!(get(port, "/custom/").status, 200, "empty key");
    }
    let log = b.error_log_text();
    assert!(
        log.contains("[warn]") && log.contains("by zone \"bykey\""),
        "{log}"
    );

    // Dry run: counted and logged, never refused.
    let dry = get(port, "/dry/?k=a");
    assert_eq!(dry.status, 200);
    assert_eq!(dry.header("x-limit"), Some("REJECTED_DRY_RUN"));
    assert!(b
        .error_log_text()
        .contains("limiting requests, dry run, excess: "));
}

#[test]
fn limit_req_delays_the_excess() {
    let port = free_port();
    let _b = start(
        &format!(
            "limit_req_zone $binary_remote_addr zone=slow:1m rate=4r/s;
            server {{
                listen 127.0.0.1:{port};
                root html;
                add_header X-Limit $limit_req_status always;
                location / {{ limit_req zone=slow burst=5; }}
            }}"
        ),
        port,
    );
    assert_eq!(get(port, "/").status, 200);
    // One request over the rate waits for it to leak: about 250ms.
    let started = Instant::now();
    let delayed = get(port, "/");
    let waited = started.elapsed();
    assert_eq!(delayed.status, 200);
    assert_eq!(delayed.header("x-limit"), Some("DELAYED"));
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
}

/// Sends a request and keeps the connection open without reading.
fn hold(port: u16, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    s
}

#[test]
fn limit_conn_counts_requests_in_progress() {
    let port = free_port();
    let b = start(
        &format!(
            "limit_conn_zone $binary_remote_addr zone=conns:1m;
            server {{
                listen 127.0.0.1:{port};
                root html;
                add_header X-Conn $limit_conn_status always;
                limit_rate 4k;
                location / {{ limit_conn conns 1; }}
                location /other/ {{ limit_conn conns 1; limit_conn_status 501; limit_conn_log_level info; }}
                location /dry/ {{ limit_conn conns 1; limit_conn_dry_run on; alias html/; }}
            }}"
        ),
        port,
    );
    // A slow response (30000 bytes at 4k/s) holds the count while it is sent.
    let mut slow = hold(port, "/big");
    support::wait_until(Duration::from_secs(5), "the slow response starts", || {
        let mut byte = [0u8; 1];
        slow.read(&mut byte).map(|n| n == 1).unwrap_or(false)
    });
    let refused = get(port, "/index.html");
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("x-conn"), Some("REJECTED"));
    let custom = get(port, "/other/index.html");
    assert_eq!(custom.status, 501, "limit_conn_status");
    let dry = get(port, "/dry/index.html");
    assert_eq!(dry.status, 200);
    assert_eq!(dry.header("x-conn"), Some("REJECTED_DRY_RUN"));
    let log = b.error_log_text();
    assert!(
        log.contains("[error]")
            && log.contains("limiting connections by zone \"conns\", client: 127.0.0.1"),
        "{log}"
    );
    assert!(
        log.contains("[info]") && log.contains("limiting connections by zone \"conns\""),
        "{log}"
    );
    assert!(
        log.contains("limiting connections, dry run, by zone \"conns\""),
        "{log}"
    );
    // Once the slow response is over, the count is back to zero.
    slow.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut rest = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(15);
    while rest.len() < 30000 {
        assert!(Instant::now() < deadline, "the slow response never ended");
        match slow.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => rest.extend_from_slice(&buf[..n]),
        }
    }
    support::wait_until(Duration::from_secs(5), "the count is released", || {
        get(port, "/index.html").status == 200
    });
    let passed = get(port, "/index.html");
    assert_eq!(passed.header("x-conn"), Some("PASSED"));
}

#[test]
fn limit_rate_paces_after_limit_rate_after() {
    let port = free_port();
    let _b = start(
        &format!(
            "server {{
                listen 127.0.0.1:{port};
                root html;
                location / {{ limit_rate 10k; limit_rate_after 10k; }}
                location /set/ {{ alias html/; set $limit_rate 100k; add_header X-Rate $limit_rate; }}
                location /var/ {{ alias html/; limit_rate $arg_r; }}
            }}"
        ),
        port,
    );
    // 30000 bytes: 10k free, 10k in the first second, the rest at 10k/s.
    let started = Instant::now();
    let r = get(port, "/big");
    let took = started.elapsed();
    assert_eq!(r.body.len(), 30000);
    assert!(took >= Duration::from_millis(800), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    // `set $limit_rate` overrides, and reads back.
    let started = Instant::now();
    let r = get(port, "/set/big");
    assert_eq!(r.body.len(), 30000);
    assert_eq!(r.header("x-rate"), Some("102400"));
    assert!(started.elapsed() < Duration::from_millis(800));
    // A variable rate; an empty one does not limit.
    let started = Instant::now();
    assert_eq!(get(port, "/var/big").body.len(), 30000);
    assert!(started.elapsed() < Duration::from_millis(800));
    let started = Instant::now();
    assert_eq!(get(port, "/var/big?r=20k").body.len(), 30000);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn unknown_zone_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        "events {}\nhttp { server { listen 127.0.0.1:1; location / { limit_req zone=nope; } } }\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .arg("-t")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("zero size shared memory zone \"nope\""),
        "{err}"
    );
}
