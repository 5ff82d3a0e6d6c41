//! `$request_length` over HTTP/2: nginx counts a stream's HEADERS and
//! CONTINUATION payloads (the compressed header block, without padding or
//! priority fields) and its DATA payloads without padding. The h2 crate
//! hands over decoded heads only, so the client's bytes are read here, on
//! their way into h2, frame header by frame header.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// The client connection preface, before the first frame.
const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// Streams whose counts are still open to more frames; a client keeps at
/// most `http2_max_concurrent_streams` of them, and past this bound the
/// oldest is let go (its request keeps the count it had).
const TRACKED: usize = 1024;

/// A request extension: its stream's count, read by `$request_length`.
#[derive(Debug, Clone)]
pub struct StreamLength(pub Arc<AtomicU64>);

/// The per-stream counts of one connection, shared by its reader and the
/// stream tasks.
#[derive(Debug, Default)]
pub struct Lengths {
    streams: Mutex<Vec<Tracked>>,
}

#[derive(Debug)]
struct Tracked {
    id: u32,
    count: Arc<AtomicU64>,
    /// The client's last frame of the stream was read.
    done: bool,
    /// The stream's request has the count.
    taken: bool,
}

impl Lengths {
    /// The count of stream `id` for its request (it goes on growing while
    /// the client sends body).
    pub fn of(&self, id: u32) -> Option<Arc<AtomicU64>> {
        let mut streams = self.streams.lock().ok()?;
        let at = streams.iter().position(|t| t.id == id)?;
        streams[at].taken = true;
        let count = streams[at].count.clone();
        if streams[at].done {
            streams.remove(at);
        }
        Some(count)
    }

    fn add(&self, id: u32, bytes: u64, opens: bool, ends: bool) {
        let Ok(mut streams) = self.streams.lock() else {
            return;
        };
        let at = match streams.iter().position(|t| t.id == id) {
            Some(at) => at,
            None if opens => {
                if streams.len() >= TRACKED {
                    streams.remove(0);
                }
                streams.push(Tracked {
                    id,
                    count: Arc::new(AtomicU64::new(0)),
                    done: false,
                    taken: false,
                });
                streams.len() - 1
            }
            None => return,
        };
        let t = &mut streams[at];
        t.count.fetch_add(bytes, Ordering::Relaxed);
        t.done |= ends;
        if t.done && t.taken {
            streams.remove(at);
        }
    }

    fn forget(&self, id: u32) {
        if let Ok(mut streams) = self.streams.lock() {
            streams.retain(|t| t.id != id);
        }
    }
}

/// Where the reader is in the client's byte stream.
#[derive(Debug)]
enum State {
    /// Bytes of the connection preface still to pass.
    Preface(usize),
    /// A frame header, `filled` bytes of it so far.
    Header {
        bytes: [u8; FRAME_HEADER_LEN],
        filled: usize,
    },
    /// A padded frame's first payload byte, its pad length, is next.
    PadLength(Frame),
    /// Payload bytes to pass before the next frame header.
    Payload(usize),
}

/// A frame whose counted size waits for its pad length.
#[derive(Debug, Clone, Copy)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    length: usize,
}

/// Reads the client's frames as they pass.
#[derive(Debug)]
struct Reader {
    state: State,
    lengths: Arc<Lengths>,
}

impl Reader {
    fn new(lengths: Arc<Lengths>) -> Reader {
        Reader {
            state: State::Preface(PREFACE_LEN),
            lengths,
        }
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                State::Preface(left) | State::Payload(left) => {
                    let n = (*left).min(data.len());
                    *left -= n;
                    data = &data[n..];
                    if *left == 0 {
                        self.state = State::Header {
                            bytes: [0; FRAME_HEADER_LEN],
                            filled: 0,
                        };
                    }
                }
                State::Header { bytes, filled } => {
                    let n = (FRAME_HEADER_LEN - *filled).min(data.len());
                    bytes[*filled..*filled + n].copy_from_slice(&data[..n]);
                    *filled += n;
                    data = &data[n..];
                    if *filled == FRAME_HEADER_LEN {
                        let frame = Frame {
                            length: usize::from(bytes[0]) << 16
                                | usize::from(bytes[1]) << 8
                                | usize::from(bytes[2]),
                            kind: bytes[3],
                            flags: bytes[4],
                            stream: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]])
                                & 0x7fff_ffff,
                        };
                        self.start(frame);
                    }
                }
                State::PadLength(frame) => {
                    let frame = *frame;
                    let pad = usize::from(data[0]);
                    data = &data[1..];
                    self.count(frame, 1 + pad);
                    // Payload(0) turns into the next header at once.
                    self.state = State::Payload(frame.length - 1);
                }
            }
        }
    }

    /// A frame header is complete: count it now, or once its pad length
    /// is read.
    fn start(&mut self, frame: Frame) {
        let padded = matches!(frame.kind, DATA | HEADERS) && frame.flags & PADDED != 0;
        if padded && frame.length > 0 {
            self.state = State::PadLength(frame);
            return;
        }
        self.count(frame, 0);
        self.state = State::Payload(frame.length);
    }

    /// Adds what nginx counts of `frame`, `unpadded` bytes of its payload
    /// being padding and the pad length.
    fn count(&self, frame: Frame, unpadded: usize) {
        let ends = frame.flags & END_STREAM != 0;
        match frame.kind {
            HEADERS => {
                let priority = if frame.flags & PRIORITY != 0 { 5 } else { 0 };
                let block = frame.length.saturating_sub(unpadded + priority);
                // With END_STREAM there is no body, but CONTINUATION may
                // still follow: h2 hands the request over only after it,
                // so the entry goes when the request takes its count.
                self.lengths.add(frame.stream, block as u64, true, ends);
            }
            CONTINUATION => self
                .lengths
                .add(frame.stream, frame.length as u64, false, false),
            DATA => {
                let payload = frame.length.saturating_sub(unpadded);
                self.lengths.add(frame.stream, payload as u64, false, ends);
            }
            RST_STREAM => self.lengths.forget(frame.stream),
            _ => {}
        }
    }
}

