//! What the lab builds for a configuration, decided before anything starts:
//! one echo backend for every upstream address the balancer could connect
//! to, and where the lab's own traffic goes. Pure: reads the model only.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::config::model::{Handler, Http, LocationConfig, LocationMatch, ServerConfig};

/// One upstream address of the config that an echo backend stands in for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stand {
    /// `host:port` as the balancer looks it up (the lab's map key).
    pub written: String,
    /// The name the echo backend answers with (the host as written).
    pub name: String,
}

/// Where one of the lab's requests goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The balancer's listening address, with a wildcard made loopback.
    pub addr: SocketAddr,
    /// The `Host` header: the server's first plain `server_name`, else localhost.
    pub host: String,
    /// The request path.
    pub path: String,
}

/// Every distinct `host:port` of every upstream group, implicit ones
/// (`proxy_pass http://10.0.0.5:8080`) included, in a stable order. Address
/// literals are here too: the lab maps them like names, so that no request
/// leaves loopback.
pub fn stands(http: &Http) -> Vec<Stand> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for up in &http.upstreams {
        for s in &up.servers {
            seen.entry(s.display_name())
                .or_insert_with(|| s.host.clone());
        }
    }
    seen.into_iter()
        .map(|(written, name)| Stand { written, name })
        .collect()
}

/// The lab's traffic: for every server, every location that proxies and
/// can be named by a path (exact and prefix locations); `/` of the first
/// server when there is none. With `paths`, those paths on the first server instead.
pub fn targets(http: &Http, paths: &[String]) -> Vec<Target> {
    let mut out = Vec::new();
    for server in &http.servers {
        let Some(addr) = server.listens.first().map(|l| loopback(l.addr)) else {
            continue;
        };
        let host = host_of(server);
        if !paths.is_empty() {
            return paths
                .iter()
                .map(|path| Target {
                    addr,
                    host: host.clone(),
                    path: path.clone(),
                })
                .collect();
        }
        let mut found = Vec::new();
        for location in &server.locations {
            proxied_paths(location, &mut found);
        }
        for path in found {
            let target = Target {
                addr,
                host: host.clone(),
                path,
            };
            if !out.contains(&target) {
                out.push(target);
            }
        }
    }
    // A config that proxies nowhere by path still gets the seed's request.
    if out.is_empty() {
        if let Some((addr, host)) = http
            .servers
            .first()
            .and_then(|s| Some((loopback(s.listens.first()?.addr), host_of(s))))
        {
            out.push(Target {
                addr,
                host,
                path: "/".to_string(),
            });
        }
    }
    out
}

/// The `Host` a request to `server` carries.
fn host_of(server: &ServerConfig) -> String {
    server
        .names
        .iter()
        .find(|n| is_plain_name(n))
        .cloned()
        .unwrap_or_else(|| "localhost".to_string())
}

fn proxied_paths(location: &LocationConfig, out: &mut Vec<String>) {
    if matches!(location.handler, Handler::Proxy(_)) && !location.internal {
        match &location.matcher {
            LocationMatch::Exact(p)
            | LocationMatch::Prefix(p)
            | LocationMatch::PrefixNoRegex(p)
                if p.starts_with('/') =>
            {
                out.push(p.clone());
            }
            _ => {}
        }
    }
    for nested in &location.nested {
        proxied_paths(nested, out);
    }
}

/// The pages a person can open: status page, metrics, stub_status, each
/// as a URL on the first address of its server.
pub fn pages(http: &Http) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for server in &http.servers {
        let Some(addr) = server.listens.first().map(|l| loopback(l.addr)) else {
            continue;
        };
        let mut stack: Vec<&LocationConfig> = server.locations.iter().map(|l| &**l).collect();
        while let Some(location) = stack.pop() {
            stack.extend(location.nested.iter().map(|l| &**l));
            let what = match location.handler {
                Handler::StatusPage => "status page:",
                Handler::Metrics => "metrics:",
                Handler::StubStatus => "stub_status:",
                _ => continue,
            };
            if let LocationMatch::Exact(p)
            | LocationMatch::Prefix(p)
            | LocationMatch::PrefixNoRegex(p) = &location.matcher
            {
                out.push((what, format!("http://{addr}{p}")));
            }
        }
    }
    out.sort();
    out
}

/// A `server_name` a client can send as Host: no wildcard, no regex, not "_".
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "_"
        && !name.starts_with('~')
        && !name.contains('*')
        && !name.starts_with('.')
}

/// `0.0.0.0:80` -> `127.0.0.1:80`, `[::]:80` -> `[::1]:80`: where the lab connects.
fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, LoadOptions};

    fn load(text: &str) -> Http {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, text).unwrap();
        let loaded = config::load(&LoadOptions {
            conf_file: path,
            prefix: dir.path().to_path_buf(),
            globals: None,
        })
        .unwrap();
        loaded.model.http.unwrap()
    }

    #[test]
    fn literals_and_implicit_targets_get_stands() {
        let http = load(
            "events {}\nhttp {\n upstream ocp { server 192.168.122.11:80; server 192.168.122.12:80 weight=2; }\n \
             server { listen 127.0.0.1:8080; location / { proxy_pass http://ocp; }\n \
             location /api/ { proxy_pass http://10.1.2.3:9999; } } }\n",
        );
        let s = stands(&http);
        let written: Vec<&str> = s.iter().map(|s| s.written.as_str()).collect();
        assert_eq!(
            written,
            ["10.1.2.3:9999", "192.168.122.11:80", "192.168.122.12:80"]
        );
        assert_eq!(s[1].name, "192.168.122.11");
    }

    #[test]
    fn traffic_goes_to_every_proxied_location() {
        let http = load(
            "events {}\nhttp {\n upstream a { server a1:80; }\n upstream b { server b1:80; }\n \
             server { listen 8080; server_name *.x example.test;\n \
             location / { proxy_pass http://a; }\n location = /exact { proxy_pass http://b; }\n \
             location ~ \\.php$ { proxy_pass http://b; }\n location /static/ { root /tmp; }\n \
             location /api/ { proxy_pass http://b; } } }\n",
        );
        let t = targets(&http, &[]);
        let paths: Vec<&str> = t.iter().map(|t| t.path.as_str()).collect();
        assert_eq!(paths, ["/", "/exact", "/api/"]);
        assert!(t.iter().all(|t| t.host == "example.test"));
        assert_eq!(t[0].addr, "127.0.0.1:8080".parse().unwrap());
        let t = targets(&http, &["/x".to_string(), "/y".to_string()]);
        let paths: Vec<&str> = t.iter().map(|t| t.path.as_str()).collect();
        assert_eq!(paths, ["/x", "/y"]);
    }
}
