//! The lab's console: commands typed while it runs, to watch a balancer
//! react. A node (every echo backend of one host: its ports and its health
//! port) can fail its health checks, heal, be killed and be started again.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use super::children::{self, Child};

/// One line typed at the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `fail NAME`: its health endpoints answer 503.
    Fail(String),
    /// `heal NAME`: its health endpoints answer 200 again.
    Heal(String),
    /// `kill NAME`: its backends stop (connections refused).
    Kill(String),
    /// `start NAME`: a killed node's backends start again, where they were.
    Start(String),
    /// `stats`: every backend's state and the requests it served.
    Stats,
    /// `help` (or `?`).
    Help,
    /// An empty line.
    Nothing,
    /// Anything else, as typed.
    Unknown(String),
}

/// The help text, printed at start and on `help`.
pub const HELP: &str = "  type: fail NAME | heal NAME | kill NAME | start NAME (a backend's name, as listed above) | stats, then Enter";

/// Whether the lab may read commands from its standard input: a pipe or a
/// file, or a terminal it has in the foreground (a background job that read
/// its terminal would be stopped by SIGTTIN).
pub fn usable() -> bool {
    // SAFETY: isatty, tcgetpgrp and getpgrp only read the process's state.
    unsafe {
        if libc::isatty(0) == 0 {
            return true;
        }
        libc::tcgetpgrp(0) == libc::getpgrp()
    }
}

impl Command {
    /// Parses one typed line.
    pub fn parse(line: &str) -> Command {
        let mut words = line.split_whitespace();
        let (Some(verb), name) = (words.next(), words.next()) else {
            return Command::Nothing;
        };
        let extra = words.next().is_some();
        match (verb, name) {
            ("help" | "?", None) => Command::Help,
            ("stats", None) => Command::Stats,
            ("fail", Some(n)) if !extra => Command::Fail(n.to_string()),
            ("heal", Some(n)) if !extra => Command::Heal(n.to_string()),
            ("kill", Some(n)) if !extra => Command::Kill(n.to_string()),
            ("start", Some(n)) if !extra => Command::Start(n.to_string()),
            _ => Command::Unknown(line.trim().to_string()),
        }
    }
}

/// One echo backend the lab runs, as the console sees it.
pub struct Echo {
    /// The node it belongs to: the host as written.
    pub node: String,
    /// Its own name (`NODE` or `NODE-health`).
    pub name: String,
    /// Its index in the lab's children.
    pub child: usize,
    /// Where it listens (a restart listens there again).
    pub addr: SocketAddr,
    /// Its `switchyard echo` flags.
    pub flags: &'static [&'static str],
    /// Whether it speaks HTTPS.
    pub tls: bool,
    /// Switched to failing its health checks by `fail`.
    pub failing: bool,
}

/// Carries out a console command on every echo backend of the node named.
pub async fn obey(
    command: Command,
    exe: &std::path::Path,
    nodes: &mut [Echo],
    children: &mut [Child],
) {
    let name = match &command {
        Command::Fail(n) | Command::Heal(n) | Command::Kill(n) | Command::Start(n) => n.clone(),
        Command::Help => return println!("{}", HELP),
        Command::Stats => return print_stats(nodes, children),
        Command::Nothing => return,
        Command::Unknown(line) => return println!("  lab: unknown command {line:?}\n{}", HELP),
    };
    let of_node: Vec<usize> = (0..nodes.len())
        .filter(|&i| nodes[i].node == name)
        .collect();
    if of_node.is_empty() {
        return println!("  lab: no backend is called {name:?}");
    }
    for i in of_node {
        let echo = &nodes[i];
        let done = match &command {
            Command::Fail(_) => switch_health(echo, 503).await,
            Command::Heal(_) => switch_health(echo, 200).await,
            Command::Kill(_) => {
                children[echo.child].kill().await;
                Ok("killed".to_string())
            }
            Command::Start(_) => restart(echo, exe, children).await,
            _ => Ok(String::new()),
        };
        if done.is_ok() {
            match &command {
                Command::Fail(_) => nodes[i].failing = true,
                Command::Heal(_) | Command::Start(_) => nodes[i].failing = false,
                _ => {}
            }
        }
        let echo = &nodes[i];
        match done {
            Ok(what) => println!("  lab: {} on {}: {what}", echo.name, echo.addr),
            Err(e) => println!("  lab: {} on {}: {e:#}", echo.name, echo.addr),
        }
    }
}

