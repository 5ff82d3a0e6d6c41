//! Request-head rules the codec leaves to the handler: the method's
//! letters, the request target's form, a valid Host. The codec (crates/h1)
//! has already refused, with nginx's statuses and words, what is malformed
//! at the byte level, too large, or framed more than one way.

use http::header;
use http::request::Parts;
use http::{Method, Version};

/// Why a request was refused: the status to answer and nginx's error-log
/// words (logged at `info`, as nginx logs client errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// The status code (400).
    pub status: u16,
    /// nginx's message, e.g. `client sent invalid host header`.
    pub message: &'static str,
}

const fn reject(status: u16, message: &'static str) -> Rejection {
    Rejection { status, message }
}

/// Checks a parsed request head; `Err` carries the status to answer.
/// After a rejection the connection must be closed: the body, if any,
/// was not read.
pub fn check_request(parts: &Parts) -> Result<(), Rejection> {
    check_method(&parts.method)?;
    check_target(parts)?;
    check_host(parts)?;
    // nginx's last checks of a head (`ngx_http_process_request_header`):
    // it does not tunnel (no `allow_connect`), and never echoes TRACE.
    if parts.method == Method::CONNECT {
        return Err(reject(405, "client sent CONNECT method"));
    }
    if parts.method == Method::TRACE {
        return Err(reject(405, "client sent TRACE method"));
    }
    Ok(())
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
    if parts.method == Method::CONNECT {
        // CONNECT takes the authority form (`host:port`) only.
        let authority_form = uri.scheme().is_none()
            && uri.authority().is_some_and(|a| a.port().is_some())
            && uri
                .path_and_query()
                .is_none_or(|p| p.as_str().is_empty() || p.as_str() == "/");
        return if authority_form {
            Ok(())
        } else {
            Err(reject(400, "client sent invalid request"))
        };
    }
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
    // A second Host line is the codec's refusal.
    match parts.headers.get(header::HOST) {
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

/// The bytes a host name may hold besides `.`, `:`, `[`, `]` and `%`
/// (letters, digits and `-_~!$&'()*+,;=`), as a table: the check runs over
/// every byte of every request's Host.
const HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        b += 1;
    }
    table
};

/// nginx's `ngx_http_validate_host`, state by state: a name of letters,
/// digits and RFC 3986's unreserved and sub-delim characters (no `..`), or
/// an `[IP-literal]` closed by its bracket, then optionally `:` and a port
/// of at most 65535; one trailing dot is allowed (and dropped), nothing
/// may be left empty.
pub fn valid_host(host: &[u8]) -> bool {
    #[derive(PartialEq)]
    enum State {
        Start,
        Name,
        Literal,
        LiteralEnd,
        Port,
    }
    let host = ::h1::trim_ows(host);
    let mut state = State::Start;
    let mut dot: Option<usize> = None;
    let mut host_len = host.len();
    let mut port: u32 = 0;
    let allowed = |b: u8| HOST_BYTES[usize::from(b)];
    for (i, &b) in host.iter().enumerate() {
        if state == State::Start {
            if b == b'[' {
                state = State::Literal;
                continue;
            }
            state = State::Name;
        }
        match state {
            State::Start => {}
            State::Name | State::Literal => match b {
                b'.' => {
                    if i > 0 && dot == Some(i - 1) {
                        return false;
                    }
                    dot = Some(i);
                }
                b':' if state == State::Name => {
                    host_len = i;
                    state = State::Port;
                }
                b':' => {}
                b']' if state == State::Literal => {
                    host_len = i + 1;
                    state = State::LiteralEnd;
                }
                b'%' if state == State::Name => {}
                b if allowed(b) => {}
                _ => return false,
            },
            State::LiteralEnd => {
                if b != b':' {
                    return false;
                }
                state = State::Port;
            }
            State::Port => {
                if !b.is_ascii_digit() {
                    return false;
                }
                port = port * 10 + u32::from(b - b'0');
                if port > 65535 {
                    return false;
                }
            }
        }
    }
    if state == State::Literal {
        return false;
    }
    if host_len > 0 && dot == Some(host_len - 1) {
        host_len -= 1;
    }
    host_len > 0
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(build: http::request::Builder) -> Parts {
        build.body(()).unwrap().into_parts().0
    }

    #[test]
    fn hosts() {
        assert!(valid_host(b"example.com:80"));
        assert!(valid_host(b"[::1]:80"));
        assert!(valid_host(b"example.com.:80"));
        assert!(valid_host(b"[::1]"));
        for bad in [
            &b""[..],
            b"..",
            b"a/b",
            b"a b",
            b"a\\b",
            b"a..b",
            b"example.com.:1.2",
            b"1.2.3.4:123456",
            b"1.2.3.4:9000:80",
            b"[::1].",
            b"[::1].:98",
            b"extra[::1]:98",
            b"[::1",
            b".",
        ] {
            assert!(!valid_host(bad), "{bad:?}");
        }
    }

    #[test]
    fn every_byte_nginx_allows_in_a_host_name_and_no_other() {
        // ngx_http_validate_host: these pass as part of a name; ".", ":",
        // "[", "]" and "%" have their own rules; anything else is a 400.
        let allowed =
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_~!$&'()*+,;=";
        for b in 0..=255u8 {
            if matches!(b, b'.' | b':' | b'[' | b']' | b'%') {
                continue;
            }
            let host = [b'a', b, b'z'];
            assert_eq!(valid_host(&host), allowed.contains(&b), "byte {b:#04x}");
        }
    }

    #[test]
    fn host_and_target_rules() {
        let p = parts(http::Request::get("/"));
        assert_eq!(check_request(&p).unwrap_err().status, 400);
        let p = parts(http::Request::get("/").version(Version::HTTP_10));
        assert!(check_request(&p).is_ok());
        let p = parts(http::Request::get("http://x/a"));
        assert!(check_request(&p).is_ok());
        let p = parts(http::Request::options("*").header("host", "x"));
        assert_eq!(check_request(&p).unwrap_err().status, 400);
        let p = parts(http::Request::get("/").method("TRACE").header("host", "x"));
        assert_eq!(check_request(&p).unwrap_err().status, 405);
        let p = parts(
            http::Request::get("localhost:8080")
                .method("CONNECT")
                .header("host", "x"),
        );
        assert_eq!(check_request(&p).unwrap_err().status, 405);
        let p = parts(
            http::Request::get("/")
                .method("CONNECT")
                .header("host", "x"),
        );
        assert_eq!(check_request(&p).unwrap_err().status, 400);
        let p = parts(http::Request::get("/a%00").header("host", "x"));
        assert_eq!(check_request(&p).unwrap_err().status, 400);
    }
}
