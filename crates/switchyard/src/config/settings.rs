//! Settings that nginx merges from http into server into location: each
//! level holds only what it set, and a level that sets nothing inherits.

use super::set;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nginx_conf::Directive;

use super::model::{
    AccessLogPath, AccessLogTarget, AddHeader, Cidr, ErrorLogTarget, ErrorPage, LogBuffering,
    LogFileCache, LogPath, NextUpstream, ProxyRedirect, RealIp, RewriteFrom, Settings,
    ValueRewrite,
};
use super::{arg0, error_log_target, full_path, invalid_value, values, ConfigError};
use crate::observe::log_format::LogFormat;
use crate::vars::Template;

/// One level's explicitly set values.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layer {
    proxy_http_version_11: Option<bool>,
    proxy_set_headers: Option<Vec<(String, Template)>>,
    proxy_connect_timeout: Option<Duration>,
    resolver: Option<Arc<super::model::ResolverSettings>>,
    resolver_timeout: Option<Duration>,
    proxy_read_timeout: Option<Duration>,
    proxy_send_timeout: Option<Duration>,
    access_log: Option<Vec<AccessLogTarget>>,
    open_log_file_cache: Option<Option<LogFileCache>>,
    error_log: Option<Vec<ErrorLogTarget>>,
    client_max_body_size: Option<u64>,
    client_body_timeout: Option<Duration>,
    client_header_timeout: Option<Duration>,
    client_header_buffer_size: Option<u64>,
    large_client_header_buffers: Option<(u64, u64)>,
    keepalive_timeout: Option<Duration>,
    keepalive_header: Option<u64>,
    keepalive_requests: Option<u64>,
    keepalive_time: Option<Duration>,
    keepalive_disable: Option<super::model::KeepaliveDisable>,
    send_timeout: Option<Duration>,
    lingering_close: Option<super::model::LingeringClose>,
    lingering_time: Option<Duration>,
    lingering_timeout: Option<Duration>,
    server_tokens: Option<bool>,
    ignore_invalid_headers: Option<bool>,
    underscores_in_headers: Option<bool>,
    tcp_nodelay: Option<bool>,
    http2: Option<bool>,
    http2_max_concurrent_streams: Option<u64>,
    http2_body_preread_size: Option<u64>,
    http2_chunk_size: Option<u64>,
    proxy_next_upstream: Option<NextUpstream>,
    proxy_next_upstream_tries: Option<u32>,
    proxy_next_upstream_timeout: Option<Duration>,
    proxy_hide_headers: Option<Vec<String>>,
    proxy_pass_headers: Option<Vec<String>>,
    proxy_ignore_headers: Option<Vec<String>>,
    proxy_method: Option<Template>,
    /// `proxy_bind`: `Some(None)` for `off`.
    proxy_bind: Option<Option<super::model::ProxyBind>>,
    proxy_pass_request_headers: Option<bool>,
    proxy_pass_request_body: Option<bool>,
    proxy_set_body: Option<Template>,
    proxy_redirect: Option<ProxyRedirect>,
    add_headers: Option<Vec<AddHeader>>,
    add_trailers: Option<Vec<AddHeader>>,
    proxy_buffering: Option<bool>,
    proxy_limit_rate: Option<u64>,
    chunked_transfer_encoding: Option<bool>,
    error_pages: Option<Vec<ErrorPage>>,
    proxy_intercept_errors: Option<bool>,
    root: Option<PathBuf>,
    index: Option<Vec<Template>>,
    log_not_found: Option<bool>,
    merge_slashes: Option<bool>,
    expires: Option<super::model::Expires>,
    if_modified_since: Option<super::model::IfModifiedSince>,
    etag: Option<bool>,
    default_type: Option<String>,
    types: Option<Arc<HashMap<String, String>>>,
    absolute_redirect: Option<bool>,
    port_in_redirect: Option<bool>,
    server_name_in_redirect: Option<bool>,
    /// The addresses, and whether `unix:` was one (a level's lines
    /// replace its parent's as one list, as nginx's `from` array).
    real_ip_from: Option<(Vec<Cidr>, bool)>,
    real_ip_header: Option<String>,
    real_ip_recursive: Option<bool>,
    rewrite_log: Option<bool>,
    access: Option<Vec<super::model::AccessRule>>,
    gzip: super::gzip::GzipLayer,
    /// `proxy_ssl_*`, built into the location's TLS when it proxies to
    /// `https://`.
    pub(crate) proxy_ssl: super::proxy_ssl::ProxySslLayer,
    limits: super::limits::LimitsLayer,
    auth: super::auth::AuthLayer,
    body: super::request_body::BodyLayer,
    cookie: super::proxy_cookie::CookieLayer,
}

/// An `add_header` or `add_trailer` line: `NAME VALUE [always]`.
fn add_header_line(d: &Directive) -> Result<AddHeader, ConfigError> {
    let value = Template::compile(&d.args[1].value)
        .map_err(|e| ConfigError::at(e.to_string(), &d.position))?;
    let always = match d.args.get(2).map(|a| a.value.as_str()) {
        None => false,
        Some("always") => true,
        Some(other) => {
            return Err(ConfigError::at(
                format!("invalid parameter \"{other}\""),
                &d.position,
            ))
        }
    };
    Ok(AddHeader {
        name: d.args[0].value.clone(),
        value,
        always,
    })
}

fn flag(d: &Directive) -> bool {
    values::parse_flag(arg0(d)).unwrap_or(false)
}

/// nginx's `types` when none is configured.
fn default_types() -> HashMap<String, String> {
    [
        ("html", "text/html"),
        ("gif", "image/gif"),
        ("jpg", "image/jpeg"),
    ]
    .into_iter()
    .map(|(e, t)| (e.to_string(), t.to_string()))
    .collect()
}

