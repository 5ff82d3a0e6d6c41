//! The typed configuration: what the rest of switchyard reads. Every value
//! here was checked when the file was loaded; nothing downstream parses text.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nginx_conf::Position;

use crate::observe::log_format::LogFormat;
use crate::observe::ErrorLevel;

/// A whole loaded configuration.
#[derive(Debug, Clone)]
pub struct Model {
    /// The main configuration file.
    pub conf_file: PathBuf,
    /// The prefix (`-p`), with a trailing slash.
    pub prefix: PathBuf,
    /// Top-level settings.
    pub main: Main,
    /// The `http` block, if there is one.
    pub http: Option<Http>,
    /// The `stream` block, if there is one.
    pub stream: Option<Stream>,
    /// Every access-log file a fixed path names, at any level (nginx opens
    /// them all, used or not), and how it buffers its lines: a property of
    /// the file, shared by every `access_log` (http or stream) naming it.
    pub access_log_files: Vec<(PathBuf, Option<LogBuffering>)>,
}

/// The `stream` block.
#[derive(Debug, Clone)]
pub struct Stream {
    /// Upstream groups (a namespace of their own, apart from http's),
    /// implicit `host:port` ones included.
    pub upstreams: Vec<Arc<UpstreamConfig>>,
    /// Servers in file order.
    pub servers: Vec<Arc<StreamServer>>,
    /// `map` blocks, by the variable they define (without `$`).
    pub maps: Arc<std::collections::HashMap<String, Arc<MapConfig>>>,
    /// `split_clients` blocks, by the variable they define (without `$`).
    pub split_clients: Arc<std::collections::HashMap<String, Arc<SplitClients>>>,
    /// `geo` blocks, by the variable they define (without `$`).
    pub geos: Arc<std::collections::HashMap<String, Arc<crate::geo::Geo>>>,
    /// `limit_conn_zone` zones.
    pub limit_zones: Vec<Arc<LimitConnZone>>,
}

/// A `limit_conn_zone KEY zone=NAME:SIZE`.
#[derive(Debug, Clone)]
pub struct LimitConnZone {
    /// The zone's name.
    pub name: String,
    /// The key whose values are counted (an empty value is not counted).
    pub key: crate::vars::Template,
    /// The key as written (for messages, and to keep a zone's counts
    /// across a reload only while its key is the same).
    pub key_text: String,
    /// The zone's size in bytes: how many keys it can count at once.
    pub size: u64,
}

/// A `limit_req_zone KEY zone=NAME:SIZE rate=RATE`.
#[derive(Debug, Clone)]
pub struct LimitReqZone {
    /// The zone's name.
    pub name: String,
    /// The key whose values are limited (an empty value is not limited).
    pub key: crate::vars::Template,
    /// The key as written.
    pub key_text: String,
    /// The rate in thousandths of a request per second, as nginx keeps it.
    pub rate: u64,
    /// The zone's size in bytes: how many keys it can remember.
    pub size: u64,
}

/// A `limit_req zone=NAME [burst=N] [nodelay | delay=N]`.
#[derive(Debug, Clone)]
pub struct LimitReq {
    /// The zone.
    pub zone: Arc<LimitReqZone>,
    /// The burst in thousandths of a request.
    pub burst: u64,
    /// The excess served without delay, in thousandths of a request.
    pub delay: u64,
}

/// A level's request, connection and rate limits (limit_req, limit_conn,
/// limit_rate).
#[derive(Debug, Clone)]
pub struct Limits {
    /// `limit_req` lines, in order.
    pub req: Vec<LimitReq>,
    /// `limit_req_status` (503).
    pub req_status: u16,
    /// `limit_req_log_level` (error).
    pub req_log_level: crate::observe::ErrorLevel,
    /// The level of "delaying request" lines: one below the refusal's.
    pub req_delay_log_level: crate::observe::ErrorLevel,
    /// `limit_req_dry_run`.
    pub req_dry_run: bool,
    /// `limit_conn` lines, in order.
    pub conn: Vec<LimitConn>,
    /// `limit_conn_status` (503).
    pub conn_status: u16,
    /// `limit_conn_log_level` (error).
    pub conn_log_level: crate::observe::ErrorLevel,
    /// `limit_conn_dry_run`.
    pub conn_dry_run: bool,
    /// `limit_rate` (bytes per second; variables allowed).
    pub rate: Option<crate::vars::Template>,
    /// `limit_rate_after`.
    pub rate_after: Option<crate::vars::Template>,
}

/// `limit_conn ZONE N` with `limit_conn_log_level` and `limit_conn_dry_run`.
#[derive(Debug, Clone)]
pub struct LimitConn {
    /// The zone counted in.
    pub zone: Arc<LimitConnZone>,
    /// Sessions allowed at once per key value.
    pub max: u32,
}

/// A `split_clients KEY $name { PERCENT% VALUE; ... * VALUE; }` block.
#[derive(Debug, Clone)]
pub struct SplitClients {
    /// The key hashed (MurmurHash2, as nginx).
    pub source: crate::vars::Template,
    /// Upper hash bounds (exclusive) with their values, in order; a bound
    /// of 0 takes every hash left (`*`, or the part reaching 100%).
    pub parts: Vec<(u32, String)>,
}

impl SplitClients {
    /// The value for `source`'s variables (empty when no part matches).
    pub fn value(&self, source: &dyn crate::vars::VarSource) -> String {
        let key = self.source.render(source);
        let hash = murmur_hash2(key.as_bytes());
        self.parts
            .iter()
            .find(|(bound, _)| hash < *bound || *bound == 0)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// nginx's `ngx_murmur_hash2` (MurmurHash2 by Austin Appleby, seed 0).
pub fn murmur_hash2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// What a stream server does with a session (its content handler).
#[derive(Debug, Clone)]
pub enum StreamHandler {
    /// `proxy_pass`: the upstream group, or an implicit one-server group.
    Proxy(ProxyTarget),
    /// `proxy_pass` with variables: evaluated per session to an upstream
    /// name or an `address:port`.
    ProxyVars(crate::vars::Template),
    /// `return VALUE`: send the value and close.
    Return(crate::vars::Template),
    /// Neither: nginx ends such a session with status 500.
    None,
}

/// A rate in bytes per second, as written or from variables (evaluated
/// when the session connects, as nginx evaluates it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rate {
    /// A size checked at load time (0: no limit).
    Fixed(u64),
    /// A template whose value is a size; an invalid value is no limit.
    Vars(crate::vars::Template),
}

impl Rate {
    /// The rate for `source`'s variables.
    pub fn value(&self, source: &dyn crate::vars::VarSource) -> u64 {
        match self {
            Rate::Fixed(n) => *n,
            Rate::Vars(t) => super::values::parse_size(&t.render(source)).unwrap_or(0),
        }
    }

    /// Whether it may limit at all.
    pub fn may_limit(&self) -> bool {
        !matches!(self, Rate::Fixed(0))
    }
}

/// `proxy_bind ADDRESS[:PORT]`, as written or from variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyBind {
    /// An address (port 0 unless given).
    Fixed(SocketAddr),
    /// A template evaluated per session.
    Vars(crate::vars::Template),
}

/// Parses a `proxy_bind` address: `1.2.3.4`, `1.2.3.4:5`, `::1`, `[::1]:5`.
pub fn parse_bind_address(text: &str) -> Option<SocketAddr> {
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Some(SocketAddr::new(ip, 0));
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|ip| SocketAddr::new(ip.into(), 0));
    }
    text.parse::<SocketAddr>().ok()
}

/// One `allow` / `deny` rule (http's and stream's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRule {
    /// `allow` (true) or `deny`.
    pub allow: bool,
    /// The clients it covers.
    pub from: AccessFrom,
}

/// The clients an `allow` / `deny` rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessFrom {
    /// `all`: every client, unix-domain peers included.
    All,
    /// An address or a network of one family.
    Addr(Cidr),
    /// `unix:`: peers of unix-domain sockets.
    Unix,
}

