//! Issue 13, the OpenShift load balancer: layer-4 balancing of the API
//! across control-plane nodes with the HTTPS `/readyz` check nginx OSS
//! cannot do, on loopback with `switchyard echo --tls` as the nodes.

mod support;

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use support::lab::Lab;
use support::loopback::LoopbackOnly;
use support::{free_port, wait_until, Balancer, Echo, BIN};

/// One HTTPS request through the balancer (TLS passed through to a node);
/// the node that answered, or `-` when none did.
fn served_by(port: u16) -> String {
    let out = Command::new("curl")
        .args([
            "-sk",
            "-m",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%header{x-served-by}",
        ])
        .arg(format!("https://127.0.0.1:{port}/version"))
        .output()
        .expect("curl (scripts/install-test-deps installs it)");
    let who = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if who.is_empty() {
        "-".to_string()
    } else {
        who
    }
}

fn served_by_n(port: u16, n: usize) -> Vec<String> {
    (0..n).map(|_| served_by(port)).collect()
}

/// Switches a node's `/readyz` (its TLS echo) to `status`.
fn set_readyz(node: &Echo, status: u16) {
    let out = Command::new("curl")
        .args(["-sk", "-m", "5", "-X", "POST"])
        .arg(format!("https://{}/readyz?status={status}", node.addr))
        .output()
        .expect("curl");
    assert!(out.status.success(), "{out:?}");
}

/// Three control-plane nodes, round robin; a node whose `/readyz` fails
/// leaves within interval x fails (plus a probe's round trip), gets no new
/// connection while it is out, and comes back after `passes` good probes.
#[test]
fn a_node_failing_readyz_leaves_the_api_pool_and_comes_back() {
    let nodes: Vec<Echo> = (0..3)
        .map(|i| {
            Echo::start_with(
                &format!("master{i}"),
                &format!("127.0.0.{}:0", i + 2),
                &["--tls"],
            )
        })
        .collect();
    let port = free_port();
    let servers: String = nodes
        .iter()
        .map(|n| format!("        server {};\n", n.addr))
        .collect();
    let conf = format!(
        "error_log logs/error.log info;\nevents {{}}\nstream {{\n    upstream api {{\n{servers}    }}\n    \
         server {{\n        listen 127.0.0.1:{port};\n        proxy_pass api;\n        \
         health_check interval=300ms fails=2 passes=2 uri=/readyz ssl;\n    }}\n}}\n"
    );
    let balancer = Balancer::start_full(&conf, &[port], &[]);
    let mut seen = served_by_n(port, 6);
    seen.sort();
    assert_eq!(
        seen,
        ["master0", "master0", "master1", "master1", "master2", "master2"],
        "round robin across the three nodes"
    );

    set_readyz(&nodes[1], 503);
    let failed = Instant::now();
    wait_until(Duration::from_secs(10), "master1 to leave the pool", || {
        served_by_n(port, 3).iter().all(|n| n != "master1")
    });
    // interval x fails = 600 ms; one interval of phase, the probes and the
    // requests that noticed it add to that.
    assert!(
        failed.elapsed() < Duration::from_secs(3),
        "took {:?}",
        failed.elapsed()
    );
    let out = served_by_n(port, 10);
    assert!(
        out.iter().all(|n| n == "master0" || n == "master2"),
        "{out:?}"
    );
    let log = balancer.error_log_text();
    assert!(
        log.contains(&format!(
            "peer {} of upstream \"api\" is unhealthy: status 503 (health check: GET /readyz over TLS)",
            nodes[1].addr
        )),
        "{log}"
    );

    set_readyz(&nodes[1], 200);
    wait_until(Duration::from_secs(10), "master1 to come back", || {
        served_by_n(port, 3).iter().any(|n| n == "master1")
    });
    assert!(balancer.error_log_text().contains("is healthy again"));
}

