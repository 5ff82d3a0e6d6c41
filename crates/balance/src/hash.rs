//! `hash KEY` and `hash KEY consistent` (nginx's
//! `ngx_http_upstream_hash_module.c`).

use crate::balancer::{Balancer, Sel};
use crate::crc32::{crc32, Crc32};
use crate::ip_hash::weighted_index;
use crate::peer::Peer;
use crate::round_robin::smooth_pick;
use crate::Attempt;

/// Probes before falling back to round robin.
const MAX_TRIES: u32 = 20;

/// Ketama points per unit of weight.
const POINTS_PER_WEIGHT: u64 = 160;

/// The ketama ring: sorted, de-duplicated `(hash, index of the primary peer
/// that produced the point)`. A point stands for the peer *name*: every
/// primary with that name is a candidate when the point is hit.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ring {
    points: Vec<(u32, usize)>,
}

/// Split a server name the way nginx's `ngx_http_upstream_update_chash`
/// does: `unix:PATH` hashes PATH with an empty port; otherwise a trailing
/// `:DIGITS` is the port and the rest the host; with no such suffix the
/// whole name is the host and the port is empty (no default port is
/// substituted).
pub(crate) fn split_host_port(name: &str) -> (&[u8], &[u8]) {
    let b = name.as_bytes();
    if b.len() >= 5 && b[..5].eq_ignore_ascii_case(b"unix:") {
        return (&b[5..], b"");
    }
    for j in (0..b.len()).rev() {
        match b[j] {
            b':' => return (&b[..j], &b[j + 1..]),
            b'0'..=b'9' => {}
            _ => break,
        }
    }
    (b, b"")
}

/// The `weight * 160` ketama point hashes of one server name:
/// `crc32(HOST "\0" PORT PREV_HASH)`, where PREV_HASH is the previous
/// point's hash as 4 little-endian bytes (zero for the first point).
pub(crate) fn ketama_points(name: &str, weight: u32) -> Vec<u32> {
    let (host, port) = split_host_port(name);
    let mut base = Crc32::new();
    base.update(host);
    base.update(&[0]);
    base.update(port);
    let mut prev = 0u32;
    (0..u64::from(weight) * POINTS_PER_WEIGHT)
        .map(|_| {
            let mut c = base;
            c.update(&prev.to_le_bytes());
            prev = c.finish();
            prev
        })
        .collect()
}

impl Ring {
    pub(crate) fn build(peers: &[Peer]) -> Ring {
        let mut points: Vec<(u32, usize)> = peers
            .iter()
            .enumerate()
            .flat_map(|(i, p)| {
                ketama_points(p.cfg.hash_name(), p.cfg.weight)
                    .into_iter()
                    .map(move |h| (h, i))
            })
            .collect();
        // Stable sort, then keep the first point of each hash value.
        points.sort_by_key(|&(h, _)| h);
        points.dedup_by_key(|&mut (h, _)| h);
        Ring { points }
    }

    /// Index of the first point whose hash is `>= hash` (may be `len()`,
    /// which wraps to the first point when used modulo the length).
    pub(crate) fn find(&self, hash: u32) -> usize {
        self.points.partition_point(|&(h, _)| h < hash)
    }

    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }

    /// The primary peer index that owns point `i % len()`.
    pub(crate) fn owner(&self, i: usize) -> usize {
        self.points[i % self.points.len()].1
    }
}

/// `((crc32([REHASH] KEY) >> 16) & 0x7fff)`, with REHASH (decimal) omitted
/// when zero: the Cache::Memcached-compatible hash step.
pub(crate) fn hash_step(key: &[u8], rehash: u32) -> u32 {
    let mut c = Crc32::new();
    if rehash > 0 {
        c.update(rehash.to_string().as_bytes());
    }
    c.update(key);
    (c.finish() >> 16) & 0x7fff
}

