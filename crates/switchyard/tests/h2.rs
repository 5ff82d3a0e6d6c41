//! HTTP/2 termination (http/h2) against real HTTP/2 clients: the `h2`
//! crate's client, curl with prior knowledge and h2load. Requests are
//! served by the same handler as HTTP/1 (static answers, proxying to an
//! HTTP/1 backend with their bodies), HTTP/1 is still served on the same
//! listener, many streams share a connection, a client that resets streams
//! as fast as it opens them is sent away with GOAWAY while others are
//! still served, and a graceful stop lets a stream in flight finish and
//! closes an idle connection at once with GOAWAY, even for a client that
//! answers nothing.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use support::{free_port, Balancer};

/// A backend that records each request (head and body) and answers with
/// the body it got, after `delay`.
struct Backend {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Backend {
    fn start(delay: Duration) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(200) {
                let Ok(stream) = stream else { continue };
                let sink = sink.clone();
                std::thread::spawn(move || serve_backend(stream, sink, delay));
            }
        });
        Backend { addr, seen }
    }
}

fn serve_backend(mut stream: TcpStream, sink: Arc<Mutex<Vec<String>>>, delay: Duration) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    let body = data[head_end..head_end + length].to_vec();
    sink.lock()
        .unwrap()
        .push(format!("{head}{}", String::from_utf8_lossy(&body)));
    std::thread::sleep(delay);
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Backend: yes\r\nConnection: close\r\n\r\n",
        body.len() + 5
    )
    .into_bytes();
    answer.extend_from_slice(b"got: ");
    answer.extend_from_slice(&body);
    let _ = stream.write_all(&answer);
}

