//! The state of one `limit_req_zone`, shared by every worker thread: nginx's
//! leaky bucket per key (ngx_http_limit_req_module.c), in thousandths of a
//! request, with its least-recently-used queue and its way of making room
//! when the zone is full.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crate::config::model::LimitReqZone;

/// nginx's `ngx_current_msec`: milliseconds of a monotonic clock. It starts
/// far from zero, as the system's monotonic clock does, so that a node
/// never accounted (its `last` is 0) counts as idle for ages.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    (1u64 << 32) + start.elapsed().as_millis() as u64
}

/// One key's bucket (nginx's `ngx_http_limit_req_node_t`).
#[derive(Debug, Clone)]
struct Node {
    /// Thousandths of a request over the rate.
    excess: u64,
    /// When the excess was last brought up to date.
    last: u64,
    /// Requests between their lookup and their accounting: such a node is
    /// never expired.
    count: u32,
    /// Its place in the queue (larger is more recent).
    stamp: u64,
}

/// The answer of a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Over the burst: refuse (the excess it would have had).
    Busy(u64),
    /// Within the burst; this was the last limit and it is accounted.
    Ok(u64),
    /// Within the burst; accounted later by [`ReqZone::account`].
    Again,
    /// The zone is full and nothing could be expired (nginx's "could not
    /// allocate node").
    Full,
}

#[derive(Debug, Default)]
struct State {
    nodes: HashMap<Vec<u8>, Node>,
    /// Stamp -> key, oldest first.
    queue: BTreeMap<u64, Vec<u8>>,
    next_stamp: u64,
    /// Bytes of the zone the nodes take.
    used: u64,
}

/// A zone's buckets.
#[derive(Debug)]
pub struct ReqZone {
    /// The zone's configuration (its key and size).
    pub config: Arc<LimitReqZone>,
    /// What the nodes may take of the zone, in bytes.
    budget: u64,
    state: Mutex<State>,
}

/// What a node takes of a zone in nginx's slab allocator: the tree node's
/// head, the limit_req node up to its key, and the key, rounded up to a
/// power of two (8 at least, a whole page past half a page).
fn node_cost(key_len: usize) -> u64 {
    let size = (32 + 44 + key_len) as u64;
    if size > 2048 {
        return size.div_ceil(4096) * 4096;
    }
    size.next_power_of_two().max(8)
}

/// The part of a zone of `size` bytes nodes can use: nginx's slab pool
/// keeps its header and page table in the zone, and the module's own
/// tree and log context take a little more.
pub fn zone_budget(size: u64) -> u64 {
    (size / 4096).saturating_sub(1) * 4096 - 256
}

/// `excess - rate * ms / 1000 + 1000` as nginx computes it, never below 0.
fn leak(excess: u64, rate: u64, now: u64, last: u64, add: i128) -> (u64, i128) {
    let mut ms = now as i128 - last as i128;
    if ms < -60000 {
        ms = 1;
    } else if ms < 0 {
        ms = 0;
    }
    let value = excess as i128 - (rate as i128) * ms / 1000 + add;
    (value.max(0) as u64, ms)
}

impl ReqZone {
    /// An empty zone.
    pub fn new(config: Arc<LimitReqZone>) -> Arc<ReqZone> {
        Arc::new(ReqZone {
            budget: zone_budget(config.size),
            config,
            state: Mutex::new(State::default()),
        })
    }

    /// A zone for `config` that keeps `self`'s buckets (a reload that kept
    /// the zone's key and size): the new rate applies from now on.
    pub fn renewed(self: &Arc<ReqZone>, config: Arc<LimitReqZone>) -> Arc<ReqZone> {
        let state = self
            .state
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        Arc::new(ReqZone {
            budget: zone_budget(config.size),
            config,
            state: Mutex::new(state),
        })
    }

    /// nginx's `ngx_http_limit_req_lookup`: the key's excess after this
    /// request against `burst`; the last limit of a location (`account`)
    /// updates the bucket now, the others later through `account`.
    pub fn lookup(&self, key: &[u8], burst: u64, account: bool, now: u64) -> Lookup {
        let rate = self.config.rate;
        let Ok(mut guard) = self.state.lock() else {
            return Lookup::Full;
        };
        let state = &mut *guard;
        state.next_stamp += 1;
        let stamp = state.next_stamp;
        if let Some(node) = state.nodes.get_mut(key) {
            state.queue.remove(&node.stamp);
            node.stamp = stamp;
            state.queue.insert(stamp, key.to_vec());
            let (excess, ms) = leak(node.excess, rate, now, node.last, 1000);
            if excess > burst {
                return Lookup::Busy(excess);
            }
            if account {
                node.excess = excess;
                if ms != 0 {
                    node.last = now;
                }
                return Lookup::Ok(excess);
            }
            node.count += 1;
            return Lookup::Again;
        }
        let cost = node_cost(key.len());
        state.expire(rate, now, 1);
        if state.used + cost > self.budget {
            state.expire(rate, now, 0);
            if state.used + cost > self.budget {
                return Lookup::Full;
            }
        }
        state.used += cost;
        state.queue.insert(stamp, key.to_vec());
        let (last, count) = if account { (now, 0) } else { (0, 1) };
        state.nodes.insert(
            key.to_vec(),
            Node {
                excess: 0,
                last,
                count,
                stamp,
            },
        );
        if account {
            Lookup::Ok(0)
        } else {
            Lookup::Again
        }
    }

