//! The request body as the proxy reads it: `$request_body` and
//! `$request_body_file`, `proxy_set_body` with the body read, proxying
//! again after an internal redirect, `proxy_request_buffering off` and
//! `client_body_in_file_only`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{free_port, get, post, wait_until, Balancer};

/// What a recording backend saw: each request's head and body.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A backend that reads each request (a Content-Length body), records it
/// and answers what `answer(head, body)` makes, one request a connection.
fn backend(answer: impl Fn(&str, &[u8]) -> String + Send + Sync + 'static) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(1000) {
            let Ok(stream) = stream else { continue };
            let (record, answer) = (record.clone(), answer.clone());
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let mut reader = BufReader::new(stream);
                let mut head = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let response = answer(&head, &body);
                record.lock().unwrap().push((head, body));
                let _ = reader.get_mut().write_all(response.as_bytes());
            });
        }
    });
    (addr, seen)
}

fn ok(body: &str, extra: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    )
}

#[test]
fn request_body_is_found_only_for_a_body_read_into_memory() {
    let (addr, seen) = backend(|_, _| ok("up", ""));
    let port = free_port();
    let b = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port};
               client_body_buffer_size 16;
               location / {{ add_header X-Body $request_body; add_header X-File $request_body_file;
                 proxy_pass http://{addr}; }}
               location /unread {{ return 200 \"[$request_body]\"; }}
             }}"
        ),
        &[port],
    );
    let r = post(port, "/", b"0123456789");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-body"), Some("0123456789"));
    // Longer than one and a quarter buffers: nginx has it in a file.
    let long = b"abcdefghijklmnopqrstuvwxyz0123";
    let r = post(port, "/", long);
    assert_eq!(r.text(), "up");
    assert_eq!(r.header("x-body"), None);
    assert_eq!(seen.lock().unwrap().last().unwrap().1, long.to_vec());
    // ... a temporary one, named by $request_body_file and gone after.
    let spilled = std::path::PathBuf::from(r.header("x-file").expect("X-File"));
    assert!(
        spilled.starts_with(b.dir.path().join("client_body_temp")),
        "{spilled:?}"
    );
    wait_until(
        Duration::from_secs(5),
        "the spilled body file removed",
        || !spilled.exists(),
    );
    wait_until(Duration::from_secs(5), "the warn line", || {
        b.error_log_text().contains("[warn] ")
            && b.error_log_text()
                .contains("a client request body is buffered to a temporary file")
    });
    // One that fits the buffer has no file.
    assert_eq!(post(port, "/", b"0123").header("x-file"), None);
    // No body: not found.
    assert_eq!(get(port, "/").header("x-body"), None);
    // `return` does not read the body.
    assert_eq!(post(port, "/unread", b"abc").text(), "[]");
}

#[test]
fn proxy_set_body_reads_the_body_and_a_redirect_proxies_it_again() {
    let (addr, seen) = backend(|head, body| {
        if head.starts_with("POST /first ") {
            ok("", "X-Accel-Redirect: /second\r\n")
        } else {
            ok(&String::from_utf8_lossy(body), "")
        }
    });
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port};
               location /first {{ proxy_set_body \"<$request_body>\"; proxy_pass http://{addr}; }}
               location /second {{ proxy_pass http://{addr}; }}
             }}"
        ),
        &[port],
    );
    let r = post(port, "/first", b"payload");
    assert_eq!(r.status, 200, "{}", r.text());
    // The held body goes up again, as nginx reuses the body it read.
    assert_eq!(r.text(), "payload");
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].1, b"<payload>".to_vec());
    assert!(seen[0].0.contains("Content-Length: 9\r\n"), "{}", seen[0].0);
    assert!(seen[1].0.starts_with("GET /second "), "{}", seen[1].0);
    assert_eq!(seen[1].1, b"payload".to_vec());
}

