//! The lab's child processes: started as users start them, their output
//! relayed line by line with a name in front.
//!
//! Each child runs in a process group of its own, so that Ctrl-C on the
//! terminal reaches the lab alone: the lab says it is stopping, then stops
//! its children in order, and their last lines come after its own.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// A running child process.
pub struct Child {
    name: String,
    /// Requests its log says it served (echo backends only).
    served: Arc<AtomicU64>,
    process: tokio::process::Child,
    /// The tasks relaying its output, finished once it has closed both.
    relays: Vec<tokio::task::JoinHandle<()>>,
    /// Stopped on purpose (the console's `kill`): its exit stops nothing.
    stopped: bool,
}

fn relay<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    name: String,
    reader: R,
    first_line: Option<tokio::sync::oneshot::Sender<String>>,
    served: Option<Arc<AtomicU64>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        let mut first_line = first_line;
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(tx) = first_line.take() {
                let _ = tx.send(line.clone());
            }
            if let Some(count) = &served {
                if is_served_request(&line) {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
            println!("{name:>12} | {line}");
        }
    })
}

/// Whether an echo backend's log line is a request it served (a Werkzeug
/// access line, or a TCP/UDP echo line), health checks aside.
fn is_served_request(line: &str) -> bool {
    let health = ["/healthz", "/readyz"].iter().any(|p| line.contains(p));
    let request = line.contains("\" ") && line.contains(" HTTP/");
    let layer4 = line.contains(" tcp session ") || line.contains(" udp datagram ");
    (request && !health) || layer4
}

impl Child {
    /// Starts `switchyard echo` on `listen` (port 0 allowed) named `name`;
    /// the child is returned at once, so that it can be stopped even while
    /// it starts, with its first stderr line (see [`echo_ready`]).
    pub fn start_echo(
        exe: &Path,
        name: &str,
        listen: &str,
        flags: &[&str],
    ) -> anyhow::Result<(Child, tokio::sync::oneshot::Receiver<String>)> {
        let mut process = Command::new(exe)
            .args(["echo", "--listen", listen, "--name", name])
            .args(flags)
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the echo backend")?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let served = Arc::new(AtomicU64::new(0));
        let mut relays = Vec::new();
        if let Some(out) = process.stdout.take() {
            relays.push(relay(name.to_string(), out, None, Some(served.clone())));
        }
        if let Some(err) = process.stderr.take() {
            relays.push(relay(name.to_string(), err, Some(tx), None));
        }
        Ok((
            Child {
                name: name.to_string(),
                served,
                process,
                relays,
                stopped: false,
            },
            rx,
        ))
    }

    /// Starts the balancer on `conf` with `prefix`, the names mapped by `peer_map`.
    pub async fn start_balancer(
        exe: &Path,
        prefix: &Path,
        conf: &Path,
        globals: &str,
        peer_map: &str,
    ) -> anyhow::Result<Child> {
        let mut command = Command::new(exe);
        command
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(conf)
            .args(["-e", "stderr"]);
        if !globals.is_empty() {
            command.args(["-g", globals]);
        }
        let mut process = command
            .env(crate::upstream::resolve::PEER_MAP_ENV, peer_map)
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the balancer")?;
        let mut relays = Vec::new();
        if let Some(out) = process.stdout.take() {
            relays.push(relay("switchyard".into(), out, None, None));
        }
        if let Some(err) = process.stderr.take() {
            relays.push(relay("switchyard".into(), err, None, None));
        }
        Ok(Child {
            name: "switchyard".into(),
            served: Arc::new(AtomicU64::new(0)),
            process,
            relays,
            stopped: false,
        })
    }
}

impl Child {
    /// How many requests (or sessions) it served, by its log.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Whether it was stopped on purpose.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Kills it on purpose (SIGKILL, as a node that dies) and reaps it.
    pub async fn kill(&mut self) {
        self.stopped = true;
        let _ = self.process.kill().await;
    }
}

/// A child that exited while the lab still needed it.
#[derive(Debug, thiserror::Error)]
#[error("{name} exited ({status}), so the lab stops; the reason is in its last lines above")]
pub struct Exited {
    /// Which child.
    pub name: String,
    /// How it ended.
    pub status: std::process::ExitStatus,
}

/// Resolves when any of `children` exits; pending forever while all run.
/// Polls: the lab has a handful of children and answers within 50 ms.
pub async fn first_exit(children: &mut [Child]) -> Exited {
    loop {
        for child in children.iter_mut().filter(|c| !c.stopped) {
            if let Ok(Some(status)) = child.process.try_wait() {
                // Its last lines (the reason, usually) before the lab's own.
                // (Taken out: a relay polled to its end is never polled again.)
                for relay in child.relays.drain(..) {
                    let _ = tokio::time::timeout(Duration::from_secs(1), relay).await;
                }
                return Exited {
                    name: child.name.clone(),
                    status,
                };
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for an echo backend's ready line; returns where it listens.
pub async fn echo_ready(
    first_line: tokio::sync::oneshot::Receiver<String>,
) -> anyhow::Result<SocketAddr> {
    let ready = tokio::time::timeout(Duration::from_secs(10), first_line)
        .await
        .context("the echo backend did not start in time")?
        .context("the echo backend exited before it was ready")?;
    // `echo: listening on 127.0.1.1:40000 as name`
    ready
        .split_whitespace()
        .nth(3)
        .and_then(|a| a.parse().ok())
        .with_context(|| format!("unexpected ready line from the echo backend: {ready}"))
}

/// Stops every child: SIGTERM, then SIGKILL after a grace period.
pub async fn stop_all(children: Vec<Child>) {
    for child in children.iter().rev() {
        if let Some(pid) = child.process.id() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
    }
    for mut child in children {
        if tokio::time::timeout(Duration::from_secs(5), child.process.wait())
            .await
            .is_err()
        {
            eprintln!("{} did not stop in time, killing it", child.name);
            let _ = child.process.kill().await;
        }
        // Its last lines ("echo: shut down") may still be in the pipe: the
        // relays end at its close, which a process that has exited has
        // made (bounded, in case a grandchild holds the pipe open).
        for relay in child.relays.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), relay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_served_request;

    #[test]
    fn served_lines() {
        assert!(is_served_request(
            "127.0.0.1 - - [02/Dec/2026 05:43:34] \"POST / HTTP/1.0\" 200 - echogolem1"
        ));
        assert!(!is_served_request(
            "127.0.0.1 - - [02/Dec/2026 05:43:34] \"GET /healthz HTTP/1.1\" 200 - a"
        ));
        assert!(is_served_request(
            "127.0.0.1:4000 tcp session closed, 12 bytes echoed a"
        ));
        assert!(!is_served_request("echo: listening on 127.0.1.1:4000 as a"));
    }
}
