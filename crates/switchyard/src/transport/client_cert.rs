//! Client certificates (`ssl_verify_client`), as nginx checks them: the
//! handshake never fails on the client's certificate (nginx's OpenSSL
//! callback accepts whatever comes); the certificate's verdict is kept
//! with the connection, and the request is refused afterwards with 495
//! (verification failed) or 496 (none sent) when the mode asks for it.
//! What `$ssl_client_*` answer is worked out once, at the handshake.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// `ssl_verify_client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyClient {
    /// `off` (the default): no certificate is asked for.
    #[default]
    Off,
    /// `on`: a verified certificate is required (496 without, 495 bad).
    On,
    /// `optional`: asked for; a bad one is refused with 495.
    Optional,
    /// `optional_no_ca`: asked for, never refused; `$ssl_client_verify`
    /// says what verification found.
    OptionalNoCa,
}

/// How a server asks for and checks client certificates.
#[derive(Clone)]
pub struct ClientAuth {
    /// `ssl_verify_client`.
    pub mode: VerifyClient,
    /// What verifies a chain: `ssl_client_certificate` and
    /// `ssl_trusted_certificate` together; `None` without either (only
    /// `optional_no_ca` allows that).
    pub verifier: Option<Arc<dyn ClientCertVerifier>>,
    /// The CA names sent to the client: `ssl_client_certificate`'s.
    pub hints: Vec<DistinguishedName>,
    /// `ssl_verify_depth`: at most this many certificates above the
    /// client's own (default 1).
    pub depth: usize,
    /// The trusted certificates, for chains webpki cannot read (below).
    roots: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuth")
            .field("mode", &self.mode)
            .field("depth", &self.depth)
            .finish_non_exhaustive()
    }
}

