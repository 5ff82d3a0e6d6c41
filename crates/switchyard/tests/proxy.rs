//! The proxy against real `switchyard echo` backends: round robin, weights,
//! backup, max_fails/fail_timeout, 502/504 with nginx's error-log lines, a
//! name that resolves after startup, 100 MiB bodies with flat memory, the
//! access log and the headers the backend sees. nginx's behaviour is the spec.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::{
    count_lines, free_port, get, proc_status_kib, upstream_block, wait_until, Balancer, Echo,
    KeepAlive,
};

/// A balancer on a fresh port proxying `/` to upstream `backends` made of
/// `servers`; `extra` goes into the server block.
fn balancer(servers: &[(SocketAddr, &str)], extra: &str) -> (Balancer, u16) {
    let port = free_port();
    let conf = format!(
        "{}{}",
        upstream_block("backends", servers),
        support::proxy_server(port, "backends", extra)
    );
    (Balancer::start_http(&conf, &[port]), port)
}

fn served_by(r: &support::Response) -> String {
    r.header("x-served-by").unwrap_or("-").to_string()
}

/// `n` GETs on one keep-alive connection; who answered each, all 200.
fn sequence(port: u16, n: usize) -> Vec<String> {
    let mut client = KeepAlive::connect(port);
    (0..n)
        .map(|i| {
            let r = client.get(&format!("/seq/{i}"));
            assert_eq!(r.status, 200, "request {i}: {r:?}");
            served_by(&r)
        })
        .collect()
}

#[test]
fn round_robin_alternates_strictly() {
    let a = Echo::start("a", "127.0.0.1:0");
    let b = Echo::start("b", "127.0.0.1:0");
    let (_lb, port) = balancer(&[(a.addr, ""), (b.addr, "")], "");
    let seq = sequence(port, 1000);
    for (i, who) in seq.iter().enumerate() {
        assert_eq!(who, ["a", "b"][i % 2], "request {i} of {seq:?}");
    }
}

#[test]
fn round_robin_three_peers() {
    let a = Echo::start("a", "127.0.0.1:0");
    let b = Echo::start("b", "127.0.0.1:0");
    let c = Echo::start("c", "127.0.0.1:0");
    let (_lb, port) = balancer(&[(a.addr, ""), (b.addr, ""), (c.addr, "")], "");
    let seq = sequence(port, 999);
    for (i, who) in seq.iter().enumerate() {
        assert_eq!(who, ["a", "b", "c"][i % 3], "request {i}");
    }
}

#[test]
fn smooth_weighted_round_robin() {
    let a = Echo::start("a", "127.0.0.1:0");
    let b = Echo::start("b", "127.0.0.1:0");
    let c = Echo::start("c", "127.0.0.1:0");
    let (_lb, port) = balancer(&[(a.addr, "weight=5"), (b.addr, ""), (c.addr, "")], "");
    let seq = sequence(port, 707);
    // nginx's smooth weighted round robin interleaves: a a b a c a a.
    assert_eq!(seq[..7], ["a", "a", "b", "a", "c", "a", "a"]);
    let rest = &seq[7..];
    let count = |n: &str| rest.iter().filter(|w| *w == n).count();
    assert_eq!((count("a"), count("b"), count("c")), (500, 100, 100));
}

#[test]
fn backup_only_when_every_primary_is_down() {
    let mut a = Echo::start("a", "127.0.0.1:0");
    let mut b = Echo::start("b", "127.0.0.1:0");
    let c = Echo::start("c", "127.0.0.1:0");
    let (lb, port) = balancer(&[(a.addr, ""), (b.addr, ""), (c.addr, "backup")], "");
    let seq = sequence(port, 20);
    assert!(!seq.contains(&"c".to_string()), "{seq:?}");
    a.kill();
    b.kill();
    let seq = sequence(port, 20);
    assert!(seq.iter().all(|w| w == "c"), "{seq:?}");
    // Each primary failed once (max_fails=1) and was then left alone.
    let log = lb.error_log_text();
    assert_eq!(count_lines(&log, "connect() failed"), 2, "{log}");
}

