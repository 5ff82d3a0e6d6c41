//! What a stream session knows about itself: the addresses, the byte
//! counts, the upstream attempts and the status, as the stream module's
//! variables show them (for `log_format`, `map` and `hash`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;

use crate::upstream::addr::PeerAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::model::{MapConfig, SplitClients};
use crate::observe::time::Civil;
use crate::vars::{Var, VarSource};

/// One upstream attempt (one entry of `$upstream_addr`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Try {
    /// The peer's address as text.
    pub addr: Arc<str>,
    /// Time to connect; `None` if it did not connect (shown as `-`).
    pub connect: Option<Duration>,
    /// Time to the first byte from the peer.
    pub first_byte: Option<Duration>,
    /// Time from the attempt's start to its end.
    pub session: Option<Duration>,
    /// Bytes sent to the peer.
    pub sent: u64,
    /// Bytes received from the peer.
    pub received: u64,
}

/// One session's state, read by its variables.
#[derive(Debug)]
pub(crate) struct Session {
    /// nginx's connection number (`$connection`, `*N` in the error log).
    pub id: u64,
    /// The client's address (a Unix socket's peer on `listen unix:`).
    pub remote: PeerAddr,
    /// The address the client connected to.
    pub local: PeerAddr,
    /// The `listen` address as configured (`server:` in the error log).
    pub listen: PeerAddr,
    /// When it was accepted.
    pub start: Instant,
    /// `$status`: 200 unless the session ended otherwise.
    pub status: u16,
    /// `$bytes_received`: from the client.
    pub bytes_received: u64,
    /// `$bytes_sent`: to the client.
    pub bytes_sent: u64,
    /// The upstream attempts, in order.
    pub tries: Vec<Try>,
    /// Values given by `set`, in the order set (a later one wins).
    pub set: Vec<(String, String)>,
    /// `map` blocks of the stream block.
    pub maps: Arc<HashMap<String, Arc<MapConfig>>>,
    /// `split_clients` blocks of the stream block.
    pub splits: Arc<HashMap<String, Arc<SplitClients>>>,
    /// `geo` blocks of the stream block.
    pub geos: Arc<HashMap<String, Arc<crate::geo::Geo>>>,
    /// A UDP session (`$protocol`, `udp client:` in the error log).
    pub udp: bool,
    /// The client and server a PROXY protocol header gave.
    pub proxy_protocol: Option<(SocketAddr, SocketAddr)>,
    /// That header's TLVs (`$proxy_protocol_tlv_*`).
    pub proxy_protocol_tlvs: Option<Box<[u8]>>,
    /// `$limit_conn_status`, once limit_conn has counted the session.
    pub limit_conn_status: Option<&'static str>,
    /// What `ssl_preread` read of the client's TLS hello.
    pub ssl_preread: Option<super::ssl_preread::ClientHello>,
    /// What the TLS handshake of a `listen ... ssl` negotiated.
    pub ssl: Option<crate::transport::tls_server::Handshake>,
}

fn secs(d: Duration) -> String {
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

impl Session {
    /// The address geo looks up for this client (a unix-domain peer is
    /// `Client::None`, as nginx looks up 255.255.255.255 for AF_UNIX).
    fn geo_client(&self) -> crate::geo::Client {
        self.remote
            .ip()
            .map_or(crate::geo::Client::None, crate::geo::Client::Ip)
    }

    /// The error-log context nginx's stream module appends: `, client: ..,
    /// server: ..` and, once a peer is chosen, `, upstream: "..", bytes
    /// from/to client:../.., bytes from/to upstream:../..`.
    pub fn context(&self) -> String {
        let mut s = format!(
            ", client: {}, server: {}",
            self.remote.addr_text(),
            self.listen
        );
        if let Some(t) = self.tries.last() {
            s.push_str(&format!(
                ", upstream: \"{}\", bytes from/to client:{}/{}, bytes from/to upstream:{}/{}",
                t.addr, self.bytes_received, self.bytes_sent, t.received, t.sent
            ));
        }
        s
    }

    /// The byte counts nginx prints when a session ends.
    pub fn byte_counts(&self) -> String {
        let (received, sent) = self
            .tries
            .last()
            .map(|t| (t.received, t.sent))
            .unwrap_or((0, 0));
        format!(
            "bytes from/to client:{}/{}, bytes from/to upstream:{}/{}",
            self.bytes_received, self.bytes_sent, received, sent
        )
    }

    /// The client address in network order: 4 bytes for IPv4, 16 for
    /// IPv6; a Unix socket's peer: its address text, as nginx's.
    fn binary_remote_addr(&self) -> Vec<u8> {
        match self.remote.ip() {
            Some(std::net::IpAddr::V4(v4)) => v4.octets().to_vec(),
            Some(std::net::IpAddr::V6(v6)) => v6.octets().to_vec(),
            None => self.remote.addr_text().into_bytes(),
        }
    }

    fn join(&self, f: impl Fn(&Try) -> String) -> Option<Cow<'_, str>> {
        if self.tries.is_empty() {
            return None;
        }
        Some(Cow::Owned(
            self.tries.iter().map(f).collect::<Vec<_>>().join(", "),
        ))
    }
}

