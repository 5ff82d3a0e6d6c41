//! Names of upstream servers -> addresses, through the system resolver, with
//! a lab/test override map.
//!
//! `SWITCHYARD_PEER_MAP="echogolem1:8080=127.0.1.1:8080,other:80=127.0.0.1:9000"`
//! maps a `host:port` as written in a `server` line to an address. The lab
//! uses it so that the seed's names resolve without touching /etc/hosts.
//! When it is set, it is the only source of addresses: an address literal
//! or a name it does not list fails to resolve instead of reaching a real
//! host, so the lab's traffic never leaves loopback.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::OnceLock;

/// The environment variable holding the override map.
pub const PEER_MAP_ENV: &str = "SWITCHYARD_PEER_MAP";

/// The environment variable naming an extra hosts file.
pub const HOSTS_ENV: &str = "SWITCHYARD_HOSTS";

/// Looks `host` up in a hosts-format text (`ADDRESS NAME [ALIASES...]`).
pub fn lookup_hosts(text: &str, host: &str) -> Vec<std::net::IpAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next()?;
            let mut fields = line.split_whitespace();
            let ip: std::net::IpAddr = fields.next()?.parse().ok()?;
            fields
                .any(|name| name.eq_ignore_ascii_case(host))
                .then_some(ip)
        })
        .collect()
}

/// The lab's map, if this process runs under the lab.
fn overrides() -> Option<&'static HashMap<String, SocketAddr>> {
    static MAP: OnceLock<Option<HashMap<String, SocketAddr>>> = OnceLock::new();
    MAP.get_or_init(|| std::env::var(PEER_MAP_ENV).ok().map(|m| parse_map(&m)))
        .as_ref()
}

/// Whether addresses come from the lab's map alone (see the module docs):
/// then no server line is looked up in DNS either.
pub fn lab_mode() -> bool {
    overrides().is_some()
}

/// Looks `host:port` up in the lab's map.
fn mapped(
    map: &HashMap<String, SocketAddr>,
    host: &str,
    port: u16,
) -> std::io::Result<Vec<SocketAddr>> {
    let key = if host.contains(':') {
        format!("[{}]:{}", host.to_ascii_lowercase(), port)
    } else {
        format!("{}:{}", host.to_ascii_lowercase(), port)
    };
    match map.get(&key) {
        Some(addr) => Ok(vec![*addr]),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{key} has no lab backend"),
        )),
    }
}

/// Parses `name:port=ip:port,...`; malformed entries are skipped.
pub fn parse_map(text: &str) -> HashMap<String, SocketAddr> {
    text.split(',')
        .filter_map(|entry| {
            let (name, addr) = entry.trim().split_once('=')?;
            Some((name.trim().to_ascii_lowercase(), addr.trim().parse().ok()?))
        })
        .collect()
}

/// The addresses of a `server` line: its socket for `unix:` (under the
/// lab, the stand-in the lab's map gives it by its name, `unix:PATH`),
/// otherwise what [`resolve`] finds for its `host:port`.
pub async fn resolve_server(
    server: &crate::config::model::UpstreamServer,
) -> std::io::Result<Vec<super::PeerAddr>> {
    if let Some(path) = &server.unix {
        return match overrides() {
            Some(map) => match map.get(&server.name.to_ascii_lowercase()) {
                Some(addr) => Ok(vec![super::PeerAddr::Inet(*addr)]),
                None => Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} has no lab backend", server.name),
                )),
            },
            None => Ok(vec![super::PeerAddr::Unix(path.clone())]),
        };
    }
    let addrs = resolve(&server.host, server.port).await?;
    Ok(addrs.into_iter().map(super::PeerAddr::Inet).collect())
}

/// Resolves `host:port`. Under the lab, only its map answers (address
/// literals included). Otherwise an IP literal needs no lookup, and a name
/// goes through `SWITCHYARD_HOSTS`, then the system resolver (/etc/hosts,
/// DNS).
pub async fn resolve(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    if let Some(map) = overrides() {
        return mapped(map, host, port);
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if let Ok(path) = std::env::var(HOSTS_ENV) {
        if let Ok(text) = tokio::fs::read_to_string(&path).await {
            let ips = lookup_hosts(&text, host);
            if !ips.is_empty() {
                return Ok(ips
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect());
            }
        }
    }
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no addresses",
        ));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_parses() {
        let m = parse_map("echogolem1:8080=127.0.1.1:8080, B:80=[::1]:81,bad");
        assert_eq!(m["echogolem1:8080"], "127.0.1.1:8080".parse().unwrap());
        assert_eq!(m["b:80"], "[::1]:81".parse().unwrap());
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn the_lab_map_answers_for_literals_and_refuses_what_it_lacks() {
        let m = parse_map("192.168.122.11:80=127.0.1.1:4000,echogolem1:8080=127.0.1.2:4001,[fd00::1]:80=127.0.1.3:4002");
        assert_eq!(
            mapped(&m, "192.168.122.11", 80).unwrap(),
            vec!["127.0.1.1:4000".parse().unwrap()]
        );
        assert_eq!(
            mapped(&m, "EchoGolem1", 8080).unwrap(),
            vec!["127.0.1.2:4001".parse().unwrap()]
        );
        assert_eq!(
            mapped(&m, "fd00::1", 80).unwrap(),
            vec!["127.0.1.3:4002".parse().unwrap()]
        );
        let e = mapped(&m, "192.168.122.11", 81).unwrap_err();
        assert_eq!(e.to_string(), "192.168.122.11:81 has no lab backend");
    }

    #[test]
    fn hosts_text() {
        let text = "127.0.0.1 localhost\n# 10.0.0.1 gone\n127.0.1.5 echogolem1 alias\n";
        assert_eq!(
            lookup_hosts(text, "ECHOGOLEM1"),
            vec!["127.0.1.5".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(lookup_hosts(text, "alias").len(), 1);
        assert!(lookup_hosts(text, "gone").is_empty());
    }
}
