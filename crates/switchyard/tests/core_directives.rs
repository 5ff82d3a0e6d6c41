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