    /// nginx's accounting of a limit that answered [`Lookup::Again`]: the
    /// bucket takes the request; returns the new excess.
    pub fn account(&self, key: &[u8], now: u64) -> u64 {
        let rate = self.config.rate;
        let Ok(mut state) = self.state.lock() else {
            return 0;
        };
        let Some(node) = state.nodes.get_mut(key) else {
            return 0;
        };
        let (excess, ms) = leak(node.excess, rate, now, node.last, 1000);
        if ms != 0 {
            node.last = now;
        }
        node.excess = excess;
        node.count = node.count.saturating_sub(1);
        excess
    }

    /// Releases a limit that answered [`Lookup::Again`] when a later one
    /// refused the request: its bucket is left as it was.
    pub fn release(&self, key: &[u8]) {
        if let Ok(mut state) = self.state.lock() {
            if let Some(node) = state.nodes.get_mut(key) {
                node.count = node.count.saturating_sub(1);
            }
        }
    }

    /// How many keys the zone remembers.
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.nodes.len()).unwrap_or(0)
    }

    /// Whether the zone remembers no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl State {
    /// nginx's `ngx_http_limit_req_expire`: `n == 1` drops up to two idle
    /// buckets that have drained, `n == 0` drops the oldest by force and
    /// then up to two drained ones. A bucket in use stops the sweep.
    fn expire(&mut self, rate: u64, now: u64, mut n: u32) {
        while n < 3 {
            let Some((&stamp, key)) = self.queue.iter().next() else {
                return;
            };
            let Some(node) = self.nodes.get(key) else {
                self.queue.remove(&stamp);
                continue;
            };
            if node.count != 0 {
                return;
            }
            let forced = n == 0;
            n += 1;
            if !forced {
                let ms = (now as i128 - node.last as i128).abs();
                if ms < 60000 {
                    return;
                }
                let excess = node.excess as i128 - (rate as i128) * ms / 1000;
                if excess > 0 {
                    return;
                }
            }
            let key = key.clone();
            self.queue.remove(&stamp);
            self.nodes.remove(&key);
            self.used = self.used.saturating_sub(node_cost(key.len()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(rate: u64, size: u64) -> Arc<ReqZone> {
        ReqZone::new(Arc::new(LimitReqZone {
            name: "one".into(),
            key: crate::vars::Template::default(),
            key_text: "$binary_remote_addr".into(),
            rate,
            size,
        }))
    }

    #[test]
    fn the_bucket_leaks_at_the_rate() {
        // 2r/s, burst=1: the first passes, the second is 1.000 over
        // (within the burst), the third is refused; 500ms later one
        // request's worth has leaked.
        let z = zone(2000, 1 << 20);
        let t = 1 << 32;
        assert_eq!(z.lookup(b"a", 1000, true, t), Lookup::Ok(0));
        assert_eq!(z.lookup(b"a", 1000, true, t), Lookup::Ok(1000));
        assert_eq!(z.lookup(b"a", 1000, true, t), Lookup::Busy(2000));
        assert_eq!(z.lookup(b"a", 1000, true, t + 250), Lookup::Busy(1500));
        assert_eq!(z.lookup(b"a", 1000, true, t + 500), Lookup::Ok(1000));
        assert_eq!(z.lookup(b"b", 1000, true, t), Lookup::Ok(0));
        assert_eq!(z.lookup(b"a", 0, true, t + 10_000), Lookup::Ok(0));
    }

    #[test]
    fn a_refusal_does_not_fill_the_bucket() {
        let z = zone(1000, 1 << 20);
        let t = 1 << 32;
        assert_eq!(z.lookup(b"a", 0, true, t), Lookup::Ok(0));
        assert_eq!(z.lookup(b"a", 0, true, t + 10), Lookup::Busy(990));
        assert_eq!(z.lookup(b"a", 0, true, t + 1000), Lookup::Ok(0));
    }

    #[test]
    fn a_full_zone_drops_its_oldest_bucket() {
        let z = zone(1, 8 * 4096);
        let t = 1 << 32;
        let capacity = zone_budget(8 * 4096) / node_cost(4);
        for i in 0..capacity as u32 {
            assert_eq!(z.lookup(&i.to_be_bytes(), 1000, true, t), Lookup::Ok(0));
        }
        assert_eq!(z.len() as u64, capacity);
        // Full: the oldest is dropped by force to make room.
        let next = (capacity as u32).to_be_bytes();
        assert_eq!(z.lookup(&next, 1000, true, t), Lookup::Ok(0));
        assert_eq!(z.len() as u64, capacity);
        assert_eq!(z.lookup(&0u32.to_be_bytes(), 0, true, t), Lookup::Ok(0));
    }

    #[test]
    fn a_bucket_in_use_is_never_dropped() {
        let z = zone(1, 8 * 4096);
        let t = 1 << 32;
        let capacity = zone_budget(8 * 4096) / node_cost(4);
        for i in 0..capacity as u32 {
            assert_eq!(z.lookup(&i.to_be_bytes(), 1000, false, t), Lookup::Again);
        }
        assert_eq!(z.lookup(b"more", 1000, true, t), Lookup::Full);
        z.release(&0u32.to_be_bytes());
        assert_eq!(z.lookup(b"more", 1000, true, t), Lookup::Ok(0));
    }

    #[test]
    fn an_unaccounted_new_bucket_counts_as_long_idle() {
        // nginx's node made by a limit that is not the last starts with
        // `last` 0: accounting drains it completely.
        let z = zone(1000, 1 << 20);
        let t = 1 << 32;
        assert_eq!(z.lookup(b"a", 1000, false, t), Lookup::Again);
        assert_eq!(z.account(b"a", t), 0);
        assert_eq!(z.lookup(b"a", 1000, false, t), Lookup::Again);
        assert_eq!(z.account(b"a", t), 1000);
    }
}
