//! The stream block's config tests: defaults, merging, nginx's messages.

use super::super::{load, LoadOptions, Loaded};
use super::*;

fn try_load(stream_body: &str) -> Result<Loaded, ConfigError> {
    let dir = tempfile::tempdir().map_err(|e| ConfigError::bare(e.to_string()))?;
    let path = dir.path().join("nginx.conf");
    let text = format!("events {{}}\nstream {{\n{stream_body}\n}}\n");
    std::fs::write(&path, text).map_err(|e| ConfigError::bare(e.to_string()))?;
    load(&LoadOptions {
        conf_file: path,
        prefix: dir.path().to_path_buf(),
        globals: None,
    })
}

fn stream(body: &str) -> Stream {
    match try_load(body) {
        Ok(l) => l.model.stream.expect("a stream block"),
        Err(e) => panic!("unexpected error: {}", e.lines().join("; ")),
    }
}

fn error(body: &str) -> String {
    match try_load(body) {
        Ok(_) => panic!("loaded, expected an error"),
        Err(e) => e.lines().join("; "),
    }
}

#[test]
fn upstream_and_server_with_defaults() {
    let s = stream(
        "upstream u { hash $remote_addr consistent; server 127.0.0.1:81 weight=2 max_fails=3 fail_timeout=5s; server 127.0.0.1:82 down; }\n\
         server { listen 127.0.0.1:8080; proxy_pass u; }",
    );
    assert_eq!(s.upstreams.len(), 1);
    let up = &s.upstreams[0];
    assert_eq!(up.method, balance::Method::Hash { consistent: true });
    assert_eq!(up.servers[0].weight, 2);
    assert_eq!(up.servers[0].max_fails, 3);
    assert_eq!(up.servers[0].fail_timeout, Duration::from_secs(5));
    assert!(up.servers[1].down);
    let server = &s.servers[0];
    assert_eq!(server.listens[0].addr, "127.0.0.1:8080".parse().unwrap());
    assert!(matches!(&server.handler, StreamHandler::Proxy(ProxyTarget::Upstream(n)) if n == "u"));
    assert_eq!(server.connect_timeout, Duration::from_secs(60));
    assert_eq!(server.timeout, Duration::from_secs(600));
    assert!(server.next_upstream);
    assert_eq!(server.buffer_size, 16384);
    assert!(!server.half_close);
    assert!(server.access_log.is_empty());
}

#[test]
fn settings_merge_from_stream_into_server() {
    let s = stream(
        "proxy_timeout 5s; proxy_next_upstream off; log_format f $remote_addr; access_log x.log f;\n\
         server { listen 127.0.0.1:8080; proxy_pass 127.0.0.1:81; proxy_timeout 1s; proxy_buffer_size 1k; proxy_next_upstream_tries 2; }\n\
         server { listen 127.0.0.1:8081; proxy_pass 127.0.0.1:81; access_log off; }",
    );
    assert_eq!(s.servers[0].timeout, Duration::from_secs(1));
    assert!(!s.servers[0].next_upstream);
    assert_eq!(s.servers[0].buffer_size, 1024);
    assert_eq!(s.servers[0].next_upstream_tries, 2);
    assert_eq!(s.servers[0].access_log.len(), 1);
    assert_eq!(s.servers[1].timeout, Duration::from_secs(5));
    assert!(s.servers[1].access_log.is_empty());
    // One implicit group for the two servers that name the same address.
    assert_eq!(s.upstreams.len(), 1);
    assert_eq!(s.upstreams[0].name, "127.0.0.1:81");
}

#[test]
fn stream_variables_only() {
    stream("log_format f $bytes_received:$upstream_bytes_sent:$session_time:$protocol;");
    let e = error("log_format f $request;");
    assert!(e.starts_with("unknown \"request\" variable in "), "{e}");
}

