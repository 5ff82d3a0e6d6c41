//! The server side of TLS termination (`listen ... ssl`): a rustls server
//! configuration from nginx's `ssl_*` settings, and what a finished
//! handshake tells the `$ssl_*` variables.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::server::{
    ClientHello, NoServerSessionStorage, ResolvesServerCert, StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use rustls::ServerConnection;

use super::tls::{load_certificates, load_private_key_with, TlsError};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// `ssl_protocols`: the versions rustls can speak. rustls implements
/// TLSv1.2 and TLSv1.3 only; `SSLv2`, `SSLv3`, `TLSv1` and `TLSv1.1` are
/// accepted in the list as nginx accepts them, but never negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocols {
    /// `TLSv1.2` is listed.
    pub tls12: bool,
    /// `TLSv1.3` is listed.
    pub tls13: bool,
}

impl Default for Protocols {
    /// nginx's default, `TLSv1.2 TLSv1.3`.
    fn default() -> Protocols {
        Protocols {
            tls12: true,
            tls13: true,
        }
    }
}

/// `ssl_session_cache`.
#[derive(Debug, Clone)]
pub enum SessionCache {
    /// `off`: no session is stored.
    Off,
    /// `none` (the default): sessions are not stored either; nginx only
    /// words the refusal more gently to the client.
    None,
    /// `builtin[:size]` and/or `shared:NAME:size`: one store, shared by
    /// every server naming the same zone.
    Store(Arc<dyn StoresServerSessions>),
}

/// The TLS settings of one server, as `ssl_*` directives give them.
#[derive(Debug, Clone)]
pub struct ServerTlsSettings {
    /// `ssl_certificate` / `ssl_certificate_key` pairs, in order.
    pub certificates: Vec<(PathBuf, PathBuf)>,
    /// `ssl_password_file`'s passwords, tried in order on an encrypted key.
    pub passwords: Vec<String>,
    /// `ssl_protocols`.
    pub protocols: Protocols,
    /// `ssl_ciphers`, selected (TLSv1.2 suites in order, TLSv1.3 ones).
    pub ciphers: Vec<rustls::SupportedCipherSuite>,
    /// `ssl_prefer_server_ciphers`.
    pub prefer_server_ciphers: bool,
    /// `ssl_session_cache`.
    pub session_cache: SessionCache,
    /// `ssl_session_timeout`.
    pub session_timeout: Duration,
    /// `ssl_session_tickets`.
    pub session_tickets: bool,
    /// `ssl_alpn`, in order.
    pub alpn: Vec<Vec<u8>>,
    /// A number telling this server's sessions apart in a shared cache.
    pub context: u64,
    /// `ssl_verify_client` and what it verifies against.
    pub client_auth: Option<super::client_cert::ClientAuth>,
    /// `ssl_ecdh_curve`: the key-exchange groups, in order (`None`: auto).
    pub kx_groups: Option<Vec<&'static dyn rustls::crypto::SupportedKxGroup>>,
}

/// A server's TLS at run time: the rustls configuration and the handshake
/// timeout.
#[derive(Clone)]
pub struct TlsServer {
    /// Accepts the client's handshake.
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// `ssl_handshake_timeout`.
    pub handshake_timeout: Duration,
    /// `ssl_verify_client`: the verdict on a client's certificate is given
    /// per request (http/server.rs), as nginx gives it.
    pub client_auth: Option<super::client_cert::ClientAuth>,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// Picks, among a server's certificates, the first whose key can sign with
/// a scheme the client offers (an RSA and an ECDSA certificate side by
/// side, as nginx lets OpenSSL choose), else the first.
#[derive(Debug)]
struct ByKeyType(Vec<Arc<CertifiedKey>>);

impl ResolvesServerCert for ByKeyType {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = hello.signature_schemes();
        self.0
            .iter()
            .find(|c| c.key.choose_scheme(schemes).is_some())
            .or_else(|| self.0.first())
            .cloned()
    }
}

