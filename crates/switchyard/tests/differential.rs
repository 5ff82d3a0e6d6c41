//! Differential tests: the same nginx.conf run under the system's nginx and
//! under switchyard, in front of the same `switchyard echo` backends (each
//! answers with `X-Served-By: NAME`), comparing who served each request, in
//! order, and what the client and the access log see.
//!
//! nginx is the oracle, so it must be installed (`scripts/install-test-deps`);
//! without it these tests fail rather than pass vacuously.
//!
//! Every request goes on a fresh connection (`Connection: close`) to both.
//! nginx runs with one worker and no master, so its round robin is one
//! sequence, as switchyard's is across all its threads.

mod support;

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::nginx::Nginx;
use support::{
    free_port, get, read_response, upstream_block, wait_until, Balancer, Echo, Response,
};

/// The access-log format both sides write: what the client got and the
/// upstream lists (`a, b` after a retry).
const LOG_FORMAT: &str = "log_format diff '$status|$upstream_addr|$upstream_status';\n\
                          access_log logs/access.log diff;\n";

/// The same config under nginx and switchyard.
struct Pair {
    nginx: Nginx,
    switchyard: Balancer,
    nginx_port: u16,
    switchyard_port: u16,
}

impl Pair {
    /// `template` goes inside `http { }`; `LISTEN` in it becomes each side's
    /// own `127.0.0.1:PORT`.
    fn start(template: &str) -> Pair {
        let nginx_port = free_port();
        let switchyard_port = free_port();
        let body = |port: u16| {
            format!(
                "{LOG_FORMAT}{}",
                template.replace("LISTEN", &format!("127.0.0.1:{port}"))
            )
        };
        let nginx = Nginx::start(&body(nginx_port), nginx_port);
        let switchyard = Balancer::start_full(
            &format!(
                "error_log logs/error.log info;\nevents {{}}\nhttp {{\n{}\n}}\n",
                body(switchyard_port)
            ),
            &[switchyard_port],
            &[],
        );
        Pair {
            nginx,
            switchyard,
            nginx_port,
            switchyard_port,
        }
    }

    /// A pair proxying `location /` to `upstream up { ... }`.
    fn proxy(upstream: &str, extra: &str) -> Pair {
        Pair::start(&format!(
            "{upstream}\nserver {{\n    listen LISTEN;\n    {extra}\n    \
             location / {{\n        proxy_pass http://up;\n    }}\n}}\n"
        ))
    }

    /// Runs `f` against nginx, then against switchyard.
    fn both<T>(&self, mut f: impl FnMut(u16) -> T) -> (T, T) {
        let n = f(self.nginx_port);
        let s = f(self.switchyard_port);
        (n, s)
    }

    /// Both access logs once each has `n` lines, with peer addresses
    /// replaced by the names in `names`.
    fn access_logs(&self, n: usize, names: &Names) -> (Vec<String>, Vec<String>) {
        wait_until(Duration::from_secs(5), "access log lines", || {
            self.nginx.access_lines().len() >= n && self.switchyard.access_lines().len() >= n
        });
        (
            names.normalize(&self.nginx.access_lines()),
            names.normalize(&self.switchyard.access_lines()),
        )
    }
}

/// Echo backends plus addresses that refuse connections, each with a name.
struct Names {
    echos: Vec<Echo>,
    /// Bound but not listening: connecting gets ECONNREFUSED, and the port
    /// cannot be taken by anything else while the socket lives.
    dead: Vec<socket2::Socket>,
    by_addr: Vec<(String, String)>,
}

impl Names {
    fn new() -> Names {
        Names {
            echos: Vec::new(),
            dead: Vec::new(),
            by_addr: Vec::new(),
        }
    }

    /// Starts an echo backend called `name`; returns its address.
    fn echo(&mut self, name: &str) -> SocketAddr {
        let echo = Echo::start(name, "127.0.0.1:0");
        let addr = echo.addr;
        self.by_addr.push((addr.to_string(), name.to_string()));
        self.echos.push(echo);
        addr
    }

