//! Request-head rules that hyper does not enforce and nginx does: one
//! unambiguous body framing, one valid Host, nginx's header-size limits.
//!
//! hyper's parser already refuses what is malformed at the byte level
//! (obs-fold, NUL and other control bytes, space before the colon, a
//! `Transfer-Encoding` not ending in `chunked`, differing `Content-Length`s).
//! What it lets through but nginx refuses is checked here, after the head
//! is parsed and before anything is sent upstream. Each rule follows nginx
//! 1.22 (`ngx_http_parse.c`, `ngx_http_request.c`) unless its comment says
//! otherwise.

use http::header::{self, HeaderMap};
use http::request::Parts;
use http::{Method, Version};

/// Why a request was refused: the status to answer and nginx's error-log
/// words (logged at `info`, as nginx logs client errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// The status code (400, 414, 501).
    pub status: u16,
    /// nginx's message, e.g. `client sent invalid host header`.
    pub message: &'static str,
    /// The 400 is nginx's "Request Header Or Cookie Too Large" (its 494).
    pub header_too_large: bool,
}

const fn reject(status: u16, message: &'static str) -> Rejection {
    Rejection {
        status,
        message,
        header_too_large: false,
    }
}

/// The head-size limits of `large_client_header_buffers number size`: a
/// request line or one header line longer than `size` is refused, and so
/// is a head longer than `number * size` in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `size`: the longest request line or header line.
    pub line: usize,
    /// `number * size`: the longest head.
    pub total: usize,
}

impl Limits {
    /// From `large_client_header_buffers`'s (number, size).
    pub fn from_buffers((number, size): (u64, u64)) -> Limits {
        let line = usize::try_from(size).unwrap_or(usize::MAX);
        Limits {
            line,
            total: line.saturating_mul(usize::try_from(number).unwrap_or(usize::MAX)),
        }
    }
}

/// Checks a parsed request head; `Err` carries the status to answer.
/// After a rejection the connection must be closed: the body, if any,
/// was not read and its framing is not to be trusted.
pub fn check_request(parts: &Parts, limits: &Limits) -> Result<(), Rejection> {
    check_sizes(parts, limits)?;
    check_method(&parts.method)?;
    check_target(parts)?;
    check_host(parts)?;
    check_framing(&parts.headers, parts.version)?;
    Ok(())
}

/// nginx answers 414 for a request line that does not fit a large buffer
/// (a long method counts too) and 400 "Request Header Or Cookie Too Large"
/// for a header line that does not, or a head that fills them all.
fn check_sizes(parts: &Parts, limits: &Limits) -> Result<(), Rejection> {
    // "GET /x HTTP/1.1" plus its CRLF.
    let request_line = parts.method.as_str().len() + 1 + display_len(&parts.uri) + 1 + 8 + 2;
    if request_line > limits.line {
        return Err(reject(414, "client sent too long URI"));
    }
    let mut total = request_line;
    for (name, value) in &parts.headers {
        let line = name.as_str().len() + 2 + value.len() + 2;
        total += line;
        if line > limits.line || total > limits.total {
            return Err(Rejection {
                status: 400,
                message: "client sent too long header line",
                header_too_large: true,
            });
        }
    }
    Ok(())
}

/// The length of `value` as displayed, without building the string (this
/// runs on every request).
fn display_len(value: &impl std::fmt::Display) -> usize {
    struct Count(usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = std::fmt::write(&mut count, format_args!("{value}"));
    count.0
}

/// nginx's parser takes upper-case letters, `_` and `-` in a method.
fn check_method(method: &Method) -> Result<(), Rejection> {
    let ok = method
        .as_str()
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(reject(400, "client sent invalid method"))
    }
}

/// Origin form (`/path`) and absolute form (`http://host/path`) only: nginx
/// refuses the asterisk form (`OPTIONS *`) and the authority form, and a
/// `%00` anywhere in the path.
fn check_target(parts: &Parts) -> Result<(), Rejection> {
    let uri = &parts.uri;
    match uri.scheme_str() {
        None => {
            if !uri.path().starts_with('/') || uri.authority().is_some() {
                return Err(reject(400, "client sent invalid request"));
            }
        }
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {}
        Some(_) => return Err(reject(400, "client sent invalid request")),
    }
    let path = uri.path().as_bytes();
    if path.windows(3).any(|w| w == b"%00") {
        return Err(reject(400, "client sent invalid request"));
    }
    Ok(())
}

/// One Host, valid; HTTP/1.1 needs one unless the target is absolute.
fn check_host(parts: &Parts) -> Result<(), Rejection> {
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(reject(400, "client sent duplicate host header"));
    }
    match host {
        Some(value) => {
            if !valid_host(value.as_bytes()) {
                return Err(reject(400, "client sent invalid host header"));
            }
        }
        None => {
            if parts.version == Version::HTTP_11 && parts.uri.authority().is_none() {
                return Err(reject(
                    400,
                    "client sent HTTP/1.1 request without \"Host\" header",
                ));
            }
        }
    }
    if let Some(authority) = parts.uri.authority() {
        if !valid_host(authority.as_str().as_bytes()) {
            return Err(reject(400, "client sent invalid host in request line"));
        }
    }
    Ok(())
}

/// nginx's `ngx_http_validate_host`: not empty, no `/`, `\`, NUL or
/// control byte, no `..`, not starting with a dot; a `[v6]` literal is
/// taken as a whole. Also no spaces (nginx refuses them in the header line).
pub fn valid_host(host: &[u8]) -> bool {
    let host = ::h1::trim_ows(host);
    if host.is_empty() || host[0] == b'.' {
        return false;
    }
    let mut previous = 0u8;
    for &b in host {
        match b {
            b'.' if previous == b'.' => return false,
            b'/' | b'\\' | b' ' | b'\t' | 0x7f => return false,
            b if b < 0x20 => return false,
            _ => {}
        }
        previous = b;
    }
    true
}

