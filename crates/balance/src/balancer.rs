//! The [`Balancer`]: the peer table of one `upstream` block and the entry
//! points shared by all methods.

use std::collections::HashMap;

use crate::hash::Ring;
use crate::peer::Peer;
use crate::random::SplitMix64;
use crate::{Attempt, Error, Method, NoLivePeer, Outcome, PeerConfig, PeerId, PeerStats};

/// A selected peer: tier (`backup`) and index inside the tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sel {
    pub(crate) backup: bool,
    pub(crate) idx: usize,
}

/// The balancer of one `upstream` block: peers, their runtime state and the
/// method's tables. Not thread-safe by design; wrap it in a `Mutex`.
#[derive(Debug, Clone)]
pub struct Balancer {
    pub(crate) method: Method,
    pub(crate) primary: Vec<Peer>,
    pub(crate) backup: Vec<Peer>,
    /// Sum of primary weights, `down` peers included (nginx's
    /// `peers->total_weight`).
    pub(crate) total_weight: u64,
    /// Ketama points (`hash ... consistent` only).
    pub(crate) ring: Ring,
    pub(crate) rng: SplitMix64,
    /// Bumped by `set_peers`; attempts from an older generation fall back to
    /// round robin for the hash methods, as nginx does after a zone update.
    pub(crate) generation: u64,
    next_id: u64,
    index: HashMap<u64, Sel>,
    last_now: u64,
}

impl Balancer {
    /// Build a balancer. Fails like nginx's configuration check: no
    /// non-backup server, `weight=0`, or `backup` with a method that does
    /// not support it (`hash`, `ip_hash`, `random`).
    pub fn new(method: Method, peers: Vec<PeerConfig>, seed: u64) -> Result<Self, Error> {
        validate(method, &peers)?;
        let mut b = Balancer {
            method,
            primary: Vec::new(),
            backup: Vec::new(),
            total_weight: 0,
            ring: Ring::default(),
            rng: SplitMix64::new(seed),
            generation: 0,
            next_id: 0,
            index: HashMap::new(),
            last_now: 0,
        };
        for cfg in peers {
            let id = b.alloc_id();
            let peer = Peer::new(id, cfg);
            if peer.cfg.backup {
                b.backup.push(peer);
            } else {
                b.primary.push(peer);
            }
        }
        b.rebuild();
        Ok(b)
    }

    /// The balancing method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// Start a request. Its tries budget is the number of non-`down` peers,
    /// backups included (nginx's `ngx_http_upstream_tries()`).
    pub fn start(&self) -> Attempt {
        let tries = self
            .primary
            .iter()
            .chain(self.backup.iter())
            .filter(|p| !p.cfg.down)
            .count() as u32;
        let initial_hash = match self.method {
            Method::IpHash => crate::ip_hash::INITIAL_HASH,
            _ => 0,
        };
        Attempt::new(tries, self.generation, initial_hash)
    }

    /// Pick a peer for `attempt` (first try or retry). `key` is the client
    /// address for `ip_hash` (4 bytes for IPv4, 16 for IPv6), the evaluated
    /// key for `hash`, and ignored otherwise. The peer's active connection
    /// count is incremented; every successful pick must be followed by one
    /// [`Balancer::finish`].
    ///
    /// On `Err(NoLivePeer)` nothing is reset: failed peers stay out until
    /// their `fail_timeout` passes, as in nginx 1.22.
    pub fn pick(
        &mut self,
        attempt: &mut Attempt,
        key: &[u8],
        now_ms: u64,
    ) -> Result<PeerId, NoLivePeer> {
        self.last_now = now_ms;
        let sel = match self.method {
            Method::RoundRobin => self.get_round_robin(attempt, now_ms),
            Method::LeastConn => self.get_least_conn(attempt, now_ms),
            Method::IpHash => self.get_ip_hash(attempt, key, now_ms),
            Method::Hash { consistent: false } => self.get_hash(attempt, key, now_ms),
            Method::Hash { consistent: true } => self.get_chash(attempt, key, now_ms),
            Method::Random { two } => self.get_random(attempt, two, now_ms),
        };
        let Some(sel) = sel else {
            return Err(NoLivePeer);
        };
        let single = self.is_single(sel.backup);
        let peer = self.peer_mut(sel);
        peer.conns += 1;
        peer.requests += 1;
        let id = peer.id;
        attempt.tried.push(id);
        attempt.picks += 1;
        attempt.tries = if single {
            0
        } else {
            attempt.tries.saturating_sub(1)
        };
        Ok(PeerId(id))
    }

