//! `switchyard lab`: the seed experiment in one command. Echo backends for
//! every upstream server of a config (the seed's by default), the balancer
//! in front of them with the names mapped to loopback addresses, every log
//! line on one terminal prefixed with who wrote it, and optionally traffic
//! with a report of who answered.

mod children;
mod console;
mod plan;
mod traffic;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::AsyncBufReadExt;

use crate::config::{self, LoadOptions};
use children::Child;
use plan::StandKind;

/// The seed's nginx.conf, embedded: the lab's default.
pub const SEED_CONFIG: &str = include_str!("../../../../examples/seed/nginx.conf");

/// Arguments of `switchyard lab`.
#[derive(clap::Args, Debug, Clone)]
pub struct LabArgs {
    /// An nginx.conf to try instead of the seed's: an echo backend is started
    /// for every upstream server in it.
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    /// Send this many requests through the balancer, print who answered, and exit.
    #[arg(long, default_value_t = 0)]
    pub requests: u64,
    /// Keep running after the requests were sent (until Ctrl-C).
    #[arg(long)]
    pub stay: bool,
    /// Send the requests to this path (repeatable); by default every
    /// location that proxies gets its share.
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
}

/// One upstream address of the config and the echo backend standing in for it.
struct Backend {
    /// `host:port` as written in the config.
    written: String,
    /// The instance name (the host as written).
    name: String,
    /// Where its echo server listens.
    addr: SocketAddr,
    /// What it speaks.
    kind: StandKind,
}

/// Runs the lab until Ctrl-C (or until the report, with `--requests`).
pub async fn run(args: LabArgs) -> anyhow::Result<()> {
    // Catch Ctrl-C (and TERM) before the first child starts: a signal that
    // arrived during startup would otherwise kill the lab alone and leave its
    // children running, orphaned.
    let mut stop = Stop::install()?;
    let mut children: Vec<Child> = Vec::new();
    let result = session(&args, &mut stop, &mut children).await;
    if matches!(result, Err(ref e) if e.is::<Interrupted>()) {
        println!("\n  stopping...");
    }
    // Every way out stops the children and waits for them.
    children::stop_all(children).await;
    match result {
        Err(e) if !e.is::<Interrupted>() => Err(e),
        _ => Ok(()),
    }
}

/// Ctrl-C or SIGTERM arrived: stop, and exit 0.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
struct Interrupted;

/// Runs `work` unless a stop signal comes first or a child exits: a lab
/// whose balancer could not bind its port stops at once and says so.
async fn guard<T>(
    stop: &mut Stop,
    children: &mut [Child],
    work: impl std::future::Future<Output = T>,
) -> anyhow::Result<T> {
    tokio::select! {
        out = work => Ok(out),
        _ = stop.wait() => Err(Interrupted.into()),
        exited = children::first_exit(children) => Err(exited.into()),
    }
}

