//! `map { hostnames; ... }` side by side with Debian's nginx: exact names,
//! leading and trailing wildcards, `.example.com`, the dropped trailing dot
//! and the regexes after them give the same values, and bad masks fail `-t`
//! with nginx's words.

mod support;

use support::nginx::{nginx_bin, Nginx};
use support::{free_port, get, Balancer};

const MAP: &str = r#"
map $arg_h $h {
    hostnames;
    default              none;
    example.com          exact;
    *.example.com        head;
    *.a.b.example.com    deep-head;
    .dot.example.com     dot;
    example.*            tail;
    www.example.*        www-tail;
    *.org                org;
    ~^re\.(?<rest>.+)$   regex-$rest;
}
map $arg_h $plain {
    default              none;
    *.example.com        literal;
}
"#;

#[test]
fn hostname_masks_match_as_in_nginx() {
    let conf = |port: u16| {
        format!(
            "{MAP}\nserver {{ listen 127.0.0.1:{port}; location / {{ return 200 \"$h $plain\"; }} }}\n"
        )
    };
    let nginx_port = free_port();
    let nginx = Nginx::start(&conf(nginx_port), nginx_port);
    let port = free_port();
    let switchyard = Balancer::start_http(&conf(port), &[port]);
    let names = [
        "example.com",
        "EXAMPLE.com.",
        "x.example.com",
        "x.example.com.",
        "q.b.example.com",
        "q.a.b.example.com",
        "a.b.example.com",
        "dot.example.com",
        "w.dot.example.com",
        "example.net",
        "www.example.co.uk",
        "www.example",
        "example",
        "foo.org",
        "org",
        "re.example.com",
        "re.thing",
        "*.example.com",
        "",
        ".",
    ];
    let mut differences = Vec::new();
    for name in names {
        let path = format!("/?h={name}");
        let want = get(nginx_port, &path).text();
        let got = get(port, &path).text();
        if want != got {
            differences.push(format!("{name:?}: nginx {want:?}, switchyard {got:?}"));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    assert_eq!(get(port, "/?h=q.b.example.com").text(), "head none");
    assert_eq!(get(port, "/?h=www.example.co.uk").text(), "www-tail none");
    assert_eq!(get(port, "/?h=*.example.com").text(), "head literal");
    drop((nginx, switchyard));
}

/// The `[emerg]` line of `-t` on a map block, without the path.
fn emerg(bin: &std::path::Path, block: &str) -> String {
    support::check_conf_with(bin, &format!("events {{}}\nhttp {{\n{block}\n}}\n"))
        .problem_lines()
        .into_iter()
        .find(|l| l.starts_with("[emerg] "))
        .unwrap_or_default()
}

#[test]
fn bad_masks_fail_as_in_nginx() {
    let nginx = nginx_bin();
    let switchyard = std::path::PathBuf::from(support::BIN);
    for block in [
        "map $arg_h $h { hostnames; www.*.com x; }",
        "map $arg_h $h { hostnames; *.*.com x; }",
        "map $arg_h $h { hostnames; a..com x; }",
        "map $arg_h $h { hostnames; example.com a; .example.com b; }",
        "map $arg_h $h { hostnames; *.example.com a; .Example.com b; }",
        "map $arg_h $h { hostnames; www.* a; WWW.* b; }",
    ] {
        let want = emerg(&nginx, block);
        assert!(!want.is_empty(), "nginx accepted {block}");
        assert_eq!(emerg(&switchyard, block), want, "{block}");
    }
}
