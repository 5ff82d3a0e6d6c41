//! nginx's proxy module beyond the seed: upstream keepalive, next_upstream,
//! redirects, header and body directives, WebSocket upgrades.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{free_port, get, post, upstream_block, Balancer, Echo};

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn json(r: &support::Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

fn header_of(v: &serde_json::Value, name: &str) -> Option<String> {
    v["headers"].as_array()?.iter().find_map(|pair| {
        let pair = pair.as_array()?;
        (pair.first()?.as_str()?.eq_ignore_ascii_case(name))
            .then(|| pair.get(1)?.as_str().map(str::to_string))?
    })
}

/// A raw backend: answers each request with `respond(request_head)` and
/// counts connections and requests.
struct RawBackend {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl RawBackend {
    fn start(respond: impl Fn(&str) -> (Vec<u8>, bool) + Send + Sync + 'static) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let respond = Arc::new(respond);
        let (c, r) = (connections.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().take(10_000) {
                let Ok(stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let (respond, r) = (respond.clone(), r.clone());
                std::thread::spawn(move || {
                    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                    let mut reader = BufReader::new(stream);
                    loop {
                        let Some((head, len)) = read_request_head(&mut reader) else {
                            return;
                        };
                        let mut body = vec![0; len];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        r.lock().unwrap().push(head.clone());
                        let (bytes, close) = respond(&head);
                        if reader.get_mut().write_all(&bytes).is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        RawBackend {
            addr,
            connections,
            requests,
        }
    }
}

/// Reads one request head: its text and its Content-Length (0 without
/// one). `None` when the connection ends or fails first.
fn read_request_head(reader: &mut impl BufRead) -> Option<(String, usize)> {
    let mut head = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
        if line == "\r\n" {
            return Some((head, length));
        }
    }
}

fn ok_response(body: &str, extra: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn keepalive_reuses_upstream_connections() {
    let backend = RawBackend::start(|_| (ok_response("pooled", ""), false));
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "upstream u {{ server {}; keepalive 4; }}\n\
             server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}",
            backend.addr
        ),
        &[port],
    );
    for _ in 0..20 {
        assert_eq!(get(port, "/").text(), "pooled");
    }
    assert_eq!(
        backend.connections.load(Ordering::SeqCst),
        1,
        "one upstream connection for 20 requests"
    );
    let requests = backend.requests.lock().unwrap();
    assert!(requests.iter().all(|h| h.starts_with("GET / HTTP/1.1\r\n")));
    assert!(
        requests
            .iter()
            .all(|h| !h.to_ascii_lowercase().contains("connection:")),
        "{:?}",
        requests[0]
    );
}

#[test]
fn without_keepalive_each_request_opens_a_connection() {
    let backend = RawBackend::start(|_| (ok_response("fresh", ""), false));
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{}; }} }}",
            backend.addr
        ),
        &[port],
    );
    for _ in 0..5 {
        assert_eq!(get(port, "/").text(), "fresh");
    }
    assert_eq!(backend.connections.load(Ordering::SeqCst), 5);
    assert!(backend.requests.lock().unwrap()[0].contains("Connection: close\r\n"));
}

#[test]
fn a_pooled_connection_the_backend_closed_is_retried_not_502() {
    // The backend keeps the connection after answering but closes it 50 ms
    // later, as a backend with a short keep-alive timeout does.
    let closer = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(1000) {
                let Ok(mut stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf);
                    let _ = stream.write_all(&ok_response("short-lived", ""));
                    std::thread::sleep(Duration::from_millis(50));
                    // close: the pooled connection is now dead
                });
            }
        });
        (addr, count)
    };
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "upstream u {{ server {}; keepalive 4; }}\n\
             server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}",
            closer.0
        ),
        &[port],
    );
    for _ in 0..10 {
        let r = get(port, "/");
        assert_eq!((r.status, r.text().as_str()), (200, "short-lived"));
        std::thread::sleep(Duration::from_millis(120));
    }
    assert!(closer.1.load(Ordering::SeqCst) >= 10);
}

