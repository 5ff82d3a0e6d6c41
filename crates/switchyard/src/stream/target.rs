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
use crate::upstream::Upstream;
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
    /// A host name, and no resolver (stream `resolver` is not supported yet).
    #[error("no resolver defined to resolve {0}")]
    NoResolver(String),
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

/// The group for a `proxy_pass` with variables, evaluated for `session`.
pub(crate) fn evaluated(
    session: &Session,
    generation: &Generation,
    template: &Template,
) -> Result<Arc<Upstream>, TargetError> {
    let value = template.render(session);
    if let Some(up) = generation.stream.upstreams.get(&value) {
        return Ok(up.clone());
    }
    let (host, port, has_port) =
        crate::config::upstream::split_host_port(&value, 0).map_err(TargetError::Invalid)?;
    let Ok(ip) = host.parse::<IpAddr>() else {
        return Err(TargetError::NoResolver(host));
    };
    if !has_port {
        return Err(TargetError::Invalid(format!(
            "no port in upstream \"{value}\""
        )));
    }
    let addr = SocketAddr::new(ip, port);
    Ok(Upstream::one_off(
        addr.to_string(),
        port,
        vec![addr.into()],
        true,
    ))
}

/// The group of `server`'s proxy handler, logging why there is none.
pub(crate) fn upstream_for(
    session: &Session,
    server: &StreamServer,
    generation: &Generation,
) -> Option<Arc<Upstream>> {
    use crate::config::model::StreamHandler;
    let found = match &server.handler {
        StreamHandler::Proxy(target) => fixed(generation, target),
        StreamHandler::ProxyVars(template) => evaluated(session, generation, template),
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
