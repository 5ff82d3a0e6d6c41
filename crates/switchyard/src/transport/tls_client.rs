//! The client side of TLS to upstreams (`proxy_pass https://`, stream
//! `proxy_ssl on`): a rustls client configuration from nginx's
//! `proxy_ssl_*` settings, built once per location (or stream server), and
//! the handshake with nginx's error-log words.
//!
//! Verification is our own verifier over webpki, for what OpenSSL does
//! and rustls's stock verifier does not: `proxy_ssl_verify_depth` (a chain
//! longer than the depth fails, "certificate chain too long"), and OpenSSL's
//! numbered reasons in "upstream SSL certificate verify error: (N:...)".

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::sign::SingleCertAndKey;
use rustls::{DigitallySignedStruct, OtherError, SignatureScheme, SupportedCipherSuite};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::tls::{load_certificates, load_private_key_with, AnyCertificate, TlsError};
use super::tls_server::{certified_key, Protocols};
use super::x509::{self, verify_handshake_signature};

/// The `proxy_ssl_*` settings of one location or stream server.
#[derive(Debug, Clone)]
pub struct ClientTlsSettings {
    /// `proxy_ssl_protocols`.
    pub protocols: Protocols,
    /// `proxy_ssl_ciphers`, selected; `None` for rustls's defaults
    /// (nginx's `DEFAULT`).
    pub ciphers: Option<Vec<SupportedCipherSuite>>,
    /// `proxy_ssl_verify`.
    pub verify: bool,
    /// `proxy_ssl_verify_depth`.
    pub verify_depth: u32,
    /// `proxy_ssl_trusted_certificate`.
    pub trusted: Option<PathBuf>,
    /// `proxy_ssl_crl`.
    pub crl: Option<PathBuf>,
    /// `proxy_ssl_certificate` and `proxy_ssl_certificate_key`.
    pub certificate: Option<(PathBuf, PathBuf)>,
    /// `proxy_ssl_password_file`: passwords for an encrypted key.
    pub passwords: Vec<String>,
    /// `proxy_ssl_server_name`: whether SNI is sent.
    pub server_name: bool,
    /// `proxy_ssl_session_reuse`.
    pub session_reuse: bool,
}

/// How many sessions a location's client cache keeps (rustls's default;
/// nginx keeps one per peer, which this covers for any real group).
const SESSIONS: usize = 256;

/// Tells TLS contexts apart in the keepalive pool: a connection is reused
/// only by the context (client certificate, verification) that made it.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A location's TLS to its upstream, ready to connect.
#[derive(Clone)]
pub struct UpstreamTls {
    connector: tokio_rustls::TlsConnector,
    id: u64,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls").field("id", &self.id).finish()
    }
}

/// Why a handshake to an upstream failed, in nginx's words.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The certificate chain did not verify (OpenSSL's code and text).
    #[error("upstream SSL certificate verify error: ({code}:{text})")]
    Verify {
        /// OpenSSL's X509_V_ERR_* number.
        code: u32,
        /// OpenSSL's text for it.
        text: String,
    },
    /// The certificate is not for the name (`proxy_ssl_name`).
    #[error("upstream SSL certificate does not match \"{0}\"")]
    Name(String),
    /// The peer closed or reset the connection during the handshake.
    #[error("peer closed connection in SSL handshake ({0})")]
    Closed(String),
    /// Any other TLS failure.
    #[error("SSL_do_handshake() failed (SSL: {0})")]
    Tls(String),
}

/// A verification failure carried through rustls to the handshake's error.
#[derive(Debug, thiserror::Error)]
enum VerifyFailure {
    #[error("({0}:{1})")]
    Chain(u32, &'static str),
    #[error("name")]
    Name,
}

fn provider(ciphers: Option<&[SupportedCipherSuite]>) -> CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    if let Some(list) = ciphers {
        p.cipher_suites = list.to_vec();
    }
    p
}