#[test]
fn next_upstream_http_502_moves_on_and_lists_every_try() {
    let bad = RawBackend::start(|_| {
        (
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad".to_vec(),
            false,
        )
    });
    let good = Echo::start("good", "127.0.0.1:0");
    let port = free_port();
    let b = Balancer::start_http(
        &format!(
            "log_format ups \"$upstream_addr|$upstream_status|$status\";\n{}\n\
             server {{ listen 127.0.0.1:{port}; access_log logs/ups.log ups;\n\
               location / {{ proxy_pass http://u; proxy_next_upstream error timeout http_502; }}\n\
               location /off {{ proxy_pass http://u; proxy_next_upstream off; }} }}",
            upstream_block(
                "u",
                &[(bad.addr, "max_fails=0"), (good.addr, "max_fails=0")]
            )
        ),
        &[port],
    );
    let r = get(port, "/");
    assert_eq!((r.status, r.header("x-served-by")), (200, Some("good")));
    // With `off`, the 502 of the first peer goes to the client as it is.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(get(port, "/off").status);
    }
    assert!(
        statuses.contains(&502) && statuses.contains(&200),
        "{statuses:?}"
    );
    let log = std::fs::read_to_string(b.dir.path().join("logs/ups.log")).unwrap();
    let first = log.lines().next().unwrap();
    assert_eq!(first, format!("{}, {}|502, 200|200", bad.addr, good.addr));
}

#[test]
fn post_is_not_resent_after_it_was_sent_unless_non_idempotent() {
    let bad = RawBackend::start(|_| {
        (
            b"HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec(),
            false,
        )
    });
    let good = Echo::start("good", "127.0.0.1:0");
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "{}\nserver {{ listen 127.0.0.1:{port};\n\
               location / {{ proxy_pass http://u; proxy_next_upstream error http_503; }}\n\
               location /any {{ proxy_pass http://u; proxy_next_upstream error http_503 non_idempotent; }} }}",
            upstream_block("u", &[(bad.addr, "max_fails=0"), (good.addr, "max_fails=0")])
        ),
        &[port],
    );
    let mut posts = Vec::new();
    for _ in 0..4 {
        posts.push(post(port, "/", b"x").status);
    }
    assert!(
        posts.contains(&503),
        "POST must not move on after being sent: {posts:?}"
    );
    for _ in 0..4 {
        assert_eq!(post(port, "/any", b"x").status, 200);
    }
    for _ in 0..4 {
        assert_eq!(get(port, "/").status, 200, "GET moves on");
    }
}

#[test]
fn next_upstream_tries_limits_attempts() {
    let dead: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let dead_addrs: Vec<SocketAddr> = dead.iter().map(|l| l.local_addr().unwrap()).collect();
    drop(dead);
    let good = Echo::start("good", "127.0.0.1:0");
    let port = free_port();
    let servers: Vec<(SocketAddr, &str)> = dead_addrs
        .iter()
        .map(|a| (*a, "max_fails=0"))
        .chain(std::iter::once((good.addr, "max_fails=0")))
        .collect();
    let _b = Balancer::start_http(
        &format!(
            "{}\nserver {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://u; proxy_next_upstream_tries 2; }} }}",
            upstream_block("u", &servers)
        ),
        &[port],
    );
    // Round robin starts at the first dead peer: two tries reach only dead ones.
    assert_eq!(get(port, "/").status, 502);
}

#[test]
fn proxy_redirect_default_and_explicit() {
    let backend = RawBackend::start(|head| {
        let location = if head.contains("/app/r2") {
            "http://elsewhere/x"
        } else if head.contains("/in/r3") {
            "/rel/x"
        } else {
            "http://u/in/page"
        };
        (
            format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
                .into_bytes(),
            false,
        )
    });
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "upstream u {{ server {}; }}\n\
             server {{ listen 127.0.0.1:{port};\n\
               location /app/ {{ proxy_pass http://u/in/; }}\n\
               location /off/ {{ proxy_pass http://u/in/; proxy_redirect off; }}\n\
               location /exp/ {{ proxy_pass http://u/app/; proxy_redirect http://elsewhere/ /moved/; }} }}",
            backend.addr
        ),
        &[port],
    );
    // A Location a rule rewrote to a relative URI is made absolute, as
    // nginx's header filter does (absolute_redirect on); one no rule
    // touched passes as it came.
    let absolute = |path: &str| format!("http://localhost:{port}{path}");
    assert_eq!(
        get(port, "/app/r1").header("location"),
        Some(absolute("/app/page").as_str())
    );
    assert_eq!(get(port, "/app/r3").header("location"), Some("/rel/x"));
    assert_eq!(
        get(port, "/off/r1").header("location"),
        Some("http://u/in/page")
    );
    assert_eq!(
        get(port, "/exp/r2").header("location"),
        Some(absolute("/moved/x").as_str())
    );
}