/// One `stream { server { } }`.
#[derive(Debug, Clone)]
pub struct StreamServer {
    /// `proxy_ssl on`: the TLS to the upstream.
    pub upstream_tls: Option<Arc<ProxyTls>>,
    /// `resolver` (the server's or the stream block's), with its
    /// `resolver_timeout`: for the names of a `proxy_pass` with variables.
    pub resolver: Option<Arc<ResolverSettings>>,
    /// Its `listen` lines (at least one: nginx requires it).
    pub listens: Vec<Listen>,
    /// `proxy_pass` or `return` (the last one written, as nginx).
    pub handler: StreamHandler,
    /// `set $name value` lines, run in order before the access check
    /// (nginx's preaccess phase).
    pub set: Vec<(String, crate::vars::Template)>,
    /// `allow`/`deny` rules in order (the server's, else the stream's).
    pub access: Arc<Vec<AccessRule>>,
    /// `limit_conn` lines (the server's, else the stream's).
    pub limit_conn: Vec<LimitConn>,
    /// `limit_conn_log_level` (default error).
    pub limit_conn_log_level: crate::observe::ErrorLevel,
    /// `limit_conn_dry_run` (default off): count and log, never refuse.
    pub limit_conn_dry_run: bool,
    /// `proxy_connect_timeout` (default 60s).
    pub connect_timeout: Duration,
    /// `proxy_timeout` (default 10m): idle time in both directions that
    /// ends the session.
    pub timeout: Duration,
    /// `proxy_next_upstream` (default on): a failed connect moves on.
    pub next_upstream: bool,
    /// `proxy_next_upstream_tries` (0: no limit).
    pub next_upstream_tries: u32,
    /// `proxy_next_upstream_timeout` (0: no limit).
    pub next_upstream_timeout: Duration,
    /// `proxy_buffer_size` (default 16k): each direction's buffer.
    pub buffer_size: usize,
    /// `proxy_half_close` (default off).
    pub half_close: bool,
    /// `proxy_bind`: the local address of upstream connections.
    pub bind: Option<ProxyBind>,
    /// `proxy_socket_keepalive` (default off): SO_KEEPALIVE upstream.
    pub socket_keepalive: bool,
    /// `proxy_download_rate` in bytes per second (default 0: no limit).
    pub download_rate: Rate,
    /// `proxy_upload_rate` in bytes per second (default 0: no limit).
    pub upload_rate: Rate,
    /// `proxy_protocol` (default off): send a PROXY protocol v1 header to
    /// the upstream before the client's bytes.
    pub proxy_protocol: bool,
    /// `proxy_protocol_timeout` (default 30s): for reading the header of a
    /// `listen ... proxy_protocol` connection.
    pub proxy_protocol_timeout: Duration,
    /// `ssl_preread` (default off): read the TLS ClientHello before
    /// proxying, for `$ssl_preread_*`.
    pub ssl_preread: bool,
    /// The server's TLS (`ssl_certificate` and the other `ssl_*`), used by
    /// its `listen ... ssl` addresses; `None` without a certificate.
    pub ssl: Option<Arc<crate::transport::tls_server::TlsServer>>,
    /// `preread_buffer_size` (default 16k): the most bytes read ahead.
    pub preread_buffer_size: usize,
    /// `preread_timeout` (default 30s): how long the preread may wait.
    pub preread_timeout: Duration,
    /// `proxy_responses` (UDP): datagrams expected back per datagram sent;
    /// `None` (nginx's default) means any number, until `proxy_timeout`.
    pub responses: Option<u32>,
    /// `proxy_requests` (UDP, default 0 = no limit): datagrams from the
    /// client after which the session takes no more.
    pub requests: u32,
    /// `tcp_nodelay` (default on).
    pub tcp_nodelay: bool,
    /// `access_log` targets (empty: off, nginx's stream default).
    pub access_log: Vec<AccessLogTarget>,
    /// Where the `server` block is.
    pub position: Position,
}

/// Settings of the main context and `events`.
#[derive(Debug, Clone)]
pub struct Main {
    /// `worker_processes`: worker threads here; `None` means `auto`.
    pub worker_processes: Option<usize>,
    /// `daemon` (default on). switchyard never forks; `on` is accepted and
    /// logged, the process stays in the foreground either way.
    pub daemon: bool,
    /// `pid` (default `logs/nginx.pid` under the prefix, as nginx).
    pub pid: PathBuf,
    /// `error_log` targets of the main context.
    pub error_log: Vec<ErrorLogTarget>,
    /// `worker_connections` (default 512): the cap on client connections per worker.
    pub worker_connections: usize,
    /// `worker_shutdown_timeout` (default: none).
    pub worker_shutdown_timeout: Option<Duration>,
    /// `worker_rlimit_nofile`.
    pub worker_rlimit_nofile: Option<u64>,
}

/// Where an error log goes and from which level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLogTarget {
    /// A file path, or `stderr`.
    pub path: LogPath,
    /// The least severe level written (default `error`).
    pub level: ErrorLevel,
}

/// A log destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogPath {
    /// Standard error.
    Stderr,
    /// A file, opened for appending.
    File(PathBuf),
}

/// The `http` block.
#[derive(Debug, Clone)]
pub struct Http {
    /// Upstream groups, by name.
    pub upstreams: Vec<Arc<UpstreamConfig>>,
    /// Virtual servers in file order.
    pub servers: Vec<Arc<ServerConfig>>,
    /// Named log formats, `combined` included.
    pub log_formats: Vec<(String, Arc<LogFormat>)>,
    /// `map` blocks, by the variable they define (without `$`).
    pub maps: Arc<std::collections::HashMap<String, Arc<MapConfig>>>,
    /// `split_clients` blocks, by the variable they define (without `$`).
    pub split_clients: Arc<std::collections::HashMap<String, Arc<SplitClients>>>,
    /// `geo` blocks, by the variable they define (without `$`).
    pub geos: Arc<std::collections::HashMap<String, Arc<crate::geo::Geo>>>,
    /// `limit_req_zone` zones.
    pub limit_req_zones: Vec<Arc<LimitReqZone>>,
    /// `limit_conn_zone` zones.
    pub limit_conn_zones: Vec<Arc<LimitConnZone>>,
}

/// A `map $src $dst { ... }` block.
#[derive(Debug, Clone)]
pub struct MapConfig {
    /// The source value (`$src`, or any template).
    pub source: crate::vars::Template,
    /// The keys that are not regexes: exact ones, lower case (nginx
    /// matches strings ignoring case), and hostname masks.
    pub keys: super::map_hostnames::Hostnames<crate::vars::Template>,
    /// `hostnames`: a trailing dot of the source value is dropped.
    pub hostnames: bool,
    /// Regex keys in file order.
    pub regexes: Vec<(regex::Regex, crate::vars::Template)>,
    /// `default` (empty when not given).
    pub default: crate::vars::Template,
    /// `volatile`: the value is made again each time it is read; without
    /// it a request keeps the first value it read (nginx caches map
    /// variables for the request, across internal redirects).
    pub volatile: bool,
}

impl MapConfig {
    /// The value for `source`'s variables: the exact key (ignoring case),
    /// else a hostname mask, else the first regex that matches, else
    /// `default`. A regex key's value may name its captures (`$1`, `$name`).
    pub fn value(&self, source: &dyn crate::vars::VarSource) -> String {
        let mut key = self.source.render(source);
        if self.hostnames && key.ends_with('.') {
            key.pop();
        }
        let lower = key.to_ascii_lowercase();
        if let Some(v) = self.keys.find(&lower) {
            return v.render(source);
        }
        for (re, v) in &self.regexes {
            if let Some(captures) = re.captures(&key) {
                return v.render(&Captured {
                    inner: source,
                    re,
                    captures,
                });
            }
        }
        self.default.render(source)
    }
}

