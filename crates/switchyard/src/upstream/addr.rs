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

    /// The port, if it has one: nginx's `$server_port` and `$remote_port`
    /// are empty on a Unix socket.
    pub fn port(&self) -> Option<u16> {
        self.inet().map(|a| a.port())
    }

    /// nginx's `addr_text` of a connection's peer: the IP address without
    /// the port (`$remote_addr`, `client:` in log lines), or `unix:` and
    /// the path a Unix socket's peer bound (none: just `unix:`).
    pub fn addr_text(&self) -> String {
        match self {
            PeerAddr::Inet(a) => a.ip().to_string(),
            PeerAddr::Unix(_) => self.to_string(),
        }
    }

    /// The wildcard address of this one's port and family (`0.0.0.0:80`
    /// for `127.0.0.1:80`), which serves it when nothing listens on it
    /// exactly; a Unix socket has none (its path is its only address).
    pub fn wildcard(&self) -> Option<PeerAddr> {
        let wild = match self.inet()? {
            SocketAddr::V4(a) => SocketAddr::from(([0, 0, 0, 0], a.port())),
            SocketAddr::V6(a) => SocketAddr::from(([0u16; 8], a.port())),
        };
        Some(PeerAddr::Inet(wild))
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