impl ClientAuth {
    /// Builds the checks from the trusted roots (the certificates of
    /// `ssl_client_certificate` and `ssl_trusted_certificate`) and the
    /// names to send (those of `ssl_client_certificate`).
    pub fn new(
        mode: VerifyClient,
        roots: Vec<CertificateDer<'static>>,
        hint_certificates: &[CertificateDer<'static>],
        depth: usize,
    ) -> Result<ClientAuth, rustls::Error> {
        let verifier = if roots.is_empty() {
            None
        } else {
            let mut store = rustls::RootCertStore::empty();
            for root in roots.iter().cloned() {
                store.add(root).map_err(|e| {
                    rustls::Error::General(format!("cannot use a client CA certificate: {e}"))
                })?;
            }
            let built = WebPkiClientVerifier::builder_with_provider(
                Arc::new(store),
                Arc::new(rustls::crypto::ring::default_provider()),
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
            Some(built)
        };
        // A name listed twice is sent once, as OpenSSL's CA list holds it.
        let mut names: Vec<Vec<u8>> = Vec::new();
        for name in hint_certificates.iter().filter_map(|c| subject_of(c)) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let hints = names.into_iter().map(DistinguishedName::from).collect();
        Ok(ClientAuth {
            mode,
            verifier,
            hints,
            depth,
            roots,
        })
    }

    /// The handshake's verifier: it asks for a certificate and accepts any
    /// (after checking the client holds its key), so that the verdict can
    /// be given by the request, as nginx gives it.
    pub fn handshake_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::new(AskAndRecord {
            hints: self.hints.clone(),
            schemes: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        })
    }

    /// The verdict on a chain the client sent (its own certificate first).
    pub fn verify(&self, chain: &[CertificateDer<'static>]) -> Verdict {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Verdict::None;
        };
        if intermediates.len() > self.depth {
            return Verdict::Failed(22, "certificate chain too long");
        }
        let Some(verifier) = &self.verifier else {
            // optional_no_ca without a CA: nothing can vouch for it.
            return Verdict::Failed(20, "unable to get local issuer certificate");
        };
        let webpki = verifier.verify_client_cert(leaf, intermediates, UnixTime::now());
        // webpki reads X.509 v3 only; OpenSSL also verifies v1 certificates
        // (what `openssl req -x509` makes without extensions), which carry
        // no extensions to check: issuer, signature and validity are all.
        if webpki.is_err() && chain.iter().any(|c| is_v1(c)) {
            return self.verify_v1(chain);
        }
        match webpki {
            Ok(_) => Verdict::Success,
            Err(rustls::Error::InvalidCertificate(e)) => {
                use rustls::CertificateError as E;
                match e {
                    E::Expired | E::ExpiredContext { .. } => {
                        Verdict::Failed(10, "certificate has expired")
                    }
                    E::NotValidYet | E::NotValidYetContext { .. } => {
                        Verdict::Failed(9, "certificate is not yet valid")
                    }
                    E::BadSignature => Verdict::Failed(7, "certificate signature failure"),
                    E::Revoked => Verdict::Failed(23, "certificate revoked"),
                    E::UnknownIssuer if is_self_signed(leaf) => {
                        Verdict::Failed(18, "self-signed certificate")
                    }
                    _ => Verdict::Failed(20, "unable to get local issuer certificate"),
                }
            }
            Err(_) => Verdict::Failed(20, "unable to get local issuer certificate"),
        }
    }
}

impl ClientAuth {
    /// Walks from the client's certificate up to a trusted one by issuer
    /// name, checking each signature and validity period.
    fn verify_v1(&self, chain: &[CertificateDer<'static>]) -> Verdict {
        use x509_parser::prelude::*;
        fn parse(der: &[u8]) -> Option<X509Certificate<'_>> {
            X509Certificate::from_der(der).ok().map(|(_, c)| c)
        }
        let roots: Vec<_> = self.roots.iter().filter_map(|r| parse(r)).collect();
        let sent: Vec<_> = chain.iter().skip(1).filter_map(|c| parse(c)).collect();
        let Some(mut current) = chain.first().and_then(|c| parse(c)) else {
            return Verdict::Failed(20, "unable to get local issuer certificate");
        };
        let now = ASN1Time::now();
        for depth in 0..=self.depth {
            if now < current.validity().not_before {
                return Verdict::Failed(9, "certificate is not yet valid");
            }
            if now > current.validity().not_after {
                return Verdict::Failed(10, "certificate has expired");
            }
            let issued_by =
                |c: &&X509Certificate<'_>| c.subject().as_raw() == current.issuer().as_raw();
            if let Some(root) = roots.iter().find(issued_by) {
                return match current.verify_signature(Some(root.public_key())) {
                    Ok(()) => Verdict::Success,
                    Err(_) => Verdict::Failed(7, "certificate signature failure"),
                };
            }
            let Some(next) = sent.iter().find(issued_by) else {
                return if current.subject().as_raw() == current.issuer().as_raw() {
                    if depth == 0 {
                        Verdict::Failed(18, "self-signed certificate")
                    } else {
                        Verdict::Failed(19, "self-signed certificate in certificate chain")
                    }
                } else {
                    Verdict::Failed(20, "unable to get local issuer certificate")
                };
            };
            if current.verify_signature(Some(next.public_key())).is_err() {
                return Verdict::Failed(7, "certificate signature failure");
            }
            current = next.clone();
        }
        Verdict::Failed(22, "certificate chain too long")
    }
}

fn is_v1(cert: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(cert)
        .map(|(_, c)| c.version() == x509_parser::x509::X509Version::V1)
        .unwrap_or(false)
}

/// What verification said of the client's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verdict {
    /// No certificate was sent (`NONE`).
    #[default]
    None,
    /// Verified (`SUCCESS`).
    Success,
    /// Not verified: OpenSSL's error number and words (`FAILED:...`).
    Failed(u32, &'static str),
}

impl Verdict {
    /// `$ssl_client_verify`.
    pub fn text(&self) -> String {
        match self {
            Verdict::None => "NONE".to_string(),
            Verdict::Success => "SUCCESS".to_string(),
            Verdict::Failed(_, why) => format!("FAILED:{why}"),
        }
    }
}

#[derive(Debug)]
struct AskAndRecord {
    hints: Vec<DistinguishedName>,
    schemes: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AskAndRecord {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.schemes)
            .or_else(|e| self.v1_signature(message, cert, dss, false).ok_or(e))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.schemes)
            .or_else(|e| self.v1_signature(message, cert, dss, true).ok_or(e))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.supported_schemes()
    }
}