/// Variables as seen by the value of a map's regex key: its captures
/// first, then everything else.
struct Captured<'a> {
    inner: &'a dyn crate::vars::VarSource,
    re: &'a regex::Regex,
    captures: regex::Captures<'a>,
}

impl crate::vars::VarSource for Captured<'_> {
    fn var(&self, var: &crate::vars::Var) -> Option<std::borrow::Cow<'_, str>> {
        use crate::vars::Var;
        match var {
            Var::Capture(n) => self
                .captures
                .get(*n)
                .map(|m| std::borrow::Cow::Borrowed(m.as_str())),
            Var::User(name, _)
                if self
                    .re
                    .capture_names()
                    .flatten()
                    .any(|g| g.eq_ignore_ascii_case(name)) =>
            {
                self.re
                    .capture_names()
                    .flatten()
                    .find(|g| g.eq_ignore_ascii_case(name))
                    .and_then(|g| self.captures.name(g))
                    .map(|m| std::borrow::Cow::Borrowed(m.as_str()))
            }
            _ => self.inner.var(var),
        }
    }
}

/// One `upstream` group.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Its name.
    pub name: String,
    /// Its balancing method.
    pub method: balance::Method,
    /// The key of `hash KEY`.
    pub hash_key: Option<crate::vars::Template>,
    /// Its `server` lines.
    pub servers: Vec<UpstreamServer>,
    /// Its active health check, if any.
    pub health_check: Option<HealthCheck>,
    /// The `resolver` in force for it (its own, or inherited from http).
    pub resolver: Option<ResolverSettings>,
    /// `keepalive N` and its companions: the idle connection cache.
    pub keepalive: Option<KeepalivePool>,
    /// Where it was defined.
    pub position: Position,
}

/// One `server` line of an upstream.
#[derive(Debug, Clone)]
pub struct UpstreamServer {
    /// The address exactly as written in the `server` line (`backend`,
    /// `backend:8080`, `[::1]:80`): nginx's server name, which
    /// `hash ... consistent` hashes into its ketama points.
    pub name: String,
    /// The host as written (a name or an address; a socket's path for
    /// `unix:`, as nginx keeps it).
    pub host: String,
    /// The port (default 80; 0 for `unix:`).
    pub port: u16,
    /// `unix:PATH`: the peer is a Unix-domain socket, nothing to resolve.
    pub unix: Option<std::sync::Arc<std::path::Path>>,
    /// `weight=` (default 1).
    pub weight: u32,
    /// `max_fails=` (default 1).
    pub max_fails: u32,
    /// `fail_timeout=` (default 10s).
    pub fail_timeout: Duration,
    /// `backup`.
    pub backup: bool,
    /// `down`.
    pub down: bool,
    /// `max_conns=` (default 0: no limit).
    pub max_conns: u32,
    /// `resolve`: re-resolve the name by its TTL (or the resolver's `valid=`).
    pub resolve: bool,
    /// `service=`: resolve SRV records of this service instead of A/AAAA.
    pub service: Option<String>,
    /// Where the line is.
    pub position: Position,
}

impl UpstreamServer {
    /// A server line with nginx's defaults (`weight=1 max_fails=1
    /// fail_timeout=10s`), as written at `position`.
    pub fn new(name: String, host: String, port: u16, position: Position) -> UpstreamServer {
        UpstreamServer {
            name,
            host,
            port,
            unix: None,
            weight: 1,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            backup: false,
            down: false,
            max_conns: 0,
            resolve: false,
            service: None,
            position,
        }
    }

    /// A `unix:PATH` server line with nginx's defaults.
    pub fn unix(path: &str, position: Position) -> UpstreamServer {
        let mut server = UpstreamServer::new(format!("unix:{path}"), path.to_string(), 0, position);
        server.unix = Some(std::sync::Arc::from(std::path::Path::new(path)));
        server
    }

    /// The name nginx gives the peer: `host:port` as written (`unix:PATH`
    /// for a socket).
    pub fn display_name(&self) -> String {
        if self.unix.is_some() {
            self.name.clone()
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A `listen` address with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// The address to bind: an IP address and port, or a Unix-domain
    /// socket's path (`listen unix:/run/app.sock`).
    pub addr: crate::upstream::addr::PeerAddr,
    /// `default_server`.
    pub default_server: bool,
    /// The parameters that set socket options (`backlog=`, `rcvbuf=`, ...).
    pub socket: SocketOpts,
    /// Whether any socket parameter was written (nginx allows them on one
    /// `listen` of an address only).
    pub options_set: bool,
    /// `ipv6only=` (default on).
    pub ipv6only: bool,
    /// `udp` (stream only): a datagram socket.
    pub udp: bool,
    /// `proxy_protocol` (stream only): each connection starts with a PROXY
    /// protocol header.
    pub proxy_protocol: bool,
    /// `ssl`: connections start with a TLS handshake.
    pub ssl: bool,
    /// `http2` (deprecated in nginx for the `http2` directive): the address
    /// takes HTTP/2, whatever its servers' `http2` say.
    pub http2: bool,
    /// Where it was written.
    pub position: Option<Position>,
}

impl Listen {
    /// `addr` with nginx's defaults for every parameter (backlog 511,
    /// ipv6only on), as written at `position` (`None`: the implicit one).
    pub fn new(
        addr: impl Into<crate::upstream::addr::PeerAddr>,
        position: Option<Position>,
    ) -> Listen {
        Listen {
            addr: addr.into(),
            default_server: false,
            socket: SocketOpts::default(),
            options_set: false,
            ipv6only: true,
            udp: false,
            proxy_protocol: false,
            ssl: false,
            http2: false,
            position,
        }
    }
}

/// The `listen` parameters that set options of the listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketOpts {
    /// `backlog=` (default 511 as nginx on Linux).
    pub backlog: i32,
    /// `rcvbuf=`: SO_RCVBUF.
    pub rcvbuf: Option<usize>,
    /// `sndbuf=`: SO_SNDBUF.
    pub sndbuf: Option<usize>,
    /// `so_keepalive=`: SO_KEEPALIVE and its TCP timers.
    pub keepalive: Option<SoKeepalive>,
    /// `deferred`: TCP_DEFER_ACCEPT (nginx sets 1 second).
    pub deferred: bool,
    /// `fastopen=`: TCP_FASTOPEN's queue length.
    pub fastopen: Option<u32>,
}

impl Default for SocketOpts {
    fn default() -> Self {
        SocketOpts {
            backlog: 511,
            rcvbuf: None,
            sndbuf: None,
            keepalive: None,
            deferred: false,
            fastopen: None,
        }
    }
}

/// `so_keepalive=on|off|[keepidle]:[keepintvl]:[keepcnt]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoKeepalive {
    /// `off`: SO_KEEPALIVE cleared.
    Off,
    /// `on`, or the timers (seconds, count) that are given; the others
    /// keep the system's values.
    On {
        /// TCP_KEEPIDLE.
        idle: Option<u32>,
        /// TCP_KEEPINTVL.
        interval: Option<u32>,
        /// TCP_KEEPCNT.
        count: Option<u32>,
    },
}