/// `stats`: a row per echo backend: its state and what it served so far.
fn print_stats(nodes: &[Echo], children: &[Child]) {
    let widest = nodes.iter().map(|e| e.name.len()).max().unwrap_or(0);
    println!(
        "  {:<widest$}  {:<21}  {:<7}  served",
        "backend", "address", "state"
    );
    for echo in nodes {
        let child = &children[echo.child];
        let state = if child.stopped() {
            "killed"
        } else if echo.failing {
            "failing"
        } else {
            "up"
        };
        println!(
            "  {:<widest$}  {:<21}  {:<7}  {}",
            echo.name,
            echo.addr.to_string(),
            state,
            child.served()
        );
    }
}

/// `POST /healthz?status=CODE` to one echo backend (HTTP or HTTPS).
async fn switch_health(echo: &Echo, status: u16) -> anyhow::Result<String> {
    if echo.flags.contains(&"udp") {
        return Ok("a UDP echo has no health endpoint".to_string());
    }
    let stream = tokio::net::TcpStream::connect(echo.addr)
        .await
        .context("not running (start it first)")?;
    let request = format!(
        "POST /healthz?status={status} HTTP/1.1\r\nHost: lab\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let answer = if echo.tls {
        let config = crate::transport::tls::client_config(None)?;
        let name = rustls_pki_types::ServerName::IpAddress(echo.addr.ip().into());
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await?;
        exchange(&mut tls, &request).await?
    } else {
        let mut stream = stream;
        exchange(&mut stream, &request).await?
    };
    match answer.starts_with("HTTP/1.1 200") {
        true => Ok(format!("/healthz now answers {status}")),
        false => anyhow::bail!(
            "the switch was refused: {}",
            answer.lines().next().unwrap_or("")
        ),
    }
}

/// Writes `request`, reads the whole answer (bounded by a timeout).
async fn exchange<S>(stream: &mut S, request: &str) -> anyhow::Result<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await??;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// Starts a killed echo backend again on its address.
async fn restart(
    echo: &Echo,
    exe: &std::path::Path,
    children: &mut [Child],
) -> anyhow::Result<String> {
    if tokio::net::TcpStream::connect(echo.addr).await.is_ok() {
        return Ok("already running".to_string());
    }
    let (child, ready) = Child::start_echo(exe, &echo.name, &echo.addr.to_string(), echo.flags)?;
    children[echo.child] = child;
    children::echo_ready(ready).await?;
    Ok("started".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse() {
        assert_eq!(
            Command::parse("fail echogolem1"),
            Command::Fail("echogolem1".into())
        );
        assert_eq!(
            Command::parse("  heal  web2 "),
            Command::Heal("web2".into())
        );
        assert_eq!(
            Command::parse("kill 192.0.2.11"),
            Command::Kill("192.0.2.11".into())
        );
        assert_eq!(Command::parse("start a"), Command::Start("a".into()));
        assert_eq!(Command::parse("?"), Command::Help);
        assert_eq!(Command::parse("stats"), Command::Stats);
        assert_eq!(Command::parse("   "), Command::Nothing);
        assert_eq!(Command::parse("kill"), Command::Unknown("kill".into()));
        assert_eq!(
            Command::parse("kill a b"),
            Command::Unknown("kill a b".into())
        );
        assert_eq!(
            Command::parse("explode"),
            Command::Unknown("explode".into())
        );
    }
}
