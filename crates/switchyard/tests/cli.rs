//! nginx's command line and configuration errors, checked against the real
//! binary: the exact text nginx prints, with file:line, and exit status 1.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{free_port, Balancer, BIN};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run switchyard");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn seed_conf() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/seed/nginx.conf")
        .canonicalize()
        .expect("examples/seed/nginx.conf")
        .display()
        .to_string()
}

#[test]
fn seed_config_passes_the_test() {
    let conf = seed_conf();
    let (code, _, err) = run(&["-t", "-c", &conf]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err,
        format!(
            "switchyard: the configuration file {conf} syntax is ok\n\
             switchyard: configuration file {conf} test is successful\n"
        )
    );
    let (code, _, err) = run(&["-t", "-q", "-c", &conf]);
    assert_eq!((code, err.as_str()), (0, ""));
}

/// Each broken config gets nginx's message with file:line, and exit 1.
#[test]
fn broken_configs_get_nginx_messages() {
    let cases: &[(&str, &str)] = &[
        ("events {}\nhttp {\n  upstrem u { }\n}\n", "unknown directive \"upstrem\" in {F}:3"),
        ("events {}\nhttp {\n}\n}\n", "unexpected \"}\" in {F}:4"),
        ("events {}\nhttp {\n  server {\n", "unexpected end of file, expecting \"}\" in {F}:4"),
        (
            "events {}\nhttp {\n  server { listen 8080 {} }\n}\n",
            "directive \"listen\" is not terminated by \";\" in {F}:3",
        ),
        (
            "events {}\nhttp {\n  server { listen 8080 }\n}\n",
            "unexpected \"}\" in {F}:3",
        ),
        (
            "events {}\nproxy_pass http://x;\nhttp {}\n",
            "\"proxy_pass\" directive is not allowed here in {F}:2",
        ),
        (
            "events {}\nhttp {\n  server {\n    listen;\n  }\n}\n",
            "invalid number of arguments in \"listen\" directive in {F}:4",
        ),
        (
            "events {}\nhttp {\n  proxy_ignore_headers X-Accel-Redirect X-Bogus;\n}\n",
            "invalid value \"X-Bogus\" in {F}:3",
        ),
        (
            "events {}\nhttp {\n  server { location / ; }\n}\n",
            "directive \"location\" has no opening \"{\" in {F}:3",
        ),
        (
            "events {}\nhttp {\n  proxy_read_timeout 10x;\n}\n",
            "\"proxy_read_timeout\" directive invalid value in {F}:3",
        ),
        (
            "events {}\nhttp {\n  proxy_read_timeout 1s;\n  proxy_read_timeout 2s;\n}\n",
            "\"proxy_read_timeout\" directive is duplicate in {F}:4",
        ),
        (
            "events {}\nhttp {\n  upstream u {\n    server 127.0.0.1 weight=0;\n  }\n}\n",
            "invalid parameter \"weight=0\" in {F}:4",
        ),
        (
            "events {}\nhttp {\n  upstream u {\n  }\n}\n",
            "no servers are inside upstream in {F}:3",
        ),
        (
            "events {}\nhttp {\n  sendfile maybe;\n}\n",
            "invalid value \"maybe\" in \"sendfile\" directive, it must be \"on\" or \"off\" in {F}:3",
        ),
        (
            "events {}\nhttp {\n  server {\n    listen 99999;\n  }\n}\n",
            "invalid port in \"99999\" of the \"listen\" directive in {F}:4",
        ),
        (
            "events {}\nhttp {\n  server {\n    location / { proxy_pass x; }\n  }\n}\n",
            "invalid URL prefix in {F}:4",
        ),
        ("http {}\n", "no \"events\" section in configuration"),
        (
            "events { worker_connections x; }\n",
            "invalid number \"x\" in {F}:1",
        ),
        (
            "events {}\nhttp {\n  access_log /tmp/x nope;\n}\n",
            "unknown log format \"nope\" in {F}:3",
        ),
        (
            "events {}\nhttp {\n  proxy_cache zone;\n}\n",
            "\"proxy_cache\" is not supported yet in {F}:3",
        ),
        (
            "events {}\nhttp {\n  log_format x \"$nosuchvar\";\n}\n",
            "unknown \"nosuchvar\" variable in {F}:3",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, (text, expected)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("case{i}.conf"));
        std::fs::write(&file, text).unwrap();
        let f = file.display().to_string();
        let (code, _, err) = run(&["-t", "-c", &f]);
        let expected = expected.replace("{F}", &f);
        assert_eq!(code, 1, "case {i}: {err}");
        let summary = if expected.contains("not supported yet") {
            "1 problem: 1 directive not supported yet: proxy_cache (1)"
        } else {
            "1 problem: 1 error"
        };
        assert_eq!(
            err,
            format!(
                "switchyard: [emerg] {expected}\nswitchyard: {summary}\nswitchyard: configuration file {f} test failed\n"
            ),
            "case {i}"
        );
    }
}