    /// Report the end of a pick: decrements active connections and applies
    /// nginx's accounting. On failure: `fails += 1`, `accessed = checked =
    /// now`, `effective_weight -= weight / max_fails` (floored at 0). On
    /// success after a `fail_timeout` probe (`accessed < checked`):
    /// `fails = 0`. A single-peer upstream does no failure accounting (its
    /// `fails` is cleared instead).
    /// Unknown (e.g. removed) peers are ignored.
    pub fn finish(&mut self, peer: PeerId, outcome: Outcome, now_ms: u64) {
        self.last_now = now_ms;
        let Some(&sel) = self.index.get(&peer.0) else {
            return;
        };
        let single = self.is_single(sel.backup);
        let p = self.peer_mut(sel);
        p.conns = p.conns.saturating_sub(1);
        if outcome == Outcome::Failure {
            p.failures += 1;
        }
        if single {
            // nginx (1.27.3+) also clears any stale `fails` here; a single
            // peer never accumulates them.
            p.fails = 0;
            return;
        }
        match outcome {
            Outcome::Failure => {
                p.fails += 1;
                p.accessed = now_ms;
                p.checked = now_ms;
                if p.cfg.max_fails != 0 {
                    p.effective_weight -= p.weight() / i64::from(p.cfg.max_fails);
                }
                if p.effective_weight < 0 {
                    p.effective_weight = 0;
                }
            }
            Outcome::Success => {
                if p.accessed < p.checked {
                    p.fails = 0;
                }
            }
        }
    }

    /// Report that a pick connected, before the attempt ends (nginx's
    /// stream `NGX_STREAM_UPSTREAM_NOTIFY_CONNECT`): a peer probed after
    /// `fail_timeout` (`accessed < checked`) has its `fails` cleared now,
    /// so long sessions do not keep a recovered peer out of the rotation.
    /// The active connection stays counted until [`Balancer::finish`].
    pub fn connected(&mut self, peer: PeerId) {
        let Some(&sel) = self.index.get(&peer.0) else {
            return;
        };
        let p = self.peer_mut(sel);
        if p.accessed < p.checked {
            p.fails = 0;
        }
    }

