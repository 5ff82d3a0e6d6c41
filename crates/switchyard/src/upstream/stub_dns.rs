//! nginx's resolver for names met at run time (`proxy_pass` with
//! variables): A and AAAA queries sent straight to the `resolver`'s name
//! servers, never to /etc/hosts and with no special names (hickory answers
//! `localhost` itself, nginx asks the server), over UDP and again over TCP
//! when the answer is truncated; answers kept for their TTL or `valid=`.
//! The messages are hickory-proto's.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hickory_resolver::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::model::ResolverSettings;

/// How often an unanswered query is sent again (to the next server),
/// as nginx's resolver resends every 5 seconds.
const RESEND: Duration = Duration::from_secs(5);

/// How many CNAMEs are followed for one name.
const MAX_CNAMES: usize = 8;

/// Answers kept per resolver; the cache holds at most this many names
/// (clients choose the names a `$host` resolves): the oldest go first.
const MAX_CACHED: usize = 4096;

/// Why a name has no addresses, with nginx's codes and words
/// (ngx_resolver_strerror).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// FORMERR.
    #[error("1: Format error")]
    Format,
    /// SERVFAIL, or an answer that makes no sense.
    #[error("2: Server failure")]
    Server,
    /// NXDOMAIN, or no address records.
    #[error("3: Host not found")]
    NotFound,
    /// NOTIMP.
    #[error("4: Unimplemented")]
    Unimplemented,
    /// REFUSED.
    #[error("5: Operation refused")]
    Refused,
    /// No answer within `resolver_timeout`.
    #[error("110: Operation timed out")]
    TimedOut,
}

struct Cached {
    addrs: Vec<IpAddr>,
    until: Instant,
}

/// The resolver of one `resolver` directive.
pub struct StubResolver {
    settings: ResolverSettings,
    /// Which server the next query goes to first (nginx rotates them).
    next_server: AtomicU16,
    cache: Mutex<HashMap<String, Cached>>,
}

impl StubResolver {
    /// The resolver of `settings`, made once and shared by every location
    /// that has the same `resolver` (the settings come from the
    /// configuration, so there are few).
    pub fn shared(settings: &ResolverSettings) -> Arc<StubResolver> {
        static SHARED: OnceLock<Mutex<HashMap<ResolverSettings, Arc<StubResolver>>>> =
            OnceLock::new();
        let mut all = match SHARED.get_or_init(Default::default).lock() {
            Ok(a) => a,
            Err(poisoned) => poisoned.into_inner(),
        };
        all.entry(settings.clone())
            .or_insert_with(|| {
                Arc::new(StubResolver {
                    settings: settings.clone(),
                    next_server: AtomicU16::new(0),
                    cache: Mutex::new(HashMap::new()),
                })
            })
            .clone()
    }

