//! Operations: reloads under traffic, graceful and fast stops, a bad reload
//! that changes nothing, active health checks, metrics and the status page.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{free_port, get, post, upstream_block, Balancer, Echo};

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn conf_text(port: u16, backends: &[&Echo], extra_server: &str) -> String {
    let servers: Vec<(SocketAddr, &str)> = backends.iter().map(|e| (e.addr, "")).collect();
    format!(
        "error_log logs/error.log info;\nevents {{}}\nhttp {{\naccess_log logs/access.log;\n{}\nserver {{\n    listen 127.0.0.1:{port};\n    {extra_server}\n    location / {{ proxy_pass http://backends; }}\n}}\n}}\n",
        upstream_block("backends", &servers)
    )
}

fn count_in_log(b: &Balancer, needle: &str) -> usize {
    b.error_log_text().matches(needle).count()
}

/// One GET on a keep-alive connection; reconnects when the server closed an
/// idle connection (what every HTTP client does for an idempotent request).
fn keepalive_get(conn: &mut Option<BufReader<TcpStream>>, port: u16) -> Result<u16, String> {
    for _ in 0..2 {
        if conn.is_none() {
            let s = TcpStream::connect(local(port)).map_err(|e| format!("connect: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(10))).ok();
            *conn = Some(BufReader::new(s));
        }
        let Some(reader) = conn.as_mut() else {
            continue;
        };
        let sent = reader
            .get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
        if sent.is_err() {
            *conn = None;
            continue;
        }
        match support::read_response(reader) {
            Ok(r) => {
                if r.header("connection") == Some("close") {
                    *conn = None;
                }
                return Ok(r.status);
            }
            // Closed before any byte of the response: the server retired
            // the idle connection; retry once on a new one.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => *conn = None,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Err("connection closed twice in a row".into())
}

#[test]
fn fifty_reloads_under_traffic_drop_nothing() {
    let a = Echo::start("a", "127.0.0.1:0");
    let b = Echo::start("b", "127.0.0.1:0");
    let port = free_port();
    let conf_a = conf_text(port, &[&a, &b], "");
    let conf_b = conf_text(port, &[&a, &b], "keepalive_requests 500;");
    let balancer = Balancer::start_full(&conf_a, &[port], &[]);

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for i in 0..3 {
        let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
        clients.push(std::thread::spawn(move || {
            let mut conn = None;
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                // Client 0 opens a new connection per request: it sees any
                // moment when nothing listens.
                if i == 0 {
                    conn = None;
                }
                match keepalive_get(&mut conn, port) {
                    Ok(200) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(status) => failures.lock().unwrap().push(format!("status {status}")),
                    Err(e) => failures.lock().unwrap().push(e),
                }
            }
        }));
    }
    // Long responses: 4 MiB each, read slowly so they span many reloads.
    let mut long = Vec::new();
    for _ in 0..2 {
        long.push(std::thread::spawn(move || -> Result<usize, String> {
            let mut s = TcpStream::connect(local(port)).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(30))).ok();
            s.write_all(b"GET /?size=4MiB HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .map_err(|e| e.to_string())?;
            let mut reader = BufReader::new(s);
            let mut line = String::new();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            let mut length = 0usize;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).map_err(|e| e.to_string())?;
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut got = 0usize;
            let mut buf = [0u8; 16384];
            loop {
                let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                got += n;
                std::thread::sleep(Duration::from_millis(3));
            }
            if got != length {
                return Err(format!("long response cut: {got} of {length} bytes"));
            }
            Ok(got)
        }));
    }

    for i in 0..50 {
        balancer.rewrite_conf(if i % 2 == 0 { &conf_b } else { &conf_a });
        balancer.signal(libc::SIGHUP);
        support::wait_until(Duration::from_secs(10), "reload to be logged", || {
            count_in_log(&balancer, "reconfiguring") > i
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    for l in long {
        let got = l.join().unwrap();
        assert_eq!(got, Ok(4 * 1024 * 1024));
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "too little traffic: {}",
        ok.load(Ordering::Relaxed)
    );
    assert_eq!(count_in_log(&balancer, "reconfiguring"), 50);
}

#[test]
fn a_broken_reload_keeps_the_old_config_serving() {
    let a = Echo::start("a", "127.0.0.1:0");
    let port = free_port();
    let balancer = Balancer::start_full(&conf_text(port, &[&a], ""), &[port], &[]);
    balancer.rewrite_conf("events {}\nhttp {\n    upstrem x {}\n}\n");
    balancer.signal(libc::SIGHUP);
    let expected = format!("[emerg] {}#", balancer.pid());
    let message = format!(
        "unknown directive \"upstrem\" in {}:3",
        balancer.conf_path().display()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(balancer.error_log_text().contains(&expected)
        && balancer.error_log_text().contains(&message))
    {
        assert!(
            Instant::now() < deadline,
            "no reload error {message:?} in:\n{}",
            balancer.error_log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get(port, "/").status, 200);
}

/// A balancer with one request in flight that the backend answers after
/// `delay` (the backends are returned so that they outlive it).
fn with_a_slow_request(
    delay: &str,
) -> (
    Balancer,
    std::thread::JoinHandle<support::Response>,
    [Echo; 2],
) {
    let a = Echo::start("a", "127.0.0.1:0");
    let b = Echo::start("b", "127.0.0.1:0");
    let (port, status_port) = (free_port(), free_port());
    let balancer = Balancer::start_full(
        &status_conf(port, status_port, &a, &b),
        &[port, status_port],
        &[],
    );
    let path = format!("/?delay={delay}");
    let slow = std::thread::spawn(move || get(port, &path));
    // stub_status counts the request asking too: 2 writing = the slow one is in flight.
    support::wait_until(Duration::from_secs(5), "the slow request in flight", || {
        get(status_port, "/basic_status")
            .text()
            .contains("Writing: 2 ")
    });
    (balancer, slow, [a, b])
}

#[test]
fn quit_finishes_in_flight_requests_then_exits_zero() {
    let (mut balancer, slow, _backends) = with_a_slow_request("1s");
    balancer.signal(libc::SIGQUIT);
    let response = slow.join().unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(balancer.wait(Duration::from_secs(10)), Some(0));
    assert!(!balancer.pid_file.exists(), "pid file removed on exit");
}

#[test]
fn term_stops_at_once() {
    let a = Echo::start("a", "127.0.0.1:0");
    let port = free_port();
    let mut balancer = Balancer::start_full(&conf_text(port, &[&a], ""), &[port], &[]);
    balancer.signal(libc::SIGTERM);
    assert_eq!(balancer.wait(Duration::from_secs(5)), Some(0));
    assert!(TcpStream::connect(local(port)).is_err());
}

#[test]
fn term_during_a_graceful_stop_exits_at_once() {
    // A request the graceful stop would wait half a minute for.
    let (mut balancer, _slow, _backends) = with_a_slow_request("30s");
    balancer.signal(libc::SIGQUIT);
    support::wait_until(Duration::from_secs(5), "the graceful stop to begin", || {
        balancer
            .error_log_text()
            .contains("shutting down gracefully")
    });
    balancer.signal(libc::SIGTERM);
    assert_eq!(balancer.wait(Duration::from_secs(5)), Some(0));
    assert!(balancer
        .error_log_text()
        .contains("signal 15 (SIGTERM) received, exiting"));
}

fn served_by(port: u16, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            get(port, "/")
                .header("x-served-by")
                .unwrap_or("-")
                .to_string()
        })
        .collect()
}

#[test]
fn active_health_checks_take_a_peer_out_and_back() {
    let a = Echo::start("a", "127.0.0.1:0");
    let b = Echo::start("b", "127.0.0.1:0");
    let port = free_port();
    let conf = format!(
        "error_log logs/error.log info;\nevents {{}}\nhttp {{\naccess_log off;\n\
         upstream backends {{\n    server {};\n    server {};\n    health_check interval=500ms fails=2 passes=2 uri=/healthz;\n}}\n\
         server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://backends; }} }}\n}}\n",
        a.addr, b.addr
    );
    let balancer = Balancer::start_full(&conf, &[port], &[]);
    assert!(served_by(port, 4).contains(&"a".to_string()));

    // a's health endpoint starts failing.
    assert_eq!(post(a.addr.port(), "/healthz", b"503").status, 200);
    let failed_at = Instant::now();
    support::wait_until(Duration::from_secs(5), "a to leave the rotation", || {
        served_by(port, 4).iter().all(|n| n == "b")
    });
    // interval x fails = 1s, plus one interval of phase and the probe itself.
    assert!(
        failed_at.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        failed_at.elapsed()
    );
    assert!(balancer
        .error_log_text()
        .contains("is unhealthy: status 503"));
    assert!(served_by(port, 10).iter().all(|n| n == "b"));

    assert_eq!(post(a.addr.port(), "/healthz", b"200").status, 200);
    let healed_at = Instant::now();
    support::wait_until(Duration::from_secs(5), "a to come back", || {
        served_by(port, 4).contains(&"a".to_string())
    });
    assert!(
        healed_at.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        healed_at.elapsed()
    );
    assert!(balancer.error_log_text().contains("is healthy again"));
}

/// A port free on both 127.0.0.2 and 127.0.0.3 (the health port every
/// peer of a `health_check port=` shares).
fn port_free_on_both() -> u16 {
    for _ in 0..50 {
        let p = free_port();
        if std::net::TcpListener::bind(("127.0.0.2", p)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.3", p)).is_ok()
        {
            return p;
        }
    }
    panic!("no port free on 127.0.0.2 and 127.0.0.3");
}

/// HTTPS probes (`ssl`, ours): traffic on one port, the health check over
/// TLS on another (OpenShift's routers: traffic 443, readiness elsewhere),
/// with no verification by default; a peer whose `/readyz` fails leaves and
/// comes back; with `ssl_trusted_certificate` a peer whose certificate is
/// not of that CA is unhealthy, with nginx-style wording in the error log.
#[test]
fn https_health_probes_on_another_port() {
    let dir = tempfile::tempdir().unwrap();
    let cert1 = dir.path().join("w1.pem");
    let health = port_free_on_both();
    let w1 = Echo::start("w1", "127.0.0.2:0");
    let w2 = Echo::start("w2", "127.0.0.3:0");
    let w1_health = Echo::start_with(
        "w1-health",
        &format!("127.0.0.2:{health}"),
        &["--tls", "--tls-cert-out", cert1.to_str().unwrap()],
    );
    let _w2_health = Echo::start_with("w2-health", &format!("127.0.0.3:{health}"), &["--tls"]);
    let port = free_port();
    let conf = |extra: &str| {
        format!(
            "error_log logs/error.log info;\nevents {{}}\nhttp {{\naccess_log off;\n\
             upstream backends {{\n    server {};\n    server {};\n    \
             health_check interval=200ms fails=1 passes=1 port={health} uri=/readyz ssl{extra};\n}}\n\
             server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://backends; }} }}\n}}\n",
            w1.addr, w2.addr
        )
    };
    let balancer = Balancer::start_full(&conf(""), &[port], &[]);
    support::wait_until(Duration::from_secs(5), "both peers to serve", || {
        let seen = served_by(port, 4);
        seen.contains(&"w1".to_string()) && seen.contains(&"w2".to_string())
    });
    let readyz = |status: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sk", "-m", "5", "-X", "POST"])
            .arg(format!("https://{}/readyz?status={status}", w1_health.addr))
            .output()
            .expect("curl");
        assert!(out.status.success(), "{out:?}");
    };
    readyz("503");
    support::wait_until(Duration::from_secs(5), "w1 to leave the rotation", || {
        served_by(port, 4).iter().all(|n| n == "w2")
    });
    assert!(balancer
        .error_log_text()
        .contains("is unhealthy: status 503"));
    readyz("200");
    support::wait_until(Duration::from_secs(5), "w1 to come back", || {
        served_by(port, 4).contains(&"w1".to_string())
    });
    drop(balancer);

    // Verified against w1's certificate: w2's (another self-signed one) fails.
    let balancer = Balancer::start_full(
        &conf(&format!(" ssl_trusted_certificate={}", cert1.display())),
        &[port],
        &[],
    );
    support::wait_until(Duration::from_secs(5), "w2 to be unhealthy", || {
        served_by(port, 6).iter().all(|n| n == "w1")
    });
    let log = balancer.error_log_text();
    assert!(
        log.contains(&format!(
            "peer {} of upstream \"backends\" is unhealthy: SSL handshake failed",
            w2.addr
        )),
        "{log}"
    );
}

fn status_conf(port: u16, status_port: u16, a: &Echo, b: &Echo) -> String {
    format!(
        "error_log logs/error.log info;\nevents {{}}\nhttp {{\naccess_log off;\n{}\n\
         server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://backends; }} }}\n\
         server {{ listen 127.0.0.1:{status_port};\n  location = /metrics {{ metrics; }}\n  location /status {{ status_page; }}\n  location = /basic_status {{ stub_status; }}\n}}\n}}\n",
        upstream_block("backends", &[(a.addr, ""), (b.addr, "")])
    )
}

/// nginx's `stub_status` in a server block answers the requests no
/// location of the server matches; its locations keep their own content.
#[test]
fn a_server_level_stub_status_answers_what_no_location_matches() {
    let port = free_port();
    let balancer = Balancer::start_full(
        &format!(
            "events {{}}\nhttp {{\naccess_log off;\n\
             server {{ listen 127.0.0.1:{port}; stub_status;\n  location = /own {{ return 200 own; }}\n}}\n}}\n"
        ),
        &[port],
        &[],
    );
    let unmatched = get(port, "/anything");
    assert_eq!(unmatched.status, 200);
    assert!(
        unmatched.text().starts_with("Active connections: 1 \n"),
        "{}",
        unmatched.text()
    );
    assert_eq!(get(port, "/own").text(), "own");
    drop(balancer);
}

/// stub_status's Reading counts a connection whose head is half here, and
/// a client that goes while its slow (limit_rate) response is written is
/// noticed and let go at once, as nginx's ngx_http_test_reading does,
/// instead of being written to for the rest of the body.
#[test]
fn stub_status_counts_reading_and_lets_a_gone_client_go() {
    let port = free_port();
    let balancer = Balancer::start_full(
        &format!(
            "error_log logs/error.log info;\nevents {{}}\nhttp {{\naccess_log off;\n\
             server {{ listen 127.0.0.1:{port};\n  location = /stub {{ stub_status; }}\n  \
             location /slow {{ limit_rate 10; return 200 \"{}\"; }}\n}}\n}}\n",
            "x".repeat(200)
        ),
        &[port],
        &[],
    );
    let states = || get(port, "/stub").text();
    let mut half = TcpStream::connect(("127.0.0.1", port)).unwrap();
    half.write_all(b"GET /stub HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    support::wait_until(Duration::from_secs(5), "the half head counted", || {
        states().ends_with("Reading: 1 Writing: 1 Waiting: 0 \n")
    });
    drop(half);
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /slow HTTP/1.0\r\n\r\n").unwrap();
    support::wait_until(Duration::from_secs(5), "the slow response writing", || {
        states().ends_with("Reading: 0 Writing: 2 Waiting: 0 \n")
    });
    drop(slow);
    // Twenty seconds of body were left to write; the close ends it now.
    support::wait_until(Duration::from_secs(5), "the gone client let go", || {
        states().starts_with("Active connections: 1 \n")
    });
    support::wait_until(Duration::from_secs(5), "the close logged", || {
        balancer.error_log_text().contains("[info] ")
            && balancer
                .error_log_text()
                .contains("client prematurely closed connection while sending response to client")
    });
    let posted = support::raw(
        format!("127.0.0.1:{port}").parse().unwrap(),
        b"POST /stub HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(posted.status, 405);
}

fn metric(text: &str, line_prefix: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric line {line_prefix}"))
}

#[test]
fn metrics_count_each_peer_and_pass_promtool() {
    let a = Echo::start("a", "127.0.0.1:0");
    let b = Echo::start("b", "127.0.0.1:0");
    let (port, status_port) = (free_port(), free_port());
    let _balancer = Balancer::start_full(
        &status_conf(port, status_port, &a, &b),
        &[port, status_port],
        &[],
    );
    for _ in 0..10 {
        assert_eq!(get(port, "/").status, 200);
    }
    get(port, "/?status=503");
    let text = get(status_port, "/metrics").text();
    let la = format!("upstream=\"backends\",peer=\"{}\"", a.addr);
    let lb = format!("upstream=\"backends\",peer=\"{}\"", b.addr);
    let total = metric(
        &text,
        &format!("switchyard_upstream_peer_requests_total{{{la}}}"),
    ) + metric(
        &text,
        &format!("switchyard_upstream_peer_requests_total{{{lb}}}"),
    );
    assert_eq!(total, 11);
    let fives = metric(
        &text,
        &format!("switchyard_upstream_peer_responses_total{{{la},code=\"5xx\"}}"),
    ) + metric(
        &text,
        &format!("switchyard_upstream_peer_responses_total{{{lb},code=\"5xx\"}}"),
    );
    assert_eq!(fives, 1);
    assert_eq!(
        metric(&text, &format!("switchyard_upstream_peer_up{{{la}}}")),
        1
    );

    let out = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .expect("promtool (Debian's prometheus package; scripts/install-test-deps installs it)");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let basic = get(status_port, "/basic_status").text();
    assert!(basic.starts_with("Active connections: "), "{basic}");
    assert!(
        basic.contains("server accepts handled requests\n"),
        "{basic}"
    );
}

fn chromium_dump(url: &str, screenshot: Option<&std::path::Path>) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=3000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()));
    if let Some(path) = screenshot {
        cmd.arg(format!("--screenshot={}", path.display()))
            .arg("--window-size=1000,600");
    } else {
        cmd.arg("--dump-dom");
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("chromium (Debian's package; scripts/install-test-deps installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn page_requests(dom: &str, peer: &SocketAddr) -> u64 {
    // <tr class="peer" data-peer="ADDR">...<td class="requests">N</td>
    let row = dom
        .split("<tr")
        .find(|r| r.contains(&format!("data-peer=\"{peer}\"")))
        .unwrap_or_else(|| panic!("no row for {peer} in the page: {dom}"));
    row.split("class=\"requests\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in {row}"))
}

#[test]
fn status_page_shows_requests_per_peer_live_in_chromium() {
    let a = Echo::start("a", "127.0.0.1:0");
    let b = Echo::start("b", "127.0.0.1:0");
    let (port, status_port) = (free_port(), free_port());
    let _balancer = Balancer::start_full(
        &status_conf(port, status_port, &a, &b),
        &[port, status_port],
        &[],
    );
    let url = format!("http://127.0.0.1:{status_port}/status");
    for _ in 0..4 {
        get(port, "/");
    }
    let first = chromium_dump(&url, None);
    assert_eq!(
        page_requests(&first, &a.addr) + page_requests(&first, &b.addr),
        4,
        "{first}"
    );
    for _ in 0..6 {
        get(port, "/");
    }
    let second = chromium_dump(&url, None);
    assert_eq!(page_requests(&second, &a.addr), 5);
    assert_eq!(page_requests(&second, &b.addr), 5);
    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("status-page.png");
    chromium_dump(&url, Some(&shot));
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 1000)
            .unwrap_or(false),
        "no screenshot at {}",
        shot.display()
    );
}