#[test]
fn max_fails_and_fail_timeout() {
    let port_a = free_port();
    let mut a = Echo::start("a", &format!("127.0.0.1:{port_a}"));
    let b = Echo::start("b", "127.0.0.1:0");
    let (lb, port) = balancer(&[(a.addr, "max_fails=1 fail_timeout=2s"), (b.addr, "")], "");
    assert_eq!(sequence(port, 4), ["a", "b", "a", "b"]);

    a.kill();
    let failed_at = Instant::now();
    // proxy_next_upstream error: the refused connection is retried on b.
    let seq = sequence(port, 10);
    assert!(seq.iter().all(|w| w == "b"), "{seq:?}");
    let log = lb.error_log_text();
    assert_eq!(count_lines(&log, "connect() failed"), 1, "{log}");
    assert!(
        log.contains(&format!(
            "connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: , request: \"GET /seq/0 HTTP/1.1\", upstream: \"http://127.0.0.1:{port_a}/seq/0\""
        )),
        "{log}"
    );

    // a is back on its address, but still failed for fail_timeout: not tried.
    let a2 = Echo::start("a2", &format!("127.0.0.1:{port_a}"));
    let mut client = KeepAlive::connect(port);
    while failed_at.elapsed() < Duration::from_millis(1500) {
        let r = client.get("/during");
        assert_eq!(served_by(&r), "b");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(a2.log.lock().unwrap().is_empty());
    // After fail_timeout it is tried again and takes its share.
    wait_until(Duration::from_secs(6), "a2 to get traffic again", || {
        served_by(&client.get("/after")) == "a2"
    });
    let seq = sequence(port, 4);
    assert_eq!(seq.iter().filter(|w| *w == "a2").count(), 2, "{seq:?}");
    let log = lb.error_log_text();
    assert_eq!(count_lines(&log, "connect() failed"), 1, "{log}");
}

#[test]
fn bad_gateway_when_nothing_listens() {
    let dead = free_port();
    let dead_addr = SocketAddr::from(([127, 0, 0, 1], dead));
    let (lb, port) = balancer(&[(dead_addr, "")], "");
    for _ in 0..2 {
        let r = get(port, "/");
        assert_eq!(r.status, 502);
        assert_eq!(r.header("content-type"), Some("text/html"));
        assert!(
            r.text()
                .contains("<center><h1>502 Bad Gateway</h1></center>"),
            "{}",
            r.text()
        );
    }
    // A single peer is never marked failed (nginx): two tries, two lines.
    let log = lb.error_log_text();
    let wanted = format!(
        "connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: , request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:{dead}/\", host: \"localhost:{port}\""
    );
    assert_eq!(count_lines(&log, &wanted), 2, "{log}");
    assert!(log.contains(" [error] "), "{log}");
    assert!(!log.contains("no live upstreams"), "{log}");
}

#[test]
fn gateway_timeout_on_a_slow_header() {
    let a = Echo::start("a", "127.0.0.1:0");
    let (lb, port) = balancer(&[(a.addr, "")], "proxy_read_timeout 1s;");
    let started = Instant::now();
    let r = get(port, "/?delay=3s");
    assert_eq!(r.status, 504);
    assert!(
        r.text()
            .contains("<center><h1>504 Gateway Time-out</h1></center>"),
        "{}",
        r.text()
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2900),
        "{took:?}"
    );
    let log = lb.error_log_text();
    assert!(
        log.contains(&format!(
            "upstream timed out (110: Connection timed out) while reading response header from upstream, client: 127.0.0.1, server: , request: \"GET /?delay=3s HTTP/1.1\", upstream: \"http://{}/?delay=3s\"",
            a.addr
        )),
        "{log}"
    );
}

/// A hosts file (`SWITCHYARD_HOSTS`) that starts empty, so that the name
/// `latebackend` resolves only once the test says so.
struct LateHosts {
    _dir: tempfile::TempDir,
    path: String,
}

