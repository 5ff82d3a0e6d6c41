//! `lingering_close`, `lingering_time` and `lingering_timeout` on a real
//! process: after a response that closes the connection, a lingering
//! server goes on reading (and dropping) what the client sends; one that
//! does not linger has closed its socket, so the client's next bytes meet
//! a reset.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{free_port, Balancer, BIN};

/// Sends `request`, reads the response up to the server's FIN, and
/// returns the socket.
fn answered(port: u16, request: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut response = Vec::new();
    s.read_to_end(&mut response).unwrap();
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    s
}

/// Writes up to `limit` bytes after the response; how many went before a
/// write failed, and how (`None`: all of them went).
fn write_after(s: &mut TcpStream, limit: usize) -> (usize, Option<ErrorKind>) {
    let chunk = [b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < limit {
        match s.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) => return (sent, Some(e.kind())),
        }
    }
    (sent, None)
}

/// A write refused by the peer's reset (not a stall of our own).
fn reset(kind: Option<ErrorKind>) -> bool {
    matches!(
        kind,
        Some(ErrorKind::BrokenPipe | ErrorKind::ConnectionReset)
    )
}

const MB: usize = 1024 * 1024;

#[test]
fn off_closes_always_reads_on_lingers_only_for_a_reason() {
    let (off, always, on) = (free_port(), free_port(), free_port());
    let conf = format!(
        "server {{
            listen 127.0.0.1:{off};
            lingering_close off;
            location / {{ return 200 \"x\\n\"; }}
        }}
        server {{
            listen 127.0.0.1:{always};
            location / {{
                lingering_close always;
                lingering_time 2s;
                return 200 \"x\\n\";
            }}
        }}
        server {{
            listen 127.0.0.1:{on};
            location / {{ return 200 \"x\\n\"; }}
        }}"
    );
    let _b = Balancer::start_http(&conf, &[off, always, on]);
    let close = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";

    // off: the socket is gone once the response is out.
    let mut s = answered(off, close);
    let (_, failed) = write_after(&mut s, 16 * MB);
    assert!(reset(failed), "off: {failed:?}");

    // always: the server keeps reading what comes after the response...
    let mut s = answered(always, close);
    let started = Instant::now();
    assert_eq!(write_after(&mut s, 4 * MB), (4 * MB, None), "always");
    // ...until lingering_time (2s) has passed since it began.
    let (_, failed) = write_after(&mut s, usize::MAX);
    assert!(reset(failed), "always, after lingering_time: {failed:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(8),
        "lingered for {took:?}"
    );

    // on, with nothing more from the client: closed at once, as off.
    let mut s = answered(on, close);
    let (_, failed) = write_after(&mut s, 16 * MB);
    assert!(reset(failed), "on, no reason: {failed:?}");

    // on, with a pipelined request already read: the client is still
    // sending, so the server lingers.
    let mut pipelined = close.to_vec();
    pipelined.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut s = answered(on, &pipelined);
    assert_eq!(write_after(&mut s, 4 * MB), (4 * MB, None), "on, pipelined");
}

#[test]
fn lingering_timeout_ends_a_silent_linger() {
    let port = free_port();
    let conf = format!(
        "server {{
            listen 127.0.0.1:{port};
            lingering_close always;
            lingering_timeout 1s;
            location / {{ return 200 \"x\\n\"; }}
        }}"
    );
    let _b = Balancer::start_http(&conf, &[port]);
    let mut s = answered(
        port,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    // Read at first...
    assert_eq!(write_after(&mut s, MB), (MB, None));
    // ...then, once the client has said nothing for lingering_timeout,
    // closed: a write soon meets the reset.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    let mut failed = None;
    while Instant::now() < deadline && failed.is_none() {
        // One byte now and then: each is read, or meets the reset.
        std::thread::sleep(Duration::from_millis(1500));
        failed = s.write(b"x").err().map(|e| e.kind());
    }
    assert!(reset(failed), "{failed:?}");
}

#[test]
fn bad_values_are_refused_with_nginx_s_words() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("lingering_close x;", "invalid value \"x\" in {F}:3"),
        (
            "lingering_time x;",
            "\"lingering_time\" directive invalid value in {F}:3",
        ),
        (
            "lingering_timeout 5s; lingering_timeout 5s;",
            "\"lingering_timeout\" directive is duplicate in {F}:3",
        ),
        (
            "server { if ($uri) { lingering_close on; } }",
            "\"lingering_close\" directive is not allowed here in {F}:3",
        ),
    ];
    for (i, (directive, expected)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("case{i}.conf"));
        std::fs::write(&file, format!("events {{}}\nhttp {{\n  {directive}\n}}\n")).unwrap();
        let f = file.display().to_string();
        let out = Command::new(BIN).args(["-t", "-c", &f]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "case {i}: {err}");
        let expected = expected.replace("{F}", &f);
        assert!(err.contains(&expected), "case {i}: {err}");
    }
    // nginx matches the value without regard to case.
    let file = dir.path().join("upper.conf");
    std::fs::write(
        &file,
        "events {}\nhttp {\n  lingering_close ALWAYS;\n  server { listen 127.0.0.1:1; location / { lingering_close off; lingering_time 1s; lingering_timeout 100ms; } }\n}\n",
    )
    .unwrap();
    let f = file.display().to_string();
    let out = Command::new(BIN).args(["-t", "-c", &f]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_graceful_stop_does_not_wait_for_a_lingering_connection() {
    let port = free_port();
    let conf = format!(
        "server {{
            listen 127.0.0.1:{port};
            lingering_close always;
            lingering_timeout 30s;
            location / {{ return 200 \"x\\n\"; }}
        }}"
    );
    let mut b = Balancer::start_http(&conf, &[port]);
    let mut s = answered(
        port,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    // Lingering now: it reads what comes.
    assert_eq!(write_after(&mut s, MB), (MB, None));
    // SIGQUIT: nginx closes lingering connections as it exits, so the
    // stop takes far less than the 30s the linger could last.
    b.signal(3);
    assert!(
        b.wait(Duration::from_secs(10)).is_some(),
        "the stop waited for the lingering connection"
    );
}