/// One virtual `server`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Its `listen` lines (default `*:80`, or `*:8000` when not root, as nginx).
    pub listens: Vec<Listen>,
    /// Its `server_name`s (default: empty name).
    pub names: Vec<String>,
    /// Its locations, in match order as nginx builds it.
    pub locations: Vec<Arc<LocationConfig>>,
    /// Settings at the server level (inherited by locations already).
    pub settings: Arc<Settings>,
    /// `server_name ~regex` names, in file order.
    pub name_regexes: Vec<regex::Regex>,
    /// The first `server_name` as `$server_name` gives it (a regex with
    /// its `~`, as written; empty without one).
    pub primary_name: String,
    /// The server-level rewrite directives (`set`, `return`, `if`,
    /// `rewrite`), run before a location is chosen.
    pub script: Vec<Op>,
    /// `location @name` blocks: reached only by internal redirects.
    pub named_locations: Vec<Arc<LocationConfig>>,
    /// What serves a request no location matches: the server's own
    /// settings, `try_files` and `stub_status` (nginx's server-level
    /// location configuration), built once.
    pub unmatched: Arc<LocationConfig>,
    /// Its TLS context (`ssl_certificate` set here or inherited): what a
    /// handshake on a `listen ... ssl` address uses when SNI (or the
    /// address's default) picks this server.
    pub tls: Option<Arc<crate::transport::tls_server::TlsServer>>,
    /// `ssl_verify_client`: how its requests' client certificates are
    /// judged (by the verdict of whichever context the handshake used).
    pub verify_client: crate::transport::client_cert::VerifyClient,
    /// `ssl_reject_handshake`: a handshake that picks this server (by SNI,
    /// or as the default without one) is refused with `unrecognized_name`.
    pub reject_handshake: bool,
    /// Where its `server {` block is.
    pub position: nginx_conf::Position,
}

/// How a location matches the URI.
#[derive(Debug, Clone)]
pub enum LocationMatch {
    /// `location = /x`.
    Exact(String),
    /// `location /x` (longest prefix wins).
    Prefix(String),
    /// `location ^~ /x` (longest prefix wins and regexes are skipped).
    PrefixNoRegex(String),
    /// `location ~ re` / `location ~* re`.
    Regex(regex::Regex),
    /// `location @name`: never matched by a URI.
    Named(String),
}

/// One `location` block with everything inherited into it.
#[derive(Debug, Clone)]
pub struct LocationConfig {
    /// How it matches.
    pub matcher: LocationMatch,
    /// Nested locations.
    pub nested: Vec<Arc<LocationConfig>>,
    /// What answers requests here.
    pub handler: Handler,
    /// The merged settings.
    pub settings: Arc<Settings>,
    /// The rewrite-phase directives (`set`, `return`, `if`) in file order.
    pub script: Vec<Op>,
    /// `alias`: the location's own, or its enclosing location's.
    pub alias: Option<Alias>,
    /// `internal`: only internal redirects (error_page, index) reach it.
    pub internal: bool,
    /// `try_files` (a location's own: nginx does not inherit it).
    pub try_files: Option<Arc<TryFiles>>,
    /// `limit_except METHOD ... { }`: the methods served by this
    /// configuration, and the one every other method gets.
    pub limit_except: Option<Arc<LimitExcept>>,
}

/// `limit_except`: the methods it lists, and its block's configuration.
#[derive(Debug, Clone)]
pub struct LimitExcept {
    /// The methods listed, in upper case (`GET` brings `HEAD`).
    pub methods: Vec<http::Method>,
    /// The location with the block's directives over it (access, auth,
    /// access_log, proxy_pass), for every other method.
    pub config: Arc<LocationConfig>,
}

impl LimitExcept {
    /// nginx's methods `limit_except` may name.
    pub const METHODS: [&'static str; 14] = [
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "DELETE",
        "MKCOL",
        "COPY",
        "MOVE",
        "OPTIONS",
        "PROPFIND",
        "PROPPATCH",
        "LOCK",
        "UNLOCK",
        "PATCH",
    ];

    /// Whether `method` is served by the location itself.
    pub fn allows(&self, method: &http::Method) -> bool {
        self.methods.contains(method)
    }
}

/// `alias PATH` and the part of the URI it replaces.
#[derive(Debug, Clone)]
pub struct Alias {
    /// The directory (or, in a regex location, the file) it names.
    pub path: PathBuf,
    /// The prefix of the location that set it, replaced by `path`; `None`
    /// in a regex location, where `path` is the whole file name.
    pub prefix: Option<String>,
}

/// `try_files FILE ... URI` / `try_files FILE ... =CODE`.
#[derive(Debug, Clone)]
pub struct TryFiles {
    /// The names tried in order, relative to `root` / `alias`.
    pub files: Vec<TryFile>,
    /// What happens when none exists.
    pub fallback: TryFallback,
}

/// One name tried by `try_files`.
#[derive(Debug, Clone)]
pub struct TryFile {
    /// The name (variables rendered per request), without a trailing `/`.
    pub name: crate::vars::Template,
    /// Written with a trailing `/`: only a directory matches.
    pub dir: bool,
}

/// The last argument of `try_files`.
#[derive(Debug, Clone)]
pub enum TryFallback {
    /// An internal redirect to a URI (with `?args`), or to a named
    /// location when it renders to `@name`.
    Uri(crate::vars::Template),
    /// `=CODE`: finish with this status.
    Code(u16),
}

/// `rewrite REGEX REPLACEMENT [FLAG]`.
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// The regex, tested against `$uri`.
    pub regex: regex::Regex,
    /// The regex as written (nginx's log lines quote it).
    pub pattern: String,
    /// The replacement up to its first literal `?` (all of it for a
    /// redirect, which is sent as one `Location`).
    pub uri: crate::vars::Template,
    /// The replacement after its first literal `?`: the new arguments.
    pub args: Option<crate::vars::Template>,
    /// No trailing `?`: the request's arguments are appended.
    pub add_args: bool,
    /// What happens after a match.
    pub flag: RewriteFlag,
}

/// The flag of `rewrite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteFlag {
    /// None: the script goes on, then the location is searched again.
    None,
    /// `last`: the script stops, the location is searched again.
    Last,
    /// `break`: the script stops, the location stays.
    Break,
    /// `redirect` (302), `permanent` (301), or a replacement that starts
    /// with `http://`, `https://` or `$scheme` (302).
    Redirect(u16),
}

/// One rewrite-module directive, run in file order (nginx's rewrite phase).
#[derive(Debug, Clone)]
pub enum Op {
    /// `set $name value`.
    Set(String, crate::vars::Template),
    /// `return code [text|URL]`: stops the script.
    Return {
        /// The status code.
        code: u16,
        /// The body text or the redirect URL.
        text: Option<crate::vars::Template>,
    },
    /// `if (condition) { ... }`.
    If(Box<IfBlock>),
    /// `rewrite regex replacement [flag]`.
    Rewrite(Box<Rewrite>),
    /// `break`: stops the rewrite directives of this request.
    Break,
}

/// An `if` block.
#[derive(Debug, Clone)]
pub struct IfBlock {
    /// The condition.
    pub condition: Condition,
    /// Its own rewrite directives.
    pub script: Vec<Op>,
    /// In a location: the configuration that applies when it matched
    /// (its settings over the location's, its handler or the location's).
    pub location: Option<Arc<LocationConfig>>,
    /// It has a `proxy_pass` of its own.
    pub own_proxy: bool,
}

/// An `if` condition.
#[derive(Debug, Clone)]
pub enum Condition {
    /// `($var)`: true unless empty or `0`.
    Value(crate::vars::Template),
    /// `($var = text)` / `($var != text)` (negated).
    Equals(crate::vars::Template, crate::vars::Template, bool),
    /// `($var ~ re)`, `~*`, `!~`, `!~*` (negated).
    Matches(crate::vars::Template, regex::Regex, bool),
    /// `-f`/`-d`/`-e`/`-x` and their `!` forms (negated).
    File(crate::vars::Template, FileTest, bool),
}

/// What `-f`, `-d`, `-e` test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileTest {
    /// `-f`: a regular file.
    File,
    /// `-d`: a directory.
    Dir,
    /// `-e`: anything.
    Exists,
    /// `-x`: executable by its owner (nginx tests `S_IXUSR`).
    Exec,
}

/// `add_header NAME VALUE [always]` (and `add_trailer`, of the same form).
#[derive(Debug, Clone)]
pub struct AddHeader {
    /// The header name.
    pub name: String,
    /// The value (an empty result adds nothing).
    pub value: crate::vars::Template,
    /// `always`: on every status, not only 2xx/3xx successes.
    pub always: bool,
}

