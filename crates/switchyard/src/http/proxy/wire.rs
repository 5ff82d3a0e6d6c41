//! HTTP/1.x on an upstream connection, without a client library in the way:
//! the request head as nginx writes it, and the response head parsed by the
//! `h1` codec (nginx's checks of what a backend sends) into `http` types.
//! The connection is driven inline by the request's own task (no
//! connection task, no channel between the two), which is most of what a
//! proxied request costs in user space.

use ::h1::{Framing, ResponseError, ResponseLimits};
use bytes::BytesMut;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

pub use crate::http::h1::has_token;
use crate::http::h1::{write_header_line, HeaderCase};

/// Upstream headers nginx takes once: a repeated line is dropped with a
/// warning (`ngx_http_upstream_process_header_line` and its kin). Content-
/// Length and Transfer-Encoding are the codec's (a repeat is a 502). The
/// index is the header's slot for the first line's place; a `match`, not a
/// list search: every line of every upstream head is asked.
fn unique_slot(name: &str) -> Option<usize> {
    Some(match name {
        "status" => 0,
        "content-type" => 1,
        "date" => 2,
        "etag" => 3,
        "server" => 4,
        "location" => 5,
        "refresh" => 6,
        "x-accel-redirect" => 7,
        "expires" => 8,
        "last-modified" => 9,
        "x-accel-expires" => 10,
        "x-accel-limit-rate" => 11,
        _ => return None,
    })
}

/// How many names [`unique_slot`] knows.
const UNIQUE: usize = 12;

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// The status.
    pub status: StatusCode,
    /// The header lines, in order.
    pub headers: HeaderMap,
    /// The spelling of names that came in another case than the usual.
    pub case: HeaderCase,
    /// The reason phrase, as sent.
    pub reason: bytes::Bytes,
    /// Repeated lines of headers nginx keeps once (the first), dropped:
    /// nginx's warning for each, without its context.
    pub ignored: Vec<String>,
    /// How the body that follows is delimited.
    pub framing: Framing,
    /// Whether the upstream allows another request on this connection
    /// once the body is read (nginx keeps only HTTP/1.1 connections that
    /// did not say `Connection: close`, with a delimited body).
    pub keep_alive: bool,
}

