//! Decoding a chunked body one slice at a time: the decoder keeps its
//! place byte by byte, so input may be split anywhere and nothing of the
//! framing needs to be buffered by the caller. Strict as nginx's
//! `ngx_http_parse_chunked`: CRLF line ends only, a size that fits `i64`.

use std::ops::Range;

/// The limits a chunked body is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedLimits {
    /// The longest chunk-size line, extensions included.
    pub max_size_line: usize,
    /// The longest trailer section.
    pub max_trailers: usize,
}

impl Default for ChunkedLimits {
    /// 4 KiB size lines, 64 KiB of trailers.
    fn default() -> ChunkedLimits {
        ChunkedLimits {
            max_size_line: 4096,
            max_trailers: 64 * 1024,
        }
    }
}

/// Why a body is not valid chunked coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    /// A chunk-size line that is not hex digits, extensions and CRLF.
    #[error("invalid chunk size")]
    InvalidSize,
    /// A chunk size beyond `i64::MAX`.
    #[error("too large chunk size")]
    SizeTooLarge,
    /// A chunk-size line over the limit.
    #[error("too long chunk size line")]
    SizeLineTooLong,
    /// A chunk's data not followed by CRLF.
    #[error("no CRLF after chunk data")]
    MissingCrlf,
    /// A trailer line not ended by CRLF.
    #[error("invalid trailer")]
    InvalidTrailer,
    /// A trailer section over the limit.
    #[error("too big trailers")]
    TrailersTooLarge,
}

impl ChunkedError {
    /// nginx's error-log words for an upstream's body.
    pub fn upstream_message(self) -> &'static str {
        "upstream sent invalid chunked response"
    }

    /// nginx's error-log words for a client's body (answered 400).
    pub fn client_message(self) -> &'static str {
        "client sent invalid chunked body"
    }
}

/// What one call to [`ChunkedDecoder::decode`] found in its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Body bytes: `input[range]`. Everything up to `range.end` is
    /// consumed (the framing before `range.start` included).
    Data(Range<usize>),
    /// All of the input was framing and is consumed; more is needed.
    NeedMore,
    /// The body ended after this many bytes of the input; the rest is not
    /// the body's.
    Done(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The first hex digit of a size.
    Start,
    /// More hex digits.
    Size,
    /// A chunk extension, up to CR.
    Extension,
    /// The LF of a size line.
    SizeLf,
    /// Chunk data, `size` bytes left.
    Data,
    /// The CR after data.
    DataCr,
    /// The LF after data.
    DataLf,
    /// The start of a trailer line, or the CR of the final blank line.
    TrailerStart,
    /// Inside a trailer line.
    TrailerLine,
    /// The LF of a trailer line.
    TrailerLf,
    /// The LF of the final blank line.
    EndLf,
    /// The body is complete.
    Done,
}

/// The decoder of one chunked body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    line: usize,
    trailers: usize,
    limits: ChunkedLimits,
}

impl Default for ChunkedDecoder {
    fn default() -> ChunkedDecoder {
        ChunkedDecoder::new(ChunkedLimits::default())
    }
}

