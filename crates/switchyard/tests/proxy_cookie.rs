//! ngx_http_proxy_module's cookie directives: how an upstream's
//! `Set-Cookie` lines are rewritten on the way to the client, and the
//! errors `-t` gives for bad lines.

mod support;

use support::{free_port, get, Balancer};

/// The `Set-Cookie` lines of a response, in order.
fn set_cookies(r: &support::Response) -> Vec<String> {
    r.raw_headers
        .iter()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie")
                .then(|| value.trim().to_string())
        })
        .collect()
}

/// What the backend sets, by `?k=`: two Set-Cookie values.
const LINES: [(&str, &str); 8] = [
    (
        "a=1; Domain=.Backend.TEST; Path=/app/x",
        "b=2;domain=backend.test",
    ),
    ("c=3;  Domain=sub.backend.test ;Path=/other", "d"),
    (
        "e=5; Path=/case/p; Domain=backend.test",
        "f=6; Path=/app/x/",
    ),
    ("g=7; Path=/x/z", "h"),
    ("a=1;Domain=backend.test;Path=/app/", "i"),
    ("j=8; Path=/app/", "k=9; Path=/app/"),
    ("sid=1;secure;SameSite=None", "Other=2; HttpOnly"),
    ("sid=1; Path=/app/", "x"),
];

/// A server on `back` that sends `LINES[k]`.
fn backend(back: u16) -> String {
    let map = |second: bool, var: &str| {
        let mut m = format!("map $arg_k ${var} {{\n");
        for (k, (c1, c2)) in LINES.iter().enumerate() {
            m.push_str(&format!("  {k} \"{}\";\n", if second { c2 } else { c1 }));
        }
        m + "}\n"
    };
    format!(
        "{}{}server {{ listen 127.0.0.1:{back};\n\
           location / {{ add_header Set-Cookie $c1; add_header Set-Cookie $c2; return 200 ok; }}\n\
           location /accel/ {{ add_header X-Accel-Redirect /final; add_header Set-Cookie $c1; return 200 ok; }} }}\n",
        map(false, "c1"),
        map(true, "c2"),
    )
}

/// The Set-Cookie lines the proxy at `port` sends for `path` when the
/// backend sets `LINES[k]`.
fn cookies(port: u16, path: &str, k: usize) -> Vec<String> {
    let r = get(port, &format!("{path}?k={k}"));
    assert_eq!(r.status, 200, "{}", r.text());
    set_cookies(&r)
}

#[test]
fn domain_and_path_are_rewritten_and_levels_inherit_whole_lists() {
    let port = free_port();
    let back = free_port();
    let _b = Balancer::start_http(
        &format!(
            "proxy_cookie_domain backend.test .example.com;\n\
             proxy_cookie_path /app/ /;\n\
             {}\
             server {{ listen 127.0.0.1:{port}; server_name localhost;\n\
               location / {{ proxy_pass http://127.0.0.1:{back}; }}\n\
               location /own/ {{ proxy_pass http://127.0.0.1:{back};\n\
                 proxy_cookie_path ~*^/CASE/(.+)$ /$1/$server_name;\n\
                 proxy_cookie_path /x/ /y/; }}\n\
               location /off/ {{ proxy_pass http://127.0.0.1:{back};\n\
                 proxy_cookie_domain off; proxy_cookie_path off; }}\n\
               location /accel/ {{ proxy_pass http://127.0.0.1:{back}; proxy_cookie_path /app/ /moved/; }}\n\
               location = /final {{ proxy_cookie_path off; return 200 final; }} }}",
            backend(back)
        ),
        &[port, back],
    );
    // http's lines reach the location; a plain domain matches whole,
    // without regard to case, and a value's leading dot stays.
    assert_eq!(
        cookies(port, "/", 0),
        [
            "a=1; Domain=.example.com; Path=/x",
            "b=2; domain=example.com"
        ]
    );
    // Every Set-Cookie line is rewritten, not only the first.
    assert_eq!(cookies(port, "/", 5), ["j=8; Path=/", "k=9; Path=/"]);
    // A line no rule matches passes byte for byte.
    assert_eq!(
        cookies(port, "/", 1),
        ["c=3;  Domain=sub.backend.test ;Path=/other", "d"]
    );
    // The location's own proxy_cookie_path lines replace http's, in
    // order, while it still inherits http's proxy_cookie_domain.
    assert_eq!(
        cookies(port, "/own/", 2),
        [
            "e=5; Path=/p/localhost; Domain=example.com",
            "f=6; Path=/app/x/"
        ]
    );
    assert_eq!(cookies(port, "/own/", 3), ["g=7; Path=/y/z", "h"]);
    // `off` turns the inherited lines off.
    assert_eq!(
        cookies(port, "/off/", 4),
        ["a=1;Domain=backend.test;Path=/app/", "i"]
    );
    // Cookies carried over an X-Accel-Redirect are rewritten by the
    // proxying location's lines, as nginx's copy handler does.
    let r = get(port, "/accel/?k=5");
    assert_eq!(r.text(), "final");
    assert_eq!(set_cookies(&r), ["j=8; Path=/moved/"]);
}