impl AskAndRecord {
    /// The handshake signature of a client holding an X.509 v1
    /// certificate, which webpki cannot read: checked with the key the
    /// certificate carries. `None` for any other certificate, or a
    /// signature that does not verify.
    fn v1_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        tls13: bool,
    ) -> Option<HandshakeSignatureValid> {
        if !is_v1(cert) {
            return None;
        }
        let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
        if tls13 {
            let spki = rustls::pki_types::SubjectPublicKeyInfoDer::from(parsed.public_key().raw);
            return rustls::crypto::verify_tls13_signature_with_raw_key(
                message,
                &spki,
                dss,
                &self.schemes,
            )
            .ok();
        }
        let key = parsed.public_key().subject_public_key.data.as_ref();
        let algorithms = self
            .schemes
            .mapping
            .iter()
            .find(|(s, _)| *s == dss.scheme)?
            .1;
        algorithms
            .iter()
            .any(|alg| alg.verify_signature(key, message, dss.signature()).is_ok())
            .then(HandshakeSignatureValid::assertion)
    }
}

/// The DER of a certificate's subject name.
fn subject_of(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    Some(parsed.subject().as_raw().to_vec())
}

fn is_self_signed(cert: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(cert)
        .map(|(_, c)| c.subject().as_raw() == c.issuer().as_raw())
        .unwrap_or(false)
}

/// The `$ssl_client_*` values of a client's certificate.
#[derive(Debug, Clone, Default)]
pub struct ClientCertificate {
    /// `$ssl_client_verify`.
    pub verify: String,
    /// `$ssl_client_s_dn` (RFC 2253).
    pub subject: String,
    /// `$ssl_client_i_dn` (RFC 2253).
    pub issuer: String,
    /// `$ssl_client_s_dn_legacy` (`/CN=...`).
    pub subject_legacy: String,
    /// `$ssl_client_i_dn_legacy`.
    pub issuer_legacy: String,
    /// `$ssl_client_serial`: upper-case hex.
    pub serial: String,
    /// `$ssl_client_fingerprint`: SHA-1 of the DER, lower-case hex.
    pub fingerprint: String,
    /// `$ssl_client_raw_cert`: PEM.
    pub raw: String,
    /// `$ssl_client_cert`: PEM with every line but the first indented by
    /// a tab (for a header value; deprecated in nginx).
    pub indented: String,
    /// `$ssl_client_escaped_cert`: PEM, URL-escaped.
    pub escaped: String,
    /// `$ssl_client_v_start`, as OpenSSL prints times.
    pub not_before: String,
    /// `$ssl_client_v_end`.
    pub not_after: String,
    /// The end of validity, for `$ssl_client_v_remain`.
    pub not_after_unix: i64,
}

impl ClientCertificate {
    /// What the variables say of `leaf`, given the verdict.
    pub fn of(leaf: &CertificateDer<'_>, verdict: Verdict) -> ClientCertificate {
        let mut out = ClientCertificate {
            verify: verdict.text(),
            ..ClientCertificate::default()
        };
        if let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) {
            out.subject = rfc2253(cert.subject());
            out.issuer = rfc2253(cert.issuer());
            out.subject_legacy = oneline(cert.subject());
            out.issuer_legacy = oneline(cert.issuer());
            out.serial = cert
                .raw_serial()
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect();
            out.not_before = openssl_time(&cert.validity().not_before);
            out.not_after = openssl_time(&cert.validity().not_after);
            out.not_after_unix = cert.validity().not_after.timestamp();
        }
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf);
        out.fingerprint = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        out.raw = pem(leaf);
        out.indented = out.raw.trim_end().replace('\n', "\n\t");
        out.escaped = escape_component(&out.raw);
        out
    }

    /// `$ssl_client_v_remain`: whole days until the end of validity.
    pub fn days_left(&self) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let left = (self.not_after_unix - now).max(0);
        (left / 86400).to_string()
    }
}

