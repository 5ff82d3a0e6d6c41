//! Unix-domain sockets: upstreams (`server unix:PATH` in http and stream
//! groups, `proxy_pass http://unix:PATH:/uri`, and nginx's words when the
//! socket is not there) and listeners (`listen unix:PATH` in http and
//! stream servers: served, their variables, allow/deny `unix:`, kept
//! across reloads, removed at stop).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{free_port, get, read_response, wait_until, Balancer, Response};

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
    // A socket has no port: the variable is found empty (logged as
    // nothing, as nginx's empty `ctx->vars.port`).
    assert_eq!(lines[1], format!("unix:{sock} localhost "));
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
        let checked = support::check_conf(&format!("events {{}}\nhttp {{\n{conf}\n}}\n"));
        let err = &checked.stderr;
        assert_eq!(checked.code, Some(1), "{conf}: {err}");
        assert!(
            err.contains(words) && err.contains("nginx.conf:3"),
            "{conf}: {err}"
        );
    }
}

/// One request over a connection to the Unix socket at `path`.
fn unix_get(path: &Path, uri: &str) -> Response {
    let mut stream = UnixStream::connect(path).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(format!("GET {uri} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    read_response(&mut BufReader::new(stream)).unwrap()
}

/// A balancer whose whole configuration is `conf` (`SOCK` replaced by
/// a socket path in a directory of its own, kept while the test runs);
/// ready once its pid file is written, which is after every listener is
/// bound.
fn start_on_socket(conf: &str) -> (Balancer, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("in.sock");
    let lb = Balancer::start_full(&conf.replace("SOCK", &show(&sock)), &[], &[]);
    (lb, sock, dir)
}

/// An http server on a socket, `server` its directives; with the
/// configuration text (`BODY` for them), for reload tests.
fn http_on_socket(server: &str) -> (Balancer, PathBuf, String, tempfile::TempDir) {
    let probe = tempfile::tempdir().unwrap();
    let sock = probe.path().join("h.sock");
    let conf = |body: &str| {
        format!(
            "error_log logs/error.log info;\nevents {{}}\nhttp {{\naccess_log logs/access.log;\n\
             server {{ listen unix:{}; {body} }}\n}}\n",
            show(&sock)
        )
    };
    let lb = Balancer::start_full(&conf(server), &[], &[]);
    let text = conf("BODY");
    (lb, sock, text, probe)
}

#[test]
fn an_http_server_listens_on_a_socket_with_nginx_variables() {
    let (lb, sock, _, _dir) = http_on_socket(
        "location / { return 200 \"$remote_addr|$remote_port|$server_addr|$server_port\"; }",
    );
    let meta = std::fs::metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    // nginx makes the file writable by all.
    assert_eq!(meta.mode() & 0o777, 0o666);
    let r = unix_get(&sock, "/");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        format!("unix:||unix:{}|", show(&sock)),
        "the client is `unix:` and the ports are empty"
    );
    wait_until(Duration::from_secs(5), "the access line", || {
        !lb.access_lines().is_empty()
    });
    assert!(
        lb.access_lines()[0].starts_with("unix: - - ["),
        "{:?}",
        lb.access_lines()
    );
}

#[test]
fn allow_and_deny_unix_decide_socket_clients() {
    let port = free_port();
    let probe = tempfile::tempdir().unwrap();
    let sock = probe.path().join("a.sock");
    let _lb = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port}; listen unix:{};\n\
               location /no-unix {{ deny unix:; }}\n\
               location /only-unix {{ allow unix:; deny all; }}\n\
             }}",
            show(&sock)
        ),
        &[port],
    );
    // Let through: there is no such file (404).
    assert_eq!(unix_get(&sock, "/no-unix").status, 403);
    assert_eq!(get(port, "/no-unix").status, 404);
    assert_eq!(unix_get(&sock, "/only-unix").status, 404);
    assert_eq!(get(port, "/only-unix").status, 403);
}

#[test]
fn set_real_ip_from_unix_trusts_socket_clients() {
    let probe = tempfile::tempdir().unwrap();
    let sock = probe.path().join("r.sock");
    let port = free_port();
    let _lb = Balancer::start_http(
        &format!(
            "server {{ listen unix:{sock}; set_real_ip_from unix:; return 200 $remote_addr; }}\n\
             server {{ listen unix:{sock}.2; listen 127.0.0.1:{port}; set_real_ip_from 127.0.0.1;\n\
               return 200 $remote_addr; }}",
            sock = show(&sock)
        ),
        &[port],
    );
    let ask = |sock: &Path| {
        let mut stream = UnixStream::connect(sock).unwrap();
        stream
            .write_all(
                b"GET / HTTP/1.1\r\nHost: x\r\nX-Real-IP: 192.0.2.1\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
        read_response(&mut BufReader::new(stream)).unwrap().text()
    };
    assert_eq!(ask(&sock), "192.0.2.1");
    assert_eq!(ask(&probe.path().join("r.sock.2")), "unix:");
}

#[test]
fn a_stream_server_on_a_socket_proxies_and_logs_its_addresses() {
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend_addr = backend.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in backend.incoming().take(10) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 64];
            if let Ok(n) = stream.read(&mut buf) {
                let _ = stream.write_all(&buf[..n]);
            }
        }
    });
    let (lb, sock, _dir) = start_on_socket(&format!(
        "error_log logs/error.log info;\nevents {{}}\n\
         stream {{ log_format s '$remote_addr|$server_addr|$bytes_received';\n\
           server {{ listen unix:SOCK; access_log logs/stream.log s; proxy_pass {backend_addr}; }} }}\n"
    ));
    let mut client = UnixStream::connect(&sock).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client.write_all(b"ping from a socket").unwrap();
    let mut got = vec![0u8; 18];
    client.read_exact(&mut got).unwrap();
    assert_eq!(got, b"ping from a socket");
    drop(client);
    let log = lb.dir.path().join("logs/stream.log");
    wait_until(Duration::from_secs(10), "the stream log line", || {
        std::fs::read_to_string(&log).is_ok_and(|t| !t.is_empty())
    });
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().trim_end(),
        format!("unix:|unix:{}|18", show(&sock))
    );
    assert!(
        lb.error_log_text()
            .contains(&format!("client unix: connected to unix:{}", show(&sock))),
        "{}",
        lb.error_log_text()
    );
}

