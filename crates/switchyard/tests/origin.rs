//! Origin features that configs use around `proxy_pass`: `return`,
//! `add_header`, `error_page`, static files (`root`, `alias`, `index`),
//! the rewrite phase (`if`, `set`, `map`), the realip module and server
//! name selection. Where nginx can run the same config, it is the oracle:
//! the same request goes to both and the answers are compared.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::nginx::Nginx;
use support::{free_port, get, raw, wait_until, Balancer, Echo, Response, BIN};

// ---------------------------------------------------------------- helpers

/// The same `http { }` body (with `LISTEN` for the address) under nginx
/// and switchyard.
struct Pair {
    _nginx: Nginx,
    switchyard: Balancer,
    nginx_port: u16,
    switchyard_port: u16,
}

impl Pair {
    fn start(template: &str) -> Pair {
        let nginx_port = free_port();
        let switchyard_port = free_port();
        // `BACK` is a second address of each side's own (a local upstream).
        let (nginx_back, switchyard_back) = (free_port(), free_port());
        let body = |port: u16, back: u16| {
            template
                .replace("BACK", &format!("127.0.0.1:{back}"))
                .replace("LISTEN", &format!("127.0.0.1:{port}"))
        };
        let nginx = Nginx::start(
            &format!("access_log off;\n{}", body(nginx_port, nginx_back)),
            nginx_port,
        );
        let switchyard =
            Balancer::start_http(&body(switchyard_port, switchyard_back), &[switchyard_port]);
        Pair {
            _nginx: nginx,
            switchyard,
            nginx_port,
            switchyard_port,
        }
    }

    fn both<T>(&self, mut f: impl FnMut(u16) -> T) -> (T, T) {
        (f(self.nginx_port), f(self.switchyard_port))
    }
}

/// Headers that differ between any two servers (or runs).
const VOLATILE: &[&str] = &["date", "server", "connection", "keep-alive"];

/// Status, header names and values (ports blanked), body with the server
/// signature blanked.
fn shape(r: &Response, port: u16) -> String {
    let mut headers: Vec<String> = r
        .headers
        .iter()
        .filter(|(k, _)| !VOLATILE.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}: {}", v.replace(&port.to_string(), "PORT")))
        .collect();
    headers.sort();
    let body = r
        .text()
        .replace("nginx/1.22.1", "SERVER")
        .replace(concat!("switchyard/", env!("CARGO_PKG_VERSION")), "SERVER");
    // Pages carry the server's name: compare their length without it.
    if let Some(h) = headers
        .iter_mut()
        .find(|h| h.starts_with("content-length: "))
    {
        *h = format!("content-length: {}", body.len());
    }
    format!("{}\n{}\n\n{}", r.status, headers.join("\n"), body)
}

fn request(port: u16, head: &str) -> Response {
    raw(
        SocketAddr::from(([127, 0, 0, 1], port)),
        format!("{head}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("request")
}

fn get_with(port: u16, path: &str, headers: &str) -> Response {
    let extra = if headers.is_empty() {
        String::new()
    } else {
        format!("\r\n{headers}")
    };
    request(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}{extra}"),
    )
}

fn assert_same(pair: &Pair, what: &str, f: impl Fn(u16) -> Response) {
    let (n, s) = pair.both(|port| shape(&f(port), port));
    assert_eq!(n, s, "{what}: nginx (left) and switchyard (right) differ");
}

/// `switchyard -t` on an `http { }` body: (exit code, stderr).
fn test_config(http_body: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, format!("events {{}}\nhttp {{\n{http_body}\n}}\n")).unwrap();
    let out = Command::new(BIN)
        .arg("-p")
        .arg(dir.path())
        .arg("-t")
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A document root shared by nginx and switchyard.
fn docroot() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("index.html"), "<h1>home</h1>\n").unwrap();
    std::fs::write(p.join("a.txt"), "0123456789abcdef").unwrap();
    std::fs::write(p.join("page.html"), "<p>page</p>").unwrap();
    std::fs::write(p.join("pic.JPG"), [0xff, 0xd8, 0xff]).unwrap();
    std::fs::write(p.join("noext"), "plain").unwrap();
    std::fs::create_dir_all(p.join("empty")).unwrap();
    std::fs::create_dir_all(p.join("sub")).unwrap();
    std::fs::write(p.join("sub/index.html"), "sub index").unwrap();
    std::fs::create_dir_all(p.join("files")).unwrap();
    std::fs::write(p.join("files/x.html"), "aliased").unwrap();
    dir
}