#[test]
fn dump_prints_every_file_read() {
    let dir = tempfile::tempdir().unwrap();
    let main = support::write_file(
        dir.path(),
        "nginx.conf",
        "events {}\nhttp {\n    include conf.d/*.conf;\n}\n",
    );
    let inc = support::write_file(
        dir.path(),
        "conf.d/up.conf",
        "upstream u { server 127.0.0.1:9; }\n",
    );
    let (code, out, err) = run(&["-T", "-c", &main.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "# configuration file {}:\nevents {{}}\nhttp {{\n    include conf.d/*.conf;\n}}\n\n\
             # configuration file {}:\nupstream u {{ server 127.0.0.1:9; }}\n\n",
            main.display(),
            inc.display()
        )
    );
}

#[test]
fn command_line_errors_are_nginx_words() {
    let (code, _, err) = run(&["-c"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "switchyard: [emerg] option \"-c\" requires file name\n")
    );
    let (code, _, err) = run(&["-s", "bogus"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "switchyard: [emerg] invalid option: \"-s bogus\"\n")
    );
    let (code, out, _) = run(&["-h"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("-s signal     : send signal to a master process: stop, quit, reopen, reload")
    );
    let (code, _, err) = run(&["-V"]);
    assert_eq!(code, 0);
    assert!(err.starts_with("switchyard version: switchyard/"), "{err}");
    assert!(err.contains("configure arguments: "), "{err}");
    assert!(err.contains("--without-http_ssi_module"), "{err}");
}

#[test]
fn global_directives_from_g_are_checked() {
    let conf = seed_conf();
    let (code, _, err) = run(&["-t", "-c", &conf, "-g", "bogus on;"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("switchyard: [emerg] unknown directive \"bogus\" in command line\n"),
        "{err}"
    );
}

#[test]
fn signal_reload_reaches_the_running_process() {
    let port = free_port();
    let b = Balancer::start_http(
        &format!("server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\"; }} }}"),
        &[port],
    );
    let conf = b.conf_path().display().to_string();
    let prefix = b.dir.path().display().to_string();
    let (code, _, err) = run(&["-p", &prefix, "-c", &conf, "-s", "reload"]);
    assert_eq!(code, 0, "{err}");
    support::wait_until(Duration::from_secs(10), "SIGHUP in the error log", || {
        b.error_log_text().contains("signal 1 (SIGHUP) received")
    });
    // After the reload the server still answers. A connection accepted
    // while the reload lands is closed unanswered, as nginx closes its idle
    // connections then: the client tries again, as clients do.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let request = format!("GET / HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n");
    let status = (0..3)
        .find_map(|_| support::raw(addr, request.as_bytes()).ok())
        .map(|r| r.status);
    assert_eq!(status, Some(200));
    let (code, _, err) = run(&["-p", &prefix, "-c", &conf, "-s", "quit"]);
    assert_eq!(code, 0, "{err}");
    let mut b = b;
    assert_eq!(b.wait(Duration::from_secs(10)), Some(0));
}

#[test]
fn signal_without_pid_file_says_so() {
    let conf = seed_conf();
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(&[
        "-p",
        &dir.path().display().to_string(),
        "-c",
        &conf,
        "-s",
        "reload",
    ]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "switchyard: [error] open() \"{}/logs/nginx.pid\" failed (2: No such file or directory)\n",
            dir.path().display()
        )
    );
}

/// The `ssl` family of `health_check` (ours) is checked by `-t`: a CA file
/// that cannot be loaded and `ssl_name` without `ssl` name the line.
#[test]
fn health_check_ssl_parameters_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    for (params, expected) in [
        (
            "ssl ssl_trusted_certificate=/nonexistent/ca.pem",
            "cannot load \"/nonexistent/ca.pem\"",
        ),
        (
            "ssl_name=api.test",
            "health_check parameters \"ssl_trusted_certificate\" and \"ssl_name\" need \"ssl\"",
        ),
        ("ssl ssl_name=bad_name!", "invalid ssl_name \"bad_name!\""),
    ] {
        let file = dir.path().join("nginx.conf");
        std::fs::write(
            &file,
            format!(
                "events {{}}\nhttp {{\n  upstream u {{\n    server 127.0.0.1:1;\n    health_check uri=/readyz {params};\n  }}\n}}\n"
            ),
        )
        .unwrap();
        let f = file.display().to_string();
        let (code, _, err) = run(&["-t", "-c", &f]);
        assert_eq!(code, 1, "{params}: {err}");
        let line = err.lines().next().unwrap_or("");
        assert!(line.contains(expected), "{params}: {err}");
        assert!(line.ends_with(&format!(" in {f}:5")), "{params}: {err}");
    }
}

