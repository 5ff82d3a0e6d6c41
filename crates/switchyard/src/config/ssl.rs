//! The `ssl_*` directives of ngx_http_ssl_module and ngx_stream_ssl_module:
//! TLS termination on `listen ... ssl`. Settings merge from `http` or
//! `stream` into each `server`; a server with certificates gets its rustls
//! configuration at load (as nginx makes an SSL context for it), so a bad
//! file fails `-t` with nginx's wording. The two modules share the
//! directives; the table (config/directives.rs) says which contexts take
//! which (`ssl_alpn` and `ssl_handshake_timeout` are stream's only: http
//! offers ALPN by its own protocols and bounds the handshake by
//! `client_header_timeout`).
//!
//! Not here yet (refused as "not supported yet" by the directive table):
//! client certificates (`ssl_verify_client`, `ssl_client_certificate`,
//! `ssl_trusted_certificate`, `ssl_verify_depth`, `ssl_crl`),
//! `ssl_password_file`, `ssl_ecdh_curve`, `ssl_dhparam`,
//! `ssl_session_ticket_key`, `ssl_reject_handshake`, `ssl_conf_command`,
//! OCSP and stapling; variables and `data:` in certificate names.

use super::set;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nginx_conf::{Directive, Position};
use rustls::server::StoresServerSessions;

use super::{arg0, invalid_value, time_arg, values, ConfigError};
use crate::transport::client_cert::{ClientAuth, VerifyClient};
use crate::transport::tls_server::{self, Protocols, ServerTlsSettings, SessionCache, TlsServer};

/// The `ssl_*` settings of one level (unset = inherit).
#[derive(Debug, Clone, Default)]
pub(crate) struct SslLayer {
    /// `ssl_certificate` files as written, with where.
    certificates: Option<Vec<(String, Position)>>,
    /// `ssl_certificate_key` files as written.
    keys: Option<Vec<(String, Position)>>,
    /// `ssl_password_file` as written, with where.
    password_file: Option<(String, Position)>,
    protocols: Option<Protocols>,
    ciphers: Option<Vec<rustls::SupportedCipherSuite>>,
    prefer_server_ciphers: Option<bool>,
    handshake_timeout: Option<Duration>,
    session_cache: Option<CacheSpec>,
    session_timeout: Option<Duration>,
    session_tickets: Option<bool>,
    alpn: Option<Vec<Vec<u8>>>,
    verify_client: Option<VerifyClient>,
    /// `ssl_client_certificate`, with where.
    client_certificate: Option<(String, Position)>,
    /// `ssl_trusted_certificate`, with where.
    trusted_certificate: Option<(String, Position)>,
    verify_depth: Option<usize>,
    reject_handshake: Option<bool>,
    ecdh_curve: Option<Option<Vec<&'static dyn rustls::crypto::SupportedKxGroup>>>,
}

/// `ssl_session_cache` as written.
#[derive(Debug, Clone)]
enum CacheSpec {
    Off,
    None,
    /// `builtin[:N]` (sessions) and/or `shared:NAME:SIZE` (bytes).
    Store {
        builtin: Option<usize>,
        shared: Option<(String, usize)>,
    },
}

/// nginx's `NGX_SSL_DFLT_BUILTIN_SCACHE`.
const DEFAULT_BUILTIN_SESSIONS: usize = 20480;

/// What nginx's docs promise for a shared zone: about 4000 sessions a
/// megabyte.
fn sessions_in(bytes: usize) -> usize {
    (bytes / 262).max(1)
}

