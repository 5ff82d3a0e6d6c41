//! One request/response exchange as the logs and variables see it.

use crate::config::access::Client;
use crate::upstream::addr::PeerAddr;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use std::collections::HashMap;

use http::HeaderMap;

use crate::config::model::{LocationConfig, MapConfig};

use crate::observe::time::Civil;
use crate::vars::{ConnectionState, Var, VarSource};

/// Facts about one client connection.
#[derive(Debug)]
pub struct ConnInfo {
    /// nginx's connection serial number (`$connection`, `*N` in the error log).
    pub id: u64,
    /// The client's address (a Unix socket's peer on a `listen unix:`).
    pub remote: PeerAddr,
    /// The address the client connected to: the `listen unix:` path for
    /// a Unix socket.
    pub local: PeerAddr,
    /// Requests served on this connection so far.
    pub requests: std::sync::atomic::AtomicU64,
    /// What its TLS handshake negotiated (`listen ... ssl`); `None` on a
    /// plain connection.
    pub tls: Option<crate::transport::tls_server::Handshake>,
    /// When it was accepted (`$connection_time`; HTTP/2 streams share
    /// their connection's, as nginx's stream connections copy it).
    pub accepted: std::time::Instant,
    /// The client and server a PROXY protocol header named
    /// (`$proxy_protocol_*`, `real_ip_header proxy_protocol`); `None` on an
    /// address without `proxy_protocol`, or when the header named none.
    pub proxy_protocol: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
    /// That header's TLVs (`$proxy_protocol_tlv_*`).
    pub proxy_protocol_tlvs: Option<Box<[u8]>>,
}

/// One attempt on an upstream peer, for `$upstream_*`.
#[derive(Debug, Clone, Default)]
pub struct UpstreamTry {
    /// The peer's address (`$upstream_addr`), or the group name when no peer was live.
    pub addr: std::sync::Arc<str>,
    /// The status it answered, if it answered (`$upstream_status`).
    pub status: Option<u16>,
    /// Seconds to connect.
    pub connect: Option<f64>,
    /// Seconds to the response header.
    pub header: Option<f64>,
    /// Seconds to the end of the response, as far as known when the head
    /// came (a failed attempt's end).
    pub response: Option<f64>,
    /// The end of a response whose body is still being read: the body
    /// marks it when it ends, the log reads it after (nginx's
    /// `$upstream_response_time` runs until the whole response is in).
    pub response_end: Option<ResponseEnd>,
    /// What went up and came down until the response head was in (the
    /// body adds the rest when it ends, on `response_end`).
    pub transfer: Transfer,
}

/// The bytes of one attempt: `$upstream_bytes_sent`,
/// `$upstream_bytes_received` (heads and framing included) and
/// `$upstream_response_length` (the body alone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes written to the upstream.
    pub sent: u64,
    /// Bytes read from the upstream.
    pub received: u64,
    /// Bytes of the response body.
    pub body: u64,
}

impl UpstreamTry {
    /// The attempt's bytes as far as known: the whole, once its body ended.
    pub fn transfer_now(&self) -> Transfer {
        self.response_end
            .as_ref()
            .and_then(ResponseEnd::transfer)
            .unwrap_or(self.transfer)
    }
}

/// When an upstream's response body ended, measured from the attempt's
/// start; shared by the body that ends it and the exchange that logs it.
#[derive(Debug, Clone)]
pub struct ResponseEnd {
    started: Instant,
    /// When it ended and what moved, set once (one allocation for both).
    end: Arc<(std::sync::OnceLock<f64>, std::sync::OnceLock<Transfer>)>,
}

impl ResponseEnd {
    /// An end not reached yet, of an attempt that started at `started`.
    pub fn new(started: Instant) -> ResponseEnd {
        ResponseEnd {
            started,
            end: Arc::default(),
        }
    }

    /// The body ended with `transfer` moved in all: the time is marked too.
    pub fn finish(&self, transfer: Transfer) {
        self.mark();
        let _ = self.end.1.set(transfer);
    }

    /// The attempt's bytes, once its body ended.
    pub fn transfer(&self) -> Option<Transfer> {
        self.end.1.get().copied()
    }

    /// The body ended (read whole, failed or timed out): now, unless it
    /// was marked already.
    pub fn mark(&self) {
        let _ = self.end.0.set(self.started.elapsed().as_secs_f64());
    }

    /// Seconds from the start to the end, once marked.
    pub fn seconds(&self) -> Option<f64> {
        self.end.0.get().copied()
    }
}

