//! TLS to upstreams (`proxy_pass https://`, stream `proxy_ssl on`): the
//! balancer, a real process, proxies to a rustls backend on loopback that
//! reports what it saw (SNI, client certificate, resumption, how many
//! connections it accepted). Certificates are made here with rcgen: a CA,
//! an intermediate, leaves. nginx's ngx_http_proxy_module and
//! ngx_stream_proxy_module are the spec.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::{free_port, get, wait_until, Balancer};

/// A certificate authority made for one test.
struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// An intermediate CA under this one.
    fn intermediate(&self, name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Ca { cert, key }
    }

    /// A leaf for `names`, signed by this CA: its certificate and key.
    fn leaf(&self, names: &[&str]) -> (Certificate, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.cert, &self.key)
            .unwrap();
        (cert, key)
    }

    /// A leaf with no subjectAltName, only the commonName `cn`.
    fn leaf_cn_only(&self, cn: &str) -> (Certificate, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert, key)
    }

    fn write(&self, dir: &Path, file: &str) {
        std::fs::write(dir.join(file), self.cert.pem()).unwrap();
    }
}

/// What the backend saw on one connection.
#[derive(Debug, Clone)]
struct Seen {
    sni: Option<String>,
    client_cert: bool,
    resumed: bool,
}

/// A TLS backend on loopback: HTTP/1.1 with keep-alive (each answer tells
/// the SNI, the connection's number and whether a client certificate came),
/// or an echo that prefixes `b:`.
struct Backend {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Backend {
    fn start(config: rustls::ServerConfig, http: bool) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let config = Arc::new(config);
        let (count, log) = (accepted.clone(), seen.clone());
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let number = count.fetch_add(1, Ordering::SeqCst) + 1;
                let (config, log) = (config.clone(), log.clone());
                std::thread::spawn(move || serve(tcp, config, log, number, http));
            }
        });
        Backend {
            addr,
            accepted,
            seen,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(
    mut tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    log: Arc<Mutex<Vec<Seen>>>,
    number: usize,
    http: bool,
) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(20)));
    let Ok(mut conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    while conn.is_handshaking() {
        if conn.complete_io(&mut tcp).is_err() {
            return;
        }
    }
    let seen = Seen {
        sni: conn.server_name().map(str::to_string),
        client_cert: conn.peer_certificates().is_some_and(|c| !c.is_empty()),
        resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
    };
    log.lock().unwrap().push(seen.clone());
    let tls = rustls::StreamOwned::new(conn, tcp);
    if !http {
        let mut tls = tls;
        let mut buf = [0u8; 1024];
        while let Ok(n) = tls.read(&mut buf) {
            if n == 0 {
                return;
            }
            let mut reply = b"b:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            if tls.write_all(&reply).is_err() {
                return;
            }
        }
        return;
    }
    let mut reader = BufReader::new(tls);
    loop {
        let mut line = String::new();
        // The request head, up to its empty line.
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        let body = format!(
            "sni={};conn={number};cert={}",
            seen.sni.as_deref().unwrap_or("-"),
            if seen.client_cert { "yes" } else { "no" }
        );
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if reader.get_mut().write_all(answer.as_bytes()).is_err() {
            return;
        }
        let _ = reader.get_mut().flush();
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration presenting `chain` (leaf first) with `key`.
fn server_config(chain: &[&Certificate], key: &KeyPair) -> rustls::ServerConfig {
    let certs: Vec<CertificateDer<'static>> = chain.iter().map(|c| c.der().clone()).collect();
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap()
}

fn http_conf(body: &str) -> String {
    format!(
        "error_log logs/error.log info;\nevents {{}}\nhttp {{\naccess_log logs/access.log;\n{body}\n}}\n"
    )
}

#[test]
fn https_is_proxied_and_sni_is_sent_only_when_asked() {
    let ca = Ca::new("Test CA");
    let (leaf, key) = ca.leaf(&["backend.test"]);
    let backend = Backend::start(server_config(&[&leaf], &key), true);
    let up = backend.addr;
    let port = free_port();
    let lb = Balancer::start_full(
        &http_conf(&format!(
            "upstream backend.test {{ server {up}; }}\n\
             server {{ listen 127.0.0.1:{port};\n\
             location /plain {{ proxy_pass https://{up}; }}\n\
             location /named {{ proxy_pass https://{up}; proxy_ssl_server_name on; proxy_ssl_name backend.test; }}\n\
             location /group {{ proxy_pass https://backend.test; proxy_ssl_server_name on; }}\n\
             location /address {{ proxy_pass https://{up}; proxy_ssl_server_name on; }}\n\
             location /vars {{ proxy_pass https://{up}; proxy_ssl_server_name on; proxy_ssl_name $arg_n.test; }}\n\
             }}"
        )),
        &[port],
        &[],
    );
    let r = get(port, "/plain");
    assert_eq!(r.status, 200, "{}", lb.error_log_text());
    assert!(r.text().starts_with("sni=-;"), "{}", r.text());
    assert!(get(port, "/named").text().starts_with("sni=backend.test;"));
    // Without proxy_ssl_name, the name is the proxy_pass host.
    assert!(get(port, "/group").text().starts_with("sni=backend.test;"));
    // An address is never sent as SNI.
    assert!(get(port, "/address").text().starts_with("sni=-;"));
    assert!(get(port, "/vars?n=chosen")
        .text()
        .starts_with("sni=chosen.test;"));
}

#[test]
fn verification_passes_with_the_right_ca_and_fails_with_502_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    let other = Ca::new("Other CA");
    ca.write(dir.path(), "ca.pem");
    other.write(dir.path(), "other.pem");
    let (leaf, key) = ca.leaf(&["backend.test"]);
    let backend = Backend::start(server_config(&[&leaf], &key), true);
    let up = backend.addr;
    let d = dir.path().display();
    let port = free_port();
    let lb = Balancer::start_full(
        &http_conf(&format!(
            "server {{ listen 127.0.0.1:{port};\n\
             proxy_ssl_verify on; proxy_ssl_name backend.test;\n\
             location /right {{ proxy_pass https://{up}; proxy_ssl_trusted_certificate {d}/ca.pem; }}\n\
             location /wrong {{ proxy_pass https://{up}; proxy_ssl_trusted_certificate {d}/other.pem; }}\n\
             location /name {{ proxy_pass https://{up}; proxy_ssl_trusted_certificate {d}/ca.pem; proxy_ssl_name other.test; }}\n\
             location /off {{ proxy_pass https://{up}; proxy_ssl_verify off; }}\n\
             }}"
        )),
        &[port],
        &[],
    );
    assert_eq!(get(port, "/right").status, 200, "{}", lb.error_log_text());
    assert_eq!(get(port, "/off").status, 200);
    assert_eq!(get(port, "/wrong").status, 502);
    wait_until(Duration::from_secs(5), "the verify error logged", || {
        lb.error_log_text().contains(
            "upstream SSL certificate verify error: (20:unable to get local issuer certificate) \
             while SSL handshaking to upstream",
        )
    });
    assert_eq!(get(port, "/name").status, 502);
    wait_until(Duration::from_secs(5), "the name mismatch logged", || {
        lb.error_log_text().contains(
            "upstream SSL certificate does not match \"other.test\" while SSL handshaking to upstream",
        )
    });
    let log = lb.error_log_text();
    assert!(
        log.contains(&format!("upstream: \"https://{up}/wrong\"")),
        "{log}"
    );
}

