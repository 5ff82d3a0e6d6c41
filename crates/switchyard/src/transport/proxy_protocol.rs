//! Reading the PROXY protocol header a `listen ... proxy_protocol` socket
//! expects (versions 1 and 2, as ngx_proxy_protocol_read accepts them).
//! Pure: bytes in, addresses or nginx's error message out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// nginx's limit on a v1 line (`NGX_PROXY_PROTOCOL_V1_MAX_HEADER`).
pub(crate) const V1_MAX: usize = 107;

/// nginx's limit on a whole header (`NGX_PROXY_PROTOCOL_MAX_HEADER`).
pub(crate) const MAX: usize = 4096;

/// What the header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Its length in bytes, to consume.
    pub len: usize,
    /// The original client and server, unless the header carried none
    /// (`UNKNOWN`, v2 `LOCAL`, or a family without addresses).
    pub addrs: Option<(SocketAddr, SocketAddr)>,
}

/// Why a header was refused; `Display` is nginx's error-log text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeaderError {
    /// Not a PROXY header, or a malformed one.
    #[error("broken header: \"{0}\"")]
    Broken(String),
    /// v2 with a version other than 2.
    #[error("unknown PROXY protocol version: {0}")]
    Version(u8),
    /// v2 longer than nginx accepts.
    #[error("header is too large")]
    TooLarge,
}

/// Parses the start of `buf`. `Ok(None)`: not enough bytes yet to decide.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<Header>, HeaderError> {
    let broken = || broken(buf);
    if buf.len() >= 12 && buf.starts_with(V2_SIGNATURE) {
        return parse_v2(buf);
    }
    if V2_SIGNATURE.starts_with(buf) && !buf.is_empty() && buf[0] == b'\r' {
        return Ok(None);
    }
    let prefix = b"PROXY ";
    let n = buf.len().min(prefix.len());
    if buf[..n] != prefix[..n] {
        return Err(broken());
    }
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= V1_MAX {
            return Err(broken());
        }
        return Ok(None);
    };
    if end + 2 > V1_MAX {
        return Err(broken());
    }
    let line = std::str::from_utf8(&buf[6..end]).map_err(|_| broken())?;
    let len = end + 2;
    if line.starts_with("UNKNOWN") {
        return Ok(Some(Header { len, addrs: None }));
    }
    let parts: Vec<&str> = line.split(' ').collect();
    let [family, src, dst, sport, dport] = parts.as_slice() else {
        return Err(broken());
    };
    let ip = |text: &str| -> Result<IpAddr, HeaderError> {
        match *family {
            "TCP4" => text
                .parse::<Ipv4Addr>()
                .map(IpAddr::V4)
                .map_err(|_| broken()),
            "TCP6" => text
                .parse::<Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| broken()),
            _ => Err(broken()),
        }
    };
    let port = |text: &str| -> Result<u16, HeaderError> {
        if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(broken());
        }
        text.parse::<u16>().map_err(|_| broken())
    };
    let src = SocketAddr::new(ip(src)?, port(sport)?);
    let dst = SocketAddr::new(ip(dst)?, port(dport)?);
    Ok(Some(Header {
        len,
        addrs: Some((src, dst)),
    }))
}

fn parse_v2(buf: &[u8]) -> Result<Option<Header>, HeaderError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let version = buf[12] >> 4;
    if version != 2 {
        return Err(HeaderError::Version(version));
    }
    let command = buf[12] & 0x0f;
    let family = buf[13];
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body;
    if len > MAX {
        return Err(HeaderError::TooLarge);
    }
    if buf.len() < len {
        return Ok(None);
    }
    let data = &buf[16..len];
    let broken = || broken(&buf[..len]);
    if command == 0 {
        // LOCAL: a health check of the proxy itself, no addresses.
        return Ok(Some(Header { len, addrs: None }));
    }
    let addrs = match family >> 4 {
        1 => {
            if data.len() < 12 {
                return Err(broken());
            }
            let ip = |o: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    data[o],
                    data[o + 1],
                    data[o + 2],
                    data[o + 3],
                ))
            };
            let port = |o: usize| u16::from_be_bytes([data[o], data[o + 1]]);
            Some((
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
            ))
        }
        2 => {
            if data.len() < 36 {
                return Err(broken());
            }
            let ip = |o: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&data[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |o: usize| u16::from_be_bytes([data[o], data[o + 1]]);
            Some((
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            ))
        }
        // AF_UNSPEC, AF_UNIX: no usable addresses (nginx ignores them too).
        _ => None,
    };
    Ok(Some(Header { len, addrs }))
}

