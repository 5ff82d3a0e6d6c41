//! `random` and `random two [least_conn]` (nginx's
//! `ngx_http_upstream_random_module.c`), with a small seeded PRNG in place
//! of `ngx_random()`.

use crate::balancer::{Balancer, Sel};
use crate::ip_hash::weighted_index;
use crate::Attempt;

/// Probes before falling back to round robin.
const MAX_TRIES: u32 = 20;

/// SplitMix64: tiny, seedable, good enough for load balancing.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Balancer {
    /// A peer index drawn uniformly by weight over all primaries (`down`
    /// ones included, as nginx's ranges do).
    fn peek_random(&mut self) -> usize {
        let x = self.rng.next_u64();
        weighted_index(&self.primary, self.total_weight, x)
    }

    /// `ngx_http_upstream_get_random_peer` / `get_random2_peer`.
    pub(crate) fn get_random(&mut self, a: &mut Attempt, two: bool, now: u64) -> Option<Sel> {
        if a.hash_tries > MAX_TRIES || self.primary.len() < 2 || a.generation != self.generation {
            return self.get_round_robin(a, now);
        }
        let mut prev: Option<usize> = None;
        loop {
            let idx = self.peek_random();
            let p = &self.primary[idx];
            let ok = prev != Some(idx) && !a.is_tried(p.id) && p.usable(now);
            if ok {
                if !two {
                    return Some(self.take_random(idx, now));
                }
                if let Some(q) = prev {
                    // Two choices: keep the first unless the second has a
                    // strictly lower conns/weight.
                    let (pp, qq) = (&self.primary[idx], &self.primary[q]);
                    let l = u64::from(pp.conns) * u64::from(qq.cfg.weight);
                    let r = u64::from(qq.conns) * u64::from(pp.cfg.weight);
                    let chosen = if l > r { q } else { idx };
                    return Some(self.take_random(chosen, now));
                }
                prev = Some(idx);
            }
            a.hash_tries += 1;
            if a.hash_tries > MAX_TRIES {
                return self.get_round_robin(a, now);
            }
        }
    }

    fn take_random(&mut self, idx: usize, now: u64) -> Sel {
        self.primary[idx].touch_checked(now);
        Sel { backup: false, idx }
    }
}
