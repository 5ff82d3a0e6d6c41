//! The access phase: ngx_http_access_module's `allow` / `deny` (after
//! realip), ngx_http_auth_basic_module, then ngx_http_auth_request_module
//! (nginx runs its access handlers in that order), combined as `satisfy` says
//! (nginx's ngx_http_core_access_phase): with `all` each must let the
//! client through, with `any` one is enough.

use std::sync::Arc;

use crate::config::access::decide;
use crate::config::model::{ServerConfig, Settings};
use crate::observe::error_log;

use super::exchange::Exchange;
use super::generation::Generation;

/// What one access handler says (nginx's return codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to check here (`NGX_DECLINED`).
    Declined,
    /// Let through (`NGX_OK`).
    Allow,
    /// Refused with this status (403, 401, or 500 for an error).
    Refuse(u16),
}

/// allow/deny: a denial is nginx's 403, logged only under `satisfy all`.
pub fn rules(settings: &Settings, ex: &Exchange) -> Verdict {
    if settings.access.is_empty() {
        return Verdict::Declined;
    }
    match decide(&settings.access, ex.client_addr) {
        None => Verdict::Declined,
        Some(true) => Verdict::Allow,
        Some(false) => {
            if !settings.auth.satisfy_any {
                error_log::error(
                    Some(ex.conn.id),
                    &format!(
                        "access forbidden by rule{}",
                        super::proxy::log_context(ex, None)
                    ),
                );
            }
            Verdict::Refuse(403)
        }
    }
}

/// The access phase: `Some(status)` refuses the request (a 401 carries
/// the challenges the exchange keeps). Internal redirects are checked
/// again, as nginx checks the main request in each location; subrequests
/// are not checked.
pub async fn check(
    settings: &Settings,
    ex: &mut Exchange,
    server: &Arc<ServerConfig>,
    generation: &Arc<Generation>,
) -> Option<u16> {
    if ex.subrequest {
        return None;
    }
    let mut access_code = None;
    for handler in 0..3 {
        let verdict = match handler {
            0 => rules(settings, ex),
            1 => super::auth_basic::check(settings, ex).await,
            _ => super::auth_request::check(settings, ex, server, generation).await,
        };
        match verdict {
            Verdict::Declined => continue,
            Verdict::Allow if settings.auth.satisfy_any => {
                // One is enough: a challenge an earlier handler set goes.
                ex.www_authenticate.clear();
                return None;
            }
            Verdict::Allow => continue,
            Verdict::Refuse(code @ (401 | 403)) if settings.auth.satisfy_any => {
                if access_code != Some(401) {
                    access_code = Some(code);
                }
            }
            Verdict::Refuse(code) => return Some(code),
        }
    }
    access_code
}
