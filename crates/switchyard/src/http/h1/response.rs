//! The response head as nginx's header filter writes it: the status line,
//! then the lines nginx writes in a place of their own (`Server`, `Date`,
//! `Content-Type`, `Content-Length`, `Last-Modified`,
//! `Transfer-Encoding`, `Connection`), then every other header in its
//! order, each name as it came or as the configuration spells it.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use http_body::SizeHint;

use super::{write_header_line, HeaderCase};

/// How the body that follows the head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body may follow (1xx, 204, 304, a response to HEAD).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked.
    Chunked,
    /// Until the connection closes: a body of unknown length to an
    /// HTTP/1.0 client, which cannot take chunked coding.
    UntilClose,
}

/// What the request asked of the head besides the response itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadFor {
    /// A HEAD request: the head says what a GET would get, no body follows.
    pub head_request: bool,
    /// The client takes chunked coding (HTTP/1.1).
    pub chunked: bool,
}

/// In a response's extensions when its chunked coding is not the usual
/// one (absent: chunked when the length is unknown, no trailers).
#[derive(Debug, Clone, Default)]
pub struct ChunkedCoding {
    /// `chunked_transfer_encoding off`: a body of unknown length is
    /// delimited by the close even to HTTP/1.1.
    pub off: bool,
    /// How the trailers' names are spelled (the `add_trailer` lines as
    /// the configuration writes them).
    pub trailer_case: HeaderCase,
}

/// An upstream's status line (`200 Fine`), in a proxied response's
/// extensions: nginx passes the upstream's reason phrase on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    /// The status it goes with (a response whose status changed since, an
    /// intercepted error, does not use it).
    pub status: StatusCode,
    /// The reason phrase as it came (`Fine` of `200 Fine`), perhaps empty;
    /// it shares the upstream head's bytes.
    pub reason: bytes::Bytes,
}

impl StatusLine {
    /// Whether the line says something nginx's own would not: when the
    /// reason is nginx's for the status, the response need not carry it.
    pub fn differs_from_nginx(&self) -> bool {
        nginx_reason(self.status.as_u16()).map(str::as_bytes) != Some(&self.reason[..])
    }
}

/// nginx's reason phrases (`ngx_http_status_lines`), which differ from
/// the RFC's in places (`302 Moved Temporarily`, `405 Not Allowed`).
fn nginx_reason(status: u16) -> Option<&'static str> {
    Some(match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Time-out",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        101 => "Switching Protocols",
        _ => return None,
    })
}

/// The lines written in nginx's fixed places, in that order, then
/// `Connection` and `Keep-Alive` (written after the framing's line). A
/// static, not a const: `keep-alive` is no standard name of `http`'s, so
/// a const array would be built and dropped at every use.
static PLACED: [HeaderName; SLOTS] = [
    header::SERVER,
    header::DATE,
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::LAST_MODIFIED,
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
];
const SLOTS: usize = 7;
const DATE_SLOT: usize = 1;
const CONTENT_LENGTH_SLOT: usize = 3;
const CONNECTION_SLOT: usize = 5;

/// Where a response header's lines go in the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// A place of its own: `PLACED[i]`.
    Placed(usize),
    /// `Transfer-Encoding`: the framing is ours to choose.
    Framing,
    /// In the map's order, after the placed ones.
    Other,
}

fn slot(name: &HeaderName) -> Slot {
    if *name == header::TRANSFER_ENCODING {
        return Slot::Framing;
    }
    match PLACED.iter().position(|p| p == name) {
        Some(i) => Slot::Placed(i),
        None => Slot::Other,
    }
}

/// The reason phrase after the code and a space: the upstream's for a
/// proxied response (`None`, no space either, if it had none), else
/// nginx's words, or nothing after the space where nginx has none.
fn reason_of(status: StatusCode, status_line: Option<&StatusLine>) -> Option<&[u8]> {
    match (status_line, nginx_reason(status.as_u16())) {
        (Some(line), _) if line.status == status => {
            (!line.reason.is_empty()).then_some(&line.reason[..])
        }
        (_, Some(reason)) => Some(reason.as_bytes()),
        (_, None) => Some(b""),
    }
}

/// The length of the status line [`encode_head`] writes, CR LF included.
pub fn status_line_len(status: StatusCode, status_line: Option<&StatusLine>) -> usize {
    "HTTP/1.1 200\r\n".len() + reason_of(status, status_line).map_or(0, |r| 1 + r.len())
}