#[test]
fn usr1_reopens_logs_after_rotation() {
    let a = Echo::start("a", "127.0.0.1:0");
    let port = free_port();
    let balancer = Balancer::start_full(&conf_text(port, &[&a], ""), &[port], &[]);
    assert_eq!(get(port, "/first").status, 200);
    support::wait_until(Duration::from_secs(5), "the first access-log line", || {
        balancer.access_lines().iter().any(|l| l.contains("/first"))
    });
    // logrotate's move, then the signal it sends.
    let rotated = balancer.dir.path().join("logs/access.log.1");
    std::fs::rename(&balancer.access_log, &rotated).unwrap();
    balancer.signal(libc::SIGUSR1);
    support::wait_until(Duration::from_secs(5), "the reopen", || {
        balancer.error_log_text().contains("reopening logs")
    });
    assert_eq!(get(port, "/second").status, 200);
    support::wait_until(
        Duration::from_secs(5),
        "a line in the new access.log",
        || {
            balancer
                .access_lines()
                .iter()
                .any(|l| l.contains("/second"))
        },
    );
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("/first") && !old.contains("/second"), "{old}");
}

/// nginx's two waits: an idle kept-alive connection closes after
/// `keepalive_timeout`, a head that does not arrive (first request, or a
/// started one later) after `client_header_timeout`.
#[test]
fn keepalive_timeout_and_client_header_timeout_are_separate() {
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "client_header_timeout 1s; keepalive_timeout 3s;\n\
             server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\"; }} }}"
        ),
        &[port],
    );
    let closed_after = |first: &[u8], later: Option<&[u8]>| -> Duration {
        let mut s = TcpStream::connect(local(port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(first).unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        if first.ends_with(b"\r\n\r\n") {
            let r = support::read_response(&mut reader).unwrap();
            assert_eq!(r.status, 200);
        }
        if let Some(later) = later {
            s.write_all(later).unwrap();
        }
        let t = Instant::now();
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
        t.elapsed()
    };
    let idle = closed_after(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", None);
    assert!(
        idle >= Duration::from_millis(2800) && idle < Duration::from_millis(4500),
        "idle keep-alive closed after {idle:?}"
    );
    let first_head = closed_after(b"GET / HTTP/1.1\r\nHo", None);
    assert!(
        first_head >= Duration::from_millis(800) && first_head < Duration::from_millis(2500),
        "{first_head:?}"
    );
    let later_head = closed_after(
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        Some(b"GET / HTTP/1.1\r\nHo"),
    );
    assert!(
        later_head >= Duration::from_millis(800) && later_head < Duration::from_millis(2500),
        "{later_head:?}"
    );
}

/// A kept-alive connection idle past a quarter second leaves its task for
/// the worker's parking lot (http/h1/park.rs): it must still serve its next
/// request, one after another, and a reload must close it like any idle one.
#[test]
fn long_idle_connections_park_serve_again_and_take_a_reload() {
    let port = free_port();
    let conf = |text: &str| {
        format!(
            "error_log logs/error.log info;\nevents {{}}\nhttp {{ keepalive_timeout 30s;\n\
             server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"{text}\"; }} }} }}"
        )
    };
    let balancer = Balancer::start_full(&conf("ok"), &[port], &[]);
    let mut s = TcpStream::connect(local(port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    for round in 0..3 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let r = support::read_response(&mut reader).unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "ok"), "round {round}");
        // Well past the park threshold.
        std::thread::sleep(Duration::from_millis(700));
    }
    // A body sent to a parked connection arrives whole.
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    assert_eq!(support::read_response(&mut reader).unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(700));
    // A reload closes nothing: the parked connection's next request is
    // answered by the new configuration.
    balancer.rewrite_conf(&conf("new"));
    balancer.signal(libc::SIGHUP);
    support::wait_until(Duration::from_secs(10), "reload to be logged", || {
        count_in_log(&balancer, "reconfiguring") >= 1
    });
    support::wait_until(Duration::from_secs(10), "new config to serve", || {
        support::get(port, "/").text() == "new"
    });
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = support::read_response(&mut reader).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "new"));
    assert_eq!(r.header("connection"), Some("keep-alive"));
}

