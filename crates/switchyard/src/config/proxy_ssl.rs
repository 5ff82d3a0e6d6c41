//! `proxy_ssl_*`: TLS to upstreams, for http (`proxy_pass https://`) and
//! stream (`proxy_ssl on`). Settings merge down like any other; a location
//! or server that proxies over TLS gets its client context at load (as
//! nginx's ngx_http_proxy_set_ssl makes its SSL context), so a bad file
//! fails `-t` with nginx's wording, and each location has its own session
//! cache (`proxy_ssl_session_reuse`).
//!
//! Not here yet (refused as "not supported yet"): `proxy_ssl_conf_command`
//! (no OpenSSL),
//! `proxy_ssl_certificate_cache`, `proxy_ssl_alpn`, variables in
//! certificate names.

use super::set;
use std::path::Path;

use nginx_conf::{Directive, Position};

use super::{arg0, invalid_value, values, ConfigError};
use crate::transport::tls_client::{ClientTlsSettings, UpstreamTls};
use crate::transport::tls_server::Protocols;
use crate::vars::Template;

/// A file name as written, with where.
type Written = (String, Position);

/// The `proxy_ssl_*` settings of one level (unset = inherit).
#[derive(Debug, Clone, Default)]
pub(crate) struct ProxySslLayer {
    /// stream's `proxy_ssl` (http turns TLS on with `https://`).
    enable: Option<bool>,
    server_name: Option<bool>,
    name: Option<Template>,
    verify: Option<bool>,
    verify_depth: Option<u32>,
    trusted: Option<Written>,
    crl: Option<Written>,
    certificate: Option<Written>,
    certificate_key: Option<Written>,
    password_file: Option<Written>,
    protocols: Option<Protocols>,
    /// Empty for `DEFAULT` (rustls's own suites, in its order).
    ciphers: Option<Vec<rustls::SupportedCipherSuite>>,
    session_reuse: Option<bool>,
}

/// A certificate, key, CA or CRL file name: variables are refused.
fn file(d: &Directive) -> Result<Written, ConfigError> {
    let value = arg0(d);
    if value.contains('$') || value.starts_with("data:") {
        return Err(ConfigError::at(
            format!(
                "variables and \"data:\" in \"{}\" are not supported yet",
                d.name
            ),
            &d.position,
        ));
    }
    Ok((value.to_string(), d.position.clone()))
}

