//! Issue 13: the stream module against Debian's nginx with its stream
//! module, on one config file run by both: the same backends in the same
//! order for weighted round robin and consistent hashing, the same
//! `$status` and access-log line for a session that is proxied, refused by
//! its upstream, denied and answered by `return`, and the same error-log
//! words for the refused connect.

mod support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use support::nginx::Nginx;
use support::{free_port, wait_until, Balancer, Echo};

const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// One session: the backend's tag line (empty when the session was closed
/// without one).
fn session(port: u16) -> String {
    let Ok(s) = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))) else {
        return "(refused)".into();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let _ = BufReader::new(s).read_line(&mut line);
    line.trim().to_string()
}

/// What a client sees, per server: the answers of its sessions in order.
fn sessions(ports: &Ports) -> Vec<(u16, Vec<String>)> {
    vec![
        (
            ports.weighted,
            (0..8).map(|_| session(ports.weighted)).collect(),
        ),
        (
            ports.sticky,
            (0..4).map(|_| session(ports.sticky)).collect(),
        ),
        (ports.dead, vec![session(ports.dead)]),
        (ports.denied, vec![session(ports.denied)]),
        (ports.returns, vec![session(ports.returns)]),
    ]
}

struct Ports {
    weighted: u16,
    sticky: u16,
    dead: u16,
    denied: u16,
    returns: u16,
}

/// The lines of `file` once it has `n` of them (sessions are logged when
/// they end, a moment after the client saw the close).
fn lines_when(file: &Path, n: usize) -> Vec<String> {
    let read = || {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    wait_until(Duration::from_secs(10), "the sessions to be logged", || {
        read().len() >= n
    });
    read()
}

/// The error-log line of the refused connect, from its message on (the
/// time, pid and connection number before it differ).
fn refused_line(log: &str) -> String {
    log.lines()
        .find(|l| l.contains("connect() failed"))
        .and_then(|l| l.split_once("connect() failed"))
        .map(|(_, rest)| format!("connect() failed{rest}"))
        .unwrap_or_else(|| panic!("no connect() failed line in:\n{log}"))
}

#[test]
fn balancers_status_and_log_lines_match_nginx() {
    assert!(
        Path::new(STREAM_MODULE).exists(),
        "{STREAM_MODULE} is missing: scripts/install-test-deps installs libnginx-mod-stream"
    );
    let a = Echo::start_with("a", "127.0.0.1:0", &["--mode", "tcp", "--tag"]);
    let b = Echo::start_with("b", "127.0.0.1:0", &["--mode", "tcp", "--tag"]);
    let c = Echo::start_with("c", "127.0.0.1:0", &["--mode", "tcp", "--tag"]);
    let dead = free_port();
    let ports = Ports {
        weighted: free_port(),
        sticky: free_port(),
        dead: free_port(),
        denied: free_port(),
        returns: free_port(),
    };
    // One file for both; only `daemon off;` differs (the harness passes it
    // to switchyard on its command line).
    let conf = format!(
        "load_module {STREAM_MODULE};\nmaster_process off;\nworker_processes 1;\npid logs/nginx.pid;\n\
         error_log logs/error.log info;\nevents {{}}\nstream {{\n\
         log_format s '$server_port $upstream_addr $status $bytes_sent $bytes_received';\n\
         access_log logs/stream.log s;\n\
         upstream weighted {{ server {a}; server {b} weight=2; server {c}; }}\n\
         upstream sticky {{ hash $remote_addr consistent; server {a}; server {b}; server {c}; }}\n\
         upstream dead {{ server 127.0.0.1:{dead}; }}\n\
         server {{ listen 127.0.0.1:{}; proxy_pass weighted; }}\n\
         server {{ listen 127.0.0.1:{}; proxy_pass sticky; }}\n\
         server {{ listen 127.0.0.1:{}; proxy_pass dead; }}\n\
         server {{ listen 127.0.0.1:{}; deny 127.0.0.1; proxy_pass weighted; }}\n\
         server {{ listen 127.0.0.1:{}; return \"hello\\n\"; }}\n}}\n",
        ports.weighted,
        ports.sticky,
        ports.dead,
        ports.denied,
        ports.returns,
        a = a.addr,
        b = b.addr,
        c = c.addr,
    );
    // The sessions, and the readiness probe's (a connect and a close).
    let logged = 1 + 8 + 4 + 1 + 1 + 1;

    let nginx = Nginx::start_conf(&format!("daemon off;\n{conf}"), ports.returns);
    let nginx_seen = sessions(&ports);
    let nginx_log = lines_when(&nginx.dir_path().join("logs/stream.log"), logged);
    let nginx_refused = refused_line(&nginx.log_lines("logs/error.log").join("\n"));
    drop(nginx);

    let ours = Balancer::start_full(&conf, &[ports.returns], &[]);
    let our_seen = sessions(&ports);
    let our_log = lines_when(&ours.dir.path().join("logs/stream.log"), logged);
    let our_refused = refused_line(&ours.error_log_text());

    assert_eq!(our_seen, nginx_seen, "what the client saw");
    // nginx's smooth weighted round robin: b twice as often, interleaved.
    assert_eq!(nginx_seen[0].1, ["b", "a", "c", "b", "b", "a", "c", "b"]);
    assert_eq!(our_log, nginx_log, "the access log");
    assert_eq!(our_refused, nginx_refused, "the error log");
    for (status, port) in [
        ("200", ports.weighted),
        ("502", ports.dead),
        ("403", ports.denied),
        ("200", ports.returns),
    ] {
        assert!(
            our_log
                .iter()
                .any(|l| l.starts_with(&format!("{port} ")) && l.contains(&format!(" {status} "))),
            "no {status} for :{port} in {our_log:#?}"
        );
    }
}
