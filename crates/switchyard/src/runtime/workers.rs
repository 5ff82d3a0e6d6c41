//! Worker threads: one single-threaded tokio runtime per worker
//! (`worker_processes`), each accepting on every listening socket and
//! serving its connections start to finish, as an nginx worker process
//! does. A connection never migrates between threads, so there is no work
//! stealing and an idle worker sleeps instead of looking for work (the
//! benchmark in bench/ chose this over tokio's multi-threaded scheduler).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::listeners::Listener;
use crate::http::server::{accept_loop, Shared};
use crate::observe::error_log;
use crate::transport::accept::Acceptor;
use crate::upstream::addr::PeerAddr;

/// Which module serves a listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `http { server { listen } }`.
    Http,
    /// `stream { server { listen } }`.
    Stream,
}

/// What the main thread tells a worker.
enum Command {
    /// Accept on this socket (a duplicate of the bound one).
    Listen(PeerAddr, Listener, Kind),
    /// Stop accepting on this address.
    Unlisten(PeerAddr),
    /// Receive stream datagrams on this UDP socket (a duplicate).
    ListenUdp(SocketAddr, std::net::UdpSocket),
    /// Stop receiving on this UDP address (sessions in flight finish).
    UnlistenUdp(SocketAddr),
}

/// The running workers.
pub struct Workers {
    senders: Vec<mpsc::UnboundedSender<Command>>,
}

impl Workers {
    /// Starts `count` worker threads serving with `shared`.
    pub fn start(count: usize, shared: Arc<Shared>) -> Result<Workers, String> {
        let mut senders = Vec::with_capacity(count);
        crate::upstream::pool::set_workers(count.max(1));
        for index in 0..count.max(1) {
            let (tx, rx) = mpsc::unbounded_channel();
            let shared = shared.clone();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start worker {index}: {e}"))?;
            std::thread::Builder::new()
                .name(format!("switchyard worker {index}"))
                .spawn(move || {
                    crate::upstream::pool::set_worker(index);
                    runtime.block_on(worker(rx, shared))
                })
                .map_err(|e| format!("cannot start worker {index}: {e}"))?;
            senders.push(tx);
        }
        Ok(Workers { senders })
    }

    /// Every worker accepts on `listener` from now on, for `kind`.
    pub fn listen(&self, addr: &PeerAddr, listener: &Listener, kind: Kind) -> Result<(), String> {
        for sender in &self.senders {
            let copy = listener.try_clone().map_err(|e| {
                format!(
                    "dup() of the {addr} listener failed ({})",
                    error_log::os_error(&e)
                )
            })?;
            let _ = sender.send(Command::Listen(addr.clone(), copy, kind));
        }
        Ok(())
    }

    /// Every worker receives stream datagrams on `socket` from now on.
    pub fn listen_udp(&self, addr: SocketAddr, socket: &std::net::UdpSocket) -> Result<(), String> {
        for sender in &self.senders {
            let copy = socket.try_clone().map_err(|e| {
                format!(
                    "dup() of the {addr} udp listener failed ({})",
                    error_log::os_error(&e)
                )
            })?;
            let _ = sender.send(Command::ListenUdp(addr, copy));
        }
        Ok(())
    }

    /// Every worker stops receiving on the UDP `addr`.
    pub fn unlisten_udp(&self, addr: SocketAddr) {
        for sender in &self.senders {
            let _ = sender.send(Command::UnlistenUdp(addr));
        }
    }

    /// Every worker stops accepting on `addr` (connections stay).
    pub fn unlisten(&self, addr: &PeerAddr) {
        for sender in &self.senders {
            let _ = sender.send(Command::Unlisten(addr.clone()));
        }
    }
}

async fn worker(mut commands: mpsc::UnboundedReceiver<Command>, shared: Arc<Shared>) {
    let mut accepting: HashMap<PeerAddr, JoinHandle<()>> = HashMap::new();
    let mut receiving: HashMap<SocketAddr, JoinHandle<()>> = HashMap::new();
    while let Some(command) = commands.recv().await {
        match command {
            Command::Listen(addr, listener, kind) => {
                let acceptor = match listener {
                    Listener::Tcp(l) => tokio::net::TcpListener::from_std(l).map(Acceptor::Tcp),
                    Listener::Unix(l) => tokio::net::UnixListener::from_std(l)
                        .map(|l| Acceptor::Unix(l, addr.clone())),
                };
                match acceptor {
                    Ok(listener) => {
                        let task = match kind {
                            Kind::Http => tokio::spawn(accept_loop(listener, shared.clone())),
                            Kind::Stream => tokio::spawn(crate::stream::session::accept_loop(
                                listener,
                                shared.clone(),
                            )),
                        };
                        if let Some(old) = accepting.insert(addr, task) {
                            old.abort();
                        }
                    }
                    Err(e) => error_log::error(None, &format!("cannot accept on {addr}: {e}")),
                }
            }
            Command::Unlisten(addr) => {
                if let Some(task) = accepting.remove(&addr) {
                    task.abort();
                }
            }
            Command::ListenUdp(addr, socket) => match tokio::net::UdpSocket::from_std(socket) {
                Ok(socket) => {
                    let task = tokio::spawn(crate::stream::udp::recv_loop(socket, shared.clone()));
                    if let Some(old) = receiving.insert(addr, task) {
                        old.abort();
                    }
                }
                Err(e) => error_log::error(None, &format!("cannot receive on {addr} (udp): {e}")),
            },
            Command::UnlistenUdp(addr) => {
                if let Some(task) = receiving.remove(&addr) {
                    task.abort();
                }
            }
        }
    }
    // The main thread is gone: the process is exiting.
}