/// Everything a log line or a variable may need about one request.
#[derive(Debug)]
pub struct Exchange {
    /// The connection it came on.
    pub conn: Arc<ConnInfo>,
    /// When the request's header had been read.
    pub start: Instant,
    /// The method (GET once an error page takes a request over, as nginx
    /// makes it).
    pub method: http::Method,
    /// The method the request came with, for `$request`.
    pub request_method: http::Method,
    /// The URI as the client sent it.
    pub raw_uri: String,
    /// The normalized path (`$uri`).
    pub uri: String,
    /// The query string, if any (`None` for an empty one, as nginx).
    pub args: Option<String>,
    /// The host an absolute request target names (`GET http://host/`),
    /// normalised: it takes precedence over the Host header.
    pub target_host: Option<String>,
    /// `HTTP/1.1` etc.
    pub protocol: &'static str,
    /// The status an `error_page` is answering (nginx's `err_status`),
    /// which `$status` says until the response is decided.
    pub err_status: Option<u16>,
    /// A refused head's request line as it came (`$request`), where there
    /// was no parsed request to rebuild it from.
    pub request_line_as_sent: Option<String>,
    /// `$http2`: "h2c" or "h2" for a request that came over HTTP/2.
    pub http2: &'static str,
    /// Request headers. They are moved here from the request, which gets
    /// them back only if it is proxied (see `dispatch`).
    pub headers: HeaderMap,
    /// The first `server_name` of the server that answered.
    pub server_name: String,
    /// The response status.
    pub status: u16,
    /// Response headers as sent (for `$sent_http_*`).
    pub sent_headers: HeaderMap,
    /// Trailers as rendered so far (for `$sent_trailer_*`).
    pub sent_trailers: HeaderMap,
    /// Upstream attempts in order.
    pub upstream: Vec<UpstreamTry>,
    /// Upstream response headers (for `$upstream_http_*`).
    pub upstream_headers: HeaderMap,
    /// Headers of an upstream's X-Accel-Redirect answer that go on the
    /// final response (nginx keeps Content-Type, Set-Cookie and a few more).
    pub carried: HeaderMap,
    /// `$proxy_host`.
    pub proxy_host: String,
    /// `$proxy_port`.
    pub proxy_port: u16,
    /// Body bytes sent to the client.
    pub body_bytes_sent: u64,
    /// Estimated bytes of the response header.
    pub header_bytes: u64,
    /// The client's address as nginx's `$remote_addr` sees it: the
    /// connection's peer, or the address the realip module took from a
    /// trusted header. Balancing by client (`ip_hash`) and
    /// `X-Forwarded-For` should use this, not `conn.remote`. A peer on a
    /// Unix socket has no IP address (until realip gives one).
    pub client_addr: Client,
    /// `$remote_port`: the connection's peer port, or the port the realip
    /// module took with the address (`None` when the header had none:
    /// nginx's port 0, an empty `$remote_port`).
    pub client_port: Option<u16>,
    /// Whether the realip module replaced the client address (it does so
    /// once a request, as nginx's module context marks).
    pub realip_applied: bool,
    /// Variables set by `set`, latest last.
    pub user_vars: Vec<(String, String)>,
    /// The `map`s of the configuration, by variable name (none until the
    /// request reaches the rewrite phase).
    pub maps: Option<Arc<HashMap<String, Arc<MapConfig>>>>,
    /// The values of the (not `volatile`) maps read so far: nginx keeps a
    /// map variable's first value for the rest of the request.
    pub map_values: std::sync::Mutex<HashMap<String, String>>,
    /// The `split_clients` of the configuration, by variable name.
    pub splits: Option<Arc<HashMap<String, Arc<crate::config::model::SplitClients>>>>,
    /// The `geo` blocks of the configuration, by variable name.
    pub geos: Option<Arc<HashMap<String, Arc<crate::geo::Geo>>>>,
    /// The location (or location `if`) answering, for `$document_root`
    /// and `$request_filename`.
    pub location: Option<Arc<LocationConfig>>,
    /// Whether the request was redirected internally (`internal` locations).
    pub internal: bool,
    /// Captures of the last regex that matched (`$0`..`$9`).
    pub captures: Vec<Option<String>>,
    /// The gzip filter's byte counts, when it compresses the response
    /// (`$gzip_ratio`).
    pub gzip: Option<Arc<crate::http::gzip::Counts>>,
    /// nginx's `r->gzip_vary`: the response depends on Accept-Encoding
    /// (gzip could apply, gunzip saw a gzipped body, or gzip_static found
    /// a `.gz`); with `gzip_vary on` it gets `Vary: Accept-Encoding`. Set
    /// behind a shared reference by the static handler, hence atomic.
    pub gzip_vary: std::sync::atomic::AtomicBool,
    /// `$limit_req_status`, once limit_req has judged the request (it is
    /// judged once, as nginx's main request).
    pub limit_req_status: Option<&'static str>,
    /// `$limit_conn_status`, once limit_conn has counted the request.
    pub limit_conn_status: Option<&'static str>,
    /// The limit_conn counts this request holds until its response is sent.
    pub limit_held: Vec<crate::http::limit_conn::Held>,
    /// `set $limit_rate`: bytes per second, over the `limit_rate` directive.
    pub limit_rate: Option<u64>,
    /// The challenges auth_basic or auth_request set for a 401
    /// (`WWW-Authenticate`).
    pub www_authenticate: Vec<http::HeaderValue>,
    /// Whether this is a subrequest (auth_request's): it skips the access
    /// phase, as nginx's subrequests do.
    pub subrequest: bool,
    /// `$request_id`, made when first read.
    pub request_id: std::sync::OnceLock<String>,
    /// The head's part of `$request_length` over HTTP/1; `None` when it is
    /// not known.
    pub head_length: Option<u64>,
    /// An HTTP/2 stream's `$request_length` as its frames are read (its
    /// header block and body data), counted below h2 (http/h2/meter.rs).
    pub stream_length: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// The body's part of `$request_length`, when the connection feeds one.
    pub body_read: Option<crate::http::h1::body::BodyRead>,
    /// The body once the proxy read it whole: `$request_body`, and what
    /// goes up again when a redirected request is proxied once more.
    pub held_body: Option<crate::http::request_body::HeldBody>,
    /// Whether the body was streamed up (not held): it cannot go up again.
    pub body_streamed: bool,
    /// The path did not normalize (`/../x`): nginx refused it before it
    /// set `$request_uri` and `$args`, which are not found.
    pub bad_uri: bool,
    /// `$pipe`: the request's head was in the connection's buffer when
    /// the one before it ended (nginx's `r->pipeline`).
    pub pipelined: bool,
}

