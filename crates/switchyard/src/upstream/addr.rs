//! The address of an upstream peer: an IP socket address or a Unix-domain
//! socket path (`server unix:/run/app.sock`, `proxy_pass http://unix:...`).

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// Where a peer listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerAddr {
    /// A TCP (or UDP, in stream) address.
    Inet(SocketAddr),
    /// A Unix-domain socket (shared: a peer's address is copied into every
    /// pick and pool key).
    Unix(Arc<Path>),
}

impl PeerAddr {
    /// The IP address, if it has one (a Unix socket has none).
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self {
            PeerAddr::Inet(a) => Some(a.ip()),
            PeerAddr::Unix(_) => None,
        }
    }

    /// The socket address, if it is an IP one.
    pub fn inet(&self) -> Option<SocketAddr> {
        match self {
            PeerAddr::Inet(a) => Some(*a),
            PeerAddr::Unix(_) => None,
        }
    }

    /// What separates this address from a URI in nginx's `upstream: "..."`
    /// log context: a Unix path would run into the URI, so nginx puts a
    /// colon between (`http://unix:/run/app.sock:/path`).
    pub fn uri_separator(&self) -> &'static str {
        match self {
            PeerAddr::Inet(_) => "",
            PeerAddr::Unix(_) => ":",
        }
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> PeerAddr {
        PeerAddr::Inet(addr)
    }
}

/// As nginx names peers (`$upstream_addr`): `127.0.0.1:8080`, `[::1]:80`,
/// `unix:/run/app.sock`.
impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Inet(a) => a.fmt(f),
            PeerAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// The inverse of `Display`, for names the balancer keeps as text.
impl std::str::FromStr for PeerAddr {
    type Err = std::net::AddrParseError;

    fn from_str(text: &str) -> Result<PeerAddr, Self::Err> {
        match text.strip_prefix("unix:") {
            Some(path) => Ok(PeerAddr::Unix(Arc::from(Path::new(path)))),
            None => text.parse().map(PeerAddr::Inet),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_and_parses_back_as_nginx_names_peers() {
        for text in ["127.0.0.1:8080", "[::1]:80", "unix:/run/app.sock"] {
            let addr: PeerAddr = text.parse().unwrap();
            assert_eq!(addr.to_string(), text);
        }
        let unix: PeerAddr = "unix:/tmp/x.sock".parse().unwrap();
        assert_eq!(unix.ip(), None);
        assert_eq!(unix.uri_separator(), ":");
        assert!("backend:80".parse::<PeerAddr>().is_err());
    }
}
