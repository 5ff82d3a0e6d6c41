//! `ssl_preread`: what a TLS ClientHello says before any TLS is spoken,
//! read without consuming it (the bytes still go to the upstream as they
//! came), so that `map $ssl_preread_server_name` can route port 443 by SNI
//! with TLS passed through.
//!
//! Pure: [`parse`] looks at the bytes peeked so far and says whether the
//! hello is complete, needs more bytes, or is not a TLS hello at all. As
//! nginx's module does, it reads the client's version, the first
//! `server_name`, the first ALPN list and whether `supported_versions` is
//! present (TLS 1.3), spanning handshake records, and recognises an SSLv2
//! ClientHello by its header.

/// What the ClientHello said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// The protocol version, `(major, minor)`, as in the record (3.4 for
    /// TLS 1.3 via `supported_versions`).
    pub version: (u8, u8),
    /// The SNI host name, if any.
    pub server_name: Option<String>,
    /// The ALPN protocols, comma-separated, if any.
    pub alpn: Option<String>,
}

impl ClientHello {
    /// `$ssl_preread_protocol`, in OpenSSL's `SSL_get_version` words.
    pub fn protocol(&self) -> Option<&'static str> {
        Some(match self.version {
            (0, 2) => "SSLv2",
            (3, 0) => "SSLv3",
            (3, 1) => "TLSv1",
            (3, 2) => "TLSv1.1",
            (3, 3) => "TLSv1.2",
            (3, 4) => "TLSv1.3",
            _ => return None,
        })
    }
}

/// The verdict on the bytes read so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preread {
    /// A complete ClientHello.
    Hello(ClientHello),
    /// Not complete yet: read more.
    NeedMore,
    /// Not a TLS ClientHello (or a malformed one): no variables are set and
    /// the session goes on, as nginx's module declines.
    NotHello,
}

const HANDSHAKE: u8 = 0x16;
const CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// Looks at `bytes`, the start of what the client sent.
pub fn parse(bytes: &[u8]) -> Preread {
    // SSLv2-compatible ClientHello: a 2-byte length with the high bit set,
    // then message type 1 and the version.
    if bytes.len() >= 5
        && bytes[0] & 0x80 != 0
        && bytes[2] == CLIENT_HELLO
        && (bytes[3] == 0 || bytes[3] == 3)
    {
        return Preread::Hello(ClientHello {
            version: (bytes[3], bytes[4]),
            ..ClientHello::default()
        });
    }
    // The handshake message, gathered from as many records as it spans.
    let mut handshake = Vec::new();
    let mut rest = bytes;
    loop {
        if rest.len() < 5 {
            return Preread::NeedMore;
        }
        if rest[0] != HANDSHAKE || rest[1] != 3 {
            return Preread::NotHello;
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        // A record is looked at only once it is whole.
        if rest.len() < 5 + len {
            return Preread::NeedMore;
        }
        handshake.extend_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
        match client_hello(&handshake) {
            Parsed::Done(hello) => return Preread::Hello(hello),
            Parsed::Short => continue,
            Parsed::Bad => return Preread::NotHello,
        }
    }
}

enum Parsed {
    Done(ClientHello),
    Short,
    Bad,
}

/// A cursor over the handshake bytes: `Short` when they end too soon.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a length prefix of `width` bytes (1 or 2).
    fn vector(&mut self, width: usize) -> Option<&'a [u8]> {
        let len = match width {
            1 => usize::from(self.u8()?),
            _ => usize::from(self.u16()?),
        };
        self.take(len)
    }
}

fn client_hello(handshake: &[u8]) -> Parsed {
    if handshake.len() < 4 {
        return Parsed::Short;
    }
    if handshake[0] != CLIENT_HELLO {
        return Parsed::Bad;
    }
    let len = (usize::from(handshake[1]) << 16)
        | (usize::from(handshake[2]) << 8)
        | usize::from(handshake[3]);
    let Some(body) = handshake.get(4..4 + len) else {
        return Parsed::Short;
    };
    // The message is whole: from here on, anything missing is malformed.
    match hello_body(body) {
        Some(hello) => Parsed::Done(hello),
        None => Parsed::Bad,
    }
}

