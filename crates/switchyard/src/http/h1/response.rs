//! The response head as hyper writes it for switchyard (names in their
//! usual case, a `Date`, the body delimited by `Content-Length` when its
//! size is known and chunked otherwise), so that both connection paths
//! answer byte for byte alike.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap};
use http::StatusCode;
use http_body::SizeHint;

use super::write_header_line;

/// How the body that follows the head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body may follow (1xx, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked.
    Chunked,
}

/// Appends the head of a response; returns how its body is delimited.
pub fn encode_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    body: &SizeHint,
) -> Framing {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut length: Option<u64> = None;
    for (name, value) in headers {
        if name == header::TRANSFER_ENCODING {
            continue; // the framing below is ours to choose
        }
        if name == header::CONTENT_LENGTH {
            length = ::h1::content_length(value.as_bytes()).ok();
        }
        write_header_line(out, name, value);
    }
    let no_body = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if no_body {
        Framing::Empty
    } else if let Some(n) = length {
        Framing::Length(n)
    } else if let Some(n) = body.exact() {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(n.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        Framing::Length(n)
    } else {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        Framing::Chunked
    };
    if !headers.contains_key(header::DATE) {
        out.extend_from_slice(b"Date: ");
        with_date(|d| out.extend_from_slice(d.as_bytes()));
        out.extend_from_slice(b"\r\n");
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
    use http::HeaderValue;

    fn encode(
        status: u16,
        headers: &[(&'static str, &'static str)],
        hint: SizeHint,
    ) -> (String, Framing) {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, HeaderValue::from_static(v));
        }
        let mut out = Vec::new();
        let framing = encode_head(&mut out, StatusCode::from_u16(status).unwrap(), &map, &hint);
        (String::from_utf8(out).unwrap(), framing)
    }

    #[test]
    fn length_from_header_hint_or_chunked() {
        let (text, f) = encode(
            200,
            &[("content-length", "5"), ("x-a-b", "1")],
            SizeHint::default(),
        );
        assert_eq!(f, Framing::Length(5));
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A-B: 1\r\nDate: "),
            "{text}"
        );
        assert!(text.ends_with(" GMT\r\n\r\n"), "{text}");
        let (text, f) = encode(404, &[], SizeHint::with_exact(7));
        assert_eq!(f, Framing::Length(7));
        assert!(
            text.starts_with("HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\n"),
            "{text}"
        );
        let (text, f) = encode(599, &[], SizeHint::default());
        assert_eq!(f, Framing::Chunked);
        assert!(
            text.starts_with("HTTP/1.1 599 <none>\r\nTransfer-Encoding: chunked\r\n"),
            "{text}"
        );
        let (_, f) = encode(304, &[("content-length", "10")], SizeHint::default());
        assert_eq!(f, Framing::Empty);
        let (text, _) = encode(200, &[("date", "x")], SizeHint::with_exact(0));
        assert_eq!(text.matches("Date").count(), 1);
    }
}
