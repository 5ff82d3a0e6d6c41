//! `proxy_pass` with variables: the URL evaluated for one request, and the
//! group it names (ngx_http_proxy_eval, then the lookup of
//! ngx_http_upstream_init_request): an address or a socket is used as it
//! is, a name is an `upstream` block (or the implicit group of another
//! `proxy_pass`) when one has it, else it is resolved with the location's
//! `resolver`.

use std::sync::Arc;

use super::log_context;
use crate::config::model::{PassTarget, ProxyPass, Settings};
use crate::config::proxy_url::{Authority, ProxyUrl, UrlError};
use crate::http::exchange::Exchange;
use crate::http::generation::Generation;
use crate::observe::error_log;
use crate::upstream::stub_dns::StubResolver;
use crate::upstream::{PeerAddr, Upstream};
use crate::vars::Template;

/// The pass of this request, with its URL's host, port and URI, and the
/// group to send it to; or the status nginx answers (500 for a URL it
/// cannot parse, 502 for a name it cannot resolve), its reason logged.
pub(crate) async fn evaluate(
    pass: &ProxyPass,
    template: &Template,
    ex: &Exchange,
    generation: &Generation,
    settings: &Settings,
) -> Result<(ProxyPass, Arc<Upstream>), u16> {
    let value = template.render(ex);
    let log = |words: String| {
        error_log::error(
            Some(ex.conn.id),
            &format!("{words}{}", log_context(ex, None)),
        );
    };
    let parsed = match ProxyUrl::parse(&value) {
        // "http://" alone has no host: nginx calls that a bad prefix too.
        Ok(url) if value.len() > if url.https { 8 } else { 7 } => url,
        Ok(_) | Err(UrlError::Prefix) => {
            log(format!("invalid URL prefix in \"{value}\""));
            return Err(500);
        }
        Err(UrlError::Address(words)) => {
            log(words);
            return Err(500);
        }
    };
    if parsed.https && pass.tls.is_none() {
        log(format!(
            "no TLS for \"{value}\" (its scheme was written as http)"
        ));
        return Err(500);
    }
    let (upstream, port) = match &parsed.authority {
        Authority::Unix(path) => {
            let addr = PeerAddr::Unix(Arc::from(std::path::Path::new(path)));
            (Upstream::one_off(addr.to_string(), 0, vec![addr], false), 0)
        }
        Authority::Inet {
            host,
            port,
            explicit_port,
        } => {
            let port = *port;
            if let Ok(ip) = host.parse::<std::net::IpAddr>() {
                let addr = PeerAddr::Inet(std::net::SocketAddr::new(ip, port));
                (
                    Upstream::one_off(addr.to_string(), port, vec![addr], false),
                    port,
                )
            } else if let Some(group) = configured(generation, host, port, *explicit_port) {
                (group, port)
            } else {
                (resolved(host, port, settings, &log).await?, port)
            }
        }
    };
    let mut uri = parsed.uri;
    if let Some(u) = uri.as_mut().filter(|u| u.starts_with('?')) {
        u.insert(0, '/');
    }
    let pass = ProxyPass {
        target: PassTarget::Evaluated(template.clone()),
        proxy_host: parsed.proxy_host,
        proxy_port: port,
        verbatim_uri: uri.is_some(),
        uri,
        location_prefix: None,
        tls: pass.tls.clone().filter(|_| parsed.https),
        https: parsed.https,
    };
    Ok((pass, upstream))
}

/// The group nginx finds for a host: an `upstream` block by its name when
/// the URL has no port, else the implicit group another `proxy_pass`
/// made for `host:port` (names compared without case, as nginx does).
fn configured(
    generation: &Generation,
    host: &str,
    port: u16,
    explicit_port: bool,
) -> Option<Arc<Upstream>> {
    let find = |name: &str| {
        generation.upstreams.get(name).cloned().or_else(|| {
            generation
                .upstreams
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, up)| up.clone())
        })
    };
    let block = (!explicit_port).then(|| find(host)).flatten();
    block.or_else(|| find(&format!("{host}:{port}")))
}

/// A one-off group of every address `host` resolves to.
async fn resolved(
    host: &str,
    port: u16,
    settings: &Settings,
    log: &(dyn Fn(String) + Sync),
) -> Result<Arc<Upstream>, u16> {
    let Some(resolver) = settings.resolver.as_deref() else {
        log(format!("no resolver defined to resolve {host}"));
        return Err(502);
    };
    match StubResolver::shared(resolver).resolve(host).await {
        Ok(ips) => {
            let addrs = ips
                .into_iter()
                .map(|ip| PeerAddr::Inet(std::net::SocketAddr::new(ip, port)))
                .collect();
            Ok(Upstream::one_off(host.to_string(), port, addrs, false))
        }
        Err(why) => {
            log(format!("{host} could not be resolved ({why})"));
            Err(502)
        }
    }
}
