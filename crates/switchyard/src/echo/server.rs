//! The accept loop, per-connection HTTP/1 serving and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{handler, EchoConfig};

/// Serves HTTP/1.0 and HTTP/1.1 (with keep-alive) on `listener` until
/// `shutdown` completes, then stops accepting, lets in-flight requests finish
/// for at most `config.shutdown_grace`, and returns.
pub async fn serve(
    listener: TcpListener,
    config: Arc<EchoConfig>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Small responses (JSON, echo of a small POST) should
                    // not wait for Nagle.
                    let _ = stream.set_nodelay(true);
                    match config.tls.clone() {
                        None => {
                            conns.spawn(serve_conn(stream, peer, config.clone(), stop_rx.clone()));
                        }
                        Some(tls) => {
                            conns.spawn(serve_tls(tls, stream, peer, config.clone(), stop_rx.clone()));
                        }
                    }
                }
                Err(e) => {
                    // Typically EMFILE; back off instead of spinning on it.
                    tracing::warn!("echo: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Reap finished connections so the set does not grow forever.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    // Closing the listener first makes new connections fail fast (refused)
    // instead of queueing on a server that will never answer them.
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(config.shutdown_grace, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            "echo: {} connection(s) still busy after {:?}, aborting them",
            conns.len(),
            config.shutdown_grace
        );
        conns.abort_all();
    }
    Ok(())
}

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `--tls`: the handshake, then HTTP/1 over it as over plain TCP.
async fn serve_tls(
    tls: super::TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<EchoConfig>,
    stop: watch::Receiver<bool>,
) {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.0.accept(stream)).await {
        Ok(Ok(stream)) => serve_conn(stream, peer, config, stop).await,
        Ok(Err(e)) => tracing::debug!("echo: TLS handshake with {peer} failed: {e}"),
        Err(_) => tracing::debug!("echo: TLS handshake with {peer} timed out"),
    }
}

async fn serve_conn<S>(
    stream: S,
    peer: SocketAddr,
    config: Arc<EchoConfig>,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| handler::handle(req, peer, config.clone()));
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        // echo-golem (Python's http.server) writes names in their usual
        // case (`Content-Type`, `X-Served-By`); a balancer passes them on.
        .title_case_headers(true)
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!("echo: connection from {peer}: {e}");
            }
        }
        // wait_for also fires if shutdown was requested before this task
        // started, and on a dropped sender; both mean "stop".
        // The async block drops wait_for's read guard before we await the
        // connection below (the guard is not Send).
        _ = async { let _ = stop.wait_for(|stopping| *stopping).await; } => {
            // Finish the request in flight (if any), then close; idle
            // keep-alive connections close immediately.
            conn.as_mut().graceful_shutdown();
            if let Err(e) = conn.await {
                tracing::debug!("echo: connection from {peer} during shutdown: {e}");
            }
        }
    }
}

/// A future that completes on the first SIGTERM or SIGINT.
///
/// Created eagerly (not inside the future) so the handlers are installed by
/// the time the caller announces readiness.
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(
        grace: Duration,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = EchoConfig::new("inproc").unwrap();
        config.shutdown_grace = grace;
        config.access_log = false;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(serve(listener, Arc::new(config), async {
            let _ = rx.await;
        }));
        (addr, tx, task)
    }

    async fn roundtrip(addr: SocketAddr, req: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(req).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn serves_in_process_and_stops_on_future() {
        let (addr, stop, task) = start(Duration::from_secs(10)).await;
        let resp = roundtrip(
            addr,
            b"POST / HTTP/1.0\r\nContent-Length: 14\r\n\r\n{\"foo\": \"bar\"}",
        )
        .await;
        assert!(resp.starts_with("HTTP/1.0 200 OK\r\n"), "{resp}");
        assert!(resp.contains("X-Served-By: inproc\r\n"), "{resp}");
        assert!(resp.ends_with("\r\n\r\n{\"foo\": \"bar\"}\n"), "{resp}");
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn shutdown_is_bounded_by_grace() {
        let (addr, stop, task) = start(Duration::from_millis(200)).await;
        let slow = tokio::spawn(roundtrip(
            addr,
            b"GET /?delay=20s HTTP/1.1\r\nHost: t\r\n\r\n",
        ));
        // Let the slow request reach its handler before asking to stop.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
        assert!(t.elapsed() < Duration::from_secs(5));
        // The aborted request's connection is simply dropped.
        assert_eq!(slow.await.unwrap(), "");
    }
}
