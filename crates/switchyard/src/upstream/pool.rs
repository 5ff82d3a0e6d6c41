//! Idle upstream connections (`keepalive N` in an upstream): kept after a
//! response that allows it, reused by the next request to the same peer,
//! closed after `keepalive_timeout` idle, `keepalive_time` of life or
//! `keepalive_requests` requests. One pool per upstream group and worker
//! thread, as nginx has one per worker process (`keepalive N` is per
//! worker): a socket registered with one worker's reactor is never used by
//! another worker.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
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
    pub addr: super::PeerAddr,
    /// `None` for plain TCP; the TLS context's id and the ssl name.
    pub tls: Option<(u64, Arc<str>)>,
}

impl PoolKey {
    /// The key of a plain connection to `addr`.
    pub fn plain(addr: impl Into<super::PeerAddr>) -> PoolKey {
        PoolKey {
            addr: addr.into(),
            tls: None,
        }
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

/// How many worker threads there are (set when they start).
static WORKERS: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// This thread's worker index (0 outside the workers).
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// Records that the workers are `count` threads: pools size themselves by it.
pub fn set_workers(count: usize) {
    WORKERS.store(count.max(1), Ordering::Relaxed);
}

/// Marks the calling thread as worker `index`.
pub fn set_worker(index: usize) {
    WORKER.with(|w| w.set(index));
}

/// The idle connections of one upstream group: one list per worker (each
/// lock is only ever taken by its own worker, so it is never contended).
pub struct Pool {
    limits: KeepalivePool,
    /// Made on first use, when the worker count is known (a pool may be
    /// built at load, before the workers start).
    shards: OnceLock<Box<[Mutex<VecDeque<Idle>>]>>,
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
            shards: OnceLock::new(),
        }
    }

    /// The calling worker's idle list.
    fn mine(&self) -> &Mutex<VecDeque<Idle>> {
        let shards = self.shards.get_or_init(|| {
            (0..WORKERS.load(Ordering::Relaxed))
                .map(|_| Mutex::new(VecDeque::new()))
                .collect()
        });
        &shards[WORKER.with(Cell::get) % shards.len()]
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
        let mut idle = self.mine().lock().ok()?;
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
        let Ok(mut idle) = self.mine().lock() else {
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

    /// How many connections are idle now, in all workers (for tests and
    /// metrics).
    pub fn idle_count(&self) -> usize {
        self.shards
            .get()
            .map(|shards| {
                shards
                    .iter()
                    .map(|s| s.lock().map(|i| i.len()).unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn connection(listener: &tokio::net::TcpListener) -> Connection {
        let addr = listener.local_addr().unwrap();
        let (stream, _) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        Connection::new(UpstreamIo::Plain(stream.unwrap()))
    }

    /// A worker takes back only what it put: another worker's connection
    /// belongs to another reactor; `keepalive N` holds per worker.
    #[tokio::test]
    async fn each_worker_has_its_own_idle_connections() {
        set_workers(2);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = Pool::new(KeepalivePool {
            idle: 1,
            timeout: Duration::from_secs(60),
            requests: 1000,
            time: Duration::from_secs(3600),
        });
        let key = PoolKey::plain(addr);
        set_worker(0);
        pool.put(key.clone(), connection(&listener).await);
        set_worker(1);
        assert!(pool.take(&key).is_none());
        pool.put(key.clone(), connection(&listener).await);
        assert_eq!(pool.idle_count(), 2, "one idle connection per worker");
        set_worker(0);
        assert!(pool.take(&key).is_some());
        assert!(pool.take(&key).is_none());
        // A TLS key never finds a plain connection, nor another name's.
        set_worker(1);
        let tls = PoolKey {
            addr: addr.into(),
            tls: Some((1, Arc::from("a.test"))),
        };
        assert!(pool.take(&tls).is_none());
        assert!(pool.take(&key).is_some());
        set_worker(0);
    }
}