/// One DER element at the start of `input`: its tag, its whole encoding
/// and its content.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in input.get(2..2 + n)? {
            len = (len << 8) | usize::from(*b);
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((tag, input.get(..end)?, input.get(header..end)?))
}

/// The SubjectPublicKeyInfo (with its SEQUENCE header) of a certificate:
/// the seventh element of tbsCertificate, counting the optional version.
fn subject_public_key_info(cert: &[u8]) -> Option<&[u8]> {
    let (_, _, certificate) = der_element(cert)?;
    let (_, _, mut tbs) = der_element(certificate)?;
    let (tag, whole, _) = der_element(tbs)?;
    if tag == 0xa0 {
        tbs = &tbs[whole.len()..];
    }
    // serial, signature, issuer, validity, subject, then the key.
    for _ in 0..5 {
        let (_, whole, _) = der_element(tbs)?;
        tbs = &tbs[whole.len()..];
    }
    let (tag, whole, _) = der_element(tbs)?;
    (tag == 0x30).then_some(whole)
}

/// A certificate chain with the key `der` read from `key`, checked to
/// belong together. rustls's own check parses the certificate with webpki,
/// which refuses X.509 v1 (what `openssl req -x509` makes without
/// extensions) although OpenSSL takes those; the public keys are compared
/// here instead, as OpenSSL's "key values mismatch" check does.
pub(crate) fn certified_key(
    provider: &rustls::crypto::CryptoProvider,
    chain: Vec<CertificateDer<'static>>,
    der: PrivateKeyDer<'static>,
    key: &Path,
) -> Result<CertifiedKey, TlsError> {
    let signing =
        provider
            .key_provider
            .load_private_key(der)
            .map_err(|e| TlsError::CertificateKey {
                path: key.to_path_buf(),
                reason: e.to_string(),
            })?;
    let wanted = signing.public_key();
    let have = chain.first().and_then(|c| subject_public_key_info(c));
    if let (Some(wanted), Some(have)) = (wanted, have) {
        if wanted.as_ref() != have {
            return Err(TlsError::CertificateKey {
                path: key.to_path_buf(),
                reason: "the key does not match the certificate".to_string(),
            });
        }
    }
    Ok(CertifiedKey::new(chain, signing))
}

/// Loads the certificates and builds the rustls configuration.
pub fn build(settings: &ServerTlsSettings) -> Result<rustls::ServerConfig, TlsError> {
    let defaults = rustls::crypto::ring::default_provider();
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: settings.ciphers.clone(),
        kx_groups: settings
            .kx_groups
            .clone()
            .unwrap_or_else(|| defaults.kx_groups.clone()),
        ..defaults
    };
    let mut keys = Vec::new();
    for (cert, key) in &settings.certificates {
        let reason = |e: TlsError| match e {
            TlsError::Pem { reason, .. } => reason,
            other => other.to_string(),
        };
        let chain = load_certificates(cert).map_err(|e| TlsError::Certificate {
            path: cert.clone(),
            reason: reason(e),
        })?;
        let der = load_private_key_with(key, &settings.passwords).map_err(|e| {
            TlsError::CertificateKey {
                path: key.clone(),
                reason: reason(e),
            }
        })?;
        keys.push(Arc::new(certified_key(&provider, chain, der, key)?));
    }
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if settings.protocols.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if settings.protocols.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let builder = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&versions)?;
    let with_auth = match &settings.client_auth {
        Some(auth) => builder.with_client_cert_verifier(auth.handshake_verifier()),
        None => builder.with_no_client_auth(),
    };
    let mut config = with_auth.with_cert_resolver(Arc::new(ByKeyType(keys)));
    config.ignore_client_order = settings.prefer_server_ciphers;
    config.alpn_protocols = settings.alpn.clone();
    config.session_storage = match &settings.session_cache {
        SessionCache::Off | SessionCache::None => Arc::new(NoServerSessionStorage {}),
        SessionCache::Store(store) => Arc::new(super::sessions::TimedCache::new(
            store.clone(),
            settings.context,
            settings.session_timeout,
        )),
    };
    if settings.session_tickets {
        config.ticketer = Arc::new(super::sessions::TimedTickets::new(
            Arc::new(super::sessions::RotatingTickets::new(
                settings.session_timeout,
            )?),
            settings.session_timeout,
        ));
    }
    Ok(config)
}

