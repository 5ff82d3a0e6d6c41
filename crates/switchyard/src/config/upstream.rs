//! `upstream { }` blocks and their `server` lines.

use std::time::Duration;

use nginx_conf::{Directive, Position};

use super::directives::Ctx;
use super::model::{ResolverSettings, UpstreamConfig, UpstreamServer};
use super::{check, values, ConfigError, Seen};
use crate::vars::Template;

/// Splits `host[:port]` / `[v6][:port]`; the error text is nginx's
/// `invalid port in upstream "x"` family.
pub(crate) fn split_host_port(
    text: &str,
    default_port: u16,
) -> Result<(String, u16, bool), String> {
    let bad_port = || format!("invalid port in upstream \"{text}\"");
    let port_of = |p: &str| match values::parse_number(p) {
        Some(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(bad_port()),
    };
    if let Some(rest) = text.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| format!("invalid IPv6 address in upstream \"{text}\""))?;
        let host = rest[..end].to_string();
        return match rest[end + 1..].strip_prefix(':') {
            Some(p) => Ok((host, port_of(p)?, true)),
            None if rest.len() == end + 1 => Ok((host, default_port, false)),
            None => Err(format!("invalid host in upstream \"{text}\"")),
        };
    }
    if text.is_empty() {
        return Err(format!("no host in upstream \"{text}\""));
    }
    match text.rsplit_once(':') {
        Some(("", _)) => Err(format!("no host in upstream \"{text}\"")),
        Some((h, p)) => Ok((h.to_string(), port_of(p)?, true)),
        None => Ok((text.to_string(), default_port, false)),
    }
}

/// Checks the path of a `unix:` address as nginx does (a `sockaddr_un`
/// holds 107 bytes and the NUL), with nginx's words for what is wrong.
pub(crate) fn unix_path(path: &str) -> Result<&str, &'static str> {
    if path.is_empty() {
        Err("no path in the unix domain socket")
    } else if path.len() >= 108 {
        Err("too long path in the unix domain socket")
    } else {
        Ok(path)
    }
}

fn parse_server(
    d: &Directive,
    method: &balance::Method,
    ctx: Ctx,
) -> Result<UpstreamServer, ConfigError> {
    let at = &d.position;
    let address = &d.args[0].value;
    let (mut server, has_port) = match address.strip_prefix("unix:") {
        Some(path) => {
            let path = unix_path(path)
                .map_err(|e| ConfigError::at(format!("{e} in upstream \"{address}\""), at))?;
            (UpstreamServer::unix(path, at.clone()), true)
        }
        None => {
            let (host, port, has_port) =
                split_host_port(address, 80).map_err(|e| ConfigError::at(e, at))?;
            (
                UpstreamServer::new(address.clone(), host, port, at.clone()),
                has_port,
            )
        }
    };
    for arg in d.args.iter().skip(1) {
        let p = arg.value.as_str();
        let invalid = || ConfigError::at(format!("invalid parameter \"{p}\""), at);
        if let Some(v) = p.strip_prefix("weight=") {
            server.weight = values::parse_number(v)
                .filter(|n| *n > 0 && *n <= u32::MAX as u64)
                .ok_or_else(invalid)? as u32;
        } else if let Some(v) = p.strip_prefix("max_fails=") {
            server.max_fails = values::parse_number(v)
                .filter(|n| *n <= u32::MAX as u64)
                .ok_or_else(invalid)? as u32;
        } else if let Some(v) = p.strip_prefix("max_conns=") {
            server.max_conns = values::parse_number(v)
                .filter(|n| *n <= u32::MAX as u64)
                .ok_or_else(invalid)? as u32;
        } else if let Some(v) = p.strip_prefix("fail_timeout=") {
            server.fail_timeout = values::parse_time(v).ok_or_else(invalid)?;
        } else if p == "backup" {
            if !matches!(
                method,
                balance::Method::RoundRobin | balance::Method::LeastConn
            ) {
                return Err(ConfigError::at(
                    "balancing method does not support parameter \"backup\"",
                    at,
                ));
            }
            server.backup = true;
        } else if p == "down" {
            server.down = true;
        } else if p == "resolve" {
            server.resolve = true;
        } else if let Some(v) = p.strip_prefix("service=") {
            if v.is_empty() {
                return Err(invalid());
            }
            server.service = Some(v.to_string());
        } else if p.starts_with("slow_start=") || p.starts_with("route=") {
            return Err(ConfigError::at(
                format!("server parameter \"{p}\" is not supported yet"),
                at,
            ));
        } else {
            return Err(invalid());
        }
    }
    // stream has no default port (nginx: ngx_parse_url without one),
    // unless SRV records give it (`service=`).
    if ctx == Ctx::STREAM_UPSTREAM && !has_port && server.service.is_none() {
        return Err(ConfigError::at(
            format!("no port in upstream \"{address}\""),
            at,
        ));
    }
    Ok(server)
}

