//! An HTTP/2 stream's head made into the request the handler takes, with
//! the checks nginx makes before it processes a request
//! (ngx_http_v2_run_request... in ngx_http_v2.c): `:authority` stands in
//! for a missing Host (and must agree with one that is there), `cookie`
//! fields are joined with "; ", and a request nginx refuses is answered
//! here with nginx's status.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};

use super::body::H2Body;
use super::Protocol;
use crate::http::h1::body::RequestBody;

/// Why a stream's head is refused, as nginx words it in its log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Answered with this status (nginx finalizes the request with it).
    #[error("{message}")]
    Status {
        /// The status sent.
        status: u16,
        /// nginx's log line.
        message: std::borrow::Cow<'static, str>,
    },
    /// A header field longer than `large_client_header_buffers`' size:
    /// nginx ends the connection with ENHANCE_YOUR_CALM.
    #[error("client sent too large header field")]
    FieldTooLarge,
    /// Header fields longer together than `large_client_header_buffers`'
    /// number times size: nginx ends the connection the same way.
    #[error("client sent too large header")]
    HeaderTooLarge,
}

/// `large_client_header_buffers number size`, as nginx applies it to an
/// HTTP/2 head: no field over `size`, all of them within `number * size`;
/// and which names it takes.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// The longest field (name and value).
    pub field: usize,
    /// The whole head.
    pub total: usize,
    /// `ignore_invalid_headers`: fields with names nginx takes as invalid
    /// are left out.
    pub ignore_invalid_headers: bool,
    /// `underscores_in_headers`: `_` is valid in a name.
    pub underscores_in_headers: bool,
}

fn status(status: u16, message: impl Into<std::borrow::Cow<'static, str>>) -> Refusal {
    Refusal::Status {
        status,
        message: message.into(),
    }
}

/// The request `head` and its body stream make, for a connection over TLS
/// or not, within `large_client_header_buffers`; `ignored` is told of each
/// field left out for its name.
pub fn convert(
    head: Request<h2::RecvStream>,
    tls: bool,
    limits: HeadLimits,
    body_window: u32,
    ignored: impl FnMut(&HeaderName),
) -> Result<Request<RequestBody>, Refusal> {
    let (mut parts, recv) = head.into_parts();
    // The pseudo-headers count as nginx counts them (h2 hands them over
    // parsed: their names and values' lengths are what it decoded).
    let mut total = ":method".len() + parts.method.as_str().len() + ":path".len();
    total += parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    total += parts
        .uri
        .scheme_str()
        .map_or(0, |s| ":scheme".len() + s.len());
    total += parts
        .uri
        .authority()
        .map_or(0, |a| ":authority".len() + a.as_str().len());
    for (name, value) in &parts.headers {
        let field = name.as_str().len() + value.len();
        if field > limits.field {
            return Err(Refusal::FieldTooLarge);
        }
        total += field;
    }
    if total > limits.total {
        return Err(Refusal::HeaderTooLarge);
    }
    if limits.ignore_invalid_headers {
        drop_invalid_names(&mut parts.headers, limits.underscores_in_headers, ignored);
    }
    join_cookies(&mut parts.headers);
    if parts.headers.contains_key(header::UPGRADE) {
        return Err(status(400, "client sent \"Upgrade\" header"));
    }
    let te = parts.headers.get_all(header::TE);
    let mut te_values = te.iter();
    if let Some(first) = te_values.next() {
        if te_values.next().is_some() || !first.as_bytes().eq_ignore_ascii_case(b"trailers") {
            return Err(status(400, "client sent invalid \"TE\" header"));
        }
    }
    // The headers nginx takes once only, as over HTTP/1 (a map with as
    // many values as names has no repeat at all).
    if parts.headers.len() > parts.headers.keys_len() {
        if let Some(refusal) = repeated(&parts.headers, "host", "host header") {
            return Err(refusal);
        }
        for name in ::h1::UNIQUE_REQUEST_HEADERS {
            if let Some(refusal) = repeated(&parts.headers, name, "header line") {
                return Err(refusal);
            }
        }
    }
    let authority = parts.uri.authority().map(|a| a.as_str().to_string());
    match (&authority, parts.headers.get(header::HOST)) {
        (None, None) => {
            return Err(status(
                400,
                "client sent neither \":authority\" nor \"Host\" header",
            ))
        }
        (Some(a), Some(host)) if a.as_bytes() != host.as_bytes() => {
            return Err(status(
                400,
                "client sent \":authority\" and \"Host\" headers with different values",
            ))
        }
        (Some(a), None) => {
            // nginx makes a Host of `:authority`, for $http_host.
            let value = HeaderValue::from_str(a)
                .map_err(|_| status(400, "client sent invalid host header"))?;
            parts.headers.insert(header::HOST, value);
        }
        _ => {}
    }
    if parts.method == Method::CONNECT {
        return Err(status(405, "client sent CONNECT method"));
    }
    if parts.method == Method::TRACE {
        return Err(status(405, "client sent TRACE method"));
    }
    // The target as an HTTP/1.1 origin-form request would carry it: the
    // host is the Host header's now, as nginx takes `:authority`.
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    parts.uri = Uri::try_from(path).map_err(|_| status(400, "client sent invalid request"))?;
    let declared = match parts.headers.get(header::CONTENT_LENGTH) {
        Some(v) => Some(
            ::h1::content_length(v.as_bytes())
                .map_err(|_| status(400, "client sent invalid \"Content-Length\" header"))?,
        ),
        None => None,
    };
    if declared.is_some_and(|n| n > 0) && recv.is_end_stream() {
        return Err(status(400, "client prematurely closed stream"));
    }
    parts.version = Version::HTTP_2;
    parts.extensions.insert(Protocol { tls });
    let body = if recv.is_end_stream() {
        RequestBody::Empty
    } else {
        RequestBody::H2(H2Body::new(recv, declared, body_window))
    };
    Ok(Request::from_parts(parts, body))
}

