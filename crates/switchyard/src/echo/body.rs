//! Response bodies: small fixed ones, the streamed echo of a request body,
//! and generated bodies of arbitrary size.
//!
//! The echo and generated variants never hold more than one chunk in memory,
//! so a 100 MiB upload or a 1 GiB download keeps the process footprint flat;
//! hyper only polls the next request chunk once the previous one is written,
//! which gives us back-pressure for free.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// Size of one generated chunk; large enough to keep syscall overhead low.
const CHUNK_LEN: usize = 64 * 1024;

/// A printable, recognisable pattern (digits and letters, newline every 64
/// bytes) so a generated body can be eyeballed or checked with `head`.
static PATTERN: [u8; CHUNK_LEN] = make_pattern();

const fn make_pattern() -> [u8; CHUNK_LEN] {
    const ALPHABET: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = [0u8; CHUNK_LEN];
    let mut i = 0;
    while i < CHUNK_LEN {
        out[i] = if i % 64 == 63 {
            b'\n'
        } else {
            ALPHABET[(i % 64) % 62]
        };
        i += 1;
    }
    out
}

/// The body of every response the echo server sends.
#[derive(Debug)]
pub enum EchoBody {
    /// A small in-memory body (JSON, health, errors); `None` once sent.
    Full(Option<Bytes>),
    /// The request body streamed back, followed by a single `"\n"` like
    /// echo-golem's `request.data + "\n"`.
    Echo {
        /// The request body being relayed.
        inner: Incoming,
        /// Whether the trailing newline has been emitted (i.e. we are done).
        newline_sent: bool,
    },
    /// `remaining` bytes of [`PATTERN`]; `chunked` hides the length from
    /// hyper so it falls back to chunked transfer encoding.
    Generated {
        /// Bytes still to produce.
        remaining: u64,
        /// Whether to advertise the length (Content-Length) or not (chunked).
        chunked: bool,
    },
}

impl EchoBody {
    /// A complete in-memory body.
    pub fn full(data: impl Into<Bytes>) -> Self {
        EchoBody::Full(Some(data.into()))
    }

    /// An empty body (used for 204/304, which must not carry one).
    pub fn empty() -> Self {
        EchoBody::Full(None)
    }

    /// Streams `inner` back followed by a newline.
    pub fn echo(inner: Incoming) -> Self {
        EchoBody::Echo {
            inner,
            newline_sent: false,
        }
    }

    /// A generated body of `len` bytes.
    pub fn generated(len: u64, chunked: bool) -> Self {
        EchoBody::Generated {
            remaining: len,
            chunked,
        }
    }
}

impl Body for EchoBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        // EchoBody is Unpin (Incoming is Unpin), so plain &mut access is fine.
        let this = self.get_mut();
        match this {
            EchoBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            EchoBody::Echo {
                inner,
                newline_sent,
            } => loop {
                if *newline_sent {
                    return Poll::Ready(None);
                }
                match Pin::new(&mut *inner).poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) if data.is_empty() => continue,
                        Ok(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                        // Request trailers are not echoed: our newline has to
                        // come after the data and before any trailers.
                        Err(_trailers) => continue,
                    },
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                    Poll::Ready(None) => {
                        *newline_sent = true;
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"\n")))));
                    }
                }
            },
            EchoBody::Generated { remaining, .. } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let n = (*remaining).min(CHUNK_LEN as u64) as usize;
                *remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&PATTERN[..n])))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            EchoBody::Full(data) => !matches!(data, Some(d) if !d.is_empty()),
            EchoBody::Echo { newline_sent, .. } => *newline_sent,
            EchoBody::Generated { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            EchoBody::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            EchoBody::Echo {
                inner,
                newline_sent,
            } => {
                if *newline_sent {
                    return SizeHint::with_exact(0);
                }
                // A Content-Length request gives an exact hint, so the reply
                // gets Content-Length N+1; a chunked request gives none, so
                // hyper replies chunked too.
                match inner.size_hint().exact() {
                    Some(n) => SizeHint::with_exact(n.saturating_add(1)),
                    None => {
                        let mut hint = SizeHint::new();
                        hint.set_lower(1);
                        hint
                    }
                }
            }
            EchoBody::Generated { remaining, chunked } => {
                if *chunked && *remaining > 0 {
                    SizeHint::new()
                } else {
                    SizeHint::with_exact(*remaining)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn generated_exact_length() {
        let body = EchoBody::generated(200_000, false);
        assert_eq!(body.size_hint().exact(), Some(200_000));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), 200_000);
        assert_eq!(&bytes[..10], b"0123456789");
        assert_eq!(bytes[63], b'\n');
    }

    #[tokio::test]
    async fn generated_chunked_has_no_exact_hint() {
        let body = EchoBody::generated(10, true);
        assert_eq!(body.size_hint().exact(), None);
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 10);
        assert!(EchoBody::generated(0, true).is_end_stream());
    }

    #[tokio::test]
    async fn full_and_empty() {
        let b = EchoBody::full("hi");
        assert_eq!(b.size_hint().exact(), Some(2));
        assert_eq!(b.collect().await.unwrap().to_bytes(), "hi");
        assert!(EchoBody::empty().is_end_stream());
    }
}