/// Parses `ADDR[/BITS]` as `set_real_ip_from` takes it.
pub(crate) fn parse_cidr(text: &str) -> Option<Cidr> {
    let (addr, bits) = match text.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
        None => (text, None),
    };
    let addr: std::net::IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some(Cidr { addr, bits })
}

/// The addresses of a host name as nginx's ngx_inet_resolve_host finds
/// them, each as a whole-address `Cidr`; `None` when it has none.
fn resolve_host(name: &str) -> Option<Vec<Cidr>> {
    use std::net::ToSocketAddrs;
    let mut out: Vec<Cidr> = Vec::new();
    for addr in (name, 0).to_socket_addrs().ok()? {
        let ip = addr.ip();
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        let cidr = Cidr { addr: ip, bits };
        if !out.contains(&cidr) {
            out.push(cidr);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Parses one `access_log PATH [FORMAT]` / `access_log off` (`None`), as
/// http and stream write it.
pub(crate) fn parse_access_log(
    d: &Directive,
    prefix: &Path,
    formats: &Formats,
    http: bool,
) -> Result<Option<AccessLogTarget>, ConfigError> {
    if arg0(d) == "off" {
        if d.args.len() > 1 {
            return Err(ConfigError::at(
                "invalid number of arguments in \"access_log\" directive",
                &d.position,
            ));
        }
        return Ok(None);
    }
    let format = match d.args.get(1) {
        None => Arc::new(LogFormat::combined()),
        Some(name) => formats
            .iter()
            .find(|(n, _)| *n == name.value)
            .map(|(_, f)| f.clone())
            .ok_or_else(|| {
                ConfigError::at(
                    format!("unknown log format \"{}\"", name.value),
                    &d.position,
                )
            })?,
    };
    let mut condition = None;
    let (mut size, mut flush, mut gzip) = (0usize, None, None);
    for extra in d.args.iter().skip(2) {
        let value = extra.value.as_str();
        if let Some(text) = value.strip_prefix("if=") {
            let template = crate::vars::Template::compile(text)
                .map_err(|e| ConfigError::at(e.to_string(), &d.position))?;
            condition = Some(template);
        } else if let Some(text) = value.strip_prefix("buffer=") {
            size = values::parse_size(text)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    ConfigError::at(format!("invalid buffer size \"{text}\""), &d.position)
                })?;
        } else if let Some(text) = value.strip_prefix("flush=") {
            flush = Some(
                values::parse_time(text)
                    .filter(|t| !t.is_zero())
                    .ok_or_else(|| {
                        ConfigError::at(format!("invalid flush time \"{text}\""), &d.position)
                    })?,
            );
        } else if value == "gzip" || value.starts_with("gzip=") {
            if size == 0 {
                size = 64 * 1024;
            }
            gzip = Some(match value.strip_prefix("gzip=") {
                None => 1,
                Some(text) => text
                    .parse::<u32>()
                    .ok()
                    .filter(|level| (1..=9).contains(level))
                    .ok_or_else(|| {
                        ConfigError::at(
                            format!("invalid compression level \"{text}\""),
                            &d.position,
                        )
                    })?,
            });
        } else {
            return Err(ConfigError::at(
                format!("invalid parameter \"{value}\""),
                &d.position,
            ));
        }
    }
    if flush.is_some() && size == 0 {
        return Err(ConfigError::at(
            format!("no buffer is defined for access_log \"{}\"", arg0(d)),
            &d.position,
        ));
    }
    let buffer = (size > 0).then_some(LogBuffering { size, flush, gzip });
    let path = arg0(d);
    let path = if path == "/dev/stderr" || path == "stderr" {
        if buffer.is_some() {
            return Err(ConfigError::at(
                "a buffered \"access_log\" to stderr is not supported yet",
                &d.position,
            ));
        }
        AccessLogPath::Fixed(LogPath::Stderr)
    } else if path.starts_with("syslog:") {
        return Err(ConfigError::at(
            "\"access_log\" to syslog is not supported yet",
            &d.position,
        ));
    } else if path.contains('$') {
        if buffer.is_some() {
            return Err(ConfigError::at(
                "buffered logs cannot have variables in name",
                &d.position,
            ));
        }
        let full = full_path(prefix, path);
        let template = crate::vars::Template::compile(&full.to_string_lossy())
            .map_err(|e| ConfigError::at(e.to_string(), &d.position))?;
        AccessLogPath::Evaluated {
            path: template,
            test_root: http,
            cache: None,
        }
    } else {
        let file = full_path(prefix, path);
        if !super::claim_log_file(&file, buffer) {
            return Err(ConfigError::at(
                format!(
                    "access_log \"{}\" already defined with conflicting parameters",
                    arg0(d)
                ),
                &d.position,
            ));
        }
        AccessLogPath::Fixed(LogPath::File(file))
    };
    Ok(Some(AccessLogTarget {
        path,
        format,
        condition,
        buffer,
    }))
}

/// Parses `open_log_file_cache max=N [inactive=T] [min_uses=N] [valid=T] |
/// off` (`None`) with nginx's messages and defaults.
pub(crate) fn parse_open_log_file_cache(
    d: &Directive,
) -> Result<Option<LogFileCache>, ConfigError> {
    let mut cache = LogFileCache {
        max: 0,
        inactive: Duration::from_secs(10),
        min_uses: 1,
        valid: Duration::from_secs(60),
    };
    let mut off = false;
    for arg in &d.args {
        let value = arg.value.as_str();
        let ok = if let Some(n) = value.strip_prefix("max=") {
            n.parse::<usize>().map(|n| cache.max = n).is_ok()
        } else if let Some(n) = value.strip_prefix("min_uses=") {
            n.parse::<u64>().map(|n| cache.min_uses = n).is_ok()
        } else if let Some(t) = value.strip_prefix("inactive=") {
            values::parse_time(t).map(|t| cache.inactive = t).is_some()
        } else if let Some(t) = value.strip_prefix("valid=") {
            values::parse_time(t).map(|t| cache.valid = t).is_some()
        } else if value == "off" {
            off = true;
            true
        } else {
            false
        };
        if !ok {
            return Err(ConfigError::at(
                format!("invalid \"open_log_file_cache\" parameter \"{value}\""),
                &d.position,
            ));
        }
    }
    if off {
        return Ok(None);
    }
    if cache.max == 0 {
        return Err(ConfigError::at(
            "\"open_log_file_cache\" must have \"max\" parameter",
            &d.position,
        ));
    }
    Ok(Some(cache))
}

/// Gives the log paths with variables of `targets` the cache of the level
/// they are used at.
pub(crate) fn with_file_cache(
    mut targets: Vec<AccessLogTarget>,
    file_cache: Option<LogFileCache>,
) -> Vec<AccessLogTarget> {
    for target in &mut targets {
        if let AccessLogPath::Evaluated { cache, .. } = &mut target.path {
            *cache = file_cache;
        }
    }
    targets
}

/// Named log formats visible while parsing (for `access_log PATH NAME`).
pub(crate) type Formats = [(String, Arc<LogFormat>)];

fn time(d: &Directive) -> Result<Duration, ConfigError> {
    super::time_arg(d)
}

fn size(d: &Directive) -> Result<u64, ConfigError> {
    values::parse_size(arg0(d)).ok_or_else(|| invalid_value(d))
}

/// The upstream headers `proxy_ignore_headers` may name (nginx's
/// `ngx_http_upstream_ignore_headers_masks`).
const IGNORABLE: [&str; 9] = [
    "X-Accel-Redirect",
    "X-Accel-Expires",
    "X-Accel-Limit-Rate",
    "X-Accel-Buffering",
    "X-Accel-Charset",
    "Expires",
    "Cache-Control",
    "Set-Cookie",
    "Vary",
];

impl Layer {
    /// Applies `d` if it is a merged setting; returns whether it was one.
    pub(crate) fn apply(
        &mut self,
        d: &Directive,
        prefix: &Path,
        formats: &Formats,
    ) -> Result<bool, ConfigError> {
        match d.name.as_str() {
            "proxy_http_version" => {
                let v = match arg0(d) {
                    "1.0" => false,
                    "1.1" => true,
                    other => {
                        return Err(ConfigError::at(
                            format!("invalid value \"{other}\" in \"proxy_http_version\" directive, it must be \"1.0\" or \"1.1\""),
                            &d.position,
                        ))
                    }
                };
                set(&mut self.proxy_http_version_11, d, v)?;
            }
            "proxy_set_header" => {
                let value = Template::compile(&d.args[1].value)
                    .map_err(|e| ConfigError::at(e.to_string(), &d.position))?;
                self.proxy_set_headers
                    .get_or_insert_with(Vec::new)
                    .push((d.args[0].value.clone(), value));
            }
            "proxy_connect_timeout" => set(&mut self.proxy_connect_timeout, d, time(d)?)?,
            "resolver" => {
                let resolver = super::upstream::parse_resolver(d)?;
                set(&mut self.resolver, d, Arc::new(resolver))?;
            }
            "resolver_timeout" => set(&mut self.resolver_timeout, d, time(d)?)?,
            "proxy_read_timeout" => set(&mut self.proxy_read_timeout, d, time(d)?)?,
            "proxy_send_timeout" => set(&mut self.proxy_send_timeout, d, time(d)?)?,
            "client_max_body_size" => set(&mut self.client_max_body_size, d, size(d)?)?,
            "client_body_timeout" => set(&mut self.client_body_timeout, d, time(d)?)?,
            "client_header_timeout" => set(&mut self.client_header_timeout, d, time(d)?)?,
            "client_header_buffer_size" => set(&mut self.client_header_buffer_size, d, size(d)?)?,
            "ignore_invalid_headers" => set(&mut self.ignore_invalid_headers, d, flag(d))?,
            "underscores_in_headers" => set(&mut self.underscores_in_headers, d, flag(d))?,
            "large_client_header_buffers" => {
                let number = values::parse_number(&d.args[0].value).filter(|n| *n > 0);
                let bytes = values::parse_size(&d.args[1].value).filter(|n| *n > 0);
                match (number, bytes) {
                    (Some(n), Some(b)) => set(&mut self.large_client_header_buffers, d, (n, b))?,
                    _ => return Err(invalid_value(d)),
                }
            }
            "keepalive_timeout" => {
                set(&mut self.keepalive_timeout, d, time(d)?)?;
                // The header's seconds merge on their own, as nginx's
                // keepalive_header: a level that names none inherits one.
                if let Some(header) = d.args.get(1) {
                    let seconds = values::parse_time(&header.value).ok_or_else(|| {
                        ConfigError::at(
                            "\"keepalive_timeout\" directive invalid value",
                            &d.position,
                        )
                    })?;
                    self.keepalive_header = Some(seconds.as_secs());
                }
            }
            "keepalive_requests" => set(&mut self.keepalive_requests, d, super::number_arg(d)?)?,
            "keepalive_time" => set(&mut self.keepalive_time, d, time(d)?)?,
            // A bitmask, as in nginx: a second line adds to the first.
            "keepalive_disable" => {
                self.keepalive_disable = Some(keepalive_disable(d, self.keepalive_disable)?)
            }
            "send_timeout" => set(&mut self.send_timeout, d, time(d)?)?,
            "lingering_close" => set(&mut self.lingering_close, d, lingering_close(d)?)?,
            "lingering_time" => set(&mut self.lingering_time, d, time(d)?)?,
            "open_log_file_cache" => set(
                &mut self.open_log_file_cache,
                d,
                parse_open_log_file_cache(d)?,
            )?,
            "lingering_timeout" => set(&mut self.lingering_timeout, d, time(d)?)?,
            "server_tokens" => {
                let v = match arg0(d) {
                    // Without a --build name nginx's `build` is `on`.
                    "on" | "build" => true,
                    "off" => false,
                    other => {
                        return Err(ConfigError::at(
                            format!("\"server_tokens\" value \"{other}\" is not supported yet"),
                            &d.position,
                        ))
                    }
                };
                set(&mut self.server_tokens, d, v)?;
            }
            "tcp_nodelay" => set(
                &mut self.tcp_nodelay,
                d,
                values::parse_flag(arg0(d)).unwrap_or(true),
            )?,
            "http2" => set(&mut self.http2, d, flag(d))?,
            "http2_max_concurrent_streams" => set(
                &mut self.http2_max_concurrent_streams,
                d,
                super::number_arg(d)?,
            )?,
            "http2_body_preread_size" => {
                let n = size(d)?;
                // nginx's window can be no larger than HTTP/2 allows.
                if n > super::http2::MAX_WINDOW {
                    return Err(ConfigError::at(
                        format!(
                            "the maximum body preread buffer size is {}",
                            super::http2::MAX_WINDOW
                        ),
                        &d.position,
                    ));
                }
                set(&mut self.http2_body_preread_size, d, n)?
            }
            "http2_chunk_size" => {
                let n = size(d)?;
                if n == 0 {
                    return Err(ConfigError::at(
                        "the http2 chunk size cannot be zero",
                        &d.position,
                    ));
                }
                // nginx caps a chunk at the largest frame it sends.
                set(
                    &mut self.http2_chunk_size,
                    d,
                    n.min(super::http2::MAX_FRAME_SIZE),
                )?
            }
            "access_log" => {
                let logs = self.access_log.get_or_insert_with(Vec::new);
                match parse_access_log(d, prefix, formats, true)? {
                    Some(target) => logs.push(target),
                    None => logs.clear(),
                }
            }
            "proxy_next_upstream" => {
                set(&mut self.proxy_next_upstream, d, parse_next_upstream(d)?)?
            }
            "proxy_next_upstream_tries" => set(
                &mut self.proxy_next_upstream_tries,
                d,
                values::parse_number(arg0(d))
                    .filter(|n| *n <= u64::from(u32::MAX))
                    .ok_or_else(|| invalid_value(d))? as u32,
            )?,
            "proxy_next_upstream_timeout" => {
                set(&mut self.proxy_next_upstream_timeout, d, time(d)?)?
            }
            "proxy_hide_header" => self
                .proxy_hide_headers
                .get_or_insert_with(Vec::new)
                .push(arg0(d).to_ascii_lowercase()),
            "proxy_pass_header" => self
                .proxy_pass_headers
                .get_or_insert_with(Vec::new)
                .push(arg0(d).to_ascii_lowercase()),
            "proxy_ignore_headers" => {
                let names = self.proxy_ignore_headers.get_or_insert_with(Vec::new);
                for a in &d.args {
                    let Some(name) = IGNORABLE.iter().find(|n| a.value.eq_ignore_ascii_case(n))
                    else {
                        return Err(ConfigError::at(
                            format!("invalid value \"{}\"", a.value),
                            &d.position,
                        ));
                    };
                    let name = name.to_ascii_lowercase();
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            "proxy_method" => set(&mut self.proxy_method, d, compile(d, arg0(d))?)?,
            "proxy_bind" => set(
                &mut self.proxy_bind,
                d,
                super::stream_values::parse_proxy_bind(d)?,
            )?,
            "proxy_pass_request_headers" => set(
                &mut self.proxy_pass_request_headers,
                d,
                values::parse_flag(arg0(d)).unwrap_or(true),
            )?,
            "proxy_pass_request_body" => set(
                &mut self.proxy_pass_request_body,
                d,
                values::parse_flag(arg0(d)).unwrap_or(true),
            )?,
            "proxy_set_body" => set(&mut self.proxy_set_body, d, compile(d, arg0(d))?)?,
            "proxy_redirect" => {
                let first = arg0(d);
                let new = match (first, d.args.len()) {
                    ("default", 1) => ProxyRedirect::Default,
                    ("off", 1) => ProxyRedirect::Off,
                    (_, 2) => {
                        let from = match first.strip_prefix("~*") {
                            Some(re) => RewriteFrom::Regex(super::rewrite::regex(re, true, d)?),
                            None => match first.strip_prefix('~') {
                                Some(re) => {
                                    RewriteFrom::Regex(super::rewrite::regex(re, false, d)?)
                                }
                                None => RewriteFrom::Prefix(compile(d, first)?),
                            },
                        };
                        let rule = ValueRewrite {
                            from,
                            to: compile(d, &d.args[1].value)?,
                        };
                        match self.proxy_redirect.take() {
                            Some(ProxyRedirect::Rules(mut rules)) => {
                                rules.push(rule);
                                ProxyRedirect::Rules(rules)
                            }
                            _ => ProxyRedirect::Rules(vec![rule]),
                        }
                    }
                    _ => return Err(invalid_value(d)),
                };
                self.proxy_redirect = Some(new);
            }
            "add_header" => {
                let line = add_header_line(d)?;
                self.add_headers.get_or_insert_with(Vec::new).push(line);
            }
            "add_trailer" => {
                let line = add_header_line(d)?;
                self.add_trailers.get_or_insert_with(Vec::new).push(line);
            }
            "chunked_transfer_encoding" => set(&mut self.chunked_transfer_encoding, d, flag(d))?,
            "proxy_buffering" => set(&mut self.proxy_buffering, d, flag(d))?,
            "proxy_limit_rate" => set(&mut self.proxy_limit_rate, d, size(d)?)?,
            "error_page" => {
                let page = parse_error_page(d)?;
                self.error_pages.get_or_insert_with(Vec::new).push(page);
            }
            "proxy_intercept_errors" => set(&mut self.proxy_intercept_errors, d, flag(d))?,
            "absolute_redirect" => set(&mut self.absolute_redirect, d, flag(d))?,
            "port_in_redirect" => set(&mut self.port_in_redirect, d, flag(d))?,
            "server_name_in_redirect" => set(&mut self.server_name_in_redirect, d, flag(d))?,
            "real_ip_recursive" => set(&mut self.real_ip_recursive, d, flag(d))?,
            "rewrite_log" => set(&mut self.rewrite_log, d, flag(d))?,
            "log_not_found" => set(&mut self.log_not_found, d, flag(d))?,
            "merge_slashes" => set(&mut self.merge_slashes, d, flag(d))?,
            "expires" => set(&mut self.expires, d, parse_expires(d)?)?,
            "etag" => set(&mut self.etag, d, flag(d))?,
            "if_modified_since" => {
                use super::model::IfModifiedSince;
                let mode = match arg0(d) {
                    "off" => IfModifiedSince::Off,
                    "exact" => IfModifiedSince::Exact,
                    "before" => IfModifiedSince::Before,
                    other => {
                        return Err(ConfigError::at(
                            format!("invalid value \"{other}\" in \"if_modified_since\" directive, it must be \"off\", \"exact\" or \"before\""),
                            &d.position,
                        ))
                    }
                };
                set(&mut self.if_modified_since, d, mode)?
            }
            "root" => {
                if arg0(d).contains('$') {
                    return Err(ConfigError::at(
                        "\"root\" with variables is not supported yet",
                        &d.position,
                    ));
                }
                set(&mut self.root, d, full_path(prefix, arg0(d)))?
            }
            "index" => {
                if d.args.iter().any(|a| a.value.is_empty()) {
                    return Err(ConfigError::at(
                        "index \"\" in \"index\" directive is invalid",
                        &d.position,
                    ));
                }
                let names = d
                    .args
                    .iter()
                    .map(|a| compile(d, &a.value))
                    .collect::<Result<Vec<_>, _>>()?;
                self.index.get_or_insert_with(Vec::new).extend(names);
            }
            "default_type" => set(&mut self.default_type, d, arg0(d).to_string())?,
            "types" => {
                if self.types.is_some() {
                    return Err(ConfigError::at(
                        "\"types\" directive is duplicate",
                        &d.position,
                    ));
                }
                let mut map = HashMap::new();
                for line in d.block.as_deref().unwrap_or_default() {
                    if line.name == "include" {
                        continue;
                    }
                    if line.block.is_some() || line.args.is_empty() {
                        return Err(ConfigError::at(
                            "invalid number of arguments in \"types\" directive",
                            &line.position,
                        ));
                    }
                    for ext in &line.args {
                        map.insert(ext.value.to_ascii_lowercase(), line.name.clone());
                    }
                }
                self.types = Some(Arc::new(map));
            }
            "set_real_ip_from" => {
                let text = arg0(d);
                let from = self.real_ip_from.get_or_insert_with(Default::default);
                if text == "unix:" {
                    from.1 = true;
                } else if let Some(cidr) = parse_cidr(text) {
                    from.0.push(cidr);
                } else {
                    // Not an address: a host name, each of its addresses
                    // trusted (nginx resolves it now, as it reads it).
                    from.0.extend(resolve_host(text).ok_or_else(|| {
                        ConfigError::at(
                            format!("host not found in set_real_ip_from \"{text}\""),
                            &d.position,
                        )
                    })?);
                }
            }
            "real_ip_header" => set(&mut self.real_ip_header, d, arg0(d).to_ascii_lowercase())?,
            "error_log" => self
                .error_log
                .get_or_insert_with(Vec::new)
                .push(error_log_target(d, prefix)?),
            name if name.starts_with("gzip") || name.starts_with("gunzip") => {
                return self.gzip.apply(d)
            }
            name if name.starts_with("proxy_ssl") => return self.proxy_ssl.apply(d),
            name if name.starts_with("client_body_") || name == "proxy_request_buffering" => {
                if self.body.apply(d, prefix)? {
                    return Ok(true);
                }
                return Ok(super::http2::obsolete(d));
            }
            name if name.starts_with("limit_") => return self.limits.apply(d),
            "auth_basic"
            | "auth_basic_user_file"
            | "auth_request"
            | "auth_request_set"
            | "satisfy" => return self.auth.apply(d),
            "proxy_cookie_domain" | "proxy_cookie_path" | "proxy_cookie_flags" => {
                return self.cookie.apply(d)
            }
            "allow" | "deny" => self
                .access
                .get_or_insert_with(Vec::new)
                .push(super::access::parse_rule(d)?),
            _ => return Ok(super::http2::obsolete(d)),
        }
        Ok(true)
    }

    /// This level's values over `parent`'s.
    pub(crate) fn over(&self, parent: &Layer) -> Layer {
        macro_rules! pick {
            ($($field:ident),*) => {
                Layer {
                    $($field: self.$field.clone().or_else(|| parent.$field.clone()),)*
                    gzip: self.gzip.over(&parent.gzip),
                    proxy_ssl: self.proxy_ssl.over(&parent.proxy_ssl),
                    limits: self.limits.over(&parent.limits),
                    auth: self.auth.over(&parent.auth),
                    body: self.body.over(&parent.body),
                    cookie: self.cookie.over(&parent.cookie),
                }
            };
        }
        pick!(
            proxy_http_version_11,
            proxy_set_headers,
            proxy_connect_timeout,
            resolver,
            resolver_timeout,
            proxy_read_timeout,
            proxy_send_timeout,
            access_log,
            open_log_file_cache,
            error_log,
            client_max_body_size,
            client_body_timeout,
            client_header_timeout,
            client_header_buffer_size,
            large_client_header_buffers,
            keepalive_timeout,
            keepalive_header,
            keepalive_requests,
            keepalive_time,
            keepalive_disable,
            send_timeout,
            lingering_close,
            lingering_time,
            lingering_timeout,
            server_tokens,
            ignore_invalid_headers,
            underscores_in_headers,
            tcp_nodelay,
            http2,
            http2_max_concurrent_streams,
            http2_body_preread_size,
            http2_chunk_size,
            proxy_next_upstream,
            proxy_next_upstream_tries,
            proxy_next_upstream_timeout,
            proxy_hide_headers,
            proxy_pass_headers,
            proxy_ignore_headers,
            proxy_method,
            proxy_bind,
            proxy_pass_request_headers,
            proxy_pass_request_body,
            proxy_set_body,
            proxy_redirect,
            add_headers,
            add_trailers,
            proxy_buffering,
            proxy_limit_rate,
            chunked_transfer_encoding,
            error_pages,
            proxy_intercept_errors,
            root,
            index,
            log_not_found,
            merge_slashes,
            expires,
            if_modified_since,
            etag,
            default_type,
            types,
            absolute_redirect,
            port_in_redirect,
            server_name_in_redirect,
            real_ip_from,
            real_ip_header,
            real_ip_recursive,
            rewrite_log,
            access
        )
    }

    /// The final settings with nginx's defaults for anything unset.
    pub(crate) fn finish(&self, prefix: &Path) -> Settings {
        let minute = Duration::from_secs(60);
        // As nginx writes them (ngx_http_proxy_init_headers): the
        // proxy_set_header lines in their order (a name set twice is sent
        // twice), then the defaults none of them named (Host: $proxy_host,
        // Connection: close); an empty value sends nothing. Host itself
        // goes first when the request is written (http/proxy/request.rs,
        // as nginx 1.31.4 and later).
        let set = self.proxy_set_headers.as_deref().unwrap_or_default();
        let mut headers = set.to_vec();
        for (name, value) in [
            ("Host", Template::compile("$proxy_host").unwrap_or_default()),
            ("Connection", Template::literal("close")),
        ] {
            if !set.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                headers.push((name.to_string(), value));
            }
        }
        let file_cache = self.open_log_file_cache.flatten();
        let access_log = self
            .access_log
            .clone()
            .map(|t| with_file_cache(t, file_cache))
            .unwrap_or_else(|| {
                vec![AccessLogTarget {
                    path: AccessLogPath::Fixed(LogPath::File(full_path(prefix, "logs/access.log"))),
                    format: Arc::new(LogFormat::combined()),
                    condition: None,
                    buffer: None,
                }]
            });
        Settings {
            proxy_http_version_11: self.proxy_http_version_11.unwrap_or(false),
            proxy_set_headers: headers,
            proxy_connect_timeout: self.proxy_connect_timeout.unwrap_or(minute),
            // nginx merges the two apart: a level's timeout serves the
            // resolver it inherits.
            resolver: self.resolver.as_ref().map(|r| {
                Arc::new(super::model::ResolverSettings {
                    timeout: self.resolver_timeout.unwrap_or(Duration::from_secs(30)),
                    ..(**r).clone()
                })
            }),
            proxy_read_timeout: self.proxy_read_timeout.unwrap_or(minute),
            proxy_send_timeout: self.proxy_send_timeout.unwrap_or(minute),
            access_log,
            error_log: self.error_log.clone().unwrap_or_default(),
            client_max_body_size: self.client_max_body_size.unwrap_or(1024 * 1024),
            client_body_timeout: self.client_body_timeout.unwrap_or(minute),
            client_header_timeout: self.client_header_timeout.unwrap_or(minute),
            client_header_buffer_size: self.client_header_buffer_size.unwrap_or(1024),
            large_client_header_buffers: self.large_client_header_buffers.unwrap_or((4, 8192)),
            keepalive_timeout: self.keepalive_timeout.unwrap_or(Duration::from_secs(75)),
            keepalive_header: self.keepalive_header.filter(|s| *s > 0),
            keepalive_requests: self.keepalive_requests.unwrap_or(1000),
            keepalive_time: self.keepalive_time.unwrap_or(Duration::from_secs(3600)),
            keepalive_disable: self.keepalive_disable.unwrap_or_default(),
            send_timeout: self.send_timeout.unwrap_or(minute),
            lingering: {
                let default = super::model::Lingering::default();
                super::model::Lingering {
                    close: self.lingering_close.unwrap_or(default.close),
                    time: self.lingering_time.unwrap_or(default.time),
                    timeout: self.lingering_timeout.unwrap_or(default.timeout),
                }
            },
            server_tokens: self.server_tokens.unwrap_or(true),
            ignore_invalid_headers: self.ignore_invalid_headers.unwrap_or(true),
            underscores_in_headers: self.underscores_in_headers.unwrap_or(false),
            tcp_nodelay: self.tcp_nodelay.unwrap_or(true),
            http2: self.http2.unwrap_or(false),
            http2_max_concurrent_streams: self
                .http2_max_concurrent_streams
                .map_or(128, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            http2_body_preread_size: self.http2_body_preread_size.map_or(65536, |n| n as u32),
            http2_chunk_size: self.http2_chunk_size.map_or(8192, |n| n as usize),
            proxy_next_upstream: self.proxy_next_upstream.clone().unwrap_or_default(),
            proxy_next_upstream_tries: self.proxy_next_upstream_tries.unwrap_or(0),
            proxy_next_upstream_timeout: self.proxy_next_upstream_timeout.unwrap_or_default(),
            proxy_hide_headers: self.proxy_hide_headers.clone().unwrap_or_default(),
            proxy_pass_headers: self.proxy_pass_headers.clone().unwrap_or_default(),
            proxy_ignore_headers: self.proxy_ignore_headers.clone().unwrap_or_default(),
            proxy_method: self.proxy_method.clone(),
            proxy_bind: self.proxy_bind.clone().flatten(),
            proxy_pass_request_headers: self.proxy_pass_request_headers.unwrap_or(true),
            proxy_pass_request_body: self.proxy_pass_request_body.unwrap_or(true),
            proxy_set_body: self.proxy_set_body.clone(),
            proxy_redirect: self
                .proxy_redirect
                .clone()
                .unwrap_or(ProxyRedirect::Default),
            add_headers: self.add_headers.clone().unwrap_or_default(),
            add_trailers: self.add_trailers.clone().unwrap_or_default(),
            proxy_limit_rate: if self.proxy_buffering.unwrap_or(true) {
                self.proxy_limit_rate.unwrap_or(0)
            } else {
                0
            },
            chunked_transfer_encoding: self.chunked_transfer_encoding.unwrap_or(true),
            error_pages: self.error_pages.clone().unwrap_or_default(),
            proxy_intercept_errors: self.proxy_intercept_errors.unwrap_or(false),
            root: self
                .root
                .clone()
                .unwrap_or_else(|| full_path(prefix, "html")),
            log_not_found: self.log_not_found.unwrap_or(true),
            merge_slashes: self.merge_slashes.unwrap_or(true),
            expires: self.expires.clone().unwrap_or(super::model::Expires::Off),
            if_modified_since: self
                .if_modified_since
                .unwrap_or(super::model::IfModifiedSince::Exact),
            etag: self.etag.unwrap_or(true),
            index: self
                .index
                .clone()
                .unwrap_or_else(|| vec![Template::literal("index.html")]),
            default_type: self
                .default_type
                .clone()
                .unwrap_or_else(|| "text/plain".to_string()),
            types: self
                .types
                .clone()
                .unwrap_or_else(|| Arc::new(default_types())),
            absolute_redirect: self.absolute_redirect.unwrap_or(true),
            port_in_redirect: self.port_in_redirect.unwrap_or(true),
            server_name_in_redirect: self.server_name_in_redirect.unwrap_or(false),
            real_ip: Arc::new(RealIp {
                from: self
                    .real_ip_from
                    .as_ref()
                    .map(|f| f.0.clone())
                    .unwrap_or_default(),
                from_unix: self.real_ip_from.as_ref().is_some_and(|f| f.1),
                header: self.real_ip_header.clone(),
                recursive: self.real_ip_recursive.unwrap_or(false),
            }),
            rewrite_log: self.rewrite_log.unwrap_or(false),
            access: self.access.clone().unwrap_or_default().into(),
            gzip: Arc::new(self.gzip.finish()),
            limits: Arc::new(self.limits.finish()),
            auth: Arc::new(self.auth.finish()),
            body: Arc::new(self.body.finish(prefix)),
            proxy_cookie: Arc::new(self.cookie.finish()),
        }
    }
}

/// `expires [modified] TIME | epoch | max | off`, as ngx_http_headers_expires:
/// a value with variables is read for each response; nginx's words for a
/// value that does not read (`"expires" directive invalid value`).
fn parse_expires(d: &Directive) -> Result<super::model::Expires, ConfigError> {
    use super::model::{Expires, ExpiresError};
    let refuse =
        |e: ExpiresError| ConfigError::at(format!("\"expires\" directive {e}"), &d.position);
    let (modified, text) = match (d.args.len(), arg0(d)) {
        (2, "modified") => (true, d.args[1].value.as_str()),
        (2, _) => return Err(refuse(ExpiresError::Invalid)),
        (_, text) => (false, text),
    };
    let value = compile(d, text)?;
    let variable = value
        .segments()
        .iter()
        .any(|s| matches!(s, crate::vars::Segment::Var(_)));
    if variable {
        return Ok(Expires::Variable {
            value: Arc::new(value),
            modified,
        });
    }
    Expires::parse(text, modified).map_err(refuse)
}

/// `lingering_close off | on | always`, matched without regard to case
/// and refused in the words of nginx's `ngx_conf_set_enum_slot`.
fn lingering_close(d: &Directive) -> Result<super::model::LingeringClose, ConfigError> {
    use super::model::LingeringClose;
    let text = arg0(d);
    [
        ("off", LingeringClose::Off),
        ("on", LingeringClose::On),
        ("always", LingeringClose::Always),
    ]
    .into_iter()
    .find(|(name, _)| text.eq_ignore_ascii_case(name))
    .map(|(_, mode)| mode)
    .ok_or_else(|| ConfigError::at(format!("invalid value \"{text}\""), &d.position))
}

fn compile(d: &Directive, text: &str) -> Result<Template, ConfigError> {
    Template::compile(text).map_err(|e| ConfigError::at(e.to_string(), &d.position))
}

/// `proxy_next_upstream error | timeout | invalid_header | http_500 | ... | non_idempotent | off ...`.
fn parse_next_upstream(d: &Directive) -> Result<NextUpstream, ConfigError> {
    let mut next = NextUpstream {
        error: false,
        timeout: false,
        invalid_header: false,
        statuses: Vec::new(),
        non_idempotent: false,
    };
    for arg in &d.args {
        match arg.value.as_str() {
            "error" => next.error = true,
            "timeout" => next.timeout = true,
            "invalid_header" => next.invalid_header = true,
            "non_idempotent" => next.non_idempotent = true,
            "off" => {}
            "updating" => {}
            other => {
                let status = other
                    .strip_prefix("http_")
                    .and_then(|c| c.parse::<u16>().ok())
                    .filter(|c| [500, 502, 503, 504, 403, 404, 429].contains(c));
                match status {
                    Some(code) => next.statuses.push(code),
                    None => {
                        return Err(ConfigError::at(
                            format!("invalid value \"{other}\""),
                            &d.position,
                        ))
                    }
                }
            }
        }
    }
    if d.args.len() > 1 && d.args.iter().any(|a| a.value == "off") {
        return Err(ConfigError::at("invalid value \"off\"", &d.position));
    }
    Ok(next)
}

/// `error_page CODE ... [=[RESPONSE]] URI`, with nginx's checks.
fn parse_error_page(d: &Directive) -> Result<ErrorPage, ConfigError> {
    let at = &d.position;
    let n = d.args.len();
    let uri_text = &d.args[n - 1].value;
    let mut codes_end = n - 1;
    let mut response = None;
    if let Some(eq) = d.args[n - 2].value.strip_prefix('=') {
        codes_end = n - 2;
        response = Some(if eq.is_empty() {
            None
        } else {
            match values::parse_number(eq) {
                Some(c) if (100..=999).contains(&c) => Some(c as u16),
                _ => {
                    return Err(ConfigError::at(
                        format!("invalid value \"{}\"", d.args[n - 2].value),
                        at,
                    ))
                }
            }
        });
    }
    if codes_end == 0 {
        return Err(ConfigError::at(
            "invalid number of arguments in \"error_page\" directive",
            at,
        ));
    }
    let mut codes = Vec::new();
    for a in &d.args[..codes_end] {
        match values::parse_number(&a.value) {
            Some(c) if (300..=599).contains(&c) => codes.push(c as u16),
            Some(_) => {
                return Err(ConfigError::at(
                    format!("value \"{}\" must be between 300 and 599", a.value),
                    at,
                ))
            }
            None => {
                return Err(ConfigError::at(
                    format!("invalid value \"{}\"", a.value),
                    at,
                ))
            }
        }
    }
    let uri = Template::compile(uri_text).map_err(|e| ConfigError::at(e.to_string(), at))?;
    Ok(ErrorPage {
        codes,
        response,
        uri,
    })
}

/// `keepalive_disable none | BROWSER ...` (over what an earlier line of
/// the block named), as nginx's bitmask slot reads it: names in any case,
/// one already named warned about, `none` a value of its own (it disables
/// nothing, and nothing else is disabled unless named with it).
fn keepalive_disable(
    d: &Directive,
    earlier: Option<super::model::KeepaliveDisable>,
) -> Result<super::model::KeepaliveDisable, ConfigError> {
    let mut out = earlier.unwrap_or(super::model::KeepaliveDisable {
        none: false,
        msie6: false,
        safari: false,
    });
    for arg in &d.args {
        let value = arg.value.as_str();
        let slot = match value.to_ascii_lowercase().as_str() {
            "none" => &mut out.none,
            "msie6" => &mut out.msie6,
            "safari" => &mut out.safari,
            _ => {
                return Err(ConfigError::at(
                    format!("invalid value \"{value}\""),
                    &d.position,
                ))
            }
        };
        if *slot {
            crate::observe::error_log::stderr_line(
                crate::observe::ErrorLevel::Warn,
                &format!("duplicate value \"{value}\" in {}", d.position),
            );
        }
        *slot = true;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{parse_cidr, Layer};
    use crate::vars::Template;

    /// The names of the headers sent up for these proxy_set_header lines.
    fn order(set: &[&str]) -> Vec<String> {
        let layer = Layer {
            proxy_set_headers: Some(
                set.iter()
                    .map(|n| (n.to_string(), Template::literal("v")))
                    .collect(),
            ),
            ..Layer::default()
        };
        let settings = layer.finish(std::path::Path::new("/"));
        settings
            .proxy_set_headers
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    }

    #[test]
    fn proxy_headers_go_up_in_nginx_order() {
        // The lines as written, then the defaults they did not name.
        assert_eq!(order(&[]), ["Host", "Connection"]);
        assert_eq!(order(&["X-Real-IP"]), ["X-Real-IP", "Host", "Connection"]);
        assert_eq!(
            order(&["X-Real-IP", "Host"]),
            ["X-Real-IP", "Host", "Connection"]
        );
        assert_eq!(
            order(&["Connection", "Upgrade", "host", "X-A", "X-A"]),
            ["Connection", "Upgrade", "host", "X-A", "X-A"]
        );
    }

    #[test]
    fn cidrs() {
        let net = parse_cidr("10.0.0.0/8").unwrap();
        assert!(net.contains("10.200.1.1".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
        let one = parse_cidr("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6 = parse_cidr("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(parse_cidr("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(parse_cidr("10.0.0.0/33").is_none());
        assert!(parse_cidr("nope").is_none());
    }
}