/// Appends the head of a response; returns how its body is delimited.
pub fn encode_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    status_line: Option<&StatusLine>,
    headers: &HeaderMap,
    case: Option<&HeaderCase>,
    body: &SizeHint,
    request: HeadFor,
) -> Framing {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    if let Some(reason) = reason_of(status, status_line) {
        out.push(b' ');
        out.extend_from_slice(reason);
    }
    out.extend_from_slice(b"\r\n");
    let no_body = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // One pass finds the lines with places of their own (the first value
    // of each, and whether it repeats); the common head has no repeats, so
    // no name is looked up in the map.
    let mut firsts: [Option<&HeaderValue>; SLOTS] = [None; SLOTS];
    let mut repeated = [false; SLOTS];
    let mut others = false;
    for (name, value) in headers {
        match slot(name) {
            Slot::Placed(i) => match firsts[i] {
                None => firsts[i] = Some(value),
                Some(_) => repeated[i] = true,
            },
            Slot::Framing => {}
            Slot::Other => others = true,
        }
    }
    let values = |i: usize| {
        let all = repeated[i].then(|| headers.get_all(&PLACED[i]).iter());
        let first = firsts[i].filter(|_| !repeated[i]);
        all.into_iter().flatten().chain(first)
    };
    let mut length: Option<u64> = None;
    for (i, name) in PLACED.iter().enumerate().take(CONNECTION_SLOT) {
        for value in values(i) {
            if i == CONTENT_LENGTH_SLOT {
                if no_body {
                    continue; // nginx drops it where no body may be
                }
                length = ::h1::content_length(value.as_bytes()).ok();
            }
            write_header_line(out, name, value, case);
        }
        if i == DATE_SLOT && firsts[i].is_none() {
            out.extend_from_slice(b"Date: ");
            with_date(|d| out.extend_from_slice(d.as_bytes()));
            out.extend_from_slice(b"\r\n");
        }
        if i == CONTENT_LENGTH_SLOT && length.is_none() && !no_body {
            if let Some(n) = body.exact() {
                out.extend_from_slice(b"Content-Length: ");
                out.extend_from_slice(n.to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
                length = Some(n);
            }
        }
    }
    let framing = if no_body || request.head_request {
        Framing::Empty
    } else if let Some(n) = length {
        Framing::Length(n)
    } else if request.chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        Framing::Chunked
    } else {
        Framing::UntilClose
    };
    for (i, name) in PLACED.iter().enumerate().skip(CONNECTION_SLOT) {
        for value in values(i) {
            write_header_line(out, name, value, case);
        }
    }
    if others {
        for (name, value) in headers {
            if slot(name) == Slot::Other {
                write_header_line(out, name, value, case);
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    framing
}

thread_local! {
    /// The `Date` value, formatted once a second per worker thread.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

fn with_date(f: impl FnOnce(&str)) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != second {
            *cached = (second, httpdate::fmt_http_date(now));
        }
        f(&cached.1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET11: HeadFor = HeadFor {
        head_request: false,
        chunked: true,
    };

    fn encode(
        status: u16,
        headers: &[(&'static str, &'static str)],
        hint: SizeHint,
        request: HeadFor,
    ) -> (String, Framing) {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, HeaderValue::from_static(v));
        }
        let mut out = Vec::new();
        let framing = encode_head(
            &mut out,
            StatusCode::from_u16(status).unwrap(),
            None,
            &map,
            None,
            &hint,
            request,
        );
        (String::from_utf8(out).unwrap(), framing)
    }

    #[test]
    fn length_from_header_hint_or_chunked() {
        let (text, f) = encode(
            200,
            &[("content-length", "5"), ("x-a-b", "1")],
            SizeHint::default(),
            GET11,
        );
        assert_eq!(f, Framing::Length(5));
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nDate: "), "{text}");
        assert!(
            text.ends_with(" GMT\r\nContent-Length: 5\r\nX-A-B: 1\r\n\r\n"),
            "{text}"
        );
        let (text, f) = encode(404, &[], SizeHint::with_exact(7), GET11);
        assert_eq!(f, Framing::Length(7));
        assert!(text.contains("\r\nContent-Length: 7\r\n"), "{text}");
        let (text, f) = encode(599, &[], SizeHint::default(), GET11);
        assert_eq!(f, Framing::Chunked);
        assert!(text.starts_with("HTTP/1.1 599 \r\n"), "{text}");
        assert!(
            text.contains("\r\nTransfer-Encoding: chunked\r\n"),
            "{text}"
        );
        let (text, _) = encode(302, &[], SizeHint::with_exact(0), GET11);
        assert!(
            text.starts_with("HTTP/1.1 302 Moved Temporarily\r\n"),
            "{text}"
        );
        let (text, f) = encode(304, &[("content-length", "10")], SizeHint::default(), GET11);
        assert_eq!(f, Framing::Empty);
        assert!(!text.contains("Content-Length"), "{text}");
        let (text, _) = encode(200, &[("date", "x")], SizeHint::with_exact(0), GET11);
        assert_eq!(text.matches("Date").count(), 1);
    }

    #[test]
    fn lines_come_in_nginx_order() {
        let (text, _) = encode(
            200,
            &[
                ("x-first", "1"),
                ("connection", "keep-alive"),
                ("content-type", "text/plain"),
                ("server", "switchyard"),
                ("x-second", "2"),
            ],
            SizeHint::with_exact(2),
            GET11,
        );
        let names: Vec<&str> = text
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split(':').next())
            .filter(|n| !n.is_empty())
            .collect();
        assert_eq!(
            names,
            [
                "Server",
                "Date",
                "Content-Type",
                "Content-Length",
                "Connection",
                "X-First",
                "X-Second"
            ]
        );
    }

    #[test]
    fn repeated_and_placed_lines_keep_their_order() {
        let (text, f) = encode(
            200,
            &[
                ("x-a", "1"),
                ("server", "s1"),
                ("connection", "c1"),
                ("content-type", "t"),
                ("x-b", "b"),
                ("server", "s2"),
                ("transfer-encoding", "chunked"),
                ("x-a", "2"),
                ("last-modified", "lm"),
                ("connection", "c2"),
                ("content-length", "9"),
                ("content-length", "3"),
            ],
            SizeHint::default(),
            GET11,
        );
        assert_eq!(f, Framing::Length(3));
        let date_end = text.find(" GMT\r\n").expect("a Date line") + 6;
        assert_eq!(
            text.replace(&text[text.find("Date: ").unwrap()..date_end], "Date: -\r\n"),
            "HTTP/1.1 200 OK\r\nServer: s1\r\nServer: s2\r\nDate: -\r\n\
             Content-Type: t\r\nContent-Length: 9\r\nContent-Length: 3\r\n\
             Last-Modified: lm\r\nConnection: c1\r\nConnection: c2\r\n\
             X-A: 1\r\nX-A: 2\r\nX-B: b\r\n\r\n"
        );
        // An upstream's own Date stands; a bodiless status drops the length.
        let (text, f) = encode(
            204,
            &[("date", "d"), ("content-length", "3"), ("x-c", "c")],
            SizeHint::default(),
            GET11,
        );
        assert_eq!(f, Framing::Empty);
        assert_eq!(text, "HTTP/1.1 204 No Content\r\nDate: d\r\nX-C: c\r\n\r\n");
    }

    #[test]
    fn head_and_http10_bodies() {
        let head = HeadFor {
            head_request: true,
            chunked: true,
        };
        let (text, f) = encode(200, &[("content-length", "5")], SizeHint::default(), head);
        assert_eq!(f, Framing::Empty);
        assert!(
            text.contains("Content-Length: 5"),
            "HEAD keeps the length: {text}"
        );
        let (text, f) = encode(200, &[], SizeHint::default(), head);
        assert_eq!(f, Framing::Empty);
        assert!(!text.contains("Transfer-Encoding"), "{text}");
        let http10 = HeadFor {
            head_request: false,
            chunked: false,
        };
        let (text, f) = encode(200, &[], SizeHint::default(), http10);
        assert_eq!(f, Framing::UntilClose);
        assert!(!text.contains("Transfer-Encoding"), "{text}");
    }

    #[test]
    fn a_proxied_status_line_keeps_the_upstreams_reason_or_its_absence() {
        let line = |status: u16, reason: &'static str, sent: u16| {
            let mut out = Vec::new();
            let upstream = StatusLine {
                status: StatusCode::from_u16(status).unwrap(),
                reason: bytes::Bytes::from_static(reason.as_bytes()),
            };
            encode_head(
                &mut out,
                StatusCode::from_u16(sent).unwrap(),
                Some(&upstream),
                &HeaderMap::new(),
                None,
                &SizeHint::with_exact(0),
                GET11,
            );
            let text = String::from_utf8(out).unwrap();
            text.lines().next().unwrap().to_string()
        };
        assert_eq!(line(200, "Fine", 200), "HTTP/1.1 200 Fine");
        assert_eq!(line(200, "", 200), "HTTP/1.1 200");
        // A status changed since (an intercepted error) has nginx's words.
        assert_eq!(line(200, "Fine", 502), "HTTP/1.1 502 Bad Gateway");
    }
}
