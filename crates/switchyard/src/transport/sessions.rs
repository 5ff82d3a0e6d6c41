//! TLS session resumption with nginx's lifetime: `ssl_session_timeout`
//! bounds both a cached session and a ticket, which rustls alone does not
//! do (its ticketer advertises six hours and its cache keeps entries until
//! they are pushed out).
//!
//! Both wrappers put the creation time in front of what rustls stores and
//! refuse what is older than the timeout; in a ticket the time is inside
//! the encrypted, authenticated part, so a client cannot change it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::server::{ProducesTickets, StoresServerSessions};

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn stamp(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&now_secs().to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// The value behind a stamp, if it is younger than `timeout`.
fn fresh(stamped: Vec<u8>, timeout: Duration) -> Option<Vec<u8>> {
    let head: [u8; 8] = stamped.get(..8)?.try_into().ok()?;
    let created = u64::from_be_bytes(head);
    if now_secs().saturating_sub(created) > timeout.as_secs() {
        return None;
    }
    Some(stamped[8..].to_vec())
}

/// Session tickets (`ssl_session_tickets on`) valid for `timeout`.
#[derive(Debug)]
pub struct TimedTickets {
    inner: Arc<dyn ProducesTickets>,
    timeout: Duration,
}

impl TimedTickets {
    /// Tickets sealed by `inner` (rustls's rotating ticketer), refused once
    /// older than `timeout`.
    pub fn new(inner: Arc<dyn ProducesTickets>, timeout: Duration) -> TimedTickets {
        TimedTickets { inner, timeout }
    }
}

impl ProducesTickets for TimedTickets {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    fn lifetime(&self) -> u32 {
        u32::try_from(self.timeout.as_secs()).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.encrypt(&stamp(plain))
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        fresh(self.inner.decrypt(cipher)?, self.timeout)
    }
}

/// A server's view of a session cache (`ssl_session_cache builtin` or
/// `shared:NAME`): entries older than `timeout` are not resumed, and keys
/// carry the server's own context so that servers sharing one named cache
/// do not resume each other's sessions (OpenSSL's session id context).
#[derive(Debug)]
pub struct TimedCache {
    inner: Arc<dyn StoresServerSessions>,
    context: u64,
    timeout: Duration,
}

impl TimedCache {
    /// `inner` seen by the server `context`.
    pub fn new(
        inner: Arc<dyn StoresServerSessions>,
        context: u64,
        timeout: Duration,
    ) -> TimedCache {
        TimedCache {
            inner,
            context,
            timeout,
        }
    }

    fn key(&self, key: &[u8]) -> Vec<u8> {
        let mut out = self.context.to_be_bytes().to_vec();
        out.extend_from_slice(key);
        out
    }
}

impl StoresServerSessions for TimedCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(self.key(&key), stamp(&value))
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        fresh(self.inner.get(&self.key(key))?, self.timeout)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        fresh(self.inner.take(&self.key(key))?, self.timeout)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_entries_are_refused() {
        let cache: Arc<dyn StoresServerSessions> =
            rustls::server::ServerSessionMemoryCache::new(16);
        let a = TimedCache::new(cache.clone(), 1, Duration::from_secs(300));
        let b = TimedCache::new(cache.clone(), 2, Duration::from_secs(300));
        assert!(a.put(b"id".to_vec(), b"session".to_vec()));
        assert_eq!(a.get(b"id").as_deref(), Some(&b"session"[..]));
        assert_eq!(b.get(b"id"), None, "another server's session");
        // An entry stamped long ago.
        let mut old = 1000u64.to_be_bytes().to_vec();
        old.extend_from_slice(b"session");
        cache.put(a.key(b"old"), old);
        assert_eq!(a.get(b"old"), None);

        let tickets = TimedTickets::new(
            rustls::crypto::ring::Ticketer::new().unwrap(),
            Duration::from_secs(60),
        );
        assert_eq!(tickets.lifetime(), 60);
        let sealed = tickets.encrypt(b"state").unwrap();
        assert_eq!(tickets.decrypt(&sealed).as_deref(), Some(&b"state"[..]));
        let mut forged = sealed.clone();
        if let Some(last) = forged.last_mut() {
            *last ^= 1;
        }
        assert_eq!(tickets.decrypt(&forged), None);
    }
}