/// A directive nginx has and switchyard lacks is "not supported yet" with
/// nginx's context and argument checks first; a name nginx does not have is
/// an "unknown directive", nginx's word for a typo (issue 15).
#[test]
fn every_nginx_directive_is_known_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for (text, expected) in [
        (
            "http {\n  gzip_window 8k;\n}",
            "\"gzip_window\" is not supported yet in {F}:3",
        ),
        (
            "http {\n  server {\n    fastcgi_pass 127.0.0.1:9000;\n  }\n}",
            "\"fastcgi_pass\" directive is not allowed here in {F}:4",
        ),
        (
            "http {\n  reset_timedout_connection;\n}",
            "invalid number of arguments in \"reset_timedout_connection\" directive in {F}:3",
        ),
        (
            "http {\n  ssi on;\n}",
            "\"ssi\" is not supported yet in {F}:3",
        ),
        ("mail {\n}", "\"mail\" is not supported yet in {F}:2"),
        (
            "http {\n  gzip_typse text/css;\n}",
            "unknown directive \"gzip_typse\" in {F}:3",
        ),
        (
            "http {\n  log_format x \"$ssl_session_id\";\n}",
            "variable \"$ssl_session_id\" is not supported yet in {F}:3",
        ),
        (
            "http {\n  log_format x \"$request_idd\";\n}",
            "unknown \"request_idd\" variable in {F}:3",
        ),
    ] {
        let file = dir.path().join("nginx.conf");
        std::fs::write(&file, format!("events {{}}\n{text}\n")).unwrap();
        let f = file.display().to_string();
        let (code, _, err) = run(&["-t", "-c", &f]);
        assert_eq!(code, 1, "{text}: {err}");
        let expected = format!("switchyard: [emerg] {}", expected.replace("{F}", &f));
        assert_eq!(err.lines().next(), Some(expected.as_str()), "{err}");
    }
}

/// `-t` lists every problem, then counts them on one line (issue 16):
/// directives not supported yet by name, and the other errors.
#[test]
fn test_ends_with_a_summary_of_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nginx.conf");
    std::fs::write(
        &file,
        "events {}\nhttp {\n  gzip_window 8k;\n  server {\n    sub_filter a b;\n    gzip_window 4k;\n    \
         location / { expirse 1h; }\n  }\n}\n",
    )
    .unwrap();
    let f = file.display().to_string();
    let (code, _, err) = run(&["-t", "-c", &f]);
    assert_eq!(code, 1, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 6, "{err}");
    assert_eq!(
        lines[4],
        "switchyard: 4 problems: 3 directives not supported yet: gzip_window (2), sub_filter (1); 1 other error",
        "{err}"
    );
}