#[test]
fn stream_access_rules_decide_socket_clients() {
    let (_lb, sock, dir) = start_on_socket(
        "error_log logs/error.log info;\nevents {}\n\
         stream { server { listen unix:SOCK; deny unix:; return ok; }\n\
           server { listen unix:SOCK.2; allow unix:; deny all;\n\
             return \"$remote_port|$server_port|$binary_remote_addr\"; } }\n",
    );
    let mut allowed = UnixStream::connect(dir.path().join("in.sock.2")).unwrap();
    allowed
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    allowed.read_to_end(&mut got).unwrap();
    // No ports on a socket; the binary address is the text, as nginx's.
    assert_eq!(got, b"||unix:");
    let mut client = UnixStream::connect(&sock).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"", "a denied client gets nothing");
}

#[test]
fn the_socket_file_goes_at_stop() {
    for signal in [libc::SIGTERM, libc::SIGQUIT] {
        let (mut lb, sock, _, _dir) = http_on_socket("return 200 up;");
        assert_eq!(unix_get(&sock, "/").status, 200);
        lb.signal(signal);
        assert_eq!(lb.wait(Duration::from_secs(10)), Some(0));
        assert!(!sock.exists(), "signal {signal}: the socket file is left");
    }
}

#[test]
fn a_stale_socket_file_fails_the_bind_as_in_nginx() {
    let probe = tempfile::tempdir().unwrap();
    let sock = probe.path().join("stale.sock");
    let stale = UnixListener::bind(&sock).unwrap();
    drop(stale);
    assert!(sock.exists());
    let conf = probe.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "events {{}}\nhttp {{ access_log off; server {{ listen unix:{}; }} }}\n",
            show(&sock)
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("-p")
        .arg(probe.path())
        .arg("-c")
        .arg(&conf)
        .args(["-g", "daemon off; pid p.pid; error_log stderr;"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "bind() to unix:{} failed (98: Address already in use)",
            show(&sock)
        )),
        "{err}"
    );
}

#[test]
fn a_reload_keeps_the_socket_serving_and_a_dropped_one_is_deleted() {
    let (lb, sock, conf, _dir) = http_on_socket("return 200 one;");
    let inode = std::fs::metadata(&sock).unwrap().ino();
    // A keep-alive connection from before the reload.
    let mut kept = UnixStream::connect(&sock).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(kept.try_clone().unwrap());
    kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut reader).unwrap().text(), "one");
    assert_eq!(unix_get(&sock, "/").text(), "one");
    lb.rewrite_conf(&conf.replace("BODY", "return 200 two;"));
    lb.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(10), "the new configuration", || {
        unix_get(&sock, "/").text() == "two"
    });
    // The same socket: not unbound and bound again.
    assert_eq!(std::fs::metadata(&sock).unwrap().ino(), inode);
    kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut reader).unwrap().text(), "two");
    // A reload that drops the listen deletes its file, as nginx does.
    let port = free_port();
    lb.rewrite_conf(&format!(
        "error_log logs/error.log info;\nevents {{}}\nhttp {{ server {{ listen 127.0.0.1:{port}; return 200 tcp; }} }}\n"
    ));
    lb.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(10), "the socket file to go", || {
        !sock.exists()
    });
    assert!(
        lb.error_log_text()
            .contains(&format!("[warn] {}#", lb.pid())),
        "{}",
        lb.error_log_text()
    );
    assert!(
        lb.error_log_text()
            .contains(&format!("deleting socket {}", show(&sock))),
        "{}",
        lb.error_log_text()
    );
}

#[test]
fn bad_listen_sockets_are_refused_as_nginx_words_them() {
    let long = format!("/{}", "s".repeat(107));
    for (conf, words) in [
        (
            "http { server { listen unix:; } }".to_string(),
            "no path in the unix domain socket in \"unix:\" of the \"listen\" directive",
        ),
        (
            format!("http {{ server {{ listen unix:{long}; }} }}"),
            "too long path in the unix domain socket in \"unix:/sss",
        ),
        (
            "http { server { listen unix:/tmp/d.sock; listen unix:/tmp/d.sock; } }".to_string(),
            "a duplicate listen unix:/tmp/d.sock",
        ),
        (
            "stream { server { listen unix:; return x; } }".to_string(),
            "no path in the unix domain socket in \"unix:\" of the \"listen\" directive",
        ),
        (
            "stream { server { listen unix:/tmp/d.sock udp; return x; } }".to_string(),
            "\"listen unix:... udp\" is not supported yet",
        ),
    ] {
        let checked = support::check_conf(&format!("events {{}}\n\n{conf}\n"));
        let err = &checked.stderr;
        assert_eq!(checked.code, Some(1), "{conf}: {err}");
        assert!(
            err.contains(words) && err.contains("nginx.conf:3"),
            "{conf}: {err}"
        );
    }
}