/// A stream health check with no `uri=` only connects (nginx Plus's
/// default): a node that stops listening leaves the pool, and the sessions
/// go to the other.
#[test]
fn a_connect_probe_takes_a_dead_node_out() {
    let a = Echo::start_with("a", "127.0.0.1:0", &["--mode", "tcp", "--tag"]);
    let mut b = Echo::start_with("b", "127.0.0.1:0", &["--mode", "tcp", "--tag"]);
    let port = free_port();
    let conf = format!(
        "error_log logs/error.log info;\nevents {{}}\nstream {{\n    upstream nodes {{\n        \
         server {};\n        server {};\n    }}\n    server {{\n        listen 127.0.0.1:{port};\n        \
         proxy_pass nodes;\n        proxy_next_upstream off;\n        health_check interval=200ms fails=1 passes=1;\n    }}\n}}\n",
        a.addr, b.addr
    );
    let balancer = Balancer::start_full(&conf, &[port], &[]);
    let first_line = || -> String {
        let Ok(s) = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))) else {
            return "-".into();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        // The tag line comes first; the session is dropped after it (a
        // half-close would end it at once: proxy_half_close is off).
        let mut line = String::new();
        let _ = std::io::BufReader::new(s).read_line(&mut line);
        match line.trim() {
            "" => "-".to_string(),
            who => who.to_string(),
        }
    };
    let both: Vec<String> = (0..4).map(|_| first_line()).collect();
    assert!(
        both.contains(&"a".to_string()) && both.contains(&"b".to_string()),
        "{both:?}"
    );
    b.kill();
    wait_until(Duration::from_secs(5), "b to leave the pool", || {
        (0..4).all(|_| first_line() == "a")
    });
    // The probe's verdict, whether or not a failed session noticed first.
    wait_until(
        Duration::from_secs(5),
        "the probe to mark b unhealthy",
        || {
            balancer.error_log_text().contains(&format!(
            "peer {} of upstream \"nodes\" is unhealthy: connect() failed (111: Connection refused) (health check: connect)",
            b.addr
        ))
        },
    );
}

/// A reload while a session is open does not cut it: the bytes sent after
/// the reload still come back from the same backend.
#[test]
fn a_reload_does_not_cut_an_established_session() {
    let node = Echo::start_with("n", "127.0.0.1:0", &["--mode", "tcp"]);
    let port = free_port();
    let conf = |timeout: &str| {
        format!(
            "error_log logs/error.log info;\nevents {{}}\nstream {{\n    server {{\n        \
             listen 127.0.0.1:{port};\n        proxy_pass {};\n        proxy_timeout {timeout};\n    }}\n}}\n",
            node.addr
        )
    };
    let balancer = Balancer::start_full(&conf("30s"), &[port], &[]);
    let mut s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut roundtrip = |text: &[u8]| {
        s.write_all(text).unwrap();
        let mut back = vec![0u8; text.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, text);
    };
    roundtrip(b"before the reload\n");
    balancer.rewrite_conf(&conf("31s"));
    balancer.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(10), "the reload to be done", || {
        balancer.error_log_text().contains("reconfiguring")
    });
    roundtrip(b"after the reload\n");
    roundtrip(b"and once more\n");
}

