//! What nginx refuses in a head, each case a variant whose `Display` is
//! nginx's error-log wording and which says what nginx answers.

/// Why a client's request head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The request line is not `method SP target SP HTTP/x.y`.
    #[error("client sent invalid request")]
    InvalidRequestLine,
    /// The version is well formed but not HTTP/1.x.
    #[error("client sent invalid version")]
    UnsupportedVersion,
    /// The request line is longer than the line limit.
    #[error("client sent too long URI")]
    RequestLineTooLong,
    /// A header line that cannot be parsed: the line up to the offending
    /// byte, and that byte.
    #[error("client sent invalid header line: \"{line}\\x{byte:02x}...\"")]
    InvalidHeader {
        /// The line up to the offending byte.
        line: String,
        /// The offending byte.
        byte: u8,
    },
    /// One header line is longer than the line limit.
    #[error("client sent too long header line: \"{0}...\"")]
    HeaderLineTooLong(String),
    /// The head is longer than the total limit.
    #[error("client sent too large request")]
    HeadTooLarge,
    /// More header lines than allowed.
    #[error("client sent too many header lines")]
    TooManyHeaders,
    /// A second line of a header that may appear once (`Content-Length`,
    /// `Transfer-Encoding`): this line and the first.
    #[error("client sent duplicate header line: \"{line}\", previous value: \"{previous}\"")]
    DuplicateHeader {
        /// The repeated line, `Name: value`.
        line: String,
        /// The first line, `Name: value`.
        previous: String,
    },
    /// A second `Host` line.
    #[error("client sent duplicate host header: \"{line}\", previous value: \"{previous}\"")]
    DuplicateHost {
        /// The repeated line, `Name: value`.
        line: String,
        /// The first line, `Name: value`.
        previous: String,
    },
    /// An HTTP/1.1 request without `Host`.
    #[error("client sent HTTP/1.1 request without \"Host\" header")]
    MissingHost,
    /// A `Content-Length` that is not a length.
    #[error("client sent invalid \"Content-Length\" header")]
    InvalidContentLength,
    /// `Transfer-Encoding` on an HTTP/1.0 request.
    #[error("client sent HTTP/1.0 request with \"Transfer-Encoding\" header")]
    TransferEncodingOnHttp10,
    /// Both ways of delimiting the body.
    #[error("client sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time")]
    LengthAndChunked,
    /// A `Transfer-Encoding` other than `chunked`: its value.
    #[error("client sent unknown \"Transfer-Encoding\": \"{0}\"")]
    UnknownTransferEncoding(String),
}

impl RequestError {
    /// The status nginx answers. 494 is nginx's own "Request Header Or
    /// Cookie Too Large", sent on the wire as `400` with that page.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::UnsupportedVersion => 505,
            RequestError::RequestLineTooLong => 414,
            RequestError::HeaderLineTooLong(_)
            | RequestError::HeadTooLarge
            | RequestError::TooManyHeaders => 494,
            RequestError::UnknownTransferEncoding(_) => 501,
            _ => 400,
        }
    }
}

/// Why an upstream's response head was refused: nginx answers the client
/// 502 and logs these words (followed by its
/// `while reading response header from upstream`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The status line is not `HTTP/1.x NNN reason`. (nginx falls back to
    /// HTTP/0.9 for a bad status line, with "upstream sent no valid
    /// HTTP/1.0 header"; switchyard refuses it, in these words.)
    #[error("upstream sent invalid header")]
    Invalid,
    /// A header line that cannot be parsed: the line up to the offending
    /// byte, and that byte.
    #[error("upstream sent invalid header: \"{line}\\x{byte:02x}...\"")]
    InvalidHeader {
        /// The line up to the offending byte.
        line: String,
        /// The offending byte.
        byte: u8,
    },
    /// The head does not fit in the limit.
    #[error("upstream sent too big header")]
    TooBig,
    /// A 103 on an HTTP/1.0 response.
    #[error("upstream sent HTTP/1.0 response with early hints")]
    EarlyHintsOnHttp10,
    /// A second `Content-Length` or `Transfer-Encoding` line: this line and the first.
    #[error("upstream sent duplicate header line: \"{line}\", previous value: \"{previous}\"")]
    DuplicateHeader {
        /// The repeated line, `Name: value`.
        line: String,
        /// The first line, `Name: value`.
        previous: String,
    },
    /// A `Content-Length` that is not a length: the line.
    #[error("upstream sent invalid \"Content-Length\" header: \"{0}\"")]
    InvalidContentLength(String),
    /// Both ways of delimiting the body.
    #[error("upstream sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time")]
    LengthAndChunked,
    /// A `Transfer-Encoding` other than `chunked`: its value.
    #[error("upstream sent unknown \"Transfer-Encoding\": \"{0}\"")]
    UnknownTransferEncoding(String),
}

impl ResponseError {
    /// The status nginx answers the client: always 502 (an invalid header
    /// is also what `proxy_next_upstream invalid_header` retries on).
    pub fn status(&self) -> u16 {
        502
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wording_and_status() {
        let e = ResponseError::InvalidHeader {
            line: "Bad".into(),
            byte: b' ',
        };
        assert_eq!(
            e.to_string(),
            "upstream sent invalid header: \"Bad\\x20...\""
        );
        assert_eq!(e.status(), 502);
        assert_eq!(RequestError::RequestLineTooLong.status(), 414);
        assert_eq!(RequestError::UnsupportedVersion.status(), 505);
        assert_eq!(RequestError::HeadTooLarge.status(), 494);
        assert_eq!(
            RequestError::UnknownTransferEncoding("gzip".into()).to_string(),
            "client sent unknown \"Transfer-Encoding\": \"gzip\""
        );
        assert_eq!(
            RequestError::UnknownTransferEncoding("gzip".into()).status(),
            501
        );
    }
}
