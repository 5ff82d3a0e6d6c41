//! The counts of one http `limit_conn_zone`, shared by every worker
//! thread: requests in progress per key value (ngx_http_limit_conn_module),
//! bounded by the zone's size as nginx's slab bounds it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::model::LimitConnZone;

/// A zone's counts.
#[derive(Debug)]
pub struct ConnZone {
    /// The zone's configuration (its key and size).
    pub config: Arc<LimitConnZone>,
    budget: u64,
    state: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    counts: HashMap<Vec<u8>, u32>,
    used: u64,
}

/// Why a request was not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The key has its `limit_conn` number of requests already.
    Limit,
    /// The zone has no room for another key.
    Full,
}

/// What a counter takes of the zone in nginx's slab: the tree node's head,
/// the limit_conn node up to its key and the key, rounded up to a power of
/// two.
fn node_cost(key_len: usize) -> u64 {
    ((32 + 4 + key_len) as u64).next_power_of_two().max(8)
}

/// One counted request: the count goes down when it is dropped (when the
/// request's response has been sent, as nginx's pool cleanup does).
#[derive(Debug)]
pub struct Held {
    zone: Arc<ConnZone>,
    key: Vec<u8>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut state) = self.zone.state.lock() {
            let remove = match state.counts.get_mut(&self.key) {
                Some(n) => {
                    *n = n.saturating_sub(1);
                    *n == 0
                }
                None => false,
            };
            if remove {
                state.counts.remove(&self.key);
                state.used = state.used.saturating_sub(node_cost(self.key.len()));
            }
        }
    }
}

impl ConnZone {
    /// An empty zone.
    pub fn new(config: Arc<LimitConnZone>) -> Arc<ConnZone> {
        Arc::new(ConnZone {
            budget: super::limit_req::zone_budget(config.size),
            config,
            state: Mutex::new(Counts::default()),
        })
    }

    /// Counts a request for `key` unless it already has `max`.
    pub fn enter(self: &Arc<ConnZone>, key: &[u8], max: u32) -> Result<Held, Refused> {
        let Ok(mut state) = self.state.lock() else {
            return Err(Refused::Full);
        };
        match state.counts.get_mut(key) {
            Some(n) if *n >= max => return Err(Refused::Limit),
            Some(n) => *n += 1,
            None => {
                let cost = node_cost(key.len());
                if state.used + cost > self.budget {
                    return Err(Refused::Full);
                }
                state.used += cost;
                state.counts.insert(key.to_vec(), 1);
            }
        }
        Ok(Held {
            zone: self.clone(),
            key: key.to_vec(),
        })
    }

    /// The requests counted for `key` now.
    pub fn count(&self, key: &[u8]) -> u32 {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.counts.get(key).copied())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(size: u64) -> Arc<ConnZone> {
        ConnZone::new(Arc::new(LimitConnZone {
            name: "z".into(),
            key: crate::vars::Template::default(),
            key_text: "$binary_remote_addr".into(),
            size,
        }))
    }

    #[test]
    fn counts_until_released() {
        let z = zone(1 << 20);
        let a = z.enter(b"a", 2).unwrap();
        let b = z.enter(b"a", 2).unwrap();
        assert_eq!(z.enter(b"a", 2).unwrap_err(), Refused::Limit);
        assert!(z.enter(b"b", 2).is_ok(), "another key has its own count");
        drop(a);
        assert_eq!(z.count(b"a"), 1);
        let _c = z.enter(b"a", 2).unwrap();
        drop(b);
        assert_eq!(z.count(b"a"), 1);
    }

    #[test]
    fn a_full_zone_refuses_new_keys() {
        let z = zone(8 * 4096);
        let fit = super::super::limit_req::zone_budget(8 * 4096) / node_cost(4);
        let held: Vec<_> = (0..fit as u32)
            .map(|i| z.enter(&i.to_be_bytes(), 1).unwrap())
            .collect();
        assert_eq!(z.enter(b"more", 1).unwrap_err(), Refused::Full);
        drop(held);
        assert!(z.enter(b"more", 1).is_ok());
    }
}