/// `error_page CODE ... [=[RESPONSE]] URI`.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    /// The statuses it catches.
    pub codes: Vec<u16>,
    /// `=CODE`: answer with this status; `=` alone: the status of the page
    /// itself (`None` inside `Some`); absent: the original status.
    pub response: Option<Option<u16>>,
    /// A local URI (starts with `/`) or an URL (a redirect).
    pub uri: crate::vars::Template,
}

/// `set_real_ip_from`, `real_ip_header`, `real_ip_recursive`.
#[derive(Debug, Clone, Default)]
pub struct RealIp {
    /// Trusted addresses.
    pub from: Vec<Cidr>,
    /// `set_real_ip_from unix:`: peers on Unix sockets are trusted.
    pub from_unix: bool,
    /// The header the client address is taken from; `None` means
    /// `X-Real-IP` (nginx's default).
    pub header: Option<String>,
    /// `real_ip_recursive` (default off).
    pub recursive: bool,
}

/// An address with a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address.
    pub addr: std::net::IpAddr,
    /// Prefix length.
    pub bits: u8,
}

impl Cidr {
    /// Whether `ip` is inside.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            (_, ip) => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.bits as u32)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.bits as u32)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// `keepalive_disable`: the browsers whose requests close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepaliveDisable {
    /// `none` was named (it disables nothing; kept for nginx's warning on
    /// a repeat).
    pub none: bool,
    /// `msie6`: MSIE 4 to 6 (not 6 with SV1), for POST requests only.
    pub msie6: bool,
    /// `safari`: Safari on macOS.
    pub safari: bool,
}

impl Default for KeepaliveDisable {
    /// nginx's default, `msie6`.
    fn default() -> Self {
        KeepaliveDisable {
            none: false,
            msie6: true,
            safari: false,
        }
    }
}

/// What produces a response.
#[derive(Debug, Clone)]
pub enum Handler {
    /// `proxy_pass`.
    Proxy(ProxyPass),
    /// `stub_status`: nginx's basic status text.
    StubStatus,
    /// `metrics` (ours): Prometheus metrics.
    Metrics,
    /// `status_page` (ours): a live HTML page; `*.json` below it is its data.
    StatusPage,
    /// Nothing configured: static files from `root` / `alias`.
    None,
}

/// A `proxy_pass` target.
#[derive(Debug, Clone)]
pub struct ProxyPass {
    /// The upstream group or the single `host:port`, or the URL to
    /// evaluate per request.
    pub target: PassTarget,
    /// The host as written (for `$proxy_host`; includes `:port` unless 80).
    pub proxy_host: String,
    /// `$proxy_port`: the URL's port, else its scheme's (0 for a socket,
    /// which has none).
    pub proxy_port: u16,
    /// The URI part, if the URL has one (`proxy_pass http://u/x/` -> `/x/`).
    pub uri: Option<String>,
    /// The location prefix this proxy_pass replaces when `uri` is set.
    pub location_prefix: Option<String>,
    /// `uri` is the whole URI sent, as written (a `proxy_pass` with
    /// variables whose value has a URI part: nginx replaces nothing).
    pub verbatim_uri: bool,
    /// `https://`: the location's TLS to the upstream (set once the
    /// location's `proxy_ssl_*` settings are merged).
    pub https: bool,
    /// The TLS of an `https://` pass.
    pub tls: Option<Arc<ProxyTls>>,
}

/// A location's TLS to its upstream: the client context and the name.
#[derive(Debug)]
pub struct ProxyTls {
    /// The rustls client context (certificates, verification, sessions).
    pub context: crate::transport::tls_client::UpstreamTls,
    /// `proxy_ssl_name`; without it, the `proxy_pass` host.
    pub name: Option<crate::vars::Template>,
}

impl ProxyPass {
    /// The name of the upstream group it uses (implicit ones by
    /// `host:port`); none for a URL with variables, known per request.
    pub fn target_name(&self) -> Option<&str> {
        match &self.target {
            PassTarget::Fixed(ProxyTarget::Upstream(name)) => Some(name),
            PassTarget::Fixed(ProxyTarget::Implicit(up)) => Some(&up.name),
            PassTarget::Evaluated(_) => None,
        }
    }
}

/// Where an http `proxy_pass` sends requests.
#[derive(Debug, Clone)]
pub enum PassTarget {
    /// A group known at load time.
    Fixed(ProxyTarget),
    /// `proxy_pass` with variables: the URL, evaluated per request, names
    /// an upstream group, an address, a socket or a name to resolve with
    /// the location's `resolver`.
    Evaluated(crate::vars::Template),
}

/// Where `proxy_pass` sends requests.
#[derive(Debug, Clone)]
pub enum ProxyTarget {
    /// A named upstream group.
    Upstream(String),
    /// An implicit one-server group from `http://host:port`.
    Implicit(Arc<UpstreamConfig>),
}