impl ProxySslLayer {
    /// Applies `d` if it is one of these settings; returns whether it was.
    pub(crate) fn apply(&mut self, d: &Directive) -> Result<bool, ConfigError> {
        let flag = || values::parse_flag(arg0(d)).unwrap_or(false);
        match d.name.as_str() {
            "proxy_ssl" => set(&mut self.enable, d, flag())?,
            "proxy_ssl_server_name" => set(&mut self.server_name, d, flag())?,
            "proxy_ssl_name" => {
                let t = Template::compile(arg0(d))
                    .map_err(|e| ConfigError::at(e.to_string(), &d.position))?;
                set(&mut self.name, d, t)?
            }
            "proxy_ssl_verify" => set(&mut self.verify, d, flag())?,
            "proxy_ssl_verify_depth" => {
                let n = values::parse_number(arg0(d))
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| invalid_value(d))?;
                set(&mut self.verify_depth, d, n)?
            }
            "proxy_ssl_trusted_certificate" => set(&mut self.trusted, d, file(d)?)?,
            "proxy_ssl_crl" => set(&mut self.crl, d, file(d)?)?,
            "proxy_ssl_certificate" => set(&mut self.certificate, d, file(d)?)?,
            "proxy_ssl_certificate_key" => set(&mut self.certificate_key, d, file(d)?)?,
            "proxy_ssl_password_file" => set(&mut self.password_file, d, file(d)?)?,
            "proxy_ssl_protocols" => set(&mut self.protocols, d, super::ssl::parse_protocols(d)?)?,
            "proxy_ssl_ciphers" => {
                let list = arg0(d);
                // nginx's default: rustls's own suites, in its order.
                let selected = if list == "DEFAULT" {
                    None
                } else {
                    Some(
                        crate::transport::ciphers::select(list)
                            .map_err(|e| ConfigError::at(e.to_string(), &d.position))?,
                    )
                };
                set(&mut self.ciphers, d, selected.unwrap_or_default())?
            }
            "proxy_ssl_session_reuse" => set(&mut self.session_reuse, d, flag())?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// This level over `parent`.
    pub(crate) fn over(&self, parent: &ProxySslLayer) -> ProxySslLayer {
        ProxySslLayer {
            enable: self.enable.or(parent.enable),
            server_name: self.server_name.or(parent.server_name),
            name: self.name.clone().or_else(|| parent.name.clone()),
            verify: self.verify.or(parent.verify),
            verify_depth: self.verify_depth.or(parent.verify_depth),
            trusted: self.trusted.clone().or_else(|| parent.trusted.clone()),
            crl: self.crl.clone().or_else(|| parent.crl.clone()),
            certificate: self
                .certificate
                .clone()
                .or_else(|| parent.certificate.clone()),
            certificate_key: self
                .certificate_key
                .clone()
                .or_else(|| parent.certificate_key.clone()),
            password_file: self
                .password_file
                .clone()
                .or_else(|| parent.password_file.clone()),
            protocols: self.protocols.or(parent.protocols),
            ciphers: self.ciphers.clone().or_else(|| parent.ciphers.clone()),
            session_reuse: self.session_reuse.or(parent.session_reuse),
        }
    }

    /// Whether this level sets anything.
    pub(crate) fn is_set(&self) -> bool {
        self.enable.is_some()
            || self.server_name.is_some()
            || self.name.is_some()
            || self.verify.is_some()
            || self.verify_depth.is_some()
            || self.trusted.is_some()
            || self.crl.is_some()
            || self.certificate.is_some()
            || self.certificate_key.is_some()
            || self.password_file.is_some()
            || self.protocols.is_some()
            || self.ciphers.is_some()
            || self.session_reuse.is_some()
    }

    /// stream's `proxy_ssl` (default off).
    pub(crate) fn enabled(&self) -> bool {
        self.enable.unwrap_or(false)
    }

    /// `proxy_ssl_name`, if set.
    pub(crate) fn name(&self) -> Option<Template> {
        self.name.clone()
    }

    /// The client context of merged settings; file names resolve against
    /// `conf_prefix`, as nginx's; `at` is the block that proxies.
    pub(crate) fn build(
        &self,
        conf_prefix: &Path,
        at: &Position,
    ) -> Result<UpstreamTls, ConfigError> {
        let verify = self.verify.unwrap_or(false);
        let full = |w: &Written| super::full_path(conf_prefix, &w.0);
        if verify && self.trusted.is_none() {
            return Err(ConfigError::at(
                "no proxy_ssl_trusted_certificate for proxy_ssl_verify",
                at,
            ));
        }
        // `proxy_ssl_certificate ""` cancels one inherited: no client
        // certificate (nginx looks at the value's length).
        let named = self.certificate.as_ref().filter(|c| !c.0.is_empty());
        let certificate = match (named, &self.certificate_key) {
            (Some(cert), Some(key)) => Some((full(cert), full(key))),
            (Some(cert), None) => {
                return Err(ConfigError::at(
                    format!(
                        "no \"proxy_ssl_certificate_key\" is defined for certificate \"{}\"",
                        cert.0
                    ),
                    at,
                ))
            }
            _ => None,
        };
        let passwords = match &self.password_file {
            Some(w) => super::ssl::read_password_file(&full(w), &w.1)?,
            None => Vec::new(),
        };
        let settings = ClientTlsSettings {
            passwords,
            protocols: self.protocols.unwrap_or_default(),
            ciphers: self.ciphers.clone().filter(|c| !c.is_empty()),
            verify,
            verify_depth: self.verify_depth.unwrap_or(1),
            // nginx loads the trusted file only to verify with it.
            trusted: self.trusted.as_ref().filter(|_| verify).map(full),
            crl: self.crl.as_ref().filter(|_| verify).map(full),
            certificate,
            server_name: self.server_name.unwrap_or(false),
            session_reuse: self.session_reuse.unwrap_or(true),
        };
        let position = |w: &Option<Written>| w.as_ref().map(|w| w.1.clone());
        UpstreamTls::build(&settings).map_err(|e| {
            let place = match &e {
                crate::transport::tls::TlsError::Certificate { .. } => position(&self.certificate),
                crate::transport::tls::TlsError::CertificateKey { .. } => {
                    position(&self.certificate_key)
                }
                crate::transport::tls::TlsError::Trusted { .. } => position(&self.trusted),
                crate::transport::tls::TlsError::Crl { .. } => position(&self.crl),
                _ => None,
            };
            ConfigError::at(e.to_string(), place.as_ref().unwrap_or(at))
        })
    }
}
