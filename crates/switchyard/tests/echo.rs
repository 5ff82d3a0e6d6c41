//! Integration tests for `switchyard echo`, run against the real binary over
//! raw TCP so that wire details (Content-Length, chunking, HTTP/1.0 closing)
//! are checked exactly as a proxy would see them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `switchyard echo` child; killed when dropped so a failing test
/// never leaks a server.
struct Echo {
    child: Child,
    addr: SocketAddr,
    log: mpsc::Receiver<String>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(name: &str, extra: &[&str]) -> Echo {
    start_with(
        Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["echo", "--listen", "127.0.0.1:0", "--name", name])
            .args(extra),
    )
}

fn start_with(cmd: &mut Command) -> Echo {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn switchyard echo");
    let stderr = child.stderr.take().expect("stderr");
    let stdout = child.stdout.take().expect("stdout");
    // Readiness comes from the ready line, whose address we parse: no sleeps,
    // and port 0 avoids clashes between parallel tests.
    let mut lines = BufReader::new(stderr).lines();
    let ready = lines.next().expect("ready line").expect("read stderr");
    let rest = ready
        .strip_prefix("echo: listening on ")
        .unwrap_or_else(|| panic!("unexpected ready line {ready:?}"));
    let addr: SocketAddr = rest
        .split(" as ")
        .next()
        .unwrap()
        .parse()
        .expect("address in ready line");
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Echo {
        child,
        addr,
        log: spawn_log_reader(stdout),
    }
}

