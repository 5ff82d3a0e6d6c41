//! The request as it goes up: URI, method, headers and body, by nginx's
//! rules (`proxy_set_header` defaults, `proxy_pass` URI replacement,
//! `proxy_method`, `proxy_pass_request_headers`).

use http::header::{self, HeaderName, HeaderValue};
use http::HeaderMap;

use crate::config::model::{ProxyPass, Settings};
use crate::http::exchange::Exchange;
use crate::http::h1::HeaderCase;

/// Client request headers nginx never passes up as they are: its own
/// defaults replace them (`Host`, `Connection`, the body framing) or drop
/// them (`Keep-Alive`, `TE`, `Expect`, `Upgrade`).
const NOT_PASSED: [&str; 8] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "te",
    "expect",
    "upgrade",
];

/// The URI sent upstream: the client's URI as sent when `proxy_pass` has
/// no URI part; else the location prefix replaced by that part.
pub fn upstream_uri(pass: &ProxyPass, ex: &Exchange) -> String {
    if let (true, Some(uri)) = (pass.verbatim_uri, &pass.uri) {
        return uri.clone();
    }
    match (&pass.uri, &pass.location_prefix) {
        (Some(uri), Some(prefix)) if ex.uri.starts_with(prefix.as_str()) => {
            let mut out = uri.clone();
            out.push_str(&escape_path(&ex.uri[prefix.len()..]));
            if let Some(args) = &ex.args {
                out.push('?');
                out.push_str(args);
            }
            out
        }
        _ => ex.raw_uri.clone(),
    }
}

/// Re-escapes a decoded path the way nginx does before sending it up.
fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The headers sent upstream: `proxy_set_header` values first (nginx's
/// defaults included), then the body length, then the client's headers
/// that nginx passes; and how their names are spelled (the configuration's
/// spelling, then the client's).
pub fn build_headers(
    settings: &Settings,
    ex: &Exchange,
    client: &HeaderMap,
    client_case: Option<&HeaderCase>,
    body_len: Option<u64>,
) -> (HeaderMap, HeaderCase) {
    let mut headers = HeaderMap::with_capacity(client.len() + 4);
    let mut case = HeaderCase::default();
    // nginx (since 1.31.4) writes Host right after the request line,
    // wherever its proxy_set_header line is; an empty value over HTTP/1.1
    // is `$proxy_host`, since an http URI must have a host (RFC 9110 4.2.1).
    let is_host = |name: &str| name.eq_ignore_ascii_case("host");
    if let Some((name, value)) = settings.proxy_set_headers.iter().find(|(n, _)| is_host(n)) {
        let mut rendered = value.render(ex);
        if rendered.is_empty() && settings.proxy_http_version_11 {
            rendered.clone_from(&ex.proxy_host);
        }
        let value = HeaderValue::from_str(&rendered).ok();
        if let Some(v) = value.filter(|_| !rendered.is_empty()) {
            case.note(&header::HOST, name.as_bytes());
            headers.append(header::HOST, v);
        }
    }
    for (name, value) in &settings.proxy_set_headers {
        if is_host(name) {
            continue;
        }
        let rendered = value.render(ex);
        if rendered.is_empty() {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&rendered),
        ) {
            case.note(&n, name.as_bytes());
            headers.append(n, v);
        }
    }
    // The body's length goes right after them, where nginx's default
    // `Content-Length: $proxy_internal_body_length` is, before the
    // client's headers.
    if let Some(len) = body_len {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if let Some(client_case) = client_case.filter(|_| settings.proxy_pass_request_headers) {
        case.extend(client_case);
    }
    if settings.proxy_pass_request_headers {
        for (name, value) in client {
            let n = name.as_str();
            if NOT_PASSED.contains(&n)
                || settings
                    .proxy_set_headers
                    .iter()
                    .any(|(s, _)| s.eq_ignore_ascii_case(n))
            {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
    }
    (headers, case)
}
