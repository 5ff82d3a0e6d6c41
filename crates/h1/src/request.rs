//! A client's request head, parsed with nginx's checks of what a client
//! may send.

use bytes::{Bytes, BytesMut};

use std::ops::Range;

#[cfg(test)]
use crate::framing::UNIQUE;
use crate::response::{headers_of, line_ranges, range_in};
use crate::{locate, request_framing, Framing, Header, Headers, RequestError, Version};

/// The limits a request head is held to (nginx's
/// `large_client_header_buffers number size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// `size`: the longest request line (else 414) or header line (else 494).
    pub line: usize,
    /// `number * size`: the longest head (else 494).
    pub total: usize,
    /// The most header lines (at most 256; else 494).
    pub max_headers: usize,
    /// nginx's `ignore_invalid_headers` (default on): a line whose name
    /// has other than letters, digits and `-` (and `_` with
    /// `underscores_in_headers`) is left out of [`RequestHead::headers`]
    /// and listed in [`RequestHead::ignored`]; off, such names are kept.
    pub ignore_invalid_headers: bool,
    /// nginx's `underscores_in_headers` (default off): `_` is valid in a
    /// name.
    pub underscores_in_headers: bool,
}

impl Default for RequestLimits {
    /// nginx's default `large_client_header_buffers 4 8k`, 100 lines.
    fn default() -> RequestLimits {
        RequestLimits {
            line: 8192,
            total: 4 * 8192,
            max_headers: 100,
            ignore_invalid_headers: true,
            underscores_in_headers: false,
        }
    }
}

/// A parsed request head; its parts share its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method, as sent.
    pub method: Bytes,
    /// The request target, as sent.
    pub target: Bytes,
    /// The version.
    pub version: Version,
    /// The header lines as they came, less the ignored ones.
    pub headers: Headers,
    /// Lines left out for their names (`ignore_invalid_headers`), each from
    /// its name to the end of its value, as nginx quotes them in its
    /// `client sent invalid header line` info line.
    pub ignored: Vec<Bytes>,
    /// How the body that follows is delimited.
    pub framing: Framing,
    /// The head's bytes from the method to the blank line that ends it,
    /// that line included: nginx's `request_length` of a head. Blank lines
    /// before the request line are taken from the buffer but not counted,
    /// as nginx skips them before it marks the request's start.
    pub length: usize,
}

/// nginx quotes at most this much of a too long header line.
const QUOTED: usize = 2048 - 300;

