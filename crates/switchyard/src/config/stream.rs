//! The `stream` block: log formats, maps, upstreams and servers, with the
//! stream modules' defaults and messages (ngx_stream_core_module,
//! ngx_stream_proxy_module, ngx_stream_upstream_module, ngx_stream_log_module).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nginx_conf::Directive;

use super::directives::{Ctx, Support};
use super::listen::parse_address;
use super::model::{
    AccessLogTarget, AccessRule, HealthCheck, LimitConn, LimitConnZone, Listen, ProxyBind,
    ProxyTarget, Rate, SplitClients, Stream, StreamHandler, StreamServer, UpstreamConfig,
};
use super::upstream::{build_stream_upstream, implicit_upstream, split_host_port};
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
    /// `allow`/`deny`: a level with rules of its own inherits none.
    access: Option<Vec<AccessRule>>,
    /// `limit_conn`: as `access`, a level with its own inherits none.
    limit_conn: Option<Vec<LimitConn>>,
    limit_conn_log_level: Option<ErrorLevel>,
    limit_conn_dry_run: Option<bool>,
    ssl_preread: Option<bool>,
    preread_buffer_size: Option<usize>,
    preread_timeout: Option<Duration>,
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
                let level = match arg0(d) {
                    "info" => ErrorLevel::Info,
                    "notice" => ErrorLevel::Notice,
                    "warn" => ErrorLevel::Warn,
                    "error" => ErrorLevel::Error,
                    other => {
                        return Err(ConfigError::at(
                            format!("invalid value \"{other}\""),
                            &d.position,
                        ))
                    }
                };
                set(&mut self.limit_conn_log_level, d, level)?
            }
            "limit_conn_dry_run" => set(&mut self.limit_conn_dry_run, d, flag())?,
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
            access: self.access.clone().or_else(|| parent.access.clone()),
            limit_conn: self
                .limit_conn
                .clone()
                .or_else(|| parent.limit_conn.clone()),
            limit_conn_log_level: self.limit_conn_log_level.or(parent.limit_conn_log_level),
            limit_conn_dry_run: self.limit_conn_dry_run.or(parent.limit_conn_dry_run),
            ssl_preread: self.ssl_preread.or(parent.ssl_preread),
            preread_buffer_size: self.preread_buffer_size.or(parent.preread_buffer_size),
            preread_timeout: self.preread_timeout.or(parent.preread_timeout),
        }
    }
}