/// `$ssl_curves` from what a ClientHello offers: OpenSSL's short names,
/// `0x` and the code for a group OpenSSL has no name for.
pub fn offered_curves(hello: &rustls::server::ClientHello<'_>) -> String {
    use rustls::NamedGroup;
    let Some(groups) = hello.named_groups() else {
        return String::new();
    };
    groups
        .iter()
        .map(|g| match g {
            NamedGroup::X25519 => "X25519".to_string(),
            NamedGroup::X448 => "X448".to_string(),
            NamedGroup::secp256r1 => "prime256v1".to_string(),
            NamedGroup::secp384r1 => "secp384r1".to_string(),
            NamedGroup::secp521r1 => "secp521r1".to_string(),
            other => format!("0x{:04x}", u16::from(*other)),
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// nginx's words for a failed server-side handshake (what follows is the
/// caller's: `while SSL handshaking, client: ...`).
pub fn handshake_failure(e: &std::io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls_error) => format!("SSL_do_handshake() failed (SSL: {tls_error})"),
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "peer closed connection in SSL handshake".to_string()
        }
        None => format!(
            "SSL_do_handshake() failed ({})",
            crate::observe::error_log::os_error(e)
        ),
    }
}

/// The `$ssl_*` variables a terminated TLS connection answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslVar {
    /// `$ssl_protocol`.
    Protocol,
    /// `$ssl_cipher`.
    Cipher,
    /// `$ssl_curve`.
    Curve,
    /// `$ssl_curves`: the groups the client offered.
    Curves,
    /// `$ssl_server_name`.
    ServerName,
    /// `$ssl_alpn_protocol`.
    AlpnProtocol,
    /// `$ssl_session_reused`.
    SessionReused,
    /// `$ssl_client_verify`.
    ClientVerify,
    /// `$ssl_client_s_dn`.
    ClientSubject,
    /// `$ssl_client_i_dn`.
    ClientIssuer,
    /// `$ssl_client_s_dn_legacy`.
    ClientSubjectLegacy,
    /// `$ssl_client_i_dn_legacy`.
    ClientIssuerLegacy,
    /// `$ssl_client_serial`.
    ClientSerial,
    /// `$ssl_client_fingerprint`.
    ClientFingerprint,
    /// `$ssl_client_raw_cert`.
    ClientRawCert,
    /// `$ssl_client_cert`.
    ClientCert,
    /// `$ssl_client_escaped_cert`.
    ClientEscapedCert,
    /// `$ssl_client_v_start`.
    ClientValidFrom,
    /// `$ssl_client_v_end`.
    ClientValidUntil,
    /// `$ssl_client_v_remain`.
    ClientDaysLeft,
}

impl SslVar {
    /// The variable of `name` (without `$`), if it is one of these.
    pub fn from_name(name: &str) -> Option<SslVar> {
        Some(match name {
            "ssl_protocol" => SslVar::Protocol,
            "ssl_cipher" => SslVar::Cipher,
            "ssl_curve" => SslVar::Curve,
            "ssl_curves" => SslVar::Curves,
            "ssl_server_name" => SslVar::ServerName,
            "ssl_alpn_protocol" => SslVar::AlpnProtocol,
            "ssl_session_reused" => SslVar::SessionReused,
            "ssl_client_verify" => SslVar::ClientVerify,
            "ssl_client_s_dn" => SslVar::ClientSubject,
            "ssl_client_i_dn" => SslVar::ClientIssuer,
            "ssl_client_s_dn_legacy" => SslVar::ClientSubjectLegacy,
            "ssl_client_i_dn_legacy" => SslVar::ClientIssuerLegacy,
            "ssl_client_serial" => SslVar::ClientSerial,
            "ssl_client_fingerprint" => SslVar::ClientFingerprint,
            "ssl_client_raw_cert" => SslVar::ClientRawCert,
            "ssl_client_cert" => SslVar::ClientCert,
            "ssl_client_escaped_cert" => SslVar::ClientEscapedCert,
            "ssl_client_v_start" => SslVar::ClientValidFrom,
            "ssl_client_v_end" => SslVar::ClientValidUntil,
            "ssl_client_v_remain" => SslVar::ClientDaysLeft,
            _ => return None,
        })
    }
}