/// One framing for the body, and only one: a single well-formed
/// `Content-Length`, or a single `Transfer-Encoding: chunked` on HTTP/1.1,
/// never both (nginx 1.22; hyper would drop the length and decode chunked).
fn check_framing(headers: &HeaderMap, version: Version) -> Result<(), Rejection> {
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let length = lengths.next();
    if lengths.next().is_some() {
        return Err(reject(
            400,
            "client sent duplicate header line: \"Content-Length\"",
        ));
    }
    if let Some(value) = length {
        // The one Content-Length rule, the codec's (both directions).
        if ::h1::content_length(value.as_bytes()).is_err() {
            return Err(reject(400, "client sent invalid \"Content-Length\" header"));
        }
    }
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter();
    let Some(coding) = codings.next() else {
        return Ok(());
    };
    if codings.next().is_some() {
        return Err(reject(
            400,
            "client sent duplicate header line: \"Transfer-Encoding\"",
        ));
    }
    if version == Version::HTTP_10 || version == Version::HTTP_09 {
        return Err(reject(
            400,
            "client sent HTTP/1.0 request with \"Transfer-Encoding\" header",
        ));
    }
    if length.is_some() {
        return Err(reject(
            400,
            "client sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time",
        ));
    }
    if !::h1::trim_ows(coding.as_bytes()).eq_ignore_ascii_case(b"chunked") {
        return Err(reject(501, "client sent unknown \"Transfer-Encoding\""));
    }
    Ok(())
}

/// nginx's page for a head too large: status 400, its own title.
pub fn header_too_large_page(server_tokens: bool) -> String {
    let signature = if server_tokens {
        format!("switchyard/{}", crate::VERSION)
    } else {
        "switchyard".to_string()
    };
    format!(
        "<html>\r\n<head><title>400 Request Header Or Cookie Too Large</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>Request Header Or Cookie Too Large</center>\r\n<hr><center>{signature}</center>\r\n</body>\r\n</html>\r\n"
    )
}

/// The response for a rejection, with nginx's `info` line in the error log
/// (`context` is the `, client: ...` tail).
pub fn refuse(
    rejection: &Rejection,
    conn_id: u64,
    context: &str,
    server_tokens: bool,
) -> http::Response<super::body::ResponseBody> {
    crate::observe::error_log::log(
        crate::observe::ErrorLevel::Info,
        Some(conn_id),
        &format!("{}{context}", rejection.message),
    );
    let mut response = super::respond::error(rejection.status, server_tokens);
    if rejection.header_too_large {
        *response.body_mut() = super::body::full(header_too_large_page(server_tokens));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(build: http::request::Builder) -> Parts {
        build.body(()).unwrap().into_parts().0
    }

    #[test]
    fn display_len_is_the_length_of_the_text() {
        for uri in ["/", "/a/b?c=d", "http://example.com:8080/x?y", "*"] {
            let uri: http::Uri = uri.parse().unwrap();
            assert_eq!(display_len(&uri), uri.to_string().len());
        }
    }

    const LIMITS: Limits = Limits {
        line: 8192,
        total: 32768,
    };

    #[test]
    fn hosts() {
        assert!(valid_host(b"example.com:80"));
        assert!(valid_host(b"[::1]:80"));
        for bad in [&b""[..], b"..", b".a", b"a/b", b"a b", b"a\\b", b"a..b"] {
            assert!(!valid_host(bad), "{bad:?}");
        }
    }

    #[test]
    fn framing_rules() {
        let p = parts(
            http::Request::post("/")
                .header("host", "x")
                .header("content-length", "3")
                .header("transfer-encoding", "chunked"),
        );
        assert_eq!(check_request(&p, &LIMITS).unwrap_err().status, 400);
        let p = parts(
            http::Request::post("/")
                .header("host", "x")
                .header("transfer-encoding", "gzip"),
        );
        assert_eq!(check_request(&p, &LIMITS).unwrap_err().status, 501);
        let p = parts(
            http::Request::post("/")
                .header("host", "x")
                .header("transfer-encoding", "\tChunked "),
        );
        assert!(check_request(&p, &LIMITS).is_ok());
    }

    #[test]
    fn host_and_target_rules() {
        let p = parts(http::Request::get("/"));
        assert_eq!(check_request(&p, &LIMITS).unwrap_err().status, 400);
        let p = parts(http::Request::get("/").version(Version::HTTP_10));
        assert!(check_request(&p, &LIMITS).is_ok());
        let p = parts(http::Request::get("http://x/a"));
        assert!(check_request(&p, &LIMITS).is_ok());
        let p = parts(http::Request::options("*").header("host", "x"));
        assert_eq!(check_request(&p, &LIMITS).unwrap_err().status, 400);
        let p = parts(http::Request::get("/a%00").header("host", "x"));
        assert_eq!(check_request(&p, &LIMITS).unwrap_err().status, 400);
    }

    #[test]
    fn sizes() {
        let limits = Limits::from_buffers((2, 100));
        let long = format!("/{}", "a".repeat(100));
        let p = parts(http::Request::get(long.as_str()).header("host", "x"));
        assert_eq!(check_request(&p, &limits).unwrap_err().status, 414);
        let p = parts(
            http::Request::get("/")
                .header("host", "x")
                .header("x", "v".repeat(100)),
        );
        let r = check_request(&p, &limits).unwrap_err();
        assert!(r.status == 400 && r.header_too_large);
    }
}
