//! Upstream groups at run time: the balancer (shared by every worker
//! thread, so round robin is exact across them), the address of each peer,
//! and the names still waiting to resolve.

pub mod addr;
pub mod dns;
pub mod health;
pub mod io;
pub mod pool;
pub mod resolve;
pub mod stub_dns;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use balance::{Attempt, Balancer, Outcome, PeerConfig, PeerId};

pub use addr::PeerAddr;

use crate::config::model::{UpstreamConfig, UpstreamServer};
use crate::observe::error_log;

/// A peer chosen for one attempt.
#[derive(Debug, Clone)]
pub struct Picked {
    /// The balancer's id, to report the outcome.
    pub id: PeerId,
    /// Where to connect.
    pub addr: PeerAddr,
    /// Its counters (looked up once per peer, not per request).
    pub metrics: Arc<crate::observe::metrics::PeerMetrics>,
    /// The address as text (`$upstream_addr`).
    pub label: Arc<str>,
}

/// What a pick hands out about a peer, prepared once per peer.
#[derive(Debug)]
struct PeerEntry {
    addr: PeerAddr,
    metrics: Arc<crate::observe::metrics::PeerMetrics>,
    /// The address as `$upstream_addr` shows it, formatted once.
    label: Arc<str>,
}

/// One resolved address of a server line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The server line it came from.
    pub line: usize,
    /// The address.
    pub addr: PeerAddr,
    /// A weight from an SRV record, replacing the line's.
    pub weight: Option<u32>,
    /// Backup because of a lower SRV priority.
    pub srv_backup: bool,
}

struct State {
    balancer: Option<Balancer>,
    /// Every resolved peer, in server-line order.
    resolved: Vec<Resolved>,
    addrs: rustc_hash::FxHashMap<PeerId, PeerEntry>,
}

/// A server line that has no address yet: its name did not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// The server as written (`echogolem1:8080`).
    pub server: String,
    /// Why the last lookup failed.
    pub error: String,
    /// When the next lookup is due.
    pub next_try: Instant,
}

/// One upstream group at run time.
pub struct Upstream {
    /// Its configuration.
    pub config: Arc<UpstreamConfig>,
    /// Its name on the status page and in metrics: the configured name
    /// for http, `stream:NAME` for stream (the two blocks have separate
    /// namespaces in nginx).
    pub label: String,
    /// Its idle connections, with `keepalive`.
    pub pool: Option<pool::Pool>,
    state: Mutex<State>,
    /// Server lines waiting for their name, by line index: shown on the
    /// status page and in the metrics, which list only addresses otherwise.
    waiting: Mutex<std::collections::BTreeMap<usize, Unresolved>>,
    epoch: Instant,
    activated: std::sync::atomic::AtomicBool,
    /// A group made for one request or session (`proxy_pass` with
    /// variables): its peers get counters of their own, not rows in the
    /// metrics, which a client choosing addresses could grow without end.
    ephemeral: bool,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.config.name)
            .finish()
    }
}

/// The balancer's view of one address of a `server` line: named by its
/// address (`$upstream_addr`, the identity kept across re-resolution), with
/// the server as written for `hash ... consistent`, which nginx hashes
/// (`backend:8080`), so every address of one line shares its points.
fn peer_config(server: &UpstreamServer, entry: &Resolved) -> PeerConfig {
    let addr = entry.addr.to_string();
    let mut peer = PeerConfig::new(addr.clone())
        .server(server.name.clone())
        .weight(entry.weight.unwrap_or(server.weight))
        .max_fails(server.max_fails)
        .fail_timeout_ms(server.fail_timeout.as_millis() as u64)
        .backup(server.backup || entry.srv_backup)
        .down(server.down)
        .max_conns(server.max_conns);
    peer.name = addr;
    peer
}

impl Upstream {
    /// Creates the group with no peers yet; call [`Upstream::start_resolving`].
    pub fn new(config: Arc<UpstreamConfig>) -> Arc<Upstream> {
        let label = config.name.clone();
        Self::labelled(config, label)
    }

    /// A group of the stream block (labelled `stream:NAME`).
    pub fn new_stream(config: Arc<UpstreamConfig>) -> Arc<Upstream> {
        let label = format!("stream:{}", config.name);
        Self::labelled(config, label)
    }

    fn labelled(config: Arc<UpstreamConfig>, label: String) -> Arc<Upstream> {
        Arc::new(Upstream {
            label,
            pool: config.keepalive.clone().map(pool::Pool::new),
            config,
            state: Mutex::new(State {
                balancer: None,
                resolved: Vec::new(),
                addrs: rustc_hash::FxHashMap::default(),
            }),
            waiting: Mutex::new(std::collections::BTreeMap::new()),
            epoch: Instant::now(),
            activated: std::sync::atomic::AtomicBool::new(false),
            ephemeral: false,
        })
    }