impl UpstreamTls {
    /// The client configuration for `settings`: certificate files are read
    /// now, so that a bad one fails `-t` as nginx's does.
    pub fn build(settings: &ClientTlsSettings) -> Result<UpstreamTls, TlsError> {
        let provider = Arc::new(provider(settings.ciphers.as_deref()));
        let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
        if settings.protocols.tls13 {
            versions.push(&rustls::version::TLS13);
        }
        if settings.protocols.tls12 {
            versions.push(&rustls::version::TLS12);
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)?;
        let verifier: Arc<dyn ServerCertVerifier> = if settings.verify {
            Arc::new(Verifier::load(settings, provider.clone())?)
        } else {
            Arc::new(AnyCertificate::new(provider.clone()))
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &settings.certificate {
            Some((cert, key)) => {
                let certs = load_certificates(cert).map_err(|e| TlsError::Certificate {
                    path: cert.clone(),
                    reason: e.to_string(),
                })?;
                let key_der = load_private_key_with(key, &settings.passwords).map_err(|e| {
                    TlsError::CertificateKey {
                        path: key.clone(),
                        reason: e.to_string(),
                    }
                })?;
                // Not rustls's with_client_auth_cert: its check refuses the
                // X.509 v1 certificates OpenSSL sends (see certified_key).
                let certified = certified_key(&provider, certs, key_der, key)?;
                builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)))
            }
            None => builder.with_no_client_auth(),
        };
        config.enable_sni = settings.server_name;
        config.resumption = if settings.session_reuse {
            Resumption::in_memory_sessions(SESSIONS)
        } else {
            Resumption::disabled()
        };
        Ok(UpstreamTls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// This context's identity in the keepalive pool.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The handshake on `tcp` for `name` (the `proxy_ssl_name`, port
    /// already stripped); an empty or unusable name falls back to the
    /// peer's address, which sends no SNI, as nginx sends none for an
    /// address.
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        name: &str,
        peer: IpAddr,
    ) -> Result<TlsStream<TcpStream>, HandshakeError> {
        let server_name = sni_name(name).unwrap_or(ServerName::IpAddress(peer.into()));
        self.connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| handshake_error(e, name))
    }
}

/// `name` as rustls takes it: a DNS name, or an address (`[::1]` too).
fn sni_name(name: &str) -> Option<ServerName<'static>> {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    if bare.is_empty() {
        return None;
    }
    ServerName::try_from(bare.to_string()).ok()
}

/// nginx's ssl name from a host as written: the port stripped (`host:port`,
/// `[v6]:port`), as ngx_http_upstream_ssl_name does.
pub fn strip_port(name: &str) -> &str {
    let from = if name.starts_with('[') {
        name.find(']').unwrap_or(0)
    } else {
        0
    };
    match name[from..].find(':') {
        Some(i) => &name[..from + i],
        None => name,
    }
}

fn handshake_error(e: std::io::Error, name: &str) -> HandshakeError {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::Other(OtherError(other))) => {
            match other.downcast_ref::<VerifyFailure>() {
                Some(VerifyFailure::Chain(code, text)) => HandshakeError::Verify {
                    code: *code,
                    text: (*text).to_string(),
                },
                Some(VerifyFailure::Name) => HandshakeError::Name(name.to_string()),
                None => HandshakeError::Tls(other.to_string()),
            }
        }
        Some(other) => HandshakeError::Tls(other.to_string()),
        None => match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                HandshakeError::Closed(crate::observe::error_log::os_error(&std::io::Error::from(
                    std::io::ErrorKind::ConnectionReset,
                )))
            }
            _ => HandshakeError::Closed(crate::observe::error_log::os_error(&e)),
        },
    }
}

/// `proxy_ssl_verify on`: the chain to `proxy_ssl_trusted_certificate`,
/// within `proxy_ssl_verify_depth`, checked against `proxy_ssl_crl`, and
/// the name.
#[derive(Debug)]
struct Verifier {
    anchors: Vec<rustls_pki_types::TrustAnchor<'static>>,
    /// The trusted certificates themselves: a self-signed leaf that is one
    /// of them is a chain of depth 0, as OpenSSL counts.
    trusted: Vec<CertificateDer<'static>>,
    crls: Vec<webpki::CertRevocationList<'static>>,
    depth: u32,
    provider: Arc<CryptoProvider>,
}

