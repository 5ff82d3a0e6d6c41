//! The access log tells a variable that is not found (`-`) from one found
//! empty (nothing), as nginx's log module does: the same requests to
//! Debian's nginx and to switchyard, whose lines must be the same, over a
//! format of variables each request leaves found, found empty or not
//! found (`$args` with and without `?`, a missing or empty header, cookies
//! and arguments without `=`, `$upstream_*` before any upstream, a `set`
//! not run yet, a named capture not matched yet, `$pipe` of pipelined
//! requests...).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::nginx::Nginx;
use support::{free_port, wait_until, Balancer, Echo};

/// Variables whose state differs between the requests below, `|`-separated.
const FORMAT: &str = "$args|$query_string|$is_args|$arg_a|$arg_b|$arg_|\
$http_x_missing|$http_x_empty|$http_x_set|$cookie_a|$cookie_b|$cookie_c|\
$remote_user|$content_length|$content_type|$request_body|$request_body_file|\
$upstream_addr|$upstream_status|$upstream_http_x_served_by|$upstream_http_x_nope|\
$upstream_cookie_a|$sent_http_x_nope|$proxy_host|$https|$http2|$limit_req_status|\
$gzip_ratio|$uninit|$named|$pipe|$status|$request_method|$request_uri|$uri|\
$server_protocol|$request";

fn conf(port: u16, backend: u16) -> String {
    format!(
        "log_format found '{FORMAT}';\n\
         server {{ listen 127.0.0.1:{port}; access_log logs/access.log found;\n\
           location /a {{ return 200 \"ok\\n\"; }}\n\
           location /never {{ set $uninit x; return 204; }}\n\
           location ~ ^/cap/(?<named>.*)$ {{ return 204; }}\n\
           location /p {{ proxy_pass http://127.0.0.1:{backend}; }}\n\
         }}"
    )
}

/// Each item is written whole on a fresh connection, read to its close.
const REQUESTS: &[&[u8]] = &[
    // No `?`: $args not found, $is_args empty.
    b"GET /a HTTP/1.0\r\n\r\n",
    // An empty `?`: $args found empty; an empty header; cookies and an
    // argument without `=`.
    b"GET /a? HTTP/1.0\r\nX-Empty:\r\nCookie: a=; b\r\n\r\n",
    b"GET /a?a&b=1&A=2 HTTP/1.0\r\nX-Set: 1\r\nCookie: b ; A = 1 ;c=3\r\n\r\n",
    // Basic credentials without a user name: $remote_user not found.
    b"GET /a HTTP/1.0\r\nAuthorization: Basic OnB3\r\n\r\n",
    b"GET /a HTTP/1.0\r\nAuthorization: Basic dTpw\r\nContent-Type:\r\n\r\n",
    // Two pipelined requests: the second's $pipe is `p`.
    b"GET /a?x HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    // The named capture found once its location matched.
    b"GET /cap/x HTTP/1.0\r\n\r\n",
    // Proxied: $upstream_* and $proxy_host found.
    b"GET /p HTTP/1.0\r\n\r\n",
    b"POST /a HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi",
    // A path that does not normalize: a 400 with $uri found empty and
    // $request_uri and $args not found.
    b"GET /../x?a=1 HTTP/1.0\r\n\r\n",
];

fn send(port: u16, request: &[u8]) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    assert!(
        all.starts_with(b"HTTP/1."),
        "{}",
        String::from_utf8_lossy(&all)
    );
}

#[test]
fn found_empty_and_not_found_are_logged_as_nginx_logs_them() {
    let backend_port = free_port();
    let _backend = Echo::start("e", &format!("127.0.0.1:{backend_port}"));
    let nginx_port = free_port();
    let nginx = Nginx::start(&conf(nginx_port, backend_port), nginx_port);
    let ours_port = free_port();
    let ours = Balancer::start_http(&conf(ours_port, backend_port), &[ours_port]);
    // The pipelined item is two lines.
    let lines = REQUESTS.len() + 1;
    for request in REQUESTS {
        send(nginx_port, request);
        send(ours_port, request);
    }
    wait_until(Duration::from_secs(5), "every access line", || {
        nginx.access_lines().len() == lines && ours.access_lines().len() == lines
    });
    let (expected, got) = (nginx.access_lines(), ours.access_lines());
    for (e, g) in expected.iter().zip(&got) {
        assert_eq!(g, e);
    }
    // The oracle does show each state (the comparison is not vacuous).
    let field = |line: usize, var: &str| {
        let at = FORMAT.split('|').position(|v| v == var).unwrap();
        expected[line].split('|').nth(at).unwrap().to_string()
    };
    assert_eq!(field(0, "$args"), "-");
    assert_eq!(field(0, "$is_args"), "");
    assert_eq!(field(1, "$http_x_empty"), "");
    assert_eq!(field(1, "$http_x_missing"), "-");
    assert_eq!(field(1, "$cookie_a"), "");
    assert_eq!(field(0, "$uninit"), "");
    assert_eq!(field(0, "$named"), "-");
    assert_eq!(field(0, "$upstream_addr"), "-");
    assert_eq!(field(0, "$https"), "");
    assert_eq!(field(6, "$pipe"), "p");
    assert_eq!(field(5, "$pipe"), ".");
    assert_eq!(field(lines - 1, "$uri"), "");
    assert_eq!(field(lines - 1, "$request_uri"), "-");
}