    /// A group for one request or session of a `proxy_pass` with
    /// variables: `addrs`, each its own peer (as nginx makes one of every
    /// address a name resolves to, repeated ones too), round robin, no
    /// health checks, no metrics rows. `name` is the host as evaluated.
    pub fn one_off(name: String, port: u16, addrs: Vec<PeerAddr>, stream: bool) -> Arc<Upstream> {
        // Never shown: a one-off group is not resolved, checked or listed.
        let nowhere = nginx_conf::Position {
            source: nginx_conf::Source::CommandLine,
            line: 0,
        };
        let servers: Vec<UpstreamServer> = addrs
            .iter()
            .map(|addr| {
                let mut server =
                    UpstreamServer::new(addr.to_string(), name.clone(), port, nowhere.clone());
                if let PeerAddr::Unix(path) = addr {
                    server.unix = Some(path.clone());
                }
                server
            })
            .collect();
        let config = UpstreamConfig {
            name,
            method: balance::Method::RoundRobin,
            hash_key: None,
            servers,
            health_check: None,
            resolver: None,
            keepalive: None,
            position: nowhere,
        };
        let label = if stream {
            format!("stream:{}", config.name)
        } else {
            config.name.clone()
        };
        let mut upstream = Self::labelled(Arc::new(config), label);
        if let Some(up) = Arc::get_mut(&mut upstream) {
            up.ephemeral = true;
        }
        for (line, addr) in addrs.into_iter().enumerate() {
            upstream.set_line(
                line,
                vec![Resolved {
                    line,
                    addr,
                    weight: None,
                    srv_backup: false,
                }],
            );
        }
        upstream
    }

    /// Starts name resolution and the health checker, once per group (a
    /// group kept across a reload is not started again). The task returned
    /// ends when every name has had its first lookup.
    pub fn activate(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        if self
            .activated
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return None;
        }
        health::spawn(self);
        let me = self.clone();
        Some(tokio::spawn(async move { me.start_resolving().await }))
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Resolves every server line now; a name that does not resolve is
    /// logged and retried in the background with backoff (nginx would refuse
    /// to start: "host not found in upstream").
    pub async fn start_resolving(self: &Arc<Self>) {
        // Under the lab every line comes from its map, `resolve` ones too:
        // no query goes to a real DNS server.
        let uses_dns = |s: &UpstreamServer| {
            !resolve::lab_mode() && s.unix.is_none() && (s.resolve || s.service.is_some())
        };
        let dns = if self.config.servers.iter().any(uses_dns) {
            match dns::Dns::new(self.config.resolver.as_ref()) {
                Ok(d) => Some(Arc::new(d)),
                Err(e) => {
                    error_log::error(
                        None,
                        &format!(
                            "upstream \"{}\": cannot start the resolver: {e}",
                            self.config.name
                        ),
                    );
                    None
                }
            }
        } else {
            None
        };
        // The first lookup of each `resolve` line, awaited below like the
        // lookups of the other lines: the caller serves only after them.
        let mut first_lookups = Vec::new();
        for (index, server) in self.config.servers.iter().enumerate() {
            if uses_dns(server) {
                if let Some(dns) = dns.clone() {
                    let (done, first) = tokio::sync::oneshot::channel();
                    first_lookups.push(first);
                    tokio::spawn(keep_resolving(Arc::downgrade(self), index, dns, done));
                }
                continue;
            }
            match resolve::resolve_server(server).await {
                Ok(addrs) => self.add_resolved(index, addrs),
                Err(e) => {
                    self.note_unresolved(index, error_log::os_error(&e), FIRST_RETRY);
                    // nginx stops here with [emerg]; we keep serving, so say
                    // it at the default level, where the user looks.
                    error_log::error(
                        None,
                        &format!(
                            "host not found in upstream \"{}\" in {} ({}), will retry",
                            server.display_name(),
                            server.position,
                            error_log::os_error(&e)
                        ),
                    );
                    let me = Arc::downgrade(self);
                    tokio::spawn(async move { retry_until_resolved(me, index).await });
                }
            }
        }
        for first in first_lookups {
            let _ = first.await;
        }
    }

    /// Records that line `index` has no address: `error` says why, the next
    /// lookup comes in `retry_in`.
    fn note_unresolved(&self, index: usize, error: String, retry_in: Duration) {
        let entry = Unresolved {
            server: self.config.servers[index].display_name(),
            error,
            next_try: Instant::now() + retry_in,
        };
        match self.waiting.lock() {
            Ok(mut w) => w.insert(index, entry),
            Err(poisoned) => poisoned.into_inner().insert(index, entry),
        };
    }

