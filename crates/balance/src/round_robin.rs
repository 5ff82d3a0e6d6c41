//! Smooth weighted round robin (nginx's `ngx_http_upstream_get_peer` and
//! `ngx_http_upstream_get_round_robin_peer`).

use crate::balancer::{Balancer, Sel};
use crate::peer::Peer;
use crate::Attempt;

/// One round of smooth weighted round robin over the peers accepted by
/// `eligible`: each adds its `effective_weight` to its `current_weight`
/// (and the effective weight recovers by one toward `weight`); the peer
/// with the largest `current_weight` wins (first one on ties) and has the
/// round's total subtracted.
pub(crate) fn smooth_pick(peers: &mut [Peer], eligible: impl Fn(&Peer) -> bool) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut total = 0i64;
    for i in 0..peers.len() {
        if !eligible(&peers[i]) {
            continue;
        }
        total += peers[i].wrr_step();
        match best {
            Some(b) if peers[i].current_weight <= peers[b].current_weight => {}
            _ => best = Some(i),
        }
    }
    let b = best?;
    peers[b].current_weight -= total;
    Some(b)
}

impl Balancer {
    /// `ngx_http_upstream_get_round_robin_peer`, with backup failover and
    /// the "all peers failed" reset.
    pub(crate) fn get_round_robin(&mut self, a: &mut Attempt, now: u64) -> Option<Sel> {
        self.with_failover(a, now, Self::rr_tier)
    }

    /// Round robin restricted to the attempt's current tier.
    pub(crate) fn rr_tier(&mut self, a: &mut Attempt, now: u64) -> Option<Sel> {
        let backup = a.in_backup;
        if self.is_single(backup) {
            // nginx's single-peer path: only `down` and `max_conns` matter;
            // max_fails is ignored and `checked` is not touched.
            let p = &self.primary[0];
            if p.is_down() || p.is_full() {
                return None;
            }
            return Some(Sel { backup, idx: 0 });
        }
        let tried = &a.tried;
        let peers = self.tier_mut(backup);
        let idx = smooth_pick(peers, |p| !tried.contains(&p.id) && p.usable(now))?;
        peers[idx].touch_checked(now);
        Some(Sel { backup, idx })
    }
}
