//! Heads written with the names exactly as stored: what came in goes out
//! spelled the same.

use crate::{Header, Headers, Version};

/// Appends `Name: value` and its line end, the name as stored.
pub fn write_header(out: &mut Vec<u8>, header: &Header) {
    out.extend_from_slice(header.name());
    out.extend_from_slice(b": ");
    out.extend_from_slice(header.value());
    out.extend_from_slice(b"\r\n");
}

/// Appends every line of `headers`, in order.
pub fn write_headers(out: &mut Vec<u8>, headers: &Headers) {
    for h in headers {
        write_header(out, h);
    }
}

/// Appends a request head: request line, header lines, blank line.
pub fn write_request_head(
    out: &mut Vec<u8>,
    method: &[u8],
    target: &[u8],
    version: Version,
    headers: &Headers,
) {
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(target);
    out.push(b' ');
    out.extend_from_slice(version.as_bytes());
    out.extend_from_slice(b"\r\n");
    write_headers(out, headers);
    out.extend_from_slice(b"\r\n");
}

/// Appends a response head: status line, header lines, blank line.
pub fn write_response_head(
    out: &mut Vec<u8>,
    version: Version,
    status: u16,
    reason: &[u8],
    headers: &Headers,
) {
    out.extend_from_slice(version.as_bytes());
    out.push(b' ');
    // Three digits: a status is 100..=999 by construction of any parsed head.
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
    write_headers(out, headers);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_go_out_as_stored() {
        let mut h = Headers::new();
        h.append("set-cookie", "a=1");
        h.append("X-IP", "1.2.3.4");
        let mut out = Vec::new();
        write_response_head(&mut out, Version::Http11, 200, b"OK", &h);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nX-IP: 1.2.3.4\r\n\r\n"
        );
        out.clear();
        write_request_head(&mut out, b"GET", b"/a", Version::Http10, &h);
        assert_eq!(
            out,
            b"GET /a HTTP/1.0\r\nset-cookie: a=1\r\nX-IP: 1.2.3.4\r\n\r\n"
        );
    }
}
