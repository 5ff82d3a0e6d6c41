//! The geo modules (http and stream) side by side with Debian's nginx: the
//! same `geo` blocks answer the same clients (real source addresses on
//! 127.0.0.0/8, `$arg_ip`, `X-Forwarded-For` through `proxy`) with the same
//! values, and bad blocks fail `-t` with nginx's words.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use support::nginx::{nginx_bin, Nginx};
use support::{free_port, Balancer};

const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// The http geo blocks under test; the server answers every value.
const HTTP_GEOS: &str = r#"
geo $g_cidr {
    default        world;
    127.0.0.0/8    loopback;
    127.0.0.2/32   two;
    127.1.0.0/16   one-net;
    10.0.0.0/8     ten;
    10.1.0.0/16    ten-one;
    delete         10.1.0.0/16;
    ::1            v6-loop;
    2001:db8::/32  doc6;
    255.255.255.255 none;
}
geo $arg_ip $g_arg {
    default        dflt;
    192.0.2.0/24   test;
    10.0.0.0/8     ten;
    2001:db8::/32  doc6;
}
geo $arg_ip $g_nodefault {
    192.0.2.0/24   test;
}
geo $arg_ip $g_ranges {
    ranges;
    default                  dflt;
    10.0.0.0-10.0.0.255      a;
    10.0.0.10-10.0.0.20      b;
    10.0.0.15-10.0.0.15      c;
    10.1.255.0-10.2.0.255    wide;
    192.0.2.0-192.0.2.255    test;
}
geo $g_proxy {
    default        dflt;
    proxy          127.0.0.0/8;
    127.0.0.0/8    loopback;
    192.0.2.0/24   test;
    10.0.0.0/8     ten;
}
geo $g_recursive {
    proxy_recursive;
    default        dflt;
    proxy          127.0.0.0/8;
    proxy          10.0.0.0/8;
    127.0.0.0/8    loopback;
    192.0.2.0/24   test;
    10.0.0.0/8     ten;
}
"#;

const ANSWER: &str = "cidr=$g_cidr arg=$g_arg nodef=[$g_nodefault] ranges=$g_ranges \
                      proxy=$g_proxy rec=$g_recursive";

/// One request from `from` with `extra` header lines; the body.
fn ask(port: u16, from: IpAddr, path: &str, extra: &str) -> String {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::new(from, 0).into())
        .expect("bind the client to a loopback address");
    socket
        .connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n{extra}\r\n").unwrap();
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    all.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
}