fn root_of(dir: &Path) -> String {
    dir.display().to_string()
}

// ---------------------------------------------------------------- return

#[test]
fn return_codes_and_redirects_like_nginx() {
    let pair = Pair::start(
        "server {\n listen LISTEN;\n\
         location = /r { return 301 /elsewhere?x=1; }\n\
         location = /rel { return 302 rel; }\n\
         location = /t307 { return 307 /t; }\n\
         location = /c418 { return 418; }\n\
         location = /c494 { return 494; }\n\
         location = /c498 { return 498; }\n\
         location = /c506 { return 506; }\n\
         location = /c200 { return 200; }\n\
         location = /c201 { return 201; }\n\
         location = /c300 { return 300; }\n\
         location = /typed { default_type application/json; return 200 '{}'; }\n\
         location = /noport { port_in_redirect off; return 301 /np; }\n\
         location = /noabs { absolute_redirect off; return 301 /na; }\n\
         location = /sn { server_name_in_redirect on; return 301 /sn2; }\n\
         server_name main.example;\n}\n",
    );
    for path in [
        "/r", "/rel", "/t307", "/c418", "/c494", "/c498", "/c506", "/c200", "/c201", "/c300",
        "/typed", "/noport", "/noabs", "/sn",
    ] {
        assert_same(&pair, path, |port| get(port, path));
    }
    // Without a Host header (HTTP/1.0) the server name is the host.
    assert_same(&pair, "no host", |port| request(port, "GET /r HTTP/1.0"));
    // 495-497 close the connection after the page, as nginx does.
    let (n, s) = pair.both(|port| {
        let r = get(port, "/c494");
        r.status
    });
    assert_eq!((n, s), (400, 400));
}

#[test]
fn return_444_and_499_close_without_a_response() {
    let pair = Pair::start(
        "server {\n listen LISTEN;\n location = /x { return 444; }\n location = /y { return 499; }\n}\n",
    );
    for path in ["/x", "/y"] {
        let (n, s) = pair.both(|port| {
            let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
                .unwrap();
            let mut buf = Vec::new();
            let _ = c.read_to_end(&mut buf);
            buf.len()
        });
        assert_eq!((n, s), (0, 0), "{path}: bytes received");
    }
}

#[test]
fn upstream_relative_location_is_left_alone_like_nginx() {
    let pair = Pair::start(
        "server { listen BACK; absolute_redirect off; location / { return 302 /up; } }\n\
         server {\n listen LISTEN;\n location / { proxy_pass http://BACK; }\n\
         location = /own { return 302 /mine; }\n}\n",
    );
    let (n, s) = pair.both(|port| {
        let r = get(port, "/x");
        r.header("location").map(str::to_string)
    });
    assert_eq!(n, s);
    assert_eq!(s.as_deref(), Some("/up"));
    assert_same(&pair, "own", |port| get(port, "/own"));
}

// ---------------------------------------------------------------- add_header

#[test]
fn add_header_statuses_always_inheritance_like_nginx() {
    let pair = Pair::start(
        "add_header X-Http http;\n\
         server {\n listen LISTEN;\n add_header X-Server \"s $uri\";\n add_header X-Always yes always;\n\
         location = /ok { return 200 ok; }\n\
         location = /missing { return 404; }\n\
         location = /redirect { return 302 http://example.com/; }\n\
         location = /own { add_header X-Own own; return 200 own; }\n\
         location = /empty { add_header X-Empty $arg_nope; return 204; }\n\
         location = /err { return 500 bad; }\n}\n",
    );
    for path in ["/ok", "/missing", "/redirect", "/own", "/empty", "/err"] {
        assert_same(&pair, path, |port| get(port, path));
    }
}

