//! 10,000 slowloris connections on one listener: every one sends part of a
//! request head and then nothing. Normal clients must still get answers,
//! and the balancer's memory stays under a documented bound
//! (docs/limits.md). Loopback only, bounded in count and time.

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::{free_port, get, Balancer, Echo};

const SLOW_CLIENTS: usize = 10_000;
/// The documented bound for 10,000 idle, half-sent connections.
const RSS_BOUND_KIB: u64 = 512 * 1024;

fn raise_nofile() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    limit.rlim_cur
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn ten_thousand_slowloris_connections_do_not_stop_normal_clients() {
    let nofile = raise_nofile();
    assert!(
        nofile >= (SLOW_CLIENTS as u64) + 1000,
        "the open-file limit ({nofile}) is too low for {SLOW_CLIENTS} connections"
    );
    let echo = Echo::start("e", "127.0.0.1:0");
    let port = free_port();
    let conf = format!(
        "error_log logs/error.log warn;\nworker_rlimit_nofile {nofile};\nevents {{ worker_connections 16384; }}\n\
         http {{\naccess_log off;\nclient_header_timeout 60s;\n\
         server {{ listen 127.0.0.1:{port} backlog=4096; location / {{ proxy_pass http://{}; }} }}\n}}\n",
        echo.addr
    );
    let balancer = Balancer::start_full(&conf, &[port], &[]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let baseline = rss_kib(balancer.pid());

    let started = Instant::now();
    let mut slow = Vec::with_capacity(SLOW_CLIENTS);
    for i in 0..SLOW_CLIENTS {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("slow client {i}: {e}"));
        // Part of a head, never finished.
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: slow\r\nX-Slow: ");
        slow.push(s);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "opening took too long"
        );
    }
    // Every slow connection is accepted and waiting on its head.
    support::wait_until(
        Duration::from_secs(20),
        "the slow connections to be accepted",
        || get(port, "/").status == 200,
    );
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let r = get(port, "/");
        worst = worst.max(t.elapsed());
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-served-by"), Some("e"));
    }
    assert!(
        worst < Duration::from_secs(2),
        "a normal request took {worst:?}"
    );
    let held = rss_kib(balancer.pid());
    eprintln!(
        "{SLOW_CLIENTS} slowloris connections: RSS {baseline} KiB -> {held} KiB ({} bytes per connection); worst normal request {worst:?}",
        held.saturating_sub(baseline) * 1024 / SLOW_CLIENTS as u64
    );
    assert!(
        held < RSS_BOUND_KIB,
        "RSS {held} KiB over the documented {RSS_BOUND_KIB} KiB"
    );
    drop(slow);
}
