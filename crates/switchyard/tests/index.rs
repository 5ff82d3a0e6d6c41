//! `index` with several names and variables, `log_not_found`, and
//! `split_clients` in http choosing among them, on a real process.

mod support;

use support::{free_port, get, Balancer};

#[test]
fn several_names_variables_and_log_not_found() {
    let port = free_port();
    let conf = format!(
        "split_clients $arg_k $variant {{
            50% one;
            *   two;
        }}
        server {{
            listen 127.0.0.1:{port};
            server_name site;
            root html;
            location /many/ {{ alias html/; index missing.html second.html; }}
            location /var/ {{ alias html/; index $server_name.html; }}
            location /split/ {{ alias html/; index $variant.html; }}
            location /quiet/ {{ log_not_found off; }}
        }}"
    );
    let b = Balancer::start_http(&conf, &[port]);
    let html = b.dir.path().join("html");
    std::fs::create_dir_all(&html).unwrap();
    for (name, text) in [
        ("second.html", "second\n"),
        ("site.html", "site\n"),
        ("one.html", "one\n"),
        ("two.html", "two\n"),
    ] {
        std::fs::write(html.join(name), text).unwrap();
    }
    assert_eq!(
        get(port, "/many/").text(),
        "second\n",
        "the first that exists"
    );
    assert_eq!(get(port, "/var/").text(), "site\n");
    // split_clients: the same key always picks the same part, and both
    // parts are picked over a few keys.
    let mut seen = std::collections::BTreeSet::new();
    for k in 0..20 {
        let first = get(port, &format!("/split/?k={k}")).text();
        assert_eq!(get(port, &format!("/split/?k={k}")).text(), first);
        seen.insert(first);
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(get(port, "/nothing.html").status, 404);
    assert_eq!(get(port, "/quiet/nothing.html").status, 404);
    let log = b.error_log_text();
    assert!(
        log.contains("html/nothing.html\" failed (2: No such file or directory)"),
        "{log}"
    );
    assert!(!log.contains("quiet/nothing.html"), "{log}");
}
