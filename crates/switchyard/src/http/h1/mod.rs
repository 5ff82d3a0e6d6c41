//! The fast path for client connections: plain HTTP/1.1 requests (a
//! `Content-Length` body or none) are read, answered and kept alive here,
//! without hyper's per-connection machinery, and an idle kept-alive
//! connection holds no buffer at all (nginx's 0.5 KB per idle connection
//! against hyper's 16 KiB of buffers kept for the connection's life).
//! Anything else goes to hyper with the bytes read so far ([`head`] says
//! what), so hyper's handling of unusual and hostile input stands.

pub mod body;
pub mod conn;
pub mod head;
pub mod park;
pub mod response;

use std::ops::Range;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Whether a comma-separated header value lists `token` (any case): the
/// `h1` codec's rule, one for both directions.
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    ::h1::has_token(value, token)
}

/// Appends `Name: value` and its line end, the name in its usual case
/// (`Content-Type`), as nginx writes the names it sends and hyper writes
/// ours: both heads switchyard writes, up and down, go through here.
pub fn write_header_line(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    let mut upper = true;
    for &b in name.as_str().as_bytes() {
        out.push(if upper { b.to_ascii_uppercase() } else { b });
        upper = b == b'-';
    }
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The header lines httparse found in `buffer`, as names and offsets of
/// their values, so that once the head's bytes are frozen the values can
/// share them ([`header_map`]). `None`: a name that is not a header name.
pub fn header_offsets(
    buffer: &[u8],
    headers: &[httparse::Header<'_>],
) -> Option<Vec<(HeaderName, Range<usize>)>> {
    let base = buffer.as_ptr() as usize;
    headers
        .iter()
        .map(|h| {
            let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
            let start = h.value.as_ptr() as usize - base;
            Some((name, start..start + h.value.len()))
        })
        .collect()
}

/// The header map of a frozen head, its values sharing the head's bytes.
/// `None`: a value with bytes a header value cannot hold.
pub fn header_map(head: &Bytes, lines: Vec<(HeaderName, Range<usize>)>) -> Option<HeaderMap> {
    let mut headers = HeaderMap::with_capacity(lines.len());
    for (name, range) in lines {
        headers.append(
            name,
            HeaderValue::from_maybe_shared(head.slice(range)).ok()?,
        );
    }
    Some(headers)
}
