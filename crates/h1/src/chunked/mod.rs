//! Chunked transfer coding (RFC 9112, section 7.1): an incremental decoder
//! over byte slices and the helpers that encode.

mod decode;
mod encode;

pub use decode::{ChunkedDecoder, ChunkedError, ChunkedLimits, Step};
pub use encode::{encode_chunk, encode_last_chunk, ChunkPrefix, CHUNK_END, LAST_CHUNK};
