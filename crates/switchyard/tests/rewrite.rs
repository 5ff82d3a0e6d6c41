//! The rewrite module's `rewrite` and `rewrite_log`, named locations and
//! `try_files`, with nginx's semantics: redirects and their `Location`,
//! arguments kept or dropped, `last` searching the location again, `break`
//! staying, the cycle limit, files tried under `root` / `alias`.

mod support;

use support::{free_port, get, write_file, Balancer};

/// Starts a server on a fresh port with `body` inside `server { }`; `DIR`
/// in `body` names a document root with a few files in it.
fn start(body: &str) -> (Balancer, u16, tempfile::TempDir) {
    let docs = tempfile::tempdir().expect("tempdir");
    write_file(docs.path(), "file.txt", "FILE");
    write_file(docs.path(), "found.html", "FOUND");
    write_file(docs.path(), "sub/inner.html", "INNER");
    let port = free_port();
    let dir = docs.path().display().to_string();
    let conf = format!(
        "server {{\n listen 127.0.0.1:{port};\n server_name localhost;\n{}\n}}\n",
        body.replace("DIR", &dir)
    );
    let balancer = Balancer::start_http(&conf, &[port]);
    (balancer, port, docs)
}

#[test]
fn redirects_build_the_location_as_nginx() {
    let (_b, port, _d) = start(
        r#"
        location /perm/ { rewrite ^/perm/(.*)$ /new/$1 permanent; }
        location /temp { rewrite ^ /elsewhere redirect; }
        location /ext { rewrite ^ http://example.com/?c=d redirect; }
        location /drop { rewrite ^ http://example.com/x? ; }
        "#,
    );
    let r = get(port, "/perm/a/b?x=1");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(format!("http://localhost:{port}/new/a/b?x=1").as_str())
    );
    let r = get(port, "/temp");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some(format!("http://localhost:{port}/elsewhere").as_str())
    );
    // A replacement with arguments appends the request's with '&'.
    let r = get(port, "/ext?a=b");
    assert_eq!(r.header("location"), Some("http://example.com/?c=d&a=b"));
    // A URL replacement redirects without a flag; its trailing '?' drops
    // the request's arguments.
    let r = get(port, "/drop?a=b");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://example.com/x"));
}

#[test]
fn last_searches_the_location_again_and_break_stays() {
    let (_b, port, _d) = start(
        r#"
        location /a { rewrite ^/a(.*)$ /b$1?from=a last; return 200 "not reached"; }
        location /b { return 200 "b uri=$uri args=$args"; }
        location /plain { rewrite ^ /b/plain; set $x 1; return 200 "plain $x"; }
        location /stay { rewrite ^ /file.txt break; root DIR; }
        location /args { rewrite ^ /b/args?; }
        "#,
    );
    let r = get(port, "/a/x?q=1");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "b uri=/b/x args=from=a&q=1");
    // Without a flag the script goes on; its `return` answers first.
    assert_eq!(get(port, "/plain").text(), "plain 1");
    // `break`: the file of the new URI under this location's root.
    let r = get(port, "/stay/anything");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "FILE");
    assert_eq!(get(port, "/args?q=1").text(), "b uri=/b/args args=");
}

#[test]
fn captures_in_arguments_are_escaped_and_named_captures_are_variables() {
    let (_b, port, _d) = start(
        r#"
        location /capture { rewrite ^(.*)$ $1?c=$1; return 200 "uri=$uri args=$args"; }
        location /item/ { rewrite ^/item/(?<id>[0-9]+)$ /show/$id last; }
        location /show/ { return 200 "show $uri"; }
        location ~ ^/re/(\w+)$ { return 200 "re $1"; }
        "#,
    );
    // $uri is decoded; a capture placed in the arguments is escaped again.
    let r = get(port, "/capture/%25?a=b");
    assert_eq!(r.text(), "uri=/capture/% args=c=/capture/%25&a=b");
    assert_eq!(get(port, "/item/42").text(), "show /show/42");
    assert_eq!(get(port, "/re/word").text(), "re word");
}

#[test]
fn a_rewrite_cycle_ends_in_500_with_nginx_line() {
    let (b, port, _d) = start(
        r#"
        location /loop { rewrite ^ /loop last; }
        "#,
    );
    assert_eq!(get(port, "/loop").status, 500);
    support::wait_until(std::time::Duration::from_secs(5), "the cycle line", || {
        b.error_log_text()
            .contains("rewrite or internal redirection cycle while processing \"/loop\"")
    });
}

#[test]
fn server_rewrites_run_before_the_location_is_chosen() {
    let (_b, port, _d) = start(
        r#"
        rewrite ^/old(/.*)$ $1;
        location /new { return 200 "new $uri"; }
        "#,
    );
    assert_eq!(get(port, "/old/new/x").text(), "new /new/x");
}

#[test]
fn rewrite_log_writes_nginx_notice_lines() {
    let (b, port, _d) = start(
        r#"
        rewrite_log on;
        location /logged { rewrite ^/logged(.*)$ /dest$1 break; rewrite ^/nomatch /x; return 200; }
        location /dest { return 200; }
        "#,
    );
    get(port, "/logged/1?a=b");
    support::wait_until(
        std::time::Duration::from_secs(5),
        "the rewrite_log lines",
        || {
            let log = b.error_log_text();
            log.contains("[notice]")
                && log.contains("\"^/logged(.*)$\" matches \"/logged/1\"")
                && log.contains("rewritten data: \"/dest/1\", args: \"a=b\"")
        },
    );
}

