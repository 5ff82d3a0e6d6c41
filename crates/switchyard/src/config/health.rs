//! `health_check` and `match` (nginx Plus's syntax, in the open build).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use nginx_conf::Directive;

use super::model::{HeaderCondition, HeaderMatch, HealthCheck, HealthMatch, HealthTls, Probe};
use super::{values, ConfigError};

/// Parses `match NAME { status ...; header ...; body ...; }`.
pub(crate) fn parse_match(d: &Directive) -> Result<HealthMatch, ConfigError> {
    let mut m = HealthMatch {
        name: d.args[0].value.clone(),
        status: Vec::new(),
        status_negated: false,
        headers: Vec::new(),
        body: None,
    };
    for inner in d.block.as_deref().unwrap_or_default() {
        let at = &inner.position;
        let args: Vec<&str> = inner.args.iter().map(|a| a.value.as_str()).collect();
        let regex = |text: &str| {
            regex::Regex::new(text)
                .map_err(|e| ConfigError::at(format!("invalid regex \"{text}\": {e}"), at))
        };
        match inner.name.as_str() {
            "status" => {
                let mut codes = &args[..];
                if codes.first() == Some(&"!") {
                    m.status_negated = true;
                    codes = &codes[1..];
                }
                if codes.is_empty() {
                    return Err(ConfigError::at(
                        "invalid number of arguments in \"status\" directive",
                        at,
                    ));
                }
                for code in codes {
                    let (lo, hi) = code.split_once('-').unwrap_or((code, code));
                    match (values::parse_number(lo), values::parse_number(hi)) {
                        (Some(lo), Some(hi))
                            if (100..=999).contains(&lo) && lo <= hi && hi <= 999 =>
                        {
                            m.status.push((lo as u16, hi as u16))
                        }
                        _ => return Err(ConfigError::at(format!("invalid status \"{code}\""), at)),
                    }
                }
            }
            "header" => {
                let condition = match args.as_slice() {
                    [name] => (name.to_string(), HeaderCondition::Present),
                    ["!", name] => (name.to_string(), HeaderCondition::Absent),
                    [name, "=", v] => (name.to_string(), HeaderCondition::Equals(v.to_string())),
                    [name, "!=", v] => {
                        (name.to_string(), HeaderCondition::NotEquals(v.to_string()))
                    }
                    [name, "~", v] => (name.to_string(), HeaderCondition::Matches(regex(v)?)),
                    [name, "!~", v] => (name.to_string(), HeaderCondition::NotMatches(regex(v)?)),
                    _ => {
                        return Err(ConfigError::at(
                            "invalid \"header\" condition in \"match\"",
                            at,
                        ))
                    }
                };
                m.headers.push(HeaderMatch {
                    name: condition.0.to_ascii_lowercase(),
                    condition: condition.1,
                });
            }
            "body" => {
                m.body = Some(match args.as_slice() {
                    ["~", v] => (regex(v)?, false),
                    ["!~", v] => (regex(v)?, true),
                    _ => {
                        return Err(ConfigError::at(
                            "invalid \"body\" condition in \"match\"",
                            at,
                        ))
                    }
                });
            }
            other => {
                return Err(ConfigError::at(
                    format!("unknown directive \"{other}\""),
                    at,
                ))
            }
        }
    }
    Ok(m)
}

/// Parses `health_check [interval=T] [fails=N] [passes=N] [uri=U] [port=N]
/// [match=NAME] [timeout=T] [ssl] [ssl_trusted_certificate=FILE] [ssl_name=NAME]`
/// (the `ssl` family is ours: HTTPS probes).
pub(crate) fn parse_health_check(
    d: &Directive,
    matches: &HashMap<String, Arc<HealthMatch>>,
) -> Result<HealthCheck, ConfigError> {
    let at = &d.position;
    let mut check = HealthCheck {
        interval: Duration::from_secs(5),
        fails: 1,
        passes: 1,
        uri: "/".to_string(),
        port: None,
        timeout: crate::upstream::health::DEFAULT_TIMEOUT,
        matcher: None,
        tls: None,
        probe: Probe::Http,
    };
    let mut ssl = false;
    let mut trusted = None;
    let mut name = None;
    for arg in &d.args {
        let p = arg.value.as_str();
        let invalid = || ConfigError::at(format!("invalid parameter \"{p}\""), at);
        if p == "ssl" {
            ssl = true;
            continue;
        }
        let (key, value) = p.split_once('=').ok_or_else(invalid)?;
        match key {
            "ssl_trusted_certificate" if !value.is_empty() => {
                trusted = Some(std::path::PathBuf::from(value))
            }
            "ssl_name" if !value.is_empty() => name = Some(value.to_string()),
            "interval" => {
                check.interval = values::parse_time(value)
                    .filter(|t| !t.is_zero())
                    .ok_or_else(invalid)?
            }
            "timeout" => {
                check.timeout = values::parse_time(value)
                    .filter(|t| !t.is_zero())
                    .ok_or_else(invalid)?
            }
            "fails" => {
                check.fails = values::parse_number(value)
                    .filter(|n| *n > 0 && *n < 1 << 20)
                    .ok_or_else(invalid)? as u32
            }
            "passes" => {
                check.passes = values::parse_number(value)
                    .filter(|n| *n > 0 && *n < 1 << 20)
                    .ok_or_else(invalid)? as u32
            }
            "uri" if value.starts_with('/') => check.uri = value.to_string(),
            "port" => {
                check.port = Some(
                    values::parse_number(value)
                        .filter(|n| (1..=65535).contains(n))
                        .ok_or_else(invalid)? as u16,
                )
            }
            "match" => {
                check.matcher =
                    Some(matches.get(value).cloned().ok_or_else(|| {
                        ConfigError::at(format!("match \"{value}\" not found"), at)
                    })?)
            }
            "jitter" | "mandatory" | "persistent" | "type" | "keepalive_time" => {
                return Err(ConfigError::at(
                    format!("health_check parameter \"{key}\" is not supported yet"),
                    at,
                ))
            }
            _ => return Err(invalid()),
        }
    }
    if !ssl && (trusted.is_some() || name.is_some()) {
        return Err(ConfigError::at(
            "health_check parameters \"ssl_trusted_certificate\" and \"ssl_name\" need \"ssl\"",
            at,
        ));
    }
    if ssl {
        let config = crate::transport::tls::client_config(trusted.as_deref())
            .map_err(|e| ConfigError::at(e.to_string(), at))?;
        if let Some(n) = &name {
            if crate::transport::tls::server_name(n).is_none() {
                return Err(ConfigError::at(format!("invalid ssl_name \"{n}\""), at));
            }
        }
        check.tls = Some(HealthTls {
            trusted,
            name,
            connector: tokio_rustls::TlsConnector::from(config),
        });
    }
    Ok(check)
}
