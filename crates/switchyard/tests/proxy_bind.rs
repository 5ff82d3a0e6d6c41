//! http's `proxy_bind`, side by side with Debian's nginx: the upstream sees
//! the bound source address (inherited, per location, `off`, from
//! variables, with a port), an address that is not local fails the request
//! with 500 and nginx's `bind() failed` line, and a value that is not an
//! address is logged and ignored.

mod support;

use std::time::Duration;

use support::nginx::Nginx;
use support::{free_port, get, wait_until, Balancer};

fn conf(front: u16, back: u16) -> String {
    format!(
        "server {{ listen 127.0.0.1:{back}; location / {{ return 200 \"$remote_addr\"; }} }}\n\
         server {{ listen 127.0.0.1:{front};\n\
           proxy_bind 127.0.0.2;\n\
           location /inherit {{ proxy_pass http://127.0.0.1:{back}; }}\n\
           location /here {{ proxy_bind 127.0.0.3; proxy_pass http://127.0.0.1:{back}; }}\n\
           location /off {{ proxy_bind off; proxy_pass http://127.0.0.1:{back}; }}\n\
           location /var {{ proxy_bind $arg_b; proxy_pass http://127.0.0.1:{back}; }}\n\
           location /port {{ proxy_bind 127.0.0.4:$arg_p; proxy_pass http://127.0.0.1:{back}; }}\n\
           location /far {{ proxy_bind 192.0.2.1; proxy_pass http://127.0.0.1:{back}; }}\n\
         }}\n"
    )
}

#[test]
fn the_upstream_sees_the_bound_address_as_with_nginx() {
    let (nf, nb) = (free_port(), free_port());
    let nginx = Nginx::start(&conf(nf, nb), nf);
    let (sf, sb) = (free_port(), free_port());
    let switchyard = Balancer::start_http(&conf(sf, sb), &[sf, sb]);
    let port = free_port();
    let paths = [
        "/inherit".to_string(),
        "/here".to_string(),
        "/off".to_string(),
        "/var?b=127.0.0.5".to_string(),
        "/var".to_string(),
        "/var?b=junk".to_string(),
        format!("/port?p={port}"),
        "/far".to_string(),
    ];
    for path in &paths {
        // The bodies of error pages differ in the product's name.
        let answer = |port: u16| {
            let r = get(port, path);
            let text = if r.status == 200 {
                r.text()
            } else {
                String::new()
            };
            (r.status, text)
        };
        assert_eq!(answer(sf), answer(nf), "{path}");
    }
    assert_eq!(get(sf, "/inherit").text(), "127.0.0.2");
    assert_eq!(get(sf, "/here").text(), "127.0.0.3");
    assert_eq!(get(sf, "/off").text(), "127.0.0.1");
    assert_eq!(get(sf, "/var?b=127.0.0.5").text(), "127.0.0.5");
    assert_eq!(get(sf, "/far").status, 500);
    wait_until(Duration::from_secs(5), "the bind and address lines", || {
        let log = switchyard.error_log_text();
        log.contains("[crit]")
            && log.contains(
                "bind(192.0.2.1) failed (99: Cannot assign requested address) while connecting to upstream",
            )
            && log.contains("invalid local address \"junk\"")
    });
    drop(nginx);
}

#[test]
fn transparent_is_refused_as_not_supported_yet() {
    support::check_conf(
        "events {}\nhttp {\n server {\n  listen 127.0.0.1:1;\n  proxy_bind 127.0.0.2 transparent;\n }\n}\n",
    )
    .assert_error("\"proxy_bind ... transparent\" is not supported yet", 5);
}