#[test]
fn an_upstream_upgrade_header_passes_in_any_response_but_connection_does_not() {
    let backend = RawBackend::start(|_| {
        let head = "Upgrade: h2c\r\nConnection: Upgrade, close\r\nKeep-Alive: timeout=5\r\n";
        (
            format!("HTTP/1.1 426 Upgrade Required\r\nContent-Length: 2\r\n{head}\r\nno")
                .into_bytes(),
            true,
        )
    });
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{}; }} }}",
            backend.addr
        ),
        &[port],
    );
    let r = get(port, "/");
    assert_eq!(r.status, 426);
    // nginx's ngx_http_upstream_copy_upgrade: an HTTP/1 client gets it.
    assert_eq!(r.header("upgrade"), Some("h2c"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.header("keep-alive"), None);
}

#[test]
fn hide_pass_headers_method_and_body_directives() {
    let backend = RawBackend::start(|head| {
        let method = head.split(' ').next().unwrap_or("").to_string();
        (
            ok_response(
                &method,
                "Server: upstream-server\r\nX-Secret: s\r\nX-Accel-Expires: 10\r\n",
            ),
            false,
        )
    });
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "upstream u {{ server {}; }}\n\
             server {{ listen 127.0.0.1:{port};\n\
               location / {{ proxy_pass http://u; proxy_hide_header X-Secret; proxy_pass_header Server; }}\n\
               location /m {{ proxy_pass http://u; proxy_method PUT; proxy_set_body \"set-$request_method\"; proxy_pass_request_headers off; }} }}",
            backend.addr
        ),
        &[port],
    );
    let r = get(port, "/");
    assert_eq!(r.header("x-secret"), None);
    assert_eq!(r.header("x-accel-expires"), None);
    assert_eq!(r.header("server"), Some("upstream-server"));
    let r = support::raw(
        local(port),
        b"GET /m HTTP/1.1\r\nHost: h\r\nX-Client: 1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.text(), "PUT");
    let head = backend.requests.lock().unwrap().last().cloned().unwrap();
    assert!(head.starts_with("PUT /m HTTP/1.0\r\n"), "{head}");
    assert!(!head.contains("X-Client"), "{head}");
    assert!(head.contains("Content-Length: 7\r\n"), "{head}");
}

#[test]
fn websocket_upgrade_is_tunnelled() {
    // A backend that switches protocols and then echoes bytes upper-cased.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Some(Ok(stream)) = listener.incoming().next() {
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            assert!(
                head.to_ascii_lowercase().contains("upgrade: websocket"),
                "{head}"
            );
            let mut s = reader.into_inner();
            s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n").unwrap();
            let mut buf = [0u8; 64];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let _ = s.write_all(&buf[..n].to_ascii_uppercase());
            }
        }
    });
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{addr}; proxy_http_version 1.1;\n\
               proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\"; }} }}"
        ),
        &[port],
    );
    let mut s = TcpStream::connect(local(port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    )
    .unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    for word in ["hello", "switchyard"] {
        s.write_all(word.as_bytes()).unwrap();
        let mut buf = vec![0u8; word.len()];
        reader.read_exact(&mut buf).unwrap();
        assert_eq!(buf, word.to_ascii_uppercase().as_bytes());
    }
}

