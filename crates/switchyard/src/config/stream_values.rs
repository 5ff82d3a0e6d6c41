//! The values of the stream block's directives, one parser each with
//! nginx's messages: `listen`, `proxy_bind`, `allow`/`deny`, `limit_conn`,
//! `split_clients`, `access_log`.

use std::path::Path;
use std::sync::Arc;

use nginx_conf::Directive;

use super::listen::parse_address;
use super::model::{
    AccessLogTarget, AccessRule, LimitConn, LimitConnZone, Listen, ProxyBind, SplitClients,
    StreamServer,
};
use super::{arg0, values, ConfigError};
use crate::observe::log_format::LogFormat;
use crate::upstream::addr::PeerAddr;

/// `proxy_bind ADDRESS[:PORT] | off`; `transparent` is not supported yet.
pub(super) fn parse_proxy_bind(d: &Directive) -> Result<Option<ProxyBind>, ConfigError> {
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

/// `allow ADDRESS|CIDR|all` / `deny ...` (ngx_stream_access_module).
pub(super) fn parse_access_rule(d: &Directive) -> Result<AccessRule, ConfigError> {
    super::access::parse_rule(d)
}

/// `limit_conn_zone KEY zone=NAME:SIZE` (the size is checked as nginx
/// checks it; the counts live in memory shared by the workers).
pub(crate) fn parse_limit_conn_zone(d: &Directive) -> Result<LimitConnZone, ConfigError> {
    let at = &d.position;
    let key_text = arg0(d).to_string();
    let key = crate::vars::Template::compile(&key_text)
        .map_err(|e| ConfigError::at(e.to_string(), at))?;
    let mut name = None;
    let mut zone_size = 0;
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
        zone_size = size;
    }
    let name = name
        .ok_or_else(|| ConfigError::at("\"limit_conn_zone\" must have \"zone\" parameter", at))?;
    Ok(LimitConnZone {
        name,
        key,
        key_text,
        size: zone_size,
    })
}

/// `limit_conn ZONE N`.
pub(crate) fn parse_limit_conn(
    d: &Directive,
    zones: &[Arc<LimitConnZone>],
) -> Result<LimitConn, ConfigError> {
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
pub(crate) fn parse_split_clients(d: &Directive) -> Result<(String, SplitClients), ConfigError> {
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
pub(super) fn parse_hundredths(text: &str) -> Option<u32> {
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
pub(super) fn parse_access_log(
    d: &Directive,
    prefix: &Path,
    formats: &[(String, Arc<LogFormat>)],
) -> Result<Option<AccessLogTarget>, ConfigError> {
    if arg0(d) != "off" && d.args.len() < 2 {
        return Err(ConfigError::at("log format is not specified", &d.position));
    }
    super::settings::parse_access_log(d, prefix, formats, false)
}

/// `listen ADDRESS:PORT|unix:PATH [backlog=N] [reuseport] [bind]
/// [so_keepalive=...] [ipv6only=on|off] [udp] [ssl] [proxy_protocol]`;
/// a datagram Unix socket (`unix:... udp`) is not supported yet.
pub(super) fn parse_stream_listen(d: &Directive) -> Result<Vec<Listen>, ConfigError> {
    let at = &d.position;
    let range = super::listen::port_range(arg0(d))
        .map_err(|e| ConfigError::at(format!("{e} of the \"listen\" directive"), at))?;
    let (first, last) = match &range {
        Some((first, last)) => (first.as_str(), Some(*last)),
        None => (arg0(d), None),
    };
    let addr = match super::listen::parse_unix(first) {
        Some(unix) => unix,
        None => {
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
            parse_address(first, 0).map(PeerAddr::Inet)
        }
    }
    .map_err(|e| ConfigError::at(format!("{e} of the \"listen\" directive"), at))?;
    let mut listen = Listen::new(addr, Some(at.clone()));
    for param in d.args.iter().skip(1) {
        let p = param.value.as_str();
        match p {
            "reuseport" | "bind" => {}
            "udp" => listen.udp = true,
            "proxy_protocol" => listen.proxy_protocol = true,
            "ssl" => listen.ssl = true,
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
    if listen.udp && listen.ssl {
        return Err(ConfigError::at(
            "\"ssl\" parameter is incompatible with \"udp\"",
            at,
        ));
    }
    if listen.udp && matches!(listen.addr, PeerAddr::Unix(_)) {
        return Err(ConfigError::at(
            "\"listen unix:... udp\" is not supported yet",
            at,
        ));
    }
    if listen.udp && listen.proxy_protocol {
        return Err(ConfigError::at(
            "\"listen ... udp proxy_protocol\" is not supported yet",
            at,
        ));
    }
    Ok(super::listen::each_port(listen, last))
}

/// nginx refuses the same address in two stream `listen`s.
pub(super) fn check_listens(servers: &[Arc<StreamServer>]) -> Result<(), ConfigError> {
    let mut seen: Vec<(&PeerAddr, bool)> = Vec::new();
    for listen in servers.iter().flat_map(|s| s.listens.iter()) {
        if seen.contains(&(&listen.addr, listen.udp)) {
            let message = format!("duplicate \"{}\" address and port pair", listen.addr);
            return Err(match &listen.position {
                Some(p) => ConfigError::at(message, p),
                None => ConfigError::bare(message),
            });
        }
        seen.push((&listen.addr, listen.udp));
    }
    Ok(())
}
