//! One configuration generation at run time: the model plus what was built
//! from it (upstream balancers, open access logs, listen-address routing).
//! A reload builds a new generation and swaps it in; connections keep the
//! generation they started with.

use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;

use crate::upstream::addr::PeerAddr;

use crate::config::model::{Http, LocationConfig, Model, ServerConfig, Settings, SocketOpts};
use crate::upstream::Upstream;

use super::log::AccessLog;
use crate::observe::error_log::ContextLog;

/// A built configuration.
#[derive(Debug)]
pub struct Generation {
    /// The typed configuration.
    pub model: Arc<Model>,
    /// Upstream groups by name (implicit ones by `host:port`).
    pub upstreams: FxHashMap<String, Arc<Upstream>>,
    /// Servers on each listening address, with their `default_server` flag.
    pub servers: FxHashMap<PeerAddr, Vec<(Arc<ServerConfig>, bool)>>,
    /// The addresses whose connections start with a TLS handshake: those
    /// with `ssl` on any of their `listen`s (nginx merges it per address).
    ssl: FxHashSet<PeerAddr>,
    /// The addresses whose connections start with a PROXY protocol header
    /// (`proxy_protocol` on any of their `listen`s, merged as `ssl`).
    proxy_protocol: FxHashSet<PeerAddr>,
    logs: FxHashMap<usize, Arc<AccessLog>>,
    /// The `error_log`s of http, server and location levels, by the
    /// settings that have one (one set of open files per distinct list).
    error_logs: FxHashMap<usize, Arc<ContextLog>>,
    /// The `stream` block at run time (empty without one).
    pub stream: crate::stream::generation::StreamRuntime,
    /// limit_req and limit_conn zones (shared by every worker).
    pub limits: super::limits::LimitZones,
    /// Set when this configuration's `worker_shutdown_timeout` has run out
    /// after a reload replaced it: what still runs on it (upgraded
    /// connections) closes, as nginx's old workers close theirs.
    retired: tokio::sync::watch::Sender<bool>,
}

fn key(settings: &Arc<Settings>) -> usize {
    Arc::as_ptr(settings) as usize
}

