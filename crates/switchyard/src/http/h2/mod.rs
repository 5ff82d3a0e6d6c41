//! HTTP/2 client connections (nginx's ngx_http_v2_module), on the `h2`
//! codec: each stream becomes a request for the same handler HTTP/1 uses
//! (`http::server::handle`), and its response goes back on the stream.
//! On a plain listener with `http2 on` (or `listen ... http2`) the HTTP/1
//! driver looks for the client preface in a connection's first bytes, as
//! nginx's ngx_http_wait_request_handler does, and hands the connection
//! here; over TLS the acceptor does when ALPN chose `h2`.

/// `AsyncWrite` for a wrapper of the connection's read side (`Rewind`,
/// `Meter`): every write goes to its `inner` as it is.
macro_rules! write_through {
    ($wrapper:ident) => {
        impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $wrapper<S> {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                data: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
        }
    };
}

mod body;
mod conn;
mod linger;
mod meter;
mod preface;
mod request;
mod response;
mod rewind;

pub use body::H2Body;
pub use conn::serve;
pub use meter::StreamLength;
pub use preface::{enabled, listen_http2, preface, Preface};

/// In an HTTP/2 request's extensions: how it came (`$http2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocol {
    /// Over TLS ("h2"), or in the clear with prior knowledge ("h2c").
    pub tls: bool,
}

impl Protocol {
    /// `$http2`'s value.
    pub fn name(&self) -> &'static str {
        if self.tls {
            "h2"
        } else {
            "h2c"
        }
    }
}
