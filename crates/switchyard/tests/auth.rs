//! auth_basic and satisfy: 401 with the challenge, the password formats,
//! nginx's log lines, `satisfy any` with allow/deny, on a real process.

mod support;

use std::net::SocketAddr;

use support::{free_port, raw, Balancer};

fn get_as(port: u16, path: &str, auth: Option<&str>) -> support::Response {
    use base64::Engine;
    let header = auth
        .map(|a| {
            format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(a)
            )
        })
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n{header}\r\n");
    raw(SocketAddr::from(([127, 0, 0, 1], port)), request.as_bytes()).unwrap()
}

fn start() -> (Balancer, u16) {
    let port = free_port();
    let conf = format!(
        "log_format user $remote_user;
        server {{
            listen 127.0.0.1:{port};
            root html;
            access_log logs/user.log user;
            location / {{
                auth_basic \"Private Area\";
                auth_basic_user_file htpasswd;
            }}
            location /open/ {{ auth_basic off; alias html/; }}
            location /page/ {{
                alias html/;
                auth_basic \"page\";
                auth_basic_user_file htpasswd;
                error_page 401 /denied.html;
            }}
            location = /denied.html {{ auth_basic off; }}
            location /missing/ {{ alias html/; auth_basic on; auth_basic_user_file nowhere; }}
            location /any/ {{
                alias html/;
                satisfy any;
                deny all;
                auth_basic \"any\";
                auth_basic_user_file htpasswd;
            }}
            location /anyallow/ {{
                alias html/;
                satisfy any;
                allow 127.0.0.1;
                auth_basic \"any\";
                auth_basic_user_file htpasswd;
            }}
            location /all/ {{
                alias html/;
                allow 127.0.0.1;
                auth_basic \"all\";
                auth_basic_user_file htpasswd;
            }}
        }}"
    );
    let b = Balancer::start_http(&conf, &[port]);
    let html = b.dir.path().join("html");
    std::fs::create_dir_all(&html).unwrap();
    std::fs::write(html.join("index.html"), "secret\n").unwrap();
    std::fs::write(html.join("denied.html"), "denied page\n").unwrap();
    std::fs::write(
        b.dir.path().join("htpasswd"),
        "# users\n\
         plain:{PLAIN}p1\n\
         sha:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n\
         apr:$apr1$r31.....$ARC3pREO82RIm0aQ2zszC0\r\n\
         md5:$1$5pZSV9va$azfrPr6af3Fc7dLblQXVa0:comment\n\
         des:aZGJuE6EXrjEE\n",
    )
    .unwrap();
    (b, port)
}

#[test]
fn basic_challenge_formats_and_log_lines() {
    let (b, port) = start();
    let r = get_as(port, "/", None);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"Private Area\"")
    );
    assert!(r.text().contains("401 Authorization Required"));
    for (user, pass) in [
        ("plain", "p1"),
        ("sha", "password"),
        ("apr", "password"),
        ("md5", "password"),
        ("des", "test"),
    ] {
        let r = get_as(port, "/", Some(&format!("{user}:{pass}")));
        assert_eq!(r.status, 200, "{user}");
        assert_eq!(r.text(), "secret\n");
        assert!(r.header("www-authenticate").is_none());
        let wrong = get_as(port, "/", Some(&format!("{user}:nope")));
        assert_eq!(wrong.status, 401, "{user} with a wrong password");
    }
    assert_eq!(get_as(port, "/", Some("nobody:x")).status, 401);
    assert_eq!(get_as(port, "/open/", None).status, 200);
    let log = b.error_log_text();
    assert!(
        log.contains("user \"plain\": password mismatch, client: 127.0.0.1"),
        "{log}"
    );
    assert!(log.contains("user \"nobody\" was not found in \""), "{log}");
    assert!(log.contains("htpasswd\", client: 127.0.0.1"), "{log}");
    assert!(
        log.contains("[info]")
            && log.contains("no user/password was provided for basic authentication"),
        "{log}"
    );
    let users = std::fs::read_to_string(b.dir.path().join("logs/user.log")).unwrap();
    assert!(users.lines().any(|l| l == "plain"), "$remote_user: {users}");
    assert!(
        users.lines().any(|l| l == "nobody"),
        "checked or not: {users}"
    );
}