impl SslLayer {
    /// Applies `d` if it is one of the module's settings; returns whether
    /// it was.
    pub(crate) fn apply(&mut self, d: &Directive) -> Result<bool, ConfigError> {
        let flag = || values::parse_flag(arg0(d)).unwrap_or(false);
        match d.name.as_str() {
            "ssl_certificate" | "ssl_certificate_key" => {
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
                let slot = if d.name == "ssl_certificate" {
                    &mut self.certificates
                } else {
                    &mut self.keys
                };
                slot.get_or_insert_with(Vec::new)
                    .push((value.to_string(), d.position.clone()));
            }
            "ssl_password_file" => set(
                &mut self.password_file,
                d,
                (arg0(d).to_string(), d.position.clone()),
            )?,
            "ssl_protocols" => set(&mut self.protocols, d, parse_protocols(d)?)?,
            "ssl_ciphers" => {
                let selected = crate::transport::ciphers::select(arg0(d))
                    .map_err(|e| ConfigError::at(e.to_string(), &d.position))?;
                set(&mut self.ciphers, d, selected)?
            }
            "ssl_prefer_server_ciphers" => set(&mut self.prefer_server_ciphers, d, flag())?,
            "ssl_handshake_timeout" => set(&mut self.handshake_timeout, d, time_arg(d)?)?,
            "ssl_session_cache" => set(&mut self.session_cache, d, parse_session_cache(d)?)?,
            "ssl_session_timeout" => set(&mut self.session_timeout, d, time_arg(d)?)?,
            "ssl_session_tickets" => set(&mut self.session_tickets, d, flag())?,
            "ssl_alpn" => {
                let mut list = Vec::new();
                for a in &d.args {
                    if a.value.is_empty() || a.value.len() > 255 {
                        return Err(invalid_value(d));
                    }
                    list.push(a.value.as_bytes().to_vec());
                }
                set(&mut self.alpn, d, list)?
            }
            "ssl_verify_client" => {
                let mode = match arg0(d) {
                    "off" => VerifyClient::Off,
                    "on" => VerifyClient::On,
                    "optional" => VerifyClient::Optional,
                    "optional_no_ca" => VerifyClient::OptionalNoCa,
                    _ => return Err(invalid_value(d)),
                };
                set(&mut self.verify_client, d, mode)?
            }
            "ssl_client_certificate" => set(
                &mut self.client_certificate,
                d,
                (arg0(d).to_string(), d.position.clone()),
            )?,
            "ssl_trusted_certificate" => set(
                &mut self.trusted_certificate,
                d,
                (arg0(d).to_string(), d.position.clone()),
            )?,
            "ssl_reject_handshake" => set(&mut self.reject_handshake, d, flag())?,
            "ssl_ecdh_curve" => set(&mut self.ecdh_curve, d, parse_curves(d)?)?,
            "ssl_verify_depth" => {
                let depth = values::parse_number(arg0(d))
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| invalid_value(d))?;
                set(&mut self.verify_depth, d, depth)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// An http server's layer: ALPN offers what the server speaks (nginx's
    /// ngx_http_ssl_alpn_select), and the handshake is bounded by
    /// `client_header_timeout`, as nginx's post-accept timer bounds it.
    pub(crate) fn for_http(&self, alpn: &[&[u8]], handshake_timeout: Duration) -> SslLayer {
        SslLayer {
            alpn: Some(alpn.iter().map(|p| p.to_vec()).collect()),
            handshake_timeout: Some(handshake_timeout),
            ..self.clone()
        }
    }

    /// `ssl_verify_client` as merged (nginx checks it per request, even
    /// in a server without certificates of its own).
    pub(crate) fn verify_client(&self) -> VerifyClient {
        self.verify_client.unwrap_or_default()
    }

    /// `ssl_reject_handshake` as merged.
    pub(crate) fn reject_handshake(&self) -> bool {
        self.reject_handshake.unwrap_or(false)
    }

    /// This level over `parent`.
    pub(crate) fn over(&self, parent: &SslLayer) -> SslLayer {
        SslLayer {
            certificates: self
                .certificates
                .clone()
                .or_else(|| parent.certificates.clone()),
            keys: self.keys.clone().or_else(|| parent.keys.clone()),
            password_file: self
                .password_file
                .clone()
                .or_else(|| parent.password_file.clone()),
            protocols: self.protocols.or(parent.protocols),
            ciphers: self.ciphers.clone().or_else(|| parent.ciphers.clone()),
            prefer_server_ciphers: self.prefer_server_ciphers.or(parent.prefer_server_ciphers),
            handshake_timeout: self.handshake_timeout.or(parent.handshake_timeout),
            session_cache: self
                .session_cache
                .clone()
                .or_else(|| parent.session_cache.clone()),
            session_timeout: self.session_timeout.or(parent.session_timeout),
            session_tickets: self.session_tickets.or(parent.session_tickets),
            alpn: self.alpn.clone().or_else(|| parent.alpn.clone()),
            verify_client: self.verify_client.or(parent.verify_client),
            client_certificate: self
                .client_certificate
                .clone()
                .or_else(|| parent.client_certificate.clone()),
            trusted_certificate: self
                .trusted_certificate
                .clone()
                .or_else(|| parent.trusted_certificate.clone()),
            verify_depth: self.verify_depth.or(parent.verify_depth),
            reject_handshake: self.reject_handshake.or(parent.reject_handshake),
            ecdh_curve: self
                .ecdh_curve
                .clone()
                .or_else(|| parent.ecdh_curve.clone()),
        }
    }
}

/// The passwords of a password file (`ssl_password_file`,
/// `proxy_ssl_password_file`), one a line (CR LF or LF, empty lines
/// skipped); a file without any gives the empty password, as nginx's
/// `ngx_ssl_read_password_file`. `at`: the directive, for the error.
pub(crate) fn read_password_file(path: &Path, at: &Position) -> Result<Vec<String>, ConfigError> {
    let text = std::fs::read(path).map_err(|e| {
        ConfigError::at(
            format!(
                "open() \"{}\" failed ({})",
                path.display(),
                crate::observe::error_log::os_error(&e)
            ),
            at,
        )
    })?;
    let mut list = crate::transport::tls::passwords(&String::from_utf8_lossy(&text));
    if list.is_empty() {
        list.push(String::new());
    }
    Ok(list)
}

/// `ssl_protocols` (and `proxy_ssl_protocols`, which takes the same
/// values): nginx's bitmask values. rustls speaks TLSv1.2 and TLSv1.3 only:
/// the older names are accepted, as nginx accepts them, and never
/// negotiated; a list of only those is refused, since no handshake could
/// succeed.
pub(super) fn parse_protocols(d: &Directive) -> Result<Protocols, ConfigError> {
    let mut p = Protocols {
        tls12: false,
        tls13: false,
    };
    for a in &d.args {
        match a.value.as_str() {
            "SSLv2" | "SSLv3" | "TLSv1" | "TLSv1.1" => {}
            "TLSv1.2" => p.tls12 = true,
            "TLSv1.3" => p.tls13 = true,
            other => {
                return Err(ConfigError::at(
                    format!("invalid value \"{other}\""),
                    &d.position,
                ))
            }
        }
    }
    if !p.tls12 && !p.tls13 {
        return Err(ConfigError::at(
            format!(
                "\"{}\" without TLSv1.2 or TLSv1.3 is not supported yet (rustls speaks only those)",
                d.name
            ),
            &d.position,
        ));
    }
    Ok(p)
}

/// `ssl_ecdh_curve auto | NAME[:NAME...]`, OpenSSL's names mapped onto
/// the key-exchange groups rustls has (X25519, P-256, P-384). Names
/// OpenSSL knows and rustls lacks are accepted and never offered, as with
/// the protocols; an unknown name is nginx's error; a list of none rustls
/// has is refused. `None`: `auto`, rustls's default order.
fn parse_curves(
    d: &Directive,
) -> Result<Option<Vec<&'static dyn rustls::crypto::SupportedKxGroup>>, ConfigError> {
    use rustls::crypto::ring::kx_group;
    let list = arg0(d);
    if list == "auto" {
        return Ok(None);
    }
    let mut groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::new();
    for name in list.split(':') {
        let group: &'static dyn rustls::crypto::SupportedKxGroup = match name {
            "X25519" | "x25519" => kx_group::X25519,
            "prime256v1" | "secp256r1" | "P-256" => kx_group::SECP256R1,
            "secp384r1" | "P-384" => kx_group::SECP384R1,
            "secp521r1" | "P-521" | "X448" | "x448" | "secp224r1" | "P-224" | "X25519MLKEM768"
            | "brainpoolP256r1" | "brainpoolP384r1" | "brainpoolP512r1" => continue,
            _ => {
                return Err(ConfigError::at(
                    format!("SSL_CTX_set1_curves_list(\"{list}\") failed"),
                    &d.position,
                ))
            }
        };
        if !groups.iter().any(|g| g.name() == group.name()) {
            groups.push(group);
        }
    }
    if groups.is_empty() {
        return Err(ConfigError::at(
            format!("\"ssl_ecdh_curve\" \"{list}\" names no group rustls has (X25519, prime256v1, secp384r1)"),
            &d.position,
        ));
    }
    Ok(Some(groups))
}