/// Settings that merge down from http to server to location.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `proxy_http_version` (default 1.0).
    pub proxy_http_version_11: bool,
    /// `proxy_set_header` lines, nginx's defaults first (Host, Connection).
    pub proxy_set_headers: Vec<(String, crate::vars::Template)>,
    /// `proxy_connect_timeout` (default 60s).
    pub proxy_connect_timeout: Duration,
    /// `resolver`, with the level's `resolver_timeout` (default 30s): for
    /// the names of a `proxy_pass` with variables.
    pub resolver: Option<Arc<ResolverSettings>>,
    /// `proxy_read_timeout` (default 60s).
    pub proxy_read_timeout: Duration,
    /// `proxy_send_timeout` (default 60s).
    pub proxy_send_timeout: Duration,
    /// `access_log` targets (empty list = off).
    pub access_log: Vec<AccessLogTarget>,
    /// `error_log` of this level, if set here.
    pub error_log: Vec<ErrorLogTarget>,
    /// `client_max_body_size` (default 1m; 0 = no limit).
    pub client_max_body_size: u64,
    /// `client_body_timeout` (default 60s).
    pub client_body_timeout: Duration,
    /// `client_header_timeout` (default 60s).
    pub client_header_timeout: Duration,
    /// `client_header_buffer_size` (default 1k).
    pub client_header_buffer_size: u64,
    /// `large_client_header_buffers` (default 4 8k).
    pub large_client_header_buffers: (u64, u64),
    /// `keepalive_timeout` (default 75s; 0 disables keep-alive).
    pub keepalive_timeout: Duration,
    /// `keepalive_timeout`'s second value: the seconds a
    /// `Keep-Alive: timeout=N` line says (none by default, or for 0).
    pub keepalive_header: Option<u64>,
    /// `keepalive_requests` (default 1000).
    pub keepalive_requests: u64,
    /// `keepalive_time` (default 1h).
    pub keepalive_time: Duration,
    /// `keepalive_disable` (default msie6).
    pub keepalive_disable: KeepaliveDisable,
    /// `send_timeout` (default 60s).
    pub send_timeout: Duration,
    /// `lingering_close`, `lingering_time` and `lingering_timeout`.
    pub lingering: Lingering,
    /// `server_tokens` (default on).
    pub server_tokens: bool,
    /// `ignore_invalid_headers` (default on; http and server): request
    /// header lines with names nginx takes as invalid are left out.
    pub ignore_invalid_headers: bool,
    /// `underscores_in_headers` (default off; http and server): `_` is
    /// valid in a request header name.
    pub underscores_in_headers: bool,
    /// `tcp_nodelay` (default on).
    pub tcp_nodelay: bool,
    /// `http2` (default off): a server that takes HTTP/2.
    pub http2: bool,
    /// `http2_max_concurrent_streams` (default 128).
    pub http2_max_concurrent_streams: u32,
    /// `http2_body_preread_size` (default 64k): each stream's window.
    pub http2_body_preread_size: u32,
    /// `http2_chunk_size` (default 8k): the largest DATA frame sent.
    pub http2_chunk_size: usize,
    /// `proxy_next_upstream`.
    pub proxy_next_upstream: NextUpstream,
    /// `proxy_next_upstream_tries` (0: no limit).
    pub proxy_next_upstream_tries: u32,
    /// `proxy_next_upstream_timeout` (0: no limit).
    pub proxy_next_upstream_timeout: Duration,
    /// `proxy_hide_header` (added to nginx's default hidden headers).
    pub proxy_hide_headers: Vec<String>,
    /// `proxy_pass_header` (lifts nginx's default hiding of a header).
    pub proxy_pass_headers: Vec<String>,
    /// `proxy_ignore_headers`, in lower case: upstream headers whose
    /// meaning is not acted on (only `X-Accel-Redirect` has one here yet).
    pub proxy_ignore_headers: Vec<String>,
    /// `proxy_method`.
    pub proxy_method: Option<crate::vars::Template>,
    /// `proxy_bind`: the local address of upstream connections.
    pub proxy_bind: Option<ProxyBind>,
    /// `proxy_pass_request_headers` (default on).
    pub proxy_pass_request_headers: bool,
    /// `proxy_pass_request_body` (default on).
    pub proxy_pass_request_body: bool,
    /// `proxy_set_body`.
    pub proxy_set_body: Option<crate::vars::Template>,
    /// `proxy_redirect` (default `default`).
    pub proxy_redirect: ProxyRedirect,
    /// `add_header` lines (a level with none of its own inherits).
    pub add_headers: Vec<AddHeader>,
    /// `add_trailer` lines (a level with none of its own inherits).
    pub add_trailers: Vec<AddHeader>,
    /// `proxy_limit_rate` in bytes a second (0: none, and with
    /// `proxy_buffering off`).
    pub proxy_limit_rate: u64,
    /// `chunked_transfer_encoding` (default on).
    pub chunked_transfer_encoding: bool,
    /// `error_page` lines (a level with none of its own inherits).
    pub error_pages: Vec<ErrorPage>,
    /// `proxy_intercept_errors` (default off).
    pub proxy_intercept_errors: bool,
    /// `root` (default `html` under the prefix).
    pub root: PathBuf,
    /// `expires` (default off).
    pub expires: Expires,
    /// `if_modified_since` (default exact).
    pub if_modified_since: IfModifiedSince,
    /// `etag` (default on): files get an entity tag.
    pub etag: bool,
    /// `merge_slashes` (default on; http and server only).
    pub merge_slashes: bool,
    /// `log_not_found` (default on): a missing file's error-log line.
    pub log_not_found: bool,
    /// `index` (default `index.html`); names may hold variables.
    pub index: Vec<crate::vars::Template>,
    /// `default_type` (default `text/plain`).
    pub default_type: String,
    /// `types { }`: extension (lower case) -> MIME type.
    pub types: Arc<std::collections::HashMap<String, String>>,
    /// `absolute_redirect` (default on).
    pub absolute_redirect: bool,
    /// `port_in_redirect` (default on).
    pub port_in_redirect: bool,
    /// `server_name_in_redirect` (default off).
    pub server_name_in_redirect: bool,
    /// The realip module's settings.
    pub real_ip: Arc<RealIp>,
    /// `rewrite_log` (default off): the rewrite module's notice lines.
    pub rewrite_log: bool,
    /// `allow` / `deny` rules in order (the innermost level that has any).
    pub access: Arc<[AccessRule]>,
    /// The gzip module's settings.
    pub gzip: Arc<Gzip>,
    /// limit_req, limit_conn and limit_rate.
    pub limits: Arc<Limits>,
    /// auth_basic and `satisfy`.
    pub auth: Arc<Auth>,
    /// How a request body is read for a module that reads it.
    pub body: Arc<BodyReading>,
    /// `proxy_cookie_domain`, `proxy_cookie_path` and `proxy_cookie_flags`.
    pub proxy_cookie: Arc<ProxyCookie>,
}

/// How a module that reads the request body (the proxy) reads it: the core
/// module's `client_body_*` and the proxy's `proxy_request_buffering`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyReading {
    /// `client_body_buffer_size` (default 8k, nginx's two memory pages on
    /// x86-64): a larger body would go to a temporary file in nginx, so
    /// it has no `$request_body`.
    pub buffer_size: u64,
    /// `client_body_in_file_only` (default off).
    pub in_file_only: InFileOnly,
    /// `client_body_temp_path` (default `client_body_temp` under the prefix).
    pub temp_path: TempPath,
    /// `proxy_request_buffering` (default on): the whole body is read
    /// before the request goes up.
    pub proxy_request_buffering: bool,
}

/// `client_body_in_file_only off | on | clean`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InFileOnly {
    /// A body is written to a file only when it does not fit in memory.
    Off,
    /// Every body read goes to a file, which is kept after the request.
    On,
    /// Every body read goes to a file, removed after the request.
    Clean,
}

/// A temporary files' directory with its hashed subdirectory levels
/// (`client_body_temp_path /spool 1 2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempPath {
    /// The directory.
    pub dir: PathBuf,
    /// The lengths of the subdirectory names (at most 3, summing to at most 10).
    pub levels: Vec<usize>,
}

/// `lingering_close off | on | always` (ngx_http_core_module's enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LingeringClose {
    /// Never: a closing connection is closed at once.
    Off,
    /// When the client may still be sending (a body it was not done with,
    /// bytes already read past the request, the socket readable).
    On,
    /// On every close.
    Always,
}

/// How a connection closes once its last response is written: the write
/// side is shut and what the client still sends is read and dropped, so
/// that the response is not lost to the reset a close with unread bytes
/// causes. `time` and `timeout` also bound the discarding of a body the
/// handler did not read, as nginx's discarding of a body uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lingering {
    /// `lingering_close` (default on).
    pub close: LingeringClose,
    /// `lingering_time` (default 30s): the most the lingering (or the
    /// discarding of a body) goes on for in all.
    pub time: Duration,
    /// `lingering_timeout` (default 5s): the longest wait for the next
    /// bytes while lingering (or discarding).
    pub timeout: Duration,
}

impl Default for Lingering {
    /// nginx's defaults: `on`, 30s, 5s.
    fn default() -> Lingering {
        Lingering {
            close: LingeringClose::On,
            time: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        }
    }
}

/// `if_modified_since off | exact | before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfModifiedSince {
    /// Never 304 by date.
    Off,
    /// 304 when the date is the file's exactly.
    Exact,
    /// 304 when the date is the file's or later.
    Before,
}

/// `expires`: what `Expires` / `Cache-Control` the headers filter sets.
#[derive(Debug, Clone)]
pub enum Expires {
    /// `off`: nothing.
    Off,
    /// `epoch`.
    Epoch,
    /// `max`.
    Max,
    /// `[modified] TIME`: seconds after now (or after Last-Modified).
    After {
        /// Seconds (negative: already expired, `no-cache`).
        seconds: i64,
        /// Counted from the response's Last-Modified when it has one.
        modified: bool,
    },
    /// `@TIME`: the next time the local clock shows this time of day.
    Daily {
        /// Seconds after midnight, at most a day.
        at: i64,
    },
    /// A value with variables, read as the static forms are for each
    /// response; a value that does not read gives no headers.
    Variable {
        /// The value.
        value: Arc<crate::vars::Template>,
        /// `modified` was given.
        modified: bool,
    },
}

/// Why an `expires` value does not read, in nginx's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExpiresError {
    /// Not a time.
    #[error("invalid value")]
    Invalid,
    /// `@TIME` after `modified`.
    #[error("daily time cannot be used with \"modified\" parameter")]
    DailyModified,
    /// `@TIME` past a day.
    #[error("daily time value must be less than 24 hours")]
    DailyTooLong,
}

