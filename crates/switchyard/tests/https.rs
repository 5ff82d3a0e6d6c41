//! TLS termination in `http {}` (`listen ... ssl`), driven by the clients
//! people use: curl and `openssl s_client`. SNI picks the certificate by
//! nginx's virtual-server rules, plain HTTP on the TLS port gets nginx's
//! 497 page, ALPN and protocol versions are what the config says, sessions
//! resume, and a reload re-reads certificates (a broken one is refused and
//! the old one keeps serving). Certificates are made here with rcgen.

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{free_port, wait_until, Balancer};

/// A self-signed certificate for `name`, written as `name.pem` and
/// `name.key` into `dir`.
fn certificate(dir: &Path, name: &str) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

fn conf(body: &str) -> String {
    format!(
        "error_log logs/error.log info;\nevents {{}}\nhttp {{\naccess_log logs/access.log;\n{body}\n}}\n"
    )
}

/// `openssl s_client` to `port` with `args`; its whole output (the
/// server's certificate subject, the protocol, the ALPN, resumption).
fn s_client(port: u16, args: &[&str]) -> String {
    // A request, and reading until the server closes: the session (and a
    // TLSv1.3 ticket, which comes after the handshake) is complete then.
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-ign_eof",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client (apt-get install openssl)");
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(b"GET / HTTP/1.0\r\n\r\n");
    }
    let out = child.wait_with_output().expect("s_client's output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// curl over HTTPS, trusting any certificate; stdout, or the error.
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-k", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl (apt-get install curl)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn sni_picks_the_certificate_and_the_host_picks_the_server() {
    let port = free_port();
    let (_lb, _certs) = tls_servers(port, &["a.test", "b.test"]);
    // The address is TLS for both servers (ssl on any listen of it).
    let a = curl(&[
        "--resolve",
        &format!("a.test:{port}:127.0.0.1"),
        &format!("https://a.test:{port}/"),
    ]);
    assert_eq!(a, "a https on a.test TLSv1.3\n");
    let b = curl(&[
        "--resolve",
        &format!("b.test:{port}:127.0.0.1"),
        &format!("https://b.test:{port}/"),
    ]);
    assert_eq!(b, "b https on b.test\n");
    // The certificate follows SNI; no SNI gets the default server's.
    for (sni, subject) in [
        ("b.test", "b.test"),
        ("a.test", "a.test"),
        ("c.test", "a.test"),
    ] {
        let out = s_client(port, &["-servername", sni]);
        assert!(subject_line(&out).contains(subject), "{sni}: {out}");
    }
    let out = s_client(port, &["-noservername"]);
    assert!(subject_line(&out).contains("a.test"), "{out}");
    // A redirect is absolute in the connection's scheme, and 443 aside the
    // port is kept.
    let head = curl(&[
        "-D-",
        "-o/dev/null",
        "--resolve",
        &format!("b.test:{port}:127.0.0.1"),
        &format!("https://b.test:{port}/away"),
    ]);
    assert!(
        head.contains(&format!("Location: https://b.test:{port}/there")),
        "{head}"
    );
}

/// The subject line `openssl s_client` prints for the server's leaf.
fn subject_line(out: &str) -> &str {
    out.lines()
        .find(|l| l.starts_with("subject=") || l.contains(" s:"))
        .unwrap_or("")
}

/// A balancer with a server on `port` for each of `names`, each with a
/// certificate of its own (the first is the default server, and the only
/// one whose `listen` says `ssl`); the certificates' directory with it.
fn tls_servers(port: u16, names: &[&str]) -> (Balancer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        certificate(dir.path(), name);
    }
    let mut body = String::new();
    for (i, name) in names.iter().enumerate() {
        let ssl = if i == 0 { " ssl" } else { "" };
        let letter = &name[..1];
        body.push_str(&format!(
            "server {{ listen 127.0.0.1:{port}{ssl}; server_name {name};\n\
             ssl_certificate {dir}/{name}.pem; ssl_certificate_key {dir}/{name}.key;\n\
             location / {{ return 200 \"{letter} $scheme $https $ssl_server_name{extra}\\n\"; }}\n\
             location /away {{ return 302 /there; }} }}\n",
            dir = dir.path().display(),
            extra = if i == 0 { " $ssl_protocol" } else { "" },
        ));
    }
    (Balancer::start_full(&conf(&body), &[port], &[]), dir)
}

