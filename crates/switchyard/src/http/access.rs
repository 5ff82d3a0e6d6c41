//! The access phase of ngx_http_access_module: the location's `allow` /
//! `deny` rules decide the client (after realip), a denial is nginx's 403
//! with its error-log line.

use crate::config::access::{allowed, Client};
use crate::config::model::Settings;
use crate::observe::error_log;

use super::exchange::Exchange;

/// Whether `settings`' rules let the exchange's client through; logs
/// nginx's "access forbidden by rule" when they do not.
pub fn check(settings: &Settings, ex: &Exchange) -> bool {
    if settings.access.is_empty() || allowed(&settings.access, Client::Ip(ex.client_addr)) {
        return true;
    }
    error_log::error(
        Some(ex.conn.id),
        &format!(
            "access forbidden by rule{}",
            super::proxy::log_context(ex, None)
        ),
    );
    false
}
