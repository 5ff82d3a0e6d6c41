//! `geo { ranges; ... }`: IPv4 ranges kept as nginx keeps them, one sorted
//! list of non-overlapping pieces per /16 (ngx_http_geo_add_range), so a
//! new range splits older ones it falls inside, and a range that crosses
//! an older one's edge is refused with nginx's "overlaps" error.

use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
struct Piece {
    start: u16,
    end: u16,
    value: Arc<str>,
}

/// The ranges of one `geo` block.
#[derive(Debug, Clone, Default)]
pub struct Ranges {
    /// Pieces by the address's high 16 bits, sorted.
    low: HashMap<u16, Vec<Piece>>,
}

/// A range crossing an older one: nginx's `range "..." overlaps "..."`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("range \"{net}\" overlaps \"{older}\"")]
pub struct Overlaps {
    /// The new range as written.
    pub net: String,
    /// The older piece it crosses.
    pub older: String,
}

/// The /16 pieces `start..=end` covers: (high 16 bits, low start, low end).
fn pieces(start: u32, end: u32) -> impl Iterator<Item = (u16, u16, u16)> {
    let mut n = Some(start);
    std::iter::from_fn(move || {
        let at = n?;
        if at > end {
            return None;
        }
        let h = (at >> 16) as u16;
        let s = if at == start { at as u16 } else { 0 };
        let e = if (at | 0xffff) > end {
            end as u16
        } else {
            0xffff
        };
        n = if h == 0xffff {
            None
        } else {
            Some((at + 0x10000) & 0xffff_0000)
        };
        Some((h, s, e))
    })
}

fn dotted(h: u16, l: u16) -> String {
    format!("{}.{}.{}.{}", h >> 8, h & 0xff, l >> 8, l & 0xff)
}

impl Ranges {
    /// Adds `start..=end` (host order, `start <= end`) with `value`;
    /// `net` is the range as written, for messages. Replacing a range
    /// exactly warns, as nginx does, through `warn`.
    pub fn add(
        &mut self,
        start: u32,
        end: u32,
        value: &Arc<str>,
        net: &str,
        warn: &mut dyn FnMut(String),
    ) -> Result<(), Overlaps> {
        for (h, s, e) in pieces(start, end) {
            let list = self.low.entry(h).or_default();
            let new = Piece {
                start: s,
                end: e,
                value: value.clone(),
            };
            let mut placed = false;
            // From the highest piece down, as nginx's loop (optimised for
            // ranges given in growing order).
            for i in (0..list.len()).rev() {
                let old = &list[i];
                if e < old.start {
                    continue;
                }
                if s > old.end {
                    list.insert(i + 1, new.clone());
                } else if s == old.start && e == old.end {
                    warn(format!(
                        "duplicate range \"{net}\", value: \"{value}\", old value: \"{}\"",
                        old.value
                    ));
                    list[i].value = value.clone();
                } else if s > old.start && e < old.end {
                    let tail = Piece {
                        start: e + 1,
                        end: old.end,
                        value: old.value.clone(),
                    };
                    list[i].end = s - 1;
                    list.insert(i + 1, new.clone());
                    list.insert(i + 2, tail);
                } else if s == old.start && e < old.end {
                    list[i].start = e + 1;
                    list.insert(i, new.clone());
                } else if s > old.start && e == old.end {
                    list[i].end = s - 1;
                    list.insert(i + 1, new.clone());
                } else {
                    return Err(Overlaps {
                        net: net.to_string(),
                        older: format!("{}-{}", dotted(h, old.start), dotted(h, old.end)),
                    });
                }
                placed = true;
                break;
            }
            if !placed {
                list.insert(0, new);
            }
        }
        Ok(())
    }