#[test]
fn twenty_reloads_under_keepalive_traffic_lose_no_request() {
    let port = free_port();
    let conf = |generation: usize| {
        format!(
            "error_log logs/error.log info;\nevents {{}}\n\
             http {{ keepalive_timeout 30s; keepalive_requests 100000;\n\
             server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"g{generation}\"; }} }} }}"
        )
    };
    let balancer = Balancer::start_full(&conf(0), &[port], &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for i in 0..4u64 {
        let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
        clients.push(std::thread::spawn(move || {
            // One connection for the whole run, and no retry: a request
            // lost to a reload (a close under it) is a failure.
            let s = TcpStream::connect(local(port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut writer = s.try_clone().unwrap();
            let mut reader = BufReader::new(s);
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && n < 5000 {
                n += 1;
                let result = writer
                    .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    .map_err(|e| format!("client {i} write: {e}"))
                    .and_then(|()| {
                        support::read_response(&mut reader)
                            .map_err(|e| format!("client {i} read: {e}"))
                    });
                match result {
                    Ok(r) if r.status == 200 && r.header("connection") == Some("keep-alive") => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.lock().unwrap().push(format!(
                        "client {i}: {} {:?}",
                        r.status,
                        r.header("connection")
                    )),
                    Err(e) => {
                        failures.lock().unwrap().push(e);
                        return;
                    }
                }
                // Clients 2 and 3 idle between requests, past the moment
                // an idle connection parks.
                if i >= 2 {
                    std::thread::sleep(Duration::from_millis(100 + 150 * (n % 3)));
                }
            }
        }));
    }
    for generation in 1..=20 {
        balancer.rewrite_conf(&conf(generation));
        balancer.signal(libc::SIGHUP);
        support::wait_until(Duration::from_secs(10), "reload to be logged", || {
            count_in_log(&balancer, "reconfiguring") >= generation
        });
        std::thread::sleep(Duration::from_millis(150));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        ok.load(Ordering::Relaxed) > 40,
        "too little traffic: {ok:?}"
    );
    // The kept-alive connections now serve the last configuration.
    assert_eq!(support::get(port, "/").text(), "g20");
}

/// With `worker_shutdown_timeout`, an upgraded connection of a replaced
/// configuration is closed that long after the reload, as nginx's old
/// worker closes it; other connections carry on.
#[test]
fn reload_closes_old_tunnels_after_worker_shutdown_timeout() {
    let up = support::upgrade_echo_backend("foo");
    let port = free_port();
    let conf = format!(
        "error_log logs/error.log info;\nworker_shutdown_timeout 50ms;\nevents {{}}\n\
         http {{ server {{ listen 127.0.0.1:{port};\n\
           location / {{ proxy_pass http://{up}; proxy_http_version 1.1;\n\
             proxy_set_header Upgrade foo; proxy_set_header Connection upgrade; }} }} }}"
    );
    let balancer = Balancer::start_full(&conf, &[port], &[]);
    let mut s = TcpStream::connect(local(port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\nping")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"ping") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "{:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    balancer.signal(libc::SIGHUP);
    let t = Instant::now();
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the tunnel outlived the old configuration");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}