#[test]
fn add_header_on_proxied_responses() {
    let echo = Echo::start("a", "127.0.0.1:0");
    let port = free_port();
    let b = Balancer::start_http(
        &format!(
            "server {{\n listen 127.0.0.1:{port};\n add_header X-Via switchyard;\n\
             add_header X-Err \"$upstream_status\" always;\n\
             location / {{ proxy_pass http://{}; }}\n}}\n",
            echo.addr
        ),
        &[port],
    );
    let ok = get(port, "/");
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("x-via"), Some("switchyard"));
    assert_eq!(ok.header("x-served-by"), Some("a"));
    let err = get(port, "/?status=503");
    assert_eq!(err.status, 503);
    assert_eq!(err.header("x-via"), None, "not on 503 without always");
    assert_eq!(err.header("x-err"), Some("503"));
    drop(b);
}

// ---------------------------------------------------------------- error_page

#[test]
fn error_page_local_uri_and_redirects_like_nginx() {
    let pair = Pair::start(
        "server {\n listen LISTEN;\n\
         error_page 404 /404.html;\n\
         error_page 500 502 =200 /sorry;\n\
         error_page 403 =301 http://example.com/forbidden;\n\
         error_page 410 = /gone-page;\n\
         error_page 503 /50x.html;\n\
         location = /50x.html { internal; return 200 \"internal sorry\"; }\n\
         location = /busy { return 503; }\n\
         location = /404.html { return 200 \"not here\"; }\n\
         location = /sorry { return 200 \"sorry\"; }\n\
         location = /gone-page { return 201 \"made\"; }\n\
         location = /missing { return 404; }\n\
         location = /broken { return 502; }\n\
         location = /denied { return 403; }\n\
         location = /gone { return 410; }\n\
         location = /fine { return 200 fine; }\n\
         location = /text404 { return 404 \"own text\"; }\n\
         location /upload { client_max_body_size 10; error_page 413 /toolarge; }\n\
         location = /toolarge { return 200 \"too big\"; }\n\
         location /inner { error_page 404 http://example.com/inner; return 404; }\n}\n",
    );
    for path in [
        "/missing",
        "/broken",
        "/denied",
        "/gone",
        "/fine",
        "/inner",
        "/busy",
        "/50x.html",
    ] {
        assert_same(&pair, path, |port| get(port, path));
    }
    assert_same(&pair, "413", |port| {
        raw(
            SocketAddr::from(([127, 0, 0, 1], port)),
            b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 20\r\n\r\n01234567890123456789",
        )
        .expect("POST")
    });
}

#[test]
fn error_page_intercepts_upstream_errors_only_with_proxy_intercept_errors() {
    let echo = Echo::start("a", "127.0.0.1:0");
    let dead = free_port();
    let pair = Pair::start(&format!(
        "server {{\n listen LISTEN;\n\
         error_page 503 /busy;\n error_page 502 /down;\n\
         location = /busy {{ return 200 \"busy page\"; }}\n\
         location = /down {{ return 200 \"down page\"; }}\n\
         location /plain/ {{ proxy_pass http://{a}/; }}\n\
         location /intercept/ {{ proxy_intercept_errors on; proxy_pass http://{a}/; }}\n\
         location /dead/ {{ proxy_pass http://127.0.0.1:{dead}/; }}\n}}\n",
        a = echo.addr
    ));
    let (n, s) = pair.both(|port| {
        let r = get(port, "/plain/?status=503");
        (r.status, r.header("x-served-by").map(str::to_string))
    });
    assert_eq!(n, s);
    assert_eq!(s, (503, Some("a".to_string())), "passed through");
    for path in ["/intercept/?status=503", "/dead/"] {
        assert_same(&pair, path, |port| get(port, path));
    }
    let r = get(pair.switchyard_port, "/dead/");
    assert_eq!((r.status, r.text()), (502, "down page".to_string()));
}

// ---------------------------------------------------------------- static files