impl Generation {
    /// Builds a generation: opens access logs (nginx's `open()` error if one
    /// cannot be opened) and creates upstream groups. `previous` lends its
    /// upstream groups where the configuration did not change, so that
    /// balancer state survives a reload.
    pub fn build(model: Model, previous: Option<&Generation>) -> Result<Generation, String> {
        let model = Arc::new(model);
        let mut upstreams = FxHashMap::default();
        let mut servers: FxHashMap<PeerAddr, Vec<(Arc<ServerConfig>, bool)>> = FxHashMap::default();
        let mut logs = FxHashMap::default();
        let mut error_logs = ErrorLogs::default();
        let mut ssl = FxHashSet::default();
        let mut proxy_protocol = FxHashSet::default();
        if let Some(http) = &model.http {
            for up in &http.upstreams {
                let reused = previous
                    .and_then(|p| p.upstreams.get(&up.name))
                    .filter(|old| same_upstream(&old.config, up))
                    .cloned();
                let runtime = reused.unwrap_or_else(|| Upstream::new(up.clone()));
                upstreams.insert(up.name.clone(), runtime);
            }
            for server in &http.servers {
                for listen in &server.listens {
                    if listen.ssl {
                        ssl.insert(listen.addr.clone());
                    }
                    if listen.proxy_protocol {
                        proxy_protocol.insert(listen.addr.clone());
                    }
                    servers
                        .entry(listen.addr.clone())
                        .or_default()
                        .push((server.clone(), listen.default_server));
                }
                open_logs(&server.settings, &mut logs)?;
                error_logs.open(&server.settings)?;
                for loc in &server.locations {
                    open_location_logs(loc, &mut logs, &mut error_logs)?;
                }
            }
        }
        let limits = match &model.http {
            Some(http) => super::limits::LimitZones::build(http, previous.map(|p| &p.limits))?,
            None => super::limits::LimitZones::default(),
        };
        let stream = crate::stream::generation::StreamRuntime::build(
            model.stream.as_ref(),
            previous.map(|p| &p.stream),
        )?;
        Ok(Generation {
            model,
            upstreams,
            servers,
            ssl,
            proxy_protocol,
            logs,
            error_logs: error_logs.by_settings,
            stream,
            limits,
            retired: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Waits until this configuration is retired (see [`Generation::retire`]).
    pub fn retirement(&self) -> Retirement {
        Retirement(self.retired.subscribe())
    }

    /// Retires this configuration: its long-lived connections close.
    pub fn retire(&self) {
        self.retired.send_replace(true);
    }

    /// The `http` block, if any.
    pub fn http(&self) -> Option<&Http> {
        self.model.http.as_ref()
    }

    /// The access log of a location's (or server's) settings.
    pub fn access_log(&self, settings: &Arc<Settings>) -> Option<Arc<AccessLog>> {
        self.logs.get(&key(settings)).cloned()
    }

    /// The `error_log` of a location's (or server's) settings, if its
    /// level (or one above) has one.
    pub fn error_log(&self, settings: &Arc<Settings>) -> Option<&Arc<ContextLog>> {
        if self.error_logs.is_empty() {
            return None;
        }
        self.error_logs.get(&key(settings))
    }

    /// The servers that answer on `local`: those listening on exactly that
    /// address, else those on the wildcard address of its port.
    pub fn servers_for(&self, local: &PeerAddr) -> &[(Arc<ServerConfig>, bool)] {
        if let Some(s) = self.servers.get(local) {
            return s;
        }
        local
            .wildcard()
            .and_then(|w| self.servers.get(&w))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Whether connections to `local` start with a TLS handshake (looked
    /// up as [`Generation::servers_for`] looks its servers up).
    pub fn is_ssl(&self, local: &PeerAddr) -> bool {
        self.address_has(&self.ssl, local)
    }

    /// Whether connections to `local` start with a PROXY protocol header.
    pub fn is_proxy_protocol(&self, local: &PeerAddr) -> bool {
        self.address_has(&self.proxy_protocol, local)
    }

    /// Whether `set` holds the listening address `local` is served by: its
    /// own, or the wildcard socket on its port.
    fn address_has(&self, set: &FxHashSet<PeerAddr>, local: &PeerAddr) -> bool {
        if self.servers.contains_key(local) {
            return set.contains(local);
        }
        local.wildcard().is_some_and(|w| set.contains(&w))
    }

    /// The addresses to bind: each distinct listen address, except that a
    /// specific address is served by a wildcard socket on the same port when
    /// there is one (as nginx does without `bind`).
    pub fn bind_addresses(&self) -> Vec<(PeerAddr, SocketOpts, bool)> {
        let mut out: Vec<(PeerAddr, SocketOpts, bool)> = Vec::new();
        let Some(http) = self.http() else { return out };
        let all: Vec<_> = http.servers.iter().flat_map(|s| s.listens.iter()).collect();
        for listen in &all {
            let covered = listen.addr.wildcard().is_some_and(|wild| {
                wild != listen.addr && all.iter().any(|other| other.addr == wild)
            });
            if !covered && !out.iter().any(|(a, _, _)| *a == listen.addr) {
                out.push((listen.addr.clone(), listen.socket, listen.ipv6only));
            }
        }
        out
    }
}

fn open_logs(
    settings: &Arc<Settings>,
    logs: &mut FxHashMap<usize, Arc<AccessLog>>,
) -> Result<(), String> {
    if let std::collections::hash_map::Entry::Vacant(e) = logs.entry(key(settings)) {
        e.insert(Arc::new(AccessLog::open(&settings.access_log)?));
    }
    Ok(())
}

fn open_location_logs(
    loc: &Arc<LocationConfig>,
    logs: &mut FxHashMap<usize, Arc<AccessLog>>,
    error_logs: &mut ErrorLogs,
) -> Result<(), String> {
    open_logs(&loc.settings, logs)?;
    error_logs.open(&loc.settings)?;
    if let Some(lmt) = &loc.limit_except {
        // Its own settings only: its nested locations are the location's.
        open_logs(&lmt.config.settings, logs)?;
        error_logs.open(&lmt.config.settings)?;
    }
    for nested in &loc.nested {
        open_location_logs(nested, logs, error_logs)?;
    }
    Ok(())
}

/// The context error logs being opened for a generation.
#[derive(Default)]
struct ErrorLogs {
    by_settings: FxHashMap<usize, Arc<ContextLog>>,
    /// Each distinct list of targets, opened once.
    opened: Vec<(Vec<crate::config::model::ErrorLogTarget>, Arc<ContextLog>)>,
}

impl ErrorLogs {
    fn open(&mut self, settings: &Arc<Settings>) -> Result<(), String> {
        if settings.error_log.is_empty() {
            return Ok(());
        }
        let log = match self.opened.iter().find(|(t, _)| *t == settings.error_log) {
            Some((_, log)) => log.clone(),
            None => {
                let log = ContextLog::open(&settings.error_log)?;
                self.opened.push((settings.error_log.clone(), log.clone()));
                log
            }
        };
        self.by_settings.insert(key(settings), log);
        Ok(())
    }
}

/// Whether two upstream configurations make the same group, so that a
/// reload keeps the running one (and its balancer state).
pub(crate) fn same_upstream(
    a: &crate::config::model::UpstreamConfig,
    b: &crate::config::model::UpstreamConfig,
) -> bool {
    a.method == b.method
        && a.hash_key == b.hash_key
        && a.resolver == b.resolver
        && a.keepalive == b.keepalive
        && a.health_check == b.health_check
        && a.servers.len() == b.servers.len()
        && a.servers.iter().zip(&b.servers).all(|(x, y)| {
            x.host == y.host
                && x.port == y.port
                && x.weight == y.weight
                && x.max_fails == y.max_fails
                && x.fail_timeout == y.fail_timeout
                && x.backup == y.backup
                && x.down == y.down
                && x.max_conns == y.max_conns
                && x.resolve == y.resolve
                && x.service == y.service
        })
}

/// A handle that resolves when a configuration is retired; carried in a
/// request's extensions to the tunnel an upgrade starts.
#[derive(Clone)]
pub struct Retirement(tokio::sync::watch::Receiver<bool>);

impl Retirement {
    /// Resolves once the configuration is retired (never, if it is not).
    pub async fn wait(mut self) {
        if self.0.wait_for(|retired| *retired).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
