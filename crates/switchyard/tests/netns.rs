//! Issue 5, the seed's network for real: each echo backend runs in its own
//! network namespace with its own address (as podman gave each container
//! one on `echogolemnet`), names come from a DNS server the test starts
//! (dnsmasq on a loopback port), and switchyard in front balances
//! `echogolem1:8080` and `echogolem2:8080` by name. Then one backend's link
//! is cut, and brought back.
//!
//! The addresses are a private test subnet, 10.231.0.0/16, one /30 per
//! backend (host side .1, namespace side .2): that traffic only reaches the
//! namespaces the test created. So that a cut link never sends packets out
//! of the default route, every /30 also gets an `unreachable` route with a
//! high metric in the root namespace, used only while the link is down.
//!
//! Names hold the pid (`switchyard-test-PID-TAG-echogolemN`, veths
//! `syPIDtTAGN`) and each run picks /30s no address or route uses, so
//! parallel runs do not collide. Everything is removed on drop, also when a
//! test panics; only a run killed outright leaves its namespaces behind
//! (`ip netns del NAME` removes one, its veth and its echo go with it).
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and iproute2. Where namespaces
//! cannot be created, the tests print `SKIPPED: cannot create network
//! namespaces: <reason>` (to the real stderr, visible even when cargo
//! captures output) and return. `SWITCHYARD_TEST_NO_NETNS=<reason>` forces
//! that path, to check it.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{free_port, get, post, wait_until, Balancer, Response, BIN};

/// The metric of the guard routes (any value above the connected route's 0).
const GUARD_METRIC: &str = "4231";
/// `fail_timeout` of both peers.
const FAIL_TIMEOUT: Duration = Duration::from_secs(2);
/// `proxy_connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a link stays cut.
const CUT_FOR: Duration = Duration::from_secs(5);

/// Runs `ip ARGS...`; the trimmed stderr on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Like `ip`, but a failure is a test failure.
fn ip_ok(args: &[&str]) {
    if let Err(e) = ip(args) {
        panic!("{e}");
    }
}

/// Says why the test does not run, where it cannot be missed, and lets the
/// caller return.
fn skipped(reason: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: cannot create network namespaces: {reason}"
    );
}

/// A /30 of 10.231.0.0/16 no interface uses yet, starting from a point
/// that depends on the pid so that parallel runs start apart.
fn free_subnet(taken: &mut Vec<Ipv4Addr>) -> Ipv4Addr {
    // Addresses, and routes (a run killed with SIGKILL leaves its guard route).
    let mut listing = String::new();
    for args in [["-4", "-o", "addr", "show"], ["-4", "-o", "route", "show"]] {
        let out = Command::new("ip").args(args).output().expect("ip");
        listing.push(' ');
        listing.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    let start = (std::process::id() * 8) % 16384;
    for i in 0..16384 {
        let index = (start + i) % 16384;
        // Skip 10.231.0.0/30 (a network address of the whole /16).
        if index == 0 {
            continue;
        }
        let base = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 231, 0, 0)) + index * 4);
        let host = Ipv4Addr::from(u32::from(base) + 1);
        let peer = Ipv4Addr::from(u32::from(base) + 2);
        if taken.contains(&base)
            || listing.contains(&format!(" {host}/"))
            || listing.contains(&format!(" {peer}/"))
            || listing.contains(&format!(" {base}/30 "))
        {
            continue;
        }
        taken.push(base);
        return base;
    }
    panic!("no free /30 left in 10.231.0.0/16");
}

/// A network namespace joined to the root namespace by a veth pair:
/// `host` (root side, address .1) and `eth0` inside (address .2).
struct Netns {
    name: String,
    host_veth: String,
    subnet: Ipv4Addr,
    /// Everything created so far, undone in reverse order on drop.
    created: Vec<Vec<String>>,
}

