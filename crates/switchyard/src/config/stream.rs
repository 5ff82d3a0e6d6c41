//! The `stream` block: log formats, maps, upstreams and servers, with the
//! stream modules' defaults and messages (ngx_stream_core_module,
//! ngx_stream_proxy_module, ngx_stream_upstream_module, ngx_stream_log_module).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nginx_conf::Directive;

use super::directives::{Ctx, Support};
use super::model::{
    AccessLogTarget, AccessRule, HealthCheck, LimitConn, LimitConnZone, ProxyBind, ProxyTarget,
    ProxyTls, Rate, ResolverSettings, Stream, StreamHandler, StreamServer, UpstreamConfig,
};
use super::set;
use super::stream_values::{
    check_listens, parse_access_log, parse_access_rule, parse_limit_conn, parse_limit_conn_zone,
    parse_proxy_bind, parse_split_clients, parse_stream_listen,
};
use super::upstream::{
    build_stream_upstream, implicit_unix_upstream, implicit_upstream, split_host_port, unix_path,
};
use super::{arg0, check, invalid_value, number_arg, time_arg, values, ConfigError, Seen};
use crate::observe::log_format::LogFormat;
use crate::observe::ErrorLevel;
use crate::vars::{with_user_vars, with_var_set, VarSet};

/// Settings that merge from `stream` into each `server` (unset = inherit).
#[derive(Debug, Clone, Default)]
struct Layer {
    connect_timeout: Option<Duration>,
    timeout: Option<Duration>,
    next_upstream: Option<bool>,
    next_upstream_tries: Option<u32>,
    next_upstream_timeout: Option<Duration>,
    buffer_size: Option<usize>,
    half_close: Option<bool>,
    download_rate: Option<Rate>,
    upload_rate: Option<Rate>,
    /// `proxy_bind`; `Some(None)` is `off`.
    bind: Option<Option<ProxyBind>>,
    socket_keepalive: Option<bool>,
    proxy_protocol: Option<bool>,
    proxy_protocol_timeout: Option<Duration>,
    responses: Option<u32>,
    requests: Option<u32>,
    tcp_nodelay: Option<bool>,
    access_log: Option<Vec<AccessLogTarget>>,
    open_log_file_cache: Option<Option<super::model::LogFileCache>>,
    /// `allow`/`deny`: a level with rules of its own inherits none.
    access: Option<Vec<AccessRule>>,
    /// `limit_conn`: as `access`, a level with its own inherits none.
    limit_conn: Option<Vec<LimitConn>>,
    limit_conn_log_level: Option<ErrorLevel>,
    limit_conn_dry_run: Option<bool>,
    ssl_preread: Option<bool>,
    resolver: Option<Arc<ResolverSettings>>,
    resolver_timeout: Option<Duration>,
    preread_buffer_size: Option<usize>,
    preread_timeout: Option<Duration>,
    /// ngx_stream_ssl_module's settings.
    ssl: super::ssl::SslLayer,
    /// `proxy_ssl` and `proxy_ssl_*`.
    proxy_ssl: super::proxy_ssl::ProxySslLayer,
}

