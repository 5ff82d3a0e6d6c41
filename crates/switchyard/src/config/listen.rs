//! `listen` addresses and parameters.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use nginx_conf::{Directive, Position};

use super::model::{Listen, SoKeepalive};
use super::{values, ConfigError};
use crate::upstream::addr::PeerAddr;

/// The port nginx listens on when a server has no `listen`: 80 for root,
/// 8000 otherwise.
pub fn default_port() -> u16 {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        80
    } else {
        8000
    }
}

/// Parses `host:port`, `port`, `host`, `[v6]:port`, `*:port`. A host name is
/// resolved now, as nginx resolves listen names at load time.
pub fn parse_address(text: &str, default_port: u16) -> Result<SocketAddr, String> {
    let port_of = |p: &str| -> Result<u16, String> {
        match values::parse_number(p) {
            Some(n) if (1..=65535).contains(&n) => Ok(n as u16),
            _ => Err(format!("invalid port in \"{text}\"")),
        }
    };
    if let Some(rest) = text.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| format!("invalid IPv6 address in \"{text}\""))?;
        let ip: Ipv6Addr = rest[..end]
            .parse()
            .map_err(|_| format!("invalid IPv6 address in \"{text}\""))?;
        let port = match rest[end + 1..].strip_prefix(':') {
            Some(p) => port_of(p)?,
            None if rest.len() == end + 1 => default_port,
            None => return Err(format!("invalid host in \"{text}\"")),
        };
        return Ok(SocketAddr::new(IpAddr::V6(ip), port));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port_of(text)?,
        ));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) => (h, port_of(p)?),
        None => (text, default_port),
    };
    if host == "*" || host.is_empty() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("host not found in \"{text}\""))
}

/// The most bytes of a Unix-domain socket's path: `sun_path` holds it
/// with its terminating NUL.
const SUN_PATH: usize = 108;

/// A `unix:PATH` listen address as nginx's ngx_parse_unix_domain_url reads
/// it (the prefix in any case); `None` when `text` is not one. The error
/// is nginx's, with the address: `no path in the unix domain socket in
/// "unix:"`.
pub fn parse_unix(text: &str) -> Option<Result<PeerAddr, String>> {
    let prefix = text.get(..5)?;
    if !prefix.eq_ignore_ascii_case("unix:") {
        return None;
    }
    let path = &text[5..];
    Some(if path.is_empty() {
        Err(format!("no path in the unix domain socket in \"{text}\""))
    } else if path.len() + 1 > SUN_PATH {
        Err(format!(
            "too long path in the unix domain socket in \"{text}\""
        ))
    } else {
        Ok(PeerAddr::Unix(std::sync::Arc::from(std::path::Path::new(
            path,
        ))))
    })
}

/// A `listen` address of http or stream: a Unix socket, or an IP address
/// and port (`default_port` when none is written), with nginx's error.
pub(crate) fn listen_address(text: &str, default_port: u16) -> Result<PeerAddr, String> {
    match parse_unix(text) {
        Some(unix) => unix,
        None => parse_address(text, default_port).map(PeerAddr::Inet),
    }
}