impl Netns {
    /// Creates the namespace; `Err` only when the namespace itself cannot be
    /// created (the skip case): any later failure panics.
    fn create(name: &str, host_veth: &str, subnet: Ipv4Addr) -> Result<Netns, String> {
        ip(&["netns", "add", name])?;
        let mut ns = Netns {
            name: name.to_string(),
            host_veth: host_veth.to_string(),
            subnet,
            created: vec![to_args(&["netns", "del", name])],
        };
        let peer_tmp = format!("{host_veth}p");
        ip_ok(&[
            "link", "add", host_veth, "type", "veth", "peer", "name", &peer_tmp,
        ]);
        // Deleting one end deletes both, also once the peer is inside.
        ns.created.push(to_args(&["link", "del", host_veth]));
        ip_ok(&["link", "set", &peer_tmp, "netns", name]);
        ns.exec(&["ip", "link", "set", &peer_tmp, "name", "eth0"]);
        let host_cidr = format!("{}/30", ns.host_addr());
        let peer_cidr = format!("{}/30", ns.addr());
        ip_ok(&["addr", "add", &host_cidr, "dev", host_veth]);
        ns.exec(&["ip", "addr", "add", &peer_cidr, "dev", "eth0"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns.exec(&["ip", "link", "set", "eth0", "up"]);
        ip_ok(&["link", "set", host_veth, "up"]);
        // While the host side is down its connected route is gone: without
        // this, packets for the /30 would take the default route out.
        let net = format!("{subnet}/30");
        ip_ok(&["route", "add", "unreachable", &net, "metric", GUARD_METRIC]);
        ns.created.push(to_args(&[
            "route",
            "del",
            "unreachable",
            &net,
            "metric",
            GUARD_METRIC,
        ]));
        Ok(ns)
    }

    /// The host side's address (the echo sees requests come from it).
    fn host_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.subnet) + 1)
    }

    /// The namespace's address (what DNS gives for the backend's name).
    fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.subnet) + 2)
    }

    /// Runs a command inside the namespace; a failure panics.
    fn exec(&self, cmd: &[&str]) {
        let mut args = vec!["netns", "exec", self.name.as_str()];
        args.extend_from_slice(cmd);
        ip_ok(&args);
    }
}

fn to_args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

