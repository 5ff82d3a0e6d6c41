//! `allow` / `deny` (ngx_http_access_module and ngx_stream_access_module,
//! which share their rules): parsing one rule and deciding a client by a
//! list of them. Pure, so http and stream use the same matcher.

use std::net::IpAddr;

use nginx_conf::Directive;

use super::model::{AccessFrom, AccessRule};
use super::{arg0, ConfigError};

/// Parses `allow ADDRESS|CIDR|unix:|all` / `deny ...`.
pub(crate) fn parse_rule(d: &Directive) -> Result<AccessRule, ConfigError> {
    let value = arg0(d);
    let allow = d.name == "allow";
    let from = match value {
        "all" => AccessFrom::All,
        "unix:" => AccessFrom::Unix,
        _ => AccessFrom::Addr(super::settings::parse_cidr(value).ok_or_else(|| {
            ConfigError::at(format!("invalid parameter \"{value}\""), &d.position)
        })?),
    };
    Ok(AccessRule { allow, from })
}

/// Who is asking: an address, or a peer over a unix-domain socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// An IPv4 or IPv6 peer.
    Ip(IpAddr),
    /// A unix-domain socket's peer.
    Unix,
}

impl Client {
    /// The client of a connection from `peer`.
    pub fn of(peer: &crate::upstream::addr::PeerAddr) -> Client {
        match peer.ip() {
            Some(ip) => Client::Ip(ip),
            None => Client::Unix,
        }
    }

    /// Its IP address; a Unix socket's peer has none.
    pub fn ip(self) -> Option<IpAddr> {
        match self {
            Client::Ip(ip) => Some(ip),
            Client::Unix => None,
        }
    }
}

/// The access phase: the first rule that matches decides; none matching
/// allows. As nginx, each address family has its own list (`all` is in
/// every list), and an IPv4-mapped IPv6 client is checked as IPv4 against
/// the IPv4 rules when there are any.
pub fn allowed(rules: &[AccessRule], client: Client) -> bool {
    decide(rules, client).unwrap_or(true)
}

/// The rule that decides `client`: `Some(allow)`, or `None` when no rule
/// matches (nginx's access handler then declines, which counts for
/// `satisfy any`).
pub fn decide(rules: &[AccessRule], client: Client) -> Option<bool> {
    let v4 = |r: &&AccessRule| match r.from {
        AccessFrom::All => true,
        AccessFrom::Addr(c) => c.addr.is_ipv4(),
        AccessFrom::Unix => false,
    };
    let found = match client {
        Client::Unix => rules
            .iter()
            .find(|r| matches!(r.from, AccessFrom::All | AccessFrom::Unix)),
        Client::Ip(IpAddr::V4(a)) => first_containing(rules, IpAddr::V4(a)),
        Client::Ip(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
            Some(mapped) if rules.iter().any(|r| v4(&r)) => {
                first_containing(rules.iter().filter(v4), IpAddr::V4(mapped))
            }
            _ => rules.iter().find(|r| match r.from {
                AccessFrom::All => true,
                AccessFrom::Addr(c) => c.addr.is_ipv6() && c.contains(IpAddr::V6(a)),
                AccessFrom::Unix => false,
            }),
        },
    };
    found.map(|r| r.allow)
}

fn first_containing<'a>(
    rules: impl IntoIterator<Item = &'a AccessRule>,
    ip: IpAddr,
) -> Option<&'a AccessRule> {
    rules.into_iter().find(|r| match r.from {
        AccessFrom::All => true,
        AccessFrom::Addr(c) => c.addr.is_ipv4() == ip.is_ipv4() && c.contains(ip),
        AccessFrom::Unix => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Cidr;

    fn rule(allow: bool, from: &str) -> AccessRule {
        let from = match from {
            "all" => AccessFrom::All,
            "unix:" => AccessFrom::Unix,
            text => AccessFrom::Addr(crate::config::settings::parse_cidr(text).unwrap()),
        };
        AccessRule { allow, from }
    }

    fn ip(text: &str) -> Client {
        Client::Ip(text.parse().unwrap())
    }

    #[test]
    fn first_match_wins_and_none_allows() {
        let rules = [
            rule(true, "10.1.0.0/16"),
            rule(false, "10.0.0.0/8"),
            rule(true, "::1"),
            rule(false, "all"),
        ];
        assert!(allowed(&rules, ip("10.1.2.3")));
        assert!(!allowed(&rules, ip("10.2.2.3")));
        assert!(!allowed(&rules, ip("192.0.2.1")));
        assert!(allowed(&rules, ip("::1")));
        assert!(!allowed(&rules, ip("::2")));
        assert!(!allowed(&rules, Client::Unix), "all covers unix:");
        assert!(allowed(&[rule(false, "10.0.0.0/8")], ip("192.0.2.1")));
        assert!(allowed(&[], ip("192.0.2.1")));
    }

    #[test]
    fn unix_rules_match_only_unix_peers() {
        let rules = [rule(false, "unix:")];
        assert!(!allowed(&rules, Client::Unix));
        assert!(allowed(&rules, ip("127.0.0.1")));
        assert!(allowed(&rules, ip("::1")));
        assert!(allowed(&[rule(false, "127.0.0.1")], Client::Unix));
    }

    #[test]
    fn mapped_addresses_are_checked_by_the_ipv4_rules() {
        let rules = [rule(true, "::ffff:10.0.0.1"), rule(false, "10.0.0.0/8")];
        // The IPv4 list decides; the IPv6 rule is not consulted.
        assert!(!allowed(&rules, ip("::ffff:10.0.0.1")));
        // Without IPv4 rules the IPv6 ones see the address as it is.
        let rules = [rule(false, "::ffff:0:0/96")];
        assert!(!allowed(&rules, ip("::ffff:10.0.0.1")));
        assert!(allowed(&rules, ip("10.0.0.1")));
    }

    #[test]
    fn prefix_lengths() {
        let c = Cidr {
            addr: "192.0.2.0".parse().unwrap(),
            bits: 0,
        };
        assert!(allowed(
            &[
                AccessRule {
                    allow: true,
                    from: AccessFrom::Addr(c)
                },
                rule(false, "all")
            ],
            ip("198.51.100.1")
        ));
        assert!(!allowed(
            &[rule(false, "2001:db8::/32")],
            ip("2001:db8:1::1")
        ));
        assert!(allowed(&[rule(false, "2001:db8::/32")], ip("2001:db9::1")));
    }
}