#[test]
fn static_files_like_nginx() {
    let docs = docroot();
    let root = root_of(docs.path());
    let pair = Pair::start(&format!(
        "server {{\n listen LISTEN;\n root {root};\n\
         location / {{ }}\n\
         location /alias/ {{ alias {root}/files/; }}\n\
         location /typed/ {{ types {{ text/x-special txt; }} default_type application/x-def; alias {root}/; }}\n\
         location /noindex/ {{ index nothing.html; alias {root}/sub/; }}\n}}\n"
    ));
    let mtime = httpdate_of(&docs.path().join("a.txt"));
    for (path, headers) in [
        ("/", ""),
        ("/index.html", ""),
        ("/a.txt", ""),
        ("/page.html", ""),
        ("/pic.JPG", ""),
        ("/noext", ""),
        ("/missing.txt", ""),
        ("/empty/", ""),
        ("/sub", ""),
        ("/sub?x=1", ""),
        ("/sub/", ""),
        ("/alias/x.html", ""),
        ("/typed/a.txt", ""),
        ("/typed/noext", ""),
        ("/noindex/", ""),
        ("/a.txt", "Range: bytes=2-5"),
        ("/a.txt", "Range: bytes=-3"),
        ("/a.txt", "Range: bytes=10-"),
        ("/a.txt", "Range: bytes=100-200"),
        ("/a.txt", &format!("If-Modified-Since: {mtime}")),
        ("/a.txt", "If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT"),
    ] {
        assert_same(&pair, &format!("{path} {headers}"), |port| {
            get_with(port, path, headers)
        });
    }
    let etag = get(pair.switchyard_port, "/a.txt")
        .header("etag")
        .unwrap()
        .to_string();
    assert_same(&pair, "If-None-Match", |port| {
        get_with(port, "/a.txt", &format!("If-None-Match: {etag}"))
    });
    let (n, s) = pair.both(|port| {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"HEAD /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        let _ = c.read_to_string(&mut text);
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| {
                let lower = l.to_ascii_lowercase();
                !VOLATILE.iter().any(|v| lower.starts_with(&format!("{v}:")))
            })
            .map(|l| l.to_ascii_lowercase())
            .collect();
        lines.sort();
        lines
    });
    assert_eq!(n, s, "HEAD");
    assert_same(&pair, "POST to a file", |port| {
        request(port, "POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0")
    });
    assert_same(&pair, "DELETE", |port| {
        request(port, "DELETE /a.txt HTTP/1.1\r\nHost: x")
    });
    // The error log says which file was missing, as nginx does.
    let log = pair.switchyard.error_log_text();
    let wanted = format!(
        "open() \"{}/missing.txt\" failed (2: No such file or directory)",
        root
    );
    assert!(log.contains(&wanted), "{log}");
    assert!(
        log.contains(&format!(
            "directory index of \"{root}/empty/\" is forbidden"
        )),
        "{log}"
    );
}