/// What a finished handshake tells the `$ssl_*` variables.
#[derive(Debug, Clone, Default)]
pub struct Handshake {
    /// `$ssl_protocol`: `TLSv1.2` or `TLSv1.3`.
    pub protocol: &'static str,
    /// `$ssl_cipher`, in OpenSSL's naming.
    pub cipher: &'static str,
    /// `$ssl_curve`, in OpenSSL's naming (`X25519`, `prime256v1`).
    pub curve: &'static str,
    /// `$ssl_server_name`: the SNI the client sent.
    pub server_name: Option<String>,
    /// `$ssl_alpn_protocol`.
    pub alpn: Option<String>,
    /// `$ssl_session_reused`: `r` when resumed, else `.`.
    pub reused: bool,
    /// What `ssl_verify_client` found (`None` when it is off).
    pub client: Option<ClientVerification>,
    /// `$ssl_curves`: the client's groups in OpenSSL's names, `:` between.
    pub curves: String,
}

/// A client's certificate and its verdict, as a handshake left them.
#[derive(Debug, Clone, Default)]
pub struct ClientVerification {
    /// What verification said.
    pub verdict: super::client_cert::Verdict,
    /// The `$ssl_client_*` values (`None`: no certificate was sent).
    pub certificate: Option<Arc<super::client_cert::ClientCertificate>>,
}

impl ClientVerification {
    /// The verdict on the certificates `conn` received, by `auth`.
    pub fn of(
        conn: &ServerConnection,
        auth: &super::client_cert::ClientAuth,
    ) -> ClientVerification {
        let chain = conn.peer_certificates().unwrap_or_default();
        let verdict = auth.verify(chain);
        ClientVerification {
            verdict,
            certificate: chain
                .first()
                .map(|leaf| Arc::new(super::client_cert::ClientCertificate::of(leaf, verdict))),
        }
    }
}

impl Handshake {
    /// Reads the negotiated parameters off a connection.
    pub fn of(conn: &ServerConnection) -> Handshake {
        use rustls::{HandshakeKind, NamedGroup, ProtocolVersion};
        Handshake {
            protocol: match conn.protocol_version() {
                Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "",
            },
            cipher: conn
                .negotiated_cipher_suite()
                .map(super::ciphers::openssl_name)
                .unwrap_or(""),
            curve: match conn.negotiated_key_exchange_group().map(|g| g.name()) {
                Some(NamedGroup::X25519) => "X25519",
                Some(NamedGroup::secp256r1) => "prime256v1",
                Some(NamedGroup::secp384r1) => "secp384r1",
                Some(NamedGroup::secp521r1) => "secp521r1",
                _ => "",
            },
            server_name: conn.server_name().map(str::to_string),
            alpn: conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            reused: conn.handshake_kind() == Some(HandshakeKind::Resumed),
            client: None,
            curves: String::new(),
        }
    }