/// `switchyard lab -c examples/openshift-upi/nginx.conf` simulates the
/// cluster: HTTPS nodes behind 6443 and 22623 in round robin (bootstrap
/// included), routers behind 80 and 443 with their 1936 readiness port, a
/// client kept on one router by the hash of its address; the lab reports
/// which node took each session.
#[test]
fn the_openshift_example_runs_in_the_lab() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/openshift-upi/nginx.conf"
    );
    // The example listens on the cluster's fixed ports (80, 443, 6443,
    // 22623) and names addresses off this machine: a loopback-only namespace.
    let ns = LoopbackOnly::create("ocp");
    let mut lab = Lab::spawn(
        Command::new("ip")
            .args(["netns", "exec", &ns.0, BIN])
            .args(["lab", "-c", example, "--requests", "16"]),
    );
    let code = lab.wait(Duration::from_secs(60));
    let text = lab.text();
    assert_eq!(code, 0, "{text}");
    let row = |label: &str| -> Vec<u64> {
        text.lines()
            .filter(|l| l.trim_start().starts_with(label))
            .filter_map(|l| l.split_whitespace().nth(3)?.parse().ok())
            .collect()
    };
    // 4 sessions to each port, the four API nodes in turn.
    for port in [":6443", ":22623"] {
        for node in ["192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13"] {
            assert_eq!(
                row(&format!("{port} -> {node} ")),
                [1],
                "{port} {node}:\n{text}"
            );
        }
    }
    // One client address: one router per port, all 4 of its sessions.
    for port in [":443", ":80"] {
        assert_eq!(row(&format!("{port} -> 192.0.2.2")), [4], "{port}:\n{text}");
    }
    // The routers' readiness port answered the checks.
    assert!(
        text.contains("\"GET /healthz/ready HTTP/1.1\" 200"),
        "{text}"
    );
    assert!(!text.contains("failed"), "{text}");
}

/// `ssl_preread` routes port 443 by SNI with TLS passed through (several
/// clusters behind one address): `map $ssl_preread_server_name` picks the
/// group, the client's TLS session reaches the node whole, and a client
/// that sends no TLS hello goes to the default.
#[test]
fn ssl_preread_routes_by_server_name() {
    let prod = Echo::start_with("prod-router", "127.0.0.2:0", &["--tls"]);
    let test = Echo::start_with("test-router", "127.0.0.3:0", &["--tls"]);
    let plain = Echo::start("plain", "127.0.0.4:0");
    let port = free_port();
    let conf = format!(
        "error_log logs/error.log info;\nevents {{}}\nstream {{\n    \
         log_format sni '$ssl_preread_server_name $ssl_preread_protocol \"$ssl_preread_alpn_protocols\" $upstream_addr';\n    \
         access_log logs/sni.log sni;\n    \
         map $ssl_preread_server_name $cluster {{\n        ~\\.prod\\.test$ prod;\n        \
         ~\\.test\\.test$ test;\n        default plain;\n    }}\n    \
         upstream prod {{ server {}; }}\n    upstream test {{ server {}; }}\n    upstream plain {{ server {}; }}\n    \
         server {{\n        listen 127.0.0.1:{port};\n        ssl_preread on;\n        proxy_pass $cluster;\n    }}\n}}\n",
        prod.addr, test.addr, plain.addr
    );
    let balancer = Balancer::start_full(&conf, &[port], &[]);
    let via = |host: &str| -> String {
        let out = Command::new("curl")
            .args([
                "-sk",
                "-m",
                "5",
                "--http1.1",
                "-o",
                "/dev/null",
                "-w",
                "%header{x-served-by}",
            ])
            .arg("--resolve")
            .arg(format!("{host}:{port}:127.0.0.1"))
            .arg(format!("https://{host}:{port}/"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(via("console.apps.prod.test"), "prod-router");
    assert_eq!(via("console.apps.test.test"), "test-router");
    // Plain HTTP has no hello: no SNI, the default group.
    assert_eq!(support::get(port, "/").header("x-served-by"), Some("plain"));
    let read_log =
        || std::fs::read_to_string(balancer.dir.path().join("logs/sni.log")).unwrap_or_default();
    wait_until(Duration::from_secs(5), "three sessions logged", || {
        read_log().lines().count() >= 3
    });
    let log = read_log();
    assert!(
        log.lines()
            .any(|l| l.starts_with("console.apps.prod.test TLSv1.3 \"http/1.1\" ")),
        "{log}"
    );
    assert!(log.lines().any(|l| l.starts_with("- - \"-\" ")), "{log}");

    // Half a hello, then the client shuts its side: the preread ends at once
    // (nginx's pending EOF), not at preread_timeout.
    let mut s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    s.write_all(&[0x16, 3, 1, 0, 200, 1]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