/// A balancer with `http2 on` on one port: `/` answers itself, `/p`
/// proxies to `backend`; `extra` goes into the server.
fn balancer(port: u16, backend: SocketAddr, extra: &str) -> Balancer {
    Balancer::start_http(
        &format!(
            "server {{
                listen 127.0.0.1:{port};
                http2 on;
                {extra}
                location / {{ return 200 \"proto=$server_protocol http2=$http2 host=$host cookie=$http_cookie\"; }}
                location /p {{ proxy_pass http://{backend}; }}
            }}"
        ),
        &[port],
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

type Client = h2::client::SendRequest<Bytes>;

/// An HTTP/2 connection with prior knowledge; the connection's task
/// reports how it ended (the GOAWAY reason, if any).
async fn connect(port: u16) -> (Client, tokio::task::JoinHandle<Result<(), h2::Error>>) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    (client, tokio::spawn(conn))
}

/// Sends one request and reads its whole answer: status, headers, body.
async fn exchange(
    client: &mut Client,
    request: Request<()>,
    body: Option<&'static [u8]>,
) -> Result<(http::response::Parts, Vec<u8>), h2::Error> {
    let mut ready = client.clone().ready().await?;
    let (response, mut send) = ready.send_request(request, body.is_none())?;
    if let Some(body) = body {
        send.send_data(Bytes::from_static(body), true)?;
    }
    let response = response.await?;
    let (parts, mut recv) = response.into_parts();
    let mut out = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    Ok((parts, out))
}

fn get(path: &str) -> Request<()> {
    Request::get(format!("http://localhost{path}"))
        .body(())
        .unwrap()
}

#[test]
fn static_answer_variables_and_head() {
    let port = free_port();
    let backend = Backend::start(Duration::ZERO);
    let _b = balancer(port, backend.addr, "");
    runtime().block_on(async {
        let (mut client, _conn) = connect(port).await;
        let mut request = get("/x");
        request
            .headers_mut()
            .append("cookie", "a=1".parse().unwrap());
        request
            .headers_mut()
            .append("cookie", "b=2".parse().unwrap());
        let (parts, body) = exchange(&mut client, request, None).await.unwrap();
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(
            String::from_utf8_lossy(&body),
            "proto=HTTP/2.0 http2=h2c host=localhost cookie=a=1; b=2"
        );
        assert!(parts.headers.contains_key("server"));
        assert!(parts.headers.contains_key("date"));
        assert_eq!(parts.headers["content-length"], body.len().to_string());
        // HTTP/2 forbids the HTTP/1.1 connection fields.
        assert!(!parts.headers.contains_key("connection"));
        assert!(!parts.headers.contains_key("keep-alive"));

        // HEAD: the head a GET would get, no DATA.
        let head = Request::builder()
            .method(Method::HEAD)
            .uri("http://localhost/x")
            .body(())
            .unwrap();
        let (parts, body) = exchange(&mut client, head, None).await.unwrap();
        assert_eq!(parts.status, StatusCode::OK);
        assert!(body.is_empty());
        assert!(parts.headers.contains_key("content-length"));
    });
}

/// nginx's ngx_http_v2_validate_header: a field with `_` in its name is
/// left out unless `underscores_in_headers on` (or `ignore_invalid_headers
/// off`), and the rest of the head is still read.
#[test]
fn fields_with_invalid_names_are_left_out() {
    let backend = Backend::start(Duration::ZERO);
    let (on, underscores) = (free_port(), free_port());
    let answer = "location /u { return 200 \"[$http_x_foo]\"; }";
    let _a = balancer(on, backend.addr, answer);
    let _b = balancer(
        underscores,
        backend.addr,
        &format!("underscores_in_headers on; {answer}"),
    );
    runtime().block_on(async {
        for (port, expected) in [(on, "[]"), (underscores, "[u=1]")] {
            let (mut client, _conn) = connect(port).await;
            let mut request = get("/u");
            request
                .headers_mut()
                .append("x_foo", "u=1".parse().unwrap());
            let (parts, body) = exchange(&mut client, request, None).await.unwrap();
            assert_eq!(parts.status, StatusCode::OK);
            assert_eq!(String::from_utf8_lossy(&body), expected, "{port}");
        }
    });
}

/// The headers nginx takes once only (and Host) are a 400 when repeated
/// over HTTP/2 too; others repeat freely.
#[test]
fn a_repeated_unique_header_is_a_400() {
    let port = free_port();
    let backend = Backend::start(Duration::ZERO);
    let b = balancer(port, backend.addr, "");
    runtime().block_on(async {
        let (mut client, _conn) = connect(port).await;
        for (name, lines) in [
            ("if-match", ["\"a\"", "\"b\""]),
            ("host", ["localhost", "again"]),
            ("x-any", ["1", "2"]),
        ] {
            let mut request = get("/x");
            for value in lines {
                request.headers_mut().append(name, value.parse().unwrap());
            }
            let (parts, _) = exchange(&mut client, request, None).await.unwrap();
            let expected = if name == "x-any" {
                StatusCode::OK
            } else {
                StatusCode::BAD_REQUEST
            };
            assert_eq!(parts.status, expected, "{name}");
        }
    });
    support::wait_until(Duration::from_secs(5), "the info lines", || {
        let log = b.error_log_text();
        log.contains("client sent duplicate header line: \"if-match: \"b\"\", previous value: \"if-match: \"a\"\"")
            && log.contains("client sent duplicate host header: \"host: again\", previous value: \"host: localhost\"")
    });
}

#[test]
fn get_and_post_through_proxy_pass() {
    let port = free_port();
    let backend = Backend::start(Duration::ZERO);
    let _b = balancer(port, backend.addr, "");
    runtime().block_on(async {
        let (mut client, _conn) = connect(port).await;
        let (parts, body) = exchange(&mut client, get("/p/get"), None).await.unwrap();
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(parts.headers["x-backend"], "yes");
        assert_eq!(body, b"got: ");

        // A body without Content-Length (HTTP/2 needs none): nginx reads it
        // whole and sends it up with one, as HTTP/1.0 needs.
        let post = Request::post("http://localhost/p/post").body(()).unwrap();
        let (parts, body) = exchange(&mut client, post, Some(b"hello over h2"))
            .await
            .unwrap();
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, b"got: hello over h2");
    });
    let seen = backend.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[0].starts_with("GET /p/get HTTP/1.0\r\n"),
        "{}",
        seen[0]
    );
    assert!(
        seen[1].starts_with("POST /p/post HTTP/1.0\r\n"),
        "{}",
        seen[1]
    );
    assert!(seen[1].contains("Content-Length: 13\r\n"), "{}", seen[1]);
    assert!(seen[1].ends_with("hello over h2"), "{}", seen[1]);
}

#[test]
fn bodies_larger_than_the_window_go_through() {
    let port = free_port();
    let backend = Backend::start(Duration::ZERO);
    let _b = balancer(port, backend.addr, "");
    static BIG: [u8; 300_000] = [b'z'; 300_000];
    runtime().block_on(async {
        let (mut client, _conn) = connect(port).await;
        // With a length (streamed up as it comes), and without (read whole
        // first), each well past the stream's 64k window.
        let mut with_length = Request::post("http://localhost/p/l").body(()).unwrap();
        with_length
            .headers_mut()
            .insert("content-length", "300000".parse().unwrap());
        for request in [
            with_length,
            Request::post("http://localhost/p/n").body(()).unwrap(),
        ] {
            let (parts, body) = tokio::time::timeout(
                Duration::from_secs(30),
                exchange(&mut client, request, Some(&BIG)),
            )
            .await
            .expect("bounded")
            .unwrap();
            assert_eq!(parts.status, StatusCode::OK);
            assert_eq!(body.len(), 300_005);
        }
    });
    let seen = backend.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert!(s.contains("Content-Length: 300000\r\n"), "{}", &s[..200]);
    }
}

