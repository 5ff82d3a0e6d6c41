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

/// `expires @TIME` sets the next such time of day, at most a day ahead;
/// a value with variables is read per response, and one that does not
/// read sets nothing.
#[test]
fn expires_daily_and_with_variables() {
    let port = free_port();
    let conf = format!(
        "server {{
            listen 127.0.0.1:{port};
            location /daily {{ expires @15h30m33s; return 200 \"x\\n\"; }}
            location /var {{ expires $arg_e; return 200 \"x\\n\"; }}
        }}"
    );
    let _b = Balancer::start_http(&conf, &[port]);
    let r = get(port, "/daily");
    let max_age: i64 = r
        .header("cache-control")
        .and_then(|v| v.strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{:?}", r.raw_headers));
    assert!((1..=86400).contains(&max_age), "{max_age}");
    assert!(r.header("expires").is_some_and(|e| e.ends_with(" GMT")));
    assert_eq!(
        get(port, "/var?e=2h").header("cache-control"),
        Some("max-age=7200")
    );
    assert_eq!(
        get(port, "/var?e=epoch").header("cache-control"),
        Some("no-cache")
    );
    let r = get(port, "/var?e=nonsense");
    assert!(r.header("expires").is_none() && r.header("cache-control").is_none());
    let r = get(port, "/var?e=off");
    assert!(r.header("expires").is_none());
}

/// The answering location's keep-alive settings: `keepalive_timeout`'s
/// header value (`Keep-Alive: timeout=N`, inherited apart from the
/// timeout), `keepalive_timeout 0`, and `keepalive_disable` (by default,
/// a POST from MSIE 6 or older closes).
#[test]
fn keep_alive_is_the_answering_locations() {
    use std::io::{BufReader, Write};
    let port = free_port();
    let conf = format!(
        "server {{
            listen 127.0.0.1:{port};
            keepalive_timeout 10s 9;
            location / {{ return 200 \"x\\n\"; }}
            location /long {{ keepalive_timeout 30s; return 200 \"x\\n\"; }}
            location /zero {{ keepalive_timeout 0; return 200 \"x\\n\"; }}
            location /safari {{ keepalive_disable safari; return 200 \"x\\n\"; }}
        }}"
    );
    let _b = Balancer::start_http(&conf, &[port]);
    let ask = |path: &str, method: &str, agent: &str| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: {agent}\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let r = support::read_response(&mut BufReader::new(s)).unwrap();
        (
            r.header("connection").map(str::to_string),
            r.header("keep-alive").map(str::to_string),
        )
    };
    let kept = (
        Some("keep-alive".to_string()),
        Some("timeout=9".to_string()),
    );
    let closed = (Some("close".to_string()), None);
    assert_eq!(ask("/", "GET", "curl"), kept);
    assert_eq!(ask("/long", "GET", "curl"), kept);
    assert_eq!(ask("/zero", "GET", "curl"), closed);
    assert_eq!(
        ask("/", "POST", "Mozilla/4.0 (compatible; MSIE 5.0)"),
        closed
    );
    assert_eq!(ask("/", "GET", "Mozilla/4.0 (compatible; MSIE 5.0)"), kept);
    assert_eq!(ask("/", "GET", "Mac OS X Safari/7534.48.3"), kept);
    assert_eq!(ask("/safari", "GET", "Mac OS X Safari/7534.48.3"), closed);
}

#[test]
fn not_modified_filter_and_if_modified_since_modes() {
    let port = free_port();
    let conf = format!(
        "server {{
            listen 127.0.0.1:{port};
            root html;
            location /exact/ {{ alias html/; }}
            location /before/ {{ alias html/; if_modified_since before; }}
            location /off/ {{ alias html/; if_modified_since off; }}
            location /notag/ {{ alias html/; etag off; }}
        }}"
    );
    let b = Balancer::start_http(&conf, &[port]);
    let html = b.dir.path().join("html");
    std::fs::create_dir_all(&html).unwrap();
    std::fs::write(html.join("f"), "file\n").unwrap();
    let first = get(port, "/exact/f");
    let lm = first.header("last-modified").unwrap().to_string();
    let etag = first.header("etag").unwrap().to_string();
    let with = |path: &str, name: &str, value: &str| {
        let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n{name}: {value}\r\n\r\n");
        support::raw(
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            request.as_bytes(),
        )
        .unwrap()
        .status
    };
    let later = "Tue, 19 Jan 2038 03:14:07 GMT";
    assert_eq!(with("/exact/f", "If-Modified-Since", &lm), 304);
    assert_eq!(with("/exact/f", "If-Modified-Since", later), 200);
    assert_eq!(with("/before/f", "If-Modified-Since", later), 304);
    assert_eq!(with("/off/f", "If-Modified-Since", &lm), 200);
    assert_eq!(
        with("/exact/f", "If-None-Match", &format!("\"x\", W/{etag}")),
        304
    );
    assert_eq!(with("/exact/f", "If-Match", "\"nope\""), 412);
    assert_eq!(with("/exact/f", "If-Match", &etag), 200);
    assert_eq!(
        with(
            "/exact/f",
            "If-Unmodified-Since",
            "Thu, 01 Jan 1970 00:00:01 GMT"
        ),
        412
    );
    assert!(get(port, "/notag/f").header("etag").is_none());
    assert_eq!(with("/notag/f", "If-None-Match", &etag), 200);
}

#[test]
fn a_volatile_map_is_evaluated_when_read() {
    let port = free_port();
    let conf = format!(
        "map $uri $now_uri {{
            volatile;
            default other;
            /a/redirect seen-after-redirect;
        }}
        server {{
            listen 127.0.0.1:{port};
            location = /a/ {{ set $x $now_uri; rewrite ^ /a/redirect last; }}
            location = /a/redirect {{ add_header X-Map $now_uri always; return 204; }}
        }}"
    );
    let _b = Balancer::start_http(&conf, &[port]);
    assert_eq!(
        get(port, "/a/").header("x-map"),
        Some("seen-after-redirect")
    );
}

#[test]
fn request_id_is_random_hex_and_one_per_request() {
    let port = free_port();
    let conf = format!(
        "server {{
            listen 127.0.0.1:{port};
            location / {{
                add_header X-A $request_id;
                add_header X-B $request_id;
                return 204;
            }}
        }}"
    );
    let _b = Balancer::start_http(&conf, &[port]);
    let first = get(port, "/");
    let a = first.header("x-a").unwrap().to_string();
    assert_eq!(a.len(), 32);
    assert!(a
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(
        first.header("x-b"),
        Some(a.as_str()),
        "one value per request"
    );
    assert_ne!(get(port, "/").header("x-a"), Some(a.as_str()));
}

/// error_page catches 494-497 by the status decided, though nginx's page
/// for each says 400; a page without `=code` answers 400 (nginx's implicit
/// `=400` for them), and an URL redirects with 302.
#[test]
fn error_page_catches_497_and_answers_400_or_redirects() {
    let port = free_port();
    let conf = format!(
        "server {{
            listen 127.0.0.1:{port};
            location /to-url {{ error_page 497 https://example.com/; return 497; }}
            location /to-page {{ error_page 497 /page; return 497; }}
            location = /page {{ return 200 \"the page\\n\"; }}
        }}"
    );
    let _b = Balancer::start_http(&conf, &[port]);
    let url = get(port, "/to-url");
    assert_eq!(url.status, 302);
    assert_eq!(url.header("location"), Some("https://example.com/"));
    let page = get(port, "/to-page");
    assert_eq!(page.status, 400);
    assert_eq!(page.text(), "the page\n");
}

/// `error_log` in a server or a location takes the lines of the requests
/// that chose it, as nginx switches a connection's log: the main log sees
/// none of them, and a location without its own uses its server's.
#[test]
fn server_and_location_error_logs_take_their_requests_lines() {
    let port = free_port();
    let closed = free_port();
    let lb = Balancer::start_http(
        &format!(
            "server {{ listen 127.0.0.1:{port}; root html;\n\
               error_log logs/site.log;\n\
               location /own/ {{ error_log logs/own.log; proxy_pass http://127.0.0.1:{closed}; }}\n\
               location /site/ {{ proxy_pass http://127.0.0.1:{closed}; }}\n\
             }}"
        ),
        &[port],
    );
    assert_eq!(get(port, "/own/a").status, 502);
    assert_eq!(get(port, "/site/b").status, 502);
    let read = |name: &str| {
        std::fs::read_to_string(lb.dir.path().join("logs").join(name)).unwrap_or_default()
    };
    support::wait_until(std::time::Duration::from_secs(5), "both lines", || {
        read("own.log").contains("connect() failed")
            && read("site.log").contains("connect() failed")
    });
    assert!(
        read("own.log").contains("request: \"GET /own/a HTTP/1.1\""),
        "{}",
        read("own.log")
    );
    assert!(!read("own.log").contains("/site/b"), "{}", read("own.log"));
    assert!(
        read("site.log").contains("request: \"GET /site/b HTTP/1.1\""),
        "{}",
        read("site.log")
    );
    assert!(!read("site.log").contains("/own/a"), "{}", read("site.log"));
    let main = lb.error_log_text();
    assert!(!main.contains("connect() failed"), "{main}");
}
