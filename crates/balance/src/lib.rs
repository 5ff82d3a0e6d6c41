//! nginx's load-balancing algorithms over a peer table. Pure: no I/O, no
//! clock (time is passed in), no threads (the caller wraps it in a lock).
//!
//! The algorithms follow nginx's `ngx_http_upstream_round_robin.c` and the
//! `least_conn`, `ip_hash`, `hash` and `random` upstream modules: smooth
//! weighted round robin, `max_fails`/`fail_timeout` accounting, backup
//! peers, `max_conns`, the per-request `tried` set and `tries` budget, and
//! the hash and ketama tables.
//!
//! A request is one [`Attempt`]: [`Balancer::start`] creates it,
//! [`Balancer::pick`] chooses a peer (again for each retry), and
//! [`Balancer::finish`] reports the outcome of every pick.
//!
//! ```
//! use balance::{Balancer, Method, Outcome, PeerConfig};
//!
//! let peers = vec![
//!     PeerConfig::new("10.0.0.1:80").weight(5),
//!     PeerConfig::new("10.0.0.2:80"),
//!     PeerConfig::new("10.0.0.3:80").backup(true),
//! ];
//! let mut lb = Balancer::new(Method::RoundRobin, peers, 0).unwrap();
//! let now_ms = 1_000;
//! let mut attempt = lb.start();
//! while attempt.tries_left() > 0 {
//!     let Ok(peer) = lb.pick(&mut attempt, b"", now_ms) else {
//!         break; // "no live upstreams": answer 502
//!     };
//!     let ok = true; // ... proxy the request to `peer` ...
//!     lb.finish(peer, if ok { Outcome::Success } else { Outcome::Failure }, now_ms);
//!     if ok {
//!         break;
//!     }
//! }
//! ```

#![warn(missing_docs)]

mod attempt;
mod balancer;
mod crc32;
mod hash;
mod ip_hash;
mod least_conn;
mod peer;
mod random;
mod round_robin;

pub use attempt::Attempt;
pub use balancer::Balancer;
pub use crc32::crc32;
pub use peer::{PeerConfig, PeerId, PeerStats};

/// The `upstream` block's load-balancing method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The default: smooth weighted round robin.
    RoundRobin,
    /// `least_conn`: fewest active connections relative to weight, ties
    /// broken by weighted round robin.
    LeastConn,
    /// `ip_hash`: hash of the client address (first three octets of IPv4,
    /// all of IPv6).
    IpHash,
    /// `hash KEY [consistent]`: CRC32 of the evaluated key; `consistent`
    /// selects the ketama ring.
    Hash {
        /// `hash ... consistent`.
        consistent: bool,
    },
    /// `random [two [least_conn]]`.
    Random {
        /// `random two`: pick two peers at random and take the one with
        /// fewer connections relative to weight.
        two: bool,
    },
}

impl Method {
    /// The directive name nginx uses for this method (for messages).
    pub fn directive(self) -> &'static str {
        match self {
            Method::RoundRobin => "round_robin",
            Method::LeastConn => "least_conn",
            Method::IpHash => "ip_hash",
            Method::Hash { .. } => "hash",
            Method::Random { .. } => "random",
        }
    }

    /// Whether the method accepts `backup` servers (only round robin and
    /// `least_conn` do in nginx).
    pub fn supports_backup(self) -> bool {
        matches!(self, Method::RoundRobin | Method::LeastConn)
    }
}

/// How an attempt on a peer ended, as reported to [`Balancer::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The peer served the request (nginx: the peer was freed without
    /// `NGX_PEER_FAILED`).
    Success,
    /// The attempt failed in a way counted by `proxy_next_upstream`
    /// (nginx: `NGX_PEER_FAILED`).
    Failure,
}

/// Configuration errors, worded like nginx's where nginx has a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No non-backup server (nginx: `no servers in upstream "..."`).
    #[error("no servers in upstream")]
    NoServers,
    /// A `server` parameter the balancing method does not support.
    #[error("balancing method does not support parameter \"{0}\"")]
    UnsupportedParameter(&'static str),
    /// `weight=0` (nginx: `invalid parameter "weight=0"`).
    #[error("invalid parameter \"weight=0\" for server \"{0}\"")]
    ZeroWeight(String),
}

/// Every peer is unavailable (nginx's `NGX_BUSY`, logged as
/// "no live upstreams"). As in nginx 1.22, nothing is reset: the next
/// request gets the same answer until a peer's `fail_timeout` passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no live upstreams")]
pub struct NoLivePeer;
