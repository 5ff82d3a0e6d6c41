//! TLS termination in `stream {}` (`listen ... ssl`) with a real rustls
//! client on loopback: the decrypted bytes reach the upstream, the
//! `$ssl_*` variables show what was negotiated, sessions are resumed or
//! not as `ssl_session_cache`/`ssl_session_tickets` say, and a failed or
//! timed-out handshake ends the session with status 500 and nginx's log
//! line. nginx's ngx_stream_ssl_module is the spec.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use support::{free_port, wait_until, Balancer};

/// A self-signed certificate for `localhost`, written as PEM into `dir`;
/// returns it in DER for the client to trust.
fn certificate(dir: &Path) -> CertificateDer<'static> {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    cert.der().clone()
}

/// A backend that answers each read with `b:` and what it read.
fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut reply = b"b:".to_vec();
                    reply.extend_from_slice(&buf[..n]);
                    if s.write_all(&reply).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A client trusting `root`, speaking `version` (or both) and offering
/// `alpn`; its session cache lets a second connection resume.
fn client(
    root: &CertificateDer<'static>,
    version: Option<&'static rustls::SupportedProtocolVersion>,
    alpn: &[&str],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = match version {
        Some(v) => vec![v],
        None => vec![&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// Connects over TLS to `port`, sends `data` (if any) and reads until the
/// server closes; the bytes read.
fn exchange(
    port: u16,
    config: &Arc<rustls::ClientConfig>,
    data: &[u8],
) -> std::io::Result<Vec<u8>> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), name)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    if !data.is_empty() {
        tls.write_all(data)?;
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                // The backend echoes once; the proxy keeps the session.
                if out.starts_with(b"b:") && out.len() >= data.len() + 2 {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn conf(certs: &Path, body: &str) -> String {
    format!(
        "error_log logs/error.log info;\nevents {{}}\nstream {{\n\
         log_format s \"$server_port $status $ssl_protocol $ssl_session_reused\";\n\
         access_log logs/access.log s;\n\
         ssl_certificate {0}/cert.pem;\nssl_certificate_key {0}/key.pem;\n{body}\n}}\n",
        certs.display()
    )
}

#[test]
fn decrypted_bytes_reach_the_upstream_and_variables_show_the_handshake() {
    let certs = tempfile::tempdir().unwrap();
    let root = certificate(certs.path());
    let up = backend();
    let (proxy, vars) = (free_port(), free_port());
    let lb = Balancer::start_full(
        &conf(
            certs.path(),
            &format!(
                "server {{ listen 127.0.0.1:{proxy} ssl; proxy_pass {up}; }}\n\
                 server {{ listen 127.0.0.1:{vars} ssl; ssl_alpn foo bar;\n\
                 return \"$ssl_protocol|$ssl_cipher|$ssl_server_name|$ssl_alpn_protocol|$ssl_session_reused\"; }}"
            ),
        ),
        &[proxy, vars],
        &[],
    );
    let both = client(&root, None, &[]);
    assert_eq!(exchange(proxy, &both, b"hello").unwrap(), b"b:hello");

    let tls12 = client(&root, Some(&rustls::version::TLS12), &["bar"]);
    let text = String::from_utf8(exchange(vars, &tls12, b"").unwrap()).unwrap();
    assert_eq!(
        text,
        "TLSv1.2|ECDHE-ECDSA-AES256-GCM-SHA384|localhost|bar|."
    );
    let tls13 = client(&root, Some(&rustls::version::TLS13), &[]);
    let text = String::from_utf8(exchange(vars, &tls13, b"").unwrap()).unwrap();
    assert_eq!(text, "TLSv1.3|TLS_AES_256_GCM_SHA384|localhost||.");

    // A client offering only protocols the server does not have is
    // refused, as nginx's ALPN callback does.
    let other = client(&root, None, &["baz"]);
    assert!(exchange(vars, &other, b"").is_err());
    wait_until(Duration::from_secs(5), "the refusal logged", || {
        lb.error_log_text().contains("SSL_do_handshake() failed")
    });
}

#[test]
fn sessions_resume_as_the_cache_and_tickets_say() {
    let certs = tempfile::tempdir().unwrap();
    let root = certificate(certs.path());
    let (tickets, cache, none) = (free_port(), free_port(), free_port());
    let _lb = Balancer::start_full(
        &conf(
            certs.path(),
            &format!(
                "server {{ listen 127.0.0.1:{tickets} ssl; return $ssl_session_reused; }}\n\
                 server {{ listen 127.0.0.1:{cache} ssl; ssl_session_cache shared:S:1m; ssl_session_tickets off; return $ssl_session_reused; }}\n\
                 server {{ listen 127.0.0.1:{none} ssl; ssl_session_cache none; ssl_session_tickets off; return $ssl_session_reused; }}"
            ),
        ),
        &[tickets, cache, none],
        &[],
    );
    for (port, version, resumed) in [
        (tickets, &rustls::version::TLS13, "r"),
        (tickets, &rustls::version::TLS12, "r"),
        (cache, &rustls::version::TLS13, "r"),
        (cache, &rustls::version::TLS12, "r"),
        (none, &rustls::version::TLS13, "."),
        (none, &rustls::version::TLS12, "."),
    ] {
        let config = client(&root, Some(version), &[]);
        assert_eq!(exchange(port, &config, b"").unwrap(), b".", "first, {port}");
        assert_eq!(
            exchange(port, &config, b"").unwrap(),
            resumed.as_bytes(),
            "second, port {port} {version:?}"
        );
    }
}

#[test]
fn failed_and_slow_handshakes_end_with_500() {
    let certs = tempfile::tempdir().unwrap();
    certificate(certs.path());
    let up = backend();
    let port = free_port();
    let lb = Balancer::start_full(
        &conf(
            certs.path(),
            &format!(
                "server {{ listen 127.0.0.1:{port} ssl; ssl_handshake_timeout 300ms; proxy_pass {up}; }}"
            ),
        ),
        &[port],
        &[],
    );
    // Plain text where a ClientHello belongs.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"b:"),
        "plain bytes must not reach the upstream"
    );
    // Nothing at all: the handshake timeout closes the connection.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        silent.read(&mut buf).unwrap_or(0),
        0,
        "closed by the server"
    );

    wait_until(Duration::from_secs(5), "two access-log lines", || {
        lb.access_lines().len() >= 2
    });
    let lines = lb.access_lines();
    assert_eq!(lines[0], format!("{port} 500 - -"), "{lines:?}");
    assert_eq!(lines[1], format!("{port} 500 - -"), "{lines:?}");
    let log = lb.error_log_text();
    assert!(
        log.contains("SSL_do_handshake() failed (SSL: ")
            && log.contains(" while SSL handshaking, client: 127.0.0.1, server: 127.0.0.1:"),
        "{log}"
    );
}

#[test]
fn a_tls_listen_without_a_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(
        &conf_path,
        "events {}\nstream {\nserver { listen 127.0.0.1:1 ssl; return x; }\n}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("-p")
        .arg(dir.path())
        .arg("-t")
        .arg("-c")
        .arg(&conf_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive in {}:3",
            conf_path.display()
        )),
        "{err}"
    );
}