    /// An address that refuses connections, called `name`.
    fn dead(&mut self, name: &str) -> SocketAddr {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let addr = s.local_addr().unwrap().as_socket().unwrap();
        self.dead.push(s);
        self.by_addr.push((addr.to_string(), name.to_string()));
        addr
    }

    /// A backend that answers every request with `status`, called `name`.
    fn status(&mut self, name: &str, status: u16) -> SocketAddr {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let header = format!(
            "HTTP/1.1 {status} Status\r\nX-Served-By: {name}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().take(10_000) {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 8192];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(header.as_bytes());
            }
        });
        self.by_addr.push((addr.to_string(), name.to_string()));
        addr
    }

    fn normalize(&self, lines: &[String]) -> Vec<String> {
        lines
            .iter()
            .map(|line| {
                let mut l = line.clone();
                for (addr, name) in &self.by_addr {
                    l = l.replace(addr.as_str(), name);
                }
                l
            })
            .collect()
    }
}

/// Status and `X-Served-By` (or `-`) of `GET path` on a fresh connection.
fn served(port: u16, path: &str) -> String {
    let r = get(port, path);
    format!("{} {}", r.status, r.header("x-served-by").unwrap_or("-"))
}

/// The `X-Served-By` of `n` requests to `/`, in order.
fn sequence(port: u16, n: usize) -> Vec<String> {
    (0..n).map(|_| served(port, "/")).collect()
}

fn counts(seq: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for s in seq {
        *m.entry(s.clone()).or_insert(0) += 1;
    }
    m
}