/// The largest size accepted: nginx's `off_t`.
const MAX_SIZE: u64 = i64::MAX as u64;

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new(limits: ChunkedLimits) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Start,
            size: 0,
            line: 0,
            trailers: 0,
            limits,
        }
    }

    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`: the first piece of body found, or that the
    /// input was all framing, or where the body ended.
    ///
    /// ```
    /// use h1::chunked::{ChunkedDecoder, Step};
    /// let mut d = ChunkedDecoder::default();
    /// let input = b"4\r\nWiki\r\n0\r\n\r\nNEXT";
    /// assert_eq!(d.decode(input), Ok(Step::Data(3..7)));
    /// assert_eq!(d.decode(&input[7..]), Ok(Step::Done(7)));
    /// ```
    pub fn decode(&mut self, input: &[u8]) -> Result<Step, ChunkedError> {
        let mut at = 0;
        while at < input.len() {
            match self.state {
                State::Done => return Ok(Step::Done(at)),
                State::Data => {
                    let left = input.len() - at;
                    let take = usize::try_from(self.size).map_or(left, |s| s.min(left));
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok(Step::Data(at..at + take));
                }
                _ => {
                    self.byte(input[at])?;
                    at += 1;
                }
            }
        }
        Ok(if self.state == State::Done {
            Step::Done(at)
        } else {
            Step::NeedMore
        })
    }

    /// One byte of framing.
    fn byte(&mut self, b: u8) -> Result<(), ChunkedError> {
        match self.state {
            State::Start | State::Size | State::Extension | State::SizeLf => {
                self.line += 1;
                if self.line > self.limits.max_size_line {
                    return Err(ChunkedError::SizeLineTooLong);
                }
            }
            State::TrailerStart | State::TrailerLine | State::TrailerLf | State::EndLf => {
                self.trailers += 1;
                if self.trailers > self.limits.max_trailers {
                    return Err(ChunkedError::TrailersTooLarge);
                }
            }
            _ => {}
        }
        self.state = match (self.state, b) {
            (State::Start, b) => {
                self.size = hex(b).ok_or(ChunkedError::InvalidSize)?;
                State::Size
            }
            (State::Size, b) if hex(b).is_some() => {
                if self.size > MAX_SIZE >> 4 {
                    return Err(ChunkedError::SizeTooLarge);
                }
                self.size = (self.size << 4) | hex(b).unwrap_or(0);
                State::Size
            }
            (State::Size, b';' | b' ' | b'\t') => State::Extension,
            (State::Size | State::Extension, b'\r') => State::SizeLf,
            (State::Size | State::Extension, b'\n') => return Err(ChunkedError::InvalidSize),
            (State::Size, _) => return Err(ChunkedError::InvalidSize),
            (State::Extension, _) => State::Extension,
            (State::SizeLf, b'\n') => {
                self.line = 0;
                if self.size == 0 {
                    State::TrailerStart
                } else {
                    State::Data
                }
            }
            (State::SizeLf, _) => return Err(ChunkedError::InvalidSize),
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Start,
            (State::DataCr | State::DataLf, _) => return Err(ChunkedError::MissingCrlf),
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart | State::TrailerLine, b'\n') => {
                return Err(ChunkedError::InvalidTrailer)
            }
            (State::TrailerLine, b'\r') => State::TrailerLf,
            (State::TrailerStart | State::TrailerLine, _) => State::TrailerLine,
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::EndLf, b'\n') => State::Done,
            (State::TrailerLf | State::EndLf, _) => return Err(ChunkedError::InvalidTrailer),
            // Data and Done are handled by `decode`, never byte by byte.
            (State::Data | State::Done, _) => self.state,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoded body and what followed it.
    type Decoded = (Vec<u8>, Vec<u8>);

    /// Decodes `pieces` in turn: the body, and what followed it.
    fn decode_all(pieces: &[&[u8]]) -> Result<Option<Decoded>, ChunkedError> {
        let mut d = ChunkedDecoder::default();
        let mut body = Vec::new();
        for piece in pieces {
            let mut rest: &[u8] = piece;
            loop {
                match d.decode(rest)? {
                    Step::Data(r) => {
                        body.extend_from_slice(&rest[r.clone()]);
                        rest = &rest[r.end..];
                    }
                    Step::NeedMore => break,
                    Step::Done(n) => return Ok(Some((body, rest[n..].to_vec()))),
                }
            }
        }
        Ok(None)
    }

    #[test]
    fn decodes_extensions_and_trailers() {
        let (body, rest) =
            decode_all(&[b"4;ext=1\r\nWiki\r\n5 ; a\r\npedia\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\nNEXT"])
                .unwrap()
                .unwrap();
        assert_eq!((&body[..], &rest[..]), (&b"Wikipedia"[..], &b"NEXT"[..]));
        let (body, _) = decode_all(&[b"A\r\n0123456789\r\n000\r\n\r\n"])
            .unwrap()
            .unwrap();
        assert_eq!(body, b"0123456789");
    }

    #[test]
    fn incomplete_is_not_done() {
        assert_eq!(decode_all(&[b"5\r\nhel"]), Ok(None));
        assert_eq!(decode_all(&[b"0\r\n\r"]), Ok(None));
    }

    #[test]
    fn refuses_what_nginx_refuses() {
        let err = |t: &[u8]| decode_all(&[t]).unwrap_err();
        assert_eq!(err(b"zz\r\n"), ChunkedError::InvalidSize);
        assert_eq!(err(b"\r\n"), ChunkedError::InvalidSize);
        assert_eq!(err(b"-1\r\n"), ChunkedError::InvalidSize);
        assert_eq!(err(b"5\nhello"), ChunkedError::InvalidSize, "bare LF");
        assert_eq!(err(b"3\r\nabcXY"), ChunkedError::MissingCrlf);
        assert_eq!(err(b"ffffffffffffffffff\r\n"), ChunkedError::SizeTooLarge);
        assert_eq!(err(b"8000000000000000\r\n"), ChunkedError::SizeTooLarge);
        assert_eq!(err(b"0\r\nX: 1\n\r\n"), ChunkedError::InvalidTrailer);
        let long = format!("1;{}\r\n", "e".repeat(5000));
        assert_eq!(err(long.as_bytes()), ChunkedError::SizeLineTooLong);
        let trailers = format!("0\r\nX: {}\r\n\r\n", "t".repeat(70_000));
        assert_eq!(err(trailers.as_bytes()), ChunkedError::TrailersTooLarge);
        assert_eq!(
            decode_all(&[b"7fffffffffffffff\r\n"]),
            Ok(None),
            "i64::MAX fits"
        );
    }
}