#[test]
fn headers_the_backend_sees_with_keepalive_settings() {
    let echo = Echo::start("e", "127.0.0.1:0");
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "upstream u {{ server {}; keepalive 2; }}\n\
             server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://u; proxy_http_version 1.1;\n\
               proxy_set_header Connection \"\"; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; }} }}",
            echo.addr
        ),
        &[port],
    );
    let r = support::raw(
        local(port),
        b"GET /h HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.9.9.9\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let v = json(&r);
    assert_eq!(v["version"], "HTTP/1.1");
    assert_eq!(header_of(&v, "connection"), None);
    assert_eq!(
        header_of(&v, "x-forwarded-for").as_deref(),
        Some("10.9.9.9, 127.0.0.1")
    );
    assert_eq!(header_of(&v, "host").as_deref(), Some("u"));
}

#[test]
fn a_client_that_goes_away_does_not_mark_the_peer_failed() {
    let a = Echo::start("a", "127.0.0.1:0");
    let b = Echo::start("b", "127.0.0.1:0");
    let port = free_port();
    let _bal = Balancer::start_http(
        &format!(
            "{}\nserver {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://u; }} }}",
            upstream_block("u", &[(a.addr, ""), (b.addr, "")])
        ),
        &[port],
    );
    // Two clients give up while their requests wait on each peer.
    for _ in 0..2 {
        let mut s = TcpStream::connect(local(port)).unwrap();
        s.write_all(b"GET /?delay=1s HTTP/1.1\r\nHost: h\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(150));
        drop(s);
    }
    std::thread::sleep(Duration::from_millis(100));
    // nginx does not count a client's abort against the peer.
    for _ in 0..4 {
        assert_eq!(get(port, "/").status, 200);
    }
}

/// A chunked response is decoded and re-framed for the client, and the
/// upstream connection is reused after its last chunk (one connection).
#[test]
fn chunked_upstream_responses_reuse_the_connection() {
    let backend = RawBackend::start(|_| {
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
                .to_vec(),
            false,
        )
    });
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "upstream u {{ server {}; keepalive 4; }}\n\
             server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}",
            backend.addr
        ),
        &[port],
    );
    for _ in 0..5 {
        let r = get(port, "/");
        assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
    }
    assert_eq!(backend.connections.load(Ordering::SeqCst), 1);
    assert_eq!(backend.requests.lock().unwrap().len(), 5);
}

/// A body too large to hold for a retry (over 64 KiB) is streamed; it is
/// never sent on a pooled connection the peer has closed: the balancer
/// sees the close and opens a new connection, so the POST succeeds.
#[test]
fn streamed_body_never_goes_to_a_closed_pooled_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let c = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(100) {
            let Ok(stream) = stream else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let mut reader = BufReader::new(stream);
                let Some((_, length)) = read_request_head(&mut reader) else {
                    return;
                };
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let answer = format!("got {length}");
                let _ = reader.get_mut().write_all(&ok_response(&answer, ""));
                // Keep-alive was allowed, but this peer closes while idle.
                std::thread::sleep(Duration::from_millis(30));
            });
        }
    });
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "upstream u {{ server {addr}; keepalive 4; }}\n\
             server {{ listen 127.0.0.1:{port}; client_max_body_size 10m;\n\
               location / {{ proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}"
        ),
        &[port],
    );
    let body = vec![b'z'; 300 * 1024];
    for _ in 0..3 {
        let r = post(port, "/", &body);
        assert_eq!((r.status, r.text()), (200, format!("got {}", body.len())));
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(connections.load(Ordering::SeqCst) >= 3);
}

/// An upstream that answers before reading the request body: its answer
/// reaches the client, and that connection is not reused.
#[test]
fn an_early_answer_is_passed_on_and_the_connection_dropped() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let c = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(100) {
            let Ok(mut stream) = stream else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut head = [0u8; 1024];
                let _ = stream.read(&mut head);
                let _ = stream.write_all(
                    b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 4\r\n\r\nbig!",
                );
                std::thread::sleep(Duration::from_millis(500));
            });
        }
    });
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "upstream u {{ server {addr}; keepalive 4; }}\n\
             server {{ listen 127.0.0.1:{port}; client_max_body_size 100m;\n\
               location / {{ proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}"
        ),
        &[port],
    );
    // The client writes from another thread: the balancer may answer and
    // close before the client has sent everything.
    let stream = TcpStream::connect(local(port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let len = 20 * 1024 * 1024;
        let head = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        );
        let _ = writer.write_all(head.as_bytes());
        let _ = writer.write_all(&vec![b'q'; len]);
    });
    let r = support::read_response(&mut BufReader::new(stream)).unwrap();
    assert_eq!((r.status, r.text().as_str()), (413, "big!"));
    sender.join().unwrap();
    let r = post(port, "/", b"small");
    assert_eq!(r.status, 413);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "the first connection was not reused"
    );
}