fn protocol_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
}

#[cfg(test)]
impl Exchange {
    /// An exchange of `GET /` from 127.0.0.1 on 127.0.0.1:80, for unit tests.
    pub(crate) fn for_test() -> Exchange {
        let conn = Arc::new(ConnInfo {
            id: 1,
            remote: "127.0.0.1:1".parse().expect("an address"),
            local: "127.0.0.1:80".parse().expect("an address"),
            requests: Default::default(),
            tls: None,
            accepted: Instant::now(),
            proxy_protocol: None,
            proxy_protocol_tlvs: None,
        });
        let (parts, ()) = http::Request::new(()).into_parts();
        Exchange::new(conn, &parts, HeaderMap::new(), "/".into())
    }
}

impl Exchange {
    /// Starts recording a request whose head is `parts` and whose headers
    /// (taken out of `parts`) are `headers`.
    pub fn new(
        conn: Arc<ConnInfo>,
        parts: &http::request::Parts,
        headers: HeaderMap,
        uri: String,
    ) -> Exchange {
        Exchange {
            start: Instant::now(),
            method: parts.method.clone(),
            request_method: parts.method.clone(),
            raw_uri: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| parts.uri.to_string()),
            uri,
            // An empty `?` gives no arguments (nginx's parser sets
            // `r->args` only when something follows the `?`): `$args` is
            // not found, and no `?` is passed on.
            args: parts
                .uri
                .query()
                .filter(|q| !q.is_empty())
                .map(str::to_string),
            target_host: parts.uri.host().map(normalize_host),
            protocol: protocol_name(parts.version),
            request_line_as_sent: None,
            err_status: None,
            http2: parts
                .extensions
                .get::<crate::http::h2::Protocol>()
                .map_or("", |p| p.name()),
            headers,
            server_name: String::new(),
            status: 0,
            sent_headers: HeaderMap::new(),
            sent_trailers: HeaderMap::new(),
            upstream: Vec::new(),
            upstream_headers: HeaderMap::new(),
            carried: HeaderMap::new(),
            proxy_host: String::new(),
            proxy_port: 0,
            body_bytes_sent: 0,
            header_bytes: 0,
            client_addr: Client::of(&conn.remote),
            client_port: conn.remote.port(),
            realip_applied: false,
            user_vars: Vec::new(),
            maps: None,
            map_values: std::sync::Mutex::new(HashMap::new()),
            splits: None,
            geos: None,
            location: None,
            internal: false,
            captures: Vec::new(),
            gzip: None,
            gzip_vary: std::sync::atomic::AtomicBool::new(false),
            limit_req_status: None,
            limit_conn_status: None,
            limit_held: Vec::new(),
            limit_rate: None,
            www_authenticate: Vec::new(),
            subrequest: false,
            request_id: std::sync::OnceLock::new(),
            head_length: parts
                .extensions
                .get::<crate::http::h1::head::HeadLength>()
                .map(|l| l.0),
            stream_length: parts
                .extensions
                .get::<crate::http::h2::StreamLength>()
                .map(|l| l.0.clone()),
            body_read: None,
            held_body: None,
            body_streamed: false,
            bad_uri: false,
            pipelined: parts
                .extensions
                .get::<crate::http::h1::head::Pipelined>()
                .is_some(),
            conn,
        }
    }

    /// Runs `re` on `text` and keeps its captures; returns whether it
    /// matched. A regex that does not match leaves no captures (nginx 1.22:
    /// `$1` is empty after an `if (... ~ ...)` that failed).
    pub fn capture(&mut self, re: &regex::Regex, text: &str) -> bool {
        match re.captures(text) {
            Some(c) => {
                self.captures = c
                    .iter()
                    .map(|m| m.map(|m| m.as_str().to_string()))
                    .collect();
                true
            }
            None => {
                self.captures.clear();
                false
            }
        }
    }

    /// Sets a `set` variable.
    pub fn set_var(&mut self, name: &str, value: String) {
        if name == "limit_rate" {
            // nginx's settable $limit_rate: the response's rate from now on.
            self.limit_rate = Some(crate::config::values::parse_size(&value).unwrap_or(0));
            return;
        }
        if name == "args" {
            // nginx's settable $args: the arguments the request goes on with.
            self.args = Some(value);
            return;
        }
        self.user_vars.retain(|(n, _)| n != name);
        self.user_vars.push((name.to_string(), value));
    }

    /// A map's or geo's value: made once a request unless `volatile`
    /// (nginx caches such variables for the request, across internal
    /// redirects).
    fn cached(&self, name: &str, volatile: bool, make: impl FnOnce() -> String) -> String {
        if volatile {
            return make();
        }
        let known = self
            .map_values
            .lock()
            .ok()
            .and_then(|m| m.get(name).cloned());
        if let Some(known) = known {
            return known;
        }
        // Not locked while the value is made: its source may read another
        // map.
        let value = make();
        if let Ok(mut values) = self.map_values.lock() {
            values.insert(name.to_string(), value.clone());
        }
        value
    }

    /// The address geo looks up: the client's, after realip (nginx's
    /// `c->sockaddr`, which realip replaces). A unix-domain peer is
    /// `Client::None`: nginx looks up 255.255.255.255 for AF_UNIX.
    fn geo_client(&self) -> crate::geo::Client {
        match self.client_addr {
            crate::config::access::Client::Ip(ip) => crate::geo::Client::Ip(ip),
            crate::config::access::Client::Unix => crate::geo::Client::None,
        }
    }

    fn user_var(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.user_vars.iter().find(|(n, _)| n == name) {
            return Some(v.clone());
        }
        if let Some(map) = self.maps.as_ref().and_then(|m| m.get(name)) {
            return Some(self.cached(name, map.volatile, || map.value(self)));
        }
        if let Some(geo) = self.geos.as_ref().and_then(|g| g.get(name)) {
            return Some(self.cached(name, geo.volatile, || {
                let forwarded: Vec<&[u8]> = self
                    .headers
                    .get_all(http::header::HeaderName::from_static("x-forwarded-for"))
                    .iter()
                    .map(|v| v.as_bytes())
                    .collect();
                geo.value(self.geo_client(), self, &forwarded).to_string()
            }));
        }
        let split = self.splits.as_ref()?.get(name)?;
        Some(split.value(self))
    }

    /// `$request_length`: the head's bytes plus the body's bytes read so
    /// far, as nginx's `r->request_length` (over HTTP/2 the HEADERS and
    /// CONTINUATION payloads and the DATA, as the stream's frames were
    /// read). `None` (not found) when the head's size is not known (a
    /// request that never came through a driver); the error log says so
    /// once.
    pub fn request_length(&self) -> Option<u64> {
        if let Some(count) = &self.stream_length {
            return Some(count.load(std::sync::atomic::Ordering::Relaxed));
        }
        let Some(head) = self.head_length else {
            static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
                crate::observe::error_log::error(
                    Some(self.conn.id),
                    "variable \"$request_length\" is not supported over HTTP/2 yet: its value is not found (logged as \"-\")",
                );
            }
            return None;
        };
        Some(head + self.body_read.as_ref().map_or(0, |b| b.bytes()))
    }

    /// `$request`: the request line.
    pub fn request_line(&self) -> String {
        if let Some(line) = &self.request_line_as_sent {
            return line.clone();
        }
        format!("{} {} {}", self.request_method, self.raw_uri, self.protocol)
    }

    pub(crate) fn header(map: &HeaderMap, var_name: &str) -> Option<String> {
        Self::header_value_bytes(map, var_name).map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// The joined values of the headers `$..._VAR_NAME` names, as bytes.
    pub(crate) fn header_value_bytes<'h>(
        map: &'h HeaderMap,
        var_name: &str,
    ) -> Option<Cow<'h, [u8]>> {
        // `$http_x_forwarded_for` names `X-Forwarded-For`, and, as nginx's
        // ngx_http_variable_unknown_header compares them, `x_forwarded-for`
        // too (a name with `_` passes with `underscores_in_headers` or
        // `ignore_invalid_headers off`); the values of every such header
        // are joined as nginx joins them.
        let name = var_name.replace('_', "-");
        let same = |header: &str| {
            header.len() == var_name.len()
                && header.bytes().zip(var_name.bytes()).all(|(h, v)| {
                    if h == b'-' {
                        v == b'_'
                    } else {
                        h == v
                    }
                })
        };
        // Any bytes a header came with count: a value that is not text is
        // still found (and logged byte by byte).
        let mut values = map
            .iter()
            .filter(|(n, _)| same(n.as_str()))
            .map(|(_, v)| v.as_bytes());
        let first = values.next()?;
        let Some(second) = values.next() else {
            return Some(Cow::Borrowed(first));
        };
        let sep: &[u8] = if name == "cookie" { b"; " } else { b", " };
        let mut out = [first, sep, second].concat();
        for v in values {
            out.extend_from_slice(sep);
            out.extend_from_slice(v);
        }
        Some(Cow::Owned(out))
    }

    fn join<F: Fn(&UpstreamTry) -> Option<String>>(&self, f: F) -> Option<String> {
        if self.upstream.is_empty() {
            return None;
        }
        Some(
            self.upstream
                .iter()
                .map(|t| f(t).unwrap_or_else(|| "-".into()))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }

    /// `$arg_NAME`, as ngx_http_arg finds it: the first `NAME=` (any
    /// case) at the start or after a `&`, up to the next `&`; a name
    /// without `=` is not found.
    fn arg(&self, name: &str) -> Option<String> {
        if name.is_empty() {
            return None;
        }
        self.args.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            k.eq_ignore_ascii_case(name).then(|| v.to_string())
        })
    }

    fn cookie(&self, name: &str) -> Option<String> {
        cookie_value(&self.headers, name).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// `$remote_addr`: the client's IP address, or a Unix socket peer's
    /// `unix:` text.
    pub fn remote_addr(&self) -> String {
        match self.client_addr {
            Client::Ip(ip) => ip.to_string(),
            Client::Unix => self.conn.remote.addr_text(),
        }
    }

    /// `$proxy_add_x_forwarded_for`.
    pub fn x_forwarded_for(&self) -> String {
        let client = self.remote_addr();
        match Self::header(&self.headers, "x_forwarded_for") {
            Some(existing) => format!("{existing}, {client}"),
            None => client,
        }
    }
}

