//! Names at run time, against a real DNS server (Debian's dnsmasq) that the
//! test starts on a loopback port and whose records it changes.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{free_port, get, Balancer, Echo};

/// A dnsmasq serving a hosts file and SRV records on 127.0.0.1:port.
struct Dnsmasq {
    child: Option<Child>,
    port: u16,
    hosts: PathBuf,
    srv: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    fn start(hosts: &str, srv: &[&str]) -> Dnsmasq {
        let dir = tempfile::tempdir().unwrap();
        let hosts_path = dir.path().join("hosts");
        std::fs::write(&hosts_path, hosts).unwrap();
        let mut d = Dnsmasq {
            child: None,
            port: free_port(),
            hosts: hosts_path,
            srv: srv.iter().map(|s| s.to_string()).collect(),
            _dir: dir,
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--local-ttl=1",
            "--user=root",
            "--pid-file=",
        ])
        .arg(format!("--port={}", self.port))
        .arg(format!("--addn-hosts={}", self.hosts.display()));
        for s in &self.srv {
            cmd.arg(format!("--srv-host={s}"));
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (Debian's dnsmasq-base; scripts/install-test-deps installs it)");
        self.child = Some(child);
        // dnsmasq answers on TCP too: accepting means ready.
        support::wait_for_port(
            SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_secs(10),
        );
    }

    /// Rewrites the hosts file and tells dnsmasq to re-read it.
    fn set_hosts(&self, hosts: &str) {
        std::fs::write(&self.hosts, hosts).unwrap();
        if let Some(c) = &self.child {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGHUP);
            }
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

fn conf(dns_port: u16, port: u16, upstream: &str) -> String {
    format!(
        "error_log logs/error.log info;\nevents {{}}\nhttp {{\naccess_log off;\n\
         resolver 127.0.0.1:{dns_port};\nresolver_timeout 2s;\nproxy_connect_timeout 1s;\n{upstream}\n\
         server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://app; }} }}\n}}\n"
    )
}

fn who(port: u16, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let r = get(port, "/");
            format!("{}:{}", r.status, r.header("x-served-by").unwrap_or("-"))
        })
        .collect()
}

/// Two echo backends on the same port at 127.0.0.1 and 127.0.0.2.
fn pair() -> (Echo, Echo, u16) {
    let a = Echo::start("a", "127.0.0.1:0");
    let port = a.addr.port();
    let b = Echo::start("b", &format!("127.0.0.2:{port}"));
    (a, b, port)
}

#[test]
fn a_peer_added_to_dns_gets_traffic_and_a_removed_one_stops() {
    let (_a, _b, backend_port) = pair();
    let dns = Dnsmasq::start("127.0.0.1 app.test\n", &[]);
    let port = free_port();
    let upstream = format!("upstream app {{ server app.test:{backend_port} resolve; }}");
    let balancer = Balancer::start_full(&conf(dns.port, port, &upstream), &[port], &[]);
    support::wait_until(Duration::from_secs(5), "app.test to resolve", || {
        who(port, 1) == ["200:a"]
    });
    assert!(who(port, 6).iter().all(|w| w == "200:a"));

    dns.set_hosts("127.0.0.1 app.test\n127.0.0.2 app.test\n");
    let added = Instant::now();
    support::wait_until(Duration::from_secs(5), "b to receive traffic", || {
        who(port, 2).contains(&"200:b".to_string())
    });
    // TTL is 1s: the new peer must be in within TTL + 1s.
    assert!(
        added.elapsed() < Duration::from_secs(2) + Duration::from_millis(500),
        "took {:?}",
        added.elapsed()
    );
    let mixed = who(port, 10);
    assert_eq!(
        mixed.iter().filter(|w| *w == "200:a").count(),
        5,
        "{mixed:?}"
    );

    dns.set_hosts("127.0.0.2 app.test\n");
    let removed = Instant::now();
    support::wait_until(
        Duration::from_secs(5),
        "a to stop receiving requests",
        || who(port, 4).iter().all(|w| w == "200:b"),
    );
    assert!(
        removed.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        removed.elapsed()
    );
    assert!(who(port, 10).iter().all(|w| w == "200:b"));
    let log = balancer.error_log_text();
    assert!(log.contains("added peer 127.0.0.2:"), "{log}");
    assert!(log.contains("removed peer 127.0.0.1:"), "{log}");
}

#[test]
fn srv_records_give_ports_weights_and_backups() {
    let a = Echo::start("a", "127.0.0.1:0");
    let b = Echo::start("b", "127.0.0.1:0");
    let c = Echo::start("c", "127.0.0.1:0");
    let srv = [
        format!("_http._tcp.svc.test,a.test,{},0,3", a.addr.port()),
        format!("_http._tcp.svc.test,b.test,{},0,1", b.addr.port()),
        // A worse priority: a backup.
        format!("_http._tcp.svc.test,c.test,{},1,1", c.addr.port()),
    ];
    let srv: Vec<&str> = srv.iter().map(String::as_str).collect();
    let dns = Dnsmasq::start("127.0.0.1 a.test b.test c.test\n", &srv);
    let port = free_port();
    let upstream = "upstream app { server svc.test service=http resolve; }";
    let _balancer = Balancer::start_full(&conf(dns.port, port, upstream), &[port], &[]);
    support::wait_until(Duration::from_secs(5), "the SRV records to resolve", || {
        who(port, 1)[0].starts_with("200:")
    });
    // Smooth weighted round robin over weights 3 and 1: exact counts.
    let seen = who(port, 40);
    assert_eq!(
        seen.iter().filter(|w| *w == "200:a").count(),
        30,
        "{seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|w| *w == "200:b").count(),
        10,
        "{seen:?}"
    );
    assert!(
        !seen.contains(&"200:c".to_string()),
        "the backup took traffic: {seen:?}"
    );
}

