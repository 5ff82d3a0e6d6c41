//! A transport that gives back bytes already read from it before reading
//! on: the HTTP/1 driver (or the TLS acceptor) has read the start of the
//! client preface to recognise HTTP/2, and the h2 codec must see it too.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, ReadBuf};

/// `inner`, with `preread` in front of what it reads.
pub struct Rewind<S> {
    preread: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    /// Reads `preread` first, then `inner`.
    pub fn new(inner: S, preread: Bytes) -> Rewind<S> {
        Rewind { preread, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.preread.has_remaining() {
            let n = this.preread.len().min(buf.remaining());
            buf.put_slice(&this.preread[..n]);
            this.preread.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

write_through!(Rewind);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn preread_comes_first() {
        let (mut client, server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b" world")
            .await
            .unwrap();
        drop(client);
        let mut r = Rewind::new(server, Bytes::from_static(b"hello"));
        let mut out = String::new();
        r.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }
}
