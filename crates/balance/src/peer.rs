//! Peer configuration, identity and the per-peer runtime state that nginx
//! keeps in `ngx_http_upstream_rr_peer_t` (fails, checked, accessed, conns,
//! current and effective weight).

/// One `server` line of an `upstream` block, after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// `weight=N`; must be at least 1 (nginx rejects `weight=0`).
    pub weight: u32,
    /// `max_fails=N`; nginx's default is 1. Zero disables failure accounting
    /// (the peer is never considered failed).
    pub max_fails: u32,
    /// `fail_timeout=T` in milliseconds; nginx's default is 10 seconds.
    pub fail_timeout_ms: u64,
    /// `backup`: used only when every primary peer is unavailable.
    pub backup: bool,
    /// `down`: never used.
    pub down: bool,
    /// `max_conns=N`; zero means unlimited.
    pub max_conns: u32,
    /// The address exactly as written on the `server` line (e.g.
    /// `"10.0.0.1:8080"`, `"backend"`, `"unix:/tmp/sock"`). Used as the
    /// identity of the peer across [`crate::Balancer::set_peers`] and as the
    /// input of the consistent-hash (ketama) points.
    pub name: String,
    /// The server as written on its `server` line, when several peers come
    /// from one line (a name with several addresses): `hash ... consistent`
    /// hashes this, as nginx does, so every address of one line shares its
    /// ketama points. Defaults to `name`.
    pub server: String,
}

impl PeerConfig {
    /// A peer with nginx's defaults (`weight=1 max_fails=1 fail_timeout=10s`).
    pub fn new(name: impl Into<String>) -> Self {
        PeerConfig {
            weight: 1,
            max_fails: 1,
            fail_timeout_ms: 10_000,
            backup: false,
            down: false,
            max_conns: 0,
            server: String::new(),
            name: name.into(),
        }
    }

    /// Builder-style setter for [`PeerConfig::server`].
    pub fn server(mut self, server: impl Into<String>) -> Self {
        self.server = server.into();
        self
    }

    /// The name `hash ... consistent` hashes: `server`, or `name` when unset.
    pub fn hash_name(&self) -> &str {
        if self.server.is_empty() {
            &self.name
        } else {
            &self.server
        }
    }

    /// Builder-style setter for [`PeerConfig::weight`].
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Builder-style setter for [`PeerConfig::max_fails`].
    pub fn max_fails(mut self, max_fails: u32) -> Self {
        self.max_fails = max_fails;
        self
    }

    /// Builder-style setter for [`PeerConfig::fail_timeout_ms`].
    pub fn fail_timeout_ms(mut self, ms: u64) -> Self {
        self.fail_timeout_ms = ms;
        self
    }

    /// Builder-style setter for [`PeerConfig::backup`].
    pub fn backup(mut self, backup: bool) -> Self {
        self.backup = backup;
        self
    }

    /// Builder-style setter for [`PeerConfig::down`].
    pub fn down(mut self, down: bool) -> Self {
        self.down = down;
        self
    }

    /// Builder-style setter for [`PeerConfig::max_conns`].
    pub fn max_conns(mut self, max_conns: u32) -> Self {
        self.max_conns = max_conns;
        self
    }
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig::new("")
    }
}

/// Stable identity of a peer inside one [`crate::Balancer`].
///
/// Ids are never reused: a peer removed by [`crate::Balancer::set_peers`]
/// keeps its id forever, so a late [`crate::Balancer::finish`] on it is a
/// harmless no-op. A peer kept across `set_peers` keeps its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub(crate) u64);

impl PeerId {
    /// The raw numeric id (unique within the balancer that issued it).
    pub fn get(self) -> u64 {
        self.0
    }
}

