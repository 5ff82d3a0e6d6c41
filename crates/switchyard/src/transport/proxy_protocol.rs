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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    /// Its length in bytes, to consume.
    pub len: usize,
    /// The original client and server, unless the header carried none
    /// (`UNKNOWN`, v2 `LOCAL`, or a family without addresses).
    pub addrs: Option<(SocketAddr, SocketAddr)>,
    /// A v2 header's TLVs after the addresses (`$proxy_protocol_tlv_*`),
    /// kept as they came; none without addresses, as nginx keeps them.
    pub tlvs: Option<Box<[u8]>>,
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
        return Ok(Some(Header {
            len,
            addrs: None,
            tlvs: None,
        }));
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
        tlvs: None,
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
        return Ok(Some(Header {
            len,
            addrs: None,
            tlvs: None,
        }));
    }
    let (addrs, rest) = match family >> 4 {
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
            (
                Some((
                    SocketAddr::new(ip(0), port(8)),
                    SocketAddr::new(ip(4), port(10)),
                )),
                &data[12..],
            )
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
            (
                Some((
                    SocketAddr::new(ip(0), port(32)),
                    SocketAddr::new(ip(16), port(34)),
                )),
                &data[36..],
            )
        }
        // AF_UNSPEC, AF_UNIX: no usable addresses (nginx ignores them too).
        _ => (None, &data[..0]),
    };
    let tlvs = (addrs.is_some() && !rest.is_empty()).then(|| rest.into());
    Ok(Some(Header { len, addrs, tlvs }))
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

/// Why a TLV could not be read; `Display` is nginx's error-log text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TlvError {
    /// A TLV runs past the header's end.
    #[error("broken PROXY protocol TLV")]
    Broken,
    /// `0x` and no hexadecimal number.
    #[error("invalid PROXY protocol TLV \"{0}\"")]
    Invalid(String),
    /// A name nginx does not know.
    #[error("unknown PROXY protocol TLV \"{0}\"")]
    Unknown(String),
}

/// `$proxy_protocol_tlv_NAME` of a connection whose header kept `tlvs`,
/// as http and stream give it: the value as text, not found when there is
/// none, and a TLV that does not read logged as nginx logs it (connection
/// `conn`) and not found.
pub(crate) fn tlv_variable(tlvs: Option<&[u8]>, name: &str, conn: u64) -> Option<String> {
    match tlv(tlvs?, name) {
        Ok(value) => value.map(|v| String::from_utf8_lossy(&v).into_owned()),
        Err(e) => {
            crate::observe::error_log::error(Some(conn), &e.to_string());
            None
        }
    }
}

/// The TLV names of nginx's table, and the SSL TLV's sub-TLVs.
const TLV_NAMES: [(&str, u8); 5] = [
    ("alpn", 0x01),
    ("authority", 0x02),
    ("unique_id", 0x05),
    ("ssl", 0x20),
    ("netns", 0x30),
];
const SSL_TLV_NAMES: [(&str, u8); 5] = [
    ("version", 0x21),
    ("cn", 0x22),
    ("cipher", 0x23),
    ("sig_alg", 0x24),
    ("key_alg", 0x25),
];

