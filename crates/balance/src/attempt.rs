//! Per-request balancing state (nginx's `ngx_http_upstream_rr_peer_data_t`
//! plus the hash/ip_hash/random per-request data).

use crate::PeerId;

/// The state of one request across its retries: which peers were already
/// tried, how many tries are left, whether it moved on to the backup peers,
/// and the per-method hashing state.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Ids of the peers already picked for this request.
    pub(crate) tried: Vec<u64>,
    /// nginx's `rrp->peers == peers->next`: the request switched to backups.
    pub(crate) in_backup: bool,
    /// nginx's `pc->tries`.
    pub(crate) tries: u32,
    /// The balancer's peer-set generation when the attempt started.
    pub(crate) generation: u64,
    /// `hp->tries`, `iphp->tries` or `rp->tries`: hash probes so far.
    pub(crate) hash_tries: u32,
    /// `hp->rehash` (plain `hash`).
    pub(crate) rehash: u32,
    /// `hp->hash` (plain `hash`: running sum) or `iphp->hash` (`ip_hash`).
    pub(crate) hash: u32,
    /// Ketama ring position (`hp->hash` of `hash ... consistent`), computed
    /// from the key at the first pick.
    pub(crate) chash_point: Option<usize>,
    /// Number of successful picks.
    pub(crate) picks: u32,
}

impl Attempt {
    pub(crate) fn new(tries: u32, generation: u64, initial_hash: u32) -> Self {
        Attempt {
            tried: Vec::new(),
            in_backup: false,
            tries,
            generation,
            hash_tries: 0,
            rehash: 0,
            hash: initial_hash,
            chash_point: None,
            picks: 0,
        }
    }

    /// Tries left (nginx's `u->peer.tries`). Starts at the number of
    /// non-`down` peers, backups included; each successful pick uses one,
    /// and a pick from a single-peer upstream uses all of them (nginx sets
    /// `tries = 0` when freeing the only peer). Retry only while this is
    /// non-zero.
    pub fn tries_left(&self) -> u32 {
        self.tries
    }

    /// Apply `proxy_next_upstream_tries N`: cap the tries at `n`
    /// (0 means no limit, as in nginx).
    pub fn limit_tries(&mut self, n: u32) {
        if n != 0 && self.tries > n {
            self.tries = n;
        }
    }

    /// Whether `peer` was already picked for this request.
    pub fn was_tried(&self, peer: PeerId) -> bool {
        self.is_tried(peer.0)
    }

    /// Number of successful picks made with this attempt.
    pub fn picks(&self) -> u32 {
        self.picks
    }

    /// Whether the request has moved on to the backup peers.
    pub fn in_backup(&self) -> bool {
        self.in_backup
    }

    pub(crate) fn is_tried(&self, id: u64) -> bool {
        self.tried.contains(&id)
    }
}
