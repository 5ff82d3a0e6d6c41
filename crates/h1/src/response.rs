//! An upstream's response head, parsed with nginx's checks of what a
//! backend may send.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use crate::{locate, response_framing, Framing, Header, Headers, ResponseError, Version};

/// The limits a response head is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseLimits {
    /// The longest head, in bytes (nginx's `proxy_buffer_size`).
    pub max_head: usize,
    /// The most header lines (at most 256; more are refused as too big).
    pub max_headers: usize,
}

impl Default for ResponseLimits {
    /// 64 KiB and 256 lines.
    fn default() -> ResponseLimits {
        ResponseLimits {
            max_head: 64 * 1024,
            max_headers: crate::MAX_HEADER_SLOTS,
        }
    }
}

/// A parsed response head; names and values share its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The version of the status line.
    pub version: Version,
    /// The status code (100 to 999).
    pub status: u16,
    /// The reason phrase, as sent.
    pub reason: Bytes,
    /// The header lines as they came.
    pub headers: Headers,
    /// How the body that follows is delimited.
    pub framing: Framing,
    /// Whether the connection may carry another request once the body is
    /// read: HTTP/1.1, no `Connection: close`, a delimited body, not a 101.
    pub keep_alive: bool,
}

/// Parses the response head at the start of `buffer`. On success its bytes
/// are taken from `buffer` (what follows is body) and shared by the head.
/// `Ok(None)`: not complete yet (`buffer` is left as it was, or without
/// the interim responses already read). Interim 1xx responses other than
/// 101 are skipped, as nginx skips them. `head_request`: the request was
/// HEAD, so no body follows whatever the head says.
pub fn parse_response(
    buffer: &mut BytesMut,
    limits: &ResponseLimits,
    head_request: bool,
) -> Result<Option<ResponseHead>, ResponseError> {
    loop {
        let Some(head) = parse_one(buffer, limits, head_request)? else {
            return Ok(None);
        };
        if head.status == 103 && head.version == Version::Http10 {
            return Err(ResponseError::EarlyHintsOnHttp10);
        }
        if !(100..200).contains(&head.status) || head.status == 101 {
            return Ok(Some(head));
        }
    }
}

/// Where `part` lies in `whole`, if it lies there (httparse may hand back
/// a static empty string instead of a slice of the buffer).
pub(crate) fn range_in(whole: &[u8], part: &[u8]) -> Option<Range<usize>> {
    let base = whole.as_ptr() as usize;
    let start = (part.as_ptr() as usize).checked_sub(base)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then_some(start..end)
}

/// The header lines of a frozen head, built from their ranges.
pub(crate) fn headers_of(head: &Bytes, lines: Vec<(Range<usize>, Range<usize>)>) -> Headers {
    lines
        .into_iter()
        .map(|(name, value)| Header::new(head.slice(name), head.slice(value)))
        .collect()
}

