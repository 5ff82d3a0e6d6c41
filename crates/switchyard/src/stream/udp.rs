//! UDP sessions (`listen ... udp`): datagrams from one client address make
//! one session, as nginx's stream module groups them. A session sends the
//! client's datagrams to one peer from a socket of its own and sends the
//! peer's answers back from the listening socket; it ends when
//! `proxy_responses` answers per request came (and `proxy_requests`
//! requests, if set), or when `proxy_timeout` passes without traffic.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::vars::{Session, Try};
use crate::config::model::{StreamHandler, StreamServer};
use crate::http::generation::Generation;
use crate::http::server::{Shared, Slot};
use crate::observe::{error_log, ErrorLevel};
use crate::upstream::PeerAddr;

/// The largest datagram (IPv4's UDP payload limit).
const MAX_DATAGRAM: usize = 65_535;

/// Datagrams waiting for a session before new ones are dropped (UDP may
/// drop; a slow session must not hold unbounded memory).
const QUEUE: usize = 64;

/// Receives on a UDP listener until shutdown, handing each client's
/// datagrams to its session.
pub async fn recv_loop(socket: UdpSocket, shared: Arc<Shared>) {
    let socket = Arc::new(socket);
    let Ok(local) = socket.local_addr() else {
        return;
    };
    let mut stopping = shared.stopping.clone();
    let mut sessions: HashMap<SocketAddr, (u64, mpsc::Sender<Vec<u8>>)> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Note>();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (datagram, client) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, client)) => (buf[..n].to_vec(), client),
                Err(e) => {
                    // An ICMP error for an earlier send_to, or a transient
                    // failure: the listener goes on.
                    error_log::log(
                        ErrorLevel::Info,
                        None,
                        &format!("recvmsg() failed ({})", error_log::os_error(&e)),
                    );
                    continue;
                }
            },
            Some(note) = done_rx.recv() => match note {
                Note::Unbind(client, id) => {
                    if sessions.get(&client).is_some_and(|(i, _)| *i == id) {
                        sessions.remove(&client);
                    }
                    continue;
                }
                // A datagram an unbound session got late: handled as new.
                Note::Again(client, datagram) => (datagram, client),
            },
            _ = stopping.wait_for(|s| *s) => return,
        };
        if let Some((_, tx)) = sessions.get(&client) {
            match tx.try_send(datagram) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Full(_)) => continue,
                Err(mpsc::error::TrySendError::Closed(d)) => {
                    sessions.remove(&client);
                    if let Some(entry) = start(&shared, &socket, local, client, d, &done_tx) {
                        sessions.insert(client, entry);
                    }
                    continue;
                }
            }
        }
        if let Some(entry) = start(&shared, &socket, local, client, datagram, &done_tx) {
            sessions.insert(client, entry);
        }
    }
}

/// What a session tells its listener.
enum Note {
    /// Session `id` no longer takes the datagrams of the client address.
    Unbind(SocketAddr, u64),
    /// A datagram of the client that reached a session after it unbound.
    Again(SocketAddr, Vec<u8>),
}

/// Starts the session of `client` with its first datagram.
fn start(
    shared: &Arc<Shared>,
    socket: &Arc<UdpSocket>,
    local: SocketAddr,
    client: SocketAddr,
    first: Vec<u8>,
    done: &mpsc::UnboundedSender<Note>,
) -> Option<(u64, mpsc::Sender<Vec<u8>>)> {
    let slot = Slot::admit(shared)?;
    let id = shared.next_connection.fetch_add(1, Ordering::Relaxed) + 1;
    let (tx, rx) = mpsc::channel(QUEUE);
    let generation = shared.current.load_full();
    let socket = socket.clone();
    let done = done.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let inbox = Inbox {
            rx,
            notes: done.clone(),
            client,
            id,
            bound: true,
        };
        serve(id, generation, socket, local, client, first, inbox).await;
        let _ = done.send(Note::Unbind(client, id));
    });
    Some((id, tx))
}