fn spawn_log_reader(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Echo {
    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    /// Sends one raw request on a fresh connection and reads the response.
    fn raw(&self, request: &[u8]) -> Resp {
        let mut s = self.connect();
        s.write_all(request).unwrap();
        read_response(&mut BufReader::new(s))
    }

    fn get(&self, target: &str) -> Resp {
        self.raw(
            format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    }

    fn next_log(&self) -> String {
        self.log
            .recv_timeout(Duration::from_secs(10))
            .expect("a log line")
    }
}

#[derive(Debug)]
struct Resp {
    version: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Minimal HTTP/1 response reader: Content-Length, chunked, or read-to-close.
fn read_response(r: &mut impl BufRead) -> Resp {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let mut parts = line.trim_end().splitn(3, ' ');
    let version = parts.next().unwrap().to_string();
    let status = parts.next().expect("status").parse().unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').expect("header line");
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    let mut resp = Resp {
        version,
        status,
        headers,
        body: Vec::new(),
    };
    if resp.status == 204 || resp.status == 304 {
        return resp;
    }
    if let Some(len) = resp.header("content-length") {
        let mut body = vec![0; len.parse().unwrap()];
        r.read_exact(&mut body).unwrap();
        resp.body = body;
    } else if resp.header("transfer-encoding") == Some("chunked") {
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            let size = usize::from_str_radix(line.trim_end(), 16).unwrap();
            if size == 0 {
                line.clear();
                r.read_line(&mut line).unwrap();
                break;
            }
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).unwrap();
            resp.body.extend_from_slice(&chunk[..size]);
        }
    } else {
        r.read_to_end(&mut resp.body).unwrap();
    }
    resp
}

#[test]
fn post_echoes_body_plus_newline() {
    let e = start("golem1", &[]);
    let body = r#"{"foo": "bar"}"#;
    let r = e.raw(
        format!(
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("15"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("x-served-by"), Some("golem1"));
    assert_eq!(r.text(), "{\"foo\": \"bar\"}\n");
}

#[test]
fn chunked_post_is_echoed_chunked() {
    let e = start("golem1", &[]);
    let r = e.raw(
        b"PUT /any HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.text(), "hello world\n");
}

#[test]
fn large_post_is_streamed_back() {
    let e = start("golem1", &[]);
    let len = 8 << 20;
    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut s = e.connect();
    let writer = {
        let mut s = s.try_clone().unwrap();
        let payload = payload.clone();
        // Write from another thread: the server echoes while we upload, so
        // a single-threaded write-then-read could deadlock on full buffers.
        std::thread::spawn(move || {
            s.write_all(
                format!("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
            s.write_all(&payload).unwrap();
        })
    };
    let r = read_response(&mut BufReader::new(&mut s));
    writer.join().unwrap();
    assert_eq!(
        r.header("content-length"),
        Some((len + 1).to_string().as_str())
    );
    assert_eq!(r.body.len(), len + 1);
    assert_eq!(&r.body[..len], &payload[..]);
    assert_eq!(r.body[len], b'\n');
}

#[test]
fn get_describes_request_as_json() {
    let e = start("golem2", &[]);
    let r = e.raw(b"GET /a/b?x=1&y=two HTTP/1.1\r\nHost: t\r\nX-Foo: bar\r\nX-Zed: 1\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-served-by"), Some("golem2"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/a/b");
    assert_eq!(v["query"], "x=1&y=two");
    assert_eq!(v["version"], "HTTP/1.1");
    assert_eq!(v["name"], "golem2");
    assert_eq!(v["body"], "");
    assert!(v["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    let headers = v["headers"].as_array().unwrap();
    let names: Vec<&str> = headers.iter().map(|h| h[0].as_str().unwrap()).collect();
    assert_eq!(names, ["host", "x-foo", "x-zed", "connection"]);
    assert_eq!(headers[1][1], "bar");
}

#[test]
fn status_override_by_header_and_query() {
    let e = start("g", &[]);
    let r = e.raw(b"GET / HTTP/1.1\r\nHost: t\r\nx-echo-status: 503\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-served-by"), Some("g"));
    assert_eq!(e.get("/?status=418").status, 418);
    // Also applies to the echo path.
    let r = e.raw(b"POST /?status=502 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi");
    assert_eq!((r.status, r.text().as_str()), (502, "hi\n"));
    let r = e.get("/?status=abc");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("status"));
    assert_eq!(e.get("/?status=99").status, 400);
}

#[test]
fn delay_override_and_cap() {
    let e = start("g", &["--max-delay", "400ms"]);
    let t = Instant::now();
    assert_eq!(e.get("/?delay=250ms").status, 200);
    assert!(t.elapsed() >= Duration::from_millis(250));
    let t = Instant::now();
    let r = e.raw(b"GET / HTTP/1.1\r\nHost: t\r\nx-echo-delay: 0.2s\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(200));
    // Capped by --max-delay rather than honoured.
    let t = Instant::now();
    assert_eq!(e.get("/?delay=60s").status, 200);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(e.get("/?delay=soon").status, 400);
}

#[test]
fn generated_size_with_length_and_chunked() {
    let e = start("g", &["--max-size", "1MiB"]);
    let r = e.get("/?size=10KiB");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("10240"));
    assert_eq!(r.body.len(), 10240);
    let r = e.get("/?size=300000&chunked=1");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body.len(), 300_000);
    // Capped at --max-size.
    let r = e.get("/?size=10MiB");
    assert_eq!(r.header("content-length"), Some("1048576"));
    assert_eq!(e.get("/?size=lots").status, 400);
    assert_eq!(e.get("/?size=1&chunked=maybe").status, 400);
}

#[test]
fn healthz_can_be_switched() {
    let e = start("g", &[]);
    let r = e.get("/healthz");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    let r = e.raw(
        b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: close\r\n\r\n503",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "503\n"));
    assert_eq!(e.get("/healthz").status, 503);
    assert_eq!(e.get("/healthz").status, 503);
    // Other paths are unaffected.
    assert_eq!(e.get("/").status, 200);
    let r = e.raw(
        b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nConnection: close\r\n\r\nsick",
    );
    assert_eq!(r.status, 400);
    let r = e.raw(
        b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: close\r\n\r\n200",
    );
    assert_eq!(r.status, 200);
    assert_eq!(e.get("/healthz").status, 200);
}

/// Issue 16, finding 7: `PUT /healthz?status=503` switches the health
/// (it used to answer 503 itself, with `bad status ""`), and a switch with
/// no code says how to give one.
#[test]
fn healthz_is_switched_by_its_query() {
    let e = start("g", &[]);
    let r = e.raw(b"PUT /healthz?status=503 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "503\n"));
    let r = e.get("/healthz");
    assert_eq!((r.status, r.text().as_str()), (503, "unhealthy\n"));
    let r = e.raw(b"POST /healthz?status=200 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "200\n"));
    assert_eq!(e.get("/healthz").status, 200);
    let r = e.raw(
        b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("?status=CODE"), "{}", r.text());
    assert_eq!(e.get("/healthz").status, 200);
}

/// Issue 16, finding 7: `--help` says how to switch `/healthz`.
#[test]
fn help_says_how_to_switch_healthz() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["echo", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("POST /healthz?status=503"), "{text}");
    assert!(text.contains("X-Served-By"), "{text}");
}

/// `--mode tcp`: every byte back, the client's half-close ends the session
/// after the last byte; `--tag` names the instance first.
#[test]
fn tcp_mode_echoes_bytes_and_honours_half_close() {
    for (tag, first) in [(false, ""), (true, "node1\n")] {
        let extra: &[&str] = if tag {
            &["--mode", "tcp", "--tag"]
        } else {
            &["--mode", "tcp"]
        };
        let e = start("node1", extra);
        let mut s = e.connect();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let writer = {
            let mut w = s.try_clone().unwrap();
            let payload = payload.clone();
            std::thread::spawn(move || {
                w.write_all(&payload).unwrap();
                w.shutdown(std::net::Shutdown::Write).unwrap();
            })
        };
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(&got[..first.len()], first.as_bytes());
        assert!(
            got[first.len()..] == payload[..],
            "tag {tag}: {} bytes back",
            got.len()
        );
        let line = e.log.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(
            line.contains("tcp session closed, 200000 bytes echoed node1"),
            "{line}"
        );
    }
}

/// `--mode udp`: each datagram answered with itself, after `NAME ` with `--tag`.
#[test]
fn udp_mode_answers_every_datagram() {
    let e = start("node2", &["--mode", "udp", "--tag"]);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 2048];
    for word in ["ping", "pong"] {
        socket.send_to(word.as_bytes(), e.addr).unwrap();
        let (n, from) = socket.recv_from(&mut buf).unwrap();
        assert_eq!(from, e.addr);
        assert_eq!(&buf[..n], format!("node2 {word}").as_bytes());
    }
    let line = e.log.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        line.contains("udp datagram of 4 bytes echoed node2"),
        "{line}"
    );
}

/// `--tls`: HTTPS with a certificate made at start (written out for a
/// client that verifies it); `/readyz`, as OpenShift's API names it, is the
/// same switch as `/healthz`.
#[test]
fn tls_mode_serves_https_with_a_switchable_readyz() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("echo.pem");
    let e = start(
        "master0",
        &["--tls", "--tls-cert-out", cert.to_str().unwrap()],
    );
    let url = |path: &str| format!("https://127.0.0.1:{}{path}", e.addr.port());
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-m",
                "10",
                "--cacert",
                cert.to_str().unwrap(),
                "-w",
                " %{http_code}",
            ])
            .args(args)
            .output()
            .expect("curl (scripts/install-test-deps installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    assert_eq!(curl(&[&url("/readyz")]), "ok\n 200");
    assert_eq!(
        curl(&["-X", "POST", &url("/readyz?status=503")]),
        "503\n 200"
    );
    assert_eq!(curl(&[&url("/readyz")]), "unhealthy\n 503");
    assert_eq!(curl(&[&url("/healthz")]), "unhealthy\n 503");
    assert_eq!(curl(&[&url("/healthz/ready")]), "unhealthy\n 503");
    assert_eq!(
        curl(&["-d", "{\"foo\": \"bar\"}", &url("/")]),
        "{\"foo\": \"bar\"}\n 200"
    );
    // Plain HTTP on the TLS port is not answered as HTTP.
    let r = curl(&[&format!("http://127.0.0.1:{}/readyz", e.addr.port())]);
    assert!(!r.ends_with(" 200"), "{r}");
}

#[test]
fn http10_request_is_answered_and_closed() {
    let e = start("g", &[]);
    let mut s = e.connect();
    s.write_all(b"POST / HTTP/1.0\r\nContent-Length: 14\r\n\r\n{\"foo\": \"bar\"}")
        .unwrap();
    let mut raw = Vec::new();
    // read_to_end only returns once the server closes the connection.
    s.read_to_end(&mut raw).unwrap();
    let r = read_response(&mut &raw[..]);
    assert_eq!(r.version, "HTTP/1.0");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("15"));
    assert_eq!(r.text(), "{\"foo\": \"bar\"}\n");
}

#[test]
fn http11_keep_alive_serves_several_requests() {
    let e = start("g", &[]);
    let s = e.connect();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for i in 0..3 {
        w.write_all(format!("GET /n{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap();
        let resp = read_response(&mut r);
        assert_eq!(resp.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(v["path"], format!("/n{i}"));
    }
}

#[test]
fn log_lines_match_werkzeug_format() {
    let e = start("echogolem1", &[]);
    e.raw(b"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi");
    e.get("/x?status=503");
    let re = regex::Regex::new(
        r#"^(\d{1,3}\.){3}\d{1,3} - - \[\d{2}/[A-Z][a-z]{2}/\d{4} \d{2}:\d{2}:\d{2}\] "([A-Z]+) (\S+) (HTTP/1\.[01])" (\d{3}) - (\S+)$"#,
    )
    .unwrap();
    let l1 = e.next_log();
    let c = re
        .captures(&l1)
        .unwrap_or_else(|| panic!("bad log line {l1:?}"));
    assert!(l1.starts_with("127.0.0.1 - - ["));
    assert_eq!(
        (&c[2], &c[3], &c[4], &c[5], &c[6]),
        ("POST", "/", "HTTP/1.0", "200", "echogolem1")
    );
    let l2 = e.next_log();
    let c = re
        .captures(&l2)
        .unwrap_or_else(|| panic!("bad log line {l2:?}"));
    assert_eq!((&c[2], &c[3], &c[5]), ("GET", "/x?status=503", "503"));
}

#[test]
fn configured_from_environment() {
    let e = start_with(
        Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("echo")
            .env("ECHO_LISTEN", "127.0.0.1:0")
            .env("ECHO_NAME", "from-env"),
    );
    assert_eq!(e.get("/").header("x-served-by"), Some("from-env"));
}

fn sigterm(e: &mut Echo) -> std::process::ExitStatus {
    // SAFETY: plain kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(e.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    sigterm_wait(e)
}

/// Waits (bounded) for the child to exit after a signal.
fn sigterm_wait(e: &mut Echo) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = e.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "echo did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_exits_zero() {
    let mut e = start("g", &[]);
    assert_eq!(e.get("/").status, 200);
    let status = sigterm(&mut e);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sigterm_lets_in_flight_request_finish() {
    let mut e = start("g", &[]);
    let s = e.connect();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    // Send half of the body: the server starts answering (status line and
    // the first half echoed) and then waits for the rest, so the request is
    // provably in flight when the signal arrives.
    w.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello")
        .unwrap();
    let mut status_line = String::new();
    r.read_line(&mut status_line).unwrap();
    assert!(status_line.starts_with("HTTP/1.1 200"), "{status_line:?}");
    e.next_log();
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(e.child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    // Shutdown has to wait for us: the child must still be running.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        e.child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );
    w.write_all(b" world").unwrap();
    let mut rest = Vec::new();
    // The connection is closed after this last response.
    r.read_to_end(&mut rest).unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("Content-Length: 12"), "{rest:?}");
    assert!(rest.ends_with("\r\n\r\nhello world\n"), "{rest:?}");
    assert_eq!(sigterm_wait(&mut e).code(), Some(0));
}