#[test]
fn flags_are_set_and_removed_per_cookie_and_levels_inherit_whole_lists() {
    let port = free_port();
    let back = free_port();
    let _b = Balancer::start_http(
        &format!(
            "{}\
             server {{ listen 127.0.0.1:{port}; server_name localhost;\n\
               proxy_cookie_flags sid httponly samesite=strict;\n\
               proxy_cookie_flags ~^oth nohttponly secure;\n\
               location / {{ proxy_pass http://127.0.0.1:{back}; }}\n\
               location /var/ {{ proxy_pass http://127.0.0.1:{back};\n\
                 proxy_cookie_path /app/ /;\n\
                 proxy_cookie_flags $arg_name $arg_f; }}\n\
               location /off/ {{ proxy_pass http://127.0.0.1:{back}; proxy_cookie_flags off; }} }}",
            backend(back)
        ),
        &[port, back],
    );
    // The server's lines reach the location: a SameSite of another value
    // is replaced, a flag already there stays as written, a regex names
    // cookies without regard to case.
    assert_eq!(
        cookies(port, "/", 6),
        [
            "sid=1; secure; SameSite=Strict; HttpOnly",
            "Other=2; Secure"
        ]
    );
    // The location's own line replaces them; its cookie and flag come
    // from variables, and the path rule applies in the same pass.
    assert_eq!(
        cookies(port, "/var/", 7).first().map(String::as_str),
        Some("sid=1; Path=/")
    );
    let r = get(port, "/var/?k=7&name=SID&f=secure");
    assert_eq!(set_cookies(&r), ["sid=1; Path=/; Secure", "x"]);
    let r = get(port, "/var/?k=6&name=sid&f=nosamesite");
    assert_eq!(set_cookies(&r), ["sid=1; secure", "Other=2; HttpOnly"]);
    assert_eq!(
        cookies(port, "/off/", 6),
        ["sid=1;secure;SameSite=None", "Other=2; HttpOnly"]
    );
}

/// `-t`'s errors for `directives` in a location, and the file's name.
fn conf_error(directives: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "events {{}}\nhttp {{\n server {{\n  listen 127.0.0.1:1;\n  location / {{\n{directives}\n  }}\n }}\n}}\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["-t", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{directives}");
    let err = String::from_utf8_lossy(&out.stderr);
    (err.into_owned(), conf.display().to_string())
}

#[test]
fn bad_cookie_lines_fail_the_load_with_nginx_messages() {
    for (directives, expected, line) in [
        (
            "proxy_cookie_path /a/ /b/;\nproxy_cookie_path off;",
            "\"proxy_cookie_path\" directive is duplicate",
            7,
        ),
        (
            "proxy_cookie_domain off;\nproxy_cookie_domain a b;",
            "\"proxy_cookie_domain\" directive is duplicate",
            7,
        ),
        (
            "proxy_cookie_domain off;\nproxy_cookie_domain off;",
            "\"proxy_cookie_domain\" directive is duplicate",
            7,
        ),
        ("proxy_cookie_path /a/;", "invalid parameter \"/a/\"", 6),
        ("proxy_cookie_domain ~( x;", "pcre2_compile() failed", 6),
        (
            "proxy_cookie_flags a secure;\nproxy_cookie_flags off;",
            "\"proxy_cookie_flags\" directive is duplicate",
            7,
        ),
        (
            "proxy_cookie_flags secure;",
            "invalid parameter \"secure\"",
            6,
        ),
        (
            "proxy_cookie_flags a b c d e;",
            "invalid number of arguments in \"proxy_cookie_flags\" directive",
            6,
        ),
        (
            "proxy_cookie_path / /$nosuchvar;",
            "unknown \"nosuchvar\" variable",
            6,
        ),
    ] {
        let (err, file) = conf_error(directives);
        assert!(
            err.starts_with(&format!("switchyard: [emerg] {expected}")),
            "{directives}: {err}"
        );
        // (The regex crate's message spans lines; the place ends the error.)
        assert!(
            err.contains(&format!(" in {file}:{line}\n")),
            "{directives}: {err}"
        );
    }
}
