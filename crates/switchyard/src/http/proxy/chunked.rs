//! Decoding a chunked upstream body (RFC 9112, section 7.1) from a read
//! buffer, one step at a time, so that data is passed down as it arrives.

use bytes::{Buf, Bytes, BytesMut};

/// The longest trailer section accepted after the last chunk.
const MAX_TRAILERS: usize = 64 * 1024;

/// The decoder's place in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, with this much left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last (zero) chunk: optional trailers, then a blank line.
    Trailers,
    /// The body is complete.
    Done,
}

/// One decoding step.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Body bytes.
    Data(Bytes),
    /// More input is needed.
    NeedMore,
    /// The body ended.
    End,
}

/// The body is not valid chunked encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("upstream sent invalid chunked response")]
pub struct InvalidChunk;

impl Chunked {
    /// Consumes what it can from `buffer` and says what came of it.
    pub fn step(&mut self, buffer: &mut BytesMut) -> Result<Step, InvalidChunk> {
        loop {
            match *self {
                Chunked::Size => match httparse::parse_chunk_size(buffer) {
                    Ok(httparse::Status::Complete((used, 0))) => {
                        buffer.advance(used);
                        *self = Chunked::Trailers;
                    }
                    Ok(httparse::Status::Complete((used, size))) => {
                        buffer.advance(used);
                        *self = Chunked::Data(size);
                    }
                    Ok(httparse::Status::Partial) if buffer.len() > 4096 => {
                        return Err(InvalidChunk)
                    }
                    Ok(httparse::Status::Partial) => return Ok(Step::NeedMore),
                    Err(_) => return Err(InvalidChunk),
                },
                Chunked::Data(left) => {
                    if buffer.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(buffer.len());
                    let data = buffer.split_to(take).freeze();
                    let left = left - take as u64;
                    *self = if left == 0 {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(left)
                    };
                    return Ok(Step::Data(data));
                }
                Chunked::DataEnd => {
                    if buffer.len() < 2 {
                        return Ok(Step::NeedMore);
                    }
                    if &buffer[..2] != b"\r\n" {
                        return Err(InvalidChunk);
                    }
                    buffer.advance(2);
                    *self = Chunked::Size;
                }
                Chunked::Trailers => {
                    if buffer.starts_with(b"\r\n") {
                        buffer.advance(2);
                        *self = Chunked::Done;
                        continue;
                    }
                    match buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        Some(at) => {
                            buffer.advance(at + 4);
                            *self = Chunked::Done;
                        }
                        None if buffer.len() > MAX_TRAILERS => return Err(InvalidChunk),
                        None => return Ok(Step::NeedMore),
                    }
                }
                Chunked::Done => return Ok(Step::End),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(pieces: &[&[u8]]) -> Result<(Vec<u8>, Vec<u8>), InvalidChunk> {
        let mut decoder = Chunked::Size;
        let mut buffer = BytesMut::new();
        let mut body = Vec::new();
        for piece in pieces {
            buffer.extend_from_slice(piece);
            loop {
                match decoder.step(&mut buffer)? {
                    Step::Data(d) => body.extend_from_slice(&d),
                    Step::NeedMore => break,
                    Step::End => return Ok((body, buffer.to_vec())),
                }
            }
        }
        Err(InvalidChunk)
    }

    #[test]
    fn decodes_with_extensions_and_trailers() {
        let (body, rest) =
            decode_all(&[b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\nNEXT"]).unwrap();
        assert_eq!(body, b"Wikipedia");
        assert_eq!(rest, b"NEXT");
    }

    #[test]
    fn refuses_garbage() {
        assert!(decode_all(&[b"zz\r\n"]).is_err());
        assert!(decode_all(&[b"3\r\nabcXY0\r\n\r\n"]).is_err());
        assert!(decode_all(&[b"ffffffffffffffffff\r\n"]).is_err());
    }

    proptest! {
        #[test]
        fn any_split_decodes_the_same(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..8),
            cuts in prop::collection::vec(1usize..50, 0..40),
        ) {
            let mut wire = Vec::new();
            for c in &chunks {
                wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            let mut pieces: Vec<&[u8]> = Vec::new();
            let mut rest: &[u8] = &wire;
            for cut in cuts {
                if rest.is_empty() { break; }
                let (a, b) = rest.split_at(cut.min(rest.len()));
                pieces.push(a);
                rest = b;
            }
            pieces.push(rest);
            let (body, tail) = decode_all(&pieces).unwrap();
            prop_assert_eq!(body, chunks.concat());
            prop_assert!(tail.is_empty());
        }
    }
}
