//! Addresses as nginx's ngx_inet.c reads them: its parsers accept a few
//! spellings the standard library refuses (`1..2.3` is 1.0.2.3) and refuse
//! `255.255.255.255` (their "none" value), and geo's results depend on
//! both, so they are ported here rather than taken from `std`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// nginx's `INADDR_NONE`: what geo looks up when there is no address.
pub const INADDR_NONE: u32 = 0xffff_ffff;

/// `ngx_inet_addr`: a dotted quad, host order; `None` for nginx's
/// `INADDR_NONE` (which `255.255.255.255` also is).
pub fn inet_addr(text: &[u8]) -> Option<u32> {
    let mut addr: u32 = 0;
    let mut octet: u32 = 0;
    let mut dots = 0;
    for &c in text {
        match c {
            b'0'..=b'9' => {
                octet = octet * 10 + u32::from(c - b'0');
                if octet > 255 {
                    return None;
                }
            }
            b'.' => {
                addr = (addr << 8).wrapping_add(octet);
                octet = 0;
                dots += 1;
            }
            _ => return None,
        }
    }
    if dots != 3 {
        return None;
    }
    let addr = (addr << 8).wrapping_add(octet);
    (addr != INADDR_NONE).then_some(addr)
}

/// `ngx_inet6_addr`: the 16 bytes of an IPv6 address (with an optional
/// trailing dotted quad).
pub fn inet6_addr(mut p: &[u8]) -> Option<[u8; 16]> {
    if p.is_empty() {
        return None;
    }
    let mut out = [0u8; 16];
    let mut at = 0usize;
    let mut zero: Option<usize> = None;
    // Where the text after the last ':' starts (for a dotted quad).
    let mut digit: Option<&[u8]> = None;
    let mut nibbles = 0;
    let mut word: u32 = 0;
    let mut n = 8;
    if p[0] == b':' {
        p = &p[1..];
    }
    let mut i = 0;
    while i < p.len() {
        let c = p[i];
        i += 1;
        if c == b':' {
            if nibbles > 0 {
                digit = Some(&p[i..]);
                out[at] = (word >> 8) as u8;
                out[at + 1] = word as u8;
                at += 2;
                n -= 1;
                if n > 0 {
                    nibbles = 0;
                    word = 0;
                    continue;
                }
            } else if zero.is_none() {
                digit = Some(&p[i..]);
                zero = Some(at);
                continue;
            }
            return None;
        }
        if c == b'.' && nibbles > 0 {
            let quad = digit?;
            if n < 2 {
                return None;
            }
            let w = inet_addr(quad)?;
            out[at] = (w >> 24) as u8;
            out[at + 1] = (w >> 16) as u8;
            at += 2;
            word = w & 0xffff;
            n -= 1;
            break;
        }
        nibbles += 1;
        if nibbles > 4 {
            return None;
        }
        match c {
            b'0'..=b'9' => word = word * 16 + u32::from(c - b'0'),
            _ => {
                let c = c | 0x20;
                if (b'a'..=b'f').contains(&c) {
                    word = word * 16 + u32::from(c - b'a') + 10;
                } else {
                    return None;
                }
            }
        }
    }
    if nibbles == 0 && zero.is_none() {
        return None;
    }
    if at + 2 > 16 {
        return None;
    }
    out[at] = (word >> 8) as u8;
    out[at + 1] = word as u8;
    at += 2;
    n -= 1;
    if n > 0 {
        let z = zero?;
        // Move what followed "::" to the end, zeros in between.
        let shift = n * 2;
        let tail: Vec<u8> = out[z..at].to_vec();
        out[z..at].fill(0);
        out[z + shift..at + shift].copy_from_slice(&tail);
        return Some(out);
    }
    zero.is_none().then_some(out)
}