#[test]
fn plain_http_on_the_tls_port_gets_nginx_497_page_and_is_closed() {
    let port = free_port();
    let (lb, _certs) = tls_servers(port, &["a.test"]);
    let r = support::raw(
        ([127, 0, 0, 1], port).into(),
        b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        r.text()
            .contains("The plain HTTP request was sent to HTTPS port"),
        "{}",
        r.text()
    );
    wait_until(Duration::from_secs(5), "the info line", || {
        lb.error_log_text()
            .contains("client sent plain HTTP request to HTTPS port")
    });
}

/// Plain bytes on a TLS address are HTTP/1 even when they are the h2c
/// preface and the server takes HTTP/2: nginx looks for the preface only
/// on a plain address (`!hc->ssl`).
#[test]
fn an_h2c_preface_on_the_tls_port_is_not_taken_for_http2() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path(), "a.test");
    let d = dir.path().display();
    let _lb = Balancer::start_full(
        &conf(&format!(
            "server {{ listen 127.0.0.1:{port} ssl; http2 on;\n\
             ssl_certificate {d}/a.test.pem; ssl_certificate_key {d}/a.test.key;\n\
             location / {{ return 200; }} }}\n"
        )),
        &[port],
        &[],
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn alpn_versions_and_resumption_are_what_the_config_says() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path(), "a.test");
    let d = dir.path().display();
    let lb = Balancer::start_full(
        &conf(&format!(
            "ssl_certificate {d}/a.test.pem; ssl_certificate_key {d}/a.test.key;\n\
             ssl_session_cache shared:SSL:1m; ssl_protocols TLSv1.3;\n\
             server {{ listen 127.0.0.1:{port} ssl; location / {{ return 200 \"$ssl_session_reused\"; }} }}"
        )),
        &[port],
        &[],
    );
    // ALPN: http/1.1 is chosen; a client offering only h2 is refused, as
    // nginx's ALPN callback refuses a protocol it does not serve.
    let out = s_client(port, &["-alpn", "http/1.1"]);
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
    let out = s_client(port, &["-alpn", "h2"]);
    assert!(!out.contains("ALPN protocol: h2"), "{out}");
    wait_until(Duration::from_secs(5), "the refusal logged", || {
        lb.error_log_text().contains("SSL_do_handshake() failed")
    });
    // Only TLSv1.3 is configured: a TLSv1.2-only client gets no session.
    let out = s_client(port, &["-tls1_2"]);
    assert!(
        out.contains("alert protocol version") && out.contains("Cipher is (NONE)"),
        "{out}"
    );
    assert!(s_client(port, &["-tls1_3"]).contains("New, TLSv1.3"));
    // A session saved by one connection is resumed by the next.
    let sess = dir.path().join("session.pem");
    let sess = sess.to_str().unwrap();
    let first = s_client(port, &["-tls1_3", "-sess_out", sess]);
    assert!(first.contains("New, TLSv1.3"), "{first}");
    let second = s_client(port, &["-tls1_3", "-sess_in", sess]);
    assert!(second.contains("Reused, TLSv1.3"), "{second}");
}

#[test]
fn a_reload_rereads_certificates_and_a_broken_one_keeps_the_old() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path(), "one.test");
    let d = dir.path().display();
    let body = format!(
        "server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {d}/cert.pem;\n\
         ssl_certificate_key {d}/cert.key; location / {{ return 200 ok; }} }}"
    );
    let install = |name: &str| {
        std::fs::copy(
            dir.path().join(format!("{name}.pem")),
            dir.path().join("cert.pem"),
        )
        .unwrap();
        std::fs::copy(
            dir.path().join(format!("{name}.key")),
            dir.path().join("cert.key"),
        )
        .unwrap();
    };
    install("one.test");
    let lb = Balancer::start_full(&conf(&body), &[port], &[]);
    assert!(subject_line(&s_client(port, &[])).contains("one.test"));

    certificate(dir.path(), "two.test");
    install("two.test");
    lb.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(10), "the new certificate", || {
        subject_line(&s_client(port, &[])).contains("two.test")
    });

    // A broken certificate: the reload is refused with file:line and the
    // running one keeps serving.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate\n").unwrap();
    lb.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(10), "the refusal", || {
        let log = lb.error_log_text();
        log.contains("cert.pem") && log.contains("nginx.conf:")
    });
    assert!(subject_line(&s_client(port, &[])).contains("two.test"));
    assert_eq!(curl(&[&format!("https://127.0.0.1:{port}/")]), "ok");
}

#[test]
fn a_tls_address_whose_default_server_has_no_certificate_is_refused() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(
        &conf_path,
        conf(&format!(
            "server {{ listen 127.0.0.1:{port} ssl; location / {{ return 200; }} }}"
        )),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf_path)
        .arg("-t")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive in {}:5",
            conf_path.display()
        )),
        "{err}"
    );
}