    /// Line `index` has addresses again.
    fn note_resolved(&self, index: usize) {
        match self.waiting.lock() {
            Ok(mut w) => w.remove(&index),
            Err(poisoned) => poisoned.into_inner().remove(&index),
        };
    }

    /// The server lines still waiting for their name to resolve.
    pub fn unresolved(&self) -> Vec<Unresolved> {
        match self.waiting.lock() {
            Ok(w) => w.values().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().values().cloned().collect(),
        }
    }

    fn add_resolved(&self, index: usize, addrs: Vec<PeerAddr>) {
        let entries: Vec<Resolved> = addrs
            .into_iter()
            .map(|addr| Resolved {
                line: index,
                addr,
                weight: None,
                srv_backup: false,
            })
            .collect();
        self.set_line(index, entries);
    }

    /// Replaces the addresses of server line `index`. Peers that stay keep
    /// their balancer state; removed ones take no new requests (requests in
    /// flight to them finish).
    pub fn set_line(&self, index: usize, entries: Vec<Resolved>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.resolved.retain(|r| r.line != index);
        state.resolved.extend(entries);
        // Keep the order of the server lines, as nginx builds its peer list.
        state
            .resolved
            .sort_by(|a, b| (a.line, &a.addr).cmp(&(b.line, &b.addr)));
        // An address twice in one line is one peer; the same address on two
        // lines is two peers, as nginx builds them (each with its own
        // max_conns, down, weight).
        state
            .resolved
            .dedup_by(|a, b| a.line == b.line && a.addr == b.addr);
        let peers: Vec<PeerConfig> = state
            .resolved
            .iter()
            .map(|r| peer_config(&self.config.servers[r.line], r))
            .collect();
        let result = if peers.is_empty() {
            state.balancer = None;
            Ok(())
        } else {
            match state.balancer.as_mut() {
                Some(b) => b.set_peers(peers),
                None => Balancer::new(self.config.method, peers, seed()).map(|b| {
                    state.balancer = Some(b);
                }),
            }
        };
        if let Err(e) = result {
            error_log::error(None, &format!("upstream \"{}\": {e}", self.config.name));
        }
        let State {
            balancer, addrs, ..
        } = &mut *state;
        addrs.clear();
        if let Some(b) = balancer.as_ref() {
            let metrics = crate::observe::metrics::global();
            for (id, cfg, _) in b.peers() {
                if let Ok(addr) = cfg.name.parse::<PeerAddr>() {
                    let metrics = if self.ephemeral {
                        Arc::default()
                    } else {
                        metrics.peer(&self.label, &cfg.name)
                    };
                    let entry = PeerEntry {
                        addr,
                        metrics,
                        label: Arc::from(cfg.name.as_str()),
                    };
                    addrs.insert(id, entry);
                }
            }
        }
    }