/// The value of the cookie `name` in the first of `headers`' `Set-Cookie`
/// fields that sets it, as nginx's ngx_http_parse_set_cookie_lines reads
/// them: the field starts with the name (any case), then `=` (spaces
/// around it allowed), and the value runs to the first `;`.
fn set_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<Cow<'h, str>> {
    let spaces = |b: &'h [u8]| &b[b.iter().take_while(|&&c| c == b' ').count()..];
    headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .find_map(|field| {
            let line = field.as_bytes();
            if name.len() >= line.len() || !line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            {
                return None;
            }
            let value = spaces(spaces(&line[name.len()..]).strip_prefix(b"=")?);
            let end = value.iter().position(|&b| b == b';').unwrap_or(value.len());
            Some(String::from_utf8_lossy(&value[..end]))
        })
}

/// The value of the cookie `name` in the `Cookie` fields, as nginx's
/// ngx_http_parse_cookie_lines finds it: a pair starts with the name (any
/// case), spaces may come before and after its `=`, and the value runs to
/// the next `;` (spaces before it kept). A pair that is not `name=` is
/// skipped to its `;`.
fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    let name = name.as_bytes();
    let skip_spaces = |b: &'h [u8]| &b[b.iter().take_while(|&&c| c == b' ').count()..];
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .find_map(|field| {
            let mut rest = field.as_bytes();
            if name.len() > rest.len() {
                return None;
            }
            while !rest.is_empty() {
                if rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name) {
                    let after = skip_spaces(&rest[name.len()..]);
                    if let Some(value) = after.strip_prefix(b"=") {
                        let value = skip_spaces(value);
                        let end = value.iter().position(|&b| b == b';').unwrap_or(value.len());
                        return Some(&value[..end]);
                    }
                    rest = after;
                }
                // To the next pair: past the `;` and the spaces after it.
                let next = rest
                    .iter()
                    .position(|&b| b == b';')
                    .map_or(rest.len(), |i| i + 1);
                rest = skip_spaces(&rest[next..]);
            }
            None
        })
}

