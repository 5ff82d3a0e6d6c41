//! The stream part of a configuration generation: the running upstream
//! groups (kept across reloads when unchanged), the servers by listening
//! address and their access logs.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::model::{MapConfig, SocketOpts, SplitClients, Stream, StreamServer};
use crate::http::generation::same_upstream;
use crate::http::log::AccessLog;
use crate::upstream::addr::PeerAddr;
use crate::upstream::Upstream;

/// A stream server as one listening address sees it.
#[derive(Debug, Clone)]
pub struct Bound {
    /// The server.
    pub server: Arc<StreamServer>,
    /// The `listen` address as configured (nginx's `server:` in log lines).
    pub listen: PeerAddr,
    /// Its access log.
    pub log: Arc<AccessLog>,
    /// `listen ... proxy_protocol`: connections start with a PROXY header.
    pub proxy_protocol: bool,
    /// `listen ... ssl`: connections start with a TLS handshake.
    pub ssl: bool,
}

/// The stream block at run time.
#[derive(Debug, Default)]
pub struct StreamRuntime {
    /// Upstream groups by name (implicit ones by `host:port`).
    pub upstreams: HashMap<String, Arc<Upstream>>,
    /// `map` blocks.
    pub maps: Arc<HashMap<String, Arc<MapConfig>>>,
    /// `split_clients` blocks.
    pub splits: Arc<HashMap<String, Arc<SplitClients>>>,
    /// `geo` blocks of the stream block.
    pub geos: Arc<HashMap<String, Arc<crate::geo::Geo>>>,
    /// `limit_conn_zone` counts, by zone name.
    pub zones: HashMap<String, Arc<super::limit::ZoneCounts>>,
    /// By listening address and whether it is UDP.
    servers: HashMap<(PeerAddr, bool), Bound>,
    /// Listen addresses with their backlog, ipv6only and udp flag, in
    /// file order.
    binds: Vec<(PeerAddr, SocketOpts, bool, bool)>,
}

impl StreamRuntime {
    /// Builds the runtime of `stream` (empty without a stream block);
    /// unchanged groups of `previous` are kept, so that balancer state and
    /// failure counts survive a reload. The error is nginx's `open()`
    /// message for an access log that cannot be opened.
    pub fn build(
        stream: Option<&Stream>,
        previous: Option<&StreamRuntime>,
    ) -> Result<StreamRuntime, String> {
        let Some(stream) = stream else {
            return Ok(StreamRuntime::default());
        };
        let mut upstreams = HashMap::new();
        for up in &stream.upstreams {
            let reused = previous
                .and_then(|p| p.upstreams.get(&up.name))
                .filter(|old| same_upstream(&old.config, up))
                .cloned();
            upstreams.insert(
                up.name.clone(),
                reused.unwrap_or_else(|| Upstream::new_stream(up.clone())),
            );
        }
        // A zone keeps its counts across a reload while its key is the
        // same, as nginx keeps a shared memory zone.
        let mut zones = HashMap::new();
        for zone in &stream.limit_zones {
            let reused = previous
                .and_then(|p| p.zones.get(&zone.name))
                .filter(|old| old.config.key_text == zone.key_text)
                .cloned();
            zones.insert(
                zone.name.clone(),
                reused.unwrap_or_else(|| super::limit::ZoneCounts::new(zone.clone())),
            );
        }
        let mut servers = HashMap::new();
        let mut binds = Vec::new();
        for server in &stream.servers {
            let log = Arc::new(AccessLog::open(&server.access_log)?);
            for listen in &server.listens {
                servers.insert(
                    (listen.addr.clone(), listen.udp),
                    Bound {
                        server: server.clone(),
                        listen: listen.addr.clone(),
                        log: log.clone(),
                        proxy_protocol: listen.proxy_protocol,
                        ssl: listen.ssl,
                    },
                );
                binds.push((
                    listen.addr.clone(),
                    listen.socket,
                    listen.ipv6only,
                    listen.udp,
                ));
            }
        }
        Ok(StreamRuntime {
            upstreams,
            maps: stream.maps.clone(),
            splits: stream.split_clients.clone(),
            geos: stream.geos.clone(),
            zones,
            servers,
            binds,
        })
    }

    /// The server answering a session whose local address is `local` (a
    /// UDP one if `udp`): the one listening on exactly that address, else
    /// on the wildcard address of its port.
    pub fn server_for(&self, local: &PeerAddr, udp: bool) -> Option<&Bound> {
        if let Some(b) = self.servers.get(&(local.clone(), udp)) {
            return Some(b);
        }
        self.servers.get(&(local.wildcard()?, udp))
    }

    /// The addresses to bind for stream listeners, TCP or UDP (`udp`). A
    /// specific address is served by a wildcard socket of the same port
    /// when there is one (as nginx does without `bind`).
    pub fn bind_addresses(&self, udp: bool) -> Vec<(PeerAddr, SocketOpts, bool)> {
        let mut out: Vec<(PeerAddr, SocketOpts, bool)> = Vec::new();
        let binds: Vec<_> = self.binds.iter().filter(|b| b.3 == udp).collect();
        for (addr, backlog, ipv6only, _) in &binds {
            let covered = addr.wildcard().is_some_and(|wild| {
                wild != *addr && binds.iter().any(|(other, _, _, _)| *other == wild)
            });
            if !covered && !out.iter().any(|(a, _, _)| a == addr) {
                out.push((addr.clone(), *backlog, *ipv6only));
            }
        }
        out
    }
}