impl Expires {
    /// Reads a value of `expires` (after `modified` when `modified`), as
    /// ngx_http_parse_expires: `epoch`, `max`, `off` (not after
    /// `modified`), `@TIME`, or a time with an optional sign.
    pub fn parse(text: &str, modified: bool) -> Result<Expires, ExpiresError> {
        if !modified {
            match text {
                "epoch" => return Ok(Expires::Epoch),
                "max" => return Ok(Expires::Max),
                "off" => return Ok(Expires::Off),
                _ => {}
            }
        }
        let (daily, minus, time) = if let Some(rest) = text.strip_prefix('@') {
            if modified {
                return Err(ExpiresError::DailyModified);
            }
            (true, false, rest)
        } else if let Some(rest) = text.strip_prefix('-') {
            (false, true, rest)
        } else {
            (false, false, text.strip_prefix('+').unwrap_or(text))
        };
        let seconds = crate::config::values::parse_time(time)
            .ok_or(ExpiresError::Invalid)?
            .as_secs() as i64;
        if daily {
            if seconds > 24 * 60 * 60 {
                return Err(ExpiresError::DailyTooLong);
            }
            return Ok(Expires::Daily { at: seconds });
        }
        Ok(Expires::After {
            seconds: if minus { -seconds } else { seconds },
            modified,
        })
    }
}

/// `auth_basic`, `auth_basic_user_file`, `auth_request`,
/// `auth_request_set` and `satisfy`.
#[derive(Debug, Clone)]
pub struct Auth {
    /// The realm (`None`: `auth_basic off` or unset).
    pub realm: Option<crate::vars::Template>,
    /// The password file (variables allowed).
    pub user_file: Option<crate::vars::Template>,
    /// `satisfy any` (default all).
    pub satisfy_any: bool,
    /// `auth_request URI` (`None`: off or unset).
    pub request: Option<String>,
    /// `auth_request_set $name value`, evaluated in the subrequest.
    pub request_set: Vec<(String, crate::vars::Template)>,
}

/// ngx_http_gzip_module's settings (with the core module's gzip_*).
#[derive(Debug, Clone)]
pub struct Gzip {
    /// `gzip` (default off).
    pub enable: bool,
    /// `gzip_types` (text/html always).
    pub types: GzipTypes,
    /// `gzip_min_length` (default 20): a known Content-Length below it is
    /// sent as it is.
    pub min_length: u64,
    /// `gzip_comp_level` (1..=9, default 1).
    pub level: u32,
    /// `gzip_proxied` as a mask of [`Proxied`] bits (default off).
    pub proxied: u16,
    /// `gzip_vary` (default off).
    pub vary: bool,
    /// `gzip_http_version 1.1` (the default) rather than 1.0.
    pub http_version_11: bool,
    /// `gzip_disable msie6`.
    pub disable_msie6: bool,
    /// `gzip_disable` regexes, matched case-insensitively on User-Agent.
    pub disable: Vec<regex::Regex>,
    /// `gzip_static` (ngx_http_gzip_static_module; default off).
    pub static_files: GzipStatic,
    /// `gunzip` (ngx_http_gunzip_filter_module; default off).
    pub gunzip: bool,
}

/// `gzip_static`: whether a file's precompressed `.gz` neighbour is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GzipStatic {
    /// `off`: never.
    Off,
    /// `on`: when the client takes gzip (nginx's `ngx_http_gzip_ok`).
    On,
    /// `always`: whatever the client says (for a `gunzip` in front).
    Always,
}

/// `gzip_types`: the MIME types compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GzipTypes {
    /// `*`.
    Any,
    /// These types, lower case.
    List(Vec<String>),
}

impl GzipTypes {
    /// Whether a response of media type `t` (lower case, no parameters)
    /// is compressed.
    pub fn matches(&self, t: &str) -> bool {
        match self {
            GzipTypes::Any => true,
            GzipTypes::List(list) => list.iter().any(|l| l == t),
        }
    }
}

/// The `gzip_proxied` values as nginx's bits.
pub struct Proxied;

impl Proxied {
    /// `off`.
    pub const OFF: u16 = 1 << 1;
    /// `expired`.
    pub const EXPIRED: u16 = 1 << 2;
    /// `no-cache`.
    pub const NO_CACHE: u16 = 1 << 3;
    /// `no-store`.
    pub const NO_STORE: u16 = 1 << 4;
    /// `private`.
    pub const PRIVATE: u16 = 1 << 5;
    /// `no_last_modified`.
    pub const NO_LAST_MODIFIED: u16 = 1 << 6;
    /// `no_etag`.
    pub const NO_ETAG: u16 = 1 << 7;
    /// `auth`.
    pub const AUTH: u16 = 1 << 8;
    /// `any`.
    pub const ANY: u16 = 1 << 9;
    /// Every value by its name.
    pub const ALL: [(&'static str, u16); 9] = [
        ("off", Self::OFF),
        ("expired", Self::EXPIRED),
        ("no-cache", Self::NO_CACHE),
        ("no-store", Self::NO_STORE),
        ("private", Self::PRIVATE),
        ("no_last_modified", Self::NO_LAST_MODIFIED),
        ("no_etag", Self::NO_ETAG),
        ("auth", Self::AUTH),
        ("any", Self::ANY),
    ];
}

/// One `access_log` destination.
#[derive(Debug, Clone)]
pub struct AccessLogTarget {
    /// Where lines go.
    pub path: AccessLogPath,
    /// The format.
    pub format: Arc<LogFormat>,
    /// `if=condition`: a line is written only when it renders to neither
    /// "" nor "0".
    pub condition: Option<crate::vars::Template>,
    /// `buffer=`, `flush=`, `gzip`: lines gather in memory before they are
    /// written. nginx keeps this per file: every `access_log` of one path
    /// must agree.
    pub buffer: Option<LogBuffering>,
}

/// Where an `access_log`'s lines go.
#[derive(Debug, Clone)]
pub enum AccessLogPath {
    /// A file opened once, or standard error.
    Fixed(LogPath),
    /// A path with variables (made absolute with the prefix), evaluated for
    /// each line; the file is opened for that line, as nginx opens it
    /// without `open_log_file_cache`.
    Evaluated {
        /// The path.
        path: crate::vars::Template,
        /// http's: a line is written only when the request's root
        /// directory exists (stream has no root).
        test_root: bool,
        /// `open_log_file_cache` where the log is used: open files kept
        /// between lines.
        cache: Option<LogFileCache>,
    },
}

/// `open_log_file_cache max=N [inactive=T] [min_uses=N] [valid=T]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogFileCache {
    /// The most files kept; a new one pushes out the least recently used.
    pub max: usize,
    /// A file unused this long is closed (default 10s).
    pub inactive: Duration,
    /// A file is kept open once used this many times (default 1).
    pub min_uses: u64,
    /// After this long a kept file is checked to still be the one its name
    /// names (default 60s).
    pub valid: Duration,
}

/// How an access-log file buffers its lines (`buffer=SIZE [flush=TIME]
/// [gzip[=LEVEL]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBuffering {
    /// The buffer's size: a line that would overflow it writes the buffer out
    /// first; a line longer than the whole buffer is written at once.
    pub size: usize,
    /// `flush=`: the longest a line waits in the buffer.
    pub flush: Option<Duration>,
    /// `gzip[=LEVEL]`: each write of the buffer is one gzip member at this
    /// level (1-9; `gzip` alone is 1, and a buffer of 64k unless `buffer=`).
    pub gzip: Option<u32>,
}