/// `inner`, with the client's frames counted into `Lengths` as h2 reads
/// them.
pub struct Meter<S> {
    inner: S,
    reader: Reader,
}

impl<S> Meter<S> {
    /// Counts what is read from `inner` (which starts with the preface).
    pub fn new(inner: S, lengths: Arc<Lengths>) -> Meter<S> {
        Meter {
            inner,
            reader: Reader::new(lengths),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Meter<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.reader.feed(&buf.filled()[before..]);
        }
        polled
    }
}

write_through!(Meter);

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn connection() -> Vec<u8> {
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend(frame(0x4, 0, 0, &[0; 6])); // SETTINGS
        bytes
    }

    /// Feeds `bytes` in pieces of `step` and returns the reader's counts.
    fn fed(bytes: &[u8], step: usize) -> Arc<Lengths> {
        let lengths = Arc::new(Lengths::default());
        let mut reader = Reader::new(lengths.clone());
        for piece in bytes.chunks(step) {
            reader.feed(piece);
        }
        lengths
    }

    #[test]
    fn a_header_block_counts_without_padding_or_priority() {
        let mut bytes = connection();
        // HEADERS, 18 bytes of block (END_HEADERS only): counted whole.
        bytes.extend(frame(HEADERS, 0x4, 1, &[7; 18]));
        // PADDED and PRIORITY: pad length 3, 5 priority bytes, 10 of block.
        let mut padded = vec![3];
        padded.extend([0; 5]);
        padded.extend([9; 10]);
        padded.extend([0; 3]);
        bytes.extend(frame(HEADERS, 0x4 | PADDED | PRIORITY, 3, &padded));
        // A block split over HEADERS and CONTINUATION.
        bytes.extend(frame(HEADERS, 0, 5, &[1; 12]));
        bytes.extend(frame(CONTINUATION, 0x4, 5, &[1; 6]));
        for step in [1, 2, 7, 4096] {
            let lengths = fed(&bytes, step);
            let count = |id| lengths.of(id).map(|c| c.load(Ordering::Relaxed));
            assert_eq!(count(1), Some(18), "step {step}");
            assert_eq!(count(3), Some(10), "step {step}");
            assert_eq!(count(5), Some(18), "step {step}");
            assert_eq!(count(7), None);
        }
    }

    #[test]
    fn body_data_adds_to_the_count_it_was_handed_to() {
        let mut head = connection();
        head.extend(frame(HEADERS, 0x4, 1, &[7; 18]));
        let lengths = Arc::new(Lengths::default());
        let mut reader = Reader::new(lengths.clone());
        reader.feed(&head);
        let count = lengths.of(1).unwrap();
        // Padded DATA: pad length 2, 5 bytes of body, 2 of padding.
        reader.feed(&frame(DATA, PADDED, 1, &[2, 1, 2, 3, 4, 5, 0, 0]));
        reader.feed(&frame(DATA, END_STREAM, 1, &[0; 100]));
        assert_eq!(count.load(Ordering::Relaxed), 18 + 5 + 100);
        // The stream's last frame let its entry go.
        assert!(lengths.of(1).is_none());
    }

    #[test]
    fn a_reset_stream_is_let_go_and_the_bound_holds() {
        let mut bytes = connection();
        bytes.extend(frame(HEADERS, 0x4, 1, &[7; 4]));
        bytes.extend(frame(RST_STREAM, 0, 1, &[0; 4]));
        assert!(fed(&bytes, 3).of(1).is_none());
        let mut bytes = connection();
        for id in 0..(TRACKED as u32 + 10) {
            bytes.extend(frame(HEADERS, 0x4, 2 * id + 1, &[7; 4]));
        }
        let lengths = fed(&bytes, 4096);
        assert!(lengths.of(1).is_none(), "the oldest went");
        assert!(lengths.of(2 * (TRACKED as u32 + 9) + 1).is_some());
        assert_eq!(lengths.streams.lock().unwrap().len(), TRACKED);
    }

    #[test]
    fn a_request_without_body_lets_its_entry_go_when_taken() {
        let mut bytes = connection();
        bytes.extend(frame(HEADERS, 0x4 | END_STREAM, 1, &[7; 18]));
        let lengths = fed(&bytes, 5);
        assert_eq!(lengths.of(1).unwrap().load(Ordering::Relaxed), 18);
        assert!(lengths.of(1).is_none());
    }
}