#[test]
fn try_files_serves_the_first_name_that_exists() {
    let (_b, port, _d) = start(
        r#"
        root DIR;
        location / { try_files $uri $uri/ /fallback; }
        location /fallback { return 200 "fallback uri=$uri args=$args"; }
        location /code/ { try_files /missing =403; }
        location /dir/ { try_files /sub/ =404; }
        location /named/ { try_files /missing @back; }
        location @back { return 200 "named uri=$uri"; }
        location /alias/ { alias DIR/sub/; try_files $uri =404; }
        "#,
    );
    assert_eq!(get(port, "/file.txt").text(), "FILE");
    // None exists: the last name, without the request's arguments.
    let r = get(port, "/nothing?a=b");
    assert_eq!(r.text(), "fallback uri=/fallback args=");
    assert_eq!(get(port, "/code/x").status, 403);
    // A directory: the URI names it without its slash, and nginx adds it.
    let r = get(port, "/dir/");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(format!("http://localhost:{port}/sub/").as_str())
    );
    assert_eq!(get(port, "/named/x").text(), "named uri=/named/x");
    assert_eq!(get(port, "/alias/inner.html").text(), "INNER");
    assert_eq!(get(port, "/alias/none.html").status, 404);
}

#[test]
fn named_locations_are_reached_only_internally() {
    let (_b, port, _d) = start(
        r#"
        location /err { error_page 404 = @handler; return 404; }
        location @handler { return 200 "handled $uri"; }
        "#,
    );
    assert_eq!(get(port, "/err").text(), "handled /err");
    assert_eq!(get(port, "/@handler").status, 404);
}

#[test]
fn config_errors_name_the_line() {
    for (body, message) in [
        (
            "location / { rewrite ^ /x bogus; }",
            "invalid parameter \"bogus\"",
        ),
        (
            "location / { try_files $uri =abc; }",
            "invalid code \"=abc\"",
        ),
        (
            "location / { location @n { } }",
            "named location \"@n\" can be on the server level only",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let conf = write_file(
            dir.path(),
            "nginx.conf",
            &format!("events {{}}\nhttp {{\nserver {{\nlisten 127.0.0.1:1;\n{body}\n}}\n}}\n"),
        );
        let out = std::process::Command::new(support::BIN)
            .arg("-t")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{body}: {err}");
        assert!(
            err.contains(&format!("{message} in {}:5", conf.display())),
            "{body}: {err}"
        );
    }
}

#[test]
fn a_proxied_location_redirects_its_name_without_the_slash() {
    let back = free_port();
    let (_b, port, _d) = start(&format!(
        r#"
        location /app/ {{ proxy_pass http://127.0.0.1:{back}; }}
        location /app-x {{ return 200 "app-x"; }}
        location ~ ^/app$ {{ return 200 "regex not reached"; }}
        location "/dir sp/" {{ return 200; }}
        "#
    ));
    // nginx answers before regexes, with the location's name and the
    // request's arguments.
    let r = get(port, "/app?a=b");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(format!("http://localhost:{port}/app/?a=b").as_str())
    );
    assert_eq!(get(port, "/app-x").text(), "app-x");
    // A location without proxy_pass does not redirect.
    assert_eq!(get(port, "/dir%20sp").status, 404);
}

#[test]
fn a_directory_redirect_escapes_the_uri() {
    let (_b, port, d) = start("root DIR;");
    std::fs::create_dir_all(d.path().join("a dir")).unwrap();
    let r = get(port, "/a%20dir");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(format!("http://localhost:{port}/a%20dir/").as_str())
    );
}

/// `""` is an operand of `if`, not nothing: `($h = "")` compares with the
/// empty string (only a lone `(` or `)` is dropped, as nginx does).
#[test]
fn an_empty_string_is_a_condition_operand() {
    let (_b, port, _d) = start(
        r#"
        location / {
            if ($arg_key = "") { return 401; }
            if ( $arg_key != "" ) { return 200 "key=$arg_key"; }
        }
        "#,
    );
    assert_eq!(get(port, "/").status, 401);
    let r = get(port, "/?key=abc");
    assert_eq!((r.status, r.text().as_str()), (200, "key=abc"));
}

/// Location `if`s and `proxy_pass`, as nginx stacks them: the last
/// matching `if` gives the configuration; one with a `proxy_pass` of its
/// own proxies; a later matching one without, in a location without one
/// either, leaves nginx's proxy with no upstream: 500 and an error line.
#[test]
fn a_proxying_if_then_one_without_answers_500() {
    let (port, second) = (free_port(), free_port());
    let conf = format!(
        "server {{ listen 127.0.0.1:{second}; return 200 \"second $request_uri\"; }}
        server {{
            listen 127.0.0.1:{port};
            location /one {{
                set $t 1;
                if ($t) {{ proxy_pass http://127.0.0.1:{second}; }}
            }}
            location /two {{
                set $t 1;
                if ($t) {{ proxy_pass http://127.0.0.1:{second}; }}
                if ($t) {{ }}
            }}
            location /outer {{
                proxy_pass http://127.0.0.1:{second};
                set $t 1;
                if ($t) {{ proxy_pass http://127.0.0.1:{second}; }}
                if ($t) {{ }}
            }}
        }}"
    );
    let balancer = Balancer::start_http(&conf, &[port, second]);
    assert_eq!(get(port, "/one").text(), "second /one");
    assert_eq!(get(port, "/two").status, 500);
    // The location's own proxy_pass carries the last `if`.
    assert_eq!(get(port, "/outer").text(), "second /outer");
    support::wait_until(std::time::Duration::from_secs(5), "the error line", || {
        balancer.error_log_text().contains("[error] ")
            && balancer
                .error_log_text()
                .contains("no upstream configuration")
    });
}