/// `ssl_session_cache off | none | [builtin[:size]] [shared:name:size]`.
fn parse_session_cache(d: &Directive) -> Result<CacheSpec, ConfigError> {
    let invalid = |v: &str| ConfigError::at(format!("invalid session cache \"{v}\""), &d.position);
    let mut builtin = None;
    let mut shared = None;
    for a in &d.args {
        let v = a.value.as_str();
        match v {
            "off" | "none" if d.args.len() == 1 => {
                return Ok(if v == "off" {
                    CacheSpec::Off
                } else {
                    CacheSpec::None
                })
            }
            "builtin" => builtin = Some(DEFAULT_BUILTIN_SESSIONS),
            _ => {
                if let Some(n) = v.strip_prefix("builtin:") {
                    let n = values::parse_number(n)
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| invalid(v))?;
                    builtin = Some(n);
                } else if let Some(rest) = v.strip_prefix("shared:") {
                    let (name, size) = rest.rsplit_once(':').ok_or_else(|| invalid(v))?;
                    let size = values::parse_size(size)
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|_| !name.is_empty())
                        .ok_or_else(|| invalid(v))?;
                    if size < 8 * 4096 {
                        return Err(ConfigError::at(
                            format!("session cache \"{v}\" is too small"),
                            &d.position,
                        ));
                    }
                    shared = Some((name.to_string(), size));
                } else {
                    return Err(invalid(v));
                }
            }
        }
    }
    Ok(CacheSpec::Store { builtin, shared })
}

