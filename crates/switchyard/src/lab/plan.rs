//! What the lab builds for a configuration, decided before anything starts:
//! one echo backend for every upstream address the balancer could connect
//! to, and where the lab's own traffic goes. Pure: reads the model only.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::config::model::{
    Handler, Http, LocationConfig, LocationMatch, Model, ProxyTarget, ServerConfig, StreamHandler,
};

/// One upstream address of the config that an echo backend stands in for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stand {
    /// `host:port` as the balancer looks it up (the lab's map key).
    pub written: String,
    /// The name the echo backend answers with (the host as written).
    pub name: String,
    /// What the backend speaks.
    pub kind: StandKind,
    /// A health check's `port=`: a second echo backend on the same address
    /// answers it (over TLS when the check says `ssl`).
    pub health_port: Option<(u16, bool)>,
}

/// What an echo backend speaks, from what the config expects of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandKind {
    /// HTTP (http upstreams; stream ones that carry plain HTTP).
    Http,
    /// HTTPS: a stream backend checked with `ssl`, or on a port that
    /// carries TLS by convention (443, 6443 and 22623 in OpenShift).
    Https,
    /// A UDP echo, for a stream group that `listen ... udp` servers use.
    Udp,
}

/// Ports whose stream backends the lab simulates with HTTPS.
const TLS_PORTS: [u16; 3] = [443, 6443, 22623];

/// Where one of the lab's requests goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The balancer's listening address, with a wildcard made loopback.
    pub addr: SocketAddr,
    /// The `Host` header: the server's first plain `server_name`, else localhost.
    pub host: String,
    /// The request path.
    pub path: String,
    /// How to speak to the balancer there.
    pub kind: StandKind,
}

impl Target {
    /// How the report names it: the path of an http target, the port of a
    /// stream one (`:6443`, `:53/udp`).
    pub fn label(&self) -> String {
        match (self.path.as_str(), self.kind) {
            ("", StandKind::Udp) => format!(":{}/udp", self.addr.port()),
            ("", _) => format!(":{}", self.addr.port()),
            (path, _) => path.to_string(),
        }
    }
}

/// Every distinct `host:port` of every upstream group, http's and
/// stream's, implicit ones (`proxy_pass http://10.0.0.5:8080`) included, in
/// a stable order. Address literals are here too: the lab maps them like
/// names, so that no request leaves loopback.
pub fn stands(model: &Model) -> Vec<Stand> {
    let mut seen: BTreeMap<String, Stand> = BTreeMap::new();
    let http = model.http.iter().flat_map(|h| h.upstreams.iter());
    for up in http {
        let health_port = up
            .health_check
            .as_ref()
            .and_then(|c| Some((c.port?, c.tls.is_some())));
        for s in &up.servers {
            seen.entry(s.display_name()).or_insert_with(|| Stand {
                written: s.display_name(),
                name: s.host.clone(),
                kind: StandKind::Http,
                health_port,
            });
        }
    }
    if let Some(stream) = &model.stream {
        for up in &stream.upstreams {
            let check = up.health_check.as_ref();
            let health_port = check.and_then(|c| Some((c.port?, c.tls.is_some())));
            let udp = stream.servers.iter().any(|server| {
                server.listens.iter().any(|l| l.udp) && proxies_to(&server.handler, &up.name)
            });
            for s in &up.servers {
                let kind = if udp {
                    StandKind::Udp
                } else if check.is_some_and(|c| c.tls.is_some() && c.port.is_none())
                    || TLS_PORTS.contains(&s.port)
                {
                    StandKind::Https
                } else {
                    StandKind::Http
                };
                seen.entry(s.display_name()).or_insert_with(|| Stand {
                    written: s.display_name(),
                    name: s.host.clone(),
                    kind,
                    health_port,
                });
            }
        }
    }
    seen.into_values().collect()
}

/// Whether a stream server's `proxy_pass` names the group `name`.
fn proxies_to(handler: &StreamHandler, name: &str) -> bool {
    match handler {
        StreamHandler::Proxy(ProxyTarget::Upstream(n)) => n == name,
        StreamHandler::Proxy(ProxyTarget::Implicit(up)) => up.name == name,
        _ => false,
    }
}