    /// The addresses of server line `index` now.
    pub fn line_addresses(&self, index: usize) -> Vec<Resolved> {
        match self.state.lock() {
            Ok(state) => state
                .resolved
                .iter()
                .filter(|r| r.line == index)
                .cloned()
                .collect(),
            Err(_) => Vec::new(),
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
        let entry = addrs.get(&id)?;
        Some(Picked {
            id,
            addr: entry.addr.clone(),
            metrics: entry.metrics.clone(),
            label: entry.label.clone(),
        })
    }

    /// Reports that an attempt connected (stream: a peer that recovered
    /// after `fail_timeout` is counted healthy from its first connect).
    pub fn connected(&self, id: PeerId) {
        if let Ok(mut state) = self.state.lock() {
            if let Some(b) = state.balancer.as_mut() {
                b.connected(id);
            }
        }
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

    /// The current peers and their addresses.
    pub fn peer_addresses(&self) -> Vec<(PeerId, PeerAddr)> {
        match self.state.lock() {
            Ok(state) => state
                .addrs
                .iter()
                .map(|(id, e)| (*id, e.addr.clone()))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Marks a peer healthy or not (active health checks).
    pub fn set_health(&self, id: PeerId, healthy: bool) {
        if let Ok(mut state) = self.state.lock() {
            if let Some(b) = state.balancer.as_mut() {
                b.set_health(id, healthy);
            }
        }
    }

    /// A snapshot of the peers: their configuration and state now.
    pub fn snapshot(&self) -> Vec<(PeerConfig, balance::PeerStats)> {
        let now = self.now_ms();
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        match state.balancer.as_ref() {
            Some(b) => b
                .peers_at(now)
                .map(|(_, cfg, stats)| (cfg.clone(), stats))
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

/// The first retry of a name that did not resolve at start; later ones
/// back off to [`LAST_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(250);
const LAST_RETRY: Duration = Duration::from_secs(5);

async fn retry_until_resolved(upstream: std::sync::Weak<Upstream>, index: usize) {
    let mut delay = FIRST_RETRY;
    loop {
        tokio::time::sleep(delay).await;
        let Some(up) = upstream.upgrade() else { return };
        let server = &up.config.servers[index];
        let next = (delay * 2).min(LAST_RETRY);
        let looked_up = resolve::resolve_server(server).await;
        if let Err(e) = &looked_up {
            up.note_unresolved(index, error_log::os_error(e), next);
        }
        if let Ok(addrs) = looked_up {
            let shown = addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            up.add_resolved(index, addrs);
            up.note_resolved(index);
            // At the level of the "host not found" line, so whoever saw that
            // one sees this one too.
            error_log::error(
                None,
                &format!(
                    "host \"{}\" in upstream \"{}\" in {} resolved to {}, peer added",
                    server.display_name(),
                    up.config.name,
                    server.position,
                    shown
                ),
            );
            return;
        }
        delay = next;
    }
}

/// Re-resolves server line `index` for as long as its group lives: by the
/// records' TTL (or `valid=`). A failed lookup keeps the last good
/// addresses and is retried soon; an answer that the name is gone removes
/// them.
/// `first_done` is signalled once the first lookup's answer is applied.
async fn keep_resolving(
    upstream: std::sync::Weak<Upstream>,
    index: usize,
    dns: Arc<dns::Dns>,
    first_done: tokio::sync::oneshot::Sender<()>,
) {
    let mut first_done = Some(first_done);
    let mut failures = 0u32;
    loop {
        let Some(up) = upstream.upgrade() else { return };
        let server = up.config.servers[index].clone();
        let written = server.display_name();
        let result = match &server.service {
            Some(service) => dns
                .lookup_srv(service, &server.host)
                .await
                .map(|(peers, next)| {
                    let best = peers.iter().map(|p| p.priority).min().unwrap_or(0);
                    let entries = peers
                        .iter()
                        .map(|p| Resolved {
                            line: index,
                            addr: p.addr.into(),
                            weight: Some(p.weight),
                            srv_backup: p.priority != best,
                        })
                        .collect::<Vec<_>>();
                    (entries, next)
                }),
            None => dns
                .lookup_ip(&server.host, server.port)
                .await
                .map(|(addrs, next)| {
                    let entries = addrs
                        .into_iter()
                        .map(|addr| Resolved {
                            line: index,
                            addr: addr.into(),
                            weight: None,
                            srv_backup: false,
                        })
                        .collect::<Vec<_>>();
                    (entries, next)
                }),
        };
        let before = up.line_addresses(index);
        let wait = match result {
            Ok((entries, next)) => {
                failures = 0;
                up.note_resolved(index);
                if entries != before {
                    describe_change(&up.config.name, &written, &before, &entries);
                    up.set_line(index, entries);
                }
                next
            }
            Err(dns::LookupError::NotFound) => {
                failures = 0;
                if !before.is_empty() {
                    error_log::warn(&format!(
                        "upstream \"{}\": \"{written}\" no longer resolves, its peers are removed",
                        up.config.name
                    ));
                    up.set_line(index, Vec::new());
                }
                let wait = Duration::from_secs(1);
                up.note_unresolved(index, "host not found".to_string(), wait);
                wait
            }
            Err(dns::LookupError::Failed(why)) => {
                failures += 1;
                error_log::warn(&format!(
                    "upstream \"{}\": could not resolve \"{written}\" ({why}); keeping {} known address(es)",
                    up.config.name,
                    before.len()
                ));
                let wait = Duration::from_millis(500 * u64::from(failures.min(10)));
                if before.is_empty() {
                    up.note_unresolved(index, why.to_string(), wait);
                }
                wait
            }
        };
        drop(up);
        if let Some(done) = first_done.take() {
            let _ = done.send(());
        }
        tokio::time::sleep(wait).await;
    }
}

fn describe_change(upstream: &str, written: &str, before: &[Resolved], after: &[Resolved]) {
    for a in after
        .iter()
        .filter(|a| !before.iter().any(|b| b.addr == a.addr))
    {
        error_log::notice(&format!(
            "upstream \"{upstream}\": \"{written}\" added peer {}",
            a.addr
        ));
    }
    for b in before
        .iter()
        .filter(|b| !after.iter().any(|a| a.addr == b.addr))
    {
        error_log::notice(&format!(
            "upstream \"{upstream}\": \"{written}\" removed peer {}",
            b.addr
        ));
    }
}