/// What building the servers' TLS shares: the conf prefix certificate
/// names are relative to, the named session caches, a counter telling
/// servers apart in them.
#[derive(Debug)]
pub(crate) struct SslBuild {
    conf_prefix: PathBuf,
    shared: HashMap<String, Arc<dyn StoresServerSessions>>,
    /// The passwords of each `ssl_password_file` directive (by where it
    /// is), read once however many servers inherit it, as nginx reads the
    /// file once when it parses the directive (a FIFO gives its text once).
    passwords: HashMap<String, Vec<String>>,
    next_context: u64,
}

impl SslBuild {
    /// Certificate names resolve against `conf_prefix` (the directory of
    /// nginx.conf), as nginx's `ngx_conf_full_name(..., 1)`.
    pub(crate) fn new(conf_prefix: &Path) -> SslBuild {
        SslBuild {
            conf_prefix: conf_prefix.to_path_buf(),
            shared: HashMap::new(),
            passwords: HashMap::new(),
            next_context: 0,
        }
    }

    /// The directory certificate names are relative to.
    pub(crate) fn conf_prefix(&self) -> &Path {
        &self.conf_prefix
    }

    /// The TLS of a server from its merged settings; `None` without
    /// certificates. `ssl_listen` says whether the server has a `listen
    /// ... ssl`, which then needs a certificate; `at` is the server block.
    pub(crate) fn server(
        &mut self,
        merged: &SslLayer,
        ssl_listen: bool,
        at: &Position,
    ) -> Result<Option<Arc<TlsServer>>, ConfigError> {
        let Some(certificates) = &merged.certificates else {
            if ssl_listen {
                return Err(ConfigError::bare(format!(
                    "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive in {at}"
                )));
            }
            return Ok(None);
        };
        let keys = merged.keys.as_deref().unwrap_or_default();
        if keys.len() < certificates.len() {
            let last = certificates.last().map(|c| c.0.as_str()).unwrap_or("");
            return Err(ConfigError::bare(format!(
                "no \"ssl_certificate_key\" is defined for certificate \"{last}\""
            )));
        }
        let pairs = certificates
            .iter()
            .zip(keys)
            .map(|((c, _), (k, _))| {
                (
                    super::full_path(&self.conf_prefix, c),
                    super::full_path(&self.conf_prefix, k),
                )
            })
            .collect();
        let session_cache = match &merged.session_cache {
            None | Some(CacheSpec::None) => SessionCache::None,
            Some(CacheSpec::Off) => SessionCache::Off,
            Some(CacheSpec::Store { builtin, shared }) => {
                SessionCache::Store(match (shared, builtin) {
                    (Some((name, size)), _) => self
                        .shared
                        .entry(name.clone())
                        .or_insert_with(|| {
                            rustls::server::ServerSessionMemoryCache::new(sessions_in(*size))
                        })
                        .clone(),
                    (None, n) => rustls::server::ServerSessionMemoryCache::new(
                        n.unwrap_or(DEFAULT_BUILTIN_SESSIONS).max(1),
                    ),
                })
            }
        };
        let client_auth = self.client_auth(merged, at)?;
        let passwords = match &merged.password_file {
            Some(file) => self.passwords_of(file)?,
            None => Vec::new(),
        };
        self.next_context += 1;
        let settings = ServerTlsSettings {
            certificates: pairs,
            passwords,
            protocols: merged.protocols.unwrap_or_default(),
            ciphers: match &merged.ciphers {
                Some(c) => c.clone(),
                None => crate::transport::ciphers::select("HIGH:!aNULL:!MD5")
                    .map_err(|e| ConfigError::bare(e.to_string()))?,
            },
            prefer_server_ciphers: merged.prefer_server_ciphers.unwrap_or(false),
            session_cache,
            session_timeout: merged.session_timeout.unwrap_or(Duration::from_secs(300)),
            session_tickets: merged.session_tickets.unwrap_or(true),
            alpn: merged.alpn.clone().unwrap_or_default(),
            context: self.next_context,
            client_auth: client_auth.clone(),
            kx_groups: merged.ecdh_curve.clone().flatten(),
        };
        let config = tls_server::build(&settings).map_err(|e| {
            // nginx names the directive's file and line after a file error.
            let pos = certificates.last().map(|c| &c.1).unwrap_or(at);
            ConfigError::at(e.to_string(), pos)
        })?;
        Ok(Some(Arc::new(TlsServer {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            handshake_timeout: merged.handshake_timeout.unwrap_or(Duration::from_secs(60)),
            client_auth,
        })))
    }