    /// The addresses of `host`, every record as the server gave it
    /// (repeated ones too: nginx makes a peer of each), within
    /// `resolver_timeout`.
    pub async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let key = host.to_ascii_lowercase();
        if let Some(addrs) = self.cached(&key) {
            return Ok(addrs);
        }
        let deadline = Instant::now() + self.settings.timeout;
        // One server per lookup, its two questions together (nginx sends
        // them on one connection); the next lookup starts at the next.
        let first = usize::from(self.next_server.fetch_add(1, Ordering::Relaxed));
        let mut name = key.clone();
        for _ in 0..MAX_CNAMES {
            let mut addrs = Vec::new();
            let mut ttl = u32::MAX;
            let mut alias = None;
            let mut failure = None;
            for result in self.ask(&name, &self.record_types(), first, deadline).await {
                match result {
                    Ok(answer) => {
                        addrs.extend(answer.addrs);
                        ttl = ttl.min(answer.ttl);
                        alias = alias.or(answer.alias);
                    }
                    Err(e) => failure = failure.or(Some(e)),
                }
            }
            if !addrs.is_empty() {
                self.keep(key, &addrs, ttl);
                return Ok(addrs);
            }
            match (alias, failure) {
                (Some(target), _) => name = target,
                (None, Some(e)) => return Err(e),
                (None, None) => return Err(ResolveError::NotFound),
            }
        }
        Err(ResolveError::Server)
    }

    fn record_types(&self) -> Vec<RecordType> {
        let mut types = Vec::with_capacity(2);
        if self.settings.ipv4 {
            types.push(RecordType::A);
        }
        if self.settings.ipv6 {
            types.push(RecordType::AAAA);
        }
        types
    }

    fn cached(&self, key: &str) -> Option<Vec<IpAddr>> {
        let cache = self.cache.lock().ok()?;
        let entry = cache.get(key)?;
        (entry.until > Instant::now()).then(|| entry.addrs.clone())
    }

    fn keep(&self, key: String, addrs: &[IpAddr], ttl: u32) {
        let life = self
            .settings
            .valid
            .unwrap_or(Duration::from_secs(u64::from(ttl)));
        // A zero TTL is not to be kept.
        if life.is_zero() {
            return;
        }
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        let now = Instant::now();
        cache.retain(|_, c| c.until > now);
        if cache.len() >= MAX_CACHED {
            if let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, c)| c.until)
                .map(|(k, _)| k.clone())
            {
                cache.remove(&oldest);
            }
        }
        cache.insert(
            key,
            Cached {
                addrs: addrs.to_vec(),
                until: now + life,
            },
        );
    }

    /// The questions for `name`, to the servers in turn from `first`
    /// until each is answered: an answer, an error too, is final (nginx
    /// moves to the next server only when one is silent, every 5 s).
    async fn ask(
        &self,
        name: &str,
        types: &[RecordType],
        first: usize,
        deadline: Instant,
    ) -> Vec<Result<Answer, ResolveError>> {
        let mut answers: Vec<Option<Result<Answer, ResolveError>>> =
            types.iter().map(|_| None).collect();
        let fqdn = match Name::from_ascii(format!("{}.", name.trim_end_matches('.'))) {
            Ok(n) => n,
            Err(_) => return types.iter().map(|_| Err(ResolveError::Format)).collect(),
        };
        let servers = &self.settings.servers;
        for round in 0.. {
            let now = Instant::now();
            if now >= deadline || servers.is_empty() || answers.iter().all(Option::is_some) {
                break;
            }
            let server = servers[(first + round) % servers.len()];
            let wait = (deadline - now).min(RESEND);
            // What arrived before the wait ran out stays in `answers`.
            let _ = tokio::time::timeout(wait, exchange(server, &fqdn, types, &mut answers)).await;
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or(Err(ResolveError::TimedOut)))
            .collect()
    }
}

/// What one answer says.
struct Answer {
    addrs: Vec<IpAddr>,
    ttl: u32,
    alias: Option<String>,
}

/// A query id nobody can guess (as nginx's resolver draws it), unlike
/// `taken`'s: answers are told apart by it.
fn query_id(taken: &[u16]) -> u16 {
    loop {
        let mut bytes = [0u8; 2];
        let id = match getrandom::getrandom(&mut bytes) {
            Ok(()) => u16::from_ne_bytes(bytes),
            // No entropy: the clock's nanoseconds, still unlike `taken`.
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() as u16)
                .unwrap_or(0)
                .wrapping_add(taken.len() as u16),
        };
        if !taken.contains(&id) {
            return id;
        }
    }
}

/// The questions not answered yet, to one server over one UDP socket in
/// order (A before AAAA, as nginx sends them), each answer read as it
/// comes, and again over TCP if it was cut.
async fn exchange(
    server: SocketAddr,
    name: &Name,
    types: &[RecordType],
    answers: &mut [Option<Result<Answer, ResolveError>>],
) {
    let any: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = match tokio::net::UdpSocket::bind(any).await {
        Ok(s) if s.connect(server).await.is_ok() => s,
        _ => {
            for slot in answers.iter_mut().filter(|a| a.is_none()) {
                *slot = Some(Err(ResolveError::Server));
            }
            return;
        }
    };
    let mut asked = Vec::new();
    for (index, wanted) in types.iter().enumerate() {
        if answers[index].is_some() {
            continue;
        }
        let taken: Vec<u16> = asked.iter().map(|(_, id, _)| *id).collect();
        let id = query_id(&taken);
        let mut message = Message::new(id, MessageType::Query, OpCode::Query);
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(name.clone(), *wanted));
        let Ok(packet) = message.to_vec() else {
            answers[index] = Some(Err(ResolveError::Format));
            continue;
        };
        if socket.send(&packet).await.is_err() {
            answers[index] = Some(Err(ResolveError::Server));
            continue;
        }
        asked.push((index, id, packet));
    }
    let mut buf = vec![0u8; 4096];
    while asked.iter().any(|(index, _, _)| answers[*index].is_none()) {
        let Ok(n) = socket.recv(&mut buf).await else {
            return;
        };
        // Another id, or a datagram that does not parse, is a stray one.
        let Ok(reply) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let asked_for = |index: usize| {
            reply
                .queries
                .first()
                .is_none_or(|q| q.query_type() == types[index])
        };
        let Some((index, id, packet)) = asked.iter().find(|(index, id, _)| {
            *id == reply.metadata.id && answers[*index].is_none() && asked_for(*index)
        }) else {
            continue;
        };
        let answer = if reply.metadata.truncation {
            over_tcp(server, packet, *id).await
        } else {
            Ok(reply)
        };
        answers[*index] = Some(answer.and_then(|r| read_answer(&r, types[*index])));
    }
}

