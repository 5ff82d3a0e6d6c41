//! The one `Framing`: how a message's body is delimited (RFC 9112,
//! section 6), computed from its head by nginx's rules for each side.

use crate::{content_length, trim_ows, Header, Headers, RequestError, ResponseError, Version};

/// How the body that follows a head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes (`Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the connection closes (a response without either).
    UntilClose,
    /// No body at all: a request without either header; a response to
    /// HEAD, a 1xx, 204 or 304 whatever its headers say.
    None,
}

impl Framing {
    /// Whether nothing follows the head.
    pub fn is_empty(self) -> bool {
        matches!(self, Framing::None | Framing::Length(0))
    }
}

/// The framing of an upstream's response, checked as nginx checks it,
/// line by line in order (`ngx_http_upstream_process_content_length` and
/// `..._transfer_encoding`): a second `Content-Length` or
/// `Transfer-Encoding`, both of them, an invalid length or a coding other
/// than `chunked` is a 502. `head_request`: the request was HEAD.
pub fn response_framing(
    headers: &Headers,
    status: u16,
    head_request: bool,
) -> Result<Framing, ResponseError> {
    let mut length_line: Option<&Header> = None;
    let mut coding_line: Option<&Header> = None;
    let mut length = None;
    for h in headers {
        if h.is("content-length") {
            if let Some(previous) = length_line {
                return Err(ResponseError::DuplicateHeader {
                    line: h.display_line(),
                    previous: previous.display_line(),
                });
            }
            if coding_line.is_some() {
                return Err(ResponseError::LengthAndChunked);
            }
            length_line = Some(h);
            length = Some(
                content_length(h.value())
                    .map_err(|_| ResponseError::InvalidContentLength(h.display_line()))?,
            );
        } else if h.is("transfer-encoding") {
            if let Some(previous) = coding_line {
                return Err(ResponseError::DuplicateHeader {
                    line: h.display_line(),
                    previous: previous.display_line(),
                });
            }
            if length_line.is_some() {
                return Err(ResponseError::LengthAndChunked);
            }
            coding_line = Some(h);
            if !trim_ows(h.value()).eq_ignore_ascii_case(b"chunked") {
                return Err(ResponseError::UnknownTransferEncoding(
                    String::from_utf8_lossy(h.value()).into_owned(),
                ));
            }
        }
    }
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::None);
    }
    Ok(match (coding_line, length) {
        (Some(_), _) => Framing::Chunked,
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::UntilClose,
    })
}

/// The request headers nginx takes once only
/// (`ngx_http_process_unique_header_line`): a second is a 400.
pub const UNIQUE: [&str; 11] = [
    "if-modified-since",
    "if-unmodified-since",
    "if-match",
    "if-none-match",
    "content-length",
    "content-range",
    "if-range",
    "transfer-encoding",
    "expect",
    "authorization",
    "proxy-authorization",
];

/// Where `content-length` and `transfer-encoding` are in [`UNIQUE`].
const LENGTH_SLOT: usize = 4;
const CODING_SLOT: usize = 7;

/// Where `name` is in [`UNIQUE`], if it is. Every request line comes
/// here, so a name is sorted out by its length and first letter, which
/// leave at most one candidate to compare.
fn unique_slot(name: &[u8]) -> Option<usize> {
    let first = name.first()? | 0x20;
    let slot = match (name.len(), first) {
        (6, b'e') => 8,
        (8, b'i') => match name.get(3).map(|b| b | 0x20) {
            Some(b'm') => 2,
            Some(b'r') => 6,
            _ => return None,
        },
        (13, b'i') => 3,
        (13, b'c') => 5,
        (13, b'a') => 9,
        (14, b'c') => LENGTH_SLOT,
        (17, b'i') => 0,
        (17, b't') => CODING_SLOT,
        (19, b'i') => 1,
        (19, b'p') => 10,
        _ => return None,
    };
    name.eq_ignore_ascii_case(UNIQUE[slot].as_bytes())
        .then_some(slot)
}

