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

/// Ticket keys that rotate every `ssl_session_timeout`, as nginx rotates
/// its own (1.23.2): new tickets are sealed with the current key, and the
/// one before it still opens the tickets it sealed until the next turn.
/// rustls's ticketer turns its key every six hours only.
pub struct RotatingTickets {
    keys: std::sync::RwLock<Keys>,
    every: u64,
}

struct Keys {
    current: Arc<dyn ProducesTickets>,
    previous: Option<Arc<dyn ProducesTickets>>,
    /// When `current` stops sealing (Unix seconds).
    turn_at: u64,
}

impl std::fmt::Debug for RotatingTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RotatingTickets(every {}s)", self.every)
    }
}

impl RotatingTickets {
    /// Keys that turn every `timeout` (at least a second).
    pub fn new(timeout: Duration) -> Result<RotatingTickets, rustls::Error> {
        let every = timeout.as_secs().max(1);
        Ok(RotatingTickets {
            keys: std::sync::RwLock::new(Keys {
                current: rustls::crypto::ring::Ticketer::new()?,
                previous: None,
                turn_at: now_secs().saturating_add(every),
            }),
            every,
        })
    }

    /// The keys as of `now`, turned first if their time has come.
    fn keys_at(&self, now: u64) -> Option<std::sync::RwLockReadGuard<'_, Keys>> {
        {
            let keys = self.keys.read().ok()?;
            if now < keys.turn_at {
                return Some(keys);
            }
        }
        if let Ok(mut keys) = self.keys.write() {
            if now >= keys.turn_at {
                // A key that cannot be made leaves the current one on.
                if let Ok(next) = rustls::crypto::ring::Ticketer::new() {
                    let old = std::mem::replace(&mut keys.current, next);
                    // A key idle for a whole turn opens nothing any more.
                    let missed = now >= keys.turn_at.saturating_add(self.every);
                    keys.previous = (!missed).then_some(old);
                }
                keys.turn_at = now.saturating_add(self.every);
            }
        }
        self.keys.read().ok()
    }

    fn encrypt_at(&self, now: u64, plain: &[u8]) -> Option<Vec<u8>> {
        self.keys_at(now)?.current.encrypt(plain)
    }

    fn decrypt_at(&self, now: u64, cipher: &[u8]) -> Option<Vec<u8>> {
        let keys = self.keys_at(now)?;
        keys.current
            .decrypt(cipher)
            .or_else(|| keys.previous.as_ref()?.decrypt(cipher))
    }
}

impl ProducesTickets for RotatingTickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        u32::try_from(self.every).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.encrypt_at(now_secs(), plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.decrypt_at(now_secs(), cipher)
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

    #[test]
    fn ticket_keys_turn_every_timeout_and_the_last_still_opens() {
        let keys = RotatingTickets::new(Duration::from_secs(10)).unwrap();
        let start = keys.keys.read().unwrap().turn_at - 10;
        let first = keys.encrypt_at(start, b"one").unwrap();
        let again = keys.encrypt_at(start + 5, b"two").unwrap();
        // rustls's tickets start with the key's name, as nginx's do.
        assert_eq!(first[..16], again[..16], "one key within a turn");
        let next = keys.encrypt_at(start + 11, b"three").unwrap();
        assert_ne!(first[..16], next[..16], "a new key after the turn");
        assert_eq!(
            keys.decrypt_at(start + 11, &first).as_deref(),
            Some(&b"one"[..])
        );
        assert_eq!(
            keys.decrypt_at(start + 12, &next).as_deref(),
            Some(&b"three"[..])
        );
        // Two turns on, the first key is gone.
        keys.encrypt_at(start + 22, b"four").unwrap();
        assert_eq!(keys.decrypt_at(start + 22, &first), None);
        assert!(keys.decrypt_at(start + 22, &next).is_some());
    }
}