impl Layer {
    /// Applies `d` if it is a merged setting; returns whether it was one.
    fn apply(
        &mut self,
        d: &Directive,
        prefix: &Path,
        formats: &[(String, Arc<LogFormat>)],
        zones: &[Arc<LimitConnZone>],
    ) -> Result<bool, ConfigError> {
        if self.ssl.apply(d)? || self.proxy_ssl.apply(d)? {
            return Ok(true);
        }
        let flag = || values::parse_flag(arg0(d)).unwrap_or(false);
        match d.name.as_str() {
            "proxy_connect_timeout" => set(&mut self.connect_timeout, d, time_arg(d)?)?,
            "proxy_timeout" => set(&mut self.timeout, d, time_arg(d)?)?,
            "proxy_next_upstream" => set(&mut self.next_upstream, d, flag())?,
            "proxy_next_upstream_tries" => {
                let n = u32::try_from(number_arg(d)?).map_err(|_| invalid_value(d))?;
                set(&mut self.next_upstream_tries, d, n)?
            }
            "proxy_next_upstream_timeout" => set(&mut self.next_upstream_timeout, d, time_arg(d)?)?,
            "proxy_buffer_size" => {
                let n = values::parse_size(arg0(d))
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| invalid_value(d))?;
                set(&mut self.buffer_size, d, n)?
            }
            "proxy_half_close" => set(&mut self.half_close, d, flag())?,
            "proxy_bind" => set(&mut self.bind, d, parse_proxy_bind(d)?)?,
            "proxy_socket_keepalive" => set(&mut self.socket_keepalive, d, flag())?,
            "proxy_download_rate" | "proxy_upload_rate" => {
                let rate = if arg0(d).contains('$') {
                    Rate::Vars(
                        crate::vars::Template::compile(arg0(d))
                            .map_err(|e| ConfigError::at(e.to_string(), &d.position))?,
                    )
                } else {
                    Rate::Fixed(values::parse_size(arg0(d)).ok_or_else(|| invalid_value(d))?)
                };
                let slot = if d.name == "proxy_download_rate" {
                    &mut self.download_rate
                } else {
                    &mut self.upload_rate
                };
                set(slot, d, rate)?
            }
            "proxy_protocol" => set(&mut self.proxy_protocol, d, flag())?,
            "ssl_preread" => set(&mut self.ssl_preread, d, flag())?,
            "preread_timeout" => set(&mut self.preread_timeout, d, time_arg(d)?)?,
            "preread_buffer_size" => {
                let n = values::parse_size(arg0(d))
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| invalid_value(d))?;
                set(&mut self.preread_buffer_size, d, n)?
            }
            "proxy_protocol_timeout" => set(&mut self.proxy_protocol_timeout, d, time_arg(d)?)?,
            "proxy_responses" => {
                let n = u32::try_from(number_arg(d)?).map_err(|_| invalid_value(d))?;
                set(&mut self.responses, d, n)?
            }
            "proxy_requests" => {
                let n = u32::try_from(number_arg(d)?).map_err(|_| invalid_value(d))?;
                set(&mut self.requests, d, n)?
            }
            "tcp_nodelay" => set(&mut self.tcp_nodelay, d, flag())?,
            "open_log_file_cache" => set(
                &mut self.open_log_file_cache,
                d,
                super::settings::parse_open_log_file_cache(d)?,
            )?,
            "access_log" => {
                let logs = self.access_log.get_or_insert_with(Vec::new);
                if let Some(target) = parse_access_log(d, prefix, formats)? {
                    logs.push(target);
                }
            }
            "allow" | "deny" => {
                let rule = parse_access_rule(d)?;
                self.access.get_or_insert_with(Vec::new).push(rule);
            }
            "limit_conn" => {
                let limit = parse_limit_conn(d, zones)?;
                let limits = self.limit_conn.get_or_insert_with(Vec::new);
                if limits.iter().any(|l| Arc::ptr_eq(&l.zone, &limit.zone)) {
                    return Err(ConfigError::at(
                        "\"limit_conn\" directive is duplicate",
                        &d.position,
                    ));
                }
                limits.push(limit);
            }
            "limit_conn_log_level" => {
                set(&mut self.limit_conn_log_level, d, super::limits::level(d)?)?
            }
            "limit_conn_dry_run" => set(&mut self.limit_conn_dry_run, d, flag())?,
            "resolver" => {
                let resolver = super::upstream::parse_resolver(d)?;
                set(&mut self.resolver, d, Arc::new(resolver))?;
            }
            "resolver_timeout" => set(&mut self.resolver_timeout, d, time_arg(d)?)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// This layer over `parent`.
    fn over(&self, parent: &Layer) -> Layer {
        Layer {
            connect_timeout: self.connect_timeout.or(parent.connect_timeout),
            timeout: self.timeout.or(parent.timeout),
            next_upstream: self.next_upstream.or(parent.next_upstream),
            next_upstream_tries: self.next_upstream_tries.or(parent.next_upstream_tries),
            next_upstream_timeout: self.next_upstream_timeout.or(parent.next_upstream_timeout),
            buffer_size: self.buffer_size.or(parent.buffer_size),
            half_close: self.half_close.or(parent.half_close),
            bind: self.bind.clone().or_else(|| parent.bind.clone()),
            socket_keepalive: self.socket_keepalive.or(parent.socket_keepalive),
            download_rate: self
                .download_rate
                .clone()
                .or_else(|| parent.download_rate.clone()),
            upload_rate: self
                .upload_rate
                .clone()
                .or_else(|| parent.upload_rate.clone()),
            proxy_protocol: self.proxy_protocol.or(parent.proxy_protocol),
            proxy_protocol_timeout: self
                .proxy_protocol_timeout
                .or(parent.proxy_protocol_timeout),
            responses: self.responses.or(parent.responses),
            requests: self.requests.or(parent.requests),
            tcp_nodelay: self.tcp_nodelay.or(parent.tcp_nodelay),
            access_log: self
                .access_log
                .clone()
                .or_else(|| parent.access_log.clone()),
            open_log_file_cache: self.open_log_file_cache.or(parent.open_log_file_cache),
            access: self.access.clone().or_else(|| parent.access.clone()),
            limit_conn: self
                .limit_conn
                .clone()
                .or_else(|| parent.limit_conn.clone()),
            limit_conn_log_level: self.limit_conn_log_level.or(parent.limit_conn_log_level),
            limit_conn_dry_run: self.limit_conn_dry_run.or(parent.limit_conn_dry_run),
            ssl_preread: self.ssl_preread.or(parent.ssl_preread),
            resolver: self.resolver.clone().or_else(|| parent.resolver.clone()),
            resolver_timeout: self.resolver_timeout.or(parent.resolver_timeout),
            preread_buffer_size: self.preread_buffer_size.or(parent.preread_buffer_size),
            preread_timeout: self.preread_timeout.or(parent.preread_timeout),
            ssl: self.ssl.over(&parent.ssl),
            proxy_ssl: self.proxy_ssl.over(&parent.proxy_ssl),
        }
    }
}