/// A listen address with a range of ports (`ADDR:FIRST-LAST`, or
/// `FIRST-LAST` alone; nginx 1.27.3), as ngx_parse_inet_url reads it: the
/// address with its first port, and the last. `None` for any other
/// address (a bare `a-b` that is not two numbers is a host name).
pub(crate) fn port_range(text: &str) -> Result<Option<(String, u16)>, String> {
    if parse_unix(text).is_some() {
        return Ok(None);
    }
    let (host, ports) = if let Some(rest) = text.strip_prefix('[') {
        match rest.find("]:") {
            Some(end) => (&text[..end + 3], &rest[end + 2..]),
            None => return Ok(None),
        }
    } else if let Some(colon) = text.rfind(':') {
        (&text[..colon + 1], &text[colon + 1..])
    } else {
        ("", text)
    };
    let Some((first, last)) = ports.split_once('-') else {
        return Ok(None);
    };
    let number = |p: &str| values::parse_number(p).filter(|_| !p.is_empty());
    if host.is_empty() && (number(first).is_none() || number(last).is_none()) {
        return Ok(None);
    }
    let port = |n: Option<u64>| match n {
        Some(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(format!("invalid port in \"{text}\"")),
    };
    let (first, last) = (port(number(first))?, port(number(last))?);
    if first > last {
        return Err(format!("invalid port range in \"{text}\""));
    }
    Ok(Some((format!("{host}{first}"), last)))
}

/// One `listen` per port of its range (`last`), each with the same
/// parameters.
pub(crate) fn each_port(listen: Listen, last: Option<u16>) -> Vec<Listen> {
    let (Some(last), PeerAddr::Inet(addr)) = (last, &listen.addr) else {
        return vec![listen];
    };
    let ip = addr.ip();
    (addr.port()..=last)
        .map(|port| Listen {
            addr: PeerAddr::Inet(SocketAddr::new(ip, port)),
            ..listen.clone()
        })
        .collect()
}

/// Parses a whole `listen` directive: one listen, or one per port of a
/// range.
pub fn parse_listen(d: &Directive) -> Result<Vec<Listen>, ConfigError> {
    let at = &d.position;
    let listen_error = |e: String| ConfigError::at(format!("{e} of the \"listen\" directive"), at);
    let (first, last) = match port_range(&d.args[0].value).map_err(listen_error)? {
        Some((first, last)) => (first, Some(last)),
        None => (d.args[0].value.clone(), None),
    };
    let addr = listen_address(&first, 80).map_err(listen_error)?;
    let mut listen = Listen::new(addr, Some(at.clone()));
    for param in d.args.iter().skip(1) {
        let p = param.value.as_str();
        let invalid = || ConfigError::at(format!("invalid parameter \"{p}\""), at);
        match p {
            "default_server" | "default" => listen.default_server = true,
            "reuseport" | "bind" => listen.options_set = true,
            "deferred" => {
                listen.socket.deferred = true;
                listen.options_set = true;
            }
            "http2" => {
                super::http2::listen_deprecated(at);
                listen.http2 = true;
            }
            "ssl" => listen.ssl = true,
            "proxy_protocol" => listen.proxy_protocol = true,
            "quic" => {
                return Err(ConfigError::at(
                    format!("\"listen ... {p}\" is not supported yet"),
                    at,
                ));
            }
            _ => {
                if socket_param(&mut listen, p, at)? {
                } else if let Some(v) = p.strip_prefix("fastopen=") {
                    let n = values::parse_number(v)
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| ConfigError::at(format!("invalid fastopen \"{v}\""), at))?;
                    listen.socket.fastopen = Some(n);
                    listen.options_set = true;
                } else if p.starts_with("setfib=") || p.starts_with("accept_filter=") {
                    // FreeBSD's; nginx on Linux has them compiled out.
                } else {
                    return Err(invalid());
                }
            }
        }
    }
    Ok(each_port(listen, last))
}

/// nginx allows socket parameters on one `listen` of an address only:
/// `duplicate listen options for ADDR` at the second.
pub(crate) fn check_options<'a>(
    listens: impl Iterator<Item = &'a Listen>,
) -> Result<(), ConfigError> {
    let mut set: Vec<&PeerAddr> = Vec::new();
    for listen in listens.filter(|l| l.options_set) {
        if set.contains(&&listen.addr) {
            let message = format!("duplicate listen options for {}", listen.addr);
            return Err(match &listen.position {
                Some(p) => ConfigError::at(message, p),
                None => ConfigError::bare(message),
            });
        }
        set.push(&listen.addr);
    }
    Ok(())
}