/// Debian's own nginx.conf (with sites-enabled/default) fails only on
/// directives switchyard does not support yet, each named at file:line,
/// all of them in one run.
#[test]
fn debian_stock_config_fails_only_on_unsupported_directives() {
    let conf = "/etc/nginx/nginx.conf";
    assert!(
        Path::new(conf).exists(),
        "{conf} is missing: install Debian's nginx (scripts/install-test-deps does)"
    );
    let (code, _, err) = run(&["-t", "-c", conf]);
    // Debian's `gzip on;` is supported: the gzip module passes.
    assert!(!err.contains("\"gzip"), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    if code == 0 {
        assert!(lines[0].ends_with("syntax is ok"), "{err}");
        return;
    }
    assert_eq!(
        lines.last(),
        Some(&"switchyard: configuration file /etc/nginx/nginx.conf test failed")
    );
    let unsupported = regex::Regex::new(
        r#"^switchyard: \[emerg\] "([a-z_0-9]+)" is not supported yet in (/etc/nginx/\S+):(\d+)$"#,
    )
    .unwrap();
    let module = regex::Regex::new(
        r#"^switchyard: \[emerg\] module "(ngx_[a-z_0-9]+)" is not supported yet in (/etc/nginx/\S+):(\d+)$"#,
    )
    .unwrap();
    let built_in = regex::Regex::new(
        r#"^switchyard: \[notice\] load_module "[^"]+": (ngx_[a-z_0-9]+) is built into switchyard, nothing to load in (/etc/nginx/\S+):(\d+)$"#,
    )
    .unwrap();
    let mut lines = lines;
    lines.retain(|l| !built_in.is_match(l));
    assert!(lines.len() > 2, "{err}");
    let problems = lines.len() - 2;
    let summary = lines[lines.len() - 2];
    let (problem, directive) = if problems == 1 {
        ("problem", "directive")
    } else {
        ("problems", "directives")
    };
    assert!(
        summary.starts_with(&format!(
            "switchyard: {problems} {problem}: {problems} {directive} not supported yet: "
        )),
        "{summary}"
    );
    // Debian's ssl_* lines (protocols, prefer_server_ciphers) are supported.
    assert!(!err.contains("\"ssl_"), "{err}");
    for line in &lines[..lines.len() - 2] {
        let captures = unsupported
            .captures(line)
            .or_else(|| module.captures(line))
            .unwrap_or_else(|| panic!("not an unsupported-directive line: {line}\n{err}"));
        let (name, file, number) = (&captures[1], &captures[2], &captures[3]);
        let text = std::fs::read_to_string(file).unwrap();
        let source_line = text
            .lines()
            .nth(number.parse::<usize>().unwrap() - 1)
            .unwrap();
        assert!(
            source_line.contains(name),
            "{file}:{number} does not hold {name}: {source_line}"
        );
    }
}

/// Every configuration the project ships passes `switchyard -t`: the
/// examples and the one in the Kubernetes ConfigMap.
#[test]
fn shipped_configs_pass_the_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for entry in glob::glob(&format!("{}/examples/**/*.conf", root.display())).unwrap() {
        files.push(entry.unwrap());
    }
    let configmap =
        std::fs::read_to_string(root.join("deploy/kubernetes/switchyard-configmap.yaml")).unwrap();
    let embedded: String = configmap
        .split("nginx.conf: |\n")
        .nth(1)
        .expect("nginx.conf in the ConfigMap")
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    files.push(support::write_file(dir.path(), "configmap.conf", &embedded));
    assert!(files.len() >= 2);
    for file in files {
        let f = file.canonicalize().unwrap().display().to_string();
        let (code, _, err) = run(&["-t", "-q", "-c", &f]);
        assert_eq!((code, err.as_str()), (0, ""), "{f}");
    }
}