/// `$remote_port`, `$server_port`: empty for a Unix socket.
fn port_text(addr: &PeerAddr) -> String {
    addr.port().map(|p| p.to_string()).unwrap_or_default()
}

fn time_or_dash(d: Option<Duration>) -> String {
    d.map(secs).unwrap_or_else(|| "-".to_string())
}

impl VarSource for Session {
    fn var(&self, var: &Var) -> Option<Cow<'_, str>> {
        let owned = |s: String| Some(Cow::Owned(s));
        match var {
            Var::RemoteAddr => owned(self.remote.addr_text()),
            // A Unix socket: no ports, and `unix:PATH` for the server.
            Var::RemotePort => owned(port_text(&self.remote)),
            Var::ServerAddr => owned(match self.local.ip() {
                Some(ip) => ip.to_string(),
                None => self.local.to_string(),
            }),
            Var::ServerPort => owned(port_text(&self.local)),
            Var::BytesSent => owned(self.bytes_sent.to_string()),
            Var::BytesReceived => owned(self.bytes_received.to_string()),
            Var::Connection => owned(self.id.to_string()),
            Var::Hostname => owned(crate::echo::hostname()),
            Var::Pid => owned(std::process::id().to_string()),
            Var::Msec => {
                let d = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                owned(format!("{}.{:03}", d.as_secs(), d.subsec_millis()))
            }
            Var::NginxVersion => Some(Cow::Borrowed(crate::VERSION)),
            Var::TimeIso8601 => owned(Civil::now().iso8601()),
            Var::TimeLocal => owned(Civil::now().time_local()),
            Var::ProxyProtocolAddr
            | Var::ProxyProtocolPort
            | Var::ProxyProtocolServerAddr
            | Var::ProxyProtocolServerPort => {
                crate::transport::proxy_protocol::variable(self.proxy_protocol, var).map(Cow::Owned)
            }
            Var::ProxyProtocolTlv(name) => crate::transport::proxy_protocol::tlv_variable(
                self.proxy_protocol_tlvs.as_deref(),
                name,
                self.id,
            )
            .map(Cow::Owned),
            Var::LimitConnStatus => self.limit_conn_status.map(Cow::Borrowed),
            // Found (maybe empty) once ssl_preread has read the client's
            // first bytes of a hello, as nginx's module context says; not
            // found otherwise.
            Var::SslPrereadProtocol => self
                .ssl_preread
                .as_ref()
                .map(|h| Cow::Borrowed(h.protocol().unwrap_or(""))),
            Var::SslPrereadServerName => self
                .ssl_preread
                .as_ref()
                .map(|h| Cow::Borrowed(h.server_name.as_deref().unwrap_or(""))),
            Var::SslPrereadAlpnProtocols => self
                .ssl_preread
                .as_ref()
                .map(|h| Cow::Borrowed(h.alpn.as_deref().unwrap_or(""))),
            // Not found on a plain connection (`-` in the log), as nginx.
            Var::Ssl(v) => self.ssl.as_ref().and_then(|h| h.found(*v)),
            Var::BinaryRemoteAddr => String::from_utf8(self.binary_remote_addr())
                .ok()
                .map(Cow::Owned),
            Var::Protocol => Some(Cow::Borrowed(if self.udp { "UDP" } else { "TCP" })),
            Var::Status => owned(format!("{:03}", self.status)),
            Var::SessionTime => owned(secs(self.start.elapsed())),
            Var::UpstreamAddr => self.join(|t| t.addr.to_string()),
            Var::UpstreamBytesSent => self.join(|t| t.sent.to_string()),
            Var::UpstreamBytesReceived => self.join(|t| t.received.to_string()),
            Var::UpstreamConnectTime => self.join(|t| time_or_dash(t.connect)),
            Var::UpstreamFirstByteTime => self.join(|t| time_or_dash(t.first_byte)),
            Var::UpstreamSessionTime => self.join(|t| time_or_dash(t.session)),
            Var::User(name, unset) => {
                if let Some((_, v)) = self.set.iter().rev().find(|(n, _)| n == name) {
                    return Some(Cow::Borrowed(v));
                }
                if let Some(m) = self.maps.get(name) {
                    return owned(m.value(self));
                }
                if let Some(g) = self.geos.get(name) {
                    return owned(g.value(self.geo_client(), self, &[]).to_string());
                }
                if let Some(s) = self.splits.get(name) {
                    return owned(s.value(self));
                }
                // `set` before it ran: empty; a named capture before its
                // match: not found.
                (*unset == crate::vars::Unset::Empty).then_some(Cow::Borrowed(""))
            }
            _ => None,
        }
    }

    fn var_bytes(&self, var: &Var) -> Option<Cow<'_, [u8]>> {
        match var {
            Var::BinaryRemoteAddr => Some(Cow::Owned(self.binary_remote_addr())),
            _ => self.var(var).map(|value| match value {
                Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
                Cow::Owned(s) => Cow::Owned(s.into_bytes()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vars::{with_var_set, Template, VarSet};

    #[test]
    fn attempts_render_as_nginx_lists_them() {
        let session = Session {
            id: 7,
            remote: "127.0.0.1:5000".parse().unwrap(),
            local: "127.0.0.1:8080".parse().unwrap(),
            listen: "127.0.0.1:8080".parse().unwrap(),
            start: Instant::now(),
            status: 200,
            bytes_received: 8,
            bytes_sent: 3,
            tries: vec![
                Try {
                    addr: Arc::from("127.0.0.1:81"),
                    ..Default::default()
                },
                Try {
                    addr: Arc::from("127.0.0.1:82"),
                    connect: Some(Duration::from_millis(1)),
                    sent: 8,
                    received: 3,
                    ..Default::default()
                },
            ],
            set: Vec::new(),
            maps: Arc::default(),
            splits: Arc::default(),
            geos: Arc::default(),
            udp: false,
            proxy_protocol: None,
            proxy_protocol_tlvs: None,
            limit_conn_status: None,
            ssl_preread: None,
            ssl: None,
        };
        let t = with_var_set(VarSet::Stream, || {
            Template::compile(
                "$upstream_addr!$upstream_bytes_sent!$upstream_bytes_received!$upstream_connect_time!$status!$protocol!$bytes_received:$bytes_sent",
            )
        })
        .unwrap();
        assert_eq!(
            t.render(&session),
            "127.0.0.1:81, 127.0.0.1:82!0, 8!0, 3!-, 0.001!200!TCP!8:3"
        );
        let binary =
            with_var_set(VarSet::Stream, || Template::compile("$binary_remote_addr")).unwrap();
        assert_eq!(binary.render_bytes(&session), vec![127, 0, 0, 1]);
        let log = with_var_set(VarSet::Stream, || {
            crate::observe::log_format::LogFormat::compile(
                "$binary_remote_addr",
                crate::observe::log_format::Escape::Default,
            )
        })
        .unwrap();
        assert_eq!(log.render(&session), "\\x7F\\x00\\x00\\x01");
        assert_eq!(
            session.context(),
            ", client: 127.0.0.1, server: 127.0.0.1:8080, upstream: \"127.0.0.1:82\", bytes from/to client:8/3, bytes from/to upstream:3/8"
        );
    }
}