/// A new `$request_id` value (for a request whose subrequest reads it).
pub fn request_id_value() -> String {
    new_request_id()
}

/// nginx's `$request_id`: 16 random bytes as 32 lower-case hex digits.
fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No system randomness: std's per-process random hash keys.
        use std::hash::{BuildHasher, Hasher};
        for chunk in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0);
            chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn secs(v: f64) -> String {
    format!("{v:.3}")
}

impl VarSource for Exchange {
    fn var_bytes(&self, var: &Var) -> Option<Cow<'_, [u8]>> {
        match var {
            // A Unix socket's peer: its address text, as nginx's.
            Var::BinaryRemoteAddr => Some(Cow::Owned(match self.client_addr {
                Client::Ip(std::net::IpAddr::V4(a)) => a.octets().to_vec(),
                Client::Ip(std::net::IpAddr::V6(a)) => a.octets().to_vec(),
                Client::Unix => self.conn.remote.addr_text().into_bytes(),
            })),
            // Headers and cookies are bytes, not always text.
            Var::HttpHeader(h) => Self::header_value_bytes(&self.headers, h),
            Var::SentHttp(h) => Self::header_value_bytes(&self.sent_headers, h),
            Var::SentTrailer(h) => Self::header_value_bytes(&self.sent_trailers, h),
            Var::UpstreamHttp(h) => Self::header_value_bytes(&self.upstream_headers, h),
            Var::Cookie(c) => cookie_value(&self.headers, c).map(Cow::Borrowed),
            // A body is bytes, not always text.
            Var::RequestBody => self
                .held_body
                .as_ref()
                .and_then(|b| b.in_memory())
                .map(Cow::Borrowed),
            _ => self.var(var).map(|value| match value {
                Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
                Cow::Owned(s) => Cow::Owned(s.into_bytes()),
            }),
        }
    }

    fn var(&self, var: &Var) -> Option<Cow<'_, str>> {
        let owned = |s: String| Some(Cow::Owned(s));
        match var {
            Var::RemoteAddr => owned(self.remote_addr()),
            Var::RealIpRemoteAddr => owned(self.conn.remote.addr_text()),
            Var::DocumentRoot => self.location.as_ref().map(|l| {
                let (_, root) = crate::http::static_files::file_path(l, &self.uri);
                Cow::Owned(root.display().to_string())
            }),
            Var::RequestFilename => self.location.as_ref().map(|l| {
                let (path, _) = crate::http::static_files::file_path(l, &self.uri);
                Cow::Owned(path.display().to_string())
            }),
            // A `set` variable no `set` has run for yet is empty; a named
            // capture before its match is not found.
            Var::User(name, unset) => match self.user_var(name) {
                Some(value) => owned(value),
                None if *unset == crate::vars::Unset::Empty => Some(Cow::Borrowed("")),
                None => None,
            },
            Var::Pipe => Some(Cow::Borrowed(if self.pipelined { "p" } else { "." })),
            Var::Capture(n) => self
                .captures
                .get(*n)
                .and_then(|c| c.as_deref())
                .map(Cow::Borrowed),
            Var::RemotePort => owned(self.client_port.map(|p| p.to_string()).unwrap_or_default()),
            Var::RealIpRemotePort => owned(
                self.conn
                    .remote
                    .port()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
            ),
            // The Basic user of the request, checked or not, as nginx's.
            Var::RemoteUser => crate::http::auth_basic::credentials(&self.headers)
                .map(|(user, _)| Cow::Owned(String::from_utf8_lossy(&user).into_owned())),
            Var::TimeLocal => owned(Civil::now().time_local()),
            Var::TimeIso8601 => owned(Civil::now().iso8601()),
            Var::Msec => {
                let d = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                owned(format!("{}.{:03}", d.as_secs(), d.subsec_millis()))
            }
            Var::Request => owned(self.request_line()),
            Var::RequestMethod => Some(Cow::Borrowed(self.method.as_str())),
            Var::RequestUri if self.bad_uri => None,
            Var::RequestUri => Some(Cow::Borrowed(&self.raw_uri)),
            Var::Uri => Some(Cow::Borrowed(&self.uri)),
            Var::Args => self.args.as_deref().map(Cow::Borrowed),
            // An empty `?` has arguments found empty, and no `?` here.
            Var::IsArgs => Some(Cow::Borrowed(
                if self.args.as_deref().is_some_and(|a| !a.is_empty()) {
                    "?"
                } else {
                    ""
                },
            )),
            Var::RequestLength => self.request_length().map(|n| Cow::Owned(n.to_string())),
            Var::RequestBody => self
                .held_body
                .as_ref()
                .and_then(|b| b.in_memory())
                .map(String::from_utf8_lossy),
            Var::RequestBodyFile => self
                .held_body
                .as_ref()
                .and_then(|b| b.file_name())
                .map(|p| Cow::Owned(p.display().to_string())),
            // Whole milliseconds, as nginx's (it truncates, never rounds up).
            Var::RequestTime => {
                let ms = self.start.elapsed().as_millis();
                owned(format!("{}.{:03}", ms / 1000, ms % 1000))
            }
            Var::Status => owned(format!(
                "{:03}",
                self.err_status
                    .filter(|_| self.status == 0)
                    .unwrap_or(self.status)
            )),
            Var::BodyBytesSent => owned(self.body_bytes_sent.to_string()),
            Var::GzipRatio => self.gzip.as_ref().and_then(|c| c.ratio()).map(Cow::Owned),
            Var::BytesSent => owned((self.body_bytes_sent + self.header_bytes).to_string()),
            Var::UpstreamAddr => self.join(|t| Some(t.addr.to_string())).map(Cow::Owned),
            Var::UpstreamStatus => self
                .join(|t| t.status.map(|s| s.to_string()))
                .map(Cow::Owned),
            Var::UpstreamResponseTime => self
                .join(|t| {
                    t.response_end
                        .as_ref()
                        .and_then(ResponseEnd::seconds)
                        .or(t.response)
                        .map(secs)
                })
                .map(Cow::Owned),
            Var::UpstreamResponseLength => self
                .join(|t| Some(t.transfer_now().body.to_string()))
                .map(Cow::Owned),
            Var::UpstreamBytesSent => self
                .join(|t| Some(t.transfer_now().sent.to_string()))
                .map(Cow::Owned),
            Var::UpstreamBytesReceived => self
                .join(|t| Some(t.transfer_now().received.to_string()))
                .map(Cow::Owned),
            Var::UpstreamConnectTime => self.join(|t| t.connect.map(secs)).map(Cow::Owned),
            Var::UpstreamHeaderTime => self.join(|t| t.header.map(secs)).map(Cow::Owned),
            Var::Host => {
                // nginx's order: the request line's host, the Host header,
                // the server's name.
                let host = self.target_host.clone().or_else(|| {
                    self.headers
                        .get(http::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .map(normalize_host)
                });
                match host {
                    Some(h) if !h.is_empty() => owned(h),
                    _ => Some(Cow::Borrowed(&self.server_name)),
                }
            }
            Var::Hostname => owned(crate::echo::hostname()),
            // A Unix socket: `unix:PATH` and no port, as nginx's.
            Var::ServerAddr => owned(match self.conn.local.ip() {
                Some(ip) => ip.to_string(),
                None => self.conn.local.to_string(),
            }),
            Var::ServerPort => owned(
                self.conn
                    .local
                    .port()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
            ),
            Var::ServerName => Some(Cow::Borrowed(&self.server_name)),
            Var::ServerProtocol => Some(Cow::Borrowed(self.protocol)),
            Var::Scheme => Some(Cow::Borrowed(if self.conn.tls.is_some() {
                "https"
            } else {
                "http"
            })),
            Var::Https => Some(Cow::Borrowed(if self.conn.tls.is_some() {
                "on"
            } else {
                ""
            })),
            Var::Ssl(v) => self.conn.tls.as_ref().and_then(|h| h.found(*v)),
            Var::Http2 => Some(Cow::Borrowed(self.http2)),
            Var::Connection => owned(self.conn.id.to_string()),
            Var::ConnectionTime => {
                // nginx's `%T.%03M`: seconds with milliseconds.
                let ms = self.conn.accepted.elapsed().as_millis();
                owned(format!("{}.{:03}", ms / 1000, ms % 1000))
            }
            Var::ConnectionRequests => owned(
                self.conn
                    .requests
                    .load(std::sync::atomic::Ordering::Relaxed)
                    .to_string(),
            ),
            Var::Pid => owned(std::process::id().to_string()),
            Var::ProxyProtocolAddr
            | Var::ProxyProtocolPort
            | Var::ProxyProtocolServerAddr
            | Var::ProxyProtocolServerPort => {
                crate::transport::proxy_protocol::variable(self.conn.proxy_protocol, var)
                    .map(Cow::Owned)
            }
            Var::ProxyProtocolTlv(name) => crate::transport::proxy_protocol::tlv_variable(
                self.conn.proxy_protocol_tlvs.as_deref(),
                name,
                self.conn.id,
            )
            .map(Cow::Owned),
            Var::Connections(state) => {
                let states = crate::observe::metrics::global().states();
                owned(
                    match state {
                        ConnectionState::Active => states.active,
                        ConnectionState::Reading => states.reading,
                        ConnectionState::Writing => states.writing,
                        ConnectionState::Waiting => states.waiting,
                    }
                    .to_string(),
                )
            }
            Var::NginxVersion => Some(Cow::Borrowed(crate::VERSION)),
            Var::ContentLength => Self::header(&self.headers, "content_length").map(Cow::Owned),
            Var::ContentType => Self::header(&self.headers, "content_type").map(Cow::Owned),
            // Not found until the proxy module takes the request (its
            // context); a proxied request always has a host.
            Var::ProxyHost | Var::ProxyPort if self.proxy_host.is_empty() => None,
            Var::ProxyHost => Some(Cow::Borrowed(&self.proxy_host)),
            // A socket has no port: nginx leaves the variable empty.
            Var::ProxyPort if self.proxy_port == 0 => Some(Cow::Borrowed("")),
            Var::ProxyPort => owned(self.proxy_port.to_string()),
            Var::ProxyAddXForwardedFor => owned(self.x_forwarded_for()),
            Var::HttpHeader(h) => Self::header(&self.headers, h).map(Cow::Owned),
            Var::SentHttp(h) => Self::header(&self.sent_headers, h).map(Cow::Owned),
            Var::SentTrailer(h) => Self::header(&self.sent_trailers, h).map(Cow::Owned),
            Var::UpstreamHttp(h) => Self::header(&self.upstream_headers, h).map(Cow::Owned),
            Var::UpstreamCookie(c) => set_cookie(&self.upstream_headers, c),
            Var::Arg(a) => self.arg(a).map(Cow::Owned),
            Var::Cookie(c) => self.cookie(c).map(Cow::Owned),
            // Stream variables: templates of the http block never name them.
            Var::BytesReceived
            | Var::UpstreamFirstByteTime
            | Var::UpstreamSessionTime
            | Var::SessionTime
            | Var::Protocol => None,
            Var::BinaryRemoteAddr => None,
            Var::LimitConnStatus => self.limit_conn_status.map(Cow::Borrowed),
            Var::LimitReqStatus => self.limit_req_status.map(Cow::Borrowed),
            Var::RequestId => Some(Cow::Borrowed(
                self.request_id.get_or_init(new_request_id).as_str(),
            )),
            Var::LimitRate => owned(
                self.location
                    .as_ref()
                    .map(|l| crate::http::limits::rate(&l.settings, self))
                    .unwrap_or(0)
                    .to_string(),
            ),
            // Stream variables: templates of the http block never name them.
            Var::SslPrereadProtocol | Var::SslPrereadServerName | Var::SslPrereadAlpnProtocols => {
                None
            }
        }
    }
}