fn httpdate_of(path: &Path) -> String {
    let out = Command::new("date")
        .args(["-u", "-r"])
        .arg(path)
        .arg("+%a, %d %b %Y %H:%M:%S GMT")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn default_root_is_html_under_the_prefix_and_large_files_stream() {
    let port = free_port();
    let b = Balancer::start_http(
        &format!("server {{\n listen 127.0.0.1:{port};\n location / {{ }}\n}}\n"),
        &[port],
    );
    let html = b.dir.path().join("html");
    std::fs::create_dir_all(&html).unwrap();
    std::fs::write(html.join("index.html"), "default root\n").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(html.join("big.bin"), &big).unwrap();
    let r = get(port, "/");
    assert_eq!((r.status, r.text()), (200, "default root\n".to_string()));
    assert_eq!(r.header("content-type"), Some("text/html"));
    let r = get(port, "/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert!(r.body == big, "big file differs");
    let r = get(port, "/%2e%2e/nginx.conf");
    assert_eq!(r.status, 400, "no way above the root");
    let r = get(port, "/x/../../nginx.conf");
    assert_eq!(r.status, 400);
}

// ---------------------------------------------------------------- if / set / map

/// A map keeps the first value a request read, across internal
/// redirects, unless it is `volatile`.
#[test]
fn map_values_are_kept_for_the_request_unless_volatile() {
    let pair = Pair::start(
        "map $uri $kept { default \"uri=$uri\"; }\n\
         map $uri $fresh { volatile; default \"uri=$uri\"; }\n\
         server {\n listen LISTEN;\n\
         location /start { set $a $kept; set $b $fresh; rewrite ^ /end last; }\n\
         location /end { return 200 \"$kept $fresh $a $b\"; }\n}\n",
    );
    for path in ["/start", "/end"] {
        assert_same(&pair, path, |port| get_with(port, path, ""));
    }
    let r = get_with(pair.switchyard_port, "/start", "");
    assert_eq!(r.text(), "uri=/start uri=/end uri=/start uri=/start");
}

#[test]
fn if_set_map_like_nginx() {
    let docs = docroot();
    let root = root_of(docs.path());
    let pair = Pair::start(&format!(
        "map $http_x_kind $kind {{\n default other;\n Apple fruit;\n ~^car vehicle;\n ~*^BUS transit;\n}}\n\
         map $uri $section {{ /a.txt text; }}\n\
         server {{\n listen LISTEN;\n root {root};\n\
         set $greeting hello;\n\
         if ($arg_block) {{ return 403; }}\n\
         if ($http_x_server = stop) {{ return 200 \"server stop\"; }}\n\
         location = /kind {{ return 200 \"$kind [$section]\"; }}\n\
         location = /greet {{ set $who \"$greeting $arg_name\"; return 200 $who; }}\n\
         location = /cond {{\n\
           if ($arg_a = x) {{ return 200 equals; }}\n\
           if ($arg_a != y) {{ return 200 \"not y\"; }}\n\
           return 200 fallthrough;\n }}\n\
         location = /re {{\n\
           if ($http_user_agent ~ curl) {{ return 200 curl; }}\n\
           if ($http_user_agent ~* WGET) {{ return 200 wget; }}\n\
           if ($http_user_agent !~ ^Mozilla) {{ return 200 other; }}\n\
           return 200 mozilla;\n }}\n\
         location /files/ {{\n\
           if (-f $request_filename) {{ return 200 \"file\"; }}\n\
           if (-d $request_filename) {{ return 200 \"dir\"; }}\n\
           if (!-e $request_filename) {{ return 200 \"none\"; }}\n\
           alias {root}/;\n }}\n\
         location ~ ^/user/(\\d+)/(\\w+)$ {{\n\
           if ($http_x_pair ~ ^(a+)-(b*)$) {{ return 200 \"if $1 $2 $3\"; }}\n\
           return 200 \"$2 of $1\";\n }}\n\
         location ~ ^/old/(.*) {{ return 301 /new/$1; }}\n\
         location ~ ^/plainre/(\\d+) {{ return 200 \"[$1] [$2]\"; }}\n\
         location /brk/ {{\n alias {root}/;\n set $a 1;\n\
           if ($arg_x) {{ set $a x; break; }}\n\
           set $a 2;\n add_header X-A $a always;\n }}\n\
         location /iff {{\n\
           add_header X-Loc loc;\n\
           if ($arg_h) {{ add_header X-If if; }}\n\
           return 200 \"iff\";\n }}\n}}\n"
    ));
    for (path, headers) in [
        ("/kind", "X-Kind: apple"),
        ("/kind", "X-Kind: cart"),
        ("/kind", "X-Kind: bus9"),
        ("/kind", ""),
        ("/a.txt", ""),
        ("/greet?name=bob", ""),
        ("/cond?a=x", ""),
        ("/cond?a=z", ""),
        ("/cond?a=y", ""),
        ("/re", "User-Agent: curl/8"),
        ("/re", "User-Agent: Wget/1"),
        ("/re", "User-Agent: Mozilla/5"),
        ("/re", "User-Agent: lynx"),
        ("/files/a.txt", ""),
        ("/files/sub", ""),
        ("/files/nothing", ""),
        ("/iff", ""),
        ("/iff?h=1", ""),
        ("/user/42/posts", ""),
        ("/user/42/posts", "X-Pair: aa-bbb"),
        ("/user/42/posts", "X-Pair: nope"),
        ("/plainre/7", ""),
        ("/old/x/y?z=1", ""),
        ("/brk/a.txt", ""),
        ("/brk/a.txt?x=1", ""),
        ("/brk/nothing", ""),
        ("/kind?block=1", ""),
        ("/kind", "X-Server: stop"),
    ] {
        assert_same(&pair, &format!("{path} {headers}"), |port| {
            get_with(port, path, headers)
        });
    }
}

#[test]
fn if_in_location_keeps_proxying_with_its_own_settings() {
    let echo = Echo::start("a", "127.0.0.1:0");
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "server {{\n listen 127.0.0.1:{port};\n\
             location / {{\n proxy_set_header X-From \"location $t\";\n\
               if ($arg_tag) {{ set $t $arg_tag; add_header X-Tag $t; }}\n\
               proxy_pass http://{};\n }}\n}}\n",
            echo.addr
        ),
        &[port],
    );
    let plain = get(port, "/?json=1");
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("x-served-by"), Some("a"));
    assert!(plain.text().contains("location"), "{}", plain.text());
    let tagged = get(port, "/?tag=blue&json=1");
    assert_eq!(tagged.status, 200);
    assert_eq!(tagged.header("x-served-by"), Some("a"), "still proxied");
    assert_eq!(tagged.header("x-tag"), Some("blue"));
    assert!(tagged.text().contains("location blue"), "{}", tagged.text());
}