/// A certificate as PEM, 64 characters a line, `\n` line ends (as
/// OpenSSL's PEM_write).
fn pem(der: &[u8]) -> String {
    let block = pem::Pem::new("CERTIFICATE", der.to_vec());
    pem::encode_config(
        &block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// nginx's NGX_ESCAPE_URI_COMPONENT: all but unreserved characters.
fn escape_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The short name OpenSSL prints for an attribute, else its dotted OID.
fn attribute_name(oid: &x509_parser::der_parser::oid::Oid<'_>) -> String {
    match x509_parser::objects::oid2abbrev(oid, x509_parser::objects::oid_registry()) {
        Ok("emailAddress") | Ok("Email") => "emailAddress".to_string(),
        Ok(name) => name.to_string(),
        Err(_) => oid.to_id_string(),
    }
}

fn attribute_value(attr: &x509_parser::x509::AttributeTypeAndValue<'_>) -> String {
    match attr.as_str() {
        Ok(s) => s.to_string(),
        Err(_) => String::from_utf8_lossy(attr.as_slice()).into_owned(),
    }
}

/// RFC 2253 (what OpenSSL's XN_FLAG_RFC2253 prints): the last RDN first,
/// `,` between them, `+` within one, special characters escaped.
fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|a| {
                    format!(
                        "{}={}",
                        attribute_name(a.attr_type()),
                        escape_rfc2253(&attribute_value(a))
                    )
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The legacy one-line form: `/C=../O=../CN=..`, in certificate order.
fn oneline(name: &x509_parser::x509::X509Name<'_>) -> String {
    let mut out = String::new();
    for attr in name.iter_attributes() {
        out.push('/');
        out.push_str(&attribute_name(attr.attr_type()));
        out.push('=');
        out.push_str(&attribute_value(attr));
    }
    out
}

/// A time as OpenSSL's ASN1_TIME_print writes it: `Sep  1 12:00:00 2023 GMT`.
fn openssl_time(time: &x509_parser::time::ASN1Time) -> String {
    let t = time.to_datetime();
    let month = t.month().to_string();
    format!(
        "{} {:>2} {:02}:{:02}:{:02} {} GMT",
        &month[..3.min(month.len())],
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.year()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape_component("a b/+="), "a%20b%2F%2B%3D");
        assert_eq!(escape_rfc2253("a,b+c "), "a\\,b\\+c\\ ");
    }

    #[test]
    fn names_and_verdicts() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["c.test".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Org, Inc");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "client");
        let cert = params.self_signed(&key).unwrap();
        let der = cert.der().clone();
        let auth = ClientAuth::new(VerifyClient::Optional, vec![], &[], 1).unwrap();
        let verdict = auth.verify(std::slice::from_ref(&der));
        assert_eq!(
            verdict,
            Verdict::Failed(20, "unable to get local issuer certificate")
        );
        let vars = ClientCertificate::of(&der, verdict);
        assert_eq!(vars.subject, "CN=client,O=Org\\, Inc");
        assert_eq!(vars.subject_legacy, "/O=Org, Inc/CN=client");
        assert_eq!(vars.verify, "FAILED:unable to get local issuer certificate");
        assert!(vars.raw.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert_eq!(vars.fingerprint.len(), 40);
        assert!(vars.not_after.ends_with(" GMT"), "{}", vars.not_after);
        // Trusted as its own root: verified.
        let trusting = ClientAuth::new(
            VerifyClient::On,
            vec![der.clone()],
            std::slice::from_ref(&der),
            1,
        )
        .unwrap();
        assert_eq!(trusting.verify(&[der]), Verdict::Success);
        assert_eq!(trusting.hints.len(), 1);
        assert_eq!(auth.verify(&[]), Verdict::None);
    }
}
