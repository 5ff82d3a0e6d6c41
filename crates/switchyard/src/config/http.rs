//! The `http` block: log formats, upstreams, servers and their locations.

use std::path::Path;
use std::sync::Arc;

use nginx_conf::Directive;

use super::directives::Ctx;
use super::listen::{default_port, parse_listen};
use super::model::{
    Alias, Handler, Http, IfBlock, LimitExcept, Listen, LocationConfig, LocationMatch, Op,
    PassTarget, ProxyPass, ProxyTarget, ServerConfig, UpstreamConfig,
};
use super::proxy_url::{Authority, ProxyUrl};
use super::settings::Layer;
use super::ssl::{SslBuild, SslLayer};
use super::upstream::{build_upstream, implicit_unix_upstream, implicit_upstream};
use super::{arg0, check, ConfigError, Seen};
use crate::observe::log_format::{Escape, LogFormat};

/// State shared while walking one `http` block.
struct HttpBuilder<'a> {
    prefix: &'a Path,
    /// The directory of nginx.conf: certificate names are relative to it.
    conf_prefix: &'a Path,
    upstream_names: Vec<String>,
    implicit: Vec<Arc<UpstreamConfig>>,
    formats: Vec<(String, Arc<LogFormat>)>,
    matches: std::collections::HashMap<String, Arc<super::model::HealthMatch>>,
    /// `health_check` lines found in locations: (upstream name, check).
    location_checks: Vec<(String, super::model::HealthCheck)>,
    /// The `ssl_*` settings of the `http` level.
    ssl_layer: SslLayer,
    /// What the servers' TLS contexts share (session caches).
    ssl: SslBuild,
}

/// Builds the typed `http` block. Certificate files are relative to
/// `conf_prefix`, the directory of nginx.conf.
pub(crate) fn build_http(
    d: &Directive,
    prefix: &Path,
    conf_prefix: &Path,
) -> Result<Http, ConfigError> {
    let mut names = Vec::new();
    super::rewrite::user_var_names(d.block.as_deref().unwrap_or_default(), &mut names);
    let zones = super::limits::collect_zones(d.block.as_deref().unwrap_or_default());
    crate::vars::with_user_vars(names, || {
        let zones = zones?;
        super::limits::with_zones(zones.clone(), || {
            build_http_inner(d, prefix, conf_prefix, zones)
        })
    })
}

