//! The echo backend's layer-4 modes, for `stream {}` load balancing: a TCP
//! echo (every byte sent back, until the client closes its side) and a UDP
//! echo (every datagram answered with itself). With `--tag`, each names the
//! instance that answered: a TCP connection starts with `NAME\n`, a UDP
//! answer with `NAME ` before the datagram, so a client behind a balancer
//! sees which backend took it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;

/// What one layer-4 echo server says about itself.
#[derive(Debug, Clone)]
pub struct RawEcho {
    /// The instance name (log lines, `--tag`).
    pub name: String,
    /// Whether answers carry the name.
    pub tag: bool,
}

/// Largest datagram answered whole (the IPv4 UDP payload limit).
const MAX_DATAGRAM: usize = 65_507;

/// How long a TCP session may stay after shutdown was asked for.
const TCP_GRACE: Duration = Duration::from_secs(5);

/// Echoes TCP connections on `listener` until `shutdown` completes; then
/// stops accepting and gives open sessions [`TCP_GRACE`] to end.
pub async fn serve_tcp(
    listener: TcpListener,
    echo: Arc<RawEcho>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut sessions = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    sessions.spawn(tcp_session(stream, peer, echo.clone()));
                }
                Err(e) => {
                    eprintln!("echo: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while sessions.join_next().await.is_some() {} };
    if tokio::time::timeout(TCP_GRACE, drain).await.is_err() {
        sessions.abort_all();
    }
    Ok(())
}

/// One TCP session: the tag line, then every byte back; the client's
/// half-close is passed on (our side closes after the last byte).
async fn tcp_session(mut stream: TcpStream, peer: SocketAddr, echo: Arc<RawEcho>) {
    let _ = stream.set_nodelay(true);
    let mut echoed: u64 = 0;
    let result = async {
        if echo.tag {
            stream
                .write_all(format!("{}\n", echo.name).as_bytes())
                .await?;
        }
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            stream.write_all(&buf[..n]).await?;
            echoed += n as u64;
        }
        stream.shutdown().await
    }
    .await;
    let end = match result {
        Ok(()) => "closed".to_string(),
        Err(e) => format!("ended: {e}"),
    };
    println!(
        "{peer} tcp session {end}, {echoed} bytes echoed {}",
        echo.name
    );
}

/// Answers every datagram on `socket` with itself (tagged with `--tag`)
/// until `shutdown` completes.
pub async fn serve_udp(
    socket: UdpSocket,
    echo: Arc<RawEcho>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let prefix = format!("{} ", echo.name);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            received = socket.recv_from(&mut buf) => {
                let (n, peer) = match received {
                    Ok(r) => r,
                    // ICMP port unreachable from an earlier answer: not ours to handle.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                    Err(e) => return Err(e),
                };
                let answer = answer_datagram(&buf[..n], echo.tag.then_some(prefix.as_str()));
                if let Err(e) = socket.send_to(&answer, peer).await {
                    eprintln!("echo: cannot answer {peer}: {e}");
                    continue;
                }
                println!("{peer} udp datagram of {n} bytes echoed {}", echo.name);
            }
        }
    }
}

/// The answer to one datagram: itself, after the tag when there is one,
/// cut to the largest datagram that can be sent.
fn answer_datagram(datagram: &[u8], tag: Option<&str>) -> Vec<u8> {
    let mut answer = Vec::with_capacity(datagram.len() + tag.map_or(0, str::len));
    if let Some(tag) = tag {
        answer.extend_from_slice(tag.as_bytes());
    }
    answer.extend_from_slice(datagram);
    answer.truncate(MAX_DATAGRAM);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagram_answers() {
        assert_eq!(answer_datagram(b"ping", None), b"ping");
        assert_eq!(answer_datagram(b"ping", Some("node1 ")), b"node1 ping");
        let big = vec![b'x'; MAX_DATAGRAM];
        assert_eq!(answer_datagram(&big, Some("n ")).len(), MAX_DATAGRAM);
    }
}