/// The lab's traffic to `stream` servers: an HTTP(S) request through each
/// TCP listener, a datagram through each UDP one, as their backends speak.
pub fn stream_targets(model: &Model, stands: &[Stand]) -> Vec<Target> {
    let Some(stream) = &model.stream else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for server in &stream.servers {
        let group = stream
            .upstreams
            .iter()
            .find(|up| proxies_to(&server.handler, &up.name));
        let Some(group) = group else { continue };
        let kind = group
            .servers
            .first()
            .and_then(|s| stands.iter().find(|st| st.written == s.display_name()))
            .map(|st| st.kind)
            .unwrap_or(StandKind::Http);
        for listen in &server.listens {
            let kind = if listen.udp { StandKind::Udp } else { kind };
            let Some(addr) = loopback(&listen.addr) else {
                continue;
            };
            out.push(Target {
                addr,
                host: "localhost".to_string(),
                path: String::new(),
                kind,
            });
        }
    }
    out
}

/// The lab's traffic: for every server, every location that proxies and
/// can be named by a path (exact and prefix locations); `/` of the first
/// server when there is none. With `paths`, those paths on the first server instead.
pub fn targets(http: &Http, paths: &[String]) -> Vec<Target> {
    let kind = StandKind::Http;
    let mut out = Vec::new();
    for server in &http.servers {
        let Some(addr) = server.listens.iter().find_map(|l| loopback(&l.addr)) else {
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
                    kind,
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
                kind,
            };
            if !out.contains(&target) {
                out.push(target);
            }
        }
    }
    // A config that proxies nowhere by path still gets the seed's request.
    if out.is_empty() {
        if let Some((addr, host)) = http.servers.first().and_then(|s| {
            Some((
                s.listens.iter().find_map(|l| loopback(&l.addr))?,
                host_of(s),
            ))
        }) {
            out.push(Target {
                addr,
                host,
                path: "/".to_string(),
                kind,
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
        let Some(addr) = server.listens.iter().find_map(|l| loopback(&l.addr)) else {
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

/// `0.0.0.0:80` -> `127.0.0.1:80`, `[::]:80` -> `[::1]:80`: where the lab
/// connects. The lab's traffic is TCP and UDP: a Unix socket is not one
/// of its targets (`None`).
fn loopback(addr: &crate::upstream::addr::PeerAddr) -> Option<SocketAddr> {
    Some(match addr.inet()? {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, LoadOptions};

    fn load_model(text: &str) -> Model {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, text).unwrap();
        config::load(&LoadOptions {
            conf_file: path,
            prefix: dir.path().to_path_buf(),
            globals: None,
        })
        .unwrap()
        .model
    }

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
        let text = "events {}\nhttp {\n upstream ocp { server 192.168.122.11:80; server 192.168.122.12:80 weight=2; }\n \
             server { listen 127.0.0.1:8080; location / { proxy_pass http://ocp; }\n \
             location /api/ { proxy_pass http://10.1.2.3:9999; } } }\n";
        let s = stands(&load_model(text));
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

    #[test]
    fn stream_backends_speak_what_the_config_expects() {
        let model = load_model(
            "events {}\nstream {\n upstream api { server 192.0.2.11:6443; }\n \
             upstream web { server 192.0.2.21:80; }\n upstream dns { server 192.0.2.53:53; }\n \
             upstream chk { server node:7000; }\n \
             server { listen 6443; proxy_pass api; }\n \
             server { listen 80; proxy_pass web; health_check port=1936 uri=/healthz/ready; }\n \
             server { listen 53 udp; proxy_pass dns; }\n \
             server { listen 7000; proxy_pass chk; health_check uri=/readyz ssl; }\n}\n",
        );
        let s = stands(&model);
        let kind = |w: &str| {
            s.iter()
                .find(|st| st.written == w)
                .map(|st| (st.kind, st.health_port))
        };
        assert_eq!(kind("192.0.2.11:6443"), Some((StandKind::Https, None)));
        assert_eq!(
            kind("192.0.2.21:80"),
            Some((StandKind::Http, Some((1936, false))))
        );
        assert_eq!(kind("192.0.2.53:53"), Some((StandKind::Udp, None)));
        assert_eq!(kind("node:7000"), Some((StandKind::Https, None)));
        let t = stream_targets(&model, &s);
        let kinds: Vec<(u16, StandKind)> = t.iter().map(|t| (t.addr.port(), t.kind)).collect();
        assert_eq!(
            kinds,
            [
                (6443, StandKind::Https),
                (80, StandKind::Http),
                (53, StandKind::Udp),
                (7000, StandKind::Https)
            ]
        );
        assert!(t.iter().all(|t| t.addr.ip().is_loopback()));
    }
}
