//! `least_conn` (nginx's `ngx_http_upstream_least_conn_module.c`).

use crate::balancer::{Balancer, Sel};
use crate::peer::Peer;
use crate::Attempt;

/// `a.conns / a.weight` compared with `b.conns / b.weight` without division,
/// as nginx does: `a.conns * b.weight` vs `b.conns * a.weight`.
fn load_cmp(a: &Peer, b: &Peer) -> std::cmp::Ordering {
    let l = u64::from(a.conns) * u64::from(b.cfg.weight);
    let r = u64::from(b.conns) * u64::from(a.cfg.weight);
    l.cmp(&r)
}

impl Balancer {
    /// `ngx_http_upstream_get_least_conn_peer`, with backup failover.
    pub(crate) fn get_least_conn(&mut self, a: &mut Attempt, now: u64) -> Option<Sel> {
        if self.is_single(a.in_backup) {
            return self.get_round_robin(a, now);
        }
        self.with_failover(a, now, Self::least_conn_tier)
    }

    fn least_conn_tier(&mut self, a: &mut Attempt, now: u64) -> Option<Sel> {
        let backup = a.in_backup;
        let tried = &a.tried;
        let peers = self.tier_mut(backup);
        let candidate = |p: &Peer| !tried.contains(&p.id) && p.usable(now);

        // First pass: the lowest conns/weight; remember whether it is tied.
        let mut best: Option<usize> = None;
        let mut many = false;
        for (i, p) in peers.iter().enumerate() {
            if !candidate(p) {
                continue;
            }
            match best {
                None => {
                    best = Some(i);
                    many = false;
                }
                Some(b) => match load_cmp(p, &peers[b]) {
                    std::cmp::Ordering::Less => {
                        best = Some(i);
                        many = false;
                    }
                    std::cmp::Ordering::Equal => many = true,
                    std::cmp::Ordering::Greater => {}
                },
            }
        }
        let first = best?;
        let mut best = first;

        if many {
            // Second pass, from the first best onward: smooth weighted
            // round robin among the peers tied at the lowest load.
            let mut total = 0i64;
            for i in first..peers.len() {
                if !candidate(&peers[i]) || load_cmp(&peers[i], &peers[best]).is_ne() {
                    continue;
                }
                total += peers[i].wrr_step();
                if peers[i].current_weight > peers[best].current_weight {
                    best = i;
                }
            }
            peers[best].current_weight -= total;
        }

        peers[best].touch_checked(now);
        Some(Sel { backup, idx: best })
    }
}
