//! Issue 3, the seed system end to end: `switchyard lab` with the embedded
//! seed config on :8080, the seed's curl twice, round robin between
//! `echogolem1` and `echogolem2`, their log lines on the lab's terminal, and
//! Ctrl-C leaving nothing behind.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use support::lab::Lab;
use support::{children_of, process_exists, raw, wait_for_port, wait_until};

/// Both tests need port 8080: one at a time.
static PORT_8080: Mutex<()> = Mutex::new(());

fn lock_8080() -> MutexGuard<'static, ()> {
    let guard = PORT_8080.lock().unwrap_or_else(|e| e.into_inner());
    // The seed config says `listen 8080;` (every address): it must be free.
    for addr in ["0.0.0.0:8080", "127.0.0.1:8080"] {
        if let Err(e) = TcpListener::bind(addr) {
            panic!(
                "port 8080 is already in use ({addr}: {e}): the seed lab listens on 8080, \
                 stop whatever holds it (`ss -ltnp 'sport = 8080'`) and run the test again"
            );
        }
    }
    guard
}

/// The seed's request, as curl sends it.
const SEED_REQUEST: &[u8] =
    b"POST / HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/8.5.0\r\n\
Accept: */*\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{\"foo\": \"bar\"}";

#[test]
fn seed_transcript() {
    let _port = lock_8080();
    let mut lab = Lab::start(&[]);
    let front = SocketAddr::from(([127, 0, 0, 1], 8080));
    wait_for_port(front, Duration::from_secs(20));

    let mut served_by = Vec::new();
    for _ in 0..2 {
        let r = raw(front, SEED_REQUEST).expect("the seed's POST");
        assert_eq!(r.status, 200, "{r:?}\nlab output:\n{}", lab.text());
        assert_eq!(r.header("content-length"), Some("15"));
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.text(), "{\"foo\": \"bar\"}\n");
        served_by.push(r.header("x-served-by").unwrap_or("").to_string());
    }
    assert_eq!(served_by, ["echogolem1", "echogolem2"]);

    // Every backend's Werkzeug line shows on the lab's terminal, prefixed.
    for name in ["echogolem1", "echogolem2"] {
        wait_until(Duration::from_secs(5), "the backends' log lines", || {
            lab.out.lock().unwrap().iter().any(|l| {
                l.contains(&format!("{name} |")) && l.contains("\"POST / HTTP/1.0\" 200 -")
            })
        });
    }

    // Ctrl-C at the terminal: SIGINT to the whole foreground group.
    let children = children_of(lab.child.id());
    assert!(
        children.len() >= 3,
        "expected two echo backends and a balancer under the lab, found {children:?}"
    );
    unsafe {
        libc::kill(-(lab.child.id() as i32), libc::SIGINT);
    }
    let code = lab.wait(Duration::from_secs(15));
    assert_eq!(code, 0, "lab output:\n{}", lab.text());
    let left: Vec<u32> = children
        .iter()
        .copied()
        .filter(|p| process_exists(*p))
        .collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
    wait_until(Duration::from_secs(5), "port 8080 to be released", || {
        TcpListener::bind("127.0.0.1:8080").is_ok()
    });
}

/// `kill -INT` on the lab alone (not its group) stops its children too.
#[test]
fn lab_sigint_to_the_lab_alone_stops_children() {
    let _port = lock_8080();
    let mut lab = Lab::start(&[]);
    wait_for_port(
        SocketAddr::from(([127, 0, 0, 1], 8080)),
        Duration::from_secs(20),
    );
    let children = children_of(lab.child.id());
    assert!(children.len() >= 3, "{children:?}");
    unsafe {
        libc::kill(lab.child.id() as i32, libc::SIGINT);
    }
    let code = lab.wait(Duration::from_secs(15));
    assert_eq!(code, 0, "lab output:\n{}", lab.text());
    let left: Vec<u32> = children
        .iter()
        .copied()
        .filter(|p| process_exists(*p))
        .collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

#[test]
fn lab_requests_prints_the_table() {
    let _port = lock_8080();
    let mut lab = Lab::start(&["--requests", "10"]);
    let code = lab.wait(Duration::from_secs(30));
    let text = lab.text();
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("10 requests through the balancer"), "{text}");
    let table = text
        .split_once("10 requests through the balancer:")
        .map(|(_, t)| t)
        .unwrap_or("");
    for name in ["echogolem1", "echogolem2"] {
        let row = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name} in:\n{text}"));
        let count = row.split_whitespace().nth(1);
        assert_eq!(count, Some("5"), "row {row:?} in:\n{text}");
    }
    assert!(!text.contains("failed"), "{text}");
}

/// Ctrl-C while the lab is still starting (a backend up, the balancer not
/// yet): it stops what it started and exits 0.
#[test]
fn lab_sigint_during_startup_exits_cleanly() {
    let _port = lock_8080();
    let mut lab = Lab::start(&[]);
    let lab_pid = lab.child.id();
    let mut started = Vec::new();
    wait_until(Duration::from_secs(10), "the first echo backend", || {
        started = children_of(lab_pid);
        !started.is_empty()
    });
    unsafe {
        libc::kill(lab_pid as i32, libc::SIGINT);
    }
    let code = lab.wait(Duration::from_secs(15));
    assert_eq!(code, 0, "lab output:\n{}", lab.text());
    let left: Vec<u32> = started
        .iter()
        .copied()
        .filter(|p| process_exists(*p))
        .collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
}