/// nginx's 400 for a second `name` field, if there is one: "client sent
/// duplicate {what}: ..., previous value: ...".
fn repeated(headers: &HeaderMap, name: &str, what: &str) -> Option<Refusal> {
    let mut values = headers.get_all(name).iter();
    let (previous, line) = (values.next()?, values.next()?);
    Some(status(
        400,
        format!(
            "client sent duplicate {what}: \"{name}: {}\", previous value: \"{name}: {}\"",
            String::from_utf8_lossy(line.as_bytes()),
            String::from_utf8_lossy(previous.as_bytes())
        ),
    ))
}

/// Leaves out the fields whose names nginx's `ngx_http_v2_validate_header`
/// takes as invalid: other than lower-case letters, digits and `-` (and `_`
/// with `underscores_in_headers`). h2 has refused the names nginx refuses
/// outright, and they still counted towards the limits, as in nginx.
fn drop_invalid_names(
    headers: &mut HeaderMap,
    underscores: bool,
    mut ignored: impl FnMut(&HeaderName),
) {
    let valid = |name: &HeaderName| {
        name.as_str().bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (b == b'_' && underscores)
        })
    };
    if headers.keys().all(valid) {
        return;
    }
    let invalid: Vec<HeaderName> = headers.keys().filter(|n| !valid(n)).cloned().collect();
    for name in invalid {
        ignored(&name);
        headers.remove(&name);
    }
}

/// nginx joins the `cookie` fields of an HTTP/2 request (HTTP/2 lets a
/// client split them, RFC 9113 8.2.3) into one header, with "; ".
fn join_cookies(headers: &mut HeaderMap) {
    let cookies: Vec<HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
    if cookies.len() < 2 {
        return;
    }
    let mut joined = Vec::new();
    for (i, c) in cookies.iter().enumerate() {
        if i > 0 {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(c.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(joined)) {
        headers.insert(header::COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_joined() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        join_cookies(&mut h);
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "a=1; b=2");
    }

    #[test]
    fn names_nginx_takes_as_invalid_are_left_out() {
        let mut h = HeaderMap::new();
        for name in ["x_foo", "x.foo", "referer", "x-ok-1"] {
            h.append(HeaderName::from_static(name), HeaderValue::from_static("v"));
        }
        let mut seen = Vec::new();
        drop_invalid_names(&mut h, false, |n| seen.push(n.to_string()));
        assert_eq!(seen, ["x_foo", "x.foo"]);
        assert_eq!(h.len(), 2);
        let mut h = HeaderMap::new();
        h.append(
            HeaderName::from_static("x_foo"),
            HeaderValue::from_static("v"),
        );
        drop_invalid_names(&mut h, true, |_| panic!("x_foo is valid"));
        assert_eq!(h.len(), 1);
    }
}
