//! The geo modules (ngx_http_geo_module, ngx_stream_geo_module): a variable
//! whose value is chosen by the client's address, from networks (the
//! longest prefix wins) or from IPv4 ranges. Pure: the caller gives the
//! address and, for http's `proxy`, the `X-Forwarded-For` values.

pub mod inet;
pub mod radix;
pub mod ranges;

use std::net::IpAddr;
use std::sync::Arc;

use inet::Net;

/// Where a geo block's values come from.
#[derive(Debug, Clone)]
pub enum Table {
    /// Networks, IPv4 and IPv6 apart.
    Cidr {
        /// IPv4 networks (an IPv4-mapped IPv6 address is looked up here).
        v4: radix::Radix,
        /// IPv6 networks.
        v6: radix::Radix,
    },
    /// `ranges`: IPv4 ranges and the `default`.
    Ranges {
        /// The ranges.
        ranges: ranges::Ranges,
        /// `default` (empty when not given).
        default: Arc<str>,
    },
}

/// One `geo [$address] $variable { ... }` block.
#[derive(Debug, Clone)]
pub struct Geo {
    /// `$address`: the variable holding the address; `None` for the
    /// client's address.
    pub source: Option<crate::vars::Var>,
    /// `proxy` networks: a client among them is replaced by the address
    /// it names in `X-Forwarded-For` (http only).
    pub proxies: Vec<Net>,
    /// `proxy_recursive`.
    pub proxy_recursive: bool,
    /// `volatile`: the value is not kept for the rest of the request.
    pub volatile: bool,
    /// The values.
    pub table: Table,
}

/// The address a geo block looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// No IP address: a unix-domain peer, or an `$address` that is not
    /// found or not an address. nginx looks up 255.255.255.255 then.
    None,
}

impl Geo {
    /// The value for the client (`client`, the connection's address),
    /// reading `$address` from `vars` and, when `proxy` is set,
    /// `X-Forwarded-For` from `forwarded` (values as received).
    pub fn value(
        &self,
        client: Client,
        vars: &dyn crate::vars::VarSource,
        forwarded: &[&[u8]],
    ) -> Arc<str> {
        let mut addr = match &self.source {
            None => client,
            Some(var) => match vars.var(var) {
                Some(text) => match inet::parse_addr(text.as_bytes()) {
                    Some(ip) => Client::Ip(ip),
                    None => Client::None,
                },
                None => Client::None,
            },
        };
        if let Client::Ip(ip) = &mut addr {
            if !self.proxies.is_empty() && !forwarded.is_empty() {
                inet::forwarded_addr(ip, forwarded, &self.proxies, self.proxy_recursive);
            }
        }
        self.lookup(addr)
    }

    /// The value for `addr`, without `$address` and `proxy`.
    pub fn lookup(&self, addr: Client) -> Arc<str> {
        let key = match addr {
            Client::Ip(ip) => inet::family_key(ip),
            Client::None => (false, inet::v4_key(inet::INADDR_NONE)),
        };
        let found = match &self.table {
            Table::Cidr { v4, v6 } => {
                if key.0 {
                    v6.find(key.1)
                } else {
                    v4.find(key.1)
                }
            }
            Table::Ranges { ranges, default } => {
                // An IPv6 address has no range: nginx looks up
                // 255.255.255.255 for it.
                let v4 = if key.0 {
                    inet::INADDR_NONE
                } else {
                    (key.1 >> 96) as u32
                };
                return ranges.find(v4).unwrap_or(default).clone();
            }
        };
        found.cloned().unwrap_or_else(|| Arc::from(""))
    }
}