async fn serve(
    id: u64,
    generation: Arc<Generation>,
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    client: SocketAddr,
    first: Vec<u8>,
    mut rx: Inbox,
) {
    let Some(bound) = generation
        .stream
        .server_for(&PeerAddr::Inet(local), true)
        .cloned()
    else {
        return;
    };
    let server = bound.server.clone();
    error_log::log(
        ErrorLevel::Info,
        Some(id),
        &format!("udp client {client} connected to {}", bound.listen),
    );
    let mut session = Session {
        id,
        remote: PeerAddr::Inet(client),
        local: PeerAddr::Inet(local),
        listen: bound.listen,
        start: Instant::now(),
        status: 200,
        bytes_received: 0,
        bytes_sent: 0,
        tries: Vec::new(),
        set: Vec::new(),
        maps: generation.stream.maps.clone(),
        splits: generation.stream.splits.clone(),
        geos: generation.stream.geos.clone(),
        udp: true,
        proxy_protocol: None,
        proxy_protocol_tlvs: None,
        limit_conn_status: None,
        ssl_preread: None,
        ssl: None,
    };
    for (name, value) in &server.set {
        let value = value.render(&session);
        session.set.push((name.clone(), value));
    }
    let limits = super::limit::enter(&mut session, &server, &generation.stream.zones);
    if limits.is_err() {
        session.status = 503;
    } else if !super::session::allowed(&server.access, &session.remote) {
        error_log::error(
            Some(id),
            &format!("access forbidden by rule{}", session.context()),
        );
        session.status = 403;
    } else {
        match &server.handler {
            StreamHandler::Return(text) => {
                let value = text.render_bytes(&session);
                session.bytes_received = first.len() as u64;
                if socket.send_to(&value, client).await.is_ok() {
                    session.bytes_sent = value.len() as u64;
                }
            }
            StreamHandler::None => session.status = 500,
            StreamHandler::Proxy(_) | StreamHandler::ProxyVars(_) => {
                proxy(&mut session, &server, &generation, &socket, first, &mut rx).await
            }
        }
    }
    bound.log.write(&session);
}

/// A session's datagrams from its client, and the way to give up its
/// binding to the client's address.
struct Inbox {
    rx: mpsc::Receiver<Vec<u8>>,
    notes: mpsc::UnboundedSender<Note>,
    client: SocketAddr,
    id: u64,
    bound: bool,
}

impl Inbox {
    /// New datagrams of the client go to a new session from now on.
    fn release(&mut self) {
        if std::mem::replace(&mut self.bound, false) {
            let _ = self.notes.send(Note::Unbind(self.client, self.id));
        }
    }

    /// Hands a datagram that came after the release back to the listener.
    fn pass_on(&self, datagram: Vec<u8>) {
        let _ = self.notes.send(Note::Again(self.client, datagram));
    }
}

/// Datagram counts of a UDP session.
#[derive(Default)]
struct Packets {
    requests: u32,
    responses: u64,
}

impl Packets {
    /// nginx's test for a finished UDP session: the requests allowed came
    /// (if limited) and the responses expected for them.
    fn done(&self, server: &StreamServer) -> bool {
        if server.requests > 0 && self.requests < server.requests {
            return false;
        }
        match server.responses {
            None => false,
            Some(r) => self.responses >= u64::from(r) * u64::from(self.requests),
        }
    }
}

async fn proxy(
    session: &mut Session,
    server: &StreamServer,
    generation: &Generation,
    socket: &UdpSocket,
    first: Vec<u8>,
    rx: &mut Inbox,
) {
    let Some(upstream) = super::target::upstream_for(session, server, generation).await else {
        session.status = 500;
        return;
    };
    let key = match &upstream.config.hash_key {
        Some(template) => template.render(&*session).into_bytes(),
        None => Vec::new(),
    };
    let picked = upstream
        .start()
        .and_then(|mut attempt| upstream.pick(&mut attempt, &key));
    let Some(picked) = picked else {
        super::proxy::no_live(session, &upstream);
        session.status = 502;
        return;
    };
    let started = Instant::now();
    session.tries.push(Try {
        addr: picked.label.clone(),
        ..Default::default()
    });
    let Ok(bind) = super::proxy::bind_address(session, server) else {
        upstream.finish(picked.id, true);
        session.status = 500;
        return;
    };
    // A datagram session has no next upstream: nginx sends to one peer.
    let peer = match connect(&picked.addr, bind).await {
        Ok(p) => p,
        Err(e) => {
            error_log::error(
                Some(session.id),
                &format!(
                    "connect() failed ({}) while connecting to upstream{}",
                    error_log::os_error(&e),
                    session.context()
                ),
            );
            upstream.finish(picked.id, false);
            session.status = 502;
            return;
        }
    };
    if let Some(t) = session.tries.last_mut() {
        t.connect = Some(started.elapsed());
    }
    let (outcome, failed) = exchange(session, server, socket, &peer, first, rx, started).await;
    if let Some(t) = session.tries.last_mut() {
        t.session = Some(started.elapsed());
    }
    if failed {
        picked.metrics.failure();
    }
    upstream.finish(picked.id, !failed);
    session.status = outcome;
}

async fn connect(addr: &PeerAddr, bind: Option<SocketAddr>) -> std::io::Result<UdpSocket> {
    let Some(addr) = addr.inet() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "datagrams to a unix socket are not supported yet",
        ));
    };
    let any: SocketAddr = if addr.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = UdpSocket::bind(bind.unwrap_or(any)).await?;
    socket.connect(addr).await?;
    Ok(socket)
}