/// A CA, a client certificate it signed, and a stranger's self-signed one,
/// written into `dir` as `ca.pem`, `good.pem`/`good.key`, `bad.pem`/`bad.key`.
fn client_certificates(dir: &Path) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Test CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "alice");
    let good = params.signed_by(&key, &ca, &ca_key).unwrap();
    std::fs::write(dir.join("good.pem"), good.pem()).unwrap();
    std::fs::write(dir.join("good.key"), key.serialize_pem()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mallory");
    let bad = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("bad.pem"), bad.pem()).unwrap();
    std::fs::write(dir.join("bad.key"), key.serialize_pem()).unwrap();
}

#[test]
fn client_certificates_are_judged_per_request_as_nginx_judges_them() {
    let (on, optional, no_ca) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path(), "a.test");
    client_certificates(dir.path());
    let d = dir.path().display();
    let lb = Balancer::start_full(
        &conf(&format!(
            "ssl_certificate {d}/a.test.pem; ssl_certificate_key {d}/a.test.key;\n\
             ssl_client_certificate {d}/ca.pem;\n\
             server {{ listen 127.0.0.1:{on} ssl; ssl_verify_client on;\n\
             location / {{ return 200 \"$ssl_client_verify|$ssl_client_s_dn|$ssl_client_i_dn\"; }} }}\n\
             server {{ listen 127.0.0.1:{optional} ssl; ssl_verify_client optional;\n\
             location / {{ return 200 \"$ssl_client_verify\"; }} }}\n\
             server {{ listen 127.0.0.1:{no_ca} ssl; ssl_verify_client optional_no_ca;\n\
             location / {{ return 200 \"$ssl_client_verify|$ssl_client_s_dn\"; }} }}"
        )),
        &[on, optional, no_ca],
        &[],
    );
    let with = |port: u16, who: &str| {
        curl(&[
            "--cert",
            &format!("{d}/{who}.pem"),
            "--key",
            &format!("{d}/{who}.key"),
            &format!("https://127.0.0.1:{port}/"),
        ])
    };
    let without = |port: u16| curl(&["-w", " %{http_code}", &format!("https://127.0.0.1:{port}/")]);
    assert_eq!(with(on, "good"), "SUCCESS|CN=alice|CN=Test CA");
    // `on` without a certificate: 496, nginx's 400 page; a bad one: 495.
    let none = without(on);
    assert!(
        none.contains("No required SSL certificate was sent") && none.ends_with(" 400"),
        "{none}"
    );
    let bad = with(on, "bad");
    assert!(bad.contains("The SSL certificate error"), "{bad}");
    assert_eq!(without(optional), "NONE 200");
    assert!(with(optional, "bad").contains("The SSL certificate error"));
    // optional_no_ca lets an unknown issuer through and says so.
    assert_eq!(
        with(no_ca, "bad"),
        "FAILED:self-signed certificate|CN=mallory"
    );
    wait_until(Duration::from_secs(5), "both refusals logged", || {
        let log = lb.error_log_text();
        log.contains("client sent no required SSL certificate")
            && log.contains("client SSL certificate verify error: (18:self-signed certificate)")
    });
}

#[test]
fn ssl_reject_handshake_answers_unrecognized_name() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path(), "a.test");
    let d = dir.path().display();
    let _lb = Balancer::start_full(
        &conf(&format!(
            "server {{ listen 127.0.0.1:{port} ssl; ssl_reject_handshake on; }}\n\
             server {{ listen 127.0.0.1:{port}; server_name a.test;\n\
             ssl_certificate {d}/a.test.pem; ssl_certificate_key {d}/a.test.key;\n\
             location / {{ return 200 \"$ssl_server_name\"; }} }}"
        )),
        &[port],
        &[],
    );
    // No SNI, or a name no server has: the default server rejects.
    for args in [&["-noservername"][..], &["-servername", "other.test"][..]] {
        let out = s_client(port, args);
        assert!(out.contains("unrecognized name"), "{args:?}: {out}");
    }
    assert_eq!(
        curl(&[
            "--resolve",
            &format!("a.test:{port}:127.0.0.1"),
            &format!("https://a.test:{port}/"),
        ]),
        "a.test"
    );
}