fn hello_body(body: &[u8]) -> Option<ClientHello> {
    let mut r = Reader { bytes: body };
    let version = r.take(2)?;
    let mut hello = ClientHello {
        version: (version[0], version[1]),
        ..ClientHello::default()
    };
    r.take(32)?; // random
    r.vector(1)?; // session id
    r.vector(2)?; // cipher suites
    r.vector(1)?; // compression methods
    if r.bytes.is_empty() {
        return Some(hello); // no extensions
    }
    // The extensions' total length is not trusted, as nginx does not: each
    // extension is read by its own length fields (SNI, ALPN and
    // supported_versions by their inner lists), to the end of the message.
    r.u16()?;
    while !r.bytes.is_empty() {
        let kind = r.u16()?;
        let declared = usize::from(r.u16()?);
        match kind {
            EXT_SERVER_NAME if hello.server_name.is_none() => {
                let mut list = Reader {
                    bytes: r.vector(2)?,
                };
                if list.u8()? != 0 {
                    return None; // not a DNS host name
                }
                let name = list.vector(2)?;
                hello.server_name = Some(String::from_utf8_lossy(name).into_owned());
            }
            EXT_ALPN if hello.alpn.is_none() => {
                let mut list = Reader {
                    bytes: r.vector(2)?,
                };
                let mut protocols = Vec::new();
                while !list.bytes.is_empty() {
                    let p = list.vector(1)?;
                    if p.is_empty() {
                        return None;
                    }
                    protocols.push(String::from_utf8_lossy(p).into_owned());
                }
                hello.alpn = Some(protocols.join(","));
            }
            // Its presence means a TLS 1.3 client, whatever it lists.
            EXT_SUPPORTED_VERSIONS => {
                r.vector(1)?;
                hello.version = (3, 4);
            }
            _ => {
                r.take(declared)?;
            }
        }
    }
    Some(hello)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A ClientHello record with these extensions (type, data).
    fn hello(version: [u8; 2], extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = version.to_vec();
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]); // one cipher suite
        body.extend([1, 0]); // null compression
        let mut ext = Vec::new();
        for (kind, data) in extensions {
            ext.extend(kind.to_be_bytes());
            ext.extend((data.len() as u16).to_be_bytes());
            ext.extend(data);
        }
        if !extensions.is_empty() {
            body.extend((ext.len() as u16).to_be_bytes());
            body.extend(ext);
        }
        let mut handshake = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
        handshake.extend(body);
        let mut record = vec![0x16, 3, 1];
        record.extend((handshake.len() as u16).to_be_bytes());
        record.extend(handshake);
        record
    }

    fn sni(name: &str) -> (u16, Vec<u8>) {
        let mut entry = vec![0];
        entry.extend((name.len() as u16).to_be_bytes());
        entry.extend(name.as_bytes());
        let mut data = (entry.len() as u16).to_be_bytes().to_vec();
        data.extend(entry);
        (EXT_SERVER_NAME, data)
    }

    fn alpn(protocols: &[&str]) -> (u16, Vec<u8>) {
        let mut list = Vec::new();
        for p in protocols {
            list.push(p.len() as u8);
            list.extend(p.as_bytes());
        }
        let mut data = (list.len() as u16).to_be_bytes().to_vec();
        data.extend(list);
        (EXT_ALPN, data)
    }

    #[test]
    fn server_name_alpn_and_version() {
        let bytes = hello([3, 3], &[sni("api.ocp4.test"), alpn(&["h2", "http/1.1"])]);
        let Preread::Hello(h) = parse(&bytes) else {
            panic!("{:?}", parse(&bytes))
        };
        assert_eq!(h.server_name.as_deref(), Some("api.ocp4.test"));
        assert_eq!(h.alpn.as_deref(), Some("h2,http/1.1"));
        assert_eq!(h.protocol(), Some("TLSv1.2"));
        let tls13 = hello([3, 3], &[(EXT_SUPPORTED_VERSIONS, vec![2, 3, 4])]);
        assert!(matches!(parse(&tls13), Preread::Hello(h) if h.protocol() == Some("TLSv1.3")));
        let bare = hello([3, 1], &[]);
        assert!(
            matches!(parse(&bare), Preread::Hello(h) if h.protocol() == Some("TLSv1") && h.server_name.is_none())
        );
    }

    #[test]
    fn incomplete_other_and_sslv2() {
        let bytes = hello([3, 3], &[sni("a.test")]);
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]), Preread::NeedMore, "cut at {cut}");
        }
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Preread::NotHello);
        assert_eq!(parse(&[0x16, 2, 0, 0, 0]), Preread::NotHello);
        let sslv2 = [0x80, 0x1c, 0x01, 0x00, 0x02, 0, 3];
        assert!(matches!(parse(&sslv2), Preread::Hello(h) if h.protocol() == Some("SSLv2")));
        let sslv2_tls1 = [0x80, 0x1c, 0x01, 0x03, 0x01, 0, 3];
        assert!(matches!(parse(&sslv2_tls1), Preread::Hello(h) if h.protocol() == Some("TLSv1")));
    }

    #[test]
    fn a_hello_split_across_records() {
        let whole = hello([3, 3], &[sni("split.test")]);
        let handshake = &whole[5..];
        let (a, b) = handshake.split_at(20);
        let mut bytes = Vec::new();
        for part in [a, b] {
            bytes.extend([0x16, 3, 1]);
            bytes.extend((part.len() as u16).to_be_bytes());
            bytes.extend(part);
        }
        assert!(
            matches!(parse(&bytes), Preread::Hello(h) if h.server_name.as_deref() == Some("split.test"))
        );
    }

    #[test]
    fn malformed_extensions_decline() {
        let bad_sni_type = {
            let (k, mut d) = sni("x.test");
            d[2] = 1;
            (k, d)
        };
        assert_eq!(parse(&hello([3, 3], &[bad_sni_type])), Preread::NotHello);
        assert_eq!(parse(&hello([3, 3], &[alpn(&[""])])), Preread::NotHello);
    }

    proptest! {
        /// Any bytes: a verdict, never a panic.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&bytes);
        }

        /// A real hello with any SNI parses the same whatever follows it.
        #[test]
        fn trailing_bytes_do_not_matter(name in "[a-z]{1,20}\\.test", tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut bytes = hello([3, 3], &[sni(&name)]);
            bytes.extend(tail);
            let parsed = parse(&bytes);
            prop_assert!(matches!(parsed, Preread::Hello(h) if h.server_name.as_deref() == Some(name.as_str())));
        }
    }
}