#[test]
fn too_large_body_is_413() {
    let port = free_port();
    let backend = Backend::start(Duration::ZERO);
    let _b = balancer(port, backend.addr, "client_max_body_size 8;");
    runtime().block_on(async {
        let (mut client, _conn) = connect(port).await;
        let mut post = Request::post("http://localhost/p/big").body(()).unwrap();
        post.headers_mut()
            .insert("content-length", "20".parse().unwrap());
        let (parts, _) = exchange(&mut client, post, Some(b"01234567890123456789"))
            .await
            .unwrap();
        assert_eq!(parts.status, StatusCode::PAYLOAD_TOO_LARGE);
        // Without a length, the limit applies as the body is read.
        let post = Request::post("http://localhost/p/big").body(()).unwrap();
        let (parts, _) = exchange(&mut client, post, Some(b"01234567890123456789"))
            .await
            .unwrap();
        assert_eq!(parts.status, StatusCode::PAYLOAD_TOO_LARGE);
    });
    assert!(backend.seen.lock().unwrap().is_empty());
}

#[test]
fn http1_and_curl_on_the_same_listener() {
    let port = free_port();
    let backend = Backend::start(Duration::ZERO);
    let _b = balancer(port, backend.addr, "");
    let h1 = support::get(port, "/one");
    assert_eq!(h1.status, 200);
    let out = Command::new("curl")
        .args([
            "-s",
            "-i",
            "--http2-prior-knowledge",
            "-H",
            "Host: example.org",
        ])
        .arg(format!("http://127.0.0.1:{port}/two"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/2 200"), "{text}");
    assert!(
        text.ends_with("proto=HTTP/2.0 http2=h2c host=example.org cookie="),
        "{text}"
    );
    // And HTTP/1.1 from curl, whose first bytes are not the preface.
    let out = Command::new("curl")
        .args(["-s", "--http1.1"])
        .arg(format!("http://127.0.0.1:{port}/three"))
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("proto=HTTP/1.1 http2= host=127.0.0.1 cookie=")
    );
}

#[test]
fn many_concurrent_streams_on_one_connection() {
    let port = free_port();
    let backend = Backend::start(Duration::ZERO);
    let _b = balancer(port, backend.addr, "http2_max_concurrent_streams 16;");
    runtime().block_on(async {
        let (mut client, _conn) = connect(port).await;
        // One exchange first: the server's SETTINGS (its stream limit) has
        // then arrived, so the client keeps to the limit instead of racing
        // it with streams the server must refuse.
        let (first, _) = exchange(&mut client, get("/first"), None).await.unwrap();
        assert_eq!(first.status, StatusCode::OK);
        let mut tasks = Vec::new();
        for i in 0..300 {
            let mut client = client.clone();
            tasks.push(tokio::spawn(async move {
                exchange(&mut client, get(&format!("/s{i}")), None).await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            let (parts, _) = tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("bounded")
                .unwrap()
                .unwrap();
            if parts.status == StatusCode::OK {
                ok += 1;
            }
        }
        assert_eq!(ok, 300);
    });
}

#[test]
fn h2load_bounded_run() {
    let port = free_port();
    let backend = Backend::start(Duration::ZERO);
    let b = balancer(port, backend.addr, "access_log off;");
    let out = Command::new("timeout")
        .args(["60", "h2load", "-n", "2000", "-c", "4", "-m", "32"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("h2load (scripts/install-test-deps installs nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed"),
        "{text}"
    );
    assert!(text.contains("status codes: 2000 2xx"), "{text}");
    drop(b);
}

#[test]
fn rapid_reset_gets_goaway_and_others_are_served() {
    let port = free_port();
    let backend = Backend::start(Duration::from_millis(200));
    let _b = balancer(port, backend.addr, "");
    runtime().block_on(async {
        let (mut hostile, conn) = connect(port).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        // Open streams to a slow location and reset each at once, many
        // times over (bounded in count and time).
        for _ in 0..20_000 {
            if conn.is_finished() || Instant::now() > deadline {
                break;
            }
            let Ok(mut ready) = hostile.clone().ready().await else {
                break;
            };
            let Ok((_response, mut send)) = ready.send_request(get("/p/slow"), false) else {
                break;
            };
            send.send_reset(h2::Reason::CANCEL);
            tokio::task::yield_now().await;
        }
        let ended = tokio::time::timeout(Duration::from_secs(10), conn)
            .await
            .expect("the hostile connection ends")
            .unwrap();
        let e = ended.expect_err("ended by the server");
        assert_eq!(e.reason(), Some(h2::Reason::ENHANCE_YOUR_CALM), "{e:?}");
        assert!(e.is_go_away() || e.is_remote(), "{e:?}");

        // Another client is served as ever.
        let (mut client, _conn) = connect(port).await;
        let (parts, _) = exchange(&mut client, get("/fine"), None).await.unwrap();
        assert_eq!(parts.status, StatusCode::OK);
        let _ = &mut hostile;
    });
}

#[test]
fn header_field_over_the_limit_ends_the_connection() {
    let port = free_port();
    let backend = Backend::start(Duration::ZERO);
    let _b = balancer(port, backend.addr, "large_client_header_buffers 4 1k;");
    runtime().block_on(async {
        let (mut client, conn) = connect(port).await;
        let mut request = get("/big");
        request
            .headers_mut()
            .insert("x-long", "a".repeat(2000).parse().unwrap());
        let result = exchange(&mut client, request, None).await;
        assert!(result.is_err(), "{result:?}");
        let ended = tokio::time::timeout(Duration::from_secs(10), conn)
            .await
            .expect("ends")
            .unwrap();
        let e = ended.expect_err("GOAWAY");
        assert_eq!(e.reason(), Some(h2::Reason::ENHANCE_YOUR_CALM), "{e:?}");
    });
}

#[test]
fn header_list_over_the_limit_ends_the_connection() {
    let port = free_port();
    let backend = Backend::start(Duration::ZERO);
    let _b = balancer(port, backend.addr, "large_client_header_buffers 2 1k;");
    runtime().block_on(async {
        let (mut client, conn) = connect(port).await;
        // Each field fits in 1k, all of them not in 2k.
        let mut request = get("/many");
        for i in 0..4 {
            request.headers_mut().insert(
                http::HeaderName::from_bytes(format!("x-f{i}").as_bytes()).unwrap(),
                "b".repeat(900).parse().unwrap(),
            );
        }
        assert!(exchange(&mut client, request, None).await.is_err());
        let ended = tokio::time::timeout(Duration::from_secs(10), conn)
            .await
            .expect("ends")
            .unwrap();
        let e = ended.expect_err("GOAWAY");
        assert_eq!(e.reason(), Some(h2::Reason::ENHANCE_YOUR_CALM), "{e:?}");
        // Within the limit, the same connection setup is served.
        let (mut client, _conn) = connect(port).await;
        let mut request = get("/few");
        request
            .headers_mut()
            .insert("x-f", "b".repeat(900).parse().unwrap());
        let (parts, _) = exchange(&mut client, request, None).await.unwrap();
        assert_eq!(parts.status, StatusCode::OK);
    });
}

#[test]
fn keepalive_limits_say_goaway_after_the_stream() {
    for extra in ["keepalive_requests 2;", "keepalive_timeout 0;"] {
        let port = free_port();
        let backend = Backend::start(Duration::ZERO);
        let _b = balancer(port, backend.addr, extra);
        runtime().block_on(async {
            let (mut client, conn) = connect(port).await;
            let mut served = 0;
            for i in 0..3 {
                match exchange(&mut client, get(&format!("/k{i}")), None).await {
                    Ok((parts, _)) => {
                        assert_eq!(parts.status, StatusCode::OK);
                        served += 1;
                    }
                    Err(_) => break,
                }
            }
            let wanted = if extra.starts_with("keepalive_requests") {
                2
            } else {
                1
            };
            assert_eq!(served, wanted, "{extra}");
            let ended = tokio::time::timeout(Duration::from_secs(10), conn)
                .await
                .expect("the connection ends")
                .unwrap();
            assert!(
                ended.is_ok()
                    || ended.as_ref().err().and_then(|e| e.reason()) == Some(h2::Reason::NO_ERROR),
                "{extra}: {ended:?}"
            );
        });
    }
}

#[test]
fn graceful_stop_lets_the_stream_in_flight_finish() {
    let port = free_port();
    let backend = Backend::start(Duration::from_millis(800));
    let mut b = balancer(port, backend.addr, "");
    runtime().block_on(async {
        let (mut client, conn) = connect(port).await;
        let mut slow = client.clone();
        let in_flight =
            tokio::spawn(async move { exchange(&mut slow, get("/p/slow"), None).await });
        // The request has reached the backend: now stop.
        let deadline = Instant::now() + Duration::from_secs(10);
        while backend.seen.lock().unwrap().is_empty() {
            assert!(
                Instant::now() < deadline,
                "request never reached the backend"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        b.signal(libc::SIGQUIT);
        let (parts, body) = tokio::time::timeout(Duration::from_secs(10), in_flight)
            .await
            .expect("bounded")
            .unwrap()
            .unwrap();
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, b"got: ");
        // GOAWAY said NO_ERROR: the connection ends cleanly, and no new
        // stream is taken.
        let ended = tokio::time::timeout(Duration::from_secs(10), conn)
            .await
            .expect("the connection ends")
            .unwrap();
        assert!(
            ended.is_ok()
                || ended.as_ref().err().and_then(|e| e.reason()) == Some(h2::Reason::NO_ERROR),
            "{ended:?}"
        );
        assert!(exchange(&mut client, get("/after"), None).await.is_err());
    });
    assert_eq!(b.wait(Duration::from_secs(10)), Some(0));
}

#[test]
fn reload_keeps_the_connection_and_new_streams_take_the_new_configuration() {
    let port = free_port();
    let backend = Backend::start(Duration::ZERO);
    let b = balancer(port, backend.addr, "");
    runtime().block_on(async {
        let (mut client, conn) = connect(port).await;
        let (_, body) = exchange(&mut client, get("/"), None).await.unwrap();
        assert!(body.starts_with(b"proto="));
        let text = std::fs::read_to_string(b.conf_path()).unwrap();
        b.rewrite_conf(&text.replace("\"proto=", "\"reloaded proto="));
        b.signal(libc::SIGHUP);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, body) = exchange(&mut client, get("/"), None).await.unwrap();
            if body.starts_with(b"reloaded") {
                break;
            }
            assert!(Instant::now() < deadline, "the reload never applied");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!conn.is_finished());
    });
}

fn check_config(http: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!("events {{}}\nhttp {{\naccess_log off;\n{http}\n}}\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("-p")
        .arg(dir.path())
        .arg("-t")
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn configuration_checks_and_warnings() {
    let port = free_port();
    let (ok, err) = check_config(&format!(
        "server {{ listen 127.0.0.1:{port} http2; http2_idle_timeout 10s; http2_push_preload on; }}"
    ));
    assert!(ok, "{err}");
    assert!(
        err.contains("[warn] the \"listen ... http2\" directive is deprecated, use the \"http2\" directive instead in "),
        "{err}"
    );
    assert!(
        err.contains("the \"http2_idle_timeout\" directive is obsolete, use the \"keepalive_timeout\" directive instead in "),
        "{err}"
    );
    assert!(
        err.contains("the \"http2_push_preload\" directive is obsolete, ignored in "),
        "{err}"
    );
    let (ok, err) = check_config("http2_chunk_size 0;");
    assert!(!ok);
    assert!(
        err.contains("the http2 chunk size cannot be zero in "),
        "{err}"
    );
    let (ok, err) = check_config("http2 maybe;");
    assert!(!ok);
    assert!(err.contains("it must be \"on\" or \"off\""), "{err}");
}

#[test]
fn listen_http2_parameter_enables_http2() {
    let port = free_port();
    let _b = Balancer::start_http(
        &format!("server {{ listen 127.0.0.1:{port} http2; location / {{ return 200 $http2; }} }}"),
        &[port],
    );
    let out = Command::new("curl")
        .args(["-s", "--http2-prior-knowledge"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "h2c");
}

#[test]
fn without_http2_the_preface_is_an_http1_error() {
    let port = free_port();
    let _b = Balancer::start_http(
        &format!("server {{ listen 127.0.0.1:{port}; location / {{ return 200 ok; }} }}"),
        &[port],
    );
    let response = support::raw(
        SocketAddr::from(([127, 0, 0, 1], port)),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    )
    .expect("an HTTP/1 answer");
    assert_ne!(response.status, 200);
}

#[test]
fn a_host_whose_server_has_http2_off_is_misdirected() {
    let port = free_port();
    let deprecated = free_port();
    let _b = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port}; server_name on; http2 on;
                       location / {{ return 200 on; }} }}
             server {{ listen 127.0.0.1:{port}; server_name off; http2 off;
                       location / {{ return 200 off; }} }}
             server {{ listen 127.0.0.1:{deprecated} http2; server_name on; }}
             server {{ listen 127.0.0.1:{deprecated}; server_name off; http2 off;
                       location / {{ return 200 off; }} }}"
        ),
        &[port, deprecated],
    );
    runtime().block_on(async {
        let (mut client, _conn) = connect(port).await;
        let to = |host: &str| Request::get(format!("http://{host}/")).body(()).unwrap();
        let (parts, body) = exchange(&mut client, to("on"), None).await.unwrap();
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, b"on");
        let (parts, _) = exchange(&mut client, to("off"), None).await.unwrap();
        assert_eq!(parts.status, StatusCode::MISDIRECTED_REQUEST);
        // The connection goes on: only that stream was refused.
        let (parts, _) = exchange(&mut client, to("on"), None).await.unwrap();
        assert_eq!(parts.status, StatusCode::OK);

        // `listen ... http2` takes HTTP/2 for every server of the address.
        let (mut client, _conn) = connect(deprecated).await;
        let (parts, body) = exchange(&mut client, to("off"), None).await.unwrap();
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, b"off");
    });
}