/// Parses the request head at the start of `buffer`; on success its bytes
/// are taken from `buffer` (what follows is body). `Ok(None)`: not
/// complete yet.
pub fn parse_request(
    buffer: &mut BytesMut,
    limits: &RequestLimits,
) -> Result<Option<RequestHead>, RequestError> {
    if buffer.is_empty() {
        return Ok(None);
    }
    // Only the first `total` bytes are ever looked at, as nginx reads a
    // head into buffers of that size: the outcome cannot depend on how
    // much more has arrived.
    let seen = &buffer[..buffer.len().min(limits.total)];
    check_line_lengths(seen, limits)?;
    let (length, method, target, version, lines, invalid) = {
        // Uninitialised slots: httparse writes only those it fills, and
        // initialising all of them costs more than the parse itself.
        let mut slots = crate::header_slots();
        let slots = &mut slots[..limits.max_headers.min(crate::MAX_HEADER_SLOTS)];
        let mut request = httparse::Request::new(&mut []);
        let length = match request.parse_with_uninit_headers(seen, slots) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if seen.len() >= limits.total => {
                return Err(RequestError::HeadTooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(RequestError::TooManyHeaders),
            // Whether `HTTP/2` is nginx's 505 or its 400 is told by the
            // whole version (`HTTP/2.0` or `HTTP/2x`): wait for the line end
            // (the line limit still bounds the wait).
            Err(httparse::Error::Version) if !first_line_ended(seen) => return Ok(None),
            Err(httparse::Error::Version) => return Err(version_error(seen)),
            Err(_) => {
                let fails = |prefix: &[u8]| {
                    let mut slots = [httparse::EMPTY_HEADER; crate::MAX_HEADER_SLOTS];
                    let slots = &mut slots[..limits.max_headers.min(crate::MAX_HEADER_SLOTS)];
                    httparse::Request::new(slots).parse(prefix).is_err()
                };
                return Err(match locate::locate(seen, fails) {
                    locate::Broken::Header(line, byte) => {
                        RequestError::InvalidHeader { line, byte }
                    }
                    locate::Broken::StartLine => RequestError::InvalidRequestLine,
                });
            }
        };
        let method = request
            .method
            .and_then(|m| range_in(buffer, m.as_bytes()))
            .ok_or(RequestError::InvalidRequestLine)?;
        let target = request
            .path
            .and_then(|p| range_in(buffer, p.as_bytes()))
            .ok_or(RequestError::InvalidRequestLine)?;
        let version = Version::from_minor(request.version.ok_or(RequestError::InvalidRequestLine)?);
        // Names are judged on httparse's slices, before the lines are
        // made: a head whose names are all valid (nearly every one) takes
        // the same path as without the check.
        // Names are judged on httparse's slices, before the lines are
        // made: a head whose names are all valid (nearly every one) is
        // made as it would be without the check.
        let invalid = limits.ignore_invalid_headers
            && request
                .headers
                .iter()
                .any(|h| !valid_name(h.name.as_bytes(), limits.underscores_in_headers));
        (
            length,
            method,
            target,
            version,
            line_ranges(buffer, request.headers),
            invalid,
        )
    };
    let counted = length - method.start;
    let head = buffer.split_to(length).freeze();
    let (headers, ignored) = if invalid {
        valid_lines(&head, lines, limits.underscores_in_headers)
    } else {
        (headers_of(&head, lines), Vec::new())
    };
    let absolute = head.slice(target.clone());
    let framing = match check_host(&headers, version, &absolute)
        .and_then(|()| request_framing(&headers, version))
    {
        Ok(framing) => framing,
        Err(e) => {
            // The refused head stays in the buffer, where the caller reads
            // its request line for the log (a copy, on this path alone).
            let mut back = BytesMut::from(&head[..]);
            back.unsplit(std::mem::take(buffer));
            *buffer = back;
            return Err(e);
        }
    };
    Ok(Some(RequestHead {
        method: head.slice(method),
        target: head.slice(target),
        version,
        headers,
        ignored,
        framing,
        length: counted,
    }))
}

/// The bytes nginx's `ngx_http_parse_header_line` takes in a valid name
/// (its `lowcase` table): letters, digits and `-`. httparse has already
/// refused what nginx refuses outright (controls, spaces, `:`), so what is
/// left to tell apart is the other token characters (`.`, `!`, `_`...).
static VALID_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric() || b == b'-' as usize;
        b += 1;
    }
    table
};

/// Whether nginx takes `name` as valid (`_` too with `underscores`).
fn valid_name(name: &[u8], underscores: bool) -> bool {
    name.iter()
        .all(|&b| VALID_NAME[usize::from(b)] || (underscores && b == b'_'))
}

/// The lines whose names nginx takes as valid, and the others as nginx
/// quotes them.
fn valid_lines(
    head: &Bytes,
    lines: Vec<(Range<usize>, Range<usize>)>,
    underscores: bool,
) -> (Headers, Vec<Bytes>) {
    let mut headers = Headers::with_capacity(lines.len());
    let mut ignored = Vec::new();
    for (name, value) in lines {
        if valid_name(head.get(name.clone()).unwrap_or_default(), underscores) {
            headers.push(Header::new(head.slice(name), head.slice(value)));
        } else {
            ignored.push(head.slice(name.start..value.end.max(name.end)));
        }
    }
    (headers, ignored)
}

/// Whether the request line has ended (its version can be judged whole).
fn first_line_ended(buffer: &[u8]) -> bool {
    buffer.contains(&b'\n')
}