/// Appends the request head: request line, headers (names as `case`
/// spells them: the client's and the configuration's spelling; else their
/// usual case, `Content-Type`, as nginx writes its own), blank line.
pub fn write_request_head(
    out: &mut Vec<u8>,
    method: &Method,
    uri: &str,
    http11: bool,
    headers: &HeaderMap,
    case: Option<&HeaderCase>,
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
        write_header_line(out, name, value, case);
    }
    if chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Parses a response head at the start of `buffer` (the `h1` codec's
/// rules: a duplicate or invalid Content-Length, an unknown
/// Transfer-Encoding, both of them, are refused in nginx's words). On
/// success the head's bytes are removed from `buffer` (what follows is
/// body). `Ok(None)`: the head is not complete yet. Interim 1xx responses
/// other than 101 are skipped, as nginx skips them.
pub fn parse_response_head(
    buffer: &mut BytesMut,
    request_method: &Method,
    limit: usize,
) -> Result<Option<ResponseHead>, ResponseError> {
    let limits = ResponseLimits {
        max_head: limit,
        ..ResponseLimits::default()
    };
    let Some(head) = ::h1::parse_response(buffer, &limits, request_method == Method::HEAD)? else {
        return Ok(None);
    };
    let status = StatusCode::from_u16(head.status).map_err(|_| ResponseError::Invalid)?;
    // The rest of the response path works on `http`'s map, which keeps
    // order and repeats but lower-cases names (their spelling goes in
    // `case`); the values still share the head's bytes.
    let mut headers = HeaderMap::with_capacity(head.headers.len());
    let mut case = HeaderCase::default();
    let mut ignored = Vec::new();
    // Where the first line of each unique header is, for the warning on a
    // repeat (formatted only then: repeats are rare, unique headers not).
    let mut firsts: [Option<usize>; UNIQUE] = [None; UNIQUE];
    for (index, line) in head.headers.iter().enumerate() {
        let name = HeaderName::from_bytes(line.name()).map_err(|_| ResponseError::Invalid)?;
        let value = HeaderValue::from_maybe_shared(line.value_bytes().clone())
            .map_err(|_| ResponseError::Invalid)?;
        if let Some(slot) = unique_slot(name.as_str()) {
            if let Some(first) = firsts[slot] {
                let previous = head.headers.iter().nth(first).map(|h| h.display_line());
                ignored.push(format!(
                    "upstream sent duplicate header line: \"{}\", previous value: \"{}\", ignored",
                    line.display_line(),
                    previous.unwrap_or_default(),
                ));
                continue;
            }
            firsts[slot] = Some(index);
        }
        case.note(&name, line.name());
        headers.append(name, value);
    }
    Ok(Some(ResponseHead {
        status,
        headers,
        case,
        reason: head.reason,
        ignored,
        framing: head.framing,
        keep_alive: head.keep_alive,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    use http::header;

    fn parse(text: &str, method: Method) -> Result<Option<ResponseHead>, ResponseError> {
        let mut buffer = BytesMut::from(text.as_bytes());
        parse_response_head(&mut buffer, &method, 64 * 1024)
    }

    #[test]
    fn writes_head_in_title_case_or_as_spelled() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("backend"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        headers.insert("sec-websocket-key", HeaderValue::from_static("k"));
        let mut case = HeaderCase::default();
        case.note(
            &HeaderName::from_static("sec-websocket-key"),
            b"Sec-WebSocket-Key",
        );
        let mut out = Vec::new();
        write_request_head(
            &mut out,
            &Method::GET,
            "/a?b",
            false,
            &headers,
            Some(&case),
            false,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /a?b HTTP/1.0\r\nHost: backend\r\nX-Forwarded-For: 1.2.3.4\r\nSec-WebSocket-Key: k\r\n\r\n"
        );
    }

    #[test]
    fn repeats_of_unique_headers_are_dropped_with_nginx_words() {
        let head = parse(
            "HTTP/1.1 200 OK\r\nExpires: foo\r\nSet-Cookie: a\r\nexpires: bar\r\nSet-Cookie: b\r\nContent-Length: 0\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        let expires: Vec<_> = head.headers.get_all(header::EXPIRES).iter().collect();
        assert_eq!(expires, ["foo"]);
        assert_eq!(head.headers.get_all(header::SET_COOKIE).iter().count(), 2);
        assert_eq!(
            head.ignored,
            ["upstream sent duplicate header line: \"expires: bar\", previous value: \"Expires: foo\", ignored"]
        );
    }

    #[test]
    fn each_unique_header_keeps_its_first_line_only() {
        for name in [
            "Status",
            "Content-Type",
            "Date",
            "ETag",
            "Server",
            "Location",
            "Refresh",
            "X-Accel-Redirect",
            "Expires",
            "Last-Modified",
            "X-Accel-Expires",
            "X-Accel-Limit-Rate",
        ] {
            let text = format!(
                "HTTP/1.1 200 OK\r\n{name}: 1\r\nX-Other: a\r\n{name}: 2\r\nX-Other: b\r\nContent-Length: 0\r\n\r\n"
            );
            let head = parse(&text, Method::GET).unwrap().unwrap();
            let kept: Vec<_> = head.headers.get_all(name).iter().collect();
            assert_eq!(kept, ["1"], "{name}");
            assert_eq!(head.headers.get_all("x-other").iter().count(), 2);
            assert_eq!(
                head.ignored,
                [format!("upstream sent duplicate header line: \"{name}: 2\", previous value: \"{name}: 1\", ignored")]
            );
        }
    }

    #[test]
    fn notes_the_backends_spelling() {
        let head = parse(
            "HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nContent-Length: 0\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            head.case.spelling(&header::SET_COOKIE),
            Some(&b"set-cookie"[..])
        );
        assert_eq!(head.case.spelling(&header::CONTENT_LENGTH), None);
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
            ResponseError::TooBig
        );
    }

    #[test]
    fn framing_comes_from_the_codec() {
        let f = |t: &str, m: Method| parse(t, m).unwrap().unwrap();
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", Method::HEAD).framing,
            Framing::None
        );
        assert_eq!(
            f(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
                Method::GET
            )
            .framing,
            Framing::None
        );
        let chunked = f(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            Method::GET,
        );
        assert_eq!(chunked.framing, Framing::Chunked);
        assert!(chunked.keep_alive);
        let close = f("HTTP/1.1 200 OK\r\n\r\n", Method::GET);
        assert_eq!(close.framing, Framing::UntilClose);
        assert!(!close.keep_alive);
    }

    #[test]
    fn refuses_bad_heads_in_nginx_words() {
        for (text, words) in [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "upstream sent duplicate header line: \"Content-Length: 2\", previous value: \"Content-Length: 1\"",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n",
                "upstream sent invalid \"Content-Length\" header: \"Content-Length: 7, 7\"",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                "upstream sent unknown \"Transfer-Encoding\": \"gzip, chunked\"",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
                "upstream sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time",
            ),
            ("HTTX/1.1 200 OK\r\n\r\n", "upstream sent invalid header"),
            ("HTTP/1.1 2000 OK\r\n\r\n", "upstream sent invalid header"),
            (
                "HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
                "upstream sent invalid header: \"Bad\\x20...\"",
            ),
        ] {
            assert_eq!(parse(text, Method::GET).unwrap_err().to_string(), words, "{text:?}");
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