#[test]
fn without_subject_alt_names_the_common_name_is_matched_as_openssl_does() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    ca.write(dir.path(), "ca.pem");
    let (leaf, key) = ca.leaf_cn_only("cn.example.test");
    let backend = Backend::start(server_config(&[&leaf], &key), true);
    let up = backend.addr;
    let d = dir.path().display();
    let port = free_port();
    let lb = Balancer::start_full(
        &http_conf(&format!(
            "server {{ listen 127.0.0.1:{port};\n\
             proxy_ssl_verify on; proxy_ssl_trusted_certificate {d}/ca.pem;\n\
             location /cn {{ proxy_pass https://{up}; proxy_ssl_name cn.example.test; }}\n\
             location /other {{ proxy_pass https://{up}; proxy_ssl_name other.example.test; }}\n\
             }}"
        )),
        &[port],
        &[],
    );
    assert_eq!(get(port, "/cn").status, 200, "{}", lb.error_log_text());
    assert_eq!(get(port, "/other").status, 502);
}

#[test]
fn the_verify_depth_limits_the_chain_as_openssl_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::new("Root CA");
    let middle = root.intermediate("Intermediate CA");
    root.write(dir.path(), "root.pem");
    let (leaf, key) = middle.leaf(&["backend.test"]);
    // The backend sends its leaf and the intermediate; the root is trusted.
    let backend = Backend::start(server_config(&[&leaf, &middle.cert], &key), true);
    let (direct_leaf, direct_key) = root.leaf(&["backend.test"]);
    let direct = Backend::start(server_config(&[&direct_leaf], &direct_key), true);
    let (up, up_direct) = (backend.addr, direct.addr);
    let d = dir.path().display();
    let port = free_port();
    let lb = Balancer::start_full(
        &http_conf(&format!(
            "server {{ listen 127.0.0.1:{port};\n\
             proxy_ssl_verify on; proxy_ssl_name backend.test;\n\
             proxy_ssl_trusted_certificate {d}/root.pem;\n\
             location /default {{ proxy_pass https://{up}; }}\n\
             location /direct {{ proxy_pass https://{up_direct}; }}\n\
             location /two {{ proxy_pass https://{up}; proxy_ssl_verify_depth 2; }}\n\
             location /zero {{ proxy_pass https://{up_direct}; proxy_ssl_verify_depth 0; }}\n\
             }}"
        )),
        &[port],
        &[],
    );
    // Depth 1 (the default): a leaf signed by the root passes; one under
    // an intermediate does not.
    assert_eq!(get(port, "/direct").status, 200, "{}", lb.error_log_text());
    assert_eq!(get(port, "/default").status, 502);
    wait_until(Duration::from_secs(5), "the depth error logged", || {
        lb.error_log_text()
            .contains("upstream SSL certificate verify error: (22:certificate chain too long)")
    });
    assert_eq!(get(port, "/two").status, 200, "{}", lb.error_log_text());
    assert_eq!(get(port, "/zero").status, 502);
}