    /// All peers (primaries first, then backups, in configuration order)
    /// with a stats snapshot. "Failed" is evaluated at the last `now` seen
    /// by `pick`/`finish`; see [`Balancer::peers_at`] to choose the time.
    pub fn peers(&self) -> impl Iterator<Item = (PeerId, &PeerConfig, PeerStats)> + '_ {
        self.peers_at(self.last_now)
    }

    /// Like [`Balancer::peers`], evaluating "failed" at `now_ms`.
    pub fn peers_at(
        &self,
        now_ms: u64,
    ) -> impl Iterator<Item = (PeerId, &PeerConfig, PeerStats)> + '_ {
        self.primary
            .iter()
            .chain(self.backup.iter())
            .map(move |p| (PeerId(p.id), &p.cfg, p.stats(now_ms)))
    }

    /// One peer's configuration and stats, if it still exists.
    pub fn peer(&self, id: PeerId) -> Option<(&PeerConfig, PeerStats)> {
        let sel = *self.index.get(&id.0)?;
        let p = self.peer_ref(sel);
        Some((&p.cfg, p.stats(self.last_now)))
    }

    /// Replace the peer set in place. Peers whose `name` and `backup` flag
    /// match an existing peer keep their id and state (fails, conns,
    /// weights, health); removed peers vanish (later `finish` calls on them
    /// are no-ops); new peers start fresh. Tables are rebuilt. Attempts
    /// started before the change fall back to round robin for the hash
    /// methods. On error nothing changes.
    pub fn set_peers(&mut self, peers: Vec<PeerConfig>) -> Result<(), Error> {
        validate(self.method, &peers)?;
        let mut old: Vec<Option<Peer>> = self
            .primary
            .drain(..)
            .chain(self.backup.drain(..))
            .map(Some)
            .collect();
        for cfg in peers {
            let reuse = old.iter_mut().find(|o| {
                o.as_ref()
                    .is_some_and(|p| p.cfg.name == cfg.name && p.cfg.backup == cfg.backup)
            });
            let peer = match reuse.and_then(Option::take) {
                Some(mut p) => {
                    let w = i64::from(cfg.weight);
                    p.cfg = cfg;
                    p.effective_weight = p.effective_weight.min(w);
                    p
                }
                None => {
                    let id = self.alloc_id();
                    Peer::new(id, cfg)
                }
            };
            if peer.cfg.backup {
                self.backup.push(peer);
            } else {
                self.primary.push(peer);
            }
        }
        self.generation += 1;
        self.rebuild();
        Ok(())
    }

    /// Active health check result: an unhealthy peer is skipped like a
    /// `down` peer until marked healthy again. Unknown ids are ignored.
    pub fn set_health(&mut self, peer: PeerId, healthy: bool) {
        if let Some(&sel) = self.index.get(&peer.0) {
            self.peer_mut(sel).healthy = healthy;
        }
    }

    fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn rebuild(&mut self) {
        self.index.clear();
        for (idx, p) in self.primary.iter().enumerate() {
            self.index.insert(p.id, Sel { backup: false, idx });
        }
        for (idx, p) in self.backup.iter().enumerate() {
            self.index.insert(p.id, Sel { backup: true, idx });
        }
        self.total_weight = self.primary.iter().map(|p| u64::from(p.cfg.weight)).sum();
        self.ring = match self.method {
            Method::Hash { consistent: true } => Ring::build(&self.primary),
            _ => Ring::default(),
        };
    }

    /// nginx's `peers->single`: exactly one primary and no backups.
    pub(crate) fn is_single(&self, backup: bool) -> bool {
        !backup && self.primary.len() == 1 && self.backup.is_empty()
    }

    pub(crate) fn tier(&self, backup: bool) -> &[Peer] {
        if backup {
            &self.backup
        } else {
            &self.primary
        }
    }

    pub(crate) fn tier_mut(&mut self, backup: bool) -> &mut [Peer] {
        if backup {
            &mut self.backup
        } else {
            &mut self.primary
        }
    }

    pub(crate) fn peer_ref(&self, sel: Sel) -> &Peer {
        &self.tier(sel.backup)[sel.idx]
    }

    pub(crate) fn peer_mut(&mut self, sel: Sel) -> &mut Peer {
        &mut self.tier_mut(sel.backup)[sel.idx]
    }

    /// nginx's `failed:` label: when a tier is exhausted, a request on the
    /// primaries moves to the backups (clearing `tried`); if that also
    /// fails, the request gets "no live upstreams".
    pub(crate) fn with_failover(
        &mut self,
        a: &mut Attempt,
        now: u64,
        get: fn(&mut Self, &mut Attempt, u64) -> Option<Sel>,
    ) -> Option<Sel> {
        if let Some(sel) = get(self, a, now) {
            return Some(sel);
        }
        let was_backup = a.in_backup;
        if !was_backup && !self.backup.is_empty() {
            a.in_backup = true;
            a.tried.clear();
            if let Some(sel) = get(self, a, now) {
                return Some(sel);
            }
        }
        // No "mark them as live for quick recovery" reset of `fails`: old
        // nginx had one, 1.22 (the differential tests' oracle) does not, so
        // failed peers stay out until their fail_timeout passes.
        None
    }
}

fn validate(method: Method, peers: &[PeerConfig]) -> Result<(), Error> {
    if let Some(p) = peers.iter().find(|p| p.weight == 0) {
        return Err(Error::ZeroWeight(p.name.clone()));
    }
    if !method.supports_backup() && peers.iter().any(|p| p.backup) {
        return Err(Error::UnsupportedParameter("backup"));
    }
    if !peers.iter().any(|p| !p.backup) {
        return Err(Error::NoServers);
    }
    Ok(())
}