/// The `listen` parameters http and stream share that set a socket option:
/// `backlog=` and `ipv6only=`, with nginx's messages. Returns whether `p`
/// was one.
pub(crate) fn socket_param(
    listen: &mut Listen,
    p: &str,
    at: &Position,
) -> Result<bool, ConfigError> {
    let known = [
        "backlog=",
        "rcvbuf=",
        "sndbuf=",
        "so_keepalive=",
        "ipv6only=",
    ];
    if known.iter().any(|k| p.starts_with(k)) {
        listen.options_set = true;
    }
    if let Some(v) = p.strip_prefix("backlog=") {
        listen.socket.backlog = values::parse_number(v)
            .filter(|n| *n > 0 && *n <= i32::MAX as u64)
            .ok_or_else(|| ConfigError::at(format!("invalid backlog \"{v}\""), at))?
            as i32;
        return Ok(true);
    }
    for (name, slot) in [
        ("rcvbuf=", &mut listen.socket.rcvbuf),
        ("sndbuf=", &mut listen.socket.sndbuf),
    ] {
        if let Some(v) = p.strip_prefix(name) {
            let n = values::parse_size(v)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    let name = name.trim_end_matches('=');
                    ConfigError::at(format!("invalid {name} \"{v}\""), at)
                })?;
            *slot = Some(n);
            return Ok(true);
        }
    }
    if let Some(v) = p.strip_prefix("so_keepalive=") {
        listen.socket.keepalive =
            Some(parse_so_keepalive(v).ok_or_else(|| {
                ConfigError::at(format!("invalid so_keepalive value: \"{v}\""), at)
            })?);
        return Ok(true);
    }
    if let Some(v) = p.strip_prefix("ipv6only=") {
        listen.ipv6only = values::parse_flag(v)
            .ok_or_else(|| ConfigError::at(format!("invalid ipv6only flags \"{v}\""), at))?;
        return Ok(true);
    }
    Ok(false)
}