#[test]
fn http_geo_values_match_nginx() {
    let conf = |port: u16| {
        format!(
            "{HTTP_GEOS}\nserver {{ listen 127.0.0.1:{port}; location / {{ return 200 \"{ANSWER}\"; }} }}\n"
        )
    };
    let nginx_port = free_port();
    let nginx = Nginx::start(&conf(nginx_port), nginx_port);
    let port = free_port();
    let switchyard = Balancer::start_http(&conf(port), &[port]);
    let cases: &[(&str, &str, &str)] = &[
        ("127.0.0.1", "/", ""),
        ("127.0.0.2", "/", ""),
        ("127.1.2.3", "/", ""),
        ("127.0.0.1", "/?ip=192.0.2.77", ""),
        ("127.0.0.1", "/?ip=10.1.2.3", ""),
        ("127.0.0.1", "/?ip=2001:db8::5", ""),
        ("127.0.0.1", "/?ip=::ffff:192.0.2.1", ""),
        ("127.0.0.1", "/?ip=junk", ""),
        ("127.0.0.1", "/?ip=10.0.0.9", ""),
        ("127.0.0.1", "/?ip=10.0.0.12", ""),
        ("127.0.0.1", "/?ip=10.0.0.15", ""),
        ("127.0.0.1", "/?ip=10.0.0.18", ""),
        ("127.0.0.1", "/?ip=10.0.0.21", ""),
        ("127.0.0.1", "/?ip=10.2.0.1", ""),
        ("127.0.0.1", "/?ip=10.1.255.255", ""),
        ("127.0.0.1", "/?ip=1..2.3", ""),
        ("127.0.0.1", "/", "X-Forwarded-For: 192.0.2.1\r\n"),
        ("127.0.0.1", "/", "X-Forwarded-For: 10.0.0.1, 192.0.2.1\r\n"),
        ("127.0.0.1", "/", "X-Forwarded-For: 192.0.2.1, 10.0.0.1\r\n"),
        (
            "127.0.0.1",
            "/",
            "X-Forwarded-For: 192.0.2.1, 10.0.0.1, 127.0.0.5\r\n",
        ),
        ("127.0.0.1", "/", "X-Forwarded-For: junk, 10.0.0.1\r\n"),
        ("127.0.0.1", "/", "X-Forwarded-For: 192.0.2.1:8080 ,\r\n"),
        (
            "127.0.0.1",
            "/",
            "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-For: 10.0.0.1\r\n",
        ),
        ("127.0.0.1", "/", "X-Forwarded-For: [2001:db8::1]:80\r\n"),
    ];
    let mut differences = Vec::new();
    for (from, path, extra) in cases {
        let from: IpAddr = from.parse().unwrap();
        let want = ask(nginx_port, from, path, extra);
        let got = ask(port, from, path, extra);
        if want != got {
            differences.push(format!(
                "{from} {path} {extra:?}:\n  nginx:      {want}\n  switchyard: {got}"
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    // What the comparison covered, said outright.
    let r = ask(port, "127.0.0.2".parse().unwrap(), "/?ip=10.0.0.15", "");
    assert_eq!(
        r,
        "cidr=two arg=ten nodef=[] ranges=c proxy=loopback rec=loopback"
    );
    let r = ask(
        port,
        "127.0.0.1".parse().unwrap(),
        "/?ip=junk",
        "X-Forwarded-For: 192.0.2.1, 10.0.0.1\r\n",
    );
    assert_eq!(
        r,
        "cidr=loopback arg=dflt nodef=[] ranges=dflt proxy=ten rec=test"
    );
    drop((nginx, switchyard));
}

/// A stream geo answered by `return`, from several client addresses.
#[test]
fn stream_geo_values_match_nginx() {
    let conf = |port: u16, module: &str| {
        format!(
            "{module}pid logs/nginx.pid;\n\
             error_log logs/error.log info;\nevents {{}}\nstream {{\n\
             geo $g {{ default world; 127.0.0.0/8 loopback; 127.0.0.2 two; 127.3.0.0/16 three; }}\n\
             geo $g_ranges {{ ranges; default d; 127.0.0.0-127.0.0.1 low; 127.0.0.2-127.255.255.255 high; }}\n\
             geo $remote_addr $g_same {{ 127.0.0.2/32 same-two; }}\n\
             server {{ listen 127.0.0.1:{port}; return \"$g $g_ranges [$g_same]\\n\"; }}\n}}\n"
        )
    };
    let nginx_port = free_port();
    let nginx = Nginx::start_conf(
        &conf(
            nginx_port,
            &format!(
                "load_module {STREAM_MODULE};\ndaemon off;\nmaster_process off;\nworker_processes 1;\n"
            ),
        ),
        nginx_port,
    );
    let port = free_port();
    let switchyard = Balancer::start_full(&conf(port, ""), &[port], &[]);
    let line = |port: u16, from: &str| {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&SocketAddr::new(from.parse().unwrap(), 0).into())
            .unwrap();
        socket
            .connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
            .unwrap();
        let s: TcpStream = socket.into();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut line = String::new();
        let _ = BufReader::new(s).read_line(&mut line);
        line
    };
    for from in ["127.0.0.1", "127.0.0.2", "127.3.4.5", "127.9.9.9"] {
        assert_eq!(line(port, from), line(nginx_port, from), "from {from}");
    }
    assert_eq!(line(port, "127.0.0.2"), "two high [same-two]\n");
    assert_eq!(line(port, "127.3.4.5"), "three high []\n");
    drop((nginx, switchyard));
}

/// `-t` of a config with `geo_block` inside http: the exit code and the
/// `emerg`/`warn` lines without the program's name and the file's path.
fn test_conf(bin: &std::path::Path, geo_block: &str) -> (Option<i32>, Vec<String>) {
    let checked =
        support::check_conf_with(bin, &format!("events {{}}\nhttp {{\n{geo_block}\n}}\n"));
    let lines = checked
        .problem_lines()
        .into_iter()
        // nginx's timestamp form of the same line, if any, is the same text.
        .filter(|l| !l.contains("could not open error log"))
        .collect();
    (checked.code, lines)
}

#[test]
fn bad_geo_blocks_fail_as_in_nginx() {
    let nginx = nginx_bin();
    let switchyard = std::path::PathBuf::from(support::BIN);
    let blocks = [
        "geo $g { 10.0.0.0/33 x; }",
        "geo $g { 10.0.0.0-10.0.0.5 x; }",
        "geo $g { default x; ranges; }",
        "geo $g { ranges; 10.0.0.0/8 x; }",
        "geo $g { ranges; 10.0.0.5-10.0.0.1 x; }",
        "geo $g { ranges; 10.0.0.0-10.0.0.10 a; 10.0.0.5-10.0.0.20 b; }",
        "geo $g { default; }",
        "geo $g { 10.0.0.0/8 a b; }",
        "geo g { default x; }",
        "geo $a g { default x; }",
        "geo $g { proxy 10.0.0.0/99; }",
        // Warnings only: the load succeeds.
        "geo $g { 10.0.0.0/8 a; 10.0.0.0/8 b; 10.1.2.3/16 c; delete 10.9.0.0/16; }",
        "geo $g { ranges; default a; default b; 10.0.0.0-10.0.0.9 a; 10.0.0.0-10.0.0.9 b; delete 10.0.1.0-10.0.1.1; }",
    ];
    let mut differences = Vec::new();
    for block in blocks {
        let want = test_conf(&nginx, block);
        let got = test_conf(&switchyard, block);
        if want != got {
            differences.push(format!(
                "{block}\n  nginx:      {want:?}\n  switchyard: {got:?}"
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    // The comparison saw nginx's words, not two empty outputs.
    let (code, lines) = test_conf(&switchyard, blocks[5]);
    assert_eq!(code, Some(1));
    assert_eq!(
        lines,
        ["[emerg] range \"10.0.0.5-10.0.0.20\" overlaps \"10.0.0.0-10.0.0.10\" in CONF:3"]
    );
    let (code, lines) = test_conf(&switchyard, blocks[11]);
    assert_eq!((code, lines.len()), (Some(0), 3), "{lines:?}");
}