/// A version httparse refused: a well-formed `HTTP/x.y` other than 1.x is
/// nginx's 505, anything else its 400.
fn version_error(buffer: &[u8]) -> RequestError {
    let line = buffer.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // nginx reads the target before the version: one that is neither a
    // path nor an absolute URI (`*` of `PRI * HTTP/2.0`) is its 400 first.
    let target = line.split(|&b| b == b' ').filter(|w| !w.is_empty()).nth(1);
    if target.is_some_and(|t| t[0] != b'/' && !t[0].is_ascii_alphabetic()) {
        return RequestError::InvalidRequestLine;
    }
    let token = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
    let Some(number) = token.strip_prefix(b"HTTP/") else {
        return RequestError::InvalidRequestLine;
    };
    let mut parts = number.split(|&b| b == b'.');
    let value = |p: Option<&[u8]>| {
        p.filter(|p| !p.is_empty() && p.len() <= 3 && p.iter().all(u8::is_ascii_digit))
            .map(|p| p.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')))
    };
    if let (Some(major), Some(_), None) = (value(parts.next()), value(parts.next()), parts.next()) {
        if major >= 2 {
            return RequestError::UnsupportedVersion;
        }
    }
    RequestError::InvalidRequestLine
}

/// nginx's line limits: a request line longer than `line` is 414, a header
/// line longer than it 494, whether or not the head is complete.
fn check_line_lengths(buffer: &[u8], limits: &RequestLimits) -> Result<(), RequestError> {
    let mut lines = buffer.split(|&b| b == b'\n');
    if lines.next().is_some_and(|l| l.len() > limits.line) {
        return Err(RequestError::RequestLineTooLong);
    }
    for line in lines {
        if line.is_empty() || line == b"\r" {
            break; // the end of the head
        }
        if line.len() > limits.line {
            // As much as is sure to be there whenever this is found, so
            // that the words do not depend on how the head arrived.
            let quoted = &line[..QUOTED.min(limits.line)];
            return Err(RequestError::HeaderLineTooLong(
                String::from_utf8_lossy(quoted).into_owned(),
            ));
        }
    }
    Ok(())
}

/// One `Host`, present on HTTP/1.1 unless the target names the host
/// (`GET http://host/path`: nginx's `ngx_http_process_host` and
/// `ngx_http_process_request_header`).
fn check_host(headers: &Headers, version: Version, target: &[u8]) -> Result<(), RequestError> {
    let mut hosts = headers.get_all("host");
    let first = hosts.next();
    if let (Some(previous), Some(line)) = (first, hosts.next()) {
        return Err(RequestError::DuplicateHost {
            line: line.display_line(),
            previous: previous.display_line(),
        });
    }
    let names_host = target.len() > 7
        && (target[..7].eq_ignore_ascii_case(b"http://")
            || target.len() > 8 && target[..8].eq_ignore_ascii_case(b"https://"));
    if first.is_none() && version == Version::Http11 && !names_host {
        return Err(RequestError::MissingHost);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8]) -> Result<Option<RequestHead>, RequestError> {
        let mut buffer = BytesMut::from(text);
        parse_request(&mut buffer, &RequestLimits::default())
    }

    #[test]
    fn parses_and_keeps_the_rest() {
        let mut buffer = BytesMut::from(
            &b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Key: k\r\nContent-Length: 3\r\n\r\nabcGET"[..],
        );
        let head = parse_request(&mut buffer, &RequestLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(&head.method[..], b"POST");
        assert_eq!(&head.target[..], b"/a?b=1");
        assert_eq!(head.framing, Framing::Length(3));
        assert_eq!(
            head.headers.iter().nth(1).unwrap().name(),
            b"Sec-WebSocket-Key"
        );
        assert_eq!(&buffer[..], b"abcGET");
    }

    /// A head refused for its framing or Host stays in the buffer, for
    /// the refusal's `$request`.
    #[test]
    fn a_head_refused_after_parsing_stays_in_the_buffer() {
        let text = &b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nrest"[..];
        let mut buffer = BytesMut::from(text);
        assert!(parse_request(&mut buffer, &RequestLimits::default()).is_err());
        assert_eq!(&buffer[..], text);
    }

    #[test]
    fn counts_the_head_as_nginx_request_length() {
        let text = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n";
        let mut buffer = BytesMut::from(&text[..]);
        buffer.extend_from_slice(b"abc");
        let head = parse_request(&mut buffer, &RequestLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(head.length, text.len());
        // Blank lines before the request line are skipped, not counted.
        let mut buffer = BytesMut::from(&b"\r\n\r\nGET / HTTP/1.0\r\n\r\n"[..]);
        let head = parse_request(&mut buffer, &RequestLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!((head.length, buffer.len()), (18, 0));
    }

    #[test]
    fn names_nginx_takes_as_invalid_are_ignored_unless_asked_not_to() {
        let text = b"GET / HTTP/1.0\r\nx_foo: a\r\nX-Ok-1: b\r\n.foo:c\r\nx.y!z: d \r\n\r\n";
        let names = |limits: &RequestLimits| {
            let mut buffer = BytesMut::from(&text[..]);
            let head = parse_request(&mut buffer, limits).unwrap().unwrap();
            let names: Vec<Vec<u8>> = head.headers.iter().map(|h| h.name().to_vec()).collect();
            let ignored: Vec<Vec<u8>> = head.ignored.iter().map(|l| l.to_vec()).collect();
            (names, ignored)
        };
        let on = RequestLimits::default();
        assert_eq!(
            names(&on),
            (
                vec![b"X-Ok-1".to_vec()],
                vec![
                    b"x_foo: a".to_vec(),
                    b".foo:c".to_vec(),
                    b"x.y!z: d".to_vec()
                ]
            )
        );
        let underscores = RequestLimits {
            underscores_in_headers: true,
            ..on
        };
        assert_eq!(names(&underscores).0, [&b"x_foo"[..], b"X-Ok-1"]);
        let off = RequestLimits {
            ignore_invalid_headers: false,
            ..on
        };
        assert_eq!(names(&off).0.len(), 4);
        assert!(names(&off).1.is_empty());
        // An ignored line does not count: here, no second Host.
        let mut buffer = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\nHost_: b\r\n\r\n"[..]);
        let head = parse_request(&mut buffer, &on).unwrap().unwrap();
        assert_eq!(head.headers.len(), 1);
    }

    #[test]
    fn a_header_nginx_takes_once_may_not_come_twice() {
        for name in UNIQUE {
            let text = format!(
                "GET / HTTP/1.1\r\nHost: a\r\n{name}: 1\r\nX: y\r\n{}: 2\r\n\r\n",
                name.to_uppercase()
            );
            match parse(text.as_bytes()) {
                Err(e @ RequestError::DuplicateHeader { .. }) => {
                    assert_eq!(e.status(), 400);
                    assert_eq!(
                        e.to_string(),
                        format!("client sent duplicate header line: \"{}: 2\", previous value: \"{name}: 1\"", name.to_uppercase())
                    );
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        // Others may repeat, as nginx joins or keeps them.
        let repeats = b"GET / HTTP/1.1\r\nHost: a\r\nVia: 1\r\nVia: 2\r\nCookie: a\r\nCookie: b\r\nUser-Agent: x\r\nUser-Agent: y\r\n\r\n";
        assert!(matches!(parse(repeats), Ok(Some(_))));
    }

    #[test]
    fn statuses_as_nginx() {
        let status = |t: &[u8]| parse(t).map_err(|e| e.status());
        assert_eq!(status(b"GET / HTTP/1.1\r\nHo"), Ok(None));
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), Err(400), "no Host");
        assert!(
            matches!(parse(b"GET http://x/a HTTP/1.1\r\n\r\n"), Ok(Some(_))),
            "the target names the host"
        );
        assert!(matches!(parse(b"GET / HTTP/1.0\r\n\r\n"), Ok(Some(_))));
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"),
            Err(400)
        );
        assert_eq!(status(b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n"), Err(400));
        assert_eq!(status(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n"), Err(505));
        // The target is judged before the version, as nginx reads them.
        assert_eq!(status(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Err(400));
        assert_eq!(status(b"GET http://x/ HTTP/2.0\r\n\r\n"), Err(505));
        assert_eq!(
            status(b"GET / HTTP/2"),
            Ok(None),
            "505 or 400: not known yet"
        );
        assert_eq!(status(b"GET / HTTX/1.1\r\nHost: x\r\n\r\n"), Err(400));
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n"),
            Err(400)
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n"),
            Err(400)
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Err(501)
        );
        let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
        assert_eq!(status(long.as_bytes()), Err(414));
        assert_eq!(status(&long.as_bytes()[..20_000]), Err(414), "partial too");
        let header = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
            "a".repeat(9000)
        );
        assert_eq!(status(header.as_bytes()), Err(494));
        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            status(format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes()),
            Err(494)
        );
        let big: String = (0..8)
            .map(|i| format!("X-{i}: {}\r\n", "v".repeat(5000)))
            .collect();
        assert_eq!(
            status(format!("GET / HTTP/1.1\r\nHost: x\r\n{big}\r\n").as_bytes()),
            Err(494)
        );
    }
}
