//! nginx's internal redirects: the `uri_changes` budget that rewrite
//! cycles and internal redirects share, redirects to a URI and to a named
//! location.

use std::sync::Arc;

use crate::config::model::{LocationConfig, LocationMatch, ServerConfig};
use crate::observe::error_log;

use super::exchange::Exchange;
use super::proxy;
use super::route::normalize_uri;

/// nginx's `NGX_HTTP_MAX_URI_CHANGES` + 1: rewrite cycles and internal
/// redirects share it; the one that brings it to 0 answers 500.
pub(super) const URI_CHANGES: u8 = 11;

/// nginx's `r->uri_changes`: what is left of [`URI_CHANGES`].
pub(super) struct Changes(pub(super) u8);

impl Changes {
    /// Counts one change; `false` (and nginx's error-log line, `what`
    /// being its tail) when the request cycled.
    pub(super) fn take(&mut self, ex: &Exchange, what: &str) -> bool {
        self.0 = self.0.saturating_sub(1);
        if self.0 > 0 {
            return true;
        }
        error_log::error(
            Some(ex.conn.id),
            &format!(
                "rewrite or internal redirection cycle {what}{}",
                proxy::log_context(ex, None)
            ),
        );
        false
    }
}

/// nginx's `ngx_http_named_location`: counts the change and finds
/// `location @name`; `Err` (after nginx's error-log line) means 500.
pub(super) fn named_location(
    server: &ServerConfig,
    name: &str,
    ex: &mut Exchange,
    changes: &mut Changes,
) -> Result<Arc<LocationConfig>, ()> {
    if !changes.take(ex, &format!("while redirect to named location \"{name}\"")) {
        return Err(());
    }
    ex.internal = true;
    let found = server
        .named_locations
        .iter()
        .find(|l| matches!(&l.matcher, LocationMatch::Named(n) if n == name));
    match found {
        Some(l) => Ok(l.clone()),
        None => {
            error_log::error(
                Some(ex.conn.id),
                &format!(
                    "could not find named location \"{name}\"{}",
                    proxy::log_context(ex, None)
                ),
            );
            Err(())
        }
    }
}

/// Sets `$uri` and `$args` for an internal redirect to `target`.
pub(super) fn internal_uri(ex: &mut Exchange, target: &str) {
    ex.internal = true;
    let (path, args) = match target.split_once('?') {
        Some((p, a)) => (p, Some(a.to_string())),
        None => (target, None),
    };
    ex.uri = normalize_uri(path).unwrap_or_else(|| path.to_string());
    if args.is_some() {
        ex.args = args;
    }
}