/// A body the upstream did not wait for (it answered first) is read and
/// dropped by the balancer, as nginx discards it: the client gets the
/// answer intact (no reset under it) and its connection stays usable.
#[test]
fn an_unread_request_body_is_discarded_and_the_connection_kept() {
    // A backend that answers as soon as the head is in, then reads and
    // drops the body (what nginx's `return` does) and waits for the next.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let early = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(100) {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let mut reader = BufReader::new(stream);
                loop {
                    let Some((_, length)) = read_request_head(&mut reader) else {
                        return;
                    };
                    if reader
                        .get_mut()
                        .write_all(&ok_response("early", ""))
                        .is_err()
                    {
                        return;
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "upstream u {{ server {}; keepalive 4; }}\n\
             server {{ listen 127.0.0.1:{port}; client_max_body_size 10m;\n\
               location / {{ proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n\
               location /here {{ return 200 \"here\"; }} }}",
            early
        ),
        &[port],
    );
    let stream = TcpStream::connect(local(port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let body = vec![b'b'; 1024 * 1024];
    for (path, answer) in [
        ("/here", "here"),
        ("/", "early"),
        ("/here", "here"),
        ("/", "early"),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        writer.write_all(head.as_bytes()).unwrap();
        writer.write_all(&body).unwrap();
        let r = support::read_response(&mut reader).unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, answer), "{path}");
        assert_ne!(r.header("connection"), Some("close"));
    }
}