/// `GET /` from source address `from` (any 127/8 address: Linux routes the
/// whole block to lo), on a fresh connection.
fn get_from(from: [u8; 4], port: u16) -> Response {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((from, 0)).into())
        .unwrap_or_else(|e| panic!("bind {from:?}: {e}"));
    s.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    let mut stream: TcpStream = s.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(
            format!("GET / HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    read_response(&mut BufReader::new(stream)).expect("response")
}

// ---------------------------------------------------------------- round robin

#[test]
fn round_robin_equal_weights_same_sequence() {
    let mut names = Names::new();
    let (a, b, c) = (names.echo("a"), names.echo("b"), names.echo("c"));
    let pair = Pair::proxy(&upstream_block("up", &[(a, ""), (b, ""), (c, "")]), "");
    let (n, s) = pair.both(|port| sequence(port, 12));
    assert_eq!(n, s, "nginx vs switchyard");
    assert_eq!(n[..3], ["200 a", "200 b", "200 c"]);
}

#[test]
fn round_robin_unequal_weights_same_sequence() {
    let mut names = Names::new();
    let (a, b, c) = (names.echo("a"), names.echo("b"), names.echo("c"));
    let pair = Pair::proxy(
        &upstream_block("up", &[(a, "weight=5"), (b, "weight=1"), (c, "weight=3")]),
        "",
    );
    let (n, s) = pair.both(|port| sequence(port, 27));
    assert_eq!(n, s, "nginx vs switchyard");
    let c = counts(&n);
    assert_eq!((c["200 a"], c["200 b"], c["200 c"]), (15, 3, 9), "{n:?}");
}

#[test]
fn round_robin_down_and_backup_same_sequence() {
    let mut names = Names::new();
    let (a, b, c, d) = (
        names.echo("a"),
        names.echo("b"),
        names.echo("c"),
        names.echo("d"),
    );
    let pair = Pair::proxy(
        &upstream_block(
            "up",
            &[(a, "weight=2"), (b, "down"), (c, ""), (d, "backup")],
        ),
        "",
    );
    let (n, s) = pair.both(|port| sequence(port, 12));
    assert_eq!(n, s, "nginx vs switchyard");
    assert!(
        n.iter().all(|x| x == "200 a" || x == "200 c"),
        "down or backup peer used: {n:?}"
    );
}

// ----------------------------------------------------------------- least_conn

/// Sequential requests leave every peer at 0 connections, so least_conn
/// is its weighted round robin among the ties.
#[test]
fn least_conn_sequential_same_sequence() {
    let mut names = Names::new();
    let (a, b, c) = (names.echo("a"), names.echo("b"), names.echo("c"));
    let pair = Pair::proxy(
        &hash_upstream("least_conn", &[(a, "weight=3"), (b, ""), (c, "weight=2")]),
        "",
    );
    let (n, s) = pair.both(|port| sequence(port, 18));
    assert_eq!(n, s, "nginx vs switchyard");
}

#[test]
fn least_conn_with_dead_peer_and_backup_like_nginx() {
    let mut names = Names::new();
    let a = names.echo("a");
    let x = names.dead("x");
    let y = names.dead("y");
    let b = names.echo("b");
    let pair = Pair::proxy(
        &hash_upstream(
            "least_conn",
            &[(a, ""), (x, "weight=2"), (y, "max_fails=0"), (b, "backup")],
        ),
        "",
    );
    let (n, s) = pair.both(|port| sequence(port, 10));
    assert_eq!(n, s, "nginx vs switchyard");
    let (nl, sl) = pair.access_logs(10, &names);
    assert_eq!(nl, sl, "access logs: nginx vs switchyard");
}

// ------------------------------------------------------- proxy_next_upstream

/// Default `proxy_next_upstream error timeout`: a refusing peer between two
/// live ones is tried, fails, is skipped for fail_timeout; the client never
/// sees the failure, the log shows `dead, next`.
#[test]
fn dead_peer_in_the_middle_is_retried_like_nginx() {
    let mut names = Names::new();
    let a = names.echo("a");
    let x = names.dead("x");
    let c = names.echo("c");
    let pair = Pair::proxy(&upstream_block("up", &[(a, ""), (x, ""), (c, "")]), "");
    let (n, s) = pair.both(|port| sequence(port, 10));
    assert_eq!(n, s, "nginx vs switchyard");
    assert!(n.iter().all(|r| r.starts_with("200 ")), "{n:?}");
    let (nl, sl) = pair.access_logs(10, &names);
    assert_eq!(nl, sl, "access logs: nginx vs switchyard");
    assert!(nl.contains(&"200|x, c|502, 200".to_string()), "{nl:?}");
}

/// Weights and max_fails: a dead peer with max_fails=2 is tried twice before
/// it is skipped, and its effective weight drops on each failure.
#[test]
fn dead_weighted_peer_with_max_fails_like_nginx() {
    let mut names = Names::new();
    let a = names.echo("a");
    let x = names.dead("x");
    let c = names.echo("c");
    let pair = Pair::proxy(
        &upstream_block(
            "up",
            &[(a, "weight=3"), (x, "weight=4 max_fails=2"), (c, "")],
        ),
        "",
    );
    let (n, s) = pair.both(|port| sequence(port, 16));
    assert_eq!(n, s, "nginx vs switchyard");
    let (nl, sl) = pair.access_logs(16, &names);
    assert_eq!(nl, sl, "access logs: nginx vs switchyard");
}

/// max_fails=0: the dead peer is never marked failed, so it is tried on
/// its every turn.
#[test]
fn dead_peer_with_max_fails_0_like_nginx() {
    let mut names = Names::new();
    let a = names.echo("a");
    let x = names.dead("x");
    let pair = Pair::proxy(&upstream_block("up", &[(a, ""), (x, "max_fails=0")]), "");
    let (n, s) = pair.both(|port| sequence(port, 8));
    assert_eq!(n, s, "nginx vs switchyard");
    let (nl, sl) = pair.access_logs(8, &names);
    assert_eq!(nl, sl, "access logs: nginx vs switchyard");
}

/// Every primary refuses: the backup takes over, after the primaries were
/// tried.
#[test]
fn dead_primaries_fall_back_to_backup_like_nginx() {
    let mut names = Names::new();
    let x = names.dead("x");
    let y = names.dead("y");
    let b = names.echo("b");
    let pair = Pair::proxy(
        &upstream_block("up", &[(x, ""), (y, ""), (b, "backup")]),
        "",
    );
    let (n, s) = pair.both(|port| sequence(port, 6));
    assert_eq!(n, s, "nginx vs switchyard");
    assert!(n.iter().all(|r| r == "200 b"), "{n:?}");
    let (nl, sl) = pair.access_logs(6, &names);
    assert_eq!(nl, sl, "access logs: nginx vs switchyard");
    assert_eq!(nl[0], "200|x, y, b|502, 502, 200");
}

/// Every peer refuses: 502 with nginx's page (its signature aside), and the
/// log lists each try, then "no live upstreams" shows as the group name.
#[test]
fn all_peers_dead_gives_the_same_502() {
    let mut names = Names::new();
    let x = names.dead("x");
    let y = names.dead("y");
    let pair = Pair::proxy(&upstream_block("up", &[(x, ""), (y, "")]), "");
    let (n, s) = pair.both(|port| (0..4).map(|_| get(port, "/")).collect::<Vec<_>>());
    for (rn, rs) in n.iter().zip(&s) {
        assert_eq!(rn.status, 502);
        assert_eq!(rs.status, 502);
        assert_same_page(rn, rs);
    }
    let (nl, sl) = pair.access_logs(4, &names);
    assert_eq!(nl, sl, "access logs: nginx vs switchyard");
}

// -------------------------------------------------------------------- ip_hash

/// Client addresses from 40 different /24s (and two in one /24, which nginx
/// hashes alike).
fn client_addresses() -> Vec<[u8; 4]> {
    let mut v: Vec<[u8; 4]> = (0..40u8)
        .map(|i| [127, i / 7, i.wrapping_mul(37), 1 + i])
        .collect();
    v.push([127, 0, 0, 1]);
    v.push([127, 0, 0, 200]);
    v
}

fn ip_hash_mapping(pair: &Pair) -> (Vec<String>, Vec<String>) {
    pair.both(|port| {
        client_addresses()
            .into_iter()
            .map(|from| {
                let r = get_from(from, port);
                format!(
                    "{from:?} {} {}",
                    r.status,
                    r.header("x-served-by").unwrap_or("-")
                )
            })
            .collect()
    })
}

#[test]
fn ip_hash_maps_clients_like_nginx() {
    let mut names = Names::new();
    let (a, b, c) = (names.echo("a"), names.echo("b"), names.echo("c"));
    let pair = Pair::proxy(
        &format!(
            "upstream up {{\n    ip_hash;\n    server {a};\n    server {b} weight=2;\n    server {c};\n}}\n"
        ),
        "",
    );
    let (n, s) = ip_hash_mapping(&pair);
    assert_eq!(n, s, "nginx vs switchyard");
    assert!(counts(&n).len() >= 3, "{n:?}");
}

#[test]
fn ip_hash_with_down_and_dead_peers_like_nginx() {
    let mut names = Names::new();
    let (a, b) = (names.echo("a"), names.echo("b"));
    let x = names.dead("x");
    let d = names.echo("d");
    let pair = Pair::proxy(
        &format!(
            "upstream up {{\n    ip_hash;\n    server {a};\n    server {b} down;\n    server {x};\n    server {d};\n}}\n"
        ),
        "",
    );
    let (n, s) = ip_hash_mapping(&pair);
    assert_eq!(n, s, "nginx vs switchyard");
    let total = client_addresses().len();
    let (nl, sl) = pair.access_logs(total, &names);
    assert_eq!(nl, sl, "access logs: nginx vs switchyard");
}

// ----------------------------------------------------------------------- hash

fn uris() -> Vec<String> {
    (0..150)
        .map(|i| match i % 3 {
            0 => format!("/item/{i}"),
            1 => format!("/user/{}/profile?tab={}", i * 7919, i % 5),
            _ => format!("/static/{i:x}.css"),
        })
        .collect()
}

fn uri_mapping(pair: &Pair) -> (Vec<String>, Vec<String>) {
    pair.both(|port| {
        uris()
            .iter()
            .map(|u| format!("{u} {}", served(port, u)))
            .collect()
    })
}

fn hash_upstream(method: &str, servers: &[(SocketAddr, &str)]) -> String {
    let mut s = format!("upstream up {{\n    {method};\n");
    for (addr, params) in servers {
        s.push_str(&format!("    server {addr} {params};\n"));
    }
    s.push_str("}\n");
    s
}

#[test]
fn hash_request_uri_maps_like_nginx() {
    let mut names = Names::new();
    let (a, b, c) = (names.echo("a"), names.echo("b"), names.echo("c"));
    let pair = Pair::proxy(
        &hash_upstream("hash $request_uri", &[(a, ""), (b, "weight=2"), (c, "")]),
        "",
    );
    let (n, s) = uri_mapping(&pair);
    assert_eq!(n, s, "nginx vs switchyard");
}

/// A refusing peer makes nginx rehash (`crc32(N KEY)`) to another one:
/// the same retries, in the same order.
#[test]
fn hash_with_dead_peer_rehashes_like_nginx() {
    let mut names = Names::new();
    let (a, b) = (names.echo("a"), names.echo("b"));
    let x = names.dead("x");
    let pair = Pair::proxy(
        &hash_upstream("hash $request_uri", &[(a, ""), (x, ""), (b, "")]),
        "",
    );
    let (n, s) = uri_mapping(&pair);
    assert_eq!(n, s, "nginx vs switchyard");
    let (nl, sl) = pair.access_logs(uris().len(), &names);
    assert_eq!(nl, sl, "access logs: nginx vs switchyard");
}

#[test]
fn consistent_hash_maps_and_remaps_like_nginx() {
    let mut names = Names::new();
    let peers = [
        names.echo("a"),
        names.echo("b"),
        names.echo("c"),
        names.echo("d"),
    ];
    let all: Vec<(SocketAddr, &str)> = vec![
        (peers[0], ""),
        (peers[1], "weight=2"),
        (peers[2], ""),
        (peers[3], ""),
    ];
    let method = "hash $request_uri consistent";
    let before = Pair::proxy(&hash_upstream(method, &all), "");
    let (n1, s1) = uri_mapping(&before);
    assert_eq!(n1, s1, "nginx vs switchyard, four servers");
    drop(before);

    // c removed: only its keys may move.
    let three: Vec<_> = all
        .iter()
        .copied()
        .filter(|(a, _)| *a != peers[2])
        .collect();
    let after = Pair::proxy(&hash_upstream(method, &three), "");
    let (n2, s2) = uri_mapping(&after);
    assert_eq!(n2, s2, "nginx vs switchyard, c removed");
    for (old, new) in n1.iter().zip(&n2) {
        if old != new {
            assert!(old.ends_with(" c"), "{old} moved to {new}");
        }
    }
}

/// nginx's ketama points hash the server *as written* (`localhost:PORT`),
/// not the address it resolves to.
#[test]
fn consistent_hash_with_host_names_like_nginx() {
    let mut names = Names::new();
    let peers = [names.echo("a"), names.echo("b"), names.echo("c")];
    let mut up = "upstream up {\n    hash $request_uri consistent;\n".to_string();
    for p in &peers {
        up.push_str(&format!("    server localhost:{};\n", p.port()));
    }
    up.push_str("}\n");
    let pair = Pair::proxy(&up, "");
    let (n, s) = uri_mapping(&pair);
    assert_eq!(n, s, "nginx vs switchyard");
}

// --------------------------------------------------------------------- random

/// Pearson's chi-square of observed counts against expected proportions.
fn chi_square(observed: &[usize], expected: &[f64]) -> f64 {
    let total: usize = observed.iter().sum();
    observed
        .iter()
        .zip(expected)
        .map(|(&o, &p)| {
            let e = p * total as f64;
            (o as f64 - e).powi(2) / e
        })
        .sum()
}

fn random_case(method: &str, expected: [f64; 3]) {
    const N: usize = 900;
    let mut names = Names::new();
    let (a, b, c) = (names.echo("a"), names.echo("b"), names.echo("c"));
    let pair = Pair::proxy(
        &hash_upstream(method, &[(a, ""), (b, "weight=2"), (c, "weight=3")]),
        "",
    );
    let (n, s) = pair.both(|port| counts(&sequence(port, N)));
    for (who, m) in [("nginx", &n), ("switchyard", &s)] {
        let observed: Vec<usize> = ["200 a", "200 b", "200 c"]
            .iter()
            .map(|k| m.get(*k).copied().unwrap_or(0))
            .collect();
        assert_eq!(observed.iter().sum::<usize>(), N, "{who}: {m:?}");
        let x2 = chi_square(&observed, &expected);
        // df = 2: P(chi2 > 20) ~ 4.5e-5.
        assert!(
            x2 < 20.0,
            "{who} {method}: {observed:?} vs {expected:?}, chi2 = {x2:.1}"
        );
    }
}

#[test]
fn random_distribution_like_nginx() {
    random_case("random", [1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]);
}

/// `random two` with sequential requests: both peers have 0 connections,
/// so nginx keeps the second draw, which must differ from the first:
/// P(i) = sum over j != i of w_j/W * w_i/(W - w_j).
#[test]
fn random_two_distribution_like_nginx() {
    let w = [1.0, 2.0, 3.0];
    let total: f64 = w.iter().sum();
    let mut p = [0.0; 3];
    for i in 0..3 {
        for j in 0..3 {
            if i != j {
                p[i] += w[j] / total * w[i] / (total - w[j]);
            }
        }
    }
    random_case("random two", p);
}

// --------------------------------------------------------- plain responses

/// An nginx-made page with the server's signature made neutral.
fn neutral(r: &Response) -> String {
    let text = r.text();
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        if line.starts_with("<hr><center>") {
            out.push_str("<hr><center>SIGNATURE</center>\r\n");
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Same status, same framing and type, same page but for the signature
/// (`nginx/1.22.1` vs `switchyard/...`).
fn assert_same_page(n: &Response, s: &Response) {
    let what = format!("nginx {n:?}\nswitchyard {s:?}");
    assert_eq!(n.status, s.status, "{what}");
    assert_eq!(n.header("content-type"), s.header("content-type"), "{what}");
    assert_eq!(n.header("location"), s.header("location"), "{what}");
    assert_eq!(
        without_peer_port(&neutral(n)),
        without_peer_port(&neutral(s)),
        "{what}"
    );
    assert_eq!(
        n.header("content-length").is_some(),
        s.header("content-length").is_some(),
        "{what}"
    );
    let mut nh: Vec<String> = n.headers.keys().cloned().collect();
    let mut sh: Vec<String> = s.headers.keys().cloned().collect();
    nh.sort();
    sh.sort();
    assert_eq!(nh, sh, "header names: {what}");
}

#[test]
fn return_responses_like_nginx() {
    let pair = Pair::start(
        "server {\n    listen LISTEN;\n    \
         location = /text { return 200 \"hello\\n\"; }\n    \
         location = /created { return 201 \"made\"; }\n    \
         location = /gone { return 410; }\n    \
         location = /missing { return 404; }\n    \
         location = /moved { return 301 http://example.com/elsewhere; }\n    \
         location = /found { return 302 http://example.com/x; }\n    \
         location = /empty { return 204; }\n    \
         location / { return 200 \"root\"; }\n}\n",
    );
    for path in [
        "/text", "/created", "/gone", "/missing", "/moved", "/found", "/empty", "/other",
    ] {
        let (n, s) = pair.both(|port| get(port, path));
        assert_same_page(&n, &s);
    }
}

#[test]
fn proxied_response_headers_like_nginx() {
    let mut names = Names::new();
    let a = names.echo("a");
    let pair = Pair::proxy(&upstream_block("up", &[(a, "")]), "");
    for path in ["/", "/?status=404", "/?status=503", "/x?size=100"] {
        let (n, s) = pair.both(|port| get(port, path));
        assert_same_page(&n, &s);
        assert_eq!(
            without_peer_port(&n.text()),
            without_peer_port(&s.text()),
            "{path}: bodies differ"
        );
    }
}

/// The echo's description with the proxy's source port (`"peer":"..."`)
/// blanked: nginx and switchyard connect from different ports.
fn without_peer_port(body: &str) -> String {
    match body.find("\"peer\":\"") {
        Some(start) => {
            let value = start + "\"peer\":\"".len();
            let end = body[value..].find('"').map_or(body.len(), |e| value + e);
            format!("{}PEER{}", &body[..value], &body[end..])
        }
        None => body.to_string(),
    }
}

/// `return 418` (a code nginx has no page for: 417-420, 422-428, 506,
/// 508 and up): nginx sends an empty body without Content-Type.
#[test]
fn return_code_without_nginx_page_like_nginx() {
    let pair = Pair::start("server {\n    listen LISTEN;\n    location / { return 418; }\n}\n");
    let (n, s) = pair.both(|port| get(port, "/"));
    assert_same_page(&n, &s);
}

/// `return 301 /path`: nginx makes the Location absolute
/// (`absolute_redirect on`, `port_in_redirect on`:
/// `http://localhost:PORT/path`).
#[test]
fn relative_return_redirect_like_nginx() {
    let pair =
        Pair::start("server {\n    listen LISTEN;\n    location / { return 301 /elsewhere; }\n}\n");
    let (n, s) = pair.both(|port| {
        let r = get(port, "/");
        r.header("location")
            .map(|l| l.replace(&port.to_string(), "PORT"))
    });
    assert_eq!(n, s);
}

#[test]
fn next_upstream_http_502_moves_on_like_nginx() {
    let mut names = Names::new();
    let a = names.echo("a");
    let b = names.status("b", 502);
    let c = names.echo("c");
    let pair = Pair::proxy(
        &upstream_block(
            "up",
            &[(a, "max_fails=0"), (b, "max_fails=0"), (c, "max_fails=0")],
        ),
        "proxy_next_upstream error timeout http_502;",
    );
    let (n, s) = pair.both(|port| sequence(port, 9));
    assert_eq!(n, s, "nginx vs switchyard");
    assert!(n.iter().all(|r| r.starts_with("200 ")), "{n:?}");
    let (nl, sl) = pair.access_logs(9, &names);
    assert_eq!(nl, sl, "access logs: nginx vs switchyard");
    assert!(nl.contains(&"200|b, c|502, 200".to_string()), "{nl:?}");
}

#[test]
fn next_upstream_off_passes_errors_like_nginx() {
    let mut names = Names::new();
    let a = names.echo("a");
    let b = names.status("b", 503);
    let x = names.dead("x");
    let pair = Pair::proxy(
        &upstream_block(
            "up",
            &[(a, "max_fails=0"), (b, "max_fails=0"), (x, "max_fails=0")],
        ),
        "proxy_next_upstream off;",
    );
    let (n, s) = pair.both(|port| sequence(port, 9));
    assert_eq!(n, s, "nginx vs switchyard");
    assert!(
        n.contains(&"503 b".to_string()) && n.contains(&"502 -".to_string()),
        "{n:?}"
    );
    let (nl, sl) = pair.access_logs(9, &names);
    assert_eq!(nl, sl, "access logs: nginx vs switchyard");
}

#[test]
fn next_upstream_tries_limit_like_nginx() {
    let mut names = Names::new();
    let x = names.dead("x");
    let y = names.dead("y");
    let c = names.echo("c");
    let pair = Pair::proxy(
        &upstream_block(
            "up",
            &[(x, "max_fails=0"), (y, "max_fails=0"), (c, "max_fails=0")],
        ),
        "proxy_next_upstream_tries 2;",
    );
    let (n, s) = pair.both(|port| sequence(port, 6));
    assert_eq!(n, s, "nginx vs switchyard");
    let (nl, sl) = pair.access_logs(6, &names);
    assert_eq!(nl, sl, "access logs: nginx vs switchyard");
    assert!(nl.contains(&"502|x, y|502, 502".to_string()), "{nl:?}");
}

#[test]
fn post_is_not_resent_after_a_503_like_nginx() {
    let mut names = Names::new();
    let b = names.status("b", 503);
    let c = names.echo("c");
    let pair = Pair::proxy(
        &upstream_block("up", &[(b, "max_fails=0"), (c, "max_fails=0")]),
        "proxy_next_upstream error timeout http_503;",
    );
    let post_seq = |port: u16| -> Vec<String> {
        (0..6)
            .map(|_| {
                let r = support::post(port, "/", b"{}");
                format!("{} {}", r.status, r.header("x-served-by").unwrap_or("-"))
            })
            .collect()
    };
    let (n, s) = pair.both(post_seq);
    assert_eq!(n, s, "nginx vs switchyard");
    assert!(n.contains(&"503 b".to_string()), "{n:?}");
}