    /// Deletes the range `start..=end`: each of its /16 pieces must be
    /// there exactly. Returns whether some piece was missing (nginx then
    /// warns "no address range ... to delete").
    pub fn delete(&mut self, start: u32, end: u32) -> bool {
        let mut missing = false;
        for (h, s, e) in pieces(start, end) {
            match self.low.get_mut(&h) {
                Some(list) if !list.is_empty() => {
                    match list.iter().position(|p| p.start == s && p.end == e) {
                        Some(i) => {
                            list.remove(i);
                        }
                        None => missing = true,
                    }
                }
                _ => missing = true,
            }
        }
        missing
    }

    /// The value of the range holding `addr` (host order), if any.
    pub fn find(&self, addr: u32) -> Option<&Arc<str>> {
        let n = addr as u16;
        self.low
            .get(&((addr >> 16) as u16))?
            .iter()
            .find(|p| p.start <= n && n <= p.end)
            .map(|p| &p.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
    }

    fn add(r: &mut Ranges, a: &str, b: &str, v: &str) -> Result<Vec<String>, Overlaps> {
        let mut warnings = Vec::new();
        r.add(ip(a), ip(b), &Arc::from(v), &format!("{a}-{b}"), &mut |w| {
            warnings.push(w)
        })?;
        Ok(warnings)
    }

    fn at(r: &Ranges, a: &str) -> Option<String> {
        r.find(ip(a)).map(|v| v.to_string())
    }

    #[test]
    fn inner_ranges_split_outer_ones() {
        let mut r = Ranges::default();
        add(&mut r, "127.0.0.0", "127.0.0.255", "test").unwrap();
        add(&mut r, "127.0.0.1", "127.0.0.2", "test2").unwrap();
        add(&mut r, "127.0.0.1", "127.0.0.1", "loopback").unwrap();
        assert_eq!(at(&r, "127.0.0.0").as_deref(), Some("test"));
        assert_eq!(at(&r, "127.0.0.1").as_deref(), Some("loopback"));
        assert_eq!(at(&r, "127.0.0.2").as_deref(), Some("test2"));
        assert_eq!(at(&r, "127.0.0.3").as_deref(), Some("test"));
        assert_eq!(at(&r, "127.0.1.0"), None);
    }

    #[test]
    fn crossing_an_edge_is_an_error_and_a_repeat_a_warning() {
        let mut r = Ranges::default();
        add(&mut r, "10.0.0.0", "10.0.0.10", "a").unwrap();
        let e = add(&mut r, "10.0.0.5", "10.0.0.20", "b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "range \"10.0.0.5-10.0.0.20\" overlaps \"10.0.0.0-10.0.0.10\""
        );
        let w = add(&mut r, "10.0.0.0", "10.0.0.10", "c").unwrap();
        assert_eq!(
            w,
            ["duplicate range \"10.0.0.0-10.0.0.10\", value: \"c\", old value: \"a\""]
        );
        assert_eq!(at(&r, "10.0.0.3").as_deref(), Some("c"));
    }

    #[test]
    fn ranges_across_sixteen_bit_blocks() {
        let mut r = Ranges::default();
        add(&mut r, "10.10.3.0", "10.11.2.255", "foo").unwrap();
        add(&mut r, "10.12.3.0", "10.13.2.255", "foo2").unwrap();
        assert_eq!(at(&r, "10.11.2.1").as_deref(), Some("foo"));
        assert_eq!(at(&r, "10.13.2.1").as_deref(), Some("foo2"));
        assert!(!r.delete(ip("10.10.3.0"), ip("10.11.2.255")));
        assert_eq!(at(&r, "10.11.2.1"), None);
        assert_eq!(at(&r, "10.13.2.1").as_deref(), Some("foo2"));
        // Deleting a piece that is not there exactly warns.
        assert!(r.delete(ip("10.12.3.0"), ip("10.12.3.1")));
        add(&mut r, "255.255.0.0", "255.255.255.255", "top").unwrap();
        assert_eq!(at(&r, "255.255.255.255").as_deref(), Some("top"));
    }
}
