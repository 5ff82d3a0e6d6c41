//! `expires` (ngx_http_headers_filter_module): `Expires` and
//! `Cache-Control: max-age` on responses of the statuses `add_header`
//! applies to, set before the `add_header` lines as nginx's filter sets
//! them; an upstream's `Expires` is replaced and its `Cache-Control` lines
//! become one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderValue};
use http::Response;

use crate::config::model::Expires;
use crate::vars::VarSource;

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

/// Applies `expires` to `response`, as ngx_http_set_expires (a value with
/// variables read from `ex`).
pub fn apply(expires: &Expires, ex: &dyn VarSource, response: &mut Response<ResponseBody>) {
    if matches!(expires, Expires::Off) || !applies(response.status().as_u16()) {
        return;
    }
    let read;
    let expires = match expires {
        Expires::Variable { value, modified } => {
            match Expires::parse(&value.render(ex), *modified) {
                // nginx's filter goes on without the headers.
                Err(_) | Ok(Expires::Off) => return,
                Ok(e) => {
                    read = e;
                    &read
                }
            }
        }
        e => e,
    };
    let (expires_value, cache_control) = match *expires {
        Expires::Off | Expires::Variable { .. } => return,
        Expires::Epoch => (
            "Thu, 01 Jan 1970 00:00:01 GMT".to_string(),
            "no-cache".to_string(),
        ),
        Expires::Max => (
            "Thu, 31 Dec 2037 23:55:55 GMT".to_string(),
            "max-age=315360000".to_string(),
        ),
        Expires::Daily { at } => {
            let now = unix_now();
            let next = next_time(now, at).unwrap_or(now);
            let max_age = next - now;
            let cc = if max_age < 0 {
                "no-cache".to_string()
            } else {
                format!("max-age={max_age}")
            };
            (http_time(next), cc)
        }
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

/// The next moment after `now` that the local clock shows `at` seconds
/// past midnight: today's, or tomorrow's when today's has passed, as
/// nginx's ngx_next_time finds it (by the C library's local time, so that
/// a change of daylight saving time falls as it does for nginx).
fn next_time(now: i64, at: i64) -> Option<i64> {
    let now_t = now as libc::time_t;
    // SAFETY: localtime_r and mktime only read and write the `tm` given
    // them, which lives on this stack frame; all-zero is a valid `tm`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&now_t, &mut tm) }.is_null() {
        return None;
    }
    tm.tm_hour = (at / 3600) as libc::c_int;
    tm.tm_min = (at % 3600 / 60) as libc::c_int;
    tm.tm_sec = (at % 60) as libc::c_int;
    let today = unsafe { libc::mktime(&mut tm) } as i64;
    if today == -1 {
        return None;
    }
    if today > now {
        return Some(today);
    }
    // mktime normalizes the 32nd of a month and the like.
    tm.tm_mday += 1;
    match unsafe { libc::mktime(&mut tm) } as i64 {
        -1 => None,
        tomorrow => Some(tomorrow),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_daily_time_is_within_a_day_and_at_that_time_of_day() {
        let now = unix_now();
        for at in [0, 1, 15 * 3600 + 30 * 60 + 33, 24 * 3600 - 1] {
            let next = next_time(now, at).expect("a local time");
            assert!(
                next > now && next <= now + 25 * 3600,
                "{at}: {next} vs {now}"
            );
            let next_t = next as libc::time_t;
            let mut tm: libc::tm = unsafe { std::mem::zeroed() };
            assert!(!unsafe { libc::localtime_r(&next_t, &mut tm) }.is_null());
            let seconds =
                i64::from(tm.tm_hour) * 3600 + i64::from(tm.tm_min) * 60 + i64::from(tm.tm_sec);
            assert_eq!(seconds, at);
        }
    }

    #[test]
    fn values_read_as_nginx_reads_them() {
        assert!(matches!(
            Expires::parse("@15h30m33s", false),
            Ok(Expires::Daily { at: 55833 })
        ));
        assert_eq!(
            Expires::parse("@15h", true).unwrap_err().to_string(),
            "daily time cannot be used with \"modified\" parameter"
        );
        assert_eq!(
            Expires::parse("@25h", false).unwrap_err().to_string(),
            "daily time value must be less than 24 hours"
        );
        assert!(matches!(
            Expires::parse("-1h", true),
            Ok(Expires::After {
                seconds: -3600,
                modified: true
            })
        ));
        assert!(matches!(Expires::parse("epoch", false), Ok(Expires::Epoch)));
        assert!(Expires::parse("epoch", true).is_err());
    }
}