    /// The passwords of an `ssl_password_file` directive, read once.
    fn passwords_of(
        &mut self,
        (name, at): &(String, Position),
    ) -> Result<Vec<String>, ConfigError> {
        let key = at.to_string();
        if let Some(known) = self.passwords.get(&key) {
            return Ok(known.clone());
        }
        let list = read_password_file(&super::full_path(&self.conf_prefix, name), at)?;
        self.passwords.insert(key, list.clone());
        Ok(list)
    }

    /// `ssl_verify_client` and its certificates, as nginx's merge checks
    /// them: `on` and `optional` need a CA to verify against.
    fn client_auth(
        &self,
        merged: &SslLayer,
        at: &Position,
    ) -> Result<Option<ClientAuth>, ConfigError> {
        let mode = merged.verify_client.unwrap_or_default();
        if mode == VerifyClient::Off {
            return Ok(None);
        }
        if mode != VerifyClient::OptionalNoCa
            && merged.client_certificate.is_none()
            && merged.trusted_certificate.is_none()
        {
            return Err(ConfigError::bare(format!(
                "no ssl_client_certificate or ssl_trusted_certificate for ssl_verify_client in {at}"
            )));
        }
        let load = |file: &Option<(String, Position)>| -> Result<Vec<_>, ConfigError> {
            let Some((name, pos)) = file else {
                return Ok(Vec::new());
            };
            let path = super::full_path(&self.conf_prefix, name);
            crate::transport::tls::load_certificates(&path)
                .map_err(|e| ConfigError::at(e.to_string(), pos))
        };
        let hints = load(&merged.client_certificate)?;
        let mut roots = hints.clone();
        roots.extend(load(&merged.trusted_certificate)?);
        let depth = merged.verify_depth.unwrap_or(1);
        ClientAuth::new(mode, roots, &hints, depth)
            .map(Some)
            .map_err(|e| ConfigError::bare(format!("{e} in {at}")))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{load, LoadOptions};
    use super::*;

    /// Loads a stream block with a certificate pair made in the prefix;
    /// the error lines, if it fails.
    fn try_stream(body: &str) -> Result<crate::config::model::Stream, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (cert, key) = crate::transport::tls::self_signed(&["localhost".to_string()])
            .map_err(|e| e.to_string())?;
        std::fs::write(dir.path().join("c.pem"), cert).map_err(|e| e.to_string())?;
        std::fs::write(dir.path().join("k.pem"), key).map_err(|e| e.to_string())?;
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, format!("events {{}}\nstream {{\n{body}\n}}\n"))
            .map_err(|e| e.to_string())?;
        let loaded = load(&LoadOptions {
            conf_file: path,
            prefix: dir.path().to_path_buf(),
            globals: None,
        })
        .map_err(|e| e.lines().join("; "))?;
        loaded.model.stream.ok_or_else(|| "no stream".to_string())
    }

    #[test]
    fn settings_merge_and_certificates_are_relative_to_the_conf() {
        let s = try_stream(
            "ssl_certificate c.pem; ssl_certificate_key k.pem; ssl_handshake_timeout 5s;\n\
             server { listen 127.0.0.1:8443 ssl; return x; }\n\
             server { listen 127.0.0.1:8444 ssl; ssl_handshake_timeout 1s; return x; }\n\
             server { listen 127.0.0.1:8445; return x; }",
        )
        .unwrap();
        let timeout = |i: usize| s.servers[i].ssl.as_ref().map(|t| t.handshake_timeout);
        assert_eq!(timeout(0), Some(Duration::from_secs(5)));
        assert_eq!(timeout(1), Some(Duration::from_secs(1)));
        // nginx makes the context wherever a certificate is inherited.
        assert!(s.servers[2].ssl.is_some());
        assert!(s.servers[0].listens[0].ssl && !s.servers[2].listens[0].ssl);
    }

    #[test]
    fn nginx_messages() {
        let pair = "ssl_certificate c.pem; ssl_certificate_key k.pem;";
        let cases = [
            (
                "server { listen 127.0.0.1:8443 ssl; ssl_certificate c.pem; return x; }"
                    .to_string(),
                "no \"ssl_certificate_key\" is defined for certificate \"c.pem\"",
            ),
            (
                format!("{pair} ssl_protocols TLSv1.2 TLSv9;"),
                "invalid value \"TLSv9\" in ",
            ),
            (
                format!("{pair} ssl_protocols TLSv1 TLSv1.1;"),
                "\"ssl_protocols\" without TLSv1.2 or TLSv1.3 is not supported yet",
            ),
            (
                format!("{pair} ssl_ciphers AES128-SHA;"),
                "ssl_ciphers \"AES128-SHA\" selects none of the TLSv1.2 cipher suites",
            ),
            (
                format!("{pair} ssl_session_cache shared:x;"),
                "invalid session cache \"shared:x\" in ",
            ),
            (
                format!("{pair} ssl_session_cache shared:x:1k;"),
                "session cache \"shared:x:1k\" is too small in ",
            ),
            (
                format!("{pair} ssl_session_cache none builtin;"),
                "invalid session cache \"none\" in ",
            ),
            (
                // Loaded by the servers that inherit it, as nginx's merge.
                "ssl_certificate missing.pem; ssl_certificate_key k.pem;\n\
                 server { listen 127.0.0.1:8443; return x; }"
                    .to_string(),
                "cannot load certificate \"",
            ),
            (
                "ssl_certificate $name.pem; ssl_certificate_key k.pem;".to_string(),
                "variables and \"data:\" in \"ssl_certificate\" are not supported yet in ",
            ),
            (
                "server { listen 127.0.0.1:8443 udp ssl; return x; }".to_string(),
                "\"ssl\" parameter is incompatible with \"udp\" in ",
            ),
        ];
        for (body, wanted) in cases {
            let e = try_stream(&body).err().unwrap_or_default();
            assert!(e.contains(wanted), "{body}: {e}");
        }
        // The older protocol names are accepted beside a usable one.
        try_stream(&format!(
            "{pair} ssl_protocols TLSv1 TLSv1.1 TLSv1.2; ssl_session_cache builtin:100 shared:S:1m;"
        ))
        .unwrap();
    }
}