#[test]
fn dns_down_for_thirty_seconds_changes_nothing() {
    let (_a, _b, backend_port) = pair();
    let mut dns = Dnsmasq::start("127.0.0.1 app.test\n127.0.0.2 app.test\n", &[]);
    let port = free_port();
    let upstream = format!("upstream app {{ server app.test:{backend_port} resolve; }}");
    let balancer = Balancer::start_full(&conf(dns.port, port, &upstream), &[port], &[]);
    support::wait_until(Duration::from_secs(5), "both peers", || {
        let w = who(port, 2);
        w.contains(&"200:a".to_string()) && w.contains(&"200:b".to_string())
    });
    dns.stop();
    let until = Instant::now() + Duration::from_secs(30);
    let mut answered = 0;
    while Instant::now() < until {
        let w = who(port, 2);
        assert!(
            w.contains(&"200:a".to_string()) && w.contains(&"200:b".to_string()),
            "after {:?} without DNS: {w:?}",
            Duration::from_secs(30) - until.saturating_duration_since(Instant::now())
        );
        answered += 2;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(answered > 50);
    let log = balancer.error_log_text();
    assert!(log.contains("keeping 2 known address(es)"), "{log}");
}

#[test]
fn names_with_resolve_are_resolved_before_the_first_request() {
    let (_a, _b, backend_port) = pair();
    let dns = Dnsmasq::start("127.0.0.1 app.test\n127.0.0.2 app.test\n", &[]);
    let port = free_port();
    let upstream = format!("upstream app {{ server app.test:{backend_port} resolve; }}");
    // The pid file is up and the port accepts: the first lookup is done,
    // as for names without `resolve` (nginx resolves while reading its
    // configuration), so no request meets an empty upstream.
    let balancer = Balancer::start_full(&conf(dns.port, port, &upstream), &[port], &[]);
    let first = who(port, 2);
    assert!(
        first.contains(&"200:a".to_string()) && first.contains(&"200:b".to_string()),
        "{first:?}\n{}",
        balancer.error_log_text()
    );
}

/// `proxy_pass` with variables resolves the evaluated host at request time
/// through the location's `resolver` (a server block's resolver_timeout
/// serving it), with nginx's 502 and words for a name that does not exist
/// and for a location with no resolver.
#[test]
fn a_proxy_pass_with_variables_resolves_its_host_per_request() {
    let (_a, b, backend_port) = pair();
    let dns = Dnsmasq::start("127.0.0.2 app.test\n", &[]);
    let port = free_port();
    let lb = Balancer::start_full(
        &format!(
            "error_log logs/error.log info;\nevents {{}}\nhttp {{\naccess_log off;\n\
             server {{ listen 127.0.0.1:{port}; resolver_timeout 2s;\n\
               location /r/ {{ resolver 127.0.0.1:{};\n\
                 proxy_pass http://$arg_name:{backend_port}/; }}\n\
               location /none/ {{ proxy_pass http://$arg_name:{backend_port}; }}\n\
             }}\n}}\n",
            dns.port
        ),
        &[port],
        &[],
    );
    // The first answer may wait for dnsmasq's UDP side under load; a name
    // that resolved once must go on resolving (below).
    let mut first = None;
    support::wait_until(Duration::from_secs(10), "app.test resolved", || {
        let r = get(port, "/r/x?name=app.test");
        let ok = r.status == 200;
        first = Some(r);
        ok
    });
    let r = first.expect("a response");
    assert_eq!(
        r.header("x-served-by"),
        Some(b.name.as_str()),
        "{}",
        lb.error_log_text()
    );
    // The address a name resolves to follows DNS, request by request
    // (dnsmasq's answers live 1 s here).
    dns.set_hosts("127.0.0.1 app.test\n");
    support::wait_until(Duration::from_secs(10), "the new address", || {
        get(port, "/r/x?name=app.test").header("x-served-by") == Some("a")
    });
    let r = get(port, "/r/x?name=missing.test");
    assert_eq!(r.status, 502);
    let r = get(port, "/none/x?name=app.test");
    assert_eq!(r.status, 502);
    // This dnsmasq has no upstream: it refuses names it does not hold,
    // which nginx words as its resolver's code 5.
    support::wait_until(Duration::from_secs(5), "both error lines", || {
        let log = lb.error_log_text();
        log.contains("missing.test could not be resolved (5: Operation refused)")
            && log.contains("no resolver defined to resolve app.test")
    });
}

/// A stream `proxy_pass` with variables resolves its host with the
/// server's `resolver`; with no resolver the session ends (nginx's 500)
/// and the error log says why.
#[test]
fn a_stream_proxy_pass_with_variables_resolves_its_host() {
    let (_a, b, backend_port) = pair();
    let dns = Dnsmasq::start("127.0.0.2 app.test\n", &[]);
    let (port, none) = (free_port(), free_port());
    let lb = Balancer::start_full(
        &format!(
            "error_log logs/error.log info;\nevents {{}}\nstream {{\n\
             map $remote_addr $to {{ default app.test:{backend_port}; }}\n\
             server {{ listen 127.0.0.1:{port}; resolver 127.0.0.1:{}; proxy_pass $to; }}\n\
             server {{ listen 127.0.0.1:{none}; proxy_pass $to; }}\n}}\n",
            dns.port
        ),
        &[port, none],
        &[],
    );
    let r = get(port, "/");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-served-by"), Some(b.name.as_str()));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", none)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut rest);
    assert!(rest.is_empty());
    support::wait_until(Duration::from_secs(5), "the error line", || {
        lb.error_log_text()
            .contains("no resolver defined to resolve app.test")
    });
}
