//! Core-module directives of the configuration-coverage work:
//! `merge_slashes` and `server_tokens build`, on a real process.

mod support;

use support::{free_port, get, Balancer};

#[test]
fn merge_slashes_off_keeps_double_slashes() {
    let (on, off) = (free_port(), free_port());
    let conf = format!(
        "server {{
            listen 127.0.0.1:{on};
            location / {{ add_header X-URI \"[$uri]\"; return 204; }}
            location /a//b {{ return 200 \"kept\\n\"; }}
        }}
        server {{
            listen 127.0.0.1:{off};
            merge_slashes off;
            server_tokens build;
            location / {{ add_header X-URI \"[$uri]\"; return 204; }}
            location /a//b {{ return 200 \"kept\\n\"; }}
        }}"
    );
    let _b = Balancer::start_http(&conf, &[on, off]);
    assert_eq!(get(on, "/foo///../bar").header("x-uri"), Some("[/bar]"));
    assert_eq!(get(off, "/foo//../bar").header("x-uri"), Some("[/foo/bar]"));
    assert_eq!(
        get(off, "/foo///../bar").header("x-uri"),
        Some("[/foo//bar]")
    );
    assert_eq!(get(off, "/a//b").text(), "kept\n", "matched as written");
    assert_eq!(get(on, "/a//b").status, 204, "merged to /a/b");
    let server = get(off, "/").header("server").map(str::to_string);
    assert_eq!(server, get(on, "/").header("server").map(str::to_string));
    assert!(
        server.unwrap_or_default().contains('/'),
        "build shows the version"
    );
}

#[test]
fn expires_sets_expires_and_cache_control() {
    let port = free_port();
    let conf = format!(
        "server {{
            listen 127.0.0.1:{port};
            location /hour {{ expires 1h; return 200 \"x\\n\"; }}
            location /epoch {{ expires epoch; return 200 \"x\\n\"; }}
            location /max {{ expires max; return 200 \"x\\n\"; }}
            location /past {{ expires -1; return 200 \"x\\n\"; }}
            location /missing {{ expires 1h; return 404; }}
            location /multi {{
                add_header Cache-Control private;
                add_header Cache-Control must-revalidate;
                return 200 \"x\\n\";
            }}
            location /over {{ expires epoch; proxy_pass http://127.0.0.1:{port}/multi; }}
        }}"
    );
    let _b = Balancer::start_http(&conf, &[port]);
    let r = get(port, "/hour");
    assert_eq!(r.header("cache-control"), Some("max-age=3600"));
    assert!(r.header("expires").is_some_and(|e| e.ends_with(" GMT")));
    let r = get(port, "/epoch");
    assert_eq!(r.header("expires"), Some("Thu, 01 Jan 1970 00:00:01 GMT"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    let r = get(port, "/max");
    assert_eq!(r.header("expires"), Some("Thu, 31 Dec 2037 23:55:55 GMT"));
    assert_eq!(r.header("cache-control"), Some("max-age=315360000"));
    assert_eq!(get(port, "/past").header("cache-control"), Some("no-cache"));
    let r = get(port, "/missing");
    assert!(r.header("expires").is_none() && r.header("cache-control").is_none());
    // The upstream's two Cache-Control lines become expires' one.
    let r = get(port, "/over");
    let lines: Vec<_> = r
        .raw_headers
        .iter()
        .filter(|h| h.to_ascii_lowercase().starts_with("cache-control:"))
        .collect();
    assert_eq!(lines.len(), 1, "{:?}", r.raw_headers);
    assert_eq!(r.header("cache-control"), Some("no-cache"));
}
