//! The HTTP/1.x codec of switchyard: request and response heads parsed
//! (httparse underneath) and written, with nginx's rules for what a client
//! or an upstream may send, and chunked coding. Pure: no I/O, no runtime;
//! the caller reads and writes the bytes.
//!
//! Header names are kept as they came (case, order, repeats) and looked up
//! without regard to case; values share the read buffer. Every violation is
//! a typed error whose `Display` is nginx's error-log wording and which
//! says what nginx answers ([`RequestError::status`], [`ResponseError::status`]).
//!
//! ```
//! use bytes::BytesMut;
//! let mut buffer = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX-Custom-Name: v\r\nContent-Length: 2\r\n\r\nok"[..]);
//! let head = h1::parse_response(&mut buffer, &h1::ResponseLimits::default(), false)
//!     .unwrap()
//!     .unwrap();
//! assert_eq!(head.framing, h1::Framing::Length(2));
//! assert_eq!(head.headers.get("x-custom-name"), Some(&b"v"[..]));
//! assert_eq!(head.headers.iter().next().unwrap().name(), b"X-Custom-Name");
//! assert_eq!(&buffer[..], b"ok");
//! ```

#![deny(missing_docs)]

pub mod chunked;
mod error;
mod framing;
mod headers;
mod length;
mod locate;
mod request;
mod response;
mod write;

pub use error::{RequestError, ResponseError};
pub use framing::{request_framing, response_framing, Framing, UNIQUE as UNIQUE_REQUEST_HEADERS};
pub use headers::{Header, Headers};
pub use length::{content_length, InvalidContentLength};
pub use request::{parse_request, RequestHead, RequestLimits};
pub use response::{parse_response, ResponseHead, ResponseLimits};
pub use write::{write_header, write_headers, write_request_head, write_response_head};

/// The HTTP version of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: no chunked coding, connections close unless kept alive explicitly.
    Http10,
    /// HTTP/1.1.
    Http11,
}

impl Version {
    /// The version as it appears on the wire (`HTTP/1.1`).
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Version::Http10 => b"HTTP/1.0",
            Version::Http11 => b"HTTP/1.1",
        }
    }

    fn from_minor(minor: u8) -> Version {
        if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        }
    }
}

/// How many header slots httparse is given at most; a head with more lines
/// is refused as too large (both sides).
const MAX_HEADER_SLOTS: usize = 256;

/// Header slots for httparse, left uninitialised: it writes the ones it
/// fills and reads no other, and 256 initialised slots (8 KiB) cost more to
/// clear on every head than the parse itself.
fn header_slots<'b>() -> [std::mem::MaybeUninit<httparse::Header<'b>>; MAX_HEADER_SLOTS] {
    [const { std::mem::MaybeUninit::uninit() }; MAX_HEADER_SLOTS]
}

/// The most header lines a head may have (more: nginx's 494).
pub const MAX_HEADER_LINES: usize = MAX_HEADER_SLOTS;

/// Whether a comma-separated header value lists `token` (any case), as
/// `Connection: keep-alive, close` lists `close`.
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim_ows(t).eq_ignore_ascii_case(token))
}

/// `b` without leading and trailing spaces and tabs (RFC 9110's OWS).
pub fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}