#[test]
fn rewrite_config_errors_are_nginx_words() {
    for (body, wanted) in [
        (
            "server { location / { return 200 $never_set; } }",
            "unknown \"never_set\" variable",
        ),
        (
            "server { location / { if ($a) { return 200; } } }",
            "unknown \"a\" variable",
        ),
        ("server { return 200 $0; }", "unknown \"0\" variable"),
        (
            "server { if (x) { return 200; } }",
            "invalid condition \"x\"",
        ),
        (
            "server { error_page 200 /x; }",
            "value \"200\" must be between 300 and 599",
        ),
        (
            "server { recursive_error_pages on; }",
            "\"recursive_error_pages\" is not supported yet",
        ),
        (
            "server { location / { root /a; alias /b; } }",
            "\"alias\" directive is duplicate, \"root\" directive was specified earlier",
        ),
        (
            "server { add_header X; }",
            "invalid number of arguments in \"add_header\" directive",
        ),
        (
            "server { if ($uri) { add_header X y; } }",
            "\"add_header\" directive is not allowed here",
        ),
        (
            "server { location / { if ($uri) { proxy_set_header X y; } } }",
            "\"proxy_set_header\" directive is not allowed here",
        ),
        (
            "server { set_real_ip_from nope; }",
            "host not found in set_real_ip_from \"nope\"",
        ),
    ] {
        let (code, err) = test_config(body);
        assert_eq!(code, 1, "{body}: {err}");
        assert!(err.contains(wanted), "{body}: wanted {wanted:?} in {err}");
    }
    // A variable that some `set` defines anywhere may be used anywhere.
    let (code, err) =
        test_config("server { location /a { return 200 $later; } location /b { set $later x; } }");
    assert_eq!(code, 0, "{err}");
}

// ---------------------------------------------------------------- realip

#[test]
fn realip_changes_remote_addr_for_trusted_peers_like_nginx() {
    let docs = docroot();
    let root = root_of(docs.path());
    // Server level: before the rewrite phase, so `return` sees it.
    let pair = Pair::start(&format!(
        "server {{\n listen LISTEN;\n root {root};\n set_real_ip_from 127.0.0.0/8;\n\
         location /x {{ return 200 \"$remote_addr $realip_remote_addr\"; }}\n\
         location /file/ {{ alias {root}/; add_header X-Addr $remote_addr; }}\n\
         location /loc/ {{ alias {root}/; set_real_ip_from 10.0.0.0/8; add_header X-Addr $remote_addr; }}\n}}\n"
    ));
    for (path, headers) in [
        ("/x", "X-Real-IP: 203.0.113.7"),
        ("/x", "X-Real-IP: garbage"),
        ("/x", ""),
        ("/file/a.txt", "X-Real-IP: 203.0.113.7"),
        ("/loc/a.txt", "X-Real-IP: 203.0.113.7"),
    ] {
        assert_same(&pair, &format!("{path} {headers}"), |port| {
            get_with(port, path, headers)
        });
    }
    let pair = Pair::start(
        "server {\n listen LISTEN;\n set_real_ip_from 127.0.0.1;\n set_real_ip_from 10.0.0.0/8;\n\
         real_ip_header X-Forwarded-For;\n\
         location / { return 200 $remote_addr; }\n\
         location /rec { real_ip_recursive on; return 200 $remote_addr; }\n\
         location /port { return 200 \"$remote_addr:$remote_port\"; }\n}\n",
    );
    for (path, headers) in [
        ("/", "X-Forwarded-For: 198.51.100.1, 10.1.1.1"),
        (
            "/",
            "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-For: 198.51.100.2",
        ),
        ("/rec", "X-Forwarded-For: 198.51.100.1, 10.1.1.1"),
        ("/rec", "X-Forwarded-For: 10.2.2.2, 10.1.1.1"),
        ("/rec", "X-Real-IP: 203.0.113.7"),
        // A port with the address becomes $remote_port; without one,
        // $remote_port is empty (nginx's port 0).
        ("/port", "X-Forwarded-For: 198.51.100.1:123"),
        ("/port", "X-Forwarded-For: [2001:db8::1]:8080"),
        ("/port", "X-Forwarded-For: 198.51.100.1"),
    ] {
        assert_same(&pair, &format!("{path} {headers}"), |port| {
            get_with(port, path, headers)
        });
    }
}