/// A backend the test drives by hand: the connections it accepts.
fn manual_backend() -> (SocketAddr, mpsc::Receiver<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if tx.send(stream).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

/// Reads from `s` until `want` bytes after the head came (or 5s passed).
fn read_past_head(s: &mut TcpStream, want: usize) -> (String, Vec<u8>) {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            if got.len() >= end + 4 + want {
                let head = String::from_utf8_lossy(&got[..end + 4]).into_owned();
                return (head, got[end + 4..].to_vec());
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out with {got:?}"
        );
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => panic!("closed with {got:?}"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
}

/// Reads `n` bytes from `s`.
fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).unwrap();
    buf
}

#[test]
fn unbuffered_request_goes_up_with_what_has_arrived() {
    let (addr, conns) = manual_backend();
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port};
               proxy_request_buffering off;
               location / {{ proxy_pass http://{addr}; }}
             }}"
        ),
        &[port],
    );
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n01234",
        )
        .unwrap();
    // The request is up before the whole body came.
    let mut up = conns
        .recv_timeout(Duration::from_secs(5))
        .expect("no upstream connection before the body ended");
    let (head, start) = read_past_head(&mut up, 5);
    assert!(head.contains("Content-Length: 10\r\n"), "{head}");
    assert_eq!(start, b"01234");
    client.write_all(b"56789").unwrap();
    assert_eq!(read_n(&mut up, 5), b"56789");
    up.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        .unwrap();
    drop(up);
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let r = support::read_response(&mut BufReader::new(client)).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
}

#[test]
fn unbuffered_chunks_that_arrive_together_go_up_as_one() {
    let (addr, conns) = manual_backend();
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port};
               proxy_request_buffering off;
               proxy_http_version 1.1;
               location / {{ proxy_pass http://{addr}; }}
             }}"
        ),
        &[port],
    );
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut up = conns
        .recv_timeout(Duration::from_secs(5))
        .expect("upstream");
    let (head, _) = read_past_head(&mut up, 0);
    assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
    client.write_all(b"5\r\n01234\r\n4\r\nmany\r\n").unwrap();
    let together = b"9\r\n01234many\r\n";
    assert_eq!(read_n(&mut up, together.len()), together.to_vec());
    client.write_all(b"0\r\n\r\n").unwrap();
    assert_eq!(read_n(&mut up, 5), b"0\r\n\r\n");
    up.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        .unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let r = support::read_response(&mut BufReader::new(client)).unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn client_body_in_file_only_writes_each_body_to_a_file() {
    let (addr, seen) = backend(|_, _| ok("up", ""));
    let port = free_port();
    let b = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port};
               add_header X-File $request_body_file;
               add_header X-Body $request_body;
               location /keep {{ client_body_in_file_only on; proxy_pass http://{addr}; }}
               location /clean {{
                   client_body_in_file_only clean;
                   client_body_temp_path spool/ 1 2;
                   proxy_pass http://{addr};
               }}
             }}"
        ),
        &[port],
    );
    let r = post(port, "/keep", b"kept body");
    let kept = std::path::PathBuf::from(r.header("x-file").expect("X-File"));
    assert!(
        kept.starts_with(b.dir.path().join("client_body_temp")),
        "{kept:?}"
    );
    // A body in a file has no $request_body; it still goes up.
    assert_eq!(r.header("x-body"), None);
    assert_eq!(
        seen.lock().unwrap().last().unwrap().1,
        b"kept body".to_vec()
    );
    let r = post(port, "/clean", b"gone soon");
    let cleaned = std::path::PathBuf::from(r.header("x-file").expect("X-File"));
    // The hashed levels are the name's last digit, then the two before.
    let name = cleaned.file_name().unwrap().to_str().unwrap().to_string();
    let spool = b.dir.path().join("spool");
    assert_eq!(
        cleaned,
        spool.join(&name[9..]).join(&name[7..9]).join(&name),
        "{cleaned:?}"
    );
    wait_until(
        Duration::from_secs(5),
        "the clean body file removed",
        || !cleaned.exists(),
    );
    assert_eq!(std::fs::read(&kept).unwrap(), b"kept body");
}