/// `ngx_parse_addr`: an IPv4 or IPv6 address, nothing around it.
pub fn parse_addr(text: &[u8]) -> Option<IpAddr> {
    if let Some(v4) = inet_addr(text) {
        return Some(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    inet6_addr(text).map(|b| IpAddr::V6(Ipv6Addr::from(b)))
}

/// `ngx_parse_addr_port`'s address: `addr`, `addr:port`, `[v6]` or
/// `[v6]:port` (the port 1 to 65535, then dropped).
pub fn parse_addr_port(text: &[u8]) -> Option<IpAddr> {
    if let Some(ip) = parse_addr(text) {
        return Some(ip);
    }
    let (addr, port) = if text.first() == Some(&b'[') {
        let close = text.iter().position(|&c| c == b']')?;
        if close == text.len() - 1 {
            return parse_addr(&text[1..close]);
        }
        if text.get(close + 1) != Some(&b':') {
            return None;
        }
        (&text[1..close], &text[close + 2..])
    } else {
        let colon = text.iter().position(|&c| c == b':')?;
        (&text[..colon], &text[colon + 1..])
    };
    let port = atoi(port)?;
    if !(1..=65535).contains(&port) {
        return None;
    }
    parse_addr(addr)
}

/// `ngx_atoi`: decimal digits only, at least one, no overflow.
fn atoi(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in text {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        if v > i64::MAX as u64 {
            return None;
        }
    }
    Some(v)
}

/// A network as `ngx_cidr_t` holds it: the family, and the address and
/// mask in the high bits of a 128-bit word (an IPv4 network in the top 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    /// An IPv6 network (else IPv4).
    pub v6: bool,
    /// The address, masked.
    pub addr: u128,
    /// How many leading bits count.
    pub bits: u8,
}

impl Net {
    /// The mask as a 128-bit word.
    pub fn mask(&self) -> u128 {
        if self.bits == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.bits))
        }
    }
}

/// What `ngx_ptocidr` found: a network, and whether the address had bits
/// past its mask (nginx warns "low address bits ... are meaningless").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// The network, masked.
    pub net: Net,
    /// Whether bits had to be cleared.
    pub low_bits: bool,
}

/// The key of an IPv4 address in a [`Net`]'s word.
pub fn v4_key(addr: u32) -> u128 {
    u128::from(addr) << 96
}

/// `ngx_ptocidr`: `addr[/bits]`, IPv4 or IPv6.
pub fn ptocidr(text: &[u8]) -> Option<Parsed> {
    let slash = text.iter().position(|&c| c == b'/');
    let addr = &text[..slash.unwrap_or(text.len())];
    let (v6, key, max) = if let Some(v4) = inet_addr(addr) {
        (false, v4_key(v4), 32)
    } else if let Some(b) = inet6_addr(addr) {
        (true, u128::from_be_bytes(b), 128)
    } else {
        return None;
    };
    let bits = match slash {
        None => max,
        Some(at) => {
            let shift = atoi(&text[at + 1..])?;
            if shift > u64::from(max) {
                return None;
            }
            shift as u8
        }
    };
    let net = Net { v6, addr: 0, bits };
    let masked = key & net.mask();
    Some(Parsed {
        net: Net {
            addr: masked,
            ..net
        },
        low_bits: masked != key,
    })
}

/// `ngx_cidr_match`: whether `ip` is in one of `nets` (an IPv4-mapped
/// IPv6 address counts as IPv4).
pub fn cidr_match(ip: IpAddr, nets: &[Net]) -> bool {
    let (v6, key) = family_key(ip);
    nets.iter().any(|n| n.v6 == v6 && key & n.mask() == n.addr)
}

/// An address as nginx's lookups see it: IPv4 (an IPv4-mapped IPv6 one
/// too) in the top 32 bits, else IPv6.
pub fn family_key(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, v4_key(u32::from(a))),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => (false, v4_key(u32::from(v4))),
            None => (true, u128::from_be_bytes(a.octets())),
        },
    }
}

/// How `forwarded_addr` ended, as ngx_http_get_forwarded_addr's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forwarded {
    Ok,
    Declined,
    Done,
}

/// ngx_http_get_forwarded_addr: starting from the client `addr`, while it
/// is a trusted proxy take the address before it from the
/// `X-Forwarded-For` headers (`headers` in the order received; the last
/// is read first), only the last one unless `recursive`.
pub fn forwarded_addr(addr: &mut IpAddr, headers: &[&[u8]], proxies: &[Net], recursive: bool) {
    let mut found = false;
    for h in headers.iter().rev() {
        let rc = forwarded_one(addr, h, proxies, recursive);
        if !recursive {
            break;
        }
        if rc == Forwarded::Declined && found {
            break;
        }
        if rc != Forwarded::Ok {
            break;
        }
        found = true;
    }
}