/// The ranges of httparse's header lines within `buffer`.
pub(crate) fn line_ranges(
    buffer: &[u8],
    lines: &[httparse::Header<'_>],
) -> Vec<(Range<usize>, Range<usize>)> {
    lines
        .iter()
        .map(|h| {
            (
                range_in(buffer, h.name.as_bytes()).unwrap_or(0..0),
                range_in(buffer, h.value).unwrap_or(0..0),
            )
        })
        .collect()
}

fn parse_one(
    buffer: &mut BytesMut,
    limits: &ResponseLimits,
    head_request: bool,
) -> Result<Option<ResponseHead>, ResponseError> {
    if buffer.is_empty() {
        return Ok(None);
    }
    let (length, status, version, reason, lines) = {
        let mut slots = crate::header_slots();
        let slots = &mut slots[..limits.max_headers.min(crate::MAX_HEADER_SLOTS)];
        let mut response = httparse::Response::new(&mut []);
        // Only the first `max_head` bytes are ever looked at, as nginx reads
        // a head into a buffer of that size: the outcome cannot depend on
        // how much more has arrived.
        let seen = &buffer[..buffer.len().min(limits.max_head)];
        let length = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            seen,
            slots,
        ) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if seen.len() >= limits.max_head => {
                return Err(ResponseError::TooBig)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(ResponseError::TooBig),
            Err(_) => {
                let fails = |prefix: &[u8]| {
                    let mut slots = [httparse::EMPTY_HEADER; crate::MAX_HEADER_SLOTS];
                    let slots = &mut slots[..limits.max_headers.min(crate::MAX_HEADER_SLOTS)];
                    httparse::Response::new(slots).parse(prefix).is_err()
                };
                return Err(match locate::locate(seen, fails) {
                    locate::Broken::Header(line, byte) => {
                        ResponseError::InvalidHeader { line, byte }
                    }
                    locate::Broken::StartLine => ResponseError::Invalid,
                });
            }
        };
        // httparse takes any three digits; a status below 100 is no status.
        let status = response
            .code
            .filter(|&c| c >= 100)
            .ok_or(ResponseError::Invalid)?;
        let version = Version::from_minor(response.version.ok_or(ResponseError::Invalid)?);
        let reason = response
            .reason
            .and_then(|r| range_in(buffer, r.as_bytes()))
            .unwrap_or(0..0);
        (
            length,
            status,
            version,
            reason,
            line_ranges(buffer, response.headers),
        )
    };
    let head = buffer.split_to(length).freeze();
    let headers = headers_of(&head, lines);
    let framing = response_framing(&headers, status, head_request)?;
    let keep_alive = version == Version::Http11
        && !headers.has_token("connection", "close")
        && framing != Framing::UntilClose
        && status != 101;
    Ok(Some(ResponseHead {
        version,
        status,
        reason: head.slice(reason),
        headers,
        framing,
        keep_alive,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8], head_request: bool) -> Result<Option<ResponseHead>, ResponseError> {
        let mut buffer = BytesMut::from(text);
        parse_response(&mut buffer, &ResponseLimits::default(), head_request)
    }

    #[test]
    fn parses_and_keeps_the_rest() {
        let mut buffer = BytesMut::from(
            &b"HTTP/1.1 200 Fine\r\nset-cookie: a=1\r\nX-Custom-Name: v\r\nSet-Cookie: b=2\r\nContent-Length: 3\r\n\r\nabcNEXT"[..],
        );
        let head = parse_response(&mut buffer, &ResponseLimits::default(), false)
            .unwrap()
            .unwrap();
        assert_eq!((head.status, &head.reason[..]), (200, &b"Fine"[..]));
        assert_eq!(head.framing, Framing::Length(3));
        assert!(head.keep_alive);
        let names: Vec<&[u8]> = head.headers.iter().map(Header::name).collect();
        assert_eq!(
            names,
            [
                &b"set-cookie"[..],
                b"X-Custom-Name",
                b"Set-Cookie",
                b"Content-Length"
            ]
        );
        assert_eq!(&buffer[..], b"abcNEXT");
    }

    #[test]
    fn waits_then_refuses_what_does_not_fit() {
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nContent-Le", false), Ok(None));
        let mut buffer = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX: aaaaaaaaaaaaaaaaaaaa"[..]);
        let limits = ResponseLimits {
            max_head: 16,
            ..ResponseLimits::default()
        };
        assert_eq!(
            parse_response(&mut buffer, &limits, false),
            Err(ResponseError::TooBig)
        );
        let many: String = (0..300).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            parse(format!("HTTP/1.1 200 OK\r\n{many}\r\n").as_bytes(), false),
            Err(ResponseError::TooBig)
        );
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |t: &[u8]| parse(t, false).unwrap().unwrap().keep_alive;
        assert!(!ka(b"HTTP/1.1 200 OK\r\n\r\n"), "until close");
        assert!(!ka(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"));
        assert!(!ka(
            b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 1\r\n\r\n"
        ));
        assert!(ka(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"));
        assert!(!ka(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
        ));
        let head = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(head.framing, Framing::None);
    }

    #[test]
    fn skips_interim_but_not_101() {
        let head = parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(head.status, 201);
        assert_eq!(
            parse(b"HTTP/1.0 103 Early\r\n\r\n", false),
            Err(ResponseError::EarlyHintsOnHttp10)
        );
    }

    #[test]
    fn refuses_bad_heads() {
        for text in [
            &b"HTTX/1.1 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 OK 200\r\n\r\n",
            b"HTTP/1.1 001 Low\r\n\r\n",
        ] {
            assert_eq!(parse(text, false), Err(ResponseError::Invalid), "{text:?}");
        }
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n", false),
            Err(ResponseError::InvalidHeader {
                line: "Bad".into(),
                byte: b' '
            })
        );
        assert!(matches!(
            parse(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false
            ),
            Err(ResponseError::DuplicateHeader { .. })
        ));
    }
}
