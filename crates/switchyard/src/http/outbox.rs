//! Bytes on their way into a socket: queued in pieces (a head, body
//! frames, chunk framing) and written with one vectored write at a time.
//! Both directions of the proxy use it: the request going up
//! (`proxy/send.rs`) and the response going down (`h1/conn.rs`).

use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::AsyncWrite;

/// The most pieces one write hands to the kernel.
const MAX_SLICES: usize = 8;

/// The pieces still to write, in order.
#[derive(Debug, Default)]
pub struct Outbox {
    pieces: VecDeque<Bytes>,
}

impl Outbox {
    /// An outbox holding `first`.
    pub fn with(first: Bytes) -> Outbox {
        let mut outbox = Outbox {
            pieces: VecDeque::with_capacity(4),
        };
        outbox.push(first);
        outbox
    }

    /// Queues `piece` (an empty one is dropped: it would be written as
    /// nothing, forever).
    pub fn push(&mut self, piece: Bytes) {
        if !piece.is_empty() {
            self.pieces.push_back(piece);
        }
    }

    /// Queues `data` as one chunk of a chunked body, its size in lower-case
    /// hex as nginx's chunked filter writes it.
    pub fn push_chunk(&mut self, data: Bytes) {
        if data.is_empty() {
            return; // an empty chunk would end the body
        }
        self.push(Bytes::from(format!("{:x}\r\n", data.len())));
        self.push(data);
        self.push(Bytes::from_static(b"\r\n"));
    }

    /// Queues the end of a chunked body (no trailers).
    pub fn push_last_chunk(&mut self) {
        self.push(Bytes::from_static(b"0\r\n\r\n"));
    }

    /// Whether everything queued has been written.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// One vectored write of what is queued; the bytes written. tokio's own
    /// write (not `try_write`) notices a short write and waits for
    /// writability instead of trying in vain. A write that takes nothing is
    /// `WriteZero`.
    pub fn poll_write_some<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<usize>> {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut used = 0;
        for (slot, piece) in slices.iter_mut().zip(&self.pieces) {
            *slot = IoSlice::new(piece);
            used += 1;
        }
        let written = ready!(Pin::new(stream).poll_write_vectored(cx, &slices[..used]))?;
        if written == 0 && used > 0 {
            return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
        }
        self.advance(written);
        Poll::Ready(Ok(written))
    }

    fn advance(&mut self, mut written: usize) {
        while written > 0 {
            let Some(front) = self.pieces.front_mut() else {
                return;
            };
            if written >= front.len() {
                written -= front.len();
                self.pieces.pop_front();
            } else {
                front.advance(written);
                written = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_crosses_pieces_and_keeps_the_rest() {
        let mut outbox = Outbox::with(Bytes::from_static(b"head"));
        outbox.push(Bytes::new());
        outbox.push_chunk(Bytes::from_static(b"0123456789abcdef"));
        outbox.push_last_chunk();
        outbox.advance(4 + 2);
        let rest: Vec<u8> = outbox.pieces.iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(rest, b"\r\n0123456789abcdef\r\n0\r\n\r\n");
        let mut chunk = Outbox::default();
        chunk.push_chunk(Bytes::from(vec![b'x'; 255]));
        assert_eq!(&chunk.pieces[0][..], b"ff\r\n", "lower-case hex, as nginx");
        outbox.advance(rest.len());
        assert!(outbox.is_empty());
    }
}