/// An active health check (`health_check` in an upstream or in the location
/// that proxies to it, as nginx Plus writes it).
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// `interval=` (default 5s).
    pub interval: Duration,
    /// `fails=` (default 1): consecutive failures that make a peer unhealthy.
    pub fails: u32,
    /// `passes=` (default 1): consecutive successes that make it healthy again.
    pub passes: u32,
    /// `uri=` (default `/`).
    pub uri: String,
    /// `port=`: probe this port instead of the peer's.
    pub port: Option<u16>,
    /// `timeout=` (default 5s, ours: nginx Plus uses the proxy timeouts).
    pub timeout: Duration,
    /// `match=`: the conditions a response must meet (default: status 2xx or 3xx).
    pub matcher: Option<Arc<HealthMatch>>,
    /// `ssl` (ours): probe over TLS, e.g. OpenShift's API `/readyz`.
    pub tls: Option<HealthTls>,
    /// What a probe does: an HTTP request (http's default, and stream's with
    /// `uri=`), or a connection alone (stream's default, as nginx Plus).
    pub probe: Probe,
}

/// The kind of a health probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `GET uri`, judged by status (or `match`).
    Http,
    /// A TCP connection (and the TLS handshake with `ssl`) that succeeds.
    Connect,
}

/// How a health probe speaks TLS: `ssl`, `ssl_trusted_certificate=FILE`
/// (verify against it; without it any certificate is accepted, as a
/// cluster's self-signed API needs) and `ssl_name=NAME` (SNI and the name
/// checked; the peer's address by default).
#[derive(Clone)]
pub struct HealthTls {
    /// The CA file, when the server is verified.
    pub trusted: Option<PathBuf>,
    /// The name sent and verified.
    pub name: Option<String>,
    /// Made when the config is loaded, so a bad CA file fails `-t`.
    pub connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for HealthTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthTls")
            .field("trusted", &self.trusted)
            .field("name", &self.name)
            .finish()
    }
}

impl PartialEq for HealthTls {
    fn eq(&self, other: &Self) -> bool {
        self.trusted == other.trusted && self.name == other.name
    }
}

impl PartialEq for HealthCheck {
    fn eq(&self, other: &Self) -> bool {
        self.interval == other.interval
            && self.fails == other.fails
            && self.passes == other.passes
            && self.uri == other.uri
            && self.port == other.port
            && self.timeout == other.timeout
            && self.matcher.as_ref().map(|m| m.name.clone())
                == other.matcher.as_ref().map(|m| m.name.clone())
            && self.tls == other.tls
            && self.probe == other.probe
    }
}

/// A `match NAME { ... }` block.
#[derive(Debug, Clone)]
pub struct HealthMatch {
    /// Its name.
    pub name: String,
    /// `status` ranges (inclusive); empty means any status.
    pub status: Vec<(u16, u16)>,
    /// `status ! ...`.
    pub status_negated: bool,
    /// `header` conditions.
    pub headers: Vec<HeaderMatch>,
    /// `body ~ re` (false) / `body !~ re` (true).
    pub body: Option<(regex::Regex, bool)>,
}

/// One `header` line of a `match` block.
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    /// The header name (lower case).
    pub name: String,
    /// What it must satisfy.
    pub condition: HeaderCondition,
}

/// How a header is checked.
#[derive(Debug, Clone)]
pub enum HeaderCondition {
    /// `header Name;`
    Present,
    /// `header ! Name;`
    Absent,
    /// `header Name = value;`
    Equals(String),
    /// `header Name != value;`
    NotEquals(String),
    /// `header Name ~ re;`
    Matches(regex::Regex),
    /// `header Name !~ re;`
    NotMatches(regex::Regex),
}

/// A `resolver` directive with `resolver_timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResolverSettings {
    /// The name servers (port 53 unless given).
    pub servers: Vec<SocketAddr>,
    /// `valid=`: how long answers are used, overriding their TTL.
    pub valid: Option<Duration>,
    /// `ipv4=` (default on).
    pub ipv4: bool,
    /// `ipv6=` (default on).
    pub ipv6: bool,
    /// `resolver_timeout` (default 30s).
    pub timeout: Duration,
}

/// An upstream's idle connection cache (`keepalive`, `keepalive_requests`,
/// `keepalive_time`, `keepalive_timeout` in `upstream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepalivePool {
    /// `keepalive N`: idle connections kept by each worker, as nginx's.
    pub idle: usize,
    /// `keepalive_requests` (default 1000).
    pub requests: u64,
    /// `keepalive_time` (default 1h).
    pub time: Duration,
    /// `keepalive_timeout` (default 60s).
    pub timeout: Duration,
}

/// `proxy_next_upstream`: when a request moves on to the next peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextUpstream {
    /// `error`.
    pub error: bool,
    /// `timeout`.
    pub timeout: bool,
    /// `invalid_header`.
    pub invalid_header: bool,
    /// `http_500` ... `http_429`: statuses that move on.
    pub statuses: Vec<u16>,
    /// `non_idempotent`: POST, LOCK and PATCH may move on after being sent.
    pub non_idempotent: bool,
}

impl Default for NextUpstream {
    fn default() -> Self {
        NextUpstream {
            error: true,
            timeout: true,
            invalid_header: false,
            statuses: Vec::new(),
            non_idempotent: false,
        }
    }
}

/// `proxy_redirect`.
#[derive(Debug, Clone)]
pub enum ProxyRedirect {
    /// `default`: the proxy_pass URL becomes the location's prefix.
    Default,
    /// `off`.
    Off,
    /// `proxy_redirect REPLACED REPLACEMENT` lines, in order.
    Rules(Vec<ValueRewrite>),
}

/// One `proxy_redirect`, `proxy_cookie_domain` or `proxy_cookie_path`
/// line: what it replaces and the replacement (variables allowed, and a
/// regex's captures).
#[derive(Debug, Clone)]
pub struct ValueRewrite {
    /// What the line matches.
    pub from: RewriteFrom,
    /// What replaces the matched part.
    pub to: crate::vars::Template,
}

/// What a value-rewriting line matches, as nginx's
/// `ngx_http_proxy_rewrite_*_handler`s do.
#[derive(Debug, Clone)]
pub enum RewriteFrom {
    /// A prefix (variables allowed), compared case-sensitively as nginx's
    /// `ngx_rstrncmp`; the prefix is replaced.
    Prefix(crate::vars::Template),
    /// `proxy_cookie_domain`'s plain domain (its leading dot dropped when
    /// loaded): the whole value, less a leading dot, compared without
    /// regard to case; the dot stays and the rest is replaced.
    Domain(crate::vars::Template),
    /// `~regex` or `~*regex`: a match replaces the whole value, and the
    /// replacement may use its captures.
    Regex(regex::Regex),
}

/// How the upstream's `Set-Cookie` lines are rewritten on the way down.
/// Each list is empty when its directive is `off` or set at no level.
#[derive(Debug, Clone, Default)]
pub struct ProxyCookie {
    /// `proxy_cookie_domain` lines, tried in order on each `Domain`.
    pub domains: Vec<ValueRewrite>,
    /// `proxy_cookie_path` lines, tried in order on each `Path`.
    pub paths: Vec<ValueRewrite>,
    /// `proxy_cookie_flags` lines; the first whose cookie matches applies.
    pub flags: Vec<CookieFlags>,
}

impl ProxyCookie {
    /// Whether no directive rewrites anything (nginx then sets no
    /// `rewrite_cookie` handler and the lines pass as they came).
    pub fn is_off(&self) -> bool {
        self.domains.is_empty() && self.paths.is_empty() && self.flags.is_empty()
    }
}

/// One `proxy_cookie_flags COOKIE FLAG...` line.
#[derive(Debug, Clone)]
pub struct CookieFlags {
    /// Which cookies it applies to, by name.
    pub cookie: CookieName,
    /// The flags, each rendered per response (variables allowed) and
    /// matched against nginx's names then; an unknown one is skipped.
    pub flags: Vec<crate::vars::Template>,
}

/// How `proxy_cookie_flags` names its cookie.
#[derive(Debug, Clone)]
pub enum CookieName {
    /// A name (variables allowed), compared without regard to case.
    Exact(crate::vars::Template),
    /// `~regex`, always caseless, as nginx compiles it.
    Regex(regex::Regex),
}