/// Builds one `upstream NAME { ... }` of the http block.
pub(crate) fn build_upstream(
    d: &Directive,
    matches: &std::collections::HashMap<String, std::sync::Arc<super::model::HealthMatch>>,
    http_resolver: Option<&ResolverSettings>,
) -> Result<UpstreamConfig, ConfigError> {
    build_upstream_in(d, Ctx::UPSTREAM, matches, http_resolver)
}

/// Builds one `upstream NAME { ... }` of the stream block: the same
/// balancers and `server` parameters; the directives the stream upstream
/// module lacks (`keepalive`, `ip_hash`, ...) are "not allowed here".
pub(crate) fn build_stream_upstream(
    d: &Directive,
    stream_resolver: Option<&ResolverSettings>,
) -> Result<UpstreamConfig, ConfigError> {
    build_upstream_in(
        d,
        Ctx::STREAM_UPSTREAM,
        &std::collections::HashMap::new(),
        stream_resolver,
    )
}

fn build_upstream_in(
    d: &Directive,
    ctx: Ctx,
    matches: &std::collections::HashMap<String, std::sync::Arc<super::model::HealthMatch>>,
    http_resolver: Option<&ResolverSettings>,
) -> Result<UpstreamConfig, ConfigError> {
    let mut health_check = None;
    let mut resolver = http_resolver.cloned();
    let mut resolver_timeout = None;
    let mut keepalive: Option<super::model::KeepalivePool> = None;
    let mut keepalive_requests = None;
    let mut keepalive_time = None;
    let mut keepalive_timeout = None;
    let mut method = balance::Method::RoundRobin;
    let mut hash_key = None;
    let mut servers = Vec::new();
    let mut seen = Seen::default();
    for inner in d.block.as_deref().unwrap_or_default() {
        let spec = check(inner, ctx)?;
        if spec.support == super::directives::Support::NotYet {
            continue;
        }
        match spec.name {
            "server" => {
                servers.push(parse_server(inner, &method, ctx)?);
                continue;
            }
            "include" => continue,
            "health_check" => {
                seen.once(inner)?;
                health_check = Some(super::health::parse_health_check(inner, matches)?);
                continue;
            }
            "keepalive" => {
                seen.once(inner)?;
                let n = values::parse_number(&inner.args[0].value)
                    .filter(|n| *n > 0 && *n < 1 << 20)
                    .ok_or_else(|| {
                        ConfigError::at(
                            format!(
                                "invalid value \"{}\" in \"keepalive\" directive",
                                inner.args[0].value
                            ),
                            &inner.position,
                        )
                    })?;
                keepalive = Some(super::model::KeepalivePool {
                    idle: n as usize,
                    requests: 1000,
                    time: Duration::from_secs(3600),
                    timeout: Duration::from_secs(60),
                });
                continue;
            }
            "keepalive_requests" => {
                seen.once(inner)?;
                keepalive_requests = Some(super::number_arg(inner)?);
                continue;
            }
            "keepalive_time" => {
                seen.once(inner)?;
                keepalive_time = Some(super::time_arg(inner)?);
                continue;
            }
            "keepalive_timeout" => {
                seen.once(inner)?;
                if inner.args.len() != 1 {
                    return Err(ConfigError::at(
                        "invalid number of arguments in \"keepalive_timeout\" directive",
                        &inner.position,
                    ));
                }
                keepalive_timeout = Some(super::time_arg(inner)?);
                continue;
            }
            "resolver" => {
                seen.once(inner)?;
                resolver = Some(parse_resolver(inner)?);
                continue;
            }
            "resolver_timeout" => {
                seen.once(inner)?;
                resolver_timeout = Some(super::time_arg(inner)?);
                continue;
            }
            _ => seen.once(inner)?,
        }
        let new_method = match spec.name {
            "least_conn" => Some(balance::Method::LeastConn),
            "ip_hash" => Some(balance::Method::IpHash),
            "hash" => {
                let consistent = match inner.args.get(1).map(|a| a.value.as_str()) {
                    None => false,
                    Some("consistent") => true,
                    Some(other) => {
                        return Err(ConfigError::at(
                            format!("invalid parameter \"{other}\""),
                            &inner.position,
                        ))
                    }
                };
                hash_key = Some(
                    Template::compile(&inner.args[0].value)
                        .map_err(|e| ConfigError::at(e.to_string(), &inner.position))?,
                );
                Some(balance::Method::Hash { consistent })
            }
            "random" => {
                let two = match inner.args.first().map(|a| a.value.as_str()) {
                    None => false,
                    Some("two") => {
                        match inner.args.get(1).map(|a| a.value.as_str()) {
                            None | Some("least_conn") => {}
                            Some(other) => {
                                return Err(ConfigError::at(
                                    format!("invalid parameter \"{other}\""),
                                    &inner.position,
                                ))
                            }
                        }
                        true
                    }
                    Some(other) => {
                        return Err(ConfigError::at(
                            format!("invalid parameter \"{other}\""),
                            &inner.position,
                        ))
                    }
                };
                Some(balance::Method::Random { two })
            }
            _ => None,
        };
        if let Some(m) = new_method {
            if servers.iter().any(|s: &UpstreamServer| s.backup)
                && !matches!(m, balance::Method::LeastConn)
            {
                return Err(ConfigError::at(
                    "balancing method does not support parameter \"backup\"",
                    &inner.position,
                ));
            }
            method = m;
        }
    }
    if servers.is_empty() {
        return Err(ConfigError::at(
            "no servers are inside upstream",
            &d.position,
        ));
    }
    if let (Some(r), Some(t)) = (resolver.as_mut(), resolver_timeout) {
        r.timeout = t;
    }
    if let Some(pool) = keepalive.as_mut() {
        pool.requests = keepalive_requests.unwrap_or(pool.requests);
        pool.time = keepalive_time.unwrap_or(pool.time);
        pool.timeout = keepalive_timeout.unwrap_or(pool.timeout);
    }
    Ok(UpstreamConfig {
        name: d.args[0].value.clone(),
        method,
        hash_key,
        servers,
        health_check,
        resolver,
        keepalive,
        position: d.position.clone(),
    })
}