impl Verifier {
    fn load(
        settings: &ClientTlsSettings,
        provider: Arc<CryptoProvider>,
    ) -> Result<Verifier, TlsError> {
        let mut trusted = Vec::new();
        if let Some(path) = &settings.trusted {
            trusted = load_certificates(path).map_err(|e| TlsError::Trusted {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
        let mut anchors = Vec::new();
        for cert in &trusted {
            let anchor = webpki::anchor_from_trusted_cert(cert).map_err(|e| TlsError::Trusted {
                path: settings.trusted.clone().unwrap_or_default(),
                reason: format!("{e:?}"),
            })?;
            anchors.push(anchor.to_owned());
        }
        let mut crls = Vec::new();
        if let Some(path) = &settings.crl {
            let crl_error = |reason: String| TlsError::Crl {
                path: path.clone(),
                reason,
            };
            let ders = CertificateRevocationListDer::pem_file_iter(path)
                .map_err(|e| crl_error(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| crl_error(e.to_string()))?;
            for der in ders {
                let owned = webpki::OwnedCertRevocationList::from_der(der.as_ref())
                    .map_err(|e| crl_error(format!("{e:?}")))?;
                crls.push(webpki::CertRevocationList::Owned(owned));
            }
        }
        Ok(Verifier {
            anchors,
            trusted,
            crls,
            depth: settings.verify_depth,
            provider,
        })
    }
}

/// OpenSSL's number and text for a webpki failure.
fn openssl_reason(e: &webpki::Error, self_signed: bool) -> (u32, &'static str) {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer if self_signed => (18, "self-signed certificate"),
        E::UnknownIssuer => (20, "unable to get local issuer certificate"),
        E::CertExpired { .. } => (10, "certificate has expired"),
        E::CertNotValidYet { .. } => (9, "certificate is not yet valid"),
        E::CertRevoked => (23, "certificate revoked"),
        E::UnknownRevocationStatus => (3, "unable to get certificate CRL"),
        E::CrlExpired { .. } => (12, "CRL has expired"),
        E::MaximumPathDepthExceeded => (22, "certificate chain too long"),
        E::InvalidSignatureForPublicKey | E::InvalidCrlSignatureForPublicKey => {
            (7, "certificate signature failure")
        }
        E::CaUsedAsEndEntity | E::EndEntityUsedAsCa => (24, "invalid CA certificate"),
        E::RequiredEkuNotFoundContext(_) => (26, "unsuitable certificate purpose"),
        _ => (1, "unspecified certificate verification error"),
    }
}

fn name_failure() -> rustls::Error {
    rustls::Error::Other(OtherError(Arc::new(VerifyFailure::Name)))
}

/// Whether a commonName of the certificate matches `server_name`.
fn common_name_matches(cert: &CertificateDer<'_>, server_name: &ServerName<'_>) -> bool {
    let Some(f) = x509::fields(cert.as_ref()) else {
        return false;
    };
    let name = match server_name {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => return false,
    };
    x509::common_names(f.subject)
        .iter()
        .any(|cn| x509::name_matches(cn, &name))
}

impl Verifier {
    /// A certificate webpki cannot read (X.509 v1): OpenSSL accepts one
    /// that is itself trusted (a chain of depth 0), within its validity,
    /// matched by its commonName.
    fn verify_unparsed(
        &self,
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
        error: &webpki::Error,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(f) = x509::fields(end_entity.as_ref()) else {
            return Err(chain_failure(openssl_reason(error, false)));
        };
        let self_signed = f.issuer == f.subject;
        if !self
            .trusted
            .iter()
            .any(|t| t.as_ref() == end_entity.as_ref())
        {
            return Err(chain_failure(openssl_reason(
                &webpki::Error::UnknownIssuer,
                self_signed,
            )));
        }
        let now = now.as_secs();
        if now < f.validity.0 {
            return Err(chain_failure((9, "certificate is not yet valid")));
        }
        if now > f.validity.1 {
            return Err(chain_failure((10, "certificate has expired")));
        }
        if !common_name_matches(end_entity, server_name) {
            return Err(name_failure());
        }
        Ok(ServerCertVerified::assertion())
    }
}

fn chain_failure(code: (u32, &'static str)) -> rustls::Error {
    rustls::Error::Other(OtherError(Arc::new(VerifyFailure::Chain(code.0, code.1))))
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ee = match webpki::EndEntityCert::try_from(end_entity) {
            Ok(ee) => ee,
            Err(e) => return self.verify_unparsed(end_entity, server_name, now, &e),
        };
        let self_signed = ee.issuer() == ee.subject();
        let leaf_trusted = self
            .trusted
            .iter()
            .any(|t| t.as_ref() == end_entity.as_ref());
        let depth = self.depth as usize;
        // OpenSSL counts the certificates above the leaf, the trust
        // anchor included; a trusted leaf is its own anchor.
        let within_depth = |path: &webpki::VerifiedPath<'_>| {
            let above = if leaf_trusted {
                0
            } else {
                path.intermediate_certificates().count() + 1
            };
            if above > depth {
                Err(webpki::Error::MaximumPathDepthExceeded)
            } else {
                Ok(())
            }
        };
        let crl_refs: Vec<&webpki::CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = match webpki::RevocationOptionsBuilder::new(&crl_refs) {
            Ok(b) => Some(
                b.with_depth(webpki::RevocationCheckDepth::Chain)
                    .with_status_policy(webpki::UnknownStatusPolicy::Deny)
                    .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
                    .build(),
            ),
            Err(_) => None,
        };
        ee.verify_for_usage(
            self.provider.signature_verification_algorithms.all,
            &self.anchors,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            revocation,
            Some(&within_depth),
        )
        .map_err(|e| chain_failure(openssl_reason(&e, self_signed)))?;
        // OpenSSL falls back to the commonName without DNS subjectAltNames.
        if ee.verify_is_valid_for_subject_name(server_name).is_err()
            && (ee.valid_dns_names().next().is_some()
                || !common_name_matches(end_entity, server_name))
        {
            return Err(name_failure());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
            false,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
            true,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_as_nginx_does() {
        assert_eq!(strip_port("example.com:8443"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:443"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("127.0.0.1:8081"), "127.0.0.1");
    }

    fn settings(certificate: (PathBuf, PathBuf)) -> ClientTlsSettings {
        ClientTlsSettings {
            protocols: Protocols::default(),
            ciphers: None,
            verify: false,
            verify_depth: 1,
            trusted: None,
            crl: None,
            certificate: Some(certificate),
            passwords: Vec::new(),
            server_name: false,
            session_reuse: true,
        }
    }

    /// `openssl req -x509` without extensions makes an X.509 v1
    /// certificate, which OpenSSL (and so nginx) presents as a client
    /// certificate; a key of another certificate is still refused.
    #[test]
    fn a_version_1_client_certificate_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("openssl.conf"),
            "[ req ]\ndistinguished_name = dn\nencrypt_key = no\n[ dn ]\n",
        )
        .unwrap();
        for name in ["a", "b"] {
            let made = std::process::Command::new("openssl")
                .args(["req", "-x509", "-new", "-subj", "/CN=client/", "-config"])
                .arg(dir.path().join("openssl.conf"))
                .arg("-out")
                .arg(dir.path().join(format!("{name}.crt")))
                .arg("-keyout")
                .arg(dir.path().join(format!("{name}.key")))
                .output()
                .unwrap();
            assert!(made.status.success(), "{made:?}");
        }
        let pem = std::fs::read_to_string(dir.path().join("a.crt")).unwrap();
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        // Certificate and tbsCertificate headers (30 82 LL LL each), then
        // no [0] version field: v1.
        assert_ne!(der.as_ref()[8], 0xa0);
        let cert = dir.path().join("a.crt");
        UpstreamTls::build(&settings((cert.clone(), dir.path().join("a.key")))).unwrap();
        let e = UpstreamTls::build(&settings((cert, dir.path().join("b.key"))))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("b.key") && e.contains("does not match"), "{e}");
    }

    #[test]
    fn names_as_rustls_takes_them() {
        assert!(matches!(
            sni_name("example.com"),
            Some(ServerName::DnsName(_))
        ));
        assert!(matches!(sni_name("[::1]"), Some(ServerName::IpAddress(_))));
        assert!(matches!(
            sni_name("127.0.0.1"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(sni_name("").is_none());
    }
}
