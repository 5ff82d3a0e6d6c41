//! `expires` (ngx_http_headers_filter_module): `Expires` and
//! `Cache-Control: max-age` on responses of the statuses `add_header`
//! applies to, set before the `add_header` lines as nginx's filter sets
//! them; an upstream's `Expires` is replaced and its `Cache-Control` lines
//! become one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderValue};
use http::Response;

use crate::config::model::Expires;

use super::body::ResponseBody;

fn applies(status: u16) -> bool {
    matches!(
        status,
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

fn http_time(secs: i64) -> String {
    let at = if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH
    };
    httpdate::fmt_http_date(at)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Applies `expires` to `response`, as ngx_http_set_expires.
pub fn apply(expires: &Expires, response: &mut Response<ResponseBody>) {
    if *expires == Expires::Off || !applies(response.status().as_u16()) {
        return;
    }
    let (expires_value, cache_control) = match *expires {
        Expires::Off => return,
        Expires::Epoch => (
            "Thu, 01 Jan 1970 00:00:01 GMT".to_string(),
            "no-cache".to_string(),
        ),
        Expires::Max => (
            "Thu, 31 Dec 2037 23:55:55 GMT".to_string(),
            "max-age=315360000".to_string(),
        ),
        Expires::After { seconds, modified } => {
            let now = unix_now();
            if seconds == 0 && !modified {
                (http_time(now), "max-age=0".to_string())
            } else {
                let last_modified = response
                    .headers()
                    .get(header::LAST_MODIFIED)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| httpdate::parse_http_date(v).ok())
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs() as i64);
                let (at, max_age) = match last_modified.filter(|_| modified) {
                    Some(lm) => (lm + seconds, lm + seconds - now),
                    None => (now + seconds, seconds),
                };
                let cc = if seconds < 0 || max_age < 0 {
                    "no-cache".to_string()
                } else {
                    format!("max-age={max_age}")
                };
                (http_time(at), cc)
            }
        }
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&expires_value) {
        headers.insert(header::EXPIRES, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cache_control) {
        headers.insert(header::CACHE_CONTROL, v);
    }
}
