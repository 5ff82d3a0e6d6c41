//! Upstream groups at run time: the balancer (shared by every worker
//! thread, so round robin is exact across them), the address of each peer,
//! and the names still waiting to resolve.

pub mod resolve;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use balance::{Attempt, Balancer, Outcome, PeerConfig, PeerId};

use crate::config::model::{UpstreamConfig, UpstreamServer};
use crate::observe::error_log;

/// A peer chosen for one attempt.
#[derive(Debug, Clone)]
pub struct Picked {
    /// The balancer's id, to report the outcome.
    pub id: PeerId,
    /// Where to connect.
    pub addr: SocketAddr,
}

struct State {
    balancer: Option<Balancer>,
    /// Every resolved peer: (server line index, address).
    resolved: Vec<(usize, SocketAddr)>,
    addrs: HashMap<PeerId, SocketAddr>,
}

/// One upstream group at run time.
pub struct Upstream {
    /// Its configuration.
    pub config: Arc<UpstreamConfig>,
    state: Mutex<State>,
    epoch: Instant,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.config.name)
            .finish()
    }
}

/// The balancer's view of one address of a `server` line. Its name is the
/// server as written, not the address: nginx's `hash ... consistent` hashes
/// that name (`backend:8080`), and every address of one line shares its
/// points.
fn peer_config(server: &UpstreamServer) -> PeerConfig {
    PeerConfig::new(server.name.clone())
        .weight(server.weight)
        .max_fails(server.max_fails)
        .fail_timeout_ms(server.fail_timeout.as_millis() as u64)
        .backup(server.backup)
        .down(server.down)
        .max_conns(server.max_conns)
}

impl Upstream {
    /// Creates the group with no peers yet; call [`Upstream::start_resolving`].
    pub fn new(config: Arc<UpstreamConfig>) -> Arc<Upstream> {
        Arc::new(Upstream {
            config,
            state: Mutex::new(State {
                balancer: None,
                resolved: Vec::new(),
                addrs: HashMap::new(),
            }),
            epoch: Instant::now(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Resolves every server line now; a name that does not resolve is
    /// logged and retried in the background with backoff (nginx would refuse
    /// to start: "host not found in upstream").
    pub async fn start_resolving(self: &Arc<Self>) {
        for (index, server) in self.config.servers.iter().enumerate() {
            match resolve::resolve(&server.host, server.port).await {
                Ok(addrs) => self.add_resolved(index, &addrs),
                Err(_) => {
                    error_log::warn(&format!(
                        "host not found in upstream \"{}\" in {}, will retry",
                        server.display_name(),
                        server.position
                    ));
                    let me = Arc::downgrade(self);
                    tokio::spawn(async move { retry_until_resolved(me, index).await });
                }
            }
        }
    }

    fn add_resolved(&self, index: usize, addrs: &[SocketAddr]) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        for addr in addrs {
            if !state.resolved.contains(&(index, *addr)) {
                state.resolved.push((index, *addr));
            }
        }
        // Keep the order of the server lines, as nginx builds its peer list.
        state.resolved.sort_by_key(|(i, _)| *i);
        let peers: Vec<PeerConfig> = state
            .resolved
            .iter()
            .map(|(i, _)| peer_config(&self.config.servers[*i]))
            .collect();
        // The balancer lists its peers primaries first, then backups, each
        // in the order given: the same order here pairs ids with addresses
        // (names alone do not: one line may have several addresses).
        let ordered: Vec<SocketAddr> = state
            .resolved
            .iter()
            .filter(|(i, _)| !self.config.servers[*i].backup)
            .chain(
                state
                    .resolved
                    .iter()
                    .filter(|(i, _)| self.config.servers[*i].backup),
            )
            .map(|(_, a)| *a)
            .collect();
        let result = match state.balancer.as_mut() {
            Some(b) => b.set_peers(peers),
            None => Balancer::new(self.config.method, peers, seed()).map(|b| {
                state.balancer = Some(b);
            }),
        };
        if let Err(e) = result {
            error_log::error(None, &format!("upstream \"{}\": {e}", self.config.name));
        }
        let State {
            balancer, addrs, ..
        } = &mut *state;
        addrs.clear();
        if let Some(b) = balancer.as_ref() {
            for ((id, _, _), addr) in b.peers().zip(ordered) {
                addrs.insert(id, addr);
            }
        }
    }

    /// Starts one request's attempts.
    pub fn start(&self) -> Option<Attempt> {
        let state = self.state.lock().ok()?;
        state.balancer.as_ref().map(|b| b.start())
    }

    /// Picks a peer for the next attempt, or `None` for "no live upstreams".
    pub fn pick(&self, attempt: &mut Attempt, key: &[u8]) -> Option<Picked> {
        let now = self.now_ms();
        let mut state = self.state.lock().ok()?;
        let State {
            balancer, addrs, ..
        } = &mut *state;
        let id = balancer.as_mut()?.pick(attempt, key, now).ok()?;
        let addr = *addrs.get(&id)?;
        Some(Picked { id, addr })
    }

    /// Reports how an attempt ended.
    pub fn finish(&self, id: PeerId, success: bool) {
        let now = self.now_ms();
        if let Ok(mut state) = self.state.lock() {
            if let Some(b) = state.balancer.as_mut() {
                b.finish(
                    id,
                    if success {
                        Outcome::Success
                    } else {
                        Outcome::Failure
                    },
                    now,
                );
            }
        }
    }

    /// A snapshot of the peers: (address, stats).
    pub fn snapshot(&self) -> Vec<(String, balance::PeerStats, bool)> {
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        match state.balancer.as_ref() {
            Some(b) => b
                .peers()
                .map(|(id, cfg, stats)| {
                    let addr = state
                        .addrs
                        .get(&id)
                        .map_or_else(|| cfg.name.clone(), |a| a.to_string());
                    (addr, stats, cfg.backup)
                })
                .collect(),
            None => Vec::new(),
        }
    }
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.as_nanos() as u64 ^ u64::from(std::process::id())
}

async fn retry_until_resolved(upstream: std::sync::Weak<Upstream>, index: usize) {
    let mut delay = Duration::from_millis(250);
    loop {
        tokio::time::sleep(delay).await;
        let Some(up) = upstream.upgrade() else { return };
        let server = &up.config.servers[index];
        if let Ok(addrs) = resolve::resolve(&server.host, server.port).await {
            up.add_resolved(index, &addrs);
            error_log::notice(&format!(
                "upstream \"{}\": \"{}\" resolved to {}, peer added",
                up.config.name,
                server.display_name(),
                addrs
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return;
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