/// The framing of a client's request, checked as nginx checks it
/// (`ngx_http_process_request_header`): a second `Content-Length` or
/// `Transfer-Encoding` (or of any header of [`UNIQUE`]) is a 400, an
/// invalid length a 400, a `Transfer-Encoding` on HTTP/1.0 a 400,
/// `chunked` with a length a 400, any other coding a 501.
pub fn request_framing(headers: &Headers, version: Version) -> Result<Framing, RequestError> {
    let mut seen: [Option<&Header>; UNIQUE.len()] = [None; UNIQUE.len()];
    for h in headers {
        let Some(i) = unique_slot(h.name()) else {
            continue;
        };
        if let Some(previous) = seen[i] {
            return Err(RequestError::DuplicateHeader {
                line: h.display_line(),
                previous: previous.display_line(),
            });
        }
        seen[i] = Some(h);
    }
    let (length_line, coding_line) = (seen[LENGTH_SLOT], seen[CODING_SLOT]);
    let length = match length_line {
        Some(h) => Some(content_length(h.value()).map_err(|_| RequestError::InvalidContentLength)?),
        None => None,
    };
    if let Some(coding) = coding_line {
        if version == Version::Http10 {
            return Err(RequestError::TransferEncodingOnHttp10);
        }
        if !trim_ows(coding.value()).eq_ignore_ascii_case(b"chunked") {
            return Err(RequestError::UnknownTransferEncoding(
                String::from_utf8_lossy(coding.value()).into_owned(),
            ));
        }
        if length.is_some() {
            return Err(RequestError::LengthAndChunked);
        }
        return Ok(Framing::Chunked);
    }
    Ok(match length {
        Some(n) => Framing::Length(n),
        None => Framing::None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_slot_finds_every_unique_name_and_no_other() {
        for (i, name) in UNIQUE.iter().enumerate() {
            assert_eq!(unique_slot(name.as_bytes()), Some(i), "{name}");
            assert_eq!(
                unique_slot(name.to_uppercase().as_bytes()),
                Some(i),
                "{name}"
            );
        }
        for other in [
            "accept",
            "host",
            "if-matcj",
            "content-type",
            "x-if-match",
            "",
            "cookie",
        ] {
            assert_eq!(unique_slot(other.as_bytes()), None, "{other}");
        }
    }

    fn headers(lines: &[(&'static str, &'static str)]) -> Headers {
        lines.iter().map(|&(n, v)| Header::new(n, v)).collect()
    }

    #[test]
    fn response_bodies() {
        let cl = headers(&[("Content-Length", "5")]);
        assert_eq!(response_framing(&cl, 200, false), Ok(Framing::Length(5)));
        assert_eq!(response_framing(&cl, 200, true), Ok(Framing::None));
        for status in [100, 101, 103, 204, 304] {
            assert_eq!(response_framing(&cl, status, false), Ok(Framing::None));
        }
        let te = headers(&[("transfer-encoding", "Chunked")]);
        assert_eq!(response_framing(&te, 200, false), Ok(Framing::Chunked));
        assert_eq!(
            response_framing(&Headers::new(), 200, false),
            Ok(Framing::UntilClose)
        );
    }

    #[test]
    fn response_refusals_in_nginx_words() {
        let e = |lines| {
            response_framing(&headers(lines), 200, false)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e(&[("Content-Length", "5"), ("content-length", "5")]),
            "upstream sent duplicate header line: \"content-length: 5\", previous value: \"Content-Length: 5\""
        );
        assert_eq!(
            e(&[("Content-Length", "+5")]),
            "upstream sent invalid \"Content-Length\" header: \"Content-Length: +5\""
        );
        assert_eq!(
            e(&[("Transfer-Encoding", "gzip, chunked")]),
            "upstream sent unknown \"Transfer-Encoding\": \"gzip, chunked\""
        );
        let both =
            "upstream sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time";
        assert_eq!(
            e(&[("Content-Length", "5"), ("Transfer-Encoding", "chunked")]),
            both
        );
        assert_eq!(
            e(&[("Transfer-Encoding", "chunked"), ("Content-Length", "5")]),
            both
        );
        // A 304's headers are still checked, as nginx checks them.
        assert!(response_framing(&headers(&[("Content-Length", "x")]), 304, false).is_err());
    }

    #[test]
    fn request_bodies_and_refusals() {
        let f = |lines, v| request_framing(&headers(lines), v);
        assert_eq!(f(&[], Version::Http11), Ok(Framing::None));
        assert_eq!(
            f(&[("Content-Length", "3")], Version::Http10),
            Ok(Framing::Length(3))
        );
        assert_eq!(
            f(&[("Transfer-Encoding", "chunked")], Version::Http11),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            f(&[("Content-Length", "+5")], Version::Http11),
            Err(RequestError::InvalidContentLength)
        );
        assert_eq!(
            f(&[("Transfer-Encoding", "chunked")], Version::Http10),
            Err(RequestError::TransferEncodingOnHttp10)
        );
        assert_eq!(
            f(
                &[("Transfer-Encoding", "chunked"), ("Content-Length", "1")],
                Version::Http11
            ),
            Err(RequestError::LengthAndChunked)
        );
        assert_eq!(
            f(&[("Transfer-Encoding", "gzip")], Version::Http11).map_err(|e| e.status()),
            Err(501)
        );
        assert_eq!(
            f(
                &[("Content-Length", "1"), ("Content-Length", "1")],
                Version::Http11
            )
            .map_err(|e| e.status()),
            Err(400)
        );
    }
}
