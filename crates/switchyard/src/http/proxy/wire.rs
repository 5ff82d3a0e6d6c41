//! HTTP/1.x on an upstream connection, without a client library in the way:
//! the request head as nginx writes it, and the response head parsed with
//! httparse into `http` types. The connection is driven inline by the
//! request's own task (no connection task, no channel between the two),
//! which is most of what a proxied request costs in user space.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Version};

pub use crate::http::h1::has_token;
use crate::http::h1::{header_map, header_offsets, trim, write_header_line};

/// The most header lines a response head may have (hyper's limit too).
const MAX_HEADERS: usize = 128;

/// How the response body is delimited (RFC 9112, section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: HEAD, 1xx, 204, 304.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the upstream closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// The status.
    pub status: StatusCode,
    /// The header lines, in order.
    pub headers: HeaderMap,
    /// How the body that follows is delimited.
    pub framing: Framing,
    /// Whether the upstream allows another request on this connection
    /// once the body is read (nginx keeps only HTTP/1.1 connections that
    /// did not say `Connection: close`, with a delimited body).
    pub keep_alive: bool,
}

/// Why a response head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Not HTTP, or a header line that cannot be one.
    #[error("upstream sent invalid header")]
    Invalid,
    /// The head did not fit in the buffer.
    #[error("upstream sent too big header")]
    TooBig,
}

/// Appends the request head: request line, headers (names in their usual
/// case, `Content-Type`, as nginx writes its own), blank line.
pub fn write_request_head(
    out: &mut Vec<u8>,
    method: &Method,
    uri: &str,
    http11: bool,
    headers: &HeaderMap,
    chunked: bool,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(uri.as_bytes());
    out.extend_from_slice(if http11 {
        b" HTTP/1.1\r\n"
    } else {
        b" HTTP/1.0\r\n"
    });
    for (name, value) in headers {
        write_header_line(out, name, value);
    }
    if chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Parses a response head at the start of `buffer`. On success the head's
/// bytes are removed from `buffer` (what follows is body). `Ok(None)`: the
/// head is not complete yet. Interim 1xx responses other than 101 are
/// skipped, as nginx skips them.
pub fn parse_response_head(
    buffer: &mut BytesMut,
    request_method: &Method,
    limit: usize,
) -> Result<Option<ResponseHead>, HeadError> {
    loop {
        let Some(head) = parse_one(buffer, request_method, limit)? else {
            return Ok(None);
        };
        let interim =
            head.status.is_informational() && head.status != StatusCode::SWITCHING_PROTOCOLS;
        if !interim {
            return Ok(Some(head));
        }
    }
}

fn parse_one(
    buffer: &mut BytesMut,
    request_method: &Method,
    limit: usize,
) -> Result<Option<ResponseHead>, HeadError> {
    let (length, status, version, lines) = {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut slots);
        let length = match response.parse(buffer) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buffer.len() >= limit => {
                return Err(HeadError::TooBig)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(HeadError::Invalid),
        };
        let status = response
            .code
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or(HeadError::Invalid)?;
        let version = match response.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        let lines = header_offsets(buffer, response.headers).ok_or(HeadError::Invalid)?;
        (length, status, version, lines)
    };
    let head: Bytes = buffer.split_to(length).freeze();
    let headers = header_map(&head, lines).ok_or(HeadError::Invalid)?;
    let framing = framing(&headers, status, request_method)?;
    let close_asked = headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| has_token(v.as_bytes(), b"close"));
    let both_lengths = headers.contains_key(header::TRANSFER_ENCODING)
        && headers.contains_key(header::CONTENT_LENGTH);
    let keep_alive = version == Version::HTTP_11
        && !close_asked
        && !both_lengths
        && framing != Framing::Close
        && status != StatusCode::SWITCHING_PROTOCOLS;
    Ok(Some(ResponseHead {
        status,
        headers,
        framing,
        keep_alive,
    }))
}