/// An upstream 401 caught by `proxy_intercept_errors` keeps its
/// WWW-Authenticate lines on the error page, as nginx keeps them.
#[test]
fn intercepted_401_keeps_the_upstream_challenges() {
    let backend = RawBackend::start(|_| {
        (
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"a\"\r\nWWW-Authenticate: Bearer\r\nContent-Length: 0\r\n\r\n".to_vec(),
            false,
        )
    });
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port};\n\
               location / {{ proxy_pass http://{}; proxy_intercept_errors on; error_page 401 /e; }}\n\
               location = /e {{ return 401 \"intercepted\"; }} }}",
            backend.addr
        ),
        &[port],
    );
    let raw = support::raw(
        ([127, 0, 0, 1], port).into(),
        b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!((raw.status, raw.text().as_str()), (401, "intercepted"));
    let challenges: Vec<&str> = raw
        .raw_headers
        .iter()
        .filter(|l| l.starts_with("WWW-Authenticate: "))
        .map(String::as_str)
        .collect();
    assert_eq!(
        challenges,
        [
            "WWW-Authenticate: Basic realm=\"a\"",
            "WWW-Authenticate: Bearer"
        ]
    );
}

/// `access_log ... if=condition` writes a line only when the condition is
/// neither empty nor "0".
#[test]
fn access_log_if_skips_lines_whose_condition_is_empty_or_zero() {
    let port = free_port();
    let b = Balancer::start_full(
        &format!(
            "error_log logs/error.log info;\nevents {{}}\nhttp {{\n\
             access_log logs/access.log combined if=$arg_log;\n\
             server {{ listen 127.0.0.1:{port}; location / {{ return 200 ok; }} }} }}"
        ),
        &[port],
        &[],
    );
    for path in ["/?log=1", "/?log=0", "/", "/?log=yes"] {
        assert_eq!(get(port, path).status, 200);
    }
    support::wait_until(Duration::from_secs(5), "two lines", || {
        b.access_lines().len() >= 2
    });
    let lines = b.access_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("GET /?log=1 "), "{lines:?}");
    assert!(lines[1].contains("GET /?log=yes "), "{lines:?}");
}

/// An upstream's X-Accel-Redirect sends the request on to the URI it names
/// (as GET, with the Content-Type and Set-Cookie of the answer and none of
/// its other headers), or to a named location; `..` in it is a 404; and
/// `proxy_ignore_headers X-Accel-Redirect` passes the answer on instead.
#[test]
fn x_accel_redirect_continues_the_request_where_the_upstream_says() {
    let (front, back) = (free_port(), free_port());
    let conf = format!(
        "server {{
            listen 127.0.0.1:{front};
            location /p/ {{ proxy_pass http://127.0.0.1:{back}/; }}
            location /ignored/ {{
                proxy_pass http://127.0.0.1:{back}/;
                proxy_ignore_headers X-Accel-Redirect;
            }}
            location = /final {{ return 200 \"final $request_method $args\\n\"; }}
            location @named {{ return 200 \"named $uri\\n\"; }}
        }}
        server {{
            listen 127.0.0.1:{back};
            location / {{
                add_header X-Accel-Redirect $arg_to;
                add_header Content-Type text/blah;
                add_header Set-Cookie a=1;
                add_header X-Other kept-back;
                return 204;
            }}
        }}"
    );
    let _b = Balancer::start_http(&conf, &[front, back]);
    let r = post(front, "/p/x?to=/final", b"body");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "final GET \n");
    let r = get(front, "/p/x?to=/final?q=1");
    assert_eq!(r.text(), "final GET q=1\n");
    assert_eq!(r.header("content-type"), Some("text/blah"));
    assert_eq!(r.header("set-cookie"), Some("a=1"));
    assert_eq!(r.header("x-other"), None);
    assert_eq!(get(front, "/p/x?to=@named").text(), "named /p/x\n");
    assert_eq!(get(front, "/p/x?to=/a/../final").status, 404);
    let r = get(front, "/ignored/x?to=/final");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("x-other"), Some("kept-back"));
}

/// An upstream's `X-Accel-Limit-Rate` paces the response to the client (the
/// first second's worth at once, as `limit_rate` does), unless
/// `proxy_ignore_headers` names it.
#[test]
fn x_accel_limit_rate_paces_the_response() {
    let (front, back) = (free_port(), free_port());
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("data"), vec![b'x'; 2000]).unwrap();
    let conf = format!(
        "server {{
            listen 127.0.0.1:{front};
            location /paced/ {{ proxy_pass http://127.0.0.1:{back}/; }}
            location /ignored/ {{
                proxy_pass http://127.0.0.1:{back}/;
                proxy_ignore_headers X-Accel-Limit-Rate;
            }}
        }}
        server {{
            listen 127.0.0.1:{back};
            root {};
            location / {{ add_header X-Accel-Limit-Rate 1024; }}
        }}",
        files.path().display()
    );
    let _b = Balancer::start_http(&conf, &[front, back]);
    let timed = |path: &str| {
        let started = std::time::Instant::now();
        let r = get(front, path);
        assert_eq!((r.status, r.body.len()), (200, 2000), "{path}");
        started.elapsed()
    };
    assert!(timed("/paced/data") >= Duration::from_millis(500));
    assert!(timed("/ignored/data") < Duration::from_millis(500));
}

/// `proxy_pass` with variables: a value naming an upstream block uses the
/// group, an address is used as it is, its URI part replaces the request's
/// whole URI, and a value that is no URL is nginx's 500 with its words.
#[test]
fn proxy_pass_with_variables_finds_groups_addresses_and_uris() {
    let a = Echo::start("a", "127.0.0.1:0");
    let b = Echo::start("b", "127.0.0.1:0");
    let port = free_port();
    let lb = Balancer::start_http(
        &format!(
            "{}\nserver {{ listen 127.0.0.1:{port};\n\
               location /to/ {{ proxy_pass http://$arg_to; }}\n\
               location /uri/ {{ proxy_pass http://$arg_to/fixed$is_args$args; }}\n\
               location /scheme/ {{ proxy_pass $arg_to; }}\n\
             }}",
            upstream_block("grp", &[(b.addr, "")])
        ),
        &[port],
    );
    let r = get(port, &format!("/to/x?to={}", a.addr));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-served-by"), Some("a"));
    assert_eq!(json(&r)["path"], "/to/x");
    let r = get(port, "/to/y?to=grp");
    assert_eq!(r.header("x-served-by"), Some("b"), "{}", r.text());
    let r = get(port, &format!("/uri/z?to={}", a.addr));
    assert_eq!(json(&r)["path"], "/fixed", "{}", r.text());
    assert_eq!(r.header("x-served-by"), Some("a"));
    let r = get(port, "/scheme/?to=ftp://x");
    assert_eq!(r.status, 500);
    support::wait_until(Duration::from_secs(5), "the error line", || {
        lb.error_log_text()
            .contains("invalid URL prefix in \"ftp://x\"")
    });
}

/// `$upstream_response_length`, `$upstream_bytes_received` and
/// `$upstream_bytes_sent`, per attempt: a refused peer moved nothing, the
/// one that answered moved the request up (its body included) and the
/// response down, of which the body is what the client got.
#[test]
fn upstream_byte_counts_are_logged_per_attempt() {
    let live = Echo::start("live", "127.0.0.1:0");
    let dead = free_port();
    let port = free_port();
    let lb = Balancer::start_http(
        &format!(
            "log_format bytes '$upstream_response_length|$upstream_bytes_received|$upstream_bytes_sent';\n\
             upstream pair {{ server 127.0.0.1:{dead}; server {}; }}\n\
             server {{ listen 127.0.0.1:{port}; access_log logs/bytes.log bytes;\n\
               location / {{ proxy_pass http://pair; }} }}",
            live.addr
        ),
        &[port],
    );
    let body = vec![b'x'; 1000];
    let r = post(port, "/count", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let log = lb.dir.path().join("logs/bytes.log");
    support::wait_until(Duration::from_secs(5), "the log line", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() == 1)
    });
    let line = std::fs::read_to_string(&log).unwrap();
    let fields: Vec<Vec<u64>> = line
        .trim()
        .split('|')
        .map(|f| f.split(", ").map(|n| n.parse().unwrap()).collect())
        .collect();
    let [length, received, sent] = &fields[..] else {
        panic!("{line}")
    };
    assert_eq!((length[0], received[0], sent[0]), (0, 0, 0), "{line}");
    assert_eq!(length[1], r.body.len() as u64, "{line}");
    assert!(received[1] > length[1] + 40, "the head counts too: {line}");
    assert!(sent[1] > 1000 + 40, "the head and the body went up: {line}");
}

/// Host goes up right after the request line wherever its
/// proxy_set_header line is, as nginx 1.31.4 and later write it; an empty
/// Host over HTTP/1.1 is `$proxy_host`, over HTTP/1.0 no Host at all.
#[test]
fn host_goes_first_and_an_empty_one_is_the_proxy_host_over_http11() {
    let backend = RawBackend::start(|_| (ok_response("ok", ""), true));
    let port = free_port();
    let _lb = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port};\n\
               location /set {{ proxy_set_header X-First 1; proxy_set_header Host written;\n\
                 proxy_pass http://{}; }}\n\
               location /empty11 {{ proxy_http_version 1.1; proxy_set_header Host \"\";\n\
                 proxy_pass http://{}; }}\n\
               location /empty10 {{ proxy_set_header Host \"\"; proxy_pass http://{}; }}\n\
             }}",
            backend.addr, backend.addr, backend.addr
        ),
        &[port],
    );
    for path in ["/set", "/empty11", "/empty10"] {
        assert_eq!(get(port, path).status, 200);
    }
    let heads = backend.requests.lock().unwrap().clone();
    let second_line = |head: &str| head.lines().nth(1).unwrap_or_default().to_string();
    assert_eq!(second_line(&heads[0]), "Host: written", "{heads:?}");
    assert!(heads[0].contains("\r\nX-First: 1\r\n"), "{heads:?}");
    assert_eq!(
        second_line(&heads[1]),
        format!("Host: {}", backend.addr),
        "{heads:?}"
    );
    assert!(
        !heads[2].to_ascii_lowercase().contains("\r\nhost:"),
        "{heads:?}"
    );
}