/// One HTTP/2 frame as written on the wire.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[test]
fn a_body_taken_a_whole_window_at_a_time_opens_the_window_by_as_much() {
    let port = free_port();
    let _b = balancer(port, SocketAddr::from(([127, 0, 0, 1], free_port())), "");
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    s.write_all(&out).unwrap();
    // The server's window of 64k holds once its SETTINGS are acknowledged.
    let mut got = Vec::new();
    loop {
        let mut buf = [0u8; 16384];
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed");
        got.extend_from_slice(&buf[..n]);
        if got.len() >= 9 && got[3] == 0x4 && got[4] == 0 {
            let len = u32::from_be_bytes([0, got[0], got[1], got[2]]) as usize;
            if got.len() >= 9 + len {
                got.drain(..9 + len);
                break;
            }
        }
    }
    let mut out = frame(0x4, 0x1, 0, &[]);
    // HEADERS, literal fields without indexing: a POST to the proxied
    // location, which reads the body whole before it goes up.
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/p"),
        (":authority", "localhost"),
    ] {
        block.push(0);
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    out.extend(frame(0x1, 0x4, 1, &block));
    s.write_all(&out).unwrap();
    // The stream's whole window (http2_body_preread_size, 64k) in four
    // frames, paced so that each is taken before the next comes: the
    // pauses are the scenario (a slow client), not a wait for readiness.
    for _ in 0..4 {
        s.write_all(&frame(0x0, 0, 1, &[b'x'; 16384])).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        while got.len() >= 9 {
            let len = u32::from_be_bytes([0, got[0], got[1], got[2]]) as usize;
            if got.len() < 9 + len {
                break;
            }
            let (kind, stream) = (got[3], u32::from_be_bytes([got[5], got[6], got[7], got[8]]));
            if kind == 0x8 && stream == 1 {
                let delta = u32::from_be_bytes([got[9], got[10], got[11], got[12]]);
                // nginx opens the window by what it took, not by halves.
                assert!(delta >= 65536, "the stream's window opened by {delta}");
                return;
            }
            got.drain(..9 + len);
        }
        assert!(Instant::now() < deadline, "no WINDOW_UPDATE for the stream");
        let mut buf = [0u8; 16384];
        match s.read(&mut buf) {
            Ok(0) => panic!("connection closed"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// A client speaking raw frames with prior knowledge, which answers
/// nothing it is sent (no PING, no SETTINGS after the first): a client
/// that holds its connection and does not read, as nginx's tests do.
struct RawClient {
    s: TcpStream,
    got: Vec<u8>,
}

impl RawClient {
    /// Connects, says the preface and SETTINGS, and acknowledges the
    /// server's SETTINGS.
    fn connect(port: u16) -> RawClient {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut c = RawClient { s, got: Vec::new() };
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend(frame(0x4, 0, 0, &[]));
        c.s.write_all(&out).unwrap();
        loop {
            let (kind, flags, _, _) = c.next().expect("the server's SETTINGS");
            if kind == 0x4 && flags & 0x1 == 0 {
                break;
            }
        }
        c.s.write_all(&frame(0x4, 0x1, 0, &[])).unwrap();
        c
    }

    /// Opens stream `id` with a GET of `path` (literal fields, no body).
    fn get(&mut self, id: u32, path: &str) {
        self.request(id, "GET", path);
    }

    /// Opens stream `id` with `method` on `path`, no body.
    fn request(&mut self, id: u32, method: &str, path: &str) {
        let mut block = Vec::new();
        for (name, value) in [
            (":method", method),
            (":scheme", "http"),
            (":path", path),
            (":authority", "localhost"),
        ] {
            block.push(0);
            block.push(name.len() as u8);
            block.extend_from_slice(name.as_bytes());
            block.push(value.len() as u8);
            block.extend_from_slice(value.as_bytes());
        }
        self.s.write_all(&frame(0x1, 0x5, id, &block)).unwrap();
    }

    /// The next frame (kind, flags, stream, payload); `None` once the
    /// server has closed the connection.
    fn next(&mut self) -> Option<(u8, u8, u32, Vec<u8>)> {
        loop {
            if self.got.len() >= 9 {
                let len = u32::from_be_bytes([0, self.got[0], self.got[1], self.got[2]]) as usize;
                if self.got.len() >= 9 + len {
                    let head: Vec<u8> = self.got.drain(..9).collect();
                    let payload = self.got.drain(..len).collect();
                    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
                    return Some((head[3], head[4], stream & 0x7fff_ffff, payload));
                }
            }
            let mut buf = [0u8; 16384];
            match self.s.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Reads until the server closes: the GOAWAYs seen (last stream id,
    /// error code), and whether stream `id` ended (END_STREAM).
    fn until_closed(&mut self, id: u32) -> (Vec<(u32, u32)>, bool) {
        let mut goaways = Vec::new();
        let mut ended = false;
        while let Some((kind, flags, stream, payload)) = self.next() {
            match kind {
                0x7 => {
                    let last = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                    let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                    goaways.push((last & 0x7fff_ffff, code));
                }
                0x0 | 0x1 if stream == id && flags & 0x1 != 0 => ended = true,
                _ => {}
            }
        }
        (goaways, ended)
    }
}

#[test]
fn graceful_stop_sends_goaway_on_an_idle_connection_and_exits() {
    let port = free_port();
    let backend = Backend::start(Duration::ZERO);
    let mut b = balancer(port, backend.addr, "");
    let mut c = RawClient::connect(port);
    c.get(1, "/");
    loop {
        let (kind, flags, stream, _) = c.next().expect("the answer");
        if stream == 1 && kind <= 0x1 && flags & 0x1 != 0 {
            break;
        }
    }
    // Idle now, and the client reads nothing more until the stop.
    b.signal(libc::SIGQUIT);
    let t = Instant::now();
    assert_eq!(b.wait(Duration::from_secs(5)), Some(0), "no prompt exit");
    let (goaways, _) = c.until_closed(1);
    // One GOAWAY with the last stream taken, as nginx's exiting worker
    // says it before it closes.
    assert_eq!(goaways, [(1, 0)]);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn graceful_stop_finishes_the_stream_in_flight_then_closes_without_a_ping_answer() {
    let port = free_port();
    let backend = Backend::start(Duration::from_millis(500));
    let mut b = balancer(port, backend.addr, "");
    let mut c = RawClient::connect(port);
    c.get(1, "/p/slow");
    support::wait_until(
        Duration::from_secs(10),
        "the request at the backend",
        || !backend.seen.lock().unwrap().is_empty(),
    );
    b.signal(libc::SIGQUIT);
    let (goaways, ended) = c.until_closed(1);
    assert!(ended, "the stream in flight was cut off");
    assert_eq!(goaways, [(1, 0)]);
    assert_eq!(b.wait(Duration::from_secs(5)), Some(0), "no prompt exit");
}

#[test]
fn reload_ending_the_configuration_closes_an_idle_connection_with_goaway() {
    let port = free_port();
    let conf = format!(
        "error_log logs/error.log info;\nworker_shutdown_timeout 10s;\nevents {{}}\n\
         http {{ server {{ listen 127.0.0.1:{port}; http2 on;\n\
           location / {{ return 200 ok; }} }} }}"
    );
    let b = Balancer::start_full(&conf, &[port], &[]);
    let mut c = RawClient::connect(port);
    // A reload whose old configuration set worker_shutdown_timeout ends
    // that configuration's connections, as nginx's old worker does: the
    // idle one closes at once, long before the timeout.
    b.signal(libc::SIGHUP);
    let t = Instant::now();
    let (goaways, _) = c.until_closed(0);
    assert_eq!(goaways, [(0, 0)]);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn a_refused_head_goes_through_error_page_and_return_444_resets_the_stream() {
    let port = free_port();
    let backend = Backend::start(Duration::ZERO);
    let _b = balancer(
        port,
        backend.addr,
        "error_page 400 = /close; location /close { return 444; }",
    );
    let mut c = RawClient::connect(port);
    // A method with lower-case letters: nginx's 400 once the stream's
    // request exists, so error_page takes it, and 444 resets the stream.
    c.request(1, "foo", "/");
    let reset = loop {
        let (kind, _, stream, payload) = c.next().expect("an answer on stream 1");
        if stream != 1 {
            continue;
        }
        assert_ne!(kind, 0x1, "a response head instead of RST_STREAM");
        if kind == 0x3 {
            break u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
        }
    };
    assert_eq!(
        reset, 0x2,
        "INTERNAL_ERROR, as nginx resets a closed request"
    );
    // The connection carries on.
    c.get(3, "/");
    loop {
        let (kind, _, stream, _) = c.next().expect("an answer on stream 3");
        if stream == 3 {
            assert_eq!(kind, 0x1, "HEADERS");
            break;
        }
    }
}

/// `$connection_requests:$connection_time` as answered: the count, and
/// the seconds (nginx's `%T.%03M`, three decimals) since the accept.
fn connection_vars(body: &str) -> (u64, f64) {
    let (count, time) = body.split_once(':').expect(body);
    let (secs, millis) = time.split_once('.').expect(body);
    assert!(
        millis.len() == 3 && millis.bytes().all(|b| b.is_ascii_digit()),
        "{body}"
    );
    assert!(secs.bytes().all(|b| b.is_ascii_digit()), "{body}");
    (count.parse().expect(body), time.parse().expect(body))
}

#[test]
fn connection_time_counts_from_the_accept_on_http1_and_http2() {
    let port = free_port();
    let backend = Backend::start(Duration::ZERO);
    let _b = balancer(
        port,
        backend.addr,
        "location /ct { return 200 \"$connection_requests:$connection_time\"; }",
    );
    // The pause is the scenario: time passes on one connection between
    // its requests.
    let pause = Duration::from_millis(300);
    let mut h1 = support::KeepAlive::connect(port);
    let (n, first) = connection_vars(&h1.get("/ct").text());
    assert_eq!(n, 1);
    assert!(first < 0.3, "{first}");
    std::thread::sleep(pause);
    let (n, second) = connection_vars(&h1.get("/ct").text());
    assert_eq!(n, 2, "the same connection");
    assert!(
        second >= first + 0.3 && second < 10.0,
        "{first} then {second}"
    );
    runtime().block_on(async {
        let (mut client, _conn) = connect(port).await;
        let (_, body) = exchange(&mut client, get("/ct"), None).await.unwrap();
        let (n, first) = connection_vars(&String::from_utf8_lossy(&body));
        assert_eq!(n, 1);
        assert!(first < 0.3, "{first}");
        tokio::time::sleep(pause).await;
        let (_, body) = exchange(&mut client, get("/ct"), None).await.unwrap();
        let (n, second) = connection_vars(&String::from_utf8_lossy(&body));
        assert_eq!(n, 2, "streams count on their connection");
        assert!(
            second >= first + 0.3 && second < 10.0,
            "{first} then {second}"
        );
    });
}

#[test]
fn keepalive_requests_says_one_goaway_with_the_last_stream() {
    let port = free_port();
    let backend = Backend::start(Duration::ZERO);
    let _b = balancer(port, backend.addr, "keepalive_requests 2;");
    let mut c = RawClient::connect(port);
    c.get(1, "/");
    loop {
        let (kind, flags, stream, _) = c.next().expect("the first answer");
        assert_ne!(kind, 0x7, "GOAWAY before the last stream");
        if stream == 1 && kind <= 0x1 && flags & 0x1 != 0 {
            break;
        }
    }
    // The second stream is the last: it is answered, then one GOAWAY
    // names it, as nginx's does (not h2's first GOAWAY of 2^31-1).
    c.get(3, "/");
    let (goaways, ended) = c.until_closed(3);
    assert!(ended, "the last stream was cut off");
    assert_eq!(goaways, [(3, 0)]);
}

/// A stream head refused by the HTTP/2 checks (TRACE here, nginx's 405)
/// is answered through the server's error_page, with `$status` the
/// refused status, and logged with its request line, as nginx finalizes
/// the stream's request.
#[test]
fn a_refused_stream_head_is_answered_by_error_page() {
    let port = free_port();
    let backend = Backend::start(Duration::ZERO);
    let b = balancer(
        port,
        backend.addr,
        "error_page 405 /caught; location /caught { return 200 \"caught $status\"; }",
    );
    let out = Command::new("curl")
        .args(["-s", "-i", "--http2-prior-knowledge", "-X", "TRACE"])
        .arg(format!("http://127.0.0.1:{port}/traced"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/2 405"), "{text}");
    assert!(text.ends_with("caught 405"), "{text}");
    support::wait_until(Duration::from_secs(5), "an access line", || {
        !b.access_lines().is_empty()
    });
    let lines = b.access_lines();
    assert!(
        lines[0].contains("\"TRACE /traced HTTP/2.0\" 405"),
        "{lines:?}"
    );
}

/// One HTTP/2 frame as the client writes it.
fn raw_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// `$request_length` over HTTP/2 is what nginx counts: the header block
/// of HEADERS and CONTINUATION without padding or priority fields, and
/// the DATA payloads without padding.
#[test]
fn request_length_counts_the_frames_as_nginx_does() {
    let echo = support::Echo::start("e", "127.0.0.1:0");
    let port = free_port();
    let b = Balancer::start_http(
        &format!(
            "log_format len \"$request_uri $request_length\";
            server {{
                listen 127.0.0.1:{port};
                http2 on;
                access_log logs/len.log len;
                location / {{ return 200 ok; }}
                location /p {{ proxy_pass http://{}; }}
            }}",
            echo.addr
        ),
        &[port],
    );
    // HPACK, all from the static table but the authority: 14 bytes.
    let block = |method: u8, path: &[u8]| {
        let mut b = vec![method, 0x86];
        b.push(0x04);
        b.push(path.len() as u8);
        b.extend_from_slice(path);
        b.extend_from_slice(b"\x41\x09localhost");
        b
    };
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(raw_frame(0x4, 0, 0, &[]));
    // GET /g: HEADERS padded (2) with priority, END_STREAM, then the
    // block's end in a CONTINUATION.
    let get = block(0x82, b"/g");
    let mut payload = vec![2, 0, 0, 0, 0, 15];
    payload.extend_from_slice(&get[..5]);
    payload.extend_from_slice(&[0, 0]);
    out.extend(raw_frame(0x1, 0x1 | 0x8 | 0x20, 1, &payload));
    out.extend(raw_frame(0x9, 0x4, 1, &get[5..]));
    // POST /p with 5 bytes of body in a padded DATA frame.
    let post = block(0x83, b"/p");
    out.extend(raw_frame(0x1, 0x4, 3, &post));
    out.extend(raw_frame(0x0, 0x1 | 0x8, 3, b"\x03hello\0\0\0"));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&out).unwrap();
    let log = b.dir.path().join("logs/len.log");
    support::wait_until(Duration::from_secs(10), "two log lines", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() == 2)
    });
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            format!("/g {}", get.len()),
            format!("/p {}", post.len() + 5)
        ]
    );
}