/// Starts the backends and the balancer into `children`, then runs the
/// traffic or waits for Ctrl-C. Any wait can be cut short by `stop` or by a
/// child that exits.
async fn session(args: &LabArgs, stop: &mut Stop, children: &mut Vec<Child>) -> anyhow::Result<()> {
    let workdir = tempfile::Builder::new()
        .prefix("switchyard-lab-")
        .tempdir()?;
    let conf_path = match &args.config {
        Some(p) => {
            std::fs::canonicalize(p).with_context(|| format!("cannot read {}", p.display()))?
        }
        None => {
            let p = workdir.path().join("nginx.conf");
            std::fs::write(&p, SEED_CONFIG)?;
            p
        }
    };
    let load = LoadOptions {
        conf_file: conf_path.clone(),
        prefix: workdir.path().to_path_buf(),
        globals: None,
    };
    // Every problem at once, as `-t` lists them, not only the first.
    let loaded = config::load(&load).map_err(|e| {
        for line in e.lines() {
            eprintln!("switchyard: [emerg] {line}");
        }
        anyhow::anyhow!(e.summary())
    })?;
    let model = &loaded.model;

    // Every distinct host:port of every upstream, http's and stream's,
    // address literals and implicit `proxy_pass` targets included, gets an
    // echo backend on its own loopback address (127.0.1.N), as each seed
    // container had its own. The balancer gets them as its only map: nothing
    // it looks up can resolve beyond loopback.
    let stands = plan::stands(model);
    if stands.is_empty() {
        bail!("the configuration has no upstream servers: nothing to put backends behind");
    }
    let exe = std::env::current_exe()?;
    let mut backends = Vec::new();
    // One loopback address per host, as a node has one address for all its
    // ports (the API's 6443 and 22623, a router's 80, 443 and 1936).
    let mut hosts: Vec<&str> = Vec::new();
    let mut health_started: Vec<(std::net::Ipv4Addr, u16)> = Vec::new();
    let mut nodes: Vec<console::Echo> = Vec::new();
    for stand in &stands {
        let index = match hosts.iter().position(|h| *h == stand.name) {
            Some(i) => i,
            None => {
                hosts.push(&stand.name);
                hosts.len() - 1
            }
        };
        let ip = loopback_ip(index)?;
        let flags: &[&str] = match stand.kind {
            StandKind::Http => &[],
            StandKind::Https => &["--tls"],
            StandKind::Udp => &["--mode", "udp", "--tag"],
        };
        let (child, ready) = Child::start_echo(&exe, &stand.name, &format!("{ip}:0"), flags)?;
        children.push(child);
        let addr = guard(stop, children, children::echo_ready(ready)).await??;
        nodes.push(console::Echo {
            node: stand.name.clone(),
            name: stand.name.clone(),
            child: children.len() - 1,
            addr,
            flags,
            tls: stand.kind == StandKind::Https,
            failing: false,
        });
        // A health check on another port (the routers' 1936) gets its own
        // backend on the same address.
        if let Some((port, tls)) = stand
            .health_port
            .filter(|(port, _)| !health_started.contains(&(ip, *port)))
        {
            health_started.push((ip, port));
            let flags: &[&str] = if tls { &["--tls"] } else { &[] };
            let name = format!("{}-health", stand.name);
            let (child, ready) = Child::start_echo(&exe, &name, &format!("{ip}:{port}"), flags)?;
            children.push(child);
            let addr = guard(stop, children, children::echo_ready(ready)).await??;
            nodes.push(console::Echo {
                node: stand.name.clone(),
                name,
                child: children.len() - 1,
                addr,
                flags,
                tls,
                failing: false,
            });
        }
        backends.push(Backend {
            written: stand.written.clone(),
            name: stand.name.clone(),
            addr,
            kind: stand.kind,
        });
    }
    let peer_map = backends
        .iter()
        .map(|b| format!("{}={}", b.written, b.addr))
        .collect::<Vec<_>>()
        .join(",");

    // The access log goes to the balancer's stdout, as in nginx's container
    // image (logs/access.log -> /dev/stdout), so it shows on this terminal.
    let logs = workdir.path().join("logs");
    std::fs::create_dir_all(&logs)?;
    std::os::unix::fs::symlink("/dev/stdout", logs.join("access.log"))?;
    // And a config's error log file, so that a node leaving and rejoining
    // the pool is seen here too.
    std::os::unix::fs::symlink("/dev/stderr", logs.join("error.log"))?;
    let mut globals = String::new();
    if !loaded.tree.directives.iter().any(|d| d.name == "daemon") {
        globals.push_str("daemon off;");
    }
    let pid_file = model.main.pid.clone();
    let balancer =
        Child::start_balancer(&exe, workdir.path(), &conf_path, &globals, &peer_map).await?;
    children.push(balancer);
    guard(
        stop,
        children,
        wait_for_file(&pid_file, Duration::from_secs(10)),
    )
    .await??;
    let mut targets = match &model.http {
        Some(http) => plan::targets(http, &args.paths),
        None => Vec::new(),
    };
    targets.extend(plan::stream_targets(model, &stands));
    let mut listens: Vec<String> = Vec::new();
    if let Some(http) = &model.http {
        listens.extend(
            http.servers
                .iter()
                .flat_map(|s| s.listens.iter().map(|l| l.addr.to_string())),
        );
    }
    if let Some(stream) = &model.stream {
        listens.extend(stream.servers.iter().flat_map(|s| {
            s.listens
                .iter()
                .map(|l| format!("{}{}", l.addr, if l.udp { " (udp)" } else { "" }))
        }));
    }
    if targets.is_empty() {
        bail!("the configuration has no server that proxies to its upstreams");
    }
    // No connection is made to see the listeners up: the pid file says
    // they are bound (runtime/mod.rs writes it only then), and a probe
    // through a stream listener would be a session of its own, taking a
    // round-robin turn before or after the counted ones (two workers race
    // for it) and skewing the tally.

    println!();
    match &args.config {
        None => println!(
            "  switchyard lab: the seed experiment, with {} backend(s)",
            backends.len()
        ),
        Some(path) => println!(
            "  switchyard lab: {}, with {} simulated backend(s)",
            path.display(),
            backends.len()
        ),
    }
    for b in &backends {
        let speaks = match b.kind {
            StandKind::Http => "",
            StandKind::Https => " (https)",
            StandKind::Udp => " (udp)",
        };
        println!(
            "    {:<24} -> echo backend \"{}\" on {}{speaks}",
            b.written, b.name, b.addr
        );
    }
    println!("  balancer listening on {}", listens.join(", "));
    if let Some(http) = &model.http {
        for (what, url) in plan::pages(http) {
            println!("  {what:<12} {url}");
        }
    }
    println!();

    if args.requests > 0 {
        let counts = guard(stop, children, traffic::send(&targets, args.requests)).await?;
        traffic::report(&counts, args.requests);
        if !args.stay {
            return Ok(());
        }
    }
    let first = &targets[0];
    match first.kind {
        StandKind::Http => println!(
            "  try:  curl -i http://localhost:{}{} -H 'Content-Type: application/json' -d '{{\"foo\": \"bar\"}}'",
            first.addr.port(),
            first.path
        ),
        StandKind::Https => println!(
            "  try:  curl -ik https://localhost:{}/readyz",
            first.addr.port()
        ),
        StandKind::Udp => println!(
            "  try:  echo hello | nc -u -w1 127.0.0.1 {}",
            first.addr.port()
        ),
    }
    println!("  stop: Ctrl-C");
    if !console::usable() {
        println!();
        return guard(stop, children, std::future::pending::<()>()).await;
    }
    println!("{}", console::HELP);
    println!();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        match guard(stop, children, lines.next_line()).await? {
            Ok(Some(line)) => {
                console::obey(console::Command::parse(&line), &exe, &mut nodes, children).await
            }
            // No console (stdin closed or not readable): run until Ctrl-C.
            Ok(None) | Err(_) => return guard(stop, children, std::future::pending::<()>()).await,
        }
    }
}

/// The loopback address of the `index`th echo backend: 127.0.1.1 onwards.
fn loopback_ip(index: usize) -> anyhow::Result<std::net::Ipv4Addr> {
    let n = index + 1;
    if n > 254 * 255 {
        bail!("the lab simulates at most {} backends", 254 * 255);
    }
    Ok(std::net::Ipv4Addr::new(
        127,
        0,
        1 + (n / 255) as u8,
        (n % 255) as u8,
    ))
}

/// SIGINT and SIGTERM, caught for the lab's whole life.
struct Stop {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Stop {
    fn install() -> anyhow::Result<Stop> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Stop {
            interrupt: signal(SignalKind::interrupt()).context("cannot catch SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot catch SIGTERM")?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

async fn wait_for_file(path: &std::path::Path, limit: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if path.exists() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!(
        "the balancer did not start (no pid file {} after {:?})",
        path.display(),
        limit
    )
}
