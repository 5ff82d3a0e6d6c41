//! A client's request head, read by the `h1` codec with nginx's rules and
//! turned into the `http::request::Parts` the handler works with. Every
//! request head of every client connection comes through here: HTTP/1.0
//! and 1.1, HEAD, chunked bodies, `Expect`, upgrades.

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Uri, Version};

use super::case::HeaderCase;

/// What the start of the read buffer holds.
#[derive(Debug)]
pub enum Head {
    /// A complete head; its bytes are taken from the buffer.
    Serve(Box<Served>),
    /// Not complete yet.
    Partial,
    /// A head nginx refuses: answer its status and close.
    Refuse(::h1::RequestError),
}

/// A request head to serve.
#[derive(Debug)]
pub struct Served {
    /// Method, URI, version and headers; the names' spelling as sent is in
    /// the extensions ([`HeaderCase`]).
    pub parts: Parts,
    /// How its body is delimited.
    pub body: BodyFraming,
    /// `Expect: 100-continue` on HTTP/1.1: a `100 Continue` is due when the
    /// body is first read, or before the response if it never was.
    pub expect_continue: bool,
    /// `Connection: upgrade` with an `Upgrade` header: the connection may
    /// become the client's side of a tunnel after a 101.
    pub upgrade: bool,
    /// Header lines left out for their names (`ignore_invalid_headers`),
    /// as nginx quotes them in its info line.
    pub ignored: Vec<bytes::Bytes>,
}

/// The bytes of a request's head as nginx counts them for
/// `$request_length` (from the method to the blank line that ends the
/// head); kept in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLength(pub u64);

/// A mark in a request's extensions: its head was already in the
/// connection's buffer when the request before it ended (nginx's
/// `r->pipeline`, `$pipe`). A unit value: marking takes no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pipelined;

/// How a request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Parses the head at the start of `buffer` under `limits`.
pub fn parse(buffer: &mut BytesMut, limits: &::h1::RequestLimits) -> Head {
    let head = match ::h1::parse_request(buffer, limits) {
        Ok(Some(head)) => head,
        Ok(None) => return Head::Partial,
        Err(e) => return Head::Refuse(e),
    };
    match into_parts(head) {
        Ok(served) => Head::Serve(Box::new(served)),
        Err(e) => Head::Refuse(e),
    }
}

fn into_parts(head: ::h1::RequestHead) -> Result<Served, ::h1::RequestError> {
    let invalid = || ::h1::RequestError::InvalidRequestLine;
    let method = Method::from_bytes(&head.method).map_err(|_| invalid())?;
    let uri = Uri::from_maybe_shared(head.target).map_err(|_| invalid())?;
    let version = match head.version {
        ::h1::Version::Http10 => Version::HTTP_10,
        ::h1::Version::Http11 => Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(head.headers.len());
    let mut case = HeaderCase::default();
    for line in &head.headers {
        let name = HeaderName::from_bytes(line.name()).map_err(|_| invalid_header(line))?;
        let value = HeaderValue::from_maybe_shared(line.value_bytes().clone())
            .map_err(|_| invalid_header(line))?;
        case.note(&name, line.name_bytes());
        headers.append(name, value);
    }
    let body = match head.framing {
        ::h1::Framing::Length(0) | ::h1::Framing::None | ::h1::Framing::UntilClose => {
            BodyFraming::None
        }
        ::h1::Framing::Length(n) => BodyFraming::Length(n),
        ::h1::Framing::Chunked => BodyFraming::Chunked,
    };
    // nginx answers `100 Continue` to HTTP/1.1 clients only, whenever the
    // body is read or discarded (even an empty one), and ignores any other
    // expectation (`ngx_http_test_expect`).
    let expect_continue = version == Version::HTTP_11
        && headers
            .get(header::EXPECT)
            .is_some_and(|v| ::h1::trim_ows(v.as_bytes()).eq_ignore_ascii_case(b"100-continue"));
    let upgrade = headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| super::has_token(v.as_bytes(), b"upgrade"));
    let length = HeadLength(head.length as u64);
    let ignored = head.ignored;
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    if !case.is_empty() {
        parts.extensions.insert(case);
    }
    parts.extensions.insert(length);
    Ok(Served {
        parts,
        body,
        expect_continue,
        upgrade,
        ignored,
    })
}