impl LateHosts {
    fn new() -> LateHosts {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, "").unwrap();
        LateHosts {
            path: path.to_string_lossy().into_owned(),
            _dir: dir,
        }
    }

    fn env(&self) -> (&'static str, &str) {
        ("SWITCHYARD_HOSTS", &self.path)
    }

    fn resolve_latebackend(&self) {
        std::fs::write(&self.path, "127.0.0.1 latebackend\n").unwrap();
    }
}

#[test]
fn name_resolving_after_startup_joins() {
    let echo = Echo::start("late", "127.0.0.1:0");
    let hosts = LateHosts::new();
    let port = free_port();
    let conf = format!(
        "error_log logs/error.log info;\nevents {{}}\nhttp {{\naccess_log logs/access.log;\n{}{}}}\n",
        format_args!(
            "upstream backends {{\n    server latebackend:{};\n}}\n",
            echo.addr.port()
        ),
        support::proxy_server(port, "backends", "")
    );
    let lb = Balancer::start_full(&conf, &[port], &[hosts.env()]);
    let log = lb.error_log_text();
    assert!(
        log.contains(&format!(
            "host not found in upstream \"latebackend:{}\"",
            echo.addr.port()
        )),
        "{log}"
    );
    for _ in 0..3 {
        assert_eq!(get(port, "/").status, 502);
    }
    hosts.resolve_latebackend();
    let written = Instant::now();
    wait_until(Duration::from_secs(10), "the late name to serve", || {
        get(port, "/").status == 200
    });
    assert!(
        written.elapsed() < Duration::from_secs(6),
        "{:?}",
        written.elapsed()
    );
    let r = get(port, "/");
    assert_eq!((r.status, served_by(&r).as_str()), (200, "late"));
}

/// Issue 16, finding 3: at nginx's default error_log level (error), a name
/// that does not resolve is reported with the config's file:line (it was a
/// [warn], so a new user saw nothing but 502s), and so is its resolution.
#[test]
fn unresolved_name_is_reported_at_the_default_level_and_so_is_its_resolution() {
    let echo = Echo::start("late", "127.0.0.1:0");
    let hosts = LateHosts::new();
    let port = free_port();
    let conf = format!(
        "error_log logs/error.log;\nevents {{}}\nhttp {{\naccess_log logs/access.log;\n\
         upstream backends {{\n    server latebackend:{};\n}}\n{}}}\n",
        echo.addr.port(),
        support::proxy_server(port, "backends", "")
    );
    let lb = Balancer::start_full(&conf, &[port], &[hosts.env()]);
    let conf_path = lb.conf_path();
    let at = format!("in {}:6", conf_path.display());
    let log = lb.error_log_text();
    let line = log
        .lines()
        .find(|l| l.contains("host not found in upstream \"latebackend:"))
        .unwrap_or_else(|| panic!("no host-not-found line in:\n{log}"));
    assert!(line.contains("[error]"), "{line}");
    assert!(line.contains(&at), "{line} lacks {at}");
    hosts.resolve_latebackend();
    wait_until(Duration::from_secs(10), "the late name to serve", || {
        get(port, "/").status == 200
    });
    let log = lb.error_log_text();
    let line = log
        .lines()
        .find(|l| l.contains("resolved to 127.0.0.1:"))
        .unwrap_or_else(|| panic!("no resolved line in:\n{log}"));
    assert!(line.contains("[error]"), "{line}");
    assert!(
        line.contains("latebackend:") && line.contains(&at),
        "{line}"
    );
}