    /// The value of `var` as the http and stream `$ssl_*` variables give
    /// it: `$ssl_protocol` and `$ssl_cipher` always (nginx's
    /// ngx_http_ssl_static_variable), the others not found when empty
    /// (ngx_http_ssl_variable: no SNI, no ALPN, no client certificate).
    pub fn found(&self, var: SslVar) -> Option<std::borrow::Cow<'_, str>> {
        let value = self.value(var);
        (matches!(var, SslVar::Protocol | SslVar::Cipher) || !value.is_empty()).then_some(value)
    }

    /// The value of `var`: an empty string for what the handshake did not
    /// have (no SNI, no ALPN, no client certificate).
    pub fn value(&self, var: SslVar) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        let cert = self.client.as_ref().and_then(|c| c.certificate.as_deref());
        let of_cert = |f: fn(&super::client_cert::ClientCertificate) -> &str| {
            Cow::Borrowed(cert.map(f).unwrap_or(""))
        };
        match var {
            SslVar::Protocol => Cow::Borrowed(self.protocol),
            SslVar::Cipher => Cow::Borrowed(self.cipher),
            SslVar::Curve => Cow::Borrowed(self.curve),
            SslVar::Curves => Cow::Borrowed(&self.curves),
            SslVar::ServerName => Cow::Borrowed(self.server_name.as_deref().unwrap_or("")),
            SslVar::AlpnProtocol => Cow::Borrowed(self.alpn.as_deref().unwrap_or("")),
            SslVar::SessionReused => Cow::Borrowed(if self.reused { "r" } else { "." }),
            SslVar::ClientVerify => Cow::Owned(
                self.client
                    .as_ref()
                    .map(|c| c.verdict)
                    .unwrap_or_default()
                    .text(),
            ),
            SslVar::ClientSubject => of_cert(|c| &c.subject),
            SslVar::ClientIssuer => of_cert(|c| &c.issuer),
            SslVar::ClientSubjectLegacy => of_cert(|c| &c.subject_legacy),
            SslVar::ClientIssuerLegacy => of_cert(|c| &c.issuer_legacy),
            SslVar::ClientSerial => of_cert(|c| &c.serial),
            SslVar::ClientFingerprint => of_cert(|c| &c.fingerprint),
            SslVar::ClientRawCert => of_cert(|c| &c.raw),
            SslVar::ClientCert => of_cert(|c| &c.indented),
            SslVar::ClientEscapedCert => of_cert(|c| &c.escaped),
            SslVar::ClientValidFrom => of_cert(|c| &c.not_before),
            SslVar::ClientValidUntil => of_cert(|c| &c.not_after),
            SslVar::ClientDaysLeft => match cert {
                Some(c) => Cow::Owned(c.days_left()),
                None => Cow::Borrowed(""),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &std::path::Path, tickets: bool) -> ServerTlsSettings {
        let (cert, key) = super::super::tls::self_signed(&["localhost".to_string()]).unwrap();
        std::fs::write(dir.join("c.pem"), cert).unwrap();
        std::fs::write(dir.join("k.pem"), key).unwrap();
        ServerTlsSettings {
            certificates: vec![(dir.join("c.pem"), dir.join("k.pem"))],
            passwords: Vec::new(),
            protocols: Protocols::default(),
            ciphers: super::super::ciphers::select("HIGH").unwrap(),
            prefer_server_ciphers: false,
            session_cache: SessionCache::None,
            session_timeout: Duration::from_secs(300),
            session_tickets: tickets,
            alpn: Vec::new(),
            context: 1,
            client_auth: None,
            kx_groups: None,
        }
    }

    #[test]
    fn tickets_follow_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let on = build(&settings(dir.path(), true)).unwrap();
        assert!(on.ticketer.enabled());
        assert_eq!(on.ticketer.lifetime(), 300);
        let off = build(&settings(dir.path(), false)).unwrap();
        assert!(!off.ticketer.enabled());
        assert!(!off.session_storage.can_cache());
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path(), true);
        let (_, other) = super::super::tls::self_signed(&["x".to_string()]).unwrap();
        std::fs::write(dir.path().join("other.pem"), other).unwrap();
        s.certificates[0].1 = dir.path().join("other.pem");
        let e = build(&s).unwrap_err().to_string();
        assert!(e.contains("other.pem"), "{e}");
    }
}
