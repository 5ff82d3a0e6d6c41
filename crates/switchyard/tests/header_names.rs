//! `ignore_invalid_headers` and `underscores_in_headers`: which request
//! header names reach the handler (and the upstream), as nginx's
//! `ngx_http_parse_header_line` judges them.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::{free_port, raw, wait_until, Balancer, Echo};

/// The names of the request headers the echo backend got.
fn names_seen(addr: SocketAddr) -> Vec<String> {
    let r = raw(
        addr,
        b"GET / HTTP/1.0\r\nx_foo: 1\r\nx.foo: 2\r\nX-Ok: 3\r\n_lead: 4\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let mut names: Vec<String> = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|pair| pair[0].as_str().map(str::to_ascii_lowercase))
        .filter(|n| ["x_foo", "x.foo", "x-ok", "_lead"].contains(&n.as_str()))
        .collect();
    names.sort();
    names
}

#[test]
fn invalid_names_are_ignored_by_default_and_passed_when_asked() {
    let echo = Echo::start("e", "127.0.0.1:0");
    let (on, underscores, off) = (free_port(), free_port(), free_port());
    let b = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{on}; location / {{ proxy_pass http://{e}; }} }}\n\
             server {{ listen 127.0.0.1:{underscores}; underscores_in_headers on;\n\
               location / {{ proxy_pass http://{e}; }} }}\n\
             server {{ listen 127.0.0.1:{off}; ignore_invalid_headers off;\n\
               location / {{ proxy_pass http://{e}; }} }}",
            e = echo.addr
        ),
        &[on, underscores, off],
    );
    let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(names_seen(local(on)), ["x-ok"]);
    // nginx logs each ignored line at info, quoted from its name.
    wait_until(Duration::from_secs(5), "the info line", || {
        b.error_log_text()
            .contains("client sent invalid header line: \"x.foo: 2\"")
    });
    assert!(b
        .error_log_text()
        .contains("client sent invalid header line: \"x_foo: 1\""));
    assert_eq!(names_seen(local(underscores)), ["_lead", "x-ok", "x_foo"]);
    assert_eq!(names_seen(local(off)), ["_lead", "x-ok", "x.foo", "x_foo"]);
}

#[test]
fn a_header_variable_sees_a_name_with_underscores_when_it_passes() {
    let (on, underscores) = (free_port(), free_port());
    let _b = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{on}; location / {{ return 200 \"[$http_x_foo]\"; }} }}\n\
             server {{ listen 127.0.0.1:{underscores}; underscores_in_headers on;\n\
               location / {{ return 200 \"[$http_x_foo]\"; }} }}"
        ),
        &[on, underscores],
    );
    let ask = |port| {
        raw(
            SocketAddr::from(([127, 0, 0, 1], port)),
            b"GET / HTTP/1.0\r\nx_foo: bar\r\n\r\n",
        )
        .unwrap()
        .text()
    };
    assert_eq!(ask(on), "[]");
    assert_eq!(ask(underscores), "[bar]");
}