fn build_http_inner(
    d: &Directive,
    prefix: &Path,
    conf_prefix: &Path,
    zones: super::limits::Zones,
) -> Result<Http, ConfigError> {
    let block = d.block.as_deref().unwrap_or_default();
    let mut maps = std::collections::HashMap::new();
    let mut splits = std::collections::HashMap::new();
    let mut geos = std::collections::HashMap::new();
    let mut b = HttpBuilder {
        prefix,
        conf_prefix,
        // proxy_pass may name an upstream defined further down the file.
        upstream_names: block
            .iter()
            .filter(|d| d.name == "upstream" && d.args.len() == 1)
            .map(|d| d.args[0].value.clone())
            .collect(),
        implicit: Vec::new(),
        formats: vec![("combined".to_string(), Arc::new(LogFormat::combined()))],
        matches: std::collections::HashMap::new(),
        location_checks: Vec::new(),
        ssl_layer: SslLayer::default(),
        ssl: SslBuild::new(conf_prefix),
    };
    // `match` blocks may be named by health checks anywhere in http.
    for inner in block.iter().filter(|d| d.name == "match") {
        check(inner, Ctx::HTTP)?;
        let m = super::health::parse_match(inner)?;
        if b.matches.contains_key(&m.name) {
            return Err(ConfigError::at(
                format!("duplicate match \"{}\"", m.name),
                &inner.position,
            ));
        }
        b.matches.insert(m.name.clone(), Arc::new(m));
    }
    let mut layer = Layer::default();
    let mut seen = Seen::default();
    let mut upstreams: Vec<Arc<UpstreamConfig>> = Vec::new();
    let http_resolver = super::upstream::block_resolver(block, Ctx::HTTP)?;
    let mut server_blocks = Vec::new();
    for inner in block {
        let spec = check(inner, Ctx::HTTP)?;
        match spec.name {
            "server" => server_blocks.push(inner),
            // Zones were read first (collect_zones).
            "match" | "limit_req_zone" | "limit_conn_zone" => {}
            "map" => {
                super::rewrite::add_map(&mut maps, inner)?;
                // nginx's later definition of a changeable variable wins.
                geos.retain(|name: &String, _| !maps.contains_key(name));
            }
            "geo" => super::geo::add_geo(&mut geos, &mut maps, &splits, inner, true)?,
            "split_clients" => {
                let (name, split) = super::stream_values::parse_split_clients(inner)?;
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
            "upstream" => {
                let up = build_upstream(inner, &b.matches, http_resolver.as_ref())?;
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
                if b.formats.iter().any(|(n, _)| *n == name) {
                    return Err(ConfigError::at(
                        format!("duplicate \"log_format\" name \"{name}\""),
                        &inner.position,
                    ));
                }
                let format = parse_log_format(inner)?;
                b.formats.push((name, Arc::new(format)));
            }
            "include" => {}
            _ => {
                if !b.ssl_layer.apply(inner)? && !layer.apply(inner, prefix, &b.formats)? {
                    seen.unclaimed(inner, spec)?;
                }
            }
        }
    }
    let mut servers = Vec::new();
    for s in server_blocks {
        servers.push(Arc::new(b.build_server(s, &layer)?));
    }
    check_listens(&servers)?;
    check_ssl_defaults(&servers)?;
    super::listen::check_options(servers.iter().flat_map(|s| s.listens.iter()))?;
    upstreams.append(&mut b.implicit);
    for (name, check) in b.location_checks.drain(..) {
        if let Some(up) = upstreams.iter_mut().find(|u| u.name == name) {
            Arc::make_mut(up).health_check = Some(check);
        }
    }
    Ok(Http {
        upstreams,
        servers,
        log_formats: b.formats,
        maps: Arc::new(maps),
        split_clients: Arc::new(splits),
        geos: Arc::new(geos),
        limit_req_zones: zones.req,
        limit_conn_zones: zones.conn,
    })
}

/// Compiles the format of `log_format NAME [escape=...] TEXT...` (the
/// arguments after the name are concatenated, as nginx does).
pub(crate) fn parse_log_format(d: &Directive) -> Result<LogFormat, ConfigError> {
    let mut rest = &d.args[1..];
    let mut escape = Escape::Default;
    if let Some(e) = rest.first().and_then(|a| a.value.strip_prefix("escape=")) {
        escape = match e {
            "default" => Escape::Default,
            "json" => Escape::Json,
            "none" => Escape::None,
            other => {
                return Err(ConfigError::at(
                    format!("unknown log format escaping \"{other}\""),
                    &d.position,
                ))
            }
        };
        rest = &rest[1..];
    }
    let text: String = rest.iter().map(|a| a.value.as_str()).collect();
    LogFormat::compile(&text, escape).map_err(|e| ConfigError::at(e.to_string(), &d.position))
}

/// nginx refuses two `default_server`s on one address.
fn check_listens(servers: &[Arc<ServerConfig>]) -> Result<(), ConfigError> {
    let mut defaults: Vec<&Listen> = Vec::new();
    for listen in servers.iter().flat_map(|s| s.listens.iter()) {
        if listen.default_server {
            if defaults.iter().any(|l| l.addr == listen.addr) {
                let message = format!("a duplicate default server for {}", listen.addr);
                return Err(match &listen.position {
                    Some(p) => ConfigError::at(message, p),
                    None => ConfigError::bare(message),
                });
            }
            defaults.push(listen);
        }
    }
    Ok(())
}

/// What ALPN offers for HTTP/1 (nginx's NGX_HTTP_ALPN_PROTOS), in the
/// server's order of preference.
const HTTP1_ALPN: &[&[u8]] = &[b"http/1.1", b"http/1.0", b"http/0.9"];

/// ALPN for a server that speaks HTTP/2 (`http2 on`, or `listen ... http2`):
/// `h2` first, as nginx's NGX_HTTP_V2_ALPN_PROTO precedes the HTTP/1 ones.
const HTTP2_ALPN: &[&[u8]] = &[b"h2", b"http/1.1", b"http/1.0", b"http/0.9"];

/// An address is TLS when any `listen` of it says `ssl` (nginx merges the
/// flag per address); its default server must then have a certificate, as
/// nginx's ngx_http_ssl_init checks: the one a client without SNI gets.
fn check_ssl_defaults(servers: &[Arc<ServerConfig>]) -> Result<(), ConfigError> {
    let listens = || {
        servers
            .iter()
            .flat_map(|s| s.listens.iter().map(move |l| (s, l)))
    };
    for (_, listen) in listens().filter(|(_, l)| l.ssl) {
        let on_addr = || listens().filter(|(_, l)| l.addr == listen.addr);
        let default = on_addr()
            .find(|(_, l)| l.default_server)
            .or_else(|| on_addr().next());
        if let Some((server, _)) = default {
            if server.tls.is_none() && !server.reject_handshake {
                return Err(ConfigError::bare(format!(
                    "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive in {}",
                    server.position
                )));
            }
        }
    }
    Ok(())
}

impl HttpBuilder<'_> {
    fn build_server(&mut self, d: &Directive, http: &Layer) -> Result<ServerConfig, ConfigError> {
        let mut layer = Layer::default();
        let mut listens: Vec<Listen> = Vec::new();
        let mut names = Vec::new();
        let mut location_blocks = Vec::new();
        let mut seen = Seen::default();
        let mut script = Vec::new();
        let mut name_regexes = Vec::new();
        let mut primary_name: Option<String> = None;
        let mut try_files = None;
        // nginx sets a server-level stub_status on the server's own
        // location configuration: requests no location matches.
        let mut handler = Handler::None;
        let mut ssl_layer = SslLayer::default();
        for inner in d.block.as_deref().unwrap_or_default() {
            let spec = check(inner, Ctx::SERVER)?;
            match spec.name {
                "listen" => {
                    for listen in parse_listen(inner)? {
                        if listens.iter().any(|l| l.addr == listen.addr) {
                            return Err(ConfigError::at(
                                format!("a duplicate listen {}", listen.addr),
                                &inner.position,
                            ));
                        }
                        listens.push(listen);
                    }
                }
                "server_name" => {
                    for a in &inner.args {
                        // $server_name: the first name, a regex as written.
                        // (`.example.com` gives `example.com`).
                        primary_name.get_or_insert_with(|| match a.value.starts_with('~') {
                            true => a.value.clone(),
                            false => a
                                .value
                                .strip_prefix('.')
                                .unwrap_or(&a.value)
                                .to_ascii_lowercase(),
                        });
                        match a.value.strip_prefix('~') {
                            Some(re) => name_regexes
                                .push(super::pcre::compile(re, true).map_err(|e| {
                                    ConfigError::at(e.to_string(), &inner.position)
                                })?),
                            None => names.push(a.value.to_ascii_lowercase()),
                        }
                    }
                }
                "location" => location_blocks.push(inner),
                "stub_status" => handler = Handler::StubStatus,
                "return" => script.push(super::rewrite::parse_return(inner)?),
                "set" => script.push(super::rewrite::parse_set(inner)?),
                "rewrite" => script.push(super::rewrite::parse_rewrite(inner)?),
                "try_files" => {
                    seen.once(inner)?;
                    try_files = Some(Arc::new(super::rewrite::parse_try_files(inner)?));
                }
                "break" => script.push(Op::Break),
                "if" => {
                    let mut inner_script = Vec::new();
                    for i in inner.block.as_deref().unwrap_or_default() {
                        let spec = check(i, Ctx::SERVER_IF)?;
                        match spec.name {
                            "return" => inner_script.push(super::rewrite::parse_return(i)?),
                            "set" => inner_script.push(super::rewrite::parse_set(i)?),
                            "rewrite" => inner_script.push(super::rewrite::parse_rewrite(i)?),
                            "break" => inner_script.push(Op::Break),
                            "include" => {}
                            other => {
                                return Err(ConfigError::at(
                                    format!("\"{other}\" inside \"if\" is not supported yet"),
                                    &i.position,
                                ))
                            }
                        }
                    }
                    script.push(Op::If(Box::new(IfBlock {
                        condition: super::rewrite::parse_condition(inner)?,
                        script: inner_script,
                        location: None,
                        own_proxy: false,
                    })));
                }
                "include" => {}
                _ => {
                    if !ssl_layer.apply(inner)?
                        && !layer.apply(inner, self.prefix, &self.formats)?
                    {
                        seen.unclaimed(inner, spec)?;
                    }
                }
            }
        }
        if listens.is_empty() {
            listens.push(Listen::new(
                std::net::SocketAddr::from(([0, 0, 0, 0], default_port())),
                None,
            ));
        }
        if names.is_empty() && name_regexes.is_empty() {
            names.push(String::new());
        }
        let merged = layer.over(http);
        let mut locations = Vec::new();
        let mut named_locations: Vec<Arc<LocationConfig>> = Vec::new();
        for l in location_blocks {
            let location = Arc::new(self.build_location(l, &merged, None, false)?);
            if let LocationMatch::Named(name) = &location.matcher {
                if named_locations
                    .iter()
                    .any(|n| matches!(&n.matcher, LocationMatch::Named(m) if m == name))
                {
                    return Err(ConfigError::at(
                        format!("duplicate location \"{name}\""),
                        &l.position,
                    ));
                }
                named_locations.push(location);
            } else {
                locations.push(location);
            }
        }
        let settings = Arc::new(merged.finish(self.prefix));
        // nginx makes a TLS context wherever certificates are set (or
        // inherited); whether one is required is the address's question.
        let alpn = if settings.http2 || listens.iter().any(|l| l.http2) {
            HTTP2_ALPN
        } else {
            HTTP1_ALPN
        };
        let ssl = ssl_layer
            .over(&self.ssl_layer)
            .for_http(alpn, settings.client_header_timeout);
        let tls = self.ssl.server(&ssl, false, &d.position)?;
        let unmatched = Arc::new(LocationConfig {
            matcher: LocationMatch::Prefix(String::new()),
            nested: Vec::new(),
            handler,
            settings: settings.clone(),
            script: Vec::new(),
            alias: None,
            internal: false,
            try_files,
            limit_except: None,
        });
        Ok(ServerConfig {
            listens,
            names,
            locations,
            settings,
            tls,
            verify_client: ssl.verify_client(),
            reject_handshake: ssl.reject_handshake(),
            position: d.position.clone(),
            name_regexes,
            primary_name: primary_name.unwrap_or_default(),
            script,
            named_locations,
            unmatched,
        })
    }

    fn build_location(
        &mut self,
        d: &Directive,
        parent: &Layer,
        parent_alias: Option<&Alias>,
        nested: bool,
    ) -> Result<LocationConfig, ConfigError> {
        let at = &d.position;
        let (modifier, pattern) = match d.args.len() {
            1 => ("", d.args[0].value.as_str()),
            _ => (d.args[0].value.as_str(), d.args[1].value.as_str()),
        };
        let regex = |caseless: bool| super::rewrite::regex(pattern, caseless, d);
        let matcher = match modifier {
            "" if pattern.starts_with('@') => {
                if nested {
                    return Err(ConfigError::at(
                        format!("named location \"{pattern}\" can be on the server level only"),
                        at,
                    ));
                }
                LocationMatch::Named(pattern.to_string())
            }
            "" => LocationMatch::Prefix(pattern.to_string()),
            "=" => LocationMatch::Exact(pattern.to_string()),
            "^~" => LocationMatch::PrefixNoRegex(pattern.to_string()),
            "~" => LocationMatch::Regex(regex(false)?),
            "~*" => LocationMatch::Regex(regex(true)?),
            other => {
                return Err(ConfigError::at(
                    format!("invalid location modifier \"{other}\""),
                    at,
                ))
            }
        };
        let mut layer = Layer::default();
        let mut seen = Seen::default();
        let mut nested_blocks = Vec::new();
        let mut handler = Handler::None;
        let mut pending_check = None;
        let mut alias = None;
        let mut root_seen = false;
        let mut internal = false;
        let mut try_files = None;
        let mut limit_except_block = None;
        for inner in d.block.as_deref().unwrap_or_default() {
            let spec = check(inner, Ctx::LOCATION)?;
            match spec.name {
                "location" => nested_blocks.push(inner),
                "proxy_pass" => {
                    seen.once(inner)?;
                    handler = Handler::Proxy(self.parse_proxy_pass(inner, &matcher, false)?);
                }
                "return" | "set" | "if" | "break" | "rewrite" => {}
                "try_files" => {
                    seen.once(inner)?;
                    try_files = Some(Arc::new(super::rewrite::parse_try_files(inner)?));
                }
                "internal" => {
                    seen.once(inner)?;
                    internal = true;
                }
                "limit_except" => {
                    seen.once(inner)?;
                    limit_except_block = Some(inner);
                }
                "alias" => {
                    if alias.is_some() || root_seen {
                        let earlier = if root_seen { "root" } else { "alias" };
                        return Err(ConfigError::at(
                            format!("\"alias\" directive is duplicate, \"{earlier}\" directive was specified earlier"),
                            &inner.position,
                        ));
                    }
                    if arg0(inner).contains('$') {
                        return Err(ConfigError::at(
                            "\"alias\" with variables is not supported yet",
                            &inner.position,
                        ));
                    }
                    alias = Some(Alias {
                        path: super::full_path(self.prefix, arg0(inner)),
                        prefix: match &matcher {
                            LocationMatch::Exact(p)
                            | LocationMatch::Prefix(p)
                            | LocationMatch::PrefixNoRegex(p) => Some(p.clone()),
                            LocationMatch::Regex(_) | LocationMatch::Named(_) => None,
                        },
                    });
                }
                "root" if alias.is_some() => {
                    return Err(ConfigError::at(
                        "\"root\" directive is duplicate, \"alias\" directive was specified earlier",
                        &inner.position,
                    ));
                }
                "stub_status" => handler = Handler::StubStatus,
                "metrics" => handler = Handler::Metrics,
                "status_page" => handler = Handler::StatusPage,
                "health_check" => {
                    seen.once(inner)?;
                    pending_check = Some(super::health::parse_health_check(inner, &self.matches)?);
                }
                "include" => {}
                _ => {
                    root_seen |= spec.name == "root";
                    if !layer.apply(inner, self.prefix, &self.formats)? {
                        seen.unclaimed(inner, spec)?;
                    }
                }
            }
        }
        if let Some(check) = pending_check {
            let target = match &handler {
                Handler::Proxy(pass) => pass.target_name(),
                _ => None,
            };
            let Some(name) = target else {
                return Err(ConfigError::at(
                    "\"health_check\" needs \"proxy_pass\" to an upstream in the same location",
                    at,
                ));
            };
            self.location_checks.push((name.to_string(), check));
        }
        if alias.is_none() && !root_seen {
            // nginx inherits an enclosing location's alias with its root.
            alias = parent_alias.cloned();
        }
        let merged = layer.over(parent);
        self.proxy_tls(&mut handler, &merged, at)?;
        let mut nested = Vec::new();
        for n in nested_blocks {
            if let LocationMatch::Named(name) = &matcher {
                let inner = n.args.last().map(|a| a.value.as_str()).unwrap_or_default();
                return Err(ConfigError::at(
                    format!(
                        "location \"{inner}\" could not be inside the named location \"{name}\""
                    ),
                    &n.position,
                ));
            }
            nested.push(Arc::new(self.build_location(
                n,
                &merged,
                alias.as_ref(),
                true,
            )?));
        }
        let mut script = Vec::new();
        for inner in d.block.as_deref().unwrap_or_default() {
            match inner.name.as_str() {
                "return" => script.push(super::rewrite::parse_return(inner)?),
                "set" => script.push(super::rewrite::parse_set(inner)?),
                "rewrite" => script.push(super::rewrite::parse_rewrite(inner)?),
                "break" => script.push(Op::Break),
                "if" => {
                    script.push(self.build_location_if(inner, &matcher, &merged, &handler, &alias)?)
                }
                _ => {}
            }
        }
        let mut location = LocationConfig {
            matcher,
            nested,
            handler,
            settings: Arc::new(merged.finish(self.prefix)),
            script,
            alias,
            internal,
            try_files,
            limit_except: None,
        };
        if let Some(block) = limit_except_block {
            location.limit_except = Some(Arc::new(
                self.build_limit_except(block, &location, &merged)?,
            ));
        }
        Ok(location)
    }

    /// `limit_except METHOD ... { ... }`: the methods (nginx's names, in any
    /// case; `GET` brings `HEAD`), and for every other method the location
    /// with the block's directives over it. Its content is the block's
    /// `proxy_pass`, else the location's (nginx's proxy module merges it
    /// into the block), else a file, as nginx's handler is not inherited.
    fn build_limit_except(
        &mut self,
        d: &Directive,
        location: &LocationConfig,
        parent: &Layer,
    ) -> Result<LimitExcept, ConfigError> {
        let mut methods = Vec::new();
        for arg in &d.args {
            let Some(name) = LimitExcept::METHODS
                .iter()
                .find(|m| m.eq_ignore_ascii_case(&arg.value))
            else {
                return Err(ConfigError::at(
                    format!("invalid method \"{}\"", arg.value),
                    &d.position,
                ));
            };
            methods.push(http::Method::from_bytes(name.as_bytes()).map_err(|_| {
                ConfigError::at(format!("invalid method \"{}\"", arg.value), &d.position)
            })?);
        }
        if methods.contains(&http::Method::GET) && !methods.contains(&http::Method::HEAD) {
            methods.push(http::Method::HEAD);
        }
        let mut layer = Layer::default();
        let mut seen = Seen::default();
        let mut handler = match &location.handler {
            Handler::Proxy(pass) => Handler::Proxy(pass.clone()),
            _ => Handler::None,
        };
        for inner in d.block.as_deref().unwrap_or_default() {
            let spec = check(inner, Ctx::LIMIT_EXCEPT)?;
            match spec.name {
                "proxy_pass" => {
                    seen.once(inner)?;
                    // As inside `if`: no URI part.
                    handler =
                        Handler::Proxy(self.parse_proxy_pass(inner, &location.matcher, true)?);
                }
                "include" => {}
                _ => {
                    if !layer.apply(inner, self.prefix, &self.formats)? {
                        seen.unclaimed(inner, spec)?;
                    }
                }
            }
        }
        let merged = layer.over(parent);
        self.block_proxy_tls(&mut handler, &layer, &merged, &d.position)?;
        Ok(LimitExcept {
            methods,
            config: Arc::new(LocationConfig {
                handler,
                settings: Arc::new(merged.finish(self.prefix)),
                limit_except: None,
                ..location.clone()
            }),
        })
    }

    /// `if (...) { ... }` inside a location: its own rewrite directives and
    /// a configuration (its settings over the location's) that applies to
    /// the request when it matched.
    fn build_location_if(
        &mut self,
        d: &Directive,
        matcher: &LocationMatch,
        parent: &Layer,
        parent_handler: &Handler,
        alias: &Option<Alias>,
    ) -> Result<Op, ConfigError> {
        let condition = super::rewrite::parse_condition(d)?;
        let mut layer = Layer::default();
        let mut seen = Seen::default();
        let mut script = Vec::new();
        let mut handler = None;
        for inner in d.block.as_deref().unwrap_or_default() {
            let spec = check(inner, Ctx::LOCATION_IF)?;
            match spec.name {
                "return" => script.push(super::rewrite::parse_return(inner)?),
                "set" => script.push(super::rewrite::parse_set(inner)?),
                "rewrite" => script.push(super::rewrite::parse_rewrite(inner)?),
                "break" => script.push(Op::Break),
                "proxy_pass" => {
                    seen.once(inner)?;
                    handler = Some(Handler::Proxy(self.parse_proxy_pass(inner, matcher, true)?));
                }
                "include" => {}
                _ => {
                    if !layer.apply(inner, self.prefix, &self.formats)? {
                        seen.unclaimed(inner, spec)?;
                    }
                }
            }
        }
        let merged = layer.over(parent);
        let own_proxy = handler.is_some();
        let mut handler = handler.unwrap_or_else(|| parent_handler.clone());
        self.block_proxy_tls(&mut handler, &layer, &merged, &d.position)?;
        let location = LocationConfig {
            matcher: matcher.clone(),
            nested: Vec::new(),
            handler,
            settings: Arc::new(merged.finish(self.prefix)),
            script: Vec::new(),
            alias: alias.clone(),
            internal: false,
            // nginx does not merge try_files into an `if` (one of the
            // reasons "if is evil"): a matching `if` has none.
            try_files: None,
            limit_except: None,
        };
        Ok(Op::If(Box::new(IfBlock {
            condition,
            script,
            location: Some(Arc::new(location)),
            own_proxy,
        })))
    }

    /// The TLS of the pass of a block inside a location (`if`,
    /// `limit_except`): a block with `proxy_ssl_*` settings of its own
    /// (`layer`) gets its own context, else the location's is kept.
    fn block_proxy_tls(
        &self,
        handler: &mut Handler,
        layer: &Layer,
        merged: &Layer,
        at: &nginx_conf::Position,
    ) -> Result<(), ConfigError> {
        if layer_sets_tls(layer) {
            if let Handler::Proxy(pass) = handler {
                pass.tls = None;
            }
        }
        self.proxy_tls(handler, merged, at)
    }

    /// The TLS of an `https://` pass, from the merged `proxy_ssl_*`
    /// settings of the location that has it; one already built (inherited
    /// by an `if` that sets nothing of its own) is kept.
    fn proxy_tls(
        &self,
        handler: &mut Handler,
        merged: &Layer,
        at: &nginx_conf::Position,
    ) -> Result<(), ConfigError> {
        if let Handler::Proxy(pass) = handler {
            if pass.https && pass.tls.is_none() {
                let context = merged.proxy_ssl.build(self.conf_prefix, at)?;
                pass.tls = Some(Arc::new(super::model::ProxyTls {
                    context,
                    name: merged.proxy_ssl.name(),
                }));
            }
        }
        Ok(())
    }

    fn parse_proxy_pass(
        &mut self,
        d: &Directive,
        matcher: &LocationMatch,
        in_if: bool,
    ) -> Result<ProxyPass, ConfigError> {
        let at = &d.position;
        let url = arg0(d);
        if url.contains('$') {
            let template = crate::vars::Template::compile(url)
                .map_err(|e| ConfigError::at(e.to_string(), at))?;
            // nginx prepares TLS for any URL with variables; we do unless
            // the scheme is written as plain http.
            let maybe_https = !url
                .get(..7)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
            return Ok(ProxyPass {
                target: PassTarget::Evaluated(template),
                proxy_host: String::new(),
                proxy_port: 0,
                uri: None,
                location_prefix: None,
                verbatim_uri: false,
                https: maybe_https,
                tls: None,
            });
        }
        let parsed = ProxyUrl::parse(url).map_err(|e| ConfigError::at(e.to_string(), at))?;
        if parsed.uri.is_some()
            && (in_if || matches!(matcher, LocationMatch::Regex(_) | LocationMatch::Named(_)))
        {
            return Err(ConfigError::at(
                "\"proxy_pass\" cannot have URI part in location given by regular expression, \
                 or inside named location, or inside \"if\" statement, or inside \"limit_except\" block",
                at,
            ));
        }
        let ProxyUrl {
            https,
            authority,
            proxy_host,
            uri,
        } = parsed;
        let proxy_port = match &authority {
            Authority::Inet { port, .. } => *port,
            Authority::Unix(_) => 0,
        };
        let target = match authority {
            Authority::Unix(path) => {
                let up = Arc::new(implicit_unix_upstream(&path, at));
                self.implicit.push(up.clone());
                ProxyTarget::Implicit(up)
            }
            Authority::Inet {
                host,
                explicit_port,
                port,
            } if self.upstream_names.contains(&host) => {
                if explicit_port {
                    return Err(ConfigError::at(
                        format!("upstream \"{host}\" may not have port {port}"),
                        at,
                    ));
                }
                ProxyTarget::Upstream(host)
            }
            Authority::Inet { host, port, .. } => {
                let up = Arc::new(implicit_upstream(host, port, at));
                self.implicit.push(up.clone());
                ProxyTarget::Implicit(up)
            }
        };
        let location_prefix = match matcher {
            LocationMatch::Exact(p)
            | LocationMatch::Prefix(p)
            | LocationMatch::PrefixNoRegex(p) => Some(p.clone()),
            LocationMatch::Regex(_) | LocationMatch::Named(_) => None,
        };
        Ok(ProxyPass {
            target: PassTarget::Fixed(target),
            proxy_host,
            proxy_port,
            uri,
            location_prefix,
            verbatim_uri: false,
            https,
            tls: None,
        })
    }
}

/// Whether a level sets any `proxy_ssl_*` directive.
fn layer_sets_tls(layer: &Layer) -> bool {
    layer.proxy_ssl.is_set()
}