/// Issue 16, finding 4: a server whose name has not resolved is a row on
/// `/status.json` (state "resolving", the lookup's error, the next try) and
/// in `/metrics`, beside the resolved peers; once it resolves it is a peer.
#[test]
fn unresolved_servers_are_rows_on_the_status_page_and_in_metrics() {
    let echo = Echo::start("early", "127.0.0.1:0");
    let hosts = LateHosts::new();
    let (port, status_port) = (free_port(), free_port());
    let conf = format!(
        "error_log logs/error.log;\nevents {{}}\nhttp {{\naccess_log logs/access.log;\n\
         upstream backends {{\n    server {};\n    server latebackend:{};\n}}\n{}\n\
         server {{ listen 127.0.0.1:{status_port}; location = /metrics {{ metrics; }} location /status {{ status_page; }} }}\n}}\n",
        echo.addr,
        echo.addr.port(),
        support::proxy_server(port, "backends", "")
    );
    let lb = Balancer::start_full(&conf, &[port, status_port], &[hosts.env()]);
    let late = format!("latebackend:{}", echo.addr.port());
    let json: serde_json::Value =
        serde_json::from_str(&get(status_port, "/status.json").text()).unwrap();
    let peers = json["upstreams"][0]["peers"].as_array().unwrap().clone();
    let row = peers
        .iter()
        .find(|p| p["peer"] == late.as_str())
        .unwrap_or_else(|| panic!("no row for {late} in {json}"));
    assert_eq!(row["state"], "resolving", "{row}");
    assert!(!row["error"].as_str().unwrap_or("").is_empty(), "{row}");
    assert!(row["next_try_in"].as_f64().is_some(), "{row}");
    assert!(
        peers
            .iter()
            .any(|p| p["peer"] == echo.addr.to_string() && p["state"] == "up"),
        "{json}"
    );
    let metrics = get(status_port, "/metrics").text();
    let resolving =
        format!("switchyard_upstream_peer_resolving{{upstream=\"backends\",peer=\"{late}\"}} 1");
    assert!(metrics.contains(&resolving), "{metrics}");
    assert!(
        metrics.contains(&format!(
            "switchyard_upstream_peer_up{{upstream=\"backends\",peer=\"{late}\"}} 0"
        )),
        "{metrics}"
    );

    hosts.resolve_latebackend();
    wait_until(
        Duration::from_secs(10),
        "the late name to leave the resolving rows",
        || {
            !get(status_port, "/status.json")
                .text()
                .contains("\"resolving\"")
        },
    );
    let metrics = get(status_port, "/metrics").text();
    assert!(!metrics.contains(&resolving), "{metrics}");
    drop(lb);
}

const MIB: u64 = 1 << 20;

/// POSTs `len` generated bytes in 64 KiB chunks from a writer thread while
/// this thread counts the response body; returns (status, body bytes).
fn post_streamed(port: u16, len: u64) -> (u16, u64) {
    let stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        write!(
            writer,
            "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        )?;
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            writer.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        Ok(())
    });
    let (status, n) = count_response(stream);
    sender.join().unwrap().expect("sending the body");
    (status, n)
}

/// Reads a response's head and counts its body bytes (Content-Length or
/// until close) without keeping them.
fn count_response(stream: TcpStream) -> (u16, u64) {
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut length = None;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<u64>().ok();
            }
            assert!(
                !(k.eq_ignore_ascii_case("transfer-encoding")),
                "unexpected chunked response: {h}"
            );
        }
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    if let Some(l) = length {
        assert_eq!(l, total, "Content-Length against bytes received");
    }
    (status, total)
}

fn assert_flat_memory(lb: &Balancer, what: &str) {
    let hwm = proc_status_kib(lb.pid(), "VmHWM").expect("VmHWM");
    assert!(
        hwm < 64 * 1024,
        "{what}: balancer peak RSS {hwm} kB, over 64 MiB"
    );
}