#[test]
fn nginx_messages_with_positions() {
    let cases = [
        ("upstream u { server 127.0.0.1; }", "no port in upstream \"127.0.0.1\" in "),
        ("upstream u { keepalive 2; server 127.0.0.1:80; }", "\"keepalive\" directive is not allowed here in "),
        ("upstream u { ip_hash; server 127.0.0.1:80; }", "\"ip_hash\" directive is not allowed here in "),
        ("upstream u { }", "no servers are inside upstream in "),
        ("server { proxy_pass 127.0.0.1:80; }", "no \"listen\" is defined for server in "),
        ("server { listen 127.0.0.1; proxy_pass 127.0.0.1:80; }", "no port in \"127.0.0.1\" of the \"listen\" directive in "),
        ("server { listen 127.0.0.1:80; proxy_pass backend; }", "no port in upstream \"backend\" in "),
        ("server { listen 127.0.0.1:80; proxy_pass 127.0.0.1:81; proxy_timeout x; }", "\"proxy_timeout\" directive invalid value in "),
        ("server { listen 127.0.0.1:80; proxy_pass 127.0.0.1:81; proxy_half_close yes; }", "invalid value \"yes\" in \"proxy_half_close\" directive, it must be \"on\" or \"off\" in "),
        ("server { listen 127.0.0.1:80; proxy_pass 127.0.0.1:81; access_log x.log; }", "log format is not specified in "),
        ("server { listen 127.0.0.1:80; proxy_pass 127.0.0.1:81; location / {} }", "\"location\" directive is not allowed here in "),
        ("server { listen 127.0.0.1:80; proxy_pass 127.0.0.1:81; }\nserver { listen 127.0.0.1:80; proxy_pass 127.0.0.1:81; }", "duplicate \"127.0.0.1:80\" address and port pair in "),
        ("server x { listen 127.0.0.1:80; }", "invalid number of arguments in \"server\" directive in "),
    ];
    for (body, wanted) in cases {
        let e = error(body);
        assert!(e.starts_with(wanted), "{body}: {e}");
        assert!(e.contains("nginx.conf:"), "{body}: no file:line in {e}");
    }
}

#[test]
fn unimplemented_directives_are_named_not_ignored() {
    let e = error(
        "server { listen 127.0.0.1:80; proxy_pass 127.0.0.1:81; proxy_ssl_conf_command a b; ssl_client_certificate c.pem; }",
    );
    assert!(
        e.contains("\"proxy_ssl_conf_command\" is not supported yet in "),
        "{e}"
    );
    assert!(
        e.contains("\"ssl_client_certificate\" is not supported yet in "),
        "{e}"
    );
    let e = error("server { listen 127.0.0.1:80 ssl; proxy_pass 127.0.0.1:81; }");
    assert!(
        e.starts_with("no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive in ")
            && e.contains("nginx.conf:"),
        "{e}"
    );
    let e = error("server { listen 127.0.0.1:80 ssl; ssl_verify_client on; }");
    assert!(
        e.contains("\"ssl_verify_client\" is not supported yet in "),
        "{e}"
    );
    let e = error("error_log logs/s.log;");
    assert!(
        e.starts_with("\"error_log\" in stream is not supported yet"),
        "{e}"
    );
}

#[test]
fn split_clients_bounds_follow_nginx() {
    let s = stream("split_clients $remote_addr $x { 50% a; 25.5% b; * c; }");
    let split = &s.split_clients["x"];
    let half = (5000u64 * 0xffff_ffff / 10000) as u32;
    let more = (5000u64 * 0xffff_ffff / 10000 + 2550u64 * 0xffff_ffff / 10000) as u32;
    assert_eq!(
        split.parts,
        vec![
            (half, "a".to_string()),
            (more, "b".to_string()),
            (0, "c".to_string())
        ]
    );
    assert!(error("split_clients $remote_addr $x { 60% a; 50% b; }")
        .starts_with("percent total is greater than 100% in "));
    assert!(error("split_clients $remote_addr $x { 0% a; }")
        .starts_with("invalid percent value \"0%\" in "));
    assert!(
        error("split_clients $remote_addr $x { 1.234% a; }").starts_with("invalid percent value")
    );
}

