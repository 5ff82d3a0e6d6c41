//! Which upstream group a session's `proxy_pass` names: a fixed one, or
//! with variables the group named by the value, else a one-peer group for
//! an `address:port` value (ngx_stream_proxy_eval and the lookup in
//! ngx_stream_proxy_handler).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::vars::Session;
use crate::config::model::{ProxyTarget, StreamServer};
use crate::http::generation::Generation;
use crate::observe::error_log;
use crate::upstream::stub_dns::{ResolveError, StubResolver};
use crate::upstream::{PeerAddr, Upstream};
use crate::vars::Template;

/// Why no group could be found; the session ends with 500.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TargetError {
    /// The fixed group is missing (cannot happen for a loaded config).
    #[error("upstream \"{0}\" not found")]
    Missing(String),
    /// The value is not `address:port` (nginx's parse_url words).
    #[error("{0}")]
    Invalid(String),
    /// A host name, and no `resolver`.
    #[error("no resolver defined to resolve {0}")]
    NoResolver(String),
    /// The resolver found no address for the host.
    #[error("{0} could not be resolved ({1})")]
    Unresolved(String, ResolveError),
}

/// The group for `target`.
pub(crate) fn fixed(
    generation: &Generation,
    target: &ProxyTarget,
) -> Result<Arc<Upstream>, TargetError> {
    let name = match target {
        ProxyTarget::Upstream(name) => name,
        ProxyTarget::Implicit(up) => &up.name,
    };
    generation
        .stream
        .upstreams
        .get(name)
        .cloned()
        .ok_or_else(|| TargetError::Missing(name.clone()))
}

/// The group for a `proxy_pass` with variables, evaluated for `session`:
/// a group of that host (and port), else an address or socket as it is,
/// else the name resolved with the server's `resolver`.
pub(crate) async fn evaluated(
    session: &Session,
    server: &StreamServer,
    generation: &Generation,
    template: &Template,
) -> Result<Arc<Upstream>, TargetError> {
    let value = template.render(session);
    if let Some(path) = value.strip_prefix("unix:") {
        let path = crate::config::upstream::unix_path(path)
            .map_err(|e| TargetError::Invalid(format!("{e} in upstream \"{value}\"")))?;
        let addr = PeerAddr::Unix(Arc::from(std::path::Path::new(path)));
        return Ok(Upstream::one_off(addr.to_string(), 0, vec![addr], true));
    }
    let (host, port, has_port) =
        crate::config::upstream::split_host_port(&value, 0).map_err(TargetError::Invalid)?;
    let named = if has_port {
        format!("{host}:{port}")
    } else {
        host.clone()
    };
    if let Some(up) = generation
        .stream
        .upstreams
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&named))
        .map(|(_, up)| up.clone())
    {
        return Ok(up);
    }
    if !has_port {
        return Err(TargetError::Invalid(format!(
            "no port in upstream \"{host}\""
        )));
    }
    let addrs = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => {
            let Some(resolver) = server.resolver.as_deref() else {
                return Err(TargetError::NoResolver(host));
            };
            StubResolver::shared(resolver)
                .resolve(&host)
                .await
                .map_err(|e| TargetError::Unresolved(host.clone(), e))?
        }
    };
    let peers = addrs
        .into_iter()
        .map(|ip| PeerAddr::Inet(SocketAddr::new(ip, port)))
        .collect();
    Ok(Upstream::one_off(named, port, peers, true))
}

/// The group of `server`'s proxy handler, logging why there is none.
pub(crate) async fn upstream_for(
    session: &Session,
    server: &StreamServer,
    generation: &Generation,
) -> Option<Arc<Upstream>> {
    use crate::config::model::StreamHandler;
    let found = match &server.handler {
        StreamHandler::Proxy(target) => fixed(generation, target),
        StreamHandler::ProxyVars(template) => {
            evaluated(session, server, generation, template).await
        }
        _ => return None,
    };
    match found {
        Ok(up) => Some(up),
        Err(e) => {
            error_log::error(Some(session.id), &format!("{e}{}", session.context()));
            None
        }
    }
}