fn forwarded_one(addr: &mut IpAddr, xff: &[u8], proxies: &[Net], recursive: bool) -> Forwarded {
    let mut found = false;
    let mut len = xff.len();
    loop {
        if !cidr_match(*addr, proxies) {
            return if found {
                Forwarded::Done
            } else {
                Forwarded::Declined
            };
        }
        if len == 0 {
            // nginx would read before the value here; an empty list
            // names nobody.
            return if found {
                Forwarded::Done
            } else {
                Forwarded::Declined
            };
        }
        // Trailing separators are skipped (never the first byte), then
        // the last token taken.
        let mut p = len - 1;
        while p > 0 && matches!(xff[p], b' ' | b',') {
            p -= 1;
            len -= 1;
        }
        while p > 0 {
            if matches!(xff[p], b' ' | b',') {
                p += 1;
                break;
            }
            p -= 1;
        }
        let Some(ip) = parse_addr_port(&xff[p..len]) else {
            return if found {
                Forwarded::Done
            } else {
                Forwarded::Declined
            };
        };
        *addr = ip;
        found = true;
        if !(recursive && p > 0) {
            return Forwarded::Ok;
        }
        len = p - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(text: &str) -> Option<Ipv6Addr> {
        inet6_addr(text.as_bytes()).map(Ipv6Addr::from)
    }

    #[test]
    fn dotted_quads_as_nginx_reads_them() {
        assert_eq!(inet_addr(b"127.0.0.1"), Some(0x7f00_0001));
        assert_eq!(inet_addr(b"1..2.3"), Some(0x0100_0203));
        assert_eq!(inet_addr(b"255.255.255.255"), None);
        for bad in ["1.2.3", "1.2.3.4.", "256.1.1.1", "1.2.3.x", "", "1.2.3.4/8"] {
            assert_eq!(inet_addr(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn ipv6_as_nginx_reads_it() {
        for good in [
            "::1",
            "2001:db8::",
            "::",
            "1:2:3:4:5:6:7:8",
            "::ffff:1.2.3.4",
            "fe80::1:2",
        ] {
            assert_eq!(v6(good), good.parse().ok(), "{good}");
        }
        for bad in ["1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "g::", "1:2", ""] {
            assert_eq!(v6(bad), None, "{bad}");
        }
    }

    #[test]
    fn cidrs_mask_their_low_bits() {
        let p = ptocidr(b"10.1.2.3/8").unwrap();
        assert_eq!(
            p.net,
            Net {
                v6: false,
                addr: v4_key(0x0a00_0000),
                bits: 8
            }
        );
        assert!(p.low_bits);
        assert!(!ptocidr(b"10.0.0.0/8").unwrap().low_bits);
        assert_eq!(ptocidr(b"0.0.0.0/0").unwrap().net.bits, 0);
        assert_eq!(ptocidr(b"::1").unwrap().net.bits, 128);
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "x/8",
            "255.255.255.255",
        ] {
            assert_eq!(ptocidr(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn forwarded_addresses_follow_trusted_proxies() {
        let proxies = [ptocidr(b"127.0.0.1").unwrap().net];
        let start: IpAddr = "127.0.0.1".parse().unwrap();
        let run = |headers: &[&str], recursive| {
            let mut a = start;
            let h: Vec<&[u8]> = headers.iter().map(|s| s.as_bytes()).collect();
            forwarded_addr(&mut a, &h, &proxies, recursive);
            a.to_string()
        };
        assert_eq!(run(&["192.0.2.1"], false), "192.0.2.1");
        assert_eq!(run(&["10.0.0.1, 192.0.2.1"], false), "192.0.2.1");
        assert_eq!(run(&["192.0.2.1, 127.0.0.1"], false), "127.0.0.1");
        assert_eq!(run(&["192.0.2.1, 127.0.0.1"], true), "192.0.2.1");
        assert_eq!(run(&["192.0.2.1", "127.0.0.1"], true), "192.0.2.1");
        assert_eq!(run(&["192.0.2.1:80 ,, "], false), "192.0.2.1");
        assert_eq!(run(&["junk"], false), "127.0.0.1");
        assert_eq!(run(&[""], false), "127.0.0.1");
    }
}