#[test]
fn large_bodies_stream_with_flat_memory_http11() {
    let a = Echo::start("a", "127.0.0.1:0");
    let (lb, port) = balancer(
        &[(a.addr, "")],
        "client_max_body_size 0;\n    proxy_http_version 1.1;",
    );
    assert_eq!(post_streamed(port, 100 * MIB), (200, 100 * MIB + 1));
    assert_flat_memory(&lb, "100 MiB POST over HTTP/1.1");
    let stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    (&stream)
        .write_all(b"GET /?size=100MiB HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(count_response(stream), (200, 100 * MIB));
    assert_flat_memory(&lb, "100 MiB GET over HTTP/1.1");
}

#[test]
fn large_bodies_stream_with_flat_memory_http10() {
    let a = Echo::start("a", "127.0.0.1:0");
    let (lb, port) = balancer(&[(a.addr, "")], "client_max_body_size 0;");
    assert_eq!(post_streamed(port, 100 * MIB), (200, 100 * MIB + 1));
    assert_flat_memory(&lb, "100 MiB POST over HTTP/1.0");
    let stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    (&stream)
        .write_all(b"GET /?size=100MiB HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(count_response(stream), (200, 100 * MIB));
    assert_flat_memory(&lb, "100 MiB GET over HTTP/1.0");
}

#[test]
fn access_log_combined_and_custom_format() {
    let a = Echo::start("a", "127.0.0.1:0");
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let port = free_port();
    let conf = format!(
        "log_format up '$upstream_addr $upstream_status $request_time $upstream_response_time $status $body_bytes_sent';\n{}{}",
        upstream_block("backends", &[(dead, ""), (a.addr, "")]),
        support::proxy_server(port, "backends", "access_log logs/access.log;\n    access_log logs/up.log up;")
    );
    let lb = Balancer::start_http(&conf, &[port]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // First request: the dead peer fails, a answers. Then a alone.
    for path in ["/one", "/two", "/three?x=1"] {
        let r = support::raw(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: tester/1.0\r\nReferer: http://ref/\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 200);
    }
    let up_log = lb.dir.path().join("logs/up.log");
    wait_until(Duration::from_secs(5), "three access-log lines", || {
        lb.access_lines().len() == 3
            && std::fs::read_to_string(&up_log)
                .unwrap_or_default()
                .lines()
                .count()
                == 3
    });
    let lines = lb.access_lines();
    for (line, path) in lines.iter().zip(["/one", "/two", "/three?x=1"]) {
        // 127.0.0.1 - - [01/Jan/2026:10:00:00 +0000] "GET /one HTTP/1.1" 200 312 "http://ref/" "tester/1.0"
        let (head, rest) = line.split_once(" [").unwrap_or_else(|| panic!("{line}"));
        assert_eq!(head, "127.0.0.1 - -");
        let (time, rest) = rest.split_once("] ").unwrap();
        assert_eq!(time.len(), "01/Jan/2026:10:00:00 +0000".len(), "{line}");
        assert_eq!(&time[2..3], "/");
        assert_eq!(&time[11..12], ":");
        let len_prefix = format!("\"GET {path} HTTP/1.1\" 200 ");
        let tail = rest
            .strip_prefix(&len_prefix)
            .unwrap_or_else(|| panic!("{line}"));
        let (bytes, tail) = tail.split_once(' ').unwrap();
        assert!(bytes.parse::<u64>().unwrap() > 0, "{line}");
        assert_eq!(tail, "\"http://ref/\" \"tester/1.0\"", "{line}");
    }
    let up = std::fs::read_to_string(&up_log).unwrap();
    let up: Vec<Vec<&str>> = up.lines().map(|l| l.split(' ').collect()).collect();
    // $upstream_addr with a retry: "dead, a" (", " separated, as nginx writes).
    let first = up[0].join(" ");
    let is_time = |t: &str| {
        t.split_once('.')
            .is_some_and(|(s, ms)| s.parse::<u64>().is_ok() && ms.len() == 3)
    };
    assert!(
        first.starts_with(&format!("{dead}, {} 502, 200 ", a.addr)),
        "{first}"
    );
    // 127.0.0.1:1, 127.0.0.1:2 502, 200 0.001 0.000, 0.001 200 312
    let f = &up[0];
    assert_eq!(f.len(), 9, "{first}");
    assert!(is_time(f[4]), "{first}");
    assert!(
        f[5].ends_with(',') && is_time(f[5].trim_end_matches(',')),
        "{first}"
    );
    assert!(is_time(f[6]), "{first}");
    assert_eq!(f[7], "200");
    for (line, access) in up[1..].iter().zip(&lines[1..]) {
        let text = line.join(" ");
        assert_eq!(line.len(), 6, "{text}");
        assert_eq!(line[0], a.addr.to_string());
        assert_eq!(line[1], "200");
        assert!(is_time(line[2]) && is_time(line[3]), "{text}");
        assert_eq!(line[4], "200");
        // $body_bytes_sent agrees with the combined line.
        assert!(
            access.contains(&format!("\" 200 {} \"", line[5])),
            "{access} vs {text}"
        );
    }
}

fn describe(port: u16, path: &str) -> serde_json::Value {
    let r = support::raw(
        SocketAddr::from(([127, 0, 0, 1], port)),
        format!("GET {path} HTTP/1.1\r\nHost: front.example\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-Custom: yes\r\n\r\n").as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

fn header<'a>(doc: &'a serde_json::Value, name: &str) -> Vec<&'a str> {
    doc["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|h| h[1].as_str().unwrap())
        .collect()
}

#[test]
fn default_proxy_headers_as_nginx() {
    let a = Echo::start("a", "127.0.0.1:0");
    let (_lb, port) = balancer(&[(a.addr, "")], "");
    let doc = describe(port, "/path?q=1");
    assert_eq!(doc["version"], "HTTP/1.0");
    assert_eq!(doc["path"], "/path");
    assert_eq!(doc["query"], "q=1");
    assert_eq!(header(&doc, "host"), ["backends"]);
    assert_eq!(header(&doc, "connection"), ["close"]);
    assert_eq!(header(&doc, "x-custom"), ["yes"]);
    assert!(header(&doc, "keep-alive").is_empty(), "{doc}");
    assert!(header(&doc, "x-real-ip").is_empty(), "{doc}");
}

#[test]
fn proxy_set_header_and_http_version() {
    let a = Echo::start("a", "127.0.0.1:0");
    let (_lb, port) = balancer(
        &[(a.addr, "")],
        "proxy_set_header X-Real-IP $remote_addr;\n    proxy_http_version 1.1;",
    );
    let doc = describe(port, "/");
    assert_eq!(doc["version"], "HTTP/1.1");
    assert_eq!(header(&doc, "x-real-ip"), ["127.0.0.1"]);
    // proxy_set_header at server level replaces nothing of the defaults.
    assert_eq!(header(&doc, "host"), ["backends"]);
    assert_eq!(header(&doc, "connection"), ["close"]);
}

/// `$upstream_response_time` runs until the whole response is in, as
/// nginx's does, not until its head: the backend here sends 2000 bytes at
/// 1 KiB/s, the first second's worth at once as nginx's `limit_rate` does
/// (a second server of the same process).
#[test]
fn upstream_response_time_runs_to_the_end_of_the_body() {
    let (front, back) = (free_port(), free_port());
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("data"), vec![b'x'; 2000]).unwrap();
    let conf = format!(
        "log_format up '$upstream_response_time';
        server {{
            listen 127.0.0.1:{front};
            access_log logs/up.log up;
            location / {{
                proxy_pass http://127.0.0.1:{back};
                add_header X-Header $upstream_header_time;
                add_header X-Response $upstream_response_time;
            }}
        }}
        server {{
            listen 127.0.0.1:{back};
            access_log off;
            root {};
            limit_rate 1k;
            location / {{ }}
        }}",
        files.path().display()
    );
    let lb = Balancer::start_http(&conf, &[front, back]);
    let addr = SocketAddr::from(([127, 0, 0, 1], front));
    let r = support::raw(
        addr,
        b"GET /data HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    // While the head goes out the response is not over: nginx's `-`.
    assert!(r
        .header("x-header")
        .is_some_and(|h| h.parse::<f64>().is_ok()));
    assert_eq!(r.header("x-response"), Some("-"));
    let log = lb.dir.path().join("logs/up.log");
    wait_until(Duration::from_secs(5), "the access-log line", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() == 1)
    });
    let line = std::fs::read_to_string(&log).unwrap();
    let seconds: f64 = line.trim().parse().unwrap_or_else(|_| panic!("{line}"));
    assert!(seconds >= 0.5, "the body took about a second: {line}");
}