/// Builds the typed `stream` block. Templates in it are compiled against
/// the stream module's variables.
/// Certificate files are relative to `conf_prefix`, the directory of
/// nginx.conf, as in nginx.
pub(crate) fn build_stream(
    d: &Directive,
    prefix: &Path,
    conf_prefix: &Path,
) -> Result<Stream, ConfigError> {
    let block = d.block.as_deref().unwrap_or_default();
    let mut names = Vec::new();
    super::rewrite::user_var_names(block, &mut names);
    with_var_set(VarSet::Stream, || {
        with_user_vars(names, || build_stream_inner(block, prefix, conf_prefix))
    })
}

fn build_stream_inner(
    block: &[Directive],
    prefix: &Path,
    conf_prefix: &Path,
) -> Result<Stream, ConfigError> {
    let mut formats: Vec<(String, Arc<LogFormat>)> = Vec::new();
    let mut maps = std::collections::HashMap::new();
    let mut splits = std::collections::HashMap::new();
    let mut geos = std::collections::HashMap::new();
    let mut upstreams: Vec<Arc<UpstreamConfig>> = Vec::new();
    let mut layer = Layer::default();
    let mut seen = Seen::default();
    let mut server_blocks = Vec::new();
    // Zones first: limit_conn may name a zone defined further down.
    let mut zones: Vec<Arc<LimitConnZone>> = Vec::new();
    for inner in block.iter().filter(|d| d.name == "limit_conn_zone") {
        check(inner, Ctx::STREAM)?;
        let zone = parse_limit_conn_zone(inner)?;
        if let Some(old) = zones.iter().find(|z| z.name == zone.name) {
            return Err(ConfigError::at(
                format!(
                    "limit_conn_zone \"{}\" is already bound to key \"{}\"",
                    zone.name, old.key_text
                ),
                &inner.position,
            ));
        }
        zones.push(Arc::new(zone));
    }
    let resolver = super::upstream::block_resolver(block, Ctx::STREAM)?;
    for inner in block {
        let spec = check(inner, Ctx::STREAM)?;
        if spec.support == Support::NotYet {
            continue;
        }
        match spec.name {
            "server" => server_blocks.push(inner),
            "include" | "limit_conn_zone" => {}
            "error_log" => not_yet_in_stream(inner),
            "upstream" => {
                let up = build_stream_upstream(inner, resolver.as_ref())?;
                if upstreams.iter().any(|u| u.name == up.name) {
                    return Err(ConfigError::at(
                        format!("duplicate upstream \"{}\"", up.name),
                        &inner.position,
                    ));
                }
                upstreams.push(Arc::new(up));
            }
            "log_format" => {
                let name = arg0(inner).to_string();
                if formats.iter().any(|(n, _)| *n == name) {
                    return Err(ConfigError::at(
                        format!("duplicate \"log_format\" name \"{name}\""),
                        &inner.position,
                    ));
                }
                let format = super::http::parse_log_format(inner)?;
                formats.push((name, Arc::new(format)));
            }
            "map" => {
                super::rewrite::add_map(&mut maps, inner)?;
                // nginx's later definition of a changeable variable wins.
                geos.retain(|name: &String, _| !maps.contains_key(name));
            }
            "geo" => super::geo::add_geo(&mut geos, &mut maps, &splits, inner, false)?,
            "split_clients" => {
                let (name, split) = parse_split_clients(inner)?;
                if maps.contains_key(&name)
                    || splits.contains_key(&name)
                    || geos.contains_key(&name)
                {
                    return Err(ConfigError::at(
                        format!("the duplicate \"{name}\" variable"),
                        &inner.position,
                    ));
                }
                splits.insert(name, Arc::new(split));
            }
            _ => {
                if !layer.apply(inner, prefix, &formats, &zones)? {
                    // Accepted tuning directives (hash sizes): once each.
                    seen.unclaimed(inner, spec)?;
                }
            }
        }
    }
    let upstream_names: Vec<String> = upstreams.iter().map(|u| u.name.clone()).collect();
    let mut found = FoundInServers {
        implicit: Vec::new(),
        checks: Vec::new(),
        ssl: super::ssl::SslBuild::new(conf_prefix),
    };
    let mut servers = Vec::new();
    for s in server_blocks {
        servers.push(Arc::new(build_server(
            s,
            &layer,
            prefix,
            &formats,
            &zones,
            &upstream_names,
            &mut found,
        )?));
    }
    check_listens(&servers)?;
    for up in found.implicit {
        if !upstreams.iter().any(|u| u.name == up.name) {
            upstreams.push(up);
        }
    }
    // Datagrams to a Unix socket: named at load, not left to fail at connect.
    for server in servers.iter().filter(|s| s.listens.iter().any(|l| l.udp)) {
        let StreamHandler::Proxy(target) = &server.handler else {
            continue;
        };
        let name = match target {
            ProxyTarget::Upstream(name) => name,
            ProxyTarget::Implicit(up) => &up.name,
        };
        let to_socket = upstreams
            .iter()
            .filter(|u| &u.name == name)
            .flat_map(|u| u.servers.iter())
            .find(|s| s.unix.is_some());
        if let Some(peer) = to_socket {
            super::record_unsupported(ConfigError::at(
                "udp proxying to a unix socket is not supported yet",
                &peer.position,
            ));
        }
    }
    // A server's health_check checks the peers of the group it proxies to
    // (nginx Plus's stream semantics), whichever servers share that group.
    for (name, check) in found.checks {
        if let Some(up) = upstreams.iter_mut().find(|u| u.name == name) {
            match &up.health_check {
                Some(existing) if *existing != check => {
                    return Err(ConfigError::bare(format!(
                        "upstream \"{name}\" gets two different health checks: \
                         one health_check per upstream is supported yet"
                    )))
                }
                _ => Arc::make_mut(up).health_check = Some(check),
            }
        }
    }
    Ok(Stream {
        upstreams,
        servers,
        maps: Arc::new(maps),
        split_clients: Arc::new(splits),
        geos: Arc::new(geos),
        limit_zones: zones,
    })
}