/// Moves datagrams until the session is done; returns its status and
/// whether the peer failed (an error reading from it, or no answer when
/// one was expected).
async fn exchange(
    session: &mut Session,
    server: &StreamServer,
    socket: &UdpSocket,
    peer: &UdpSocket,
    first: Vec<u8>,
    rx: &mut Inbox,
    started: Instant,
) -> (u16, bool) {
    let mut packets = Packets::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut pending = Some(first);
    let mut last = Instant::now();
    let mut client_open = true;
    // proxy_upload_rate / proxy_download_rate: a datagram is never split;
    // after one of n bytes that direction waits n * 1000 / rate ms.
    let upload_rate = server.upload_rate.value(&*session);
    let download_rate = server.download_rate.value(&*session);
    let mut up_ready = Instant::now();
    let mut down_ready = Instant::now();
    let pause = |n: usize, rate: u64| {
        Duration::from_millis((n as u64 * 1000).checked_div(rate).unwrap_or(0))
    };
    loop {
        let up_open = Instant::now() >= up_ready;
        if let Some(datagram) = pending.take_if(|_| up_open) {
            up_ready = Instant::now() + pause(datagram.len(), upload_rate);
            packets.requests += 1;
            session.bytes_received += datagram.len() as u64;
            match peer.send(&datagram).await {
                Ok(n) => {
                    if let Some(t) = session.tries.last_mut() {
                        t.sent += n as u64;
                    }
                }
                Err(e) => {
                    error_log::error(
                        Some(session.id),
                        &format!(
                            "send() failed ({}) while proxying and sending to upstream{}",
                            error_log::os_error(&e),
                            session.context()
                        ),
                    );
                    return (502, true);
                }
            }
            last = Instant::now();
        }
        if packets.done(server) {
            udp_summary(session, &packets, "udp done");
            return (200, false);
        }
        let requests_full = server.requests > 0 && packets.requests >= server.requests;
        if requests_full {
            // nginx drops the binding once proxy_requests came: the
            // client's next datagram starts a new session while this one
            // waits for its answers.
            rx.release();
        }
        // A delayed side does not count as idle (nginx stops the timer).
        let busy_until = last.max(up_ready).max(down_ready);
        let idle = server.timeout.saturating_sub(busy_until.elapsed());
        let down_open = Instant::now() >= down_ready;
        tokio::select! {
            _ = tokio::time::sleep_until(up_ready.into()), if pending.is_some() => {}
            _ = tokio::time::sleep_until(down_ready.into()), if !down_open => {}
            d = rx.rx.recv(), if client_open && pending.is_none() => match d {
                Some(d) if requests_full => rx.pass_on(d),
                Some(d) => pending = Some(d),
                None => client_open = false,
            },
            r = peer.recv(&mut buf), if down_open => match r {
                Ok(n) => {
                    down_ready = Instant::now() + pause(n, download_rate);
                    if let Some(t) = session.tries.last_mut() {
                        t.received += n as u64;
                        t.first_byte.get_or_insert(started.elapsed());
                    }
                    packets.responses += 1;
                    if socket.send_to(&buf[..n], rx.client).await.is_ok() {
                        session.bytes_sent += n as u64;
                    }
                    last = Instant::now();
                }
                Err(e) => {
                    error_log::error(
                        Some(session.id),
                        &format!(
                            "recv() failed ({}) while proxying and reading from upstream{}",
                            error_log::os_error(&e),
                            session.context()
                        ),
                    );
                    return (502, true);
                }
            },
            _ = tokio::time::sleep(idle) => {
                let answered = server.responses.is_none_or(|r| {
                    packets.responses >= u64::from(r) * u64::from(packets.requests)
                });
                if answered {
                    // Every answer expected came (or any number was fine):
                    // a normal end, as nginx ends it.
                    udp_summary(session, &packets, "udp timed out");
                    return (200, false);
                }
                error_log::error(
                    Some(session.id),
                    &format!(
                        "upstream timed out (110: Connection timed out) while proxying connection{}",
                        session.context()
                    ),
                );
                return (502, true);
            }
        }
    }
}

/// nginx's info line at the end of a UDP session (without the usual
/// context, as nginx writes it).
fn udp_summary(session: &Session, packets: &Packets, what: &str) {
    let (received, sent) = session
        .tries
        .last()
        .map(|t| (t.received, t.sent))
        .unwrap_or((0, 0));
    error_log::log(
        ErrorLevel::Info,
        Some(session.id),
        &format!(
            "{what}, packets from/to client:{}/{}, bytes from/to client:{}/{}, bytes from/to upstream:{received}/{sent}",
            packets.requests, packets.responses, session.bytes_received, session.bytes_sent
        ),
    );
}