/// The implicit one-server upstream nginx makes for `proxy_pass http://host:port`.
pub(crate) fn implicit_upstream(host: String, port: u16, position: &Position) -> UpstreamConfig {
    let name = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    UpstreamConfig {
        name: name.clone(),
        method: balance::Method::RoundRobin,
        hash_key: None,
        servers: vec![UpstreamServer::new(name, host, port, position.clone())],
        health_check: None,
        resolver: None,
        keepalive: None,
        position: position.clone(),
    }
}

/// The group of `proxy_pass http://unix:PATH`: one socket, named
/// `unix:PATH` as nginx names it.
pub(crate) fn implicit_unix_upstream(path: &str, position: &Position) -> UpstreamConfig {
    let server = UpstreamServer::unix(path, position.clone());
    UpstreamConfig {
        name: server.name.clone(),
        method: balance::Method::RoundRobin,
        hash_key: None,
        servers: vec![server],
        health_check: None,
        resolver: None,
        keepalive: None,
        position: position.clone(),
    }
}

/// Parses `resolver ADDRESS ... [valid=TIME] [ipv4=on|off] [ipv6=on|off]`.
/// The `resolver` and `resolver_timeout` of an http or stream block, which
/// serve every upstream of it wherever they are written (an upstream's own
/// resolver overrides them); each at most once, as nginx says.
pub(crate) fn block_resolver(
    block: &[Directive],
    ctx: Ctx,
) -> Result<Option<ResolverSettings>, ConfigError> {
    let mut resolver = None;
    let mut timeout = None;
    for inner in block
        .iter()
        .filter(|d| d.name == "resolver" || d.name == "resolver_timeout")
    {
        check(inner, ctx)?;
        let duplicate = if inner.name == "resolver" {
            resolver.replace(parse_resolver(inner)?).is_some()
        } else {
            timeout.replace(super::time_arg(inner)?).is_some()
        };
        if duplicate {
            return Err(ConfigError::at(
                format!("\"{}\" directive is duplicate", inner.name),
                &inner.position,
            ));
        }
    }
    if let (Some(r), Some(t)) = (resolver.as_mut(), timeout) {
        r.timeout = t;
    }
    Ok(resolver)
}

pub(crate) fn parse_resolver(d: &Directive) -> Result<ResolverSettings, ConfigError> {
    let at = &d.position;
    let mut settings = ResolverSettings {
        servers: Vec::new(),
        valid: None,
        ipv4: true,
        ipv6: true,
        timeout: Duration::from_secs(30),
    };
    for arg in &d.args {
        let p = arg.value.as_str();
        let invalid = || ConfigError::at(format!("invalid parameter \"{p}\""), at);
        if let Some(v) = p.strip_prefix("valid=") {
            settings.valid = Some(values::parse_time(v).ok_or_else(invalid)?);
        } else if let Some(v) = p.strip_prefix("ipv4=") {
            settings.ipv4 = values::parse_flag(v).ok_or_else(invalid)?;
        } else if let Some(v) = p.strip_prefix("ipv6=") {
            settings.ipv6 = values::parse_flag(v).ok_or_else(invalid)?;
        } else if p.starts_with("status_zone=") {
            // Accepted: resolver statistics are in our metrics anyway.
        } else {
            let addr = super::listen::parse_address(p, 53)
                .map_err(|e| ConfigError::at(format!("{e} of the \"resolver\" directive"), at))?;
            settings.servers.push(addr);
        }
    }
    if !settings.ipv4 && !settings.ipv6 {
        return Err(ConfigError::at(
            "\"ipv4\" and \"ipv6\" cannot both be \"off\"",
            at,
        ));
    }
    if settings.servers.is_empty() {
        return Err(ConfigError::at(
            "invalid number of arguments in \"resolver\" directive",
            at,
        ));
    }
    Ok(settings)
}