fn set<T>(slot: &mut Option<T>, d: &Directive, value: T) -> Result<(), ConfigError> {
    if slot.is_some() {
        return Err(ConfigError::at(
            format!("\"{}\" directive is duplicate", d.name),
            &d.position,
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// `proxy_bind ADDRESS[:PORT] | off`; `transparent` is not supported yet.
fn parse_proxy_bind(d: &Directive) -> Result<Option<ProxyBind>, ConfigError> {
    let at = &d.position;
    if let Some(extra) = d.args.get(1) {
        return Err(if extra.value == "transparent" {
            ConfigError::at("\"proxy_bind ... transparent\" is not supported yet", at)
        } else {
            ConfigError::at(format!("invalid parameter \"{}\"", extra.value), at)
        });
    }
    let value = arg0(d);
    if value == "off" {
        return Ok(None);
    }
    if value.contains('$') {
        let t = crate::vars::Template::compile(value)
            .map_err(|e| ConfigError::at(e.to_string(), at))?;
        return Ok(Some(ProxyBind::Vars(t)));
    }
    super::model::parse_bind_address(value)
        .map(|a| Some(ProxyBind::Fixed(a)))
        .ok_or_else(|| ConfigError::at(format!("invalid address \"{value}\""), at))
}

/// `allow ADDRESS|CIDR|unix:|all` / `deny ...` (ngx_stream_access_module,
/// the same rules as http's).
fn parse_access_rule(d: &Directive) -> Result<AccessRule, ConfigError> {
    super::access::parse_rule(d)
}

/// `limit_conn_zone KEY zone=NAME:SIZE` (the size is checked as nginx
/// checks it; the counts live in memory shared by the workers).
fn parse_limit_conn_zone(d: &Directive) -> Result<LimitConnZone, ConfigError> {
    let at = &d.position;
    let key_text = arg0(d).to_string();
    let key = crate::vars::Template::compile(&key_text)
        .map_err(|e| ConfigError::at(e.to_string(), at))?;
    let mut name = None;
    for arg in &d.args[1..] {
        let p = arg.value.as_str();
        let Some(zone) = p.strip_prefix("zone=") else {
            return Err(ConfigError::at(format!("invalid parameter \"{p}\""), at));
        };
        let (zone_name, size) = zone
            .split_once(':')
            .ok_or_else(|| ConfigError::at(format!("invalid zone size \"{p}\""), at))?;
        let size = values::parse_size(size)
            .filter(|_| !zone_name.is_empty())
            .ok_or_else(|| ConfigError::at(format!("invalid zone size \"{p}\""), at))?;
        if size < 8 * 4096 {
            return Err(ConfigError::at(format!("zone \"{p}\" is too small"), at));
        }
        name = Some(zone_name.to_string());
    }
    let name = name
        .ok_or_else(|| ConfigError::at("\"limit_conn_zone\" must have \"zone\" parameter", at))?;
    Ok(LimitConnZone {
        name,
        key,
        key_text,
    })
}

/// `limit_conn ZONE N`.
fn parse_limit_conn(d: &Directive, zones: &[Arc<LimitConnZone>]) -> Result<LimitConn, ConfigError> {
    let at = &d.position;
    let name = arg0(d);
    let zone = zones
        .iter()
        .find(|z| z.name == name)
        .cloned()
        .ok_or_else(|| ConfigError::bare(format!("zero size shared memory zone \"{name}\"")))?;
    let text = &d.args[1].value;
    let max = values::parse_number(text)
        .filter(|n| *n > 0)
        .ok_or_else(|| ConfigError::at(format!("invalid number of connections \"{text}\""), at))?;
    if max > 65535 {
        return Err(ConfigError::at("connection limit must be less 65536", at));
    }
    Ok(LimitConn {
        zone,
        max: max as u32,
    })
}

/// `split_clients KEY $name { PERCENT% VALUE; ... }`, with nginx's
/// arithmetic: percentages in hundredths, bounds over the 32-bit hash.
fn parse_split_clients(d: &Directive) -> Result<(String, SplitClients), ConfigError> {
    let at = &d.position;
    let source =
        crate::vars::Template::compile(arg0(d)).map_err(|e| ConfigError::at(e.to_string(), at))?;
    let name = d.args[1]
        .value
        .strip_prefix('$')
        .ok_or_else(|| {
            ConfigError::at(format!("invalid variable name \"{}\"", d.args[1].value), at)
        })?
        .to_ascii_lowercase();
    let mut raw: Vec<(u32, String)> = Vec::new();
    for line in d.block.as_deref().unwrap_or_default() {
        let lat = &line.position;
        if line.args.len() != 1 || line.block.is_some() {
            return Err(ConfigError::at("invalid number of arguments", lat));
        }
        let key = line.name.as_str();
        let percent = if key == "*" {
            0
        } else {
            key.strip_suffix('%')
                .and_then(parse_hundredths)
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError::at(format!("invalid percent value \"{key}\""), lat))?
        };
        raw.push((percent, line.args[0].value.clone()));
    }
    let mut parts = Vec::new();
    let (mut sum, mut last) = (0u32, 0u64);
    for (percent, value) in raw {
        sum = if percent > 0 { sum + percent } else { 10000 };
        if sum > 10000 {
            return Err(ConfigError::at("percent total is greater than 100%", at));
        }
        let bound = if sum == 10000 || percent == 0 {
            0
        } else {
            last += u64::from(percent) * 0xffff_ffff / 10000;
            last as u32
        };
        parts.push((bound, value));
    }
    Ok((name, SplitClients { source, parts }))
}

/// `12.5` -> 1250 (nginx's `ngx_atofp` with two decimals).
fn parse_hundredths(text: &str) -> Option<u32> {
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, f),
        None => (text, ""),
    };
    if int.is_empty()
        || frac.len() > 2
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int: u32 = int.parse().ok()?;
    let frac: u32 = format!("{frac:0<2}").parse().ok()?;
    int.checked_mul(100)?.checked_add(frac)
}

/// `access_log PATH FORMAT` / `access_log off` in stream: unlike http
/// there is no default format (nginx: "log format is not specified").
fn parse_access_log(
    d: &Directive,
    prefix: &Path,
    formats: &[(String, Arc<LogFormat>)],
) -> Result<Option<AccessLogTarget>, ConfigError> {
    if arg0(d) != "off" && d.args.len() < 2 {
        return Err(ConfigError::at("log format is not specified", &d.position));
    }
    if arg0(d).contains('$') {
        return Err(ConfigError::at(
            "\"access_log\" with variables in the path is not supported yet",
            &d.position,
        ));
    }
    super::settings::parse_access_log(d, prefix, formats)
}

/// Builds the typed `stream` block. Templates in it are compiled against
/// the stream module's variables.
pub(crate) fn build_stream(d: &Directive, prefix: &Path) -> Result<Stream, ConfigError> {
    let block = d.block.as_deref().unwrap_or_default();
    let mut names = Vec::new();
    super::rewrite::user_var_names(block, &mut names);
    with_var_set(VarSet::Stream, || {
        with_user_vars(names, || build_stream_inner(block, prefix))
    })
}

fn build_stream_inner(block: &[Directive], prefix: &Path) -> Result<Stream, ConfigError> {
    let mut formats: Vec<(String, Arc<LogFormat>)> = Vec::new();
    let mut maps = std::collections::HashMap::new();
    let mut splits = std::collections::HashMap::new();
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
            "include" | "limit_conn_zone" | "resolver" | "resolver_timeout" => {}
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
            "map" => super::rewrite::add_map(&mut maps, inner)?,
            "split_clients" => {
                let (name, split) = parse_split_clients(inner)?;
                if maps.contains_key(&name) || splits.contains_key(&name) {
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
                    seen.once(inner)?;
                }
            }
        }
    }
    let upstream_names: Vec<String> = upstreams.iter().map(|u| u.name.clone()).collect();
    let mut found = FoundInServers::default();
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
#[derive(Default)]
struct FoundInServers {
    /// Implicit one-server groups (`proxy_pass host:port`).
    implicit: Vec<Arc<UpstreamConfig>>,
    /// `health_check` lines, by the group they check.
    checks: Vec<(String, HealthCheck)>,
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
            "listen" => listens.push(parse_stream_listen(inner)?),
            "include" => {}
            // A server's resolver would serve proxy_pass with variables,
            // which resolves no names yet: named, not silently ignored.
            "resolver" | "resolver_timeout" => super::record_unsupported(ConfigError::at(
                format!("\"{}\" in a stream server is not supported yet", inner.name),
                &inner.position,
            )),
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
    Ok(StreamServer {
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
        preread_buffer_size: merged.preread_buffer_size.unwrap_or(16 * 1024),
        preread_timeout: merged.preread_timeout.unwrap_or(Duration::from_secs(30)),
        responses: merged.responses,
        requests: merged.requests.unwrap_or(0),
        tcp_nodelay: merged.tcp_nodelay.unwrap_or(true),
        access_log: merged.access_log.unwrap_or_default(),
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
    if target.starts_with("unix:") {
        return Err(ConfigError::at(
            "\"proxy_pass\" to a unix socket is not supported yet",
            at,
        ));
    }
    if upstream_names.iter().any(|n| n == target) {
        return Ok(StreamHandler::Proxy(ProxyTarget::Upstream(
            target.to_string(),
        )));
    }
    let (host, port, has_port) = split_host_port(target, 0).map_err(|e| ConfigError::at(e, at))?;
    if !has_port {
        return Err(ConfigError::at(
            format!("no port in upstream \"{target}\""),
            at,
        ));
    }
    let up = Arc::new(implicit_upstream(host, port, at));
    if let Some(existing) = implicit.iter().find(|u| u.name == up.name) {
        return Ok(StreamHandler::Proxy(ProxyTarget::Implicit(
            existing.clone(),
        )));
    }
    implicit.push(up.clone());
    Ok(StreamHandler::Proxy(ProxyTarget::Implicit(up)))
}

/// `listen ADDRESS:PORT [backlog=N] [reuseport] [bind] [so_keepalive=...]
/// [ipv6only=on|off]`; `udp`, `ssl` and `proxy_protocol` are not
/// supported yet.
pub(crate) fn parse_stream_listen(d: &Directive) -> Result<Listen, ConfigError> {
    let at = &d.position;
    let first = arg0(d);
    if first.starts_with("unix:") {
        return Err(ConfigError::at(
            "\"listen\" on a unix socket is not supported yet",
            at,
        ));
    }
    let has_port = first.bytes().all(|b| b.is_ascii_digit())
        || match first.strip_prefix('[') {
            Some(rest) => rest.contains("]:"),
            None => first.contains(':'),
        };
    if !has_port {
        return Err(ConfigError::at(
            format!("no port in \"{first}\" of the \"listen\" directive"),
            at,
        ));
    }
    let addr = parse_address(first, 0)
        .map_err(|e| ConfigError::at(format!("{e} of the \"listen\" directive"), at))?;
    let mut listen = Listen::new(addr, Some(at.clone()));
    for param in d.args.iter().skip(1) {
        let p = param.value.as_str();
        match p {
            "reuseport" | "bind" => {}
            "udp" => listen.udp = true,
            "proxy_protocol" => listen.proxy_protocol = true,
            "ssl" => {
                return Err(ConfigError::at(
                    format!("\"listen ... {p}\" is not supported yet"),
                    at,
                ))
            }
            _ => {
                if super::listen::socket_param(&mut listen, p, at)? {
                } else if p.starts_with("so_keepalive=")
                    || p.starts_with("rcvbuf=")
                    || p.starts_with("sndbuf=")
                {
                    // Socket tuning with no effect on the bytes proxied; accepted.
                } else {
                    return Err(ConfigError::at(format!("invalid parameter \"{p}\""), at));
                }
            }
        }
    }
    if listen.udp && listen.proxy_protocol {
        return Err(ConfigError::at(
            "\"listen ... udp proxy_protocol\" is not supported yet",
            at,
        ));
    }
    Ok(listen)
}

/// nginx refuses the same address in two stream `listen`s.
fn check_listens(servers: &[Arc<StreamServer>]) -> Result<(), ConfigError> {
    let mut seen: Vec<(std::net::SocketAddr, bool)> = Vec::new();
    for listen in servers.iter().flat_map(|s| s.listens.iter()) {
        if seen.contains(&(listen.addr, listen.udp)) {
            let message = format!("duplicate \"{}\" address and port pair", listen.addr);
            return Err(match &listen.position {
                Some(p) => ConfigError::at(message, p),
                None => ConfigError::bare(message),
            });
        }
        seen.push((listen.addr, listen.udp));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{load, LoadOptions, Loaded};
    use super::*;

    fn try_load(stream_body: &str) -> Result<Loaded, ConfigError> {
        let dir = tempfile::tempdir().map_err(|e| ConfigError::bare(e.to_string()))?;
        let path = dir.path().join("nginx.conf");
        let text = format!("events {{}}\nstream {{\n{stream_body}\n}}\n");
        std::fs::write(&path, text).map_err(|e| ConfigError::bare(e.to_string()))?;
        load(&LoadOptions {
            conf_file: path,
            prefix: dir.path().to_path_buf(),
            globals: None,
        })
    }

    fn stream(body: &str) -> Stream {
        match try_load(body) {
            Ok(l) => l.model.stream.expect("a stream block"),
            Err(e) => panic!("unexpected error: {}", e.lines().join("; ")),
        }
    }

    fn error(body: &str) -> String {
        match try_load(body) {
            Ok(_) => panic!("loaded, expected an error"),
            Err(e) => e.lines().join("; "),
        }
    }

    #[test]
    fn upstream_and_server_with_defaults() {
        let s = stream(
            "upstream u { hash $remote_addr consistent; server 127.0.0.1:81 weight=2 max_fails=3 fail_timeout=5s; server 127.0.0.1:82 down; }\n\
             server { listen 127.0.0.1:8080; proxy_pass u; }",
        );
        assert_eq!(s.upstreams.len(), 1);
        let up = &s.upstreams[0];
        assert_eq!(up.method, balance::Method::Hash { consistent: true });
        assert_eq!(up.servers[0].weight, 2);
        assert_eq!(up.servers[0].max_fails, 3);
        assert_eq!(up.servers[0].fail_timeout, Duration::from_secs(5));
        assert!(up.servers[1].down);
        let server = &s.servers[0];
        assert_eq!(server.listens[0].addr, "127.0.0.1:8080".parse().unwrap());
        assert!(
            matches!(&server.handler, StreamHandler::Proxy(ProxyTarget::Upstream(n)) if n == "u")
        );
        assert_eq!(server.connect_timeout, Duration::from_secs(60));
        assert_eq!(server.timeout, Duration::from_secs(600));
        assert!(server.next_upstream);
        assert_eq!(server.buffer_size, 16384);
        assert!(!server.half_close);
        assert!(server.access_log.is_empty());
    }

    #[test]
    fn settings_merge_from_stream_into_server() {
        let s = stream(
            "proxy_timeout 5s; proxy_next_upstream off; log_format f $remote_addr; access_log x.log f;\n\
             server { listen 127.0.0.1:8080; proxy_pass 127.0.0.1:81; proxy_timeout 1s; proxy_buffer_size 1k; proxy_next_upstream_tries 2; }\n\
             server { listen 127.0.0.1:8081; proxy_pass 127.0.0.1:81; access_log off; }",
        );
        assert_eq!(s.servers[0].timeout, Duration::from_secs(1));
        assert!(!s.servers[0].next_upstream);
        assert_eq!(s.servers[0].buffer_size, 1024);
        assert_eq!(s.servers[0].next_upstream_tries, 2);
        assert_eq!(s.servers[0].access_log.len(), 1);
        assert_eq!(s.servers[1].timeout, Duration::from_secs(5));
        assert!(s.servers[1].access_log.is_empty());
        // One implicit group for the two servers that name the same address.
        assert_eq!(s.upstreams.len(), 1);
        assert_eq!(s.upstreams[0].name, "127.0.0.1:81");
    }

    #[test]
    fn stream_variables_only() {
        stream("log_format f $bytes_received:$upstream_bytes_sent:$session_time:$protocol;");
        let e = error("log_format f $request;");
        assert!(e.starts_with("unknown \"request\" variable in "), "{e}");
    }

    #[test]
    fn nginx_messages_with_positions() {
        let cases = [
            ("upstream u { server 127.0.0.1; }", "no port in upstream \"127.0.0.1\" in "),
            ("upstream u { keepalive 2; server 127.0.0.1:80; }", "\"keepalive\" directive is not allowed here in "),
            ("upstream u { ip_hash; server 127.0.0.1:80; }", "\"ip_hash\" directive is not allowed here in "),
            ("upstream u { }", "no servers are inside upstream in "),
            ("server { proxy_pass 127.0.0.1:80; }", "no \"listen\" is defined for server in "),
            ("server { listen 127.0.0.1; proxy_pass 127.0.0.1:80; }", "no port in \"127.0.0.1\" of the \"listen\" directive in "),
            ("server { listen 127.0.0.1:80; proxy_pass backend; }", "no port in upstream \"backend\" in "),
            ("server { listen 127.0.0.1:80; proxy_pass 127.0.0.1:81; proxy_timeout x; }", "\"proxy_timeout\" directive invalid value in "),
            ("server { listen 127.0.0.1:80; proxy_pass 127.0.0.1:81; proxy_half_close yes; }", "invalid value \"yes\" in \"proxy_half_close\" directive, it must be \"on\" or \"off\" in "),
            ("server { listen 127.0.0.1:80; proxy_pass 127.0.0.1:81; access_log x.log; }", "log format is not specified in "),
            ("server { listen 127.0.0.1:80; proxy_pass 127.0.0.1:81; location / {} }", "\"location\" directive is not allowed here in "),
            ("server { listen 127.0.0.1:80; proxy_pass 127.0.0.1:81; }\nserver { listen 127.0.0.1:80; proxy_pass 127.0.0.1:81; }", "duplicate \"127.0.0.1:80\" address and port pair in "),
            ("server x { listen 127.0.0.1:80; }", "invalid number of arguments in \"server\" directive in "),
        ];
        for (body, wanted) in cases {
            let e = error(body);
            assert!(e.starts_with(wanted), "{body}: {e}");
            assert!(e.contains("nginx.conf:"), "{body}: no file:line in {e}");
        }
    }

    #[test]
    fn unimplemented_directives_are_named_not_ignored() {
        let e = error(
            "server { listen 127.0.0.1:80; proxy_pass 127.0.0.1:81; proxy_ssl_verify on; proxy_ssl on; }",
        );
        assert!(
            e.contains("\"proxy_ssl_verify\" is not supported yet in "),
            "{e}"
        );
        assert!(e.contains("\"proxy_ssl\" is not supported yet in "), "{e}");
        let e = error("server { listen 127.0.0.1:80 ssl; proxy_pass 127.0.0.1:81; }");
        assert!(
            e.starts_with("\"listen ... ssl\" is not supported yet"),
            "{e}"
        );
        let e = error("error_log logs/s.log;");
        assert!(
            e.starts_with("\"error_log\" in stream is not supported yet"),
            "{e}"
        );
    }

    #[test]
    fn split_clients_bounds_follow_nginx() {
        let s = stream("split_clients $remote_addr $x { 50% a; 25.5% b; * c; }");
        let split = &s.split_clients["x"];
        let half = (5000u64 * 0xffff_ffff / 10000) as u32;
        let more = (5000u64 * 0xffff_ffff / 10000 + 2550u64 * 0xffff_ffff / 10000) as u32;
        assert_eq!(
            split.parts,
            vec![
                (half, "a".to_string()),
                (more, "b".to_string()),
                (0, "c".to_string())
            ]
        );
        assert!(error("split_clients $remote_addr $x { 60% a; 50% b; }")
            .starts_with("percent total is greater than 100% in "));
        assert!(error("split_clients $remote_addr $x { 0% a; }")
            .starts_with("invalid percent value \"0%\" in "));
        assert!(error("split_clients $remote_addr $x { 1.234% a; }")
            .starts_with("invalid percent value"));
    }

    #[test]
    fn udp_listens_and_responses() {
        let s = stream(
            "proxy_responses 1;\n\
             server { listen 127.0.0.1:8080 udp; listen 127.0.0.1:8080; proxy_pass 127.0.0.1:81; proxy_requests 2; }",
        );
        let server = &s.servers[0];
        assert!(
            server.listens[0].udp && !server.listens[1].udp,
            "TCP and UDP may share a port"
        );
        assert_eq!(server.responses, Some(1));
        assert_eq!(server.requests, 2);
        let s = stream("server { listen 127.0.0.1:8080 udp; proxy_pass 127.0.0.1:81; }");
        assert_eq!(s.servers[0].responses, None, "any number by default");
    }

    #[test]
    fn limit_conn_zones_and_limits() {
        let s = stream(
            "limit_conn zone 2;\n\
             server { listen 127.0.0.1:8080; proxy_pass 127.0.0.1:81; }\n\
             server { listen 127.0.0.1:8081; proxy_pass 127.0.0.1:81; limit_conn other 1; limit_conn_log_level warn; }\n\
             limit_conn_zone $binary_remote_addr zone=zone:1m;\n\
             limit_conn_zone $remote_addr zone=other:64k;",
        );
        assert_eq!(s.limit_zones.len(), 2);
        assert_eq!(s.servers[0].limit_conn.len(), 1, "inherited");
        assert_eq!(s.servers[0].limit_conn[0].zone.name, "zone");
        assert_eq!(s.servers[0].limit_conn[0].max, 2);
        assert_eq!(s.servers[1].limit_conn.len(), 1, "its own only");
        assert_eq!(s.servers[1].limit_conn[0].zone.name, "other");
        assert_eq!(s.servers[1].limit_conn_log_level, ErrorLevel::Warn);
        let cases = [
            (
                "limit_conn_zone $remote_addr zone=z:1k;",
                "zone \"zone=z:1k\" is too small in ",
            ),
            (
                "limit_conn_zone $remote_addr size=1m;",
                "invalid parameter \"size=1m\" in ",
            ),
            (
                "limit_conn_zone $remote_addr zone=z:1m; limit_conn_zone $server_addr zone=z:1m;",
                "limit_conn_zone \"z\" is already bound to key \"$remote_addr\" in ",
            ),
            (
                "limit_conn_zone $remote_addr zone=z:1m; limit_conn z 0;",
                "invalid number of connections \"0\" in ",
            ),
            (
                "limit_conn_zone $remote_addr zone=z:1m; limit_conn z 70000;",
                "connection limit must be less 65536 in ",
            ),
            (
                "limit_conn nope 1;",
                "zero size shared memory zone \"nope\"",
            ),
        ];
        for (body, wanted) in cases {
            let e = error(body);
            assert!(e.starts_with(wanted), "{body}: {e}");
        }
    }

    #[test]
    fn resolver_serves_stream_upstreams() {
        let s = stream(
            "upstream u { server example.net:80 resolve; server _x._tcp.example.net service=x; }\n\
             upstream own { resolver 127.0.0.2; server example.org:80 resolve; }\n\
             resolver 127.0.0.1:5353 valid=5s; resolver_timeout 2s;",
        );
        let u = &s.upstreams[0];
        let r = u.resolver.as_ref().expect("the stream resolver");
        assert_eq!(r.servers, vec!["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(r.timeout, Duration::from_secs(2));
        assert_eq!(
            u.servers[1].service.as_deref(),
            Some("x"),
            "service= needs no port"
        );
        let own = s.upstreams[1].resolver.as_ref().expect("its own resolver");
        assert_eq!(own.servers, vec!["127.0.0.2:53".parse().unwrap()]);
        let e =
            error("server { listen 127.0.0.1:80; resolver 127.0.0.1; proxy_pass 127.0.0.1:81; }");
        assert!(
            e.starts_with("\"resolver\" in a stream server is not supported yet in "),
            "{e}"
        );
    }

    #[test]
    fn rates_fixed_or_from_variables() {
        let s = stream(
            "proxy_download_rate 1k;\n\
             server { listen 127.0.0.1:8080; proxy_pass 127.0.0.1:81; proxy_upload_rate $server_port; }",
        );
        assert_eq!(s.servers[0].download_rate, Rate::Fixed(1024));
        assert!(matches!(s.servers[0].upload_rate, Rate::Vars(_)));
        let e = error("proxy_download_rate fast;");
        assert!(
            e.starts_with("\"proxy_download_rate\" directive invalid value in "),
            "{e}"
        );
    }

    #[test]
    fn proxy_bind_and_keepalive() {
        let s = stream(
            "proxy_bind 127.0.0.2; proxy_socket_keepalive on;\n\
             server { listen 127.0.0.1:8080; proxy_pass 127.0.0.1:81; }\n\
             server { listen 127.0.0.1:8081; proxy_pass 127.0.0.1:81; proxy_bind off; }\n\
             server { listen 127.0.0.1:8082; proxy_pass 127.0.0.1:81; proxy_bind $server_addr; }",
        );
        assert_eq!(
            s.servers[0].bind,
            Some(ProxyBind::Fixed("127.0.0.2:0".parse().unwrap()))
        );
        assert!(s.servers[0].socket_keepalive);
        assert_eq!(s.servers[1].bind, None, "off");
        assert!(matches!(s.servers[2].bind, Some(ProxyBind::Vars(_))));
        assert!(error("proxy_bind 127.0.0.2 transparent;")
            .contains("transparent\" is not supported yet"));
        assert!(error("proxy_bind nowhere;").starts_with("invalid address \"nowhere\" in "));
    }

    #[test]
    fn murmur_hash2_known_values() {
        // Reference values of MurmurHash2 with seed 0, as nginx computes it.
        assert_eq!(super::super::model::murmur_hash2(b""), 0);
        assert_eq!(super::super::model::murmur_hash2(b"a"), 0x92685f5e);
    }

    #[test]
    fn access_rules_set_and_return() {
        let s = stream(
            "deny 10.0.0.0/8; allow all;\n\
             server { listen 127.0.0.1:8080; set $greeting hi; return $greeting; }\n\
             server { listen 127.0.0.1:8081; deny all; proxy_pass 127.0.0.1:81; }",
        );
        assert_eq!(s.servers[0].access.len(), 2, "inherited from stream");
        assert_eq!(s.servers[1].access.len(), 1, "its own rules only");
        assert!(!s.servers[1].access[0].allow);
        assert_eq!(
            s.servers[1].access[0].from,
            super::super::model::AccessFrom::All
        );
        assert_eq!(s.servers[0].set.len(), 1);
        assert!(matches!(s.servers[0].handler, StreamHandler::Return(_)));
        assert!(
            error("server { listen 127.0.0.1:80; allow 1.2.3; return x; }")
                .starts_with("invalid parameter \"1.2.3\" in ")
        );
    }
}
