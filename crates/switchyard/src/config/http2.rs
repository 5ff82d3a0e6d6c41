//! The HTTP/2 module's directives that need more than a value: the limits
//! nginx checks them against, and the obsolete ones nginx still accepts
//! with a warning (ngx_http_v2_module.c's `ngx_http_v2_obsolete`).

use nginx_conf::{Directive, Position};

use crate::observe::error_log::stderr_line;
use crate::observe::ErrorLevel;

/// The largest flow-control window HTTP/2 allows (RFC 9113, 6.9.1).
pub(crate) const MAX_WINDOW: u64 = (1 << 31) - 1;

/// The largest frame nginx sends (its NGX_HTTP_V2_MAX_FRAME_SIZE).
pub(crate) const MAX_FRAME_SIZE: u64 = (1 << 24) - 1;

/// Directives nginx made obsolete, with the one to use instead (`None`:
/// nothing replaces it, the directive is ignored).
const OBSOLETE: &[(&str, Option<&str>)] = &[
    ("http2_recv_timeout", Some("client_header_timeout")),
    ("http2_idle_timeout", Some("keepalive_timeout")),
    ("http2_max_requests", Some("keepalive_requests")),
    ("http2_max_field_size", Some("large_client_header_buffers")),
    ("http2_max_header_size", Some("large_client_header_buffers")),
    ("http2_max_concurrent_pushes", None),
    ("http2_push", None),
    ("http2_push_preload", None),
];

/// Whether `d` is an obsolete HTTP/2 directive: if so it is accepted with
/// nginx's warning and has no effect (its replacement already applies to
/// HTTP/2 connections, as in nginx).
pub(crate) fn obsolete(d: &Directive) -> bool {
    let Some((_, instead)) = OBSOLETE.iter().find(|(name, _)| *name == d.name) else {
        return false;
    };
    let message = match instead {
        Some(new) => format!(
            "the \"{}\" directive is obsolete, use the \"{new}\" directive instead in {}",
            d.name, d.position
        ),
        None => format!(
            "the \"{}\" directive is obsolete, ignored in {}",
            d.name, d.position
        ),
    };
    stderr_line(ErrorLevel::Warn, &message);
    true
}

/// `listen ... http2`: still honoured, with nginx's warning since 1.25.1.
pub(crate) fn listen_deprecated(at: &Position) {
    stderr_line(
        ErrorLevel::Warn,
        &format!(
            "the \"listen ... http2\" directive is deprecated, use the \"http2\" directive instead in {at}"
        ),
    );
}
