//! `ip_hash` (nginx's `ngx_http_upstream_ip_hash_module.c`).

use crate::balancer::{Balancer, Sel};
use crate::peer::Peer;
use crate::Attempt;

/// nginx starts every request's ip hash at 89.
pub(crate) const INITIAL_HASH: u32 = 89;

/// Probes before falling back to round robin.
const MAX_TRIES: u32 = 20;

/// The bytes nginx hashes: the first three octets of an IPv4 address, all
/// sixteen of an IPv6 address, and three zero bytes for anything else
/// (nginx's pseudo address for e.g. unix-socket clients).
pub(crate) fn hashed_bytes(key: &[u8]) -> &[u8] {
    const PSEUDO: [u8; 3] = [0, 0, 0];
    match key.len() {
        4 => &key[..3],
        16 => key,
        _ => &PSEUDO,
    }
}

/// One round of nginx's ip hash: `hash = (hash * 113 + byte) % 6271`.
pub(crate) fn ip_hash_round(mut hash: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        hash = (hash * 113 + u32::from(b)) % 6271;
    }
    hash
}

/// Weighted slot lookup shared with `hash`: walk the peers subtracting
/// weights from `hash % total_weight` (`down` peers included).
pub(crate) fn weighted_index(peers: &[Peer], total_weight: u64, hash: u64) -> usize {
    let mut w = hash % total_weight;
    let mut i = 0;
    while w >= u64::from(peers[i].cfg.weight) {
        w -= u64::from(peers[i].cfg.weight);
        i += 1;
    }
    i
}

impl Balancer {
    /// `ngx_http_upstream_get_ip_hash_peer`.
    pub(crate) fn get_ip_hash(&mut self, a: &mut Attempt, key: &[u8], now: u64) -> Option<Sel> {
        if a.hash_tries > MAX_TRIES || self.primary.len() < 2 || a.generation != self.generation {
            return self.get_round_robin(a, now);
        }
        let bytes = hashed_bytes(key);
        let mut hash = a.hash;
        loop {
            hash = ip_hash_round(hash, bytes);
            let idx = weighted_index(&self.primary, self.total_weight, u64::from(hash));
            let p = &self.primary[idx];
            if !a.is_tried(p.id) && p.usable(now) {
                self.primary[idx].touch_checked(now);
                a.hash = hash;
                return Some(Sel { backup: false, idx });
            }
            a.hash_tries += 1;
            if a.hash_tries > MAX_TRIES {
                return self.get_round_robin(a, now);
            }
        }
    }
}
