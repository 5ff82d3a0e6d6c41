//! `X-Accel-Redirect`: an upstream answers with a URI (or a named
//! location) instead of the content, and the request continues there as an
//! internal redirect, as nginx's `ngx_http_upstream_process_headers` does.
//! The few headers nginx keeps from that answer go on the final response.
//! Its sibling `X-Accel-Limit-Rate` sets the response's rate.

use http::header::{self, HeaderMap, HeaderName};

use crate::config::model::Settings;

/// The upstream headers nginx carries over an X-Accel-Redirect (those of
/// `ngx_http_upstream_headers_in` marked `redirect`); the first four
/// replace what the final response has, the others are added to it.
const CARRIED: [(HeaderName, bool); 6] = [
    (header::CONTENT_TYPE, true),
    (header::CACHE_CONTROL, true),
    (header::EXPIRES, true),
    (header::ACCEPT_RANGES, true),
    (header::SET_COOKIE, false),
    (header::CONTENT_DISPOSITION, false),
];

/// Where an upstream's X-Accel-Redirect sends the request.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// A URI, as the header gave it (escapes and arguments included).
    Uri(String),
    /// A named location (`@name`).
    Named(String),
    /// A URI nginx refuses (`..` segments, a NUL, an empty path): 404.
    Unsafe(String),
}

/// The names looked up in every proxied response: a `&str` would be
/// parsed into a name on each lookup.
const X_ACCEL_REDIRECT: HeaderName = HeaderName::from_static("x-accel-redirect");
const X_ACCEL_LIMIT_RATE: HeaderName = HeaderName::from_static("x-accel-limit-rate");

/// The redirect the upstream's headers ask for, unless `proxy_ignore_headers`
/// ignores it.
pub fn target(upstream: &HeaderMap, settings: &Settings) -> Option<Target> {
    if settings
        .proxy_ignore_headers
        .iter()
        .any(|h| h == "x-accel-redirect")
    {
        return None;
    }
    let value = upstream.get(&X_ACCEL_REDIRECT)?;
    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
    if value.is_empty() {
        return None;
    }
    Some(if value.starts_with('@') {
        Target::Named(value)
    } else if is_safe(value.as_bytes()) {
        Target::Uri(value)
    } else {
        Target::Unsafe(value)
    })
}

/// The rate an upstream's `X-Accel-Limit-Rate` sets (bytes per second, 0
/// for none), unless ignored; a value that is not a number is no rate, as
/// nginx's `ngx_atoi` makes it. It wins over `limit_rate`, here and after
/// an X-Accel-Redirect.
pub fn limit_rate(upstream: &HeaderMap, settings: &Settings) -> Option<u64> {
    if settings
        .proxy_ignore_headers
        .iter()
        .any(|h| h == "x-accel-limit-rate")
    {
        return None;
    }
    let value = upstream.get(&X_ACCEL_LIMIT_RATE)?.as_bytes();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// The headers of the upstream's answer that go on the final response.
pub fn carried(upstream: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, _) in &CARRIED {
        for value in upstream.get_all(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Puts `carried` on the final response's headers.
pub fn apply(carried: &HeaderMap, headers: &mut HeaderMap) {
    for (name, replaces) in &CARRIED {
        let mut values = carried.get_all(name).iter();
        let Some(first) = values.next() else {
            continue;
        };
        if *replaces {
            headers.insert(name.clone(), first.clone());
        } else {
            headers.append(name.clone(), first.clone());
        }
        for value in values {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// nginx's `ngx_http_parse_unsafe_uri`, byte for byte: no empty path, no
/// `..` segment (before and, when escaped, after unescaping), no NUL. Its
/// quirks included: the `/..` check looks past a `?` (so `/a/..?b` passes).
fn is_safe(uri: &[u8]) -> bool {
    if uri.is_empty() || uri[0] == b'?' || starts_with_dotdot(uri) {
        return false;
    }
    let mut quoted = false;
    let mut path_end = uri.len();
    for (i, &b) in uri.iter().enumerate() {
        match b {
            b'%' => quoted = true,
            b'?' => {
                path_end = i;
                break;
            }
            0 => return false,
            b'/' if dotdot_after(uri, i) => return false,
            _ => {}
        }
    }
    if !quoted {
        return true;
    }
    let path = unescape(&uri[..path_end]);
    if starts_with_dotdot(&path) {
        return false;
    }
    !path
        .iter()
        .enumerate()
        .any(|(i, &b)| b == 0 || (b == b'/' && dotdot_after(&path, i)))
}

/// `..` alone or followed by `/`.
fn starts_with_dotdot(p: &[u8]) -> bool {
    p.len() > 1 && p[0] == b'.' && p[1] == b'.' && (p.len() == 2 || p[2] == b'/')
}

/// Whether the `/` at `i` starts `/..` that ends there or goes on with `/`.
fn dotdot_after(p: &[u8], i: usize) -> bool {
    let rest = &p[i + 1..];
    rest.len() >= 2 && rest[0] == b'.' && rest[1] == b'.' && (rest.len() == 2 || rest[2] == b'/')
}

/// `%XX` decoded (nginx's `ngx_unescape_uri`); a `%` without two hex
/// digits stays as it is.
fn unescape(path: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%' {
            if let (Some(h), Some(l)) = (
                path.get(i + 1).copied().and_then(hex),
                path.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(path[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn unsafe_uris_as_nginx_judges_them() {
        for safe in [
            "/index.html",
            "/foo?bar",
            "/foo%20bar",
            "/a/..b",
            "/a/b..",
            "/.../x",
            "/a/..?b",
        ] {
            assert!(is_safe(safe.as_bytes()), "{safe}");
        }
        for bad in [
            "",
            "?x",
            "..",
            "../foo",
            "/foo/..",
            "/foo/../x",
            "/foo/.%2e",
            "/a%00b",
        ] {
            assert!(!is_safe(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn carried_headers_replace_or_join_the_final_ones() {
        let mut upstream = HeaderMap::new();
        upstream.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/blah"));
        upstream.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        upstream.insert("something", HeaderValue::from_static("other"));
        let carried = carried(&upstream);
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
        apply(&carried, &mut headers);
        assert_eq!(headers.get(header::CONTENT_TYPE).unwrap(), "text/blah");
        assert_eq!(headers.get_all(header::SET_COOKIE).iter().count(), 2);
        assert!(!headers.contains_key("something"));
    }
}
