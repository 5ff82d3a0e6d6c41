//! Request heads the fast path serves: a strict subset of HTTP/1.1 that it
//! can answer exactly as hyper would. Everything else (HTTP/1.0, HEAD,
//! CONNECT, `Transfer-Encoding`, `Expect`, upgrades, odd bytes, long heads)
//! goes to hyper, with the bytes read so far.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName};
use http::request::Parts;
use http::{Method, Request, Uri, Version};

/// hyper's cap on header lines (more: its 431).
const MAX_HEADERS: usize = 100;

/// What the start of the read buffer holds.
#[derive(Debug)]
pub enum Head {
    /// A complete head the fast path serves; its bytes are taken from the
    /// buffer. `body` is the Content-Length (0: no body).
    Serve {
        /// Method, URI, version and headers.
        parts: Parts,
        /// The request body's length.
        body: u64,
    },
    /// Not complete yet.
    Partial,
    /// Not for the fast path: hand the connection to hyper. Holds the head's
    /// bytes if they were already taken from the buffer (they go first).
    Fallback(Option<Bytes>),
}

/// Parses the head at the start of `buffer`; `limit` caps a partial head.
pub fn parse(buffer: &mut BytesMut, limit: usize) -> Head {
    let (length, method, target, lines) = {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut slots);
        let length = match request.parse(buffer) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buffer.len() < limit => return Head::Partial,
            _ => return Head::Fallback(None),
        };
        if request.version != Some(1) {
            return Head::Fallback(None);
        }
        let Some(Ok(method)) = request.method.map(|m| Method::from_bytes(m.as_bytes())) else {
            return Head::Fallback(None);
        };
        if method == Method::HEAD || method == Method::CONNECT {
            return Head::Fallback(None);
        }
        let Some(path) = request.path else {
            return Head::Fallback(None);
        };
        let start = path.as_ptr() as usize - buffer.as_ptr() as usize;
        let target = start..start + path.len();
        let Some(lines) = super::header_offsets(buffer, request.headers) else {
            return Head::Fallback(None);
        };
        let hyper_handles = |name: &HeaderName| {
            name == header::TRANSFER_ENCODING
                || name == header::EXPECT
                || name == header::UPGRADE
                || name == header::TE
        };
        if lines.iter().any(|(name, _)| hyper_handles(name)) {
            return Head::Fallback(None);
        }
        (length, method, target, lines)
    };
    let head: Bytes = buffer.split_to(length).freeze();
    let Ok(uri) = Uri::from_maybe_shared(head.slice(target)) else {
        return Head::Fallback(Some(head));
    };
    let Some(headers) = super::header_map(&head, lines) else {
        return Head::Fallback(Some(head));
    };
    let Some(body) = body_length(&headers) else {
        return Head::Fallback(Some(head));
    };
    let upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| super::has_token(v.as_bytes(), b"upgrade"));
    if upgrade {
        return Head::Fallback(Some(head));
    }
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    parts.headers = headers;
    Head::Serve { parts, body }
}

/// The body's length: 0 without a `Content-Length`; `None` for more than
/// one, or one the codec's Content-Length rule refuses (the guard answers
/// those as nginx does, after the fallback).
fn body_length(headers: &HeaderMap) -> Option<u64> {
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let Some(value) = lengths.next() else {
        return Some(0);
    };
    if lengths.next().is_some() {
        return None;
    }
    ::h1::content_length(value.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> (Head, usize) {
        let mut buffer = BytesMut::from(text.as_bytes());
        let head = parse(&mut buffer, 8192);
        (head, buffer.len())
    }

    #[test]
    fn serves_plain_requests_and_keeps_what_follows() {
        let (head, left) =
            parse_str("POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nX-A: 1\r\nX-A: 2\r\n\r\nabcGET");
        let Head::Serve { parts, body } = head else {
            panic!("not served: {head:?}");
        };
        assert_eq!((parts.method.as_str(), body, left), ("POST", 3, 6));
        assert_eq!(parts.uri.path(), "/a");
        assert_eq!(parts.uri.query(), Some("b=1"));
        assert_eq!(parts.headers.get_all("x-a").iter().count(), 2);
    }

    #[test]
    fn partial_waits_until_the_limit() {
        assert!(matches!(parse_str("GET / HTTP/1.1\r\nHo").0, Head::Partial));
        let mut long = BytesMut::from(format!("GET /{} HTTP/1.1\r\n", "a".repeat(100)).as_bytes());
        assert!(matches!(parse(&mut long, 64), Head::Fallback(_)));
    }

    #[test]
    fn a_late_fallback_gives_back_every_byte() {
        let text = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab";
        let mut buffer = BytesMut::from(text.as_bytes());
        let Head::Fallback(taken) = parse(&mut buffer, 8192) else {
            panic!("served");
        };
        let mut all = taken.map(|t| t.to_vec()).unwrap_or_default();
        all.extend_from_slice(&buffer);
        assert_eq!(all, text.as_bytes());
    }

    #[test]
    fn leaves_the_unusual_to_hyper() {
        for text in [
            "GET / HTTP/1.0\r\n\r\n",
            "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
            "CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n",
            "G@T / HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            assert!(matches!(parse_str(text).0, Head::Fallback(_)), "{text:?}");
        }
        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        assert!(matches!(
            parse_str(&format!("GET / HTTP/1.1\r\n{many}\r\n")).0,
            Head::Fallback(_)
        ));
    }
}