impl Balancer {
    /// `ngx_http_upstream_get_hash_peer`.
    pub(crate) fn get_hash(&mut self, a: &mut Attempt, key: &[u8], now: u64) -> Option<Sel> {
        if a.hash_tries > MAX_TRIES
            || self.primary.len() < 2
            || key.is_empty()
            || a.generation != self.generation
        {
            return self.get_round_robin(a, now);
        }
        loop {
            a.hash = a.hash.wrapping_add(hash_step(key, a.rehash));
            a.rehash += 1;
            let idx = weighted_index(&self.primary, self.total_weight, u64::from(a.hash));
            let p = &self.primary[idx];
            if !a.is_tried(p.id) && p.usable(now) {
                self.primary[idx].touch_checked(now);
                return Some(Sel { backup: false, idx });
            }
            a.hash_tries += 1;
            if a.hash_tries > MAX_TRIES {
                return self.get_round_robin(a, now);
            }
        }
    }

    /// `ngx_http_upstream_get_chash_peer`: start at the first ketama point
    /// `>= crc32(key)`, take the (weighted round robin among) usable peers
    /// with that point's name, else walk to the next point.
    pub(crate) fn get_chash(&mut self, a: &mut Attempt, key: &[u8], now: u64) -> Option<Sel> {
        if a.hash_tries > MAX_TRIES
            || self.primary.len() < 2
            || key.is_empty()
            || a.generation != self.generation
            || self.ring.len() == 0
        {
            return self.get_round_robin(a, now);
        }
        let ring = &self.ring;
        let mut point = *a.chash_point.get_or_insert_with(|| ring.find(crc32(key)));
        loop {
            let name = self.primary[self.ring.owner(point)]
                .cfg
                .hash_name()
                .to_string();
            let tried = &a.tried;
            let found = smooth_pick(&mut self.primary, |p| {
                !tried.contains(&p.id) && p.usable(now) && p.cfg.hash_name() == name
            });
            if let Some(idx) = found {
                self.primary[idx].touch_checked(now);
                return Some(Sel { backup: false, idx });
            }
            point += 1;
            a.chash_point = Some(point);
            a.hash_tries += 1;
            if a.hash_tries > MAX_TRIES {
                return self.get_round_robin(a, now);
            }
        }
    }

    /// The primary peer a fresh request with `key` would be mapped to by
    /// the consistent-hash ring, ignoring availability. `None` for other
    /// methods or an empty key.
    pub fn chash_owner(&self, key: &[u8]) -> Option<crate::PeerId> {
        if self.ring.len() == 0 || key.is_empty() {
            return None;
        }
        let idx = self.ring.owner(self.ring.find(crc32(key)));
        Some(crate::PeerId(self.primary[idx].id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split() {
        assert_eq!(
            split_host_port("10.0.0.1:80"),
            (&b"10.0.0.1"[..], &b"80"[..])
        );
        assert_eq!(split_host_port("backend"), (&b"backend"[..], &b""[..]));
        assert_eq!(split_host_port("UNIX:/tmp/s"), (&b"/tmp/s"[..], &b""[..]));
        assert_eq!(split_host_port("[::1]:8080"), (&b"[::1]"[..], &b"8080"[..]));
        assert_eq!(split_host_port("[::1]"), (&b"[::1]"[..], &b""[..]));
        assert_eq!(split_host_port("host:"), (&b"host"[..], &b""[..]));
        assert_eq!(split_host_port("h:8a"), (&b"h:8a"[..], &b""[..]));
    }

    #[test]
    fn first_point_is_crc_of_host_nul_port_zero() {
        let pts = ketama_points("a:80", 1);
        assert_eq!(pts.len(), 160);
        assert_eq!(pts[0], crc32(b"a\x0080\x00\x00\x00\x00"));
        let mut second = b"a\x0080".to_vec();
        second.extend_from_slice(&pts[0].to_le_bytes());
        assert_eq!(pts[1], crc32(&second));
    }

    #[test]
    fn hash_step_rehash_prefix() {
        assert_eq!(hash_step(b"k", 0), (crc32(b"k") >> 16) & 0x7fff);
        assert_eq!(hash_step(b"k", 12), (crc32(b"12k") >> 16) & 0x7fff);
    }
}