/// A snapshot of a peer's runtime state, for status pages and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStats {
    /// Connections currently picked and not yet finished.
    pub active_conns: u32,
    /// nginx's `fails` counter (reset by a success after `fail_timeout`, or
    /// when every peer is unavailable).
    pub fails: u32,
    /// Total number of times this peer was picked.
    pub requests: u64,
    /// Total number of failed attempts reported through `finish`.
    pub failures: u64,
    /// Whether the peer is currently skipped because of `max_fails` /
    /// `fail_timeout` (at the time the stats were taken).
    pub failed: bool,
    /// Whether the active health check considers the peer healthy.
    pub healthy: bool,
    /// Whether the peer is at its `max_conns` limit.
    pub at_max_conns: bool,
    /// nginx's `effective_weight` (lowered by failures, recovers by one per
    /// selection round).
    pub effective_weight: i64,
    /// nginx's smooth round-robin `current_weight`.
    pub current_weight: i64,
}

/// Runtime state of one peer (nginx's `ngx_http_upstream_rr_peer_t`).
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) id: u64,
    pub(crate) cfg: PeerConfig,
    pub(crate) conns: u32,
    pub(crate) fails: u32,
    /// Time of the last failure.
    pub(crate) accessed: u64,
    /// Time of the last failure, or of the first pick after `fail_timeout`.
    pub(crate) checked: u64,
    pub(crate) current_weight: i64,
    pub(crate) effective_weight: i64,
    pub(crate) healthy: bool,
    pub(crate) requests: u64,
    pub(crate) failures: u64,
}

impl Peer {
    pub(crate) fn new(id: u64, cfg: PeerConfig) -> Self {
        Peer {
            id,
            effective_weight: i64::from(cfg.weight),
            cfg,
            conns: 0,
            fails: 0,
            accessed: 0,
            checked: 0,
            current_weight: 0,
            healthy: true,
            requests: 0,
            failures: 0,
        }
    }

    pub(crate) fn weight(&self) -> i64 {
        i64::from(self.cfg.weight)
    }

    /// `down`, or marked unhealthy by an active health check.
    pub(crate) fn is_down(&self) -> bool {
        self.cfg.down || !self.healthy
    }

    /// nginx: `max_fails && fails >= max_fails && now - checked <= fail_timeout`.
    pub(crate) fn is_failed(&self, now: u64) -> bool {
        self.cfg.max_fails != 0
            && self.fails >= self.cfg.max_fails
            && now.saturating_sub(self.checked) <= self.cfg.fail_timeout_ms
    }

    /// nginx: `max_conns && conns >= max_conns`.
    pub(crate) fn is_full(&self) -> bool {
        self.cfg.max_conns != 0 && self.conns >= self.cfg.max_conns
    }

    /// Not down, not failed, not at `max_conns`.
    pub(crate) fn usable(&self, now: u64) -> bool {
        !self.is_down() && !self.is_failed(now) && !self.is_full()
    }

    /// nginx: `if (now - checked > fail_timeout) checked = now;` done when a
    /// peer is selected (not in the single-peer path).
    pub(crate) fn touch_checked(&mut self, now: u64) {
        if now.saturating_sub(self.checked) > self.cfg.fail_timeout_ms {
            self.checked = now;
        }
    }

    /// One step of smooth weighted round robin for a candidate peer:
    /// `current_weight += effective_weight`, and `effective_weight` recovers
    /// by one toward `weight`. Returns the effective weight to add to the
    /// round's total.
    pub(crate) fn wrr_step(&mut self) -> i64 {
        let ew = self.effective_weight;
        self.current_weight += ew;
        if self.effective_weight < self.weight() {
            self.effective_weight += 1;
        }
        ew
    }

    pub(crate) fn stats(&self, now: u64) -> PeerStats {
        PeerStats {
            active_conns: self.conns,
            fails: self.fails,
            requests: self.requests,
            failures: self.failures,
            failed: self.is_failed(now),
            healthy: self.healthy,
            at_max_conns: self.is_full(),
            effective_weight: self.effective_weight,
            current_weight: self.current_weight,
        }
    }
}
