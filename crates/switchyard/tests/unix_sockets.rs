//! Upstreams on Unix-domain sockets: `server unix:PATH` in http and stream
//! groups, `proxy_pass http://unix:PATH:/uri`, and nginx's words when the
//! socket is not there.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{free_port, get, wait_until, Balancer};

/// An HTTP backend on a Unix socket: answers every request with 200 and
/// the request's head as its body, and keeps the heads it saw.
struct UnixBackend {
    path: PathBuf,
    heads: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl UnixBackend {
    fn start() -> UnixBackend {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(1000) {
                let Ok(stream) = stream else { continue };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                    let mut reader = BufReader::new(stream);
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        head.push_str(&line);
                        if line == "\r\n" {
                            break;
                        }
                    }
                    seen.lock().unwrap().push(head.clone());
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
                        head.len()
                    );
                    let mut stream = reader.into_inner();
                    let _ = stream.write_all(reply.as_bytes());
                });
            }
        });
        UnixBackend {
            path,
            heads,
            _dir: dir,
        }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn show(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn http_reaches_a_socket_through_a_group_and_through_proxy_pass() {
    let backend = UnixBackend::start();
    let sock = show(&backend.path);
    let port = free_port();
    let lb = Balancer::start_http(
        &format!(
            "log_format up '$upstream_addr $proxy_host $proxy_port';\n\
             upstream app {{ server unix:{sock}; }}\n\
             server {{ listen 127.0.0.1:{port}; access_log logs/up.log up;\n\
               location /group/ {{ proxy_pass http://app; }}\n\
               location /direct/ {{ proxy_pass http://unix:{sock}:/base/; }}\n\
             }}"
        ),
        &[port],
    );
    let r = get(port, "/group/a?x=1");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get(port, "/direct/b");
    assert_eq!(r.status, 200, "{}", r.text());
    let heads = backend.heads();
    assert!(
        heads[0].starts_with("GET /group/a?x=1 HTTP/1.0\r\nHost: app\r\n"),
        "{heads:?}"
    );
    // nginx's Host for a socket is "localhost"; the URI part replaces the
    // location's prefix.
    assert!(
        heads[1].starts_with("GET /base/b HTTP/1.0\r\nHost: localhost\r\n"),
        "{heads:?}"
    );
    let log = lb.dir.path().join("logs/up.log");
    wait_until(Duration::from_secs(5), "two log lines", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() == 2)
    });
    let lines = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines[0], format!("unix:{sock} app 80"));
    // A socket has no port: the variable is empty (and logged as `-`).
    assert_eq!(lines[1], format!("unix:{sock} localhost -"));
}

#[test]
fn a_missing_socket_is_a_502_with_nginx_words() {
    let dir = tempfile::tempdir().unwrap();
    let sock = show(&dir.path().join("none.sock"));
    let port = free_port();
    let lb = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port};\n\
               location / {{ proxy_pass http://unix:{sock}; }}\n\
             }}"
        ),
        &[port],
    );
    let r = get(port, "/x");
    assert_eq!(r.status, 502);
    wait_until(Duration::from_secs(5), "the error line", || {
        lb.error_log_text().contains("connect() failed")
    });
    let text = lb.error_log_text();
    assert!(
        text.contains(&format!(
            "connect() failed (2: No such file or directory) while connecting to upstream, client: 127.0.0.1, server: , request: \"GET /x HTTP/1.1\", upstream: \"http://unix:{sock}:/x\""
        )),
        "{text}"
    );
}

#[test]
fn stream_passes_bytes_to_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(10) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 64];
            if let Ok(n) = stream.read(&mut buf) {
                let _ = stream.write_all(&buf[..n]);
            }
        }
    });
    let port = free_port();
    let sock = show(&path);
    let _lb = Balancer::start_full(
        &format!(
            "error_log logs/error.log info;\nevents {{}}\n\
             stream {{ upstream u {{ server unix:{sock}; }}\n\
               server {{ listen 127.0.0.1:{port}; proxy_pass u; }} }}\n"
        ),
        &[port],
        &[],
    );
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client.write_all(b"ping over a socket").unwrap();
    let mut got = vec![0u8; 18];
    client.read_exact(&mut got).unwrap();
    assert_eq!(got, b"ping over a socket");
}

#[test]
fn bad_socket_addresses_are_refused_as_nginx_words_them() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("/{}", "s".repeat(120));
    for (conf, words) in [
        (
            "upstream u { server unix:; }".to_string(),
            "no path in the unix domain socket in upstream \"unix:\"",
        ),
        (
            format!("upstream u {{ server unix:{long}; }}"),
            "too long path in the unix domain socket in upstream",
        ),
        (
            "server { location / { proxy_pass http://unix:; } }".to_string(),
            "no path in the unix domain socket in upstream \"unix:\"",
        ),
    ] {
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, format!("events {{}}\nhttp {{\n{conf}\n}}\n")).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("-t")
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{conf}: {err}");
        assert!(
            err.contains(words) && err.contains("nginx.conf:3"),
            "{conf}: {err}"
        );
    }
}