/// The value of `$proxy_protocol_tlv_NAME` in `tlvs`, as
/// ngx_proxy_protocol_get_tlv finds it: NAME is a name of nginx's table
/// or `0xHEX`; `ssl_NAME` (or `ssl_0xHEX`) looks inside the SSL TLV, and
/// `ssl_verify` is its verify field in decimal. `Ok(None)`: not there.
pub(crate) fn tlv(tlvs: &[u8], name: &str) -> Result<Option<Vec<u8>>, TlvError> {
    let (scope, names, key): (&[u8], &[(&str, u8)], &str) = match name.strip_prefix("ssl_") {
        Some(key) => {
            let Some(ssl) = lookup(tlvs, 0x20)? else {
                return Ok(None);
            };
            // One byte of client flags and four of verify come first.
            if ssl.len() < 5 {
                return Err(TlvError::Broken);
            }
            if key == "verify" {
                let verify = u32::from_be_bytes([ssl[1], ssl[2], ssl[3], ssl[4]]);
                return Ok(Some(verify.to_string().into_bytes()));
            }
            (&ssl[5..], &SSL_TLV_NAMES, key)
        }
        None => (tlvs, &TLV_NAMES, name),
    };
    let kind = match key.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16)
            .ok()
            .filter(|_| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| TlvError::Invalid(name.to_string()))?,
        None => names
            .iter()
            .find(|(n, _)| *n == key)
            .map(|(_, t)| u32::from(*t))
            .ok_or_else(|| TlvError::Unknown(name.to_string()))?,
    };
    // A type past one byte names no TLV.
    let Ok(kind) = u8::try_from(kind) else {
        return Ok(None);
    };
    Ok(lookup(scope, kind)?.map(<[u8]>::to_vec))
}

/// The value of the first TLV of type `kind` in `tlvs`.
fn lookup(mut tlvs: &[u8], kind: u8) -> Result<Option<&[u8]>, TlvError> {
    while !tlvs.is_empty() {
        if tlvs.len() < 3 {
            return Err(TlvError::Broken);
        }
        let len = usize::from(u16::from_be_bytes([tlvs[1], tlvs[2]]));
        let value = tlvs.get(3..3 + len).ok_or(TlvError::Broken)?;
        if tlvs[0] == kind {
            return Ok(Some(value));
        }
        tlvs = &tlvs[3 + len..];
    }
    Ok(None)
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

    /// One TLV: type, two bytes of length, the value.
    fn tlv_bytes(kind: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value);
        out
    }

    #[test]
    fn tlvs_by_name_number_and_inside_the_ssl_one() {
        let mut ssl = vec![0x01, 0, 0, 0, 255];
        ssl.extend(tlv_bytes(0x21, b"TLSv1.2"));
        ssl.extend(tlv_bytes(0x22, b"example.com"));
        let mut tlvs = tlv_bytes(0x01, b"h2");
        tlvs.extend(tlv_bytes(0x20, &ssl));
        tlvs.extend(tlv_bytes(0xae, b"custom"));
        let get = |name: &str| tlv(&tlvs, name).map(|v| v.map(|v| String::from_utf8(v).unwrap()));
        assert_eq!(get("alpn"), Ok(Some("h2".into())));
        assert_eq!(get("0x01"), Ok(Some("h2".into())));
        assert_eq!(get("0x000ae"), Ok(Some("custom".into())));
        assert_eq!(get("ssl_version"), Ok(Some("TLSv1.2".into())));
        assert_eq!(get("ssl_0x22"), Ok(Some("example.com".into())));
        assert_eq!(get("ssl_verify"), Ok(Some("255".into())));
        assert_eq!(get("authority"), Ok(None));
        assert_eq!(get("0x0f"), Ok(None));
        assert_eq!(get("nonsense"), Err(TlvError::Unknown("nonsense".into())));
        assert_eq!(get("0xzz"), Err(TlvError::Invalid("0xzz".into())));
        assert_eq!(tlv(&[0x01, 0, 9, b'x'], "alpn"), Err(TlvError::Broken));
        // A v2 header keeps what follows its addresses.
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[0x21, 0x11]);
        let body = [
            &[127, 0, 0, 1, 127, 0, 0, 2, 0, 1, 0, 2][..],
            &tlv_bytes(0x02, b"host"),
        ]
        .concat();
        v2.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v2.extend_from_slice(&body);
        let header = parse(&v2).unwrap().unwrap();
        assert_eq!(
            tlv(header.tlvs.as_deref().unwrap(), "authority"),
            Ok(Some(b"host".to_vec()))
        );
    }

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