async fn over_tcp(server: SocketAddr, packet: &[u8], id: u16) -> Result<Message, ResolveError> {
    let io = |_| ResolveError::Server;
    let mut stream = tokio::net::TcpStream::connect(server).await.map_err(io)?;
    let len = u16::try_from(packet.len()).map_err(|_| ResolveError::Format)?;
    stream.write_all(&len.to_be_bytes()).await.map_err(io)?;
    stream.write_all(packet).await.map_err(io)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.map_err(io)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await.map_err(io)?;
    let reply = Message::from_vec(&buf).map_err(|_| ResolveError::Server)?;
    if reply.metadata.id != id {
        return Err(ResolveError::Server);
    }
    Ok(reply)
}

fn read_answer(reply: &Message, wanted: RecordType) -> Result<Answer, ResolveError> {
    match reply.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::FormErr => return Err(ResolveError::Format),
        ResponseCode::NXDomain => return Err(ResolveError::NotFound),
        ResponseCode::NotImp => return Err(ResolveError::Unimplemented),
        ResponseCode::Refused => return Err(ResolveError::Refused),
        _ => return Err(ResolveError::Server),
    }
    let mut answer = Answer {
        addrs: Vec::new(),
        ttl: u32::MAX,
        alias: None,
    };
    for record in &reply.answers {
        match (&record.data, wanted) {
            (RData::A(a), RecordType::A) => answer.addrs.push(IpAddr::V4(a.0)),
            (RData::AAAA(a), RecordType::AAAA) => answer.addrs.push(IpAddr::V6(a.0)),
            (RData::CNAME(target), _) => {
                answer.alias = Some(target.0.to_ascii().trim_end_matches('.').to_string());
            }
            _ => continue,
        }
        answer.ttl = answer.ttl.min(record.ttl);
    }
    if answer.addrs.is_empty() && answer.alias.is_none() {
        return Err(ResolveError::NotFound);
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::rr::rdata::{A, CNAME};
    use hickory_resolver::proto::rr::Record;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    #[test]
    fn an_answer_takes_its_addresses_and_the_least_ttl_of_its_chain() {
        let mut reply = Message::new(7, MessageType::Response, OpCode::Query);
        reply.answers.push(Record::from_rdata(
            name("www.test."),
            1,
            RData::CNAME(CNAME(name("app.test."))),
        ));
        reply.answers.push(Record::from_rdata(
            name("app.test."),
            60,
            RData::A(A::new(127, 0, 0, 2)),
        ));
        let answer = read_answer(&reply, RecordType::A).unwrap();
        assert_eq!(answer.addrs, vec![IpAddr::from([127, 0, 0, 2])]);
        assert_eq!(answer.ttl, 1, "the CNAME's TTL bounds the answer's");
        assert_eq!(answer.alias.as_deref(), Some("app.test"));
        // Nothing of the type asked: the name has no such address.
        assert_eq!(
            read_answer(&reply, RecordType::AAAA).map(|a| a.addrs),
            Ok(Vec::new())
        );
    }

    #[test]
    fn response_codes_are_nginx_words() {
        for (code, words) in [
            (ResponseCode::NXDomain, "3: Host not found"),
            (ResponseCode::ServFail, "2: Server failure"),
            (ResponseCode::Refused, "5: Operation refused"),
            (ResponseCode::FormErr, "1: Format error"),
        ] {
            let mut reply = Message::new(7, MessageType::Response, OpCode::Query);
            reply.metadata.response_code = code;
            let e = read_answer(&reply, RecordType::A).err().unwrap();
            assert_eq!(e.to_string(), words);
        }
    }

    #[test]
    fn query_ids_differ_from_those_taken() {
        let taken: Vec<u16> = (0..100).map(|_| query_id(&[])).collect();
        let id = query_id(&taken);
        assert!(!taken.contains(&id));
    }
}