#[test]
fn udp_listens_and_responses() {
    let s = stream(
        "proxy_responses 1;\n\
         server { listen 127.0.0.1:8080 udp; listen 127.0.0.1:8080; proxy_pass 127.0.0.1:81; proxy_requests 2; }",
    );
    let server = &s.servers[0];
    assert!(
        server.listens[0].udp && !server.listens[1].udp,
        "TCP and UDP may share a port"
    );
    assert_eq!(server.responses, Some(1));
    assert_eq!(server.requests, 2);
    let s = stream("server { listen 127.0.0.1:8080 udp; proxy_pass 127.0.0.1:81; }");
    assert_eq!(s.servers[0].responses, None, "any number by default");
}

#[test]
fn limit_conn_zones_and_limits() {
    let s = stream(
        "limit_conn zone 2;\n\
         server { listen 127.0.0.1:8080; proxy_pass 127.0.0.1:81; }\n\
         server { listen 127.0.0.1:8081; proxy_pass 127.0.0.1:81; limit_conn other 1; limit_conn_log_level warn; }\n\
         limit_conn_zone $binary_remote_addr zone=zone:1m;\n\
         limit_conn_zone $remote_addr zone=other:64k;",
    );
    assert_eq!(s.limit_zones.len(), 2);
    assert_eq!(s.servers[0].limit_conn.len(), 1, "inherited");
    assert_eq!(s.servers[0].limit_conn[0].zone.name, "zone");
    assert_eq!(s.servers[0].limit_conn[0].max, 2);
    assert_eq!(s.servers[1].limit_conn.len(), 1, "its own only");
    assert_eq!(s.servers[1].limit_conn[0].zone.name, "other");
    assert_eq!(s.servers[1].limit_conn_log_level, ErrorLevel::Warn);
    let cases = [
        (
            "limit_conn_zone $remote_addr zone=z:1k;",
            "zone \"zone=z:1k\" is too small in ",
        ),
        (
            "limit_conn_zone $remote_addr size=1m;",
            "invalid parameter \"size=1m\" in ",
        ),
        (
            "limit_conn_zone $remote_addr zone=z:1m; limit_conn_zone $server_addr zone=z:1m;",
            "limit_conn_zone \"z\" is already bound to key \"$remote_addr\" in ",
        ),
        (
            "limit_conn_zone $remote_addr zone=z:1m; limit_conn z 0;",
            "invalid number of connections \"0\" in ",
        ),
        (
            "limit_conn_zone $remote_addr zone=z:1m; limit_conn z 70000;",
            "connection limit must be less 65536 in ",
        ),
        (
            "limit_conn nope 1;",
            "zero size shared memory zone \"nope\"",
        ),
    ];
    for (body, wanted) in cases {
        let e = error(body);
        assert!(e.starts_with(wanted), "{body}: {e}");
    }
}

#[test]
fn resolver_serves_stream_upstreams() {
    let s = stream(
        "upstream u { server example.net:80 resolve; server _x._tcp.example.net service=x; }\n\
         upstream own { resolver 127.0.0.2; server example.org:80 resolve; }\n\
         resolver 127.0.0.1:5353 valid=5s; resolver_timeout 2s;",
    );
    let u = &s.upstreams[0];
    let r = u.resolver.as_ref().expect("the stream resolver");
    assert_eq!(r.servers, vec!["127.0.0.1:5353".parse().unwrap()]);
    assert_eq!(r.timeout, Duration::from_secs(2));
    assert_eq!(
        u.servers[1].service.as_deref(),
        Some("x"),
        "service= needs no port"
    );
    let own = s.upstreams[1].resolver.as_ref().expect("its own resolver");
    assert_eq!(own.servers, vec!["127.0.0.2:53".parse().unwrap()]);
    // A server's own resolver serves its proxy_pass with variables; the
    // block's resolver_timeout applies to it.
    let s = stream(
        "resolver_timeout 3s;\n\
         server { listen 127.0.0.1:80; resolver 127.0.0.1; proxy_pass $remote_addr:81; }",
    );
    let r = s.servers[0]
        .resolver
        .as_ref()
        .expect("the server's resolver");
    assert_eq!(r.servers, vec!["127.0.0.1:53".parse().unwrap()]);
    assert_eq!(r.timeout, Duration::from_secs(3));
}