/// Records `error_log` inside stream as not supported yet: the process
/// has one error log, from the main context, and a stream-level one would
/// otherwise be silently ignored.
fn not_yet_in_stream(d: &Directive) {
    super::record_unsupported(ConfigError::at(
        "\"error_log\" in stream is not supported yet",
        &d.position,
    ));
}

/// What servers contribute to the stream block as a whole.
struct FoundInServers {
    /// Implicit one-server groups (`proxy_pass host:port`).
    implicit: Vec<Arc<UpstreamConfig>>,
    /// `health_check` lines, by the group they check.
    checks: Vec<(String, HealthCheck)>,
    /// The servers' TLS, built as each server is.
    ssl: super::ssl::SslBuild,
}

fn build_server(
    d: &Directive,
    stream: &Layer,
    prefix: &Path,
    formats: &[(String, Arc<LogFormat>)],
    zones: &[Arc<LimitConnZone>],
    upstream_names: &[String],
    found: &mut FoundInServers,
) -> Result<StreamServer, ConfigError> {
    let mut layer = Layer::default();
    let mut pending_check: Option<(HealthCheck, &Directive)> = None;
    let mut listens = Vec::new();
    let mut handler = StreamHandler::None;
    let mut proxy_pass_seen = false;
    let mut return_seen = false;
    let mut set = Vec::new();
    for inner in d.block.as_deref().unwrap_or_default() {
        let spec = check(inner, Ctx::STREAM_SERVER)?;
        if spec.support == Support::NotYet {
            continue;
        }
        match spec.name {
            "listen" => listens.extend(parse_stream_listen(inner)?),
            "include" => {}
            "error_log" => not_yet_in_stream(inner),
            // Each sets the server's handler; the last one written wins,
            // as in nginx.
            "proxy_pass" => {
                if std::mem::replace(&mut proxy_pass_seen, true) {
                    return Err(ConfigError::at(
                        "\"proxy_pass\" directive is duplicate",
                        &inner.position,
                    ));
                }
                handler = parse_proxy_pass(inner, upstream_names, &mut found.implicit)?;
            }
            "return" => {
                if std::mem::replace(&mut return_seen, true) {
                    return Err(ConfigError::at(
                        "\"return\" directive is duplicate",
                        &inner.position,
                    ));
                }
                let text = crate::vars::Template::compile(arg0(inner))
                    .map_err(|e| ConfigError::at(e.to_string(), &inner.position))?;
                handler = StreamHandler::Return(text);
            }
            "set" => match super::rewrite::parse_set(inner)? {
                super::model::Op::Set(name, value) => set.push((name, value)),
                _ => return Err(invalid_value(inner)),
            },
            "health_check" => {
                if pending_check.is_some() {
                    return Err(ConfigError::at(
                        "more than one \"health_check\" in a server is not supported yet",
                        &inner.position,
                    ));
                }
                pending_check = Some((parse_stream_health_check(inner)?, inner));
            }
            _ => {
                if !layer.apply(inner, prefix, formats, zones)? {
                    return Err(ConfigError::at(
                        format!("\"{}\" directive is not allowed here", inner.name),
                        &inner.position,
                    ));
                }
            }
        }
    }
    if listens.is_empty() {
        return Err(ConfigError::bare(format!(
            "no \"listen\" is defined for server in {}",
            d.position
        )));
    }
    if let Some((check, at)) = pending_check {
        let name = match &handler {
            StreamHandler::Proxy(ProxyTarget::Upstream(name)) => name.clone(),
            StreamHandler::Proxy(ProxyTarget::Implicit(up)) => up.name.clone(),
            _ => {
                return Err(ConfigError::at(
                    "\"health_check\" needs \"proxy_pass\" to an upstream in the same server",
                    &at.position,
                ))
            }
        };
        found.checks.push((name, check));
    }
    let merged = layer.over(stream);
    let ssl_listen = listens.iter().any(|l| l.ssl);
    let ssl = found.ssl.server(&merged.ssl, ssl_listen, &d.position)?;
    if ssl_listen && merged.ssl_preread == Some(true) {
        return Err(ConfigError::bare(format!(
            "\"ssl_preread\" in a server with \"listen ... ssl\" is not supported yet in {}",
            d.position
        )));
    }
    let upstream_tls = if merged.proxy_ssl.enabled() {
        Some(Arc::new(ProxyTls {
            context: merged
                .proxy_ssl
                .build(found.ssl.conf_prefix(), &d.position)?,
            name: merged.proxy_ssl.name(),
        }))
    } else {
        None
    };
    Ok(StreamServer {
        upstream_tls,
        ssl,
        listens,
        handler,
        set,
        access: Arc::new(merged.access.clone().unwrap_or_default()),
        limit_conn: merged.limit_conn.clone().unwrap_or_default(),
        limit_conn_log_level: merged.limit_conn_log_level.unwrap_or(ErrorLevel::Error),
        limit_conn_dry_run: merged.limit_conn_dry_run.unwrap_or(false),
        connect_timeout: merged.connect_timeout.unwrap_or(Duration::from_secs(60)),
        timeout: merged.timeout.unwrap_or(Duration::from_secs(600)),
        next_upstream: merged.next_upstream.unwrap_or(true),
        next_upstream_tries: merged.next_upstream_tries.unwrap_or(0),
        next_upstream_timeout: merged.next_upstream_timeout.unwrap_or(Duration::ZERO),
        buffer_size: merged.buffer_size.unwrap_or(16 * 1024),
        half_close: merged.half_close.unwrap_or(false),
        bind: merged.bind.clone().flatten(),
        socket_keepalive: merged.socket_keepalive.unwrap_or(false),
        download_rate: merged.download_rate.clone().unwrap_or(Rate::Fixed(0)),
        upload_rate: merged.upload_rate.clone().unwrap_or(Rate::Fixed(0)),
        proxy_protocol: merged.proxy_protocol.unwrap_or(false),
        proxy_protocol_timeout: merged
            .proxy_protocol_timeout
            .unwrap_or(Duration::from_secs(30)),
        ssl_preread: merged.ssl_preread.unwrap_or(false),
        // As in http, the timeout merges apart from the resolver.
        resolver: merged.resolver.as_ref().map(|r| {
            Arc::new(ResolverSettings {
                timeout: merged.resolver_timeout.unwrap_or(Duration::from_secs(30)),
                ..(**r).clone()
            })
        }),
        preread_buffer_size: merged.preread_buffer_size.unwrap_or(16 * 1024),
        preread_timeout: merged.preread_timeout.unwrap_or(Duration::from_secs(30)),
        responses: merged.responses,
        requests: merged.requests.unwrap_or(0),
        tcp_nodelay: merged.tcp_nodelay.unwrap_or(true),
        access_log: super::settings::with_file_cache(
            merged.access_log.unwrap_or_default(),
            merged.open_log_file_cache.flatten(),
        ),
        position: d.position.clone(),
    })
}