#[test]
fn error_page_keeps_the_challenge_and_a_missing_file_is_403() {
    let (b, port) = start();
    let r = get_as(port, "/page/", None);
    assert_eq!(r.status, 401);
    assert_eq!(r.text(), "denied page\n");
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"page\""));
    let r = get_as(port, "/missing/", Some("plain:p1"));
    assert_eq!(r.status, 403);
    let log = b.error_log_text();
    assert!(
        log.contains("nowhere\" failed (2: No such file or directory)"),
        "{log}"
    );
}

#[test]
fn satisfy_any_and_all() {
    let (_b, port) = start();
    // any: the denial alone does not refuse; the password is enough.
    let r = get_as(port, "/any/", None);
    assert_eq!(r.status, 401, "401 wins over the 403");
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"any\""));
    assert_eq!(get_as(port, "/any/", Some("plain:p1")).status, 200);
    // any: the address alone is enough, no challenge left on the answer.
    let r = get_as(port, "/anyallow/", None);
    assert_eq!(r.status, 200);
    assert!(r.header("www-authenticate").is_none());
    // all: the address is allowed, the password is still needed.
    assert_eq!(get_as(port, "/all/", None).status, 401);
    assert_eq!(get_as(port, "/all/", Some("plain:p1")).status, 200);
}

/// A backend answering the auth subrequests: 204 with a user name for
/// `Authorization: Basic` of `good:pw` (`Z29vZDpwdw==`), 401 with two
/// challenges without one, 403 for anything else.
fn auth_backend() -> (Balancer, u16) {
    let port = free_port();
    let conf = format!(
        "server {{
            listen 127.0.0.1:{port};
            location / {{
                if ($http_authorization = \"Basic Z29vZDpwdw==\") {{
                    add_header X-User \"good-$request_uri\" always;
                    return 204;
                }}
                if ($http_authorization) {{
                    return 403;
                }}
                add_header WWW-Authenticate \"Basic realm=one\" always;
                add_header WWW-Authenticate \"Bearer\" always;
                return 401;
            }}
        }}"
    );
    (Balancer::start_http(&conf, &[port]), port)
}

#[test]
fn auth_request_decides_by_the_subrequest() {
    let (_backend, up) = auth_backend();
    let port = free_port();
    let conf = format!(
        "server {{
            listen 127.0.0.1:{port};
            root html;
            location / {{
                auth_request /auth;
                auth_request_set $user $upstream_http_x_user;
                add_header X-Seen \"[$user]\" always;
            }}
            location = /auth {{
                internal;
                proxy_pass http://127.0.0.1:{up};
                proxy_pass_request_body off;
            }}
            location /odd/ {{ alias html/; auth_request /teapot; }}
            location = /teapot {{ return 418; }}
            location /ok/ {{ alias html/; auth_request /yes; }}
            location = /yes {{ return 200 \"ignored body\"; }}
            location /off/ {{ alias html/; auth_request off; }}
        }}"
    );
    let b = Balancer::start_http(&conf, &[port]);
    let html = b.dir.path().join("html");
    std::fs::create_dir_all(&html).unwrap();
    std::fs::write(html.join("index.html"), "content\n").unwrap();

    let r = get_as(port, "/index.html", Some("good:pw"));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "content\n");
    // Set from the subrequest's upstream, which saw the client's URI.
    assert_eq!(r.header("x-seen"), Some("[good-/auth]"));

    let r = get_as(port, "/index.html", None);
    assert_eq!(r.status, 401);
    let challenges: Vec<_> = r
        .raw_headers
        .iter()
        .filter(|h| h.to_ascii_lowercase().starts_with("www-authenticate:"))
        .collect();
    assert_eq!(challenges.len(), 2, "{:?}", r.raw_headers);
    assert_eq!(get_as(port, "/index.html", Some("bad:pw")).status, 403);

    let r = get_as(port, "/odd/", None);
    assert_eq!(r.status, 500);
    assert!(b
        .error_log_text()
        .contains("auth request unexpected status: 418, client: 127.0.0.1"));
    let r = get_as(port, "/ok/", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "content\n", "the subrequest's body is not sent");
    assert_eq!(get_as(port, "/off/", None).status, 200);
}