#[test]
fn a_client_certificate_is_presented_to_a_backend_that_requires_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Server CA");
    let clients = Ca::new("Client CA");
    let (leaf, key) = ca.leaf(&["backend.test"]);
    let (client, client_key) = clients.leaf(&["client.test"]);
    std::fs::write(dir.path().join("client.pem"), client.pem()).unwrap();
    std::fs::write(dir.path().join("client.key"), client_key.serialize_pem()).unwrap();
    // The same key encrypted (PKCS#8, AES-128-CBC), as OpenSSL 3 writes it.
    let encrypted = std::process::Command::new("openssl")
        .args([
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-128-cbc",
            "-passout",
            "pass:second",
        ])
        .arg("-in")
        .arg(dir.path().join("client.key"))
        .arg("-out")
        .arg(dir.path().join("encrypted.key"))
        .status()
        .unwrap();
    assert!(encrypted.success());
    std::fs::write(dir.path().join("passwords"), "first\nsecond\n").unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(clients.cert.der().clone()).unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    let backend = Backend::start(config, true);
    let up = backend.addr;
    let d = dir.path().display();
    let port = free_port();
    let lb = Balancer::start_full(
        &http_conf(&format!(
            "server {{ listen 127.0.0.1:{port};\n\
             location /with {{ proxy_pass https://{up};\n\
             proxy_ssl_certificate {d}/client.pem; proxy_ssl_certificate_key {d}/client.key; }}\n\
             location /encrypted {{ proxy_pass https://{up};\n\
             proxy_ssl_certificate {d}/client.pem; proxy_ssl_certificate_key {d}/encrypted.key;\n\
             proxy_ssl_password_file {d}/passwords; }}\n\
             location /without {{ proxy_pass https://{up}; }}\n\
             }}"
        )),
        &[port],
        &[],
    );
    let r = get(port, "/encrypted");
    assert!(r.text().ends_with(";cert=yes"), "{}", r.text());
    let r = get(port, "/with");
    assert_eq!(r.status, 200, "{}", lb.error_log_text());
    assert!(r.text().ends_with(";cert=yes"), "{}", r.text());
    assert_eq!(get(port, "/without").status, 502);
    assert!(backend.seen().iter().any(|s| s.client_cert));
}

#[test]
fn kept_alive_tls_connections_are_reused_per_name() {
    let ca = Ca::new("Test CA");
    let (leaf, key) = ca.leaf(&["a.test", "b.test"]);
    let backend = Backend::start(server_config(&[&leaf], &key), true);
    let up = backend.addr;
    let port = free_port();
    let lb = Balancer::start_full(
        &http_conf(&format!(
            "upstream u {{ server {up}; keepalive 4; }}\n\
             server {{ listen 127.0.0.1:{port};\n\
             proxy_http_version 1.1; proxy_set_header Connection \"\";\n\
             proxy_ssl_server_name on;\n\
             location /a {{ proxy_pass https://u; proxy_ssl_name a.test; }}\n\
             location /b {{ proxy_pass https://u; proxy_ssl_name b.test; }}\n\
             }}"
        )),
        &[port],
        &[],
    );
    let mut conns = std::collections::HashSet::new();
    for i in 0..6 {
        let path = if i % 2 == 0 { "/a" } else { "/b" };
        let r = get(port, path);
        assert_eq!(r.status, 200, "{}", lb.error_log_text());
        let text = r.text();
        // Each name keeps to its own connection.
        assert!(
            text.starts_with(&format!("sni={}.test;", &path[1..])),
            "{text}"
        );
        conns.insert(text);
    }
    assert_eq!(conns.len(), 2, "{conns:?}");
    assert_eq!(backend.accepted(), 2);
}