/// nginx Plus's stream `health_check`, with ours on top: by default a
/// probe is a connection (and the TLS handshake with `ssl`); with `uri=` it
/// is an HTTP request, over TLS with `ssl` (OpenShift's API `/readyz`).
/// `match` blocks with `send`/`expect` and `udp` probes are not supported yet.
fn parse_stream_health_check(d: &Directive) -> Result<HealthCheck, ConfigError> {
    for arg in &d.args {
        let p = arg.value.as_str();
        if p == "udp" || p.starts_with("match=") {
            let what = p.split('=').next().unwrap_or(p);
            return Err(ConfigError::at(
                format!("health_check parameter \"{what}\" in stream is not supported yet"),
                &d.position,
            ));
        }
    }
    let mut check = super::health::parse_health_check(d, &std::collections::HashMap::new())?;
    if !d.args.iter().any(|a| a.value.starts_with("uri=")) {
        check.probe = super::model::Probe::Connect;
    }
    Ok(check)
}

/// `proxy_pass NAME` (an upstream block), `proxy_pass host:port` (an
/// implicit one-server group, shared by every server that names it), or
/// either with variables (evaluated per session).
fn parse_proxy_pass(
    d: &Directive,
    upstream_names: &[String],
    implicit: &mut Vec<Arc<UpstreamConfig>>,
) -> Result<StreamHandler, ConfigError> {
    let at = &d.position;
    let target = arg0(d);
    if target.contains('$') {
        let template = crate::vars::Template::compile(target)
            .map_err(|e| ConfigError::at(e.to_string(), at))?;
        return Ok(StreamHandler::ProxyVars(template));
    }
    if upstream_names.iter().any(|n| n == target) {
        return Ok(StreamHandler::Proxy(ProxyTarget::Upstream(
            target.to_string(),
        )));
    }
    let up = match target.strip_prefix("unix:") {
        Some(path) => {
            let path = unix_path(path)
                .map_err(|e| ConfigError::at(format!("{e} in upstream \"{target}\""), at))?;
            Arc::new(implicit_unix_upstream(path, at))
        }
        None => {
            let (host, port, has_port) =
                split_host_port(target, 0).map_err(|e| ConfigError::at(e, at))?;
            if !has_port {
                return Err(ConfigError::at(
                    format!("no port in upstream \"{target}\""),
                    at,
                ));
            }
            Arc::new(implicit_upstream(host, port, at))
        }
    };
    if let Some(existing) = implicit.iter().find(|u| u.name == up.name) {
        return Ok(StreamHandler::Proxy(ProxyTarget::Implicit(
            existing.clone(),
        )));
    }
    implicit.push(up.clone());
    Ok(StreamHandler::Proxy(ProxyTarget::Implicit(up)))
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
