//! The byte streams a client connection can arrive on, as the HTTP/1
//! driver (http/h1/conn.rs) serves them: plain TCP, TLS over TCP, and
//! anything else that reads and writes (tests run the driver over mock
//! I/O). The driver is written once against [`ClientStream`]; what only a
//! plain socket can do (wait for bytes holding no buffer, park in the
//! worker's parking lot) is asked of the stream, not assumed.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A client connection's byte stream.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The plain socket, when the stream is one: the driver then waits for
    /// the next request without holding a read buffer, and may park the
    /// connection (http/h1/park.rs). A TLS stream may hold decrypted bytes
    /// of its own, so waiting on its socket could miss them: it says none.
    fn plain_socket(&self) -> Option<&TcpStream> {
        None
    }

    /// The stream as a plain socket, for parking; the stream itself back
    /// when it is not one.
    fn into_plain_socket(self) -> Result<TcpStream, Self>
    where
        Self: Sized,
    {
        Err(self)
    }
}

impl ClientStream for TcpStream {
    fn plain_socket(&self) -> Option<&TcpStream> {
        Some(self)
    }

    fn into_plain_socket(self) -> Result<TcpStream, Self> {
        Ok(self)
    }
}

impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {}

/// Any stream that reads and writes, boxed: what a tunnel (an upgraded
/// connection) holds of its client, whatever the transport.
pub trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}
