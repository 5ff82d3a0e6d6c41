//! DNS lookups with TTLs (hickory-resolver), for `server ... resolve` and
//! `service=` (SRV). The `resolver` directive names the servers; without
//! one, /etc/resolv.conf's are used.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;

use crate::config::model::ResolverSettings;

/// How a lookup ended.
#[derive(Debug)]
pub enum LookupError {
    /// The name has no such records (NXDOMAIN or an empty answer): the
    /// addresses are gone.
    NotFound,
    /// The lookup failed (timeout, server failure, refused): keep what we had.
    Failed(String),
}

/// One SRV target, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvPeer {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The record's weight (nginx uses it as the peer weight; 0 counts as 1).
    pub weight: u32,
    /// The record's priority (the lowest are primaries, the rest backups).
    pub priority: u16,
}

/// A resolver for one upstream group.
pub struct Dns {
    resolver: TokioResolver,
    valid: Option<Duration>,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns").field("valid", &self.valid).finish()
    }
}

fn map_error(e: hickory_resolver::net::NetError) -> LookupError {
    if e.is_no_records_found() || e.is_nx_domain() {
        LookupError::NotFound
    } else {
        LookupError::Failed(e.to_string())
    }
}

impl Dns {
    /// A resolver for `settings`, or the system's when there are none.
    pub fn new(settings: Option<&ResolverSettings>) -> Result<Dns, String> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match settings {
            Some(s) => {
                let mut config = ResolverConfig::from_parts(None, Vec::new(), Vec::new());
                for server in &s.servers {
                    let mut ns = NameServerConfig::udp_and_tcp(server.ip());
                    for c in ns.connections.iter_mut() {
                        c.port = server.port();
                    }
                    config.add_name_server(ns);
                }
                TokioResolver::builder_with_config(config, provider)
            }
            None => TokioResolver::builder(provider).map_err(|e| e.to_string())?,
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        if let Some(s) = settings {
            opts.timeout = s.timeout;
            opts.ip_strategy = match (s.ipv4, s.ipv6) {
                (true, false) => LookupIpStrategy::Ipv4Only,
                (false, true) => LookupIpStrategy::Ipv6Only,
                _ => LookupIpStrategy::Ipv4AndIpv6,
            };
            if let Some(valid) = s.valid {
                opts.positive_max_ttl = Some(valid);
                opts.negative_max_ttl = Some(valid);
            }
        }
        // Our own re-resolution schedule decides when to ask again; the
        // cache must not answer for longer than a record's TTL, and it won't.
        opts.attempts = 1;
        let resolver = builder.build().map_err(|e| e.to_string())?;
        Ok(Dns {
            resolver,
            valid: settings.and_then(|s| s.valid),
        })
    }

    fn next_check(&self, valid_until: Instant) -> Duration {
        let ttl = valid_until.saturating_duration_since(Instant::now());
        self.valid.unwrap_or(ttl).max(Duration::from_secs(1))
    }

    /// A and AAAA records of `host`, and when to look again.
    pub async fn lookup_ip(
        &self,
        host: &str,
        port: u16,
    ) -> Result<(Vec<SocketAddr>, Duration), LookupError> {
        let name = fqdn(host);
        let lookup = self
            .resolver
            .lookup_ip(name.as_str())
            .await
            .map_err(map_error)?;
        let mut addrs: Vec<SocketAddr> = lookup
            .iter()
            .map(|ip: IpAddr| SocketAddr::new(ip, port))
            .collect();
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() {
            return Err(LookupError::NotFound);
        }
        Ok((addrs, self.next_check(lookup.valid_until())))
    }

    /// SRV records of `service` at `host` (`_http._tcp.host` for
    /// `service=http`; a service starting with `_` is used as written), each
    /// target resolved to its addresses.
    pub async fn lookup_srv(
        &self,
        service: &str,
        host: &str,
    ) -> Result<(Vec<SrvPeer>, Duration), LookupError> {
        let name = if service.starts_with('_') {
            fqdn(&format!("{service}.{host}"))
        } else {
            fqdn(&format!("_{service}._tcp.{host}"))
        };
        let lookup = self
            .resolver
            .lookup(name.as_str(), RecordType::SRV)
            .await
            .map_err(map_error)?;
        let mut next = self.next_check(lookup.valid_until());
        let mut peers = Vec::new();
        for record in lookup.answers() {
            let RData::SRV(srv) = &record.data else {
                continue;
            };
            let target = srv.target.to_string();
            match self.lookup_ip(&target, srv.port).await {
                Ok((addrs, again)) => {
                    next = next.min(again);
                    for addr in addrs {
                        peers.push(SrvPeer {
                            addr,
                            weight: u32::from(srv.weight).max(1),
                            priority: srv.priority,
                        });
                    }
                }
                Err(LookupError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        if peers.is_empty() {
            return Err(LookupError::NotFound);
        }
        Ok((peers, next))
    }
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}