/// `on`, `off` or `[keepidle]:[keepintvl]:[keepcnt]` (times in seconds
/// by default, not all three empty or zero), as nginx reads it.
fn parse_so_keepalive(v: &str) -> Option<SoKeepalive> {
    match v {
        "on" => {
            return Some(SoKeepalive::On {
                idle: None,
                interval: None,
                count: None,
            })
        }
        "off" => return Some(SoKeepalive::Off),
        _ => {}
    }
    let mut parts = v.splitn(3, ':');
    let time = |t: Option<&str>| -> Option<Option<u32>> {
        match t {
            None | Some("") => Some(None),
            Some(t) => {
                let d = values::parse_time(t)?;
                (d.subsec_nanos() == 0)
                    .then(|| u32::try_from(d.as_secs()).ok())
                    .flatten()
                    .map(Some)
            }
        }
    };
    let idle = time(parts.next())?;
    let interval = time(parts.next())?;
    let count = match parts.next() {
        None | Some("") => None,
        Some(c) => Some(u32::try_from(values::parse_number(c)?).ok()?),
    };
    let zero = |x: Option<u32>| x.unwrap_or(0) == 0;
    if zero(idle) && zero(interval) && zero(count) {
        return None;
    }
    Some(SoKeepalive::On {
        idle: idle.filter(|n| *n > 0),
        interval: interval.filter(|n| *n > 0),
        count: count.filter(|n| *n > 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `listen TEXT;` parsed: its listens, or the error's message.
    fn listens(text: &str) -> Result<Vec<Listen>, String> {
        let conf = nginx_conf::parse_str(
            &format!("listen {text};"),
            nginx_conf::Source::CommandLine,
            std::path::Path::new("/"),
        )
        .unwrap();
        parse_listen(&conf.directives[0]).map_err(|e| e.message)
    }

    #[test]
    fn port_ranges_as_nginx_reads_them() {
        let listen = |text: &str| listens(&format!("{text} default_server"));
        let addrs = |text: &str| -> Vec<String> {
            listen(text)
                .unwrap()
                .iter()
                .map(|l| {
                    assert!(l.default_server, "parameters apply to every port");
                    l.addr.to_string()
                })
                .collect()
        };
        assert_eq!(
            addrs("127.0.0.1:8182-8184"),
            ["127.0.0.1:8182", "127.0.0.1:8183", "127.0.0.1:8184"]
        );
        assert_eq!(addrs("[::1]:90-91"), ["[::1]:90", "[::1]:91"]);
        assert_eq!(addrs("7000-7001"), ["0.0.0.0:7000", "0.0.0.0:7001"]);
        assert_eq!(addrs("127.0.0.1:85-85"), ["127.0.0.1:85"]);
        assert_eq!(
            listen("127.0.0.1:86-85").unwrap_err(),
            "invalid port range in \"127.0.0.1:86-85\" of the \"listen\" directive"
        );
        assert_eq!(
            listen("127.0.0.1:80-x").unwrap_err(),
            "invalid port in \"127.0.0.1:80-x\" of the \"listen\" directive"
        );
        assert_eq!(
            listen("127.0.0.1:80-65536").unwrap_err(),
            "invalid port in \"127.0.0.1:80-65536\" of the \"listen\" directive"
        );
        assert_eq!(port_range("local-host"), Ok(None), "a host name");
    }

    #[test]
    fn socket_parameters_as_nginx_reads_them() {
        let listen = |text: &str| listens(text).map(|mut all| all.remove(0));
        let l =
            listen("127.0.0.1:80 rcvbuf=64k sndbuf=8192 deferred fastopen=5 backlog=9").unwrap();
        assert_eq!(l.socket.rcvbuf, Some(65536));
        assert_eq!(l.socket.sndbuf, Some(8192));
        assert!(l.socket.deferred);
        assert_eq!((l.socket.fastopen, l.socket.backlog), (Some(5), 9));
        let l = listen("80 so_keepalive=1m::3").unwrap();
        assert_eq!(
            l.socket.keepalive,
            Some(SoKeepalive::On {
                idle: Some(60),
                interval: None,
                count: Some(3)
            })
        );
        let l = listen("80 so_keepalive=off").unwrap();
        assert_eq!(l.socket.keepalive, Some(SoKeepalive::Off));
        assert_eq!(listen("80 rcvbuf=x").unwrap_err(), "invalid rcvbuf \"x\"");
        assert_eq!(listen("80 sndbuf=").unwrap_err(), "invalid sndbuf \"\"");
        assert_eq!(
            listen("80 fastopen=-1").unwrap_err(),
            "invalid fastopen \"-1\""
        );
        for bad in ["::", "0:0:0", "x", "1:2:y"] {
            assert_eq!(
                listen(&format!("80 so_keepalive={bad}")).unwrap_err(),
                format!("invalid so_keepalive value: \"{bad}\"")
            );
        }
    }

    #[test]
    fn unix_addresses_as_nginx_reads_them() {
        let unix = |text: &str| parse_unix(text).map(|r| r.map(|a| a.to_string()));
        assert_eq!(
            unix("unix:/run/a.sock"),
            Some(Ok("unix:/run/a.sock".into()))
        );
        // The prefix in any case, the path as written.
        assert_eq!(unix("UNIX:rel.sock"), Some(Ok("unix:rel.sock".into())));
        assert_eq!(unix("127.0.0.1:80"), None);
        assert_eq!(unix("uni"), None);
        assert_eq!(
            unix("unix:"),
            Some(Err("no path in the unix domain socket in \"unix:\"".into()))
        );
        // sun_path holds 107 bytes and the NUL.
        let longest = format!("unix:/{}", "a".repeat(106));
        assert!(matches!(unix(&longest), Some(Ok(_))));
        let over = format!("unix:/{}", "a".repeat(107));
        assert_eq!(
            unix(&over),
            Some(Err(format!(
                "too long path in the unix domain socket in \"{over}\""
            )))
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("8080", 80).unwrap(),
            "0.0.0.0:8080".parse().unwrap()
        );
        assert_eq!(
            parse_address("127.0.0.1:81", 80).unwrap(),
            "127.0.0.1:81".parse().unwrap()
        );
        assert_eq!(
            parse_address("127.0.0.1", 80).unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            parse_address("[::1]:82", 80).unwrap(),
            "[::1]:82".parse().unwrap()
        );
        assert_eq!(
            parse_address("*:83", 80).unwrap(),
            "0.0.0.0:83".parse().unwrap()
        );
        assert_eq!(
            parse_address("99999", 80).unwrap_err(),
            "invalid port in \"99999\""
        );
    }
}
