//! TLS with rustls (ring as the crypto provider: it builds without cmake
//! and is what the rest of the Rust TLS stack here already uses).
//!
//! Two uses so far: the client side of HTTPS health probes (OpenShift's API
//! answers `/readyz` over TLS with a certificate of its own CA, usually
//! probed without verification), and the server side of `switchyard echo
//! --tls`, which makes itself a certificate when given none.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// What can go wrong setting TLS up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or held nothing usable.
    #[error("cannot load \"{path}\": {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A server certificate (`ssl_certificate`) could not be loaded; the
    /// wording is nginx's.
    #[error("cannot load certificate \"{path}\": {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A server key (`ssl_certificate_key`) could not be loaded or does
    /// not belong to its certificate.
    #[error("cannot load certificate key \"{path}\": {reason}")]
    CertificateKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `proxy_ssl_trusted_certificate` could not be loaded (nginx's words).
    #[error("SSL_CTX_load_verify_locations(\"{path}\") failed ({reason})")]
    Trusted {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `proxy_ssl_crl` could not be loaded (nginx's words).
    #[error("X509_LOOKUP_load_file(\"{path}\") failed ({reason})")]
    Crl {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    /// A certificate could not be made.
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Certificates from a PEM file.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |reason: String| TlsError::Pem {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("no certificate found".to_string()));
    }
    Ok(certs)
}

/// The first private key of a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A private key that may be encrypted (PKCS#8 `ENCRYPTED PRIVATE KEY`,
/// what OpenSSL 3 writes with `-aes128` and the like), with the passwords
/// of a password file tried in order, as nginx's `*_password_file`.
pub fn load_private_key_with(
    path: &Path,
    passwords: &[String],
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = |reason: String| TlsError::Pem {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| pem(e.to_string()))?;
    if !text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return load_private_key(path);
    }
    let (_, document) = pkcs8::SecretDocument::from_pem(&text).map_err(|e| pem(e.to_string()))?;
    let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(document.as_bytes())
        .map_err(|e| pem(e.to_string()))?;
    for password in passwords {
        if let Ok(plain) = encrypted.decrypt(password.as_bytes()) {
            return Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()));
        }
    }
    Err(pem(if passwords.is_empty() {
        "the key is encrypted and no password file is given".to_string()
    } else {
        "bad decrypt (no password of the password file fits)".to_string()
    }))
}

/// The passwords of a password file's text (`ssl_password_file`,
/// `proxy_ssl_password_file`): one a line, as nginx reads them.
pub fn passwords(text: &str) -> Vec<String> {
    text.split('\n')
        .map(|l| l.trim_end_matches('\r').to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// A client configuration: verifying the server against the CA
/// certificates in `trusted` (a PEM file), or, without it, accepting any
/// certificate (the handshake's signatures are still checked), as a probe
/// of a cluster's self-signed API does.
pub fn client_config(trusted: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let config = match trusted {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in load_certificates(path)? {
                roots.add(cert)?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name a client sends as SNI and checks the certificate against: a
/// DNS name or an IP address.
pub fn server_name(name: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(name.to_string()).ok()
}

/// Accepts any server certificate; checks the handshake signatures.
#[derive(Debug)]
pub(crate) struct AnyCertificate(Arc<CryptoProvider>);

impl AnyCertificate {
    /// The verifier for `provider`'s signature algorithms.
    pub(crate) fn new(provider: Arc<CryptoProvider>) -> AnyCertificate {
        AnyCertificate(provider)
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        super::x509::verify_handshake_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
            false,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        super::x509::verify_handshake_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
            true,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A server configuration from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(load_certificates(cert)?, load_private_key(key)?)?;
    Ok(Arc::new(config))
}

/// A self-signed certificate for `names` (DNS names or IP addresses) and
/// its key, both PEM.
pub fn self_signed(names: &[String]) -> Result<(String, String), TlsError> {
    let key = rcgen::KeyPair::generate()?;
    let params = rcgen::CertificateParams::new(names.to_vec())?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A server configuration for a self-signed certificate made now.
pub fn self_signed_server_config(
    names: &[String],
) -> Result<(Arc<rustls::ServerConfig>, String), TlsError> {
    let (cert_pem, key_pem) = self_signed(names)?;
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: PathBuf::from("(generated)"),
            reason: e.to_string(),
        })?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| TlsError::Pem {
        path: PathBuf::from("(generated)"),
        reason: e.to_string(),
    })?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok((Arc::new(config), cert_pem))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handshake over a socket pair: verified against the right CA,
    /// refused against another, accepted by the any-certificate client.
    #[tokio::test]
    async fn verification_follows_the_trusted_file() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["node1.test".to_string(), "127.0.0.1".to_string()];
        let (server, cert_pem) = self_signed_server_config(&names).unwrap();
        let right = dir.path().join("right.pem");
        std::fs::write(&right, &cert_pem).unwrap();
        let (other_pem, _) = self_signed(&names).unwrap();
        let wrong = dir.path().join("wrong.pem");
        std::fs::write(&wrong, other_pem).unwrap();

        for (trusted, name, ok) in [
            (Some(right.as_path()), "node1.test", true),
            (Some(right.as_path()), "127.0.0.1", true),
            (Some(right.as_path()), "other.test", false),
            (Some(wrong.as_path()), "node1.test", false),
            (None, "whatever.test", true),
        ] {
            let (a, b) = tokio::io::duplex(16 * 1024);
            let acceptor = tokio_rustls::TlsAcceptor::from(server.clone());
            let serving = tokio::spawn(async move { acceptor.accept(b).await.is_ok() });
            let connector = tokio_rustls::TlsConnector::from(client_config(trusted).unwrap());
            let client = connector.connect(server_name(name).unwrap(), a).await;
            assert_eq!(client.is_ok(), ok, "{trusted:?} {name}");
            drop(client);
            let _ = serving.await;
        }
    }

    #[test]
    fn pem_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = load_certificates(&empty).unwrap_err().to_string();
        assert!(
            e.contains("empty.pem") && e.contains("no certificate"),
            "{e}"
        );
        assert!(client_config(Some(&dir.path().join("missing.pem"))).is_err());
    }
}