#[test]
fn sessions_are_resumed_unless_session_reuse_is_off() {
    let ca = Ca::new("Test CA");
    let (leaf, key) = ca.leaf(&["backend.test"]);
    let backend = Backend::start(server_config(&[&leaf], &key), true);
    let up = backend.addr;
    let port = free_port();
    let _lb = Balancer::start_full(
        &http_conf(&format!(
            "server {{ listen 127.0.0.1:{port};\n\
             location /on {{ proxy_pass https://{up}; }}\n\
             location /off {{ proxy_pass https://{up}; proxy_ssl_session_reuse off; }}\n\
             }}"
        )),
        &[port],
        &[],
    );
    for _ in 0..3 {
        assert_eq!(get(port, "/on").status, 200);
    }
    for _ in 0..3 {
        assert_eq!(get(port, "/off").status, 200);
    }
    let resumed: Vec<bool> = backend.seen().iter().map(|s| s.resumed).collect();
    assert_eq!(resumed, [false, true, true, false, false, false]);
}

#[test]
fn stream_proxy_ssl_verifies_and_sends_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    ca.write(dir.path(), "ca.pem");
    let (leaf, key) = ca.leaf(&["backend.test"]);
    let backend = Backend::start(server_config(&[&leaf], &key), false);
    let up = backend.addr;
    let d = dir.path().display();
    let (good, bad) = (free_port(), free_port());
    let lb = Balancer::start_full(
        &format!(
            "error_log logs/error.log info;\nevents {{}}\nstream {{\n\
             proxy_ssl on; proxy_ssl_verify on; proxy_ssl_trusted_certificate {d}/ca.pem;\n\
             proxy_ssl_server_name on;\n\
             server {{ listen 127.0.0.1:{good}; proxy_pass {up}; proxy_ssl_name backend.test; }}\n\
             server {{ listen 127.0.0.1:{bad}; proxy_pass {up}; proxy_ssl_name other.test; }}\n\
             }}\n"
        ),
        &[good, bad],
        &[],
    );
    let mut s = TcpStream::connect(("127.0.0.1", good)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"hello").unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"b:hello", "{}", lb.error_log_text());
    assert_eq!(backend.seen()[0].sni.as_deref(), Some("backend.test"));

    let mut s = TcpStream::connect(("127.0.0.1", bad)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(b"hello");
    let mut buf = [0u8; 64];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    wait_until(Duration::from_secs(5), "the name mismatch logged", || {
        lb.error_log_text().contains(
            "upstream SSL certificate does not match \"other.test\" while SSL handshaking to upstream",
        )
    });
}

/// `-t` on a config: the exit code and stderr.
fn check(body: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, format!("events {{}}\nhttp {{\n{body}\n}}\n")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("-t")
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_errors_say_what_nginx_says() {
    let location = |inner: &str| {
        format!("server {{ listen 127.0.0.1:1; location / {{ proxy_pass https://127.0.0.1:1; {inner} }} }}")
    };
    let (code, err) = check(&location("proxy_ssl_verify on;"));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no proxy_ssl_trusted_certificate for proxy_ssl_verify"),
        "{err}"
    );
    let (code, err) = check(&location("proxy_ssl_protocols TLSv1 TLSv1.1;"));
    assert_eq!(code, Some(1));
    assert!(err.contains("without TLSv1.2 or TLSv1.3"), "{err}");
    let (code, _) = check(&location("proxy_ssl_protocols TLSv1 TLSv1.2;"));
    assert_eq!(code, Some(0));
    let (code, err) = check(&location("proxy_ssl_conf_command Options -SessionTicket;"));
    assert_eq!(code, Some(1));
    assert!(err.contains("not supported yet"), "{err}");
    let (code, err) = check(&location("proxy_ssl_certificate /nonexistent/c.pem;"));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no \"proxy_ssl_certificate_key\" is defined"),
        "{err}"
    );
    let (code, err) = check(&location(
        "proxy_ssl_certificate /nonexistent/c.pem; proxy_ssl_certificate_key /nonexistent/c.key;",
    ));
    assert_eq!(code, Some(1));
    assert!(err.contains("cannot load certificate"), "{err}");
    // An empty name cancels the certificate the server level set.
    let (code, err) = check(
        "server { listen 127.0.0.1:1;\n\
         proxy_ssl_certificate /nonexistent/c.pem; proxy_ssl_certificate_key /nonexistent/c.key;\n\
         location / { proxy_pass https://127.0.0.1:1;\n\
         proxy_ssl_certificate \"\"; proxy_ssl_certificate_key \"\"; } }",
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = check(&location("proxy_ssl_certificate \"\";"));
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = check(&location("proxy_ssl_password_file /nonexistent/passwords;"));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("open() \"/nonexistent/passwords\" failed (2: No such file or directory)"),
        "{err}"
    );
}