#[test]
fn ssl_ecdh_curve_chooses_the_group_and_ssl_curves_lists_the_offer() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path(), "a.test");
    let d = dir.path().display();
    let _lb = Balancer::start_full(
        &conf(&format!(
            "ssl_certificate {d}/a.test.pem; ssl_certificate_key {d}/a.test.key;\n\
             ssl_ecdh_curve secp521r1:prime256v1;\n\
             server {{ listen 127.0.0.1:{port} ssl; location / {{ return 200 \"$ssl_curve|$ssl_curves\\n\"; }} }}"
        )),
        &[port],
        &[],
    );
    let out = s_client(port, &["-groups", "X25519:P-256"]);
    assert!(out.contains("prime256v1|X25519:prime256v1"), "{out}");
    // A client offering only a group not configured gets no handshake.
    let out = s_client(port, &["-groups", "X25519"]);
    assert!(out.contains("Cipher is (NONE)"), "{out}");
}

/// `openssl pkcs8 -topk8 -v2 aes-128-cbc`: `dir/name.key` encrypted with
/// `password` into `dir/name.enc.key` (what OpenSSL 3's `genrsa -aes128`
/// writes: PBES2, PBKDF2, AES-128-CBC).
fn encrypt_key(dir: &Path, name: &str, password: &str) {
    let status = Command::new("openssl")
        .args(["pkcs8", "-topk8", "-v2", "aes-128-cbc", "-passout"])
        .arg(format!("pass:{password}"))
        .arg("-in")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(dir.join(format!("{name}.enc.key")))
        .status()
        .expect("openssl (apt-get install openssl)");
    assert!(status.success());
}

/// `switchyard -t` on `body`; its exit code and stderr.
fn check(dir: &Path, body: &str) -> (Option<i32>, String) {
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf(body)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_path)
        .arg("-t")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ssl_password_file_opens_encrypted_keys_and_is_inherited() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    for (name, password) in [("a.test", "alpha"), ("b.test", "beta")] {
        certificate(dir.path(), name);
        encrypt_key(dir.path(), name, password);
    }
    // Lines end in CR LF or LF; the wrong ones are tried first.
    std::fs::write(dir.path().join("server.pass"), "wrong\r\nalpha\r\n").unwrap();
    std::fs::write(dir.path().join("http.pass"), "beta").unwrap();
    let port = free_port();
    let body = format!(
        "ssl_password_file {d}/http.pass;\n\
         server {{ listen 127.0.0.1:{port} ssl; server_name a.test;\n\
         ssl_certificate {d}/a.test.pem; ssl_certificate_key {d}/a.test.enc.key;\n\
         ssl_password_file {d}/server.pass;\n\
         location / {{ return 200 \"a $ssl_server_name\\n\"; }} }}\n\
         server {{ listen 127.0.0.1:{port} ssl; server_name b.test;\n\
         ssl_certificate {d}/b.test.pem; ssl_certificate_key {d}/b.test.enc.key;\n\
         location / {{ return 200 \"b $ssl_server_name\\n\"; }} }}\n"
    );
    let _lb = Balancer::start_full(&conf(&body), &[port], &[]);
    let url = |host: &str| format!("https://{host}:{port}/");
    let resolve = |host: &str| format!("{host}:{port}:127.0.0.1");
    assert_eq!(
        curl(&["--resolve", &resolve("a.test"), &url("a.test")]),
        "a a.test\n"
    );
    assert_eq!(
        curl(&["--resolve", &resolve("b.test"), &url("b.test")]),
        "b b.test\n"
    );
    // The certificate served is the one the decrypted key belongs to.
    assert!(
        subject_line(&s_client(port, &["-servername", "b.test"])).contains("b.test"),
        "b.test's certificate"
    );
}

#[test]
fn a_wrong_or_missing_password_file_fails_the_check_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    certificate(dir.path(), "a.test");
    encrypt_key(dir.path(), "a.test", "alpha");
    std::fs::write(dir.path().join("wrong.pass"), "beta\n").unwrap();
    let server = |extra: &str| {
        format!(
            "server {{ listen 127.0.0.1:{port} ssl;\n\
             ssl_certificate {d}/a.test.pem; ssl_certificate_key {d}/a.test.enc.key;\n\
             {extra}\n\
             location / {{ return 200; }} }}",
            port = free_port()
        )
    };
    let conf_path = dir.path().join("nginx.conf").display().to_string();

    let (code, err) = check(dir.path(), &server(""));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("a.test.enc.key"), "{err}");

    let (code, err) = check(dir.path(), &server("ssl_password_file wrong.pass;"));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("a.test.enc.key") && err.contains("bad decrypt"),
        "{err}"
    );

    let (code, err) = check(dir.path(), &server("ssl_password_file missing.pass;"));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "open() \"{}/missing.pass\" failed (2: No such file or directory) in {conf_path}:7",
            d
        )),
        "{err}"
    );
}