/// A host as nginx keeps it (`ngx_http_validate_host`): lower case, without
/// its port and without one trailing dot; an `[IPv6]` literal whole.
pub fn normalize_host(raw: &str) -> String {
    let raw = raw.trim();
    let end = if raw.starts_with('[') {
        raw.find(']').map_or(raw.len(), |i| i + 1)
    } else {
        raw.find(':').unwrap_or(raw.len())
    };
    let host = &raw[..end];
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosts_normalise_as_nginx() {
        for (raw, host) in [
            ("Example.COM", "example.com"),
            ("example.com.:8080", "example.com"),
            ("[::1]:80", "[::1]"),
            ("a.b", "a.b"),
        ] {
            assert_eq!(super::normalize_host(raw), host, "{raw}");
        }
    }

    #[test]
    fn a_header_variable_names_dashes_and_underscores_alike() {
        let mut h = http::HeaderMap::new();
        for (name, value) in [("x-foo", "1"), ("x_foo", "2"), ("x-foo-bar", "3")] {
            h.append(
                http::HeaderName::from_static(name),
                http::HeaderValue::from_static(value),
            );
        }
        let header = super::Exchange::header;
        assert_eq!(header(&h, "x_foo").as_deref(), Some("1, 2"));
        assert_eq!(header(&h, "x_foo_bar").as_deref(), Some("3"));
        // nginx reads a header's dash as `_`: a dash in a variable's name
        // (`${http_x-foo}`) matches nothing.
        assert_eq!(header(&h, "x-foo"), None);
        assert_eq!(header(&h, "x_fo"), None);
    }

    #[test]
    fn upstream_cookies_are_read_from_set_cookie_as_nginx() {
        let mut h = http::HeaderMap::new();
        for line in ["ab=no", "a = 1; path=/", "A=shadowed", "c=", "d", "e=x=y"] {
            h.append(http::header::SET_COOKIE, line.parse().unwrap());
        }
        let get = |name| super::set_cookie(&h, name).map(|v| v.into_owned());
        assert_eq!(get("a").as_deref(), Some("1"));
        assert_eq!(get("ab").as_deref(), Some("no"));
        assert_eq!(get("c").as_deref(), Some(""));
        assert_eq!(get("d"), None);
        assert_eq!(get("e").as_deref(), Some("x=y"));
        assert_eq!(get("b"), None);
    }
}