/// A header line the codec took but `http` cannot hold (a byte a header
/// value may not have): nginx's invalid-header refusal.
fn invalid_header(line: &::h1::Header) -> ::h1::RequestError {
    let name = String::from_utf8_lossy(line.name()).into_owned();
    ::h1::RequestError::InvalidHeader {
        line: name,
        byte: line
            .value()
            .iter()
            .copied()
            .find(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
            .unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> (Head, usize) {
        let mut buffer = BytesMut::from(text.as_bytes());
        let head = parse(&mut buffer, &::h1::RequestLimits::default());
        (head, buffer.len())
    }

    fn served(text: &str) -> (Served, usize) {
        match parse_str(text) {
            (Head::Serve(s), left) => (*s, left),
            (other, _) => panic!("not served: {other:?}"),
        }
    }

    #[test]
    fn serves_requests_and_keeps_what_follows() {
        let (s, left) = served(
            "POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nX-A: 1\r\nx-a: 2\r\n\r\nabcGET",
        );
        assert_eq!(
            (s.parts.method.as_str(), s.body, left),
            ("POST", BodyFraming::Length(3), 6)
        );
        assert_eq!(s.parts.uri.path(), "/a");
        assert_eq!(s.parts.uri.query(), Some("b=1"));
        assert_eq!(s.parts.headers.get_all("x-a").iter().count(), 2);
        assert!(!s.expect_continue && !s.upgrade);
        let head =
            "POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
        assert_eq!(
            s.parts.extensions.get::<HeadLength>(),
            Some(&HeadLength(head.len() as u64))
        );
    }

    #[test]
    fn keeps_the_spelling_of_names() {
        let (s, _) =
            served("GET / HTTP/1.1\r\nhost: x\r\nSec-WebSocket-Key: k\r\nX-Plain: 1\r\n\r\n");
        let case = s.parts.extensions.get::<HeaderCase>().expect("case noted");
        let name = |n: &str| HeaderName::from_bytes(n.as_bytes()).unwrap();
        assert_eq!(case.spelling(&name("host")), Some(&b"host"[..]));
        assert_eq!(
            case.spelling(&name("sec-websocket-key")),
            Some(&b"Sec-WebSocket-Key"[..])
        );
        assert_eq!(
            case.spelling(&name("x-plain")),
            None,
            "usual case: not noted"
        );
    }

    #[test]
    fn takes_what_the_old_fast_path_left_to_hyper() {
        let (s, _) = served("GET / HTTP/1.0\r\n\r\n");
        assert_eq!(s.parts.version, Version::HTTP_10);
        let (s, _) = served("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(s.parts.method, Method::HEAD);
        let (s, _) = served("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(s.body, BodyFraming::Chunked);
        let (s, _) = served(
            "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
        );
        assert!(s.expect_continue);
        let (s, _) = served("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
        assert!(!s.expect_continue, "HTTP/1.0 gets no 100");
        let (s, _) = served(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        );
        assert!(s.upgrade);
    }

    #[test]
    fn refuses_with_nginx_statuses() {
        let status = |text: &str| match parse_str(text).0 {
            Head::Refuse(e) => e.status(),
            other => panic!("{text:?}: {other:?}"),
        };
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n"),
            400
        );
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n"),
            400
        );
        assert_eq!(status("G@T / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
            501
        );
        assert_eq!(
            status(&format!(
                "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(70_000)
            )),
            414
        );
        assert!(matches!(parse_str("GET / HTTP/1.1\r\nHo").0, Head::Partial));
    }
}