impl Drop for Netns {
    fn drop(&mut self) {
        for undo in self.created.drain(..).rev() {
            let args: Vec<&str> = undo.iter().map(String::as_str).collect();
            if let Err(e) = ip(&args) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// `switchyard echo --listen 0.0.0.0:8080 --name NAME` inside a namespace,
/// started as `ip netns exec NS ...` (which execs it: the child is the echo).
struct NsEcho {
    child: Child,
    /// Its stdout (access log) lines so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl NsEcho {
    fn start(ns: &Netns, name: &str) -> NsEcho {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, BIN, "echo"])
            .args(["--listen", "0.0.0.0:8080", "--name", name])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ip netns exec ... switchyard echo");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let ready = lines
            .next()
            .map(|l| l.unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(
            ready,
            format!("echo: listening on 0.0.0.0:8080 as {name}"),
            "unexpected ready line from the echo in {}",
            ns.name
        );
        std::thread::spawn(move || for _ in lines {});
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        NsEcho { child, log }
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for NsEcho {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One seed backend: its namespace and the echo inside. The echo is
/// declared first so that it dies before its namespace is deleted.
struct Backend {
    echo: NsEcho,
    ns: Netns,
    name: String,
}

/// dnsmasq on a loopback port serving one hosts file (as in tests/dns.rs).
struct Dnsmasq {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    fn start(hosts: &str) -> Dnsmasq {
        let dir = tempfile::tempdir().unwrap();
        let hosts_path: PathBuf = dir.path().join("hosts");
        std::fs::write(&hosts_path, hosts).unwrap();
        let port = free_port();
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--local-ttl=1",
                "--user=root",
                "--pid-file=",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--addn-hosts={}", hosts_path.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (Debian's dnsmasq-base; scripts/install-test-deps installs it)");
        let d = Dnsmasq {
            child,
            port,
            _dir: dir,
        };
        support::wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(10));
        d
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The seed's topology, for one test.
struct Seed {
    // Dropped in this order: balancer, DNS, backends (echo, then namespace).
    balancer: Balancer,
    _dns: Dnsmasq,
    backends: Vec<Backend>,
    port: u16,
}

/// Distinguishes the tests of one process (they share the pid).
static NEXT_TAG: AtomicU32 = AtomicU32::new(0);
/// Serializes subnet choice between the tests of one process.
static SUBNETS: Mutex<Vec<Ipv4Addr>> = Mutex::new(Vec::new());

impl Seed {
    /// Builds it, or says why it cannot (the skip case).
    fn start() -> Result<Seed, String> {
        if let Ok(reason) = std::env::var("SWITCHYARD_TEST_NO_NETNS") {
            return Err(format!("forced by SWITCHYARD_TEST_NO_NETNS={reason:?}"));
        }
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            return Err(format!("not root (euid {euid})"));
        }
        let pid = std::process::id();
        let tag = NEXT_TAG.fetch_add(1, Ordering::Relaxed);
        let mut backends = Vec::new();
        for n in 1..=2 {
            let name = format!("echogolem{n}");
            let subnet = free_subnet(&mut SUBNETS.lock().unwrap_or_else(|e| e.into_inner()));
            // veth names have at most 15 bytes: "sy" + pid (<= 7) + 't' + tag + n.
            let ns = Netns::create(
                &format!("switchyard-test-{pid}-{tag}-{name}"),
                &format!("sy{pid}t{tag}{n}"),
                subnet,
            )?;
            let echo = NsEcho::start(&ns, &name);
            backends.push(Backend { echo, ns, name });
        }
        let hosts: String = backends
            .iter()
            .map(|b| format!("{} {}\n", b.ns.addr(), b.name))
            .collect();
        let dns = Dnsmasq::start(&hosts);
        let port = free_port();
        let fail_timeout = FAIL_TIMEOUT.as_secs();
        let connect_timeout = CONNECT_TIMEOUT.as_secs();
        // The seed's nginx.conf, with names resolved at run time.
        let conf = format!(
            "error_log logs/error.log info;\n\
             events {{}}\n\
             http {{\n\
             access_log logs/access.log;\n\
             resolver 127.0.0.1:{dns};\n\
             resolver_timeout 2s;\n\
             proxy_connect_timeout {connect_timeout}s;\n\
             upstream echogolem {{\n\
                 server echogolem1:8080 resolve fail_timeout={fail_timeout}s;\n\
                 server echogolem2:8080 resolve fail_timeout={fail_timeout}s;\n\
             }}\n\
             server {{\n\
                 listen 127.0.0.1:{port};\n\
                 location / {{\n\
                     proxy_pass http://echogolem;\n\
                 }}\n\
             }}\n\
             }}\n",
            dns = dns.port
        );
        let balancer = Balancer::start_full(&conf, &[port], &[]);
        Ok(Seed {
            balancer,
            _dns: dns,
            backends,
            port,
        })
    }

    /// `GET /`: who answered, and how long it took.
    fn who(&self) -> (String, Duration) {
        let started = Instant::now();
        let r = get(self.port, "/");
        let took = started.elapsed();
        (served_by(&r), took)
    }

    fn who_n(&self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.who().0).collect()
    }
}

/// `STATUS:X-Served-By`.
fn served_by(r: &Response) -> String {
    format!("{}:{}", r.status, r.header("x-served-by").unwrap_or("-"))
}

/// Both backends answer, strictly one after the other.
fn assert_alternates(seen: &[String]) {
    for w in seen {
        assert!(
            w == "200:echogolem1" || w == "200:echogolem2",
            "not a backend's answer: {seen:?}"
        );
    }
    for pair in seen.windows(2) {
        assert_ne!(pair[0], pair[1], "round robin did not alternate: {seen:?}");
    }
}

/// How many of the echo's access log lines show `request` coming from the
/// host side of its veth, in the seed's shape:
/// `10.88.2.6 - - [27/Dec/2020 17:31:50] "POST / HTTP/1.0" 200 - echogolem1`.
fn log_lines_from(b: &Backend, request: &str) -> usize {
    let prefix = format!("{} - - [", b.ns.host_addr());
    let middle = format!("] \"{request} HTTP/1.0\" 200 - {}", b.name);
    b.echo
        .lines()
        .iter()
        .filter(|l| l.starts_with(&prefix) && l.contains(&middle))
        .count()
}

/// How a link is cut.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// `ip link set HOSTVETH down` in the root namespace: the route is gone,
    /// connect() fails at once (113: No route to host, by the guard route).
    HostSideDown,
    /// `ip link set eth0 down` inside the namespace: the host side keeps its
    /// route but loses carrier, SYNs vanish, connect() times out (1s); once
    /// ARP has given up, connect() fails at once (113: No route to host).
    NamespaceSideDown,
}

impl Cut {
    fn apply(self, b: &Backend, up: bool) {
        let state = if up { "up" } else { "down" };
        match self {
            Cut::HostSideDown => ip_ok(&["link", "set", &b.ns.host_veth, state]),
            Cut::NamespaceSideDown => b.ns.exec(&["ip", "link", "set", "eth0", state]),
        }
    }
}

fn seed_network_survives_a_cut_link(cut: Cut) {
    let test_started = Instant::now();
    let seed = match Seed::start() {
        Ok(seed) => seed,
        Err(reason) => return skipped(&reason),
    };
    let setup = test_started.elapsed();
    let (one, two) = (&seed.backends[0], &seed.backends[1]);

    // The names were resolved before the balancer's pid file appeared: the
    // very first requests alternate between the two namespaces.
    let seen = seed.who_n(10);
    assert_alternates(&seen);
    // Each request crossed its veth: the echo saw the host side's address.
    for b in &seed.backends {
        wait_until(Duration::from_secs(2), "the echo log lines", || {
            log_lines_from(b, "GET /") >= 5
        });
    }

    // The seed's request: `http localhost:8080 foo=bar`, once per backend.
    let mut answered = Vec::new();
    for _ in 0..2 {
        let r = post(seed.port, "/", br#"{"foo": "bar"}"#);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some("15"), "{r:?}");
        assert_eq!(r.text(), "{\"foo\": \"bar\"}\n");
        answered.push(served_by(&r));
    }
    assert_alternates(&answered);
    for b in &seed.backends {
        wait_until(Duration::from_secs(2), "the POST log line", || {
            log_lines_from(b, "POST /") == 1
        });
    }

    // Cut echogolem1's link: every request still succeeds, on echogolem2.
    let before = one.echo.lines().len();
    let two_before = log_lines_from(two, "GET /");
    let cut_at = Instant::now();
    cut.apply(one, false);
    let mut slow = 0;
    let mut requests = 0;
    let mut slowest = Duration::ZERO;
    while cut_at.elapsed() < CUT_FOR {
        let (w, took) = seed.who();
        assert_eq!(w, "200:echogolem2", "request {requests} after the cut");
        requests += 1;
        slowest = slowest.max(took);
        if took > CONNECT_TIMEOUT / 2 {
            slow += 1;
        }
        // The dead peer costs at most one connect timeout per attempt.
        assert!(
            took < CONNECT_TIMEOUT + Duration::from_millis(500),
            "request {requests} took {took:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        one.echo.lines().len(),
        before,
        "echogolem1 answered while cut"
    );
    wait_until(Duration::from_secs(2), "echogolem2's log lines", || {
        log_lines_from(two, "GET /") == two_before + requests
    });
    // It is tried again once per fail_timeout, not more.
    let windows = (CUT_FOR.as_millis() / FAIL_TIMEOUT.as_millis()) as usize + 1;
    let log = seed.balancer.error_log_text();
    let dead = format!("upstream: \"http://{}:8080/\"", one.ns.addr());
    let failures: Vec<&str> = log.lines().filter(|l| l.contains(&dead)).collect();
    let no_route = "connect() failed (113: No route to host) while connecting to upstream";
    let timed_out = "upstream timed out (110: Connection timed out) while connecting to upstream";
    // Without carrier the first SYN vanishes (the neighbour entry is still
    // good): a connect timeout. Once ARP for the peer has failed, the kernel
    // answers "no route to host" at once.
    let (first, later) = match cut {
        Cut::HostSideDown => (no_route, [no_route, no_route]),
        Cut::NamespaceSideDown => (timed_out, [timed_out, no_route]),
    };
    assert!(
        failures.first().is_some_and(|l| l.contains(first))
            && failures.iter().all(|l| later.iter().any(|e| l.contains(e))),
        "expected {first:?}, then any of {later:?}, for {dead}; error log:\n{log}"
    );
    assert!(
        failures.len() <= windows,
        "the dead peer was tried {} times in {CUT_FOR:?} (fail_timeout {FAIL_TIMEOUT:?}):\n{log}",
        failures.len()
    );
    match cut {
        Cut::HostSideDown => assert_eq!(slow, 0, "no route fails at once"),
        Cut::NamespaceSideDown => assert!(
            (1..=windows).contains(&slow),
            "{slow} requests waited for the connect timeout"
        ),
    }

    // Bring the link back: within fail_timeout (plus link setup) both serve.
    let restored_at = Instant::now();
    cut.apply(one, true);
    wait_until(
        FAIL_TIMEOUT + Duration::from_secs(3),
        "echogolem1 to serve again",
        || seed.who().0 == "200:echogolem1",
    );
    let back_after = restored_at.elapsed();
    let seen = seed.who_n(10);
    assert_alternates(&seen);
    assert!(one.echo.lines().len() > before);

    let _ = writeln!(
        std::io::stderr(),
        "netns {cut:?}: setup {setup:?}, {requests} requests while cut ({slow} slow, \
         slowest {slowest:?}), {} failures logged, back after {back_after:?}, total {:?}\n  \
         echogolem2 log: {}\n  error log: {}",
        failures.len(),
        test_started.elapsed(),
        two.echo.lines().last().map(String::as_str).unwrap_or("-"),
        failures[0],
    );
}

#[test]
fn seed_network_survives_host_side_link_down() {
    seed_network_survives_a_cut_link(Cut::HostSideDown);
}

#[test]
fn seed_network_survives_namespace_side_link_down() {
    seed_network_survives_a_cut_link(Cut::NamespaceSideDown);
}