/// Why reading a header failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// A header nginx would refuse (400).
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The socket failed.
    #[error("recv() failed ({})", crate::observe::error_log::os_error(.0))]
    Io(#[from] std::io::Error),
}

/// Reads one header from `stream` as nginx does: the bytes that have
/// arrived when the socket is first readable are examined (a header
/// split across packets is broken, as in nginx), and only the header is
/// consumed.
pub(crate) async fn read(stream: &mut tokio::net::TcpStream) -> Result<Header, ReadError> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; MAX];
    let n = stream.peek(&mut buf).await?;
    let header = match parse(&buf[..n])? {
        Some(h) => h,
        None => return Err(broken(&buf[..n]).into()),
    };
    let mut consumed = vec![0u8; header.len];
    stream.read_exact(&mut consumed).await?;
    Ok(header)
}

/// The `$proxy_protocol_*` variable `var` of what a header named (the
/// source's or destination's address or port); not found when it named
/// none or there was no header, as nginx's variables are. `None` too for
/// any other variable.
pub(crate) fn variable(
    addrs: Option<(SocketAddr, SocketAddr)>,
    var: &crate::vars::Var,
) -> Option<String> {
    use crate::vars::Var;
    let (source, destination) = addrs?;
    Some(match var {
        Var::ProxyProtocolAddr => source.ip().to_string(),
        Var::ProxyProtocolPort => source.port().to_string(),
        Var::ProxyProtocolServerAddr => destination.ip().to_string(),
        Var::ProxyProtocolServerPort => destination.port().to_string(),
        _ => return None,
    })
}

/// nginx's "broken header" text: the bytes up to the first CR or LF.
fn broken(buf: &[u8]) -> HeaderError {
    let end = buf
        .iter()
        .position(|b| *b == b'\r' || *b == b'\n')
        .unwrap_or(buf.len());
    HeaderError::Broken(String::from_utf8_lossy(&buf[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1() {
        let h = parse(b"PROXY TCP4 192.0.2.1 192.0.2.2 1234 80\r\nrest")
            .unwrap()
            .unwrap();
        assert_eq!(h.len, 40);
        assert_eq!(
            h.addrs,
            Some((
                "192.0.2.1:1234".parse().unwrap(),
                "192.0.2.2:80".parse().unwrap()
            ))
        );
        let h = parse(b"PROXY TCP6 ::1 ::2 1 2\r\n").unwrap().unwrap();
        assert_eq!(h.addrs.map(|a| a.0), Some("[::1]:1".parse().unwrap()));
        let h = parse(b"PROXY UNKNOWN whatever\r\n").unwrap().unwrap();
        assert_eq!(h.addrs, None);
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4").unwrap(), None, "incomplete");
        assert_eq!(parse(b"PRO").unwrap(), None, "incomplete");
        assert_eq!(
            parse(b"GET / HTTP/1.0\r\n").unwrap_err().to_string(),
            "broken header: \"GET / HTTP/1.0\""
        );
        assert!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n").is_err());
        assert!(parse(b"PROXY TCP4 ::1 ::1 1 1\r\n").is_err());
    }

    #[test]
    fn version_2() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[
            0x21, 0x11, 0, 12, 192, 0, 2, 1, 192, 0, 2, 2, 0x04, 0xd2, 0, 80,
        ]);
        let parsed = parse(&h).unwrap().unwrap();
        assert_eq!(parsed.len, 28);
        assert_eq!(
            parsed.addrs,
            Some((
                "192.0.2.1:1234".parse().unwrap(),
                "192.0.2.2:80".parse().unwrap()
            ))
        );
        assert_eq!(parse(&h[..20]).unwrap(), None, "incomplete");
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local).unwrap().unwrap().addrs, None);
        let mut v3 = V2_SIGNATURE.to_vec();
        v3.extend_from_slice(&[0x31, 0x11, 0, 0]);
        assert_eq!(
            parse(&v3).unwrap_err().to_string(),
            "unknown PROXY protocol version: 3"
        );
    }

    proptest::proptest! {
        /// Whatever a client sends, parsing answers (never panics), and a
        /// header it accepts fits in what was given.
        #[test]
        fn any_bytes_parse_without_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            if let Ok(Some(h)) = parse(&bytes) {
                proptest::prop_assert!(h.len <= bytes.len());
            }
            let mut v2 = V2_SIGNATURE.to_vec();
            v2.extend_from_slice(&bytes);
            if let Ok(Some(h)) = parse(&v2) {
                proptest::prop_assert!(h.len <= v2.len());
            }
        }
    }
}