#[test]
fn rates_fixed_or_from_variables() {
    let s = stream(
        "proxy_download_rate 1k;\n\
         server { listen 127.0.0.1:8080; proxy_pass 127.0.0.1:81; proxy_upload_rate $server_port; }",
    );
    assert_eq!(s.servers[0].download_rate, Rate::Fixed(1024));
    assert!(matches!(s.servers[0].upload_rate, Rate::Vars(_)));
    let e = error("proxy_download_rate fast;");
    assert!(
        e.starts_with("\"proxy_download_rate\" directive invalid value in "),
        "{e}"
    );
}

#[test]
fn proxy_bind_and_keepalive() {
    let s = stream(
        "proxy_bind 127.0.0.2; proxy_socket_keepalive on;\n\
         server { listen 127.0.0.1:8080; proxy_pass 127.0.0.1:81; }\n\
         server { listen 127.0.0.1:8081; proxy_pass 127.0.0.1:81; proxy_bind off; }\n\
         server { listen 127.0.0.1:8082; proxy_pass 127.0.0.1:81; proxy_bind $server_addr; }",
    );
    assert_eq!(
        s.servers[0].bind,
        Some(ProxyBind::Fixed("127.0.0.2:0".parse().unwrap()))
    );
    assert!(s.servers[0].socket_keepalive);
    assert_eq!(s.servers[1].bind, None, "off");
    assert!(matches!(s.servers[2].bind, Some(ProxyBind::Vars(_))));
    assert!(
        error("proxy_bind 127.0.0.2 transparent;").contains("transparent\" is not supported yet")
    );
    assert!(error("proxy_bind nowhere;").starts_with("invalid address \"nowhere\" in "));
}

#[test]
fn murmur_hash2_known_values() {
    // Reference values of MurmurHash2 with seed 0, as nginx computes it.
    assert_eq!(super::super::model::murmur_hash2(b""), 0);
    assert_eq!(super::super::model::murmur_hash2(b"a"), 0x92685f5e);
}

#[test]
fn access_rules_set_and_return() {
    let s = stream(
        "deny 10.0.0.0/8; allow all;\n\
         server { listen 127.0.0.1:8080; set $greeting hi; return $greeting; }\n\
         server { listen 127.0.0.1:8081; deny all; proxy_pass 127.0.0.1:81; }",
    );
    assert_eq!(s.servers[0].access.len(), 2, "inherited from stream");
    assert_eq!(s.servers[1].access.len(), 1, "its own rules only");
    assert!(!s.servers[1].access[0].allow);
    assert_eq!(
        s.servers[1].access[0].from,
        super::super::model::AccessFrom::All
    );
    assert_eq!(s.servers[0].set.len(), 1);
    assert!(matches!(s.servers[0].handler, StreamHandler::Return(_)));
    assert!(
        error("server { listen 127.0.0.1:80; allow 1.2.3; return x; }")
            .starts_with("invalid parameter \"1.2.3\" in ")
    );
}

#[test]
fn datagrams_to_a_socket_are_refused_at_load() {
    let e = error(
        "upstream u { server unix:/tmp/x.sock; }\n\
         server { listen 127.0.0.1:53 udp; proxy_pass u; }",
    );
    assert!(
        e.starts_with("udp proxying to a unix socket is not supported yet in "),
        "{e}"
    );
    // Over TCP the same group is fine.
    let s = stream(
        "upstream u { server unix:/tmp/x.sock; }\n\
         server { listen 127.0.0.1:53; proxy_pass u; }",
    );
    assert!(s.upstreams[0].servers[0].unix.is_some());
}
