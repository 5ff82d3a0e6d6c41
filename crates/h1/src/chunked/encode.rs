//! Encoding a body as chunks.

use crate::{write_headers, Headers};

/// What ends a chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";

/// The last chunk of a body without trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A chunk's size line (`1a2b\r\n`), without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPrefix {
    bytes: [u8; 18],
    len: usize,
}

impl ChunkPrefix {
    /// The size line for a chunk of `len` bytes (lower-case hex, as nginx
    /// writes it).
    pub fn new(len: u64) -> ChunkPrefix {
        let mut digits = [0u8; 16];
        let mut n = len;
        let mut count = 0;
        loop {
            digits[15 - count] = b"0123456789abcdef"[(n & 0xf) as usize];
            count += 1;
            n >>= 4;
            if n == 0 {
                break;
            }
        }
        let mut bytes = [0u8; 18];
        bytes[..count].copy_from_slice(&digits[16 - count..]);
        bytes[count..count + 2].copy_from_slice(b"\r\n");
        ChunkPrefix {
            bytes,
            len: count + 2,
        }
    }
}

impl AsRef<[u8]> for ChunkPrefix {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Appends `data` as one chunk; nothing for empty data (an empty chunk
/// would end the body).
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(ChunkPrefix::new(data.len() as u64).as_ref());
    out.extend_from_slice(data);
    out.extend_from_slice(CHUNK_END);
}

/// Appends the last chunk, with `trailers` if there are any.
pub fn encode_last_chunk(out: &mut Vec<u8>, trailers: &Headers) {
    out.extend_from_slice(b"0\r\n");
    write_headers(out, trailers);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(ChunkPrefix::new(0).as_ref(), b"0\r\n");
        assert_eq!(ChunkPrefix::new(26).as_ref(), b"1a\r\n");
        assert_eq!(ChunkPrefix::new(u64::MAX).as_ref(), b"ffffffffffffffff\r\n");
        let mut out = Vec::new();
        encode_chunk(&mut out, b"Wiki");
        encode_chunk(&mut out, b"");
        let mut t = Headers::new();
        t.append("X-T", "1");
        encode_last_chunk(&mut out, &t);
        assert_eq!(out, b"4\r\nWiki\r\n0\r\nX-T: 1\r\n\r\n");
    }
}
