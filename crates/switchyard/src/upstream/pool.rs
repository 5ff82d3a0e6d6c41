//! Idle upstream connections (`keepalive N` in an upstream): kept after a
//! response that allows it, reused by the next request to the same peer,
//! closed after `keepalive_timeout` idle, `keepalive_time` of life or
//! `keepalive_requests` requests. One pool per upstream group, shared by
//! every worker thread.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::io::UpstreamIo;
use bytes::BytesMut;

use crate::config::model::KeepalivePool;

/// What an idle connection is kept under: its peer, and for TLS the
/// context that made it and the name it was made for, so that a TLS
/// connection never serves a plain peer, another location's client
/// certificate or another SNI name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolKey {
    /// The peer's address.
    pub addr: SocketAddr,
    /// `None` for plain TCP; the TLS context's id and the ssl name.
    pub tls: Option<(u64, Arc<str>)>,
}

impl PoolKey {
    /// The key of a plain connection to `addr`.
    pub fn plain(addr: SocketAddr) -> PoolKey {
        PoolKey { addr, tls: None }
    }
}

/// An upstream connection, new or reused.
pub struct Connection {
    /// The socket, plain or TLS.
    pub stream: UpstreamIo,
    /// Bytes read from it and not yet used (empty between requests).
    pub buffer: BytesMut,
    /// When it was opened.
    pub born: Instant,
    /// Requests sent on it so far (including the current one once sent).
    pub requests: u64,
    /// Whether it came from the pool (a failure before any response byte
    /// then means the peer closed it while idle: retry on a new one).
    pub reused: bool,
}

impl Connection {
    /// A new connection.
    pub fn new(stream: UpstreamIo) -> Connection {
        Connection {
            stream,
            buffer: BytesMut::new(),
            born: Instant::now(),
            requests: 0,
            reused: false,
        }
    }

    /// Whether an idle connection is still open: the peer has neither
    /// closed it nor sent anything unasked (one non-blocking read).
    pub fn is_alive(&self) -> bool {
        self.stream.is_alive()
    }
}

struct Idle {
    key: PoolKey,
    connection: Connection,
    since: Instant,
}

/// The idle connections of one upstream group.
pub struct Pool {
    limits: KeepalivePool,
    idle: Mutex<VecDeque<Idle>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("limits", &self.limits)
            .finish()
    }
}

impl Pool {
    /// An empty pool with these limits.
    pub fn new(limits: KeepalivePool) -> Pool {
        Pool {
            limits,
            idle: Mutex::new(VecDeque::new()),
        }
    }

    /// `keepalive_time` is checked when a connection comes back (`put`), as
    /// nginx checks it when it frees a peer: one taken in time serves its
    /// request even if its life ends meanwhile.
    fn usable(&self, idle: &Idle, now: Instant) -> bool {
        now.duration_since(idle.since) < self.limits.timeout
    }

    /// Closes the connections idle longer than `keepalive_timeout`. They
    /// sit oldest first, so this stops at the first one still fresh.
    fn expire(&self, idle: &mut VecDeque<Idle>, now: Instant) {
        while idle
            .front()
            .is_some_and(|i| now.duration_since(i.since) >= self.limits.timeout)
        {
            idle.pop_front();
        }
    }

    /// An idle connection under `key`, most recently used first.
    pub fn take(&self, key: &PoolKey) -> Option<Connection> {
        let now = Instant::now();
        let mut idle = self.idle.lock().ok()?;
        self.expire(&mut idle, now);
        while let Some(position) = idle.iter().rposition(|i| i.key == *key) {
            let mut found = idle.remove(position)?;
            if self.usable(&found, now) {
                found.connection.reused = true;
                return Some(found.connection);
            }
        }
        None
    }

    /// Returns a connection whose response is complete. Connections past
    /// their request or age limits are closed (dropped) instead; when the
    /// pool is full, the least recently used one goes.
    pub fn put(&self, key: PoolKey, connection: Connection) {
        let now = Instant::now();
        if connection.requests >= self.limits.requests
            || now.duration_since(connection.born) >= self.limits.time
            || !connection.buffer.is_empty()
        {
            return;
        }
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        self.expire(&mut idle, now);
        if idle.len() >= self.limits.idle {
            idle.pop_front();
        }
        idle.push_back(Idle {
            key,
            connection,
            since: now,
        });
    }

    /// How many connections are idle now (for tests and metrics).
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|i| i.len()).unwrap_or(0)
    }
}
