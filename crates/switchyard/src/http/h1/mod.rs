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

/// Whether a comma-separated header value lists `token` (any case).
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token))
}

/// `b` without leading and trailing whitespace.
pub fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}
