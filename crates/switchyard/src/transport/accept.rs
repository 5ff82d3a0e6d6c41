//! Accepting client connections on a listening socket: TCP, or a Unix
//! domain socket (`listen unix:PATH`), each connection handed on with the
//! addresses nginx's variables and log lines read.
//!
//! A connection accepted on a Unix socket is served as a
//! [`tokio::net::TcpStream`] over its descriptor: both are connected
//! stream sockets, and what the engines do with one (read, write, peek,
//! shutdown, splice, park in the worker's parking lot) is the same system
//! call on either. What only TCP has is not asked of it: TCP_NODELAY is
//! set for IP connections only (as nginx does), and the addresses come
//! from here, never from the socket. One stream type keeps the HTTP/1,
//! HTTP/2, TLS and stream engines written once.

use std::os::fd::OwnedFd;

use tokio::net::{TcpListener, TcpStream, UnixListener};

use crate::upstream::addr::PeerAddr;

/// A listening socket of a worker.
#[derive(Debug)]
pub enum Acceptor {
    /// A TCP socket.
    Tcp(TcpListener),
    /// A Unix-domain socket, with its `listen` address (`unix:PATH`),
    /// which is every connection's local address, as nginx copies the
    /// listening socket's into each.
    Unix(UnixListener, PeerAddr),
}

/// One accepted connection.
#[derive(Debug)]
pub struct Accepted {
    /// Its byte stream (see the module's note on Unix sockets).
    pub stream: TcpStream,
    /// The client: its IP address and port, or a Unix socket's peer
    /// (`unix:`, with the path it bound if any).
    pub remote: PeerAddr,
    /// The address it connected to.
    pub local: PeerAddr,
}

impl Acceptor {
    /// The next connection.
    pub async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Acceptor::Tcp(listener) => {
                let (stream, remote) = listener.accept().await?;
                let local = stream.local_addr().unwrap_or(remote);
                Ok(Accepted {
                    stream,
                    remote: PeerAddr::Inet(remote),
                    local: PeerAddr::Inet(local),
                })
            }
            Acceptor::Unix(listener, path) => {
                let (stream, peer) = listener.accept().await?;
                let remote = PeerAddr::Unix(std::sync::Arc::from(
                    peer.as_pathname().unwrap_or(std::path::Path::new("")),
                ));
                // into_std leaves the descriptor non-blocking, as
                // from_std wants it.
                let fd: OwnedFd = stream.into_std()?.into();
                let stream = TcpStream::from_std(std::net::TcpStream::from(fd))?;
                Ok(Accepted {
                    stream,
                    remote,
                    local: path.clone(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_unix_connection_reads_writes_and_peeks_as_a_stream() {
        let dir = std::env::temp_dir().join(format!("sy-accept-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("a.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let addr = PeerAddr::Unix(std::sync::Arc::from(path.as_path()));
        let acceptor = Acceptor::Unix(listener, addr.clone());
        let mut client = tokio::net::UnixStream::connect(&path).await.unwrap();
        let mut accepted = acceptor.accept().await.unwrap();
        assert_eq!(accepted.local, addr);
        assert_eq!(accepted.remote.to_string(), "unix:");
        assert_eq!(accepted.remote.port(), None);
        client.write_all(b"ping").await.unwrap();
        let mut peeked = [0u8; 4];
        let n = accepted.stream.peek(&mut peeked).await.unwrap();
        assert_eq!(&peeked[..n], &b"ping"[..n]);
        let mut read = [0u8; 4];
        accepted.stream.read_exact(&mut read).await.unwrap();
        assert_eq!(&read, b"ping");
        accepted.stream.write_all(b"pong").await.unwrap();
        accepted.stream.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"pong");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