#[test]
fn realip_remote_port_is_the_connection_port() {
    let port = free_port();
    let _b = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port}; set_real_ip_from 127.0.0.1;\n\
             real_ip_header X-Forwarded-For;\n\
             location / {{ return 200 \"$remote_port $realip_remote_port\"; }} }}"
        ),
        &[port],
    );
    for xff in ["", "X-Forwarded-For: 127.0.0.1:123\r\n"] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let own = s.local_addr().unwrap().port();
        write!(s, "GET / HTTP/1.0\r\nHost: x\r\n{xff}\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let remote = if xff.is_empty() { own } else { 123 };
        assert!(out.ends_with(&format!("\r\n\r\n{remote} {own}")), "{out}");
    }
}

// ---------------------------------------------------------------- server names

#[test]
fn server_names_regex_wildcards_and_default_like_nginx() {
    let pair = Pair::start(
        "server { listen LISTEN; server_name first.example; return 200 first; }\n\
         server { listen LISTEN default_server; server_name dflt.example; return 200 default; }\n\
         server { listen LISTEN; server_name ~^www\\d+\\.example\\.com$ exact.example.com; return 200 regex-or-exact; }\n\
         server { listen LISTEN; server_name *.example.com; return 200 wild-head; }\n\
         server { listen LISTEN; server_name www.example.*; return 200 wild-tail; }\n\
         server { listen LISTEN; server_name ~^(?<sub>api)\\.; return 200 named; }\n",
    );
    for host in [
        "first.example",
        "dflt.example",
        "www12.example.com",
        "exact.example.com",
        "www.example.com",
        "a.example.com",
        "www.example.org",
        "api.foo",
        "unknown.test",
        "WWW7.EXAMPLE.COM",
    ] {
        assert_same(&pair, host, |port| {
            request(port, &format!("GET / HTTP/1.1\r\nHost: {host}"))
        });
    }
    // Without default_server, the first server on the address is the default.
    let pair = Pair::start(
        "server { listen LISTEN; server_name one.example; return 200 one; }\n\
         server { listen LISTEN; server_name ~^two; return 200 two; }\n",
    );
    for head in [
        "GET / HTTP/1.1\r\nHost: nobody.example",
        "GET / HTTP/1.1\r\nHost: two.example",
        "GET / HTTP/1.0",
    ] {
        assert_same(&pair, head, |port| request(port, head));
    }
}

#[test]
fn error_log_is_written_once_per_missing_file() {
    let port = free_port();
    let b = Balancer::start_http(
        &format!("server {{\n listen 127.0.0.1:{port};\n root /nonexistent-root;\n}}\n"),
        &[port],
    );
    let r = get(port, "/nothing.txt");
    assert_eq!(r.status, 404);
    wait_until(Duration::from_secs(5), "error log line", || {
        b.error_log_text().contains(
            "open() \"/nonexistent-root/nothing.txt\" failed (2: No such file or directory)",
        )
    });
}