fn framing(headers: &HeaderMap, status: StatusCode, method: &Method) -> Result<Framing, HeadError> {
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    let codings: Vec<&HeaderValue> = headers.get_all(header::TRANSFER_ENCODING).iter().collect();
    if let Some(last) = codings.last() {
        // Chunked must be the final coding; anything else runs to the close.
        let last_coding = last
            .as_bytes()
            .rsplit(|&b| b == b',')
            .next()
            .map(trim)
            .unwrap_or_default();
        return Ok(if last_coding.eq_ignore_ascii_case(b"chunked") {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    let mut length: Option<u64> = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let part = trim(part);
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) || part.len() > 19 {
                return Err(HeadError::Invalid);
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(HeadError::Invalid)?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::Invalid);
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, method: Method) -> Result<Option<ResponseHead>, HeadError> {
        let mut buffer = BytesMut::from(text.as_bytes());
        parse_response_head(&mut buffer, &method, 64 * 1024)
    }

    #[test]
    fn writes_head_in_title_case() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("backend"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        let mut out = Vec::new();
        write_request_head(&mut out, &Method::GET, "/a?b", false, &headers, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /a?b HTTP/1.0\r\nHost: backend\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n"
        );
    }

    #[test]
    fn parses_length_and_keeps_rest() {
        let mut buffer =
            BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabcNEXT"[..]);
        let head = parse_response_head(&mut buffer, &Method::GET, 1024)
            .unwrap()
            .unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.framing, Framing::Length(3));
        assert!(head.keep_alive);
        assert_eq!(head.headers.get("x-a").unwrap(), "b");
        assert_eq!(&buffer[..], b"abcNEXT");
    }

    #[test]
    fn partial_head_waits_and_too_big_fails() {
        assert!(parse("HTTP/1.1 200 OK\r\nContent-Le", Method::GET)
            .unwrap()
            .is_none());
        let mut buffer = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX: aaaaaaaaaaaaaaaaaaaa"[..]);
        assert_eq!(
            parse_response_head(&mut buffer, &Method::GET, 16).unwrap_err(),
            HeadError::TooBig
        );
    }

    #[test]
    fn framing_rules() {
        let f = |t: &str, m: Method| parse(t, m).unwrap().unwrap();
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", Method::HEAD).framing,
            Framing::Empty
        );
        assert_eq!(
            f("HTTP/1.1 204 No Content\r\n\r\n", Method::GET).framing,
            Framing::Empty
        );
        assert_eq!(
            f(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
                Method::GET
            )
            .framing,
            Framing::Empty
        );
        let chunked = f(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            Method::GET,
        );
        assert_eq!(chunked.framing, Framing::Chunked);
        assert!(chunked.keep_alive);
        let both = f(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
            Method::GET,
        );
        assert_eq!(both.framing, Framing::Chunked);
        assert!(!both.keep_alive, "CL with TE: never reused");
        let close = f("HTTP/1.1 200 OK\r\n\r\n", Method::GET);
        assert_eq!(close.framing, Framing::Close);
        assert!(!close.keep_alive);
        assert!(!f("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", Method::GET).keep_alive);
        assert!(
            !f(
                "HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 1\r\n\r\n",
                Method::GET
            )
            .keep_alive
        );
        assert_eq!(
            f(
                "HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n",
                Method::GET
            )
            .framing,
            Framing::Length(7)
        );
    }

    #[test]
    fn refuses_bad_heads() {
        for text in [
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
            "HTTX/1.1 200 OK\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
        ] {
            assert_eq!(
                parse(text, Method::GET).unwrap_err(),
                HeadError::Invalid,
                "{text:?}"
            );
        }
    }

    #[test]
    fn skips_interim_but_not_101() {
        let head = parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", Method::POST)
            .unwrap()
            .unwrap();
        assert_eq!(head.status, StatusCode::CREATED);
        let up = parse(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(up.status, StatusCode::SWITCHING_PROTOCOLS);
        assert!(!up.keep_alive);
    }
}
