//! The table of directives switchyard knows: where each may appear, how many
//! arguments it takes and whether it has a block, as nginx's `ngx_command_t`
//! tables say. The generic checks (unknown directive, wrong place, wrong
//! argument count, missing block) are made here with nginx's messages, so the
//! per-directive code only deals with values.

/// A set of contexts, as a bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ctx(u32);

impl Ctx {
    /// The top level of nginx.conf.
    pub const MAIN: Ctx = Ctx(1);
    /// `events { }`.
    pub const EVENTS: Ctx = Ctx(1 << 1);
    /// `http { }`.
    pub const HTTP: Ctx = Ctx(1 << 2);
    /// `http { server { } }`.
    pub const SERVER: Ctx = Ctx(1 << 3);
    /// `location { }` (at any depth).
    pub const LOCATION: Ctx = Ctx(1 << 4);
    /// `http { upstream { } }`.
    pub const UPSTREAM: Ctx = Ctx(1 << 5);
    /// `if { }` inside a server.
    pub const SERVER_IF: Ctx = Ctx(1 << 6);
    /// `if { }` inside a location.
    pub const LOCATION_IF: Ctx = Ctx(1 << 7);
    /// `limit_except { }`.
    pub const LIMIT_EXCEPT: Ctx = Ctx(1 << 8);
    /// `stream { }`.
    pub const STREAM: Ctx = Ctx(1 << 9);
    /// `stream { server { } }`.
    pub const STREAM_SERVER: Ctx = Ctx(1 << 10);
    /// `stream { upstream { } }`.
    pub const STREAM_UPSTREAM: Ctx = Ctx(1 << 11);
    /// `mail { }`: known so that it is reported as unsupported, not unknown.
    pub const MAIL: Ctx = Ctx(1 << 12);
    /// `mgmt { }` (NGINX Plus's usage reporting), `oidc_provider { }` and
    /// `acme_issuer { }`: the blocks of modules switchyard lacks, whose
    /// directives are known only so that `-t` names them as nginx.org does.
    /// switchyard never reads inside them (their block is not supported yet).
    pub const MGMT: Ctx = Ctx(1 << 13);
    /// `http { oidc_provider { } }`.
    pub const OIDC_PROVIDER: Ctx = Ctx(1 << 14);
    /// `http { acme_issuer { } }`.
    pub const ACME_ISSUER: Ctx = Ctx(1 << 15);
    /// Every context, for `include`.
    pub const EVERY: Ctx = Ctx(u32::MAX);

    /// Where most http directives may go.
    pub const HTTP_ANY: Ctx = Ctx(Self::HTTP.0 | Self::SERVER.0 | Self::LOCATION.0);
    /// http, server, location and location `if`.
    pub const HTTP_ANY_IF: Ctx = Ctx(Self::HTTP_ANY.0 | Self::LOCATION_IF.0);
    /// http, server, location and both kinds of `if`.
    pub const HTTP_ALL_IF: Ctx = Ctx(Self::HTTP_ANY_IF.0 | Self::SERVER_IF.0);
    /// stream and stream server.
    pub const STREAM_ANY: Ctx = Ctx(Self::STREAM.0 | Self::STREAM_SERVER.0);

    /// Each single context with the name docs/directives.md gives it
    /// (nginx.org's, with "if in server" for a server `if`), in the order the
    /// doc lists a directive's contexts.
    pub const NAMED: &'static [(Ctx, &'static str)] = &[
        (Ctx::MAIN, "main"),
        (Ctx::EVENTS, "events"),
        (Ctx::HTTP, "http"),
        (Ctx::SERVER, "server"),
        (Ctx::LOCATION, "location"),
        (Ctx::UPSTREAM, "upstream"),
        (Ctx::SERVER_IF, "if in server"),
        (Ctx::LOCATION_IF, "if in location"),
        (Ctx::LIMIT_EXCEPT, "limit_except"),
        (Ctx::STREAM, "stream"),
        (Ctx::STREAM_SERVER, "stream server"),
        (Ctx::STREAM_UPSTREAM, "stream upstream"),
        (Ctx::MAIL, "mail"),
        (Ctx::MGMT, "mgmt"),
        (Ctx::OIDC_PROVIDER, "oidc_provider"),
        (Ctx::ACME_ISSUER, "acme_issuer"),
    ];

    /// Whether `self` contains every context of `other`.
    pub const fn contains(self, other: Ctx) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two sets.
    pub const fn or(self, other: Ctx) -> Ctx {
        Ctx(self.0 | other.0)
    }
}

/// How many arguments a directive takes, as nginx's `NGX_CONF_TAKE*` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// Exactly the counts whose bits are set (bit n = n arguments).
    Counts(u16),
    /// At least this many.
    AtLeast(usize),
    /// One argument, `on` or `off`.
    Flag,
}

impl Arity {
    /// Whether `n` arguments are acceptable.
    pub fn accepts(self, n: usize) -> bool {
        match self {
            Arity::Counts(mask) => n < 16 && mask & (1 << n) != 0,
            Arity::AtLeast(min) => n >= min,
            Arity::Flag => n == 1,
        }
    }
}

/// The arity that takes exactly `counts` arguments.
pub(crate) const fn take(counts: &[usize]) -> Arity {
    let mut mask = 0u16;
    let mut i = 0;
    while i < counts.len() {
        mask |= 1 << counts[i];
        i += 1;
    }
    Arity::Counts(mask)
}

/// Whether switchyard implements a directive, or only knows nginx has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Implemented with nginx's semantics.
    Yes,
    /// Accepted with nginx's argument checks; it tunes nginx internals that
    /// have no client-visible effect in switchyard (the row's note in
    /// [`super::directive_notes`] says why).
    Accepted,
    /// nginx has it, switchyard does not yet: `-t` fails naming it.
    NotYet,
}

/// One directive's shape.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The directive's name.
    pub name: &'static str,
    /// The contexts it may appear in.
    pub ctx: Ctx,
    /// Its argument count.
    pub arity: Arity,
    /// Whether it takes a `{ }` block.
    pub block: bool,
    /// Whether switchyard implements it.
    pub support: Support,
}

const fn d(name: &'static str, ctx: Ctx, arity: Arity, block: bool, support: Support) -> Spec {
    Spec {
        name,
        ctx,
        arity,
        block,
        support,
    }
}

use Support::{Accepted, NotYet, Yes};

const T0: Arity = take(&[0]);
const T1: Arity = take(&[1]);
const T2: Arity = take(&[2]);
const T12: Arity = take(&[1, 2]);
const T123: Arity = take(&[1, 2, 3]);
const T01: Arity = take(&[0, 1]);
const M1: Arity = Arity::AtLeast(1);
const M2: Arity = Arity::AtLeast(2);
const FLAG: Arity = Arity::Flag;

const MAIN: Ctx = Ctx::MAIN;
const HTTP: Ctx = Ctx::HTTP;
const SRV: Ctx = Ctx::SERVER;
const LOC: Ctx = Ctx::LOCATION;
const UPS: Ctx = Ctx::UPSTREAM;
const ANY: Ctx = Ctx::HTTP_ANY;
const ANY_IF: Ctx = Ctx::HTTP_ANY_IF;
const SSTREAM: Ctx = Ctx::STREAM;
const SSRV: Ctx = Ctx::STREAM_SERVER;
const SUPS: Ctx = Ctx::STREAM_UPSTREAM;
const SANY: Ctx = Ctx::STREAM_ANY;

/// Every directive switchyard knows, implemented or not.
pub static DIRECTIVES: &[Spec] = &[
    // core
    d("worker_processes", MAIN, T1, false, Yes),
    d("daemon", MAIN, FLAG, false, Yes),
    d("master_process", MAIN, FLAG, false, Accepted),
    d("pid", MAIN, T1, false, Yes),
    d(
        "error_log",
        MAIN.or(ANY).or(Ctx::STREAM_ANY),
        M1,
        false,
        Yes,
    ),
    d("user", MAIN, T12, false, Accepted),
    d("worker_rlimit_nofile", MAIN, T1, false, Yes),
    d("worker_shutdown_timeout", MAIN, T1, false, Yes),
    d("worker_cpu_affinity", MAIN, M1, false, Accepted),
    d("worker_priority", MAIN, T1, false, Accepted),
    d("pcre_jit", MAIN, FLAG, false, Accepted),
    d("include", Ctx::EVERY, T1, false, Yes),
    d("env", MAIN, T1, false, Accepted),
    d("load_module", MAIN, T1, false, Yes),
    d("thread_pool", MAIN, T12, false, Accepted),
    d("lock_file", MAIN, T1, false, Accepted),
    d("events", MAIN, T0, true, Yes),
    d("worker_connections", Ctx::EVENTS, T1, false, Yes),
    d("use", Ctx::EVENTS, T1, false, Accepted),
    d("multi_accept", Ctx::EVENTS, FLAG, false, Accepted),
    d("accept_mutex", Ctx::EVENTS, FLAG, false, Accepted),
    d("accept_mutex_delay", Ctx::EVENTS, T1, false, Accepted),
    d("http", MAIN, T0, true, Yes),
    d("stream", MAIN, T0, true, Yes),
    d("mail", MAIN, T0, true, NotYet),
    // http core
    d("server", HTTP.or(UPS), M1, false, Yes), // the block form is checked in code
    d("listen", SRV, M1, false, Yes),
    d("server_name", SRV, M1, false, Yes),
    d("location", SRV.or(LOC), T12, true, Yes),
    d("upstream", HTTP, T1, true, Yes),
    d("log_format", HTTP, M2, false, Yes),
    d("access_log", ANY_IF.or(Ctx::LIMIT_EXCEPT), M1, false, Yes),
    d("open_log_file_cache", ANY, take(&[1, 2, 3, 4]), false, Yes),
    d("sendfile", ANY_IF, FLAG, false, Accepted),
    d("tcp_nopush", ANY, FLAG, false, Accepted),
    d("tcp_nodelay", ANY, FLAG, false, Yes),
    d("keepalive_timeout", ANY.or(UPS), T12, false, Yes),
    d("keepalive_requests", ANY.or(UPS), T1, false, Yes),
    d("keepalive_time", ANY.or(UPS), T1, false, Yes),
    d("keepalive_disable", ANY, T12, false, Yes),
    d("send_timeout", ANY, T1, false, Yes),
    d("lingering_close", ANY, T1, false, Yes),
    d("lingering_time", ANY, T1, false, Yes),
    d("lingering_timeout", ANY, T1, false, Yes),
    d("client_max_body_size", ANY, T1, false, Yes),
    d("client_body_timeout", ANY, T1, false, Yes),
    d("client_header_timeout", HTTP.or(SRV), T1, false, Yes),
    d("client_header_buffer_size", HTTP.or(SRV), T1, false, Yes),
    d("large_client_header_buffers", HTTP.or(SRV), T2, false, Yes),
    d("ignore_invalid_headers", HTTP.or(SRV), FLAG, false, Yes),
    d("underscores_in_headers", HTTP.or(SRV), FLAG, false, Yes),
    d("client_body_buffer_size", ANY, T1, false, Yes),
    d("client_body_in_file_only", ANY, T1, false, Yes),
    d("client_body_in_single_buffer", ANY, FLAG, false, Yes),
    d(
        "client_body_temp_path",
        ANY,
        take(&[1, 2, 3, 4]),
        false,
        Yes,
    ),
    d("connection_pool_size", HTTP.or(SRV), T1, false, Accepted),
    d("request_pool_size", HTTP.or(SRV), T1, false, Accepted),
    d("types_hash_max_size", ANY, T1, false, Accepted),
    d("types_hash_bucket_size", ANY, T1, false, Accepted),
    d("server_names_hash_bucket_size", HTTP, T1, false, Accepted),
    d("server_names_hash_max_size", HTTP, T1, false, Accepted),
    d("variables_hash_max_size", HTTP, T1, false, Accepted),
    d("variables_hash_bucket_size", HTTP, T1, false, Accepted),
    d("map_hash_max_size", HTTP, T1, false, Accepted),
    d("map_hash_bucket_size", HTTP, T1, false, Accepted),
    d("server_tokens", ANY, T1, false, Yes),
    d("types", ANY, T0, true, Yes),
    d("default_type", ANY, T1, false, Yes),
    d("root", ANY_IF, T1, false, Yes),
    d("index", ANY, M1, false, Yes),
    d("absolute_redirect", ANY, FLAG, false, Yes),
    d("port_in_redirect", ANY, FLAG, false, Yes),
    d("server_name_in_redirect", ANY, FLAG, false, Yes),
    d(
        "return",
        SRV.or(LOC).or(Ctx::SERVER_IF).or(Ctx::LOCATION_IF),
        T12,
        false,
        Yes,
    ),
    // HTTP/2 (ngx_http_v2_module); the obsolete ones warn as nginx does
    d("http2", HTTP.or(SRV), FLAG, false, Yes),
    d("http2_max_concurrent_streams", HTTP.or(SRV), T1, false, Yes),
    d("http2_body_preread_size", HTTP.or(SRV), T1, false, Yes),
    d("http2_chunk_size", ANY, T1, false, Yes),
    d("http2_recv_buffer_size", HTTP, T1, false, Accepted),
    d("http2_pool_size", HTTP.or(SRV), T1, false, Accepted),
    d(
        "http2_streams_index_size",
        HTTP.or(SRV),
        T1,
        false,
        Accepted,
    ),
    d("http2_recv_timeout", HTTP.or(SRV), T1, false, Yes),
    d("http2_idle_timeout", HTTP.or(SRV), T1, false, Yes),
    d("http2_max_requests", HTTP.or(SRV), T1, false, Yes),
    d("http2_max_field_size", HTTP.or(SRV), T1, false, Yes),
    d("http2_max_header_size", HTTP.or(SRV), T1, false, Yes),
    d("http2_max_concurrent_pushes", HTTP.or(SRV), T1, false, Yes),
    d("http2_push", ANY, T1, false, Yes),
    d("http2_push_preload", ANY, FLAG, false, Yes),
    // gzip (ngx_http_gzip_module, with the core module's gzip_*)
    d("gzip", ANY_IF, FLAG, false, Yes),
    d("gzip_types", ANY, M1, false, Yes),
    d("gzip_min_length", ANY, T1, false, Yes),
    d("gzip_comp_level", ANY, T1, false, Yes),
    d("gzip_proxied", ANY, M1, false, Yes),
    d("gzip_vary", ANY, FLAG, false, Yes),
    d("gzip_disable", ANY, M1, false, Yes),
    d("gzip_http_version", ANY, T1, false, Yes),
    d("gzip_buffers", ANY, T2, false, Accepted),
    d("gzip_static", ANY, T1, false, Yes),
    d("gunzip", ANY, FLAG, false, Yes),
    d("gunzip_buffers", ANY, T2, false, Accepted),
    d("ssl_protocols", HTTP.or(SRV), M1, false, Yes),
    d("ssl_prefer_server_ciphers", HTTP.or(SRV), FLAG, false, Yes),
    d("ssl_certificate", HTTP.or(SRV), T1, false, Yes),
    d("ssl_certificate_key", HTTP.or(SRV), T1, false, Yes),
    d("ssl_password_file", HTTP.or(SRV), T1, false, Yes),
    d("ssl_ciphers", HTTP.or(SRV), T1, false, Yes),
    d("ssl_session_cache", HTTP.or(SRV), T12, false, Yes),
    d("ssl_session_timeout", HTTP.or(SRV), T1, false, Yes),
    d("ssl_session_tickets", HTTP.or(SRV), FLAG, false, Yes),
    d("ssl_verify_client", HTTP.or(SRV), T1, false, Yes),
    d("ssl_client_certificate", HTTP.or(SRV), T1, false, Yes),
    d("ssl_trusted_certificate", HTTP.or(SRV), T1, false, Yes),
    d("ssl_verify_depth", HTTP.or(SRV), T1, false, Yes),
    d("ssl_reject_handshake", HTTP.or(SRV), FLAG, false, Yes),
    d("ssl_ecdh_curve", HTTP.or(SRV), T1, false, Yes),
    d("try_files", SRV.or(LOC), M2, false, Yes),
    d(
        "rewrite",
        SRV.or(LOC).or(Ctx::SERVER_IF).or(Ctx::LOCATION_IF),
        take(&[2, 3]),
        false,
        Yes,
    ),
    d("rewrite_log", Ctx::HTTP_ALL_IF, FLAG, false, Yes),
    d("if", SRV.or(LOC), M1, true, Yes),
    d(
        "set",
        SRV.or(LOC).or(Ctx::SERVER_IF).or(Ctx::LOCATION_IF),
        T2,
        false,
        Yes,
    ),
    d("map", HTTP, T2, true, Yes),
    d("geo", HTTP, T12, true, Yes),
    d("add_header", ANY_IF, take(&[2, 3]), false, Yes),
    d("add_trailer", ANY_IF, take(&[2, 3]), false, Yes),
    d("error_page", ANY_IF, M2, false, Yes),
    d("recursive_error_pages", ANY, FLAG, false, NotYet),
    d("limit_except", LOC, M1, true, Yes),
    d("internal", LOC, T0, false, Yes),
    d(
        "break",
        SRV.or(LOC).or(Ctx::SERVER_IF).or(Ctx::LOCATION_IF),
        T0,
        false,
        Yes,
    ),
    d("alias", LOC, T1, false, Yes),
    d("autoindex", ANY, FLAG, false, NotYet),
    d("allow", ANY.or(Ctx::LIMIT_EXCEPT), T1, false, Yes),
    d("deny", ANY.or(Ctx::LIMIT_EXCEPT), T1, false, Yes),
    d("set_real_ip_from", ANY, T1, false, Yes),
    d("real_ip_header", ANY, T1, false, Yes),
    d("real_ip_recursive", ANY, FLAG, false, Yes),
    d("resolver", ANY.or(UPS), M1, false, Yes),
    d("resolver_timeout", ANY.or(UPS), T1, false, Yes),
    // auth_basic, the core module's satisfy
    d("auth_basic", ANY.or(Ctx::LIMIT_EXCEPT), T1, false, Yes),
    d(
        "auth_basic_user_file",
        ANY.or(Ctx::LIMIT_EXCEPT),
        T1,
        false,
        Yes,
    ),
    d("satisfy", ANY, T1, false, Yes),
    d("split_clients", HTTP, T2, true, Yes),
    d("log_not_found", ANY, FLAG, false, Yes),
    d("merge_slashes", HTTP.or(SRV), FLAG, false, Yes),
    d("expires", ANY_IF, T12, false, Yes),
    d("etag", ANY, FLAG, false, Yes),
    d("chunked_transfer_encoding", ANY, FLAG, false, Yes),
    d("if_modified_since", ANY, T1, false, Yes),
    d("auth_request", ANY, T1, false, Yes),
    d("auth_request_set", ANY, T2, false, Yes),
    // limit_req, limit_conn, the core module's limit_rate
    d("limit_req", ANY, T123, false, Yes),
    d("limit_req_zone", HTTP, take(&[3]), false, Yes),
    d("limit_req_status", ANY, T1, false, Yes),
    d("limit_req_log_level", ANY, T1, false, Yes),
    d("limit_req_dry_run", ANY, FLAG, false, Yes),
    d("limit_conn", ANY, T2, false, Yes),
    d("limit_conn_zone", HTTP, T2, false, Yes),
    d("limit_conn_status", ANY, T1, false, Yes),
    d("limit_conn_log_level", ANY, T1, false, Yes),
    d("limit_conn_dry_run", ANY, FLAG, false, Yes),
    d("limit_rate", ANY_IF, T1, false, Yes),
    d("limit_rate_after", ANY_IF, T1, false, Yes),
    d("proxy_cache", ANY, T1, false, NotYet),
    d("proxy_cache_path", HTTP, M2, false, NotYet),
    d("proxy_cache_valid", ANY, M1, false, NotYet),
    d("proxy_cache_key", ANY, T1, false, NotYet),
    d("fastcgi_pass", LOC.or(Ctx::LOCATION_IF), T1, false, NotYet),
    d("fastcgi_param", ANY, take(&[2, 3]), false, NotYet),
    d("uwsgi_pass", LOC.or(Ctx::LOCATION_IF), T1, false, NotYet),
    d("grpc_pass", LOC.or(Ctx::LOCATION_IF), T01, false, NotYet),
    d("ssi", ANY_IF, FLAG, false, NotYet),
    d("sub_filter", ANY, T2, false, NotYet),
    // upstream
    d("keepalive", UPS, T1, false, Yes),
    d("least_conn", UPS, T0, false, Yes),
    d("ip_hash", UPS, T0, false, Yes),
    d("hash", UPS, T12, false, Yes),
    d("random", UPS, take(&[0, 1, 2]), false, Yes),
    d("zone", UPS, T12, false, Accepted),
    d("health_check", UPS.or(LOC), Arity::AtLeast(0), false, Yes),
    d("stub_status", SRV.or(LOC), T01, false, Yes),
    d("metrics", LOC, T0, false, Yes),
    d("status_page", LOC, T0, false, Yes),
    d("match", HTTP, T1, true, Yes),
    // proxy
    d(
        "proxy_pass",
        LOC.or(Ctx::LOCATION_IF).or(Ctx::LIMIT_EXCEPT),
        T1,
        false,
        Yes,
    ),
    d("proxy_http_version", ANY, T1, false, Yes),
    d("proxy_set_header", ANY, T2, false, Yes),
    d("proxy_connect_timeout", ANY, T1, false, Yes),
    d("proxy_read_timeout", ANY, T1, false, Yes),
    d("proxy_send_timeout", ANY, T1, false, Yes),
    d("proxy_buffering", ANY, FLAG, false, Accepted),
    d("proxy_limit_rate", ANY, T1, false, Yes),
    d("proxy_request_buffering", ANY, FLAG, false, Yes),
    d("proxy_buffers", ANY, T2, false, Accepted),
    d("proxy_buffer_size", ANY, T1, false, Accepted),
    d("proxy_busy_buffers_size", ANY, T1, false, Accepted),
    d("proxy_temp_path", ANY, Arity::AtLeast(1), false, Accepted),
    d("proxy_max_temp_file_size", ANY, T1, false, Accepted),
    d("proxy_next_upstream", ANY, M1, false, Yes),
    d("proxy_next_upstream_tries", ANY, T1, false, Yes),
    d("proxy_next_upstream_timeout", ANY, T1, false, Yes),
    d("proxy_redirect", ANY, T12, false, Yes),
    d("proxy_cookie_domain", ANY, T12, false, Yes),
    d("proxy_cookie_path", ANY, T12, false, Yes),
    d("proxy_cookie_flags", ANY, take(&[1, 2, 3, 4]), false, Yes),
    d("proxy_hide_header", ANY, T1, false, Yes),
    d("proxy_pass_header", ANY, T1, false, Yes),
    d("proxy_ignore_headers", ANY, M1, false, Yes),
    d("proxy_intercept_errors", ANY, FLAG, false, Yes),
    d("proxy_method", ANY, T1, false, Yes),
    d("proxy_bind", ANY, T12, false, Yes),
    d("proxy_pass_request_headers", ANY, FLAG, false, Yes),
    d("proxy_pass_request_body", ANY, FLAG, false, Yes),
    d("proxy_set_body", ANY, T1, false, Yes),
    d("proxy_ssl_verify", ANY, FLAG, false, Yes),
    d("proxy_ssl_server_name", ANY, FLAG, false, Yes),
    d("proxy_ssl_name", ANY, T1, false, Yes),
    d("proxy_ssl_verify_depth", ANY, T1, false, Yes),
    d("proxy_ssl_trusted_certificate", ANY, T1, false, Yes),
    d("proxy_ssl_crl", ANY, T1, false, Yes),
    d("proxy_ssl_certificate", ANY, T1, false, Yes),
    d("proxy_ssl_certificate_key", ANY, T1, false, Yes),
    d("proxy_ssl_password_file", ANY, T1, false, Yes),
    d("proxy_ssl_protocols", ANY, M1, false, Yes),
    d("proxy_ssl_ciphers", ANY, T1, false, Yes),
    d("proxy_ssl_session_reuse", ANY, FLAG, false, Yes),
    // stream: rows of their own, after the http rows of the same name (a
    // lookup in a stream context finds these; `lookup` by name alone finds
    // the http ones).
    d("server", SSTREAM.or(SUPS), M1, false, Yes), // the block form is checked in code
    d("upstream", SSTREAM, T1, true, Yes),
    d("listen", SSRV, M1, false, Yes),
    d("proxy_pass", SSRV, T1, false, Yes),
    d("health_check", SSRV, Arity::AtLeast(0), false, Yes),
    d("proxy_connect_timeout", SANY, T1, false, Yes),
    d("proxy_timeout", SANY, T1, false, Yes),
    d("proxy_next_upstream", SANY, FLAG, false, Yes),
    d("proxy_next_upstream_tries", SANY, T1, false, Yes),
    d("proxy_next_upstream_timeout", SANY, T1, false, Yes),
    d("proxy_buffer_size", SANY, T1, false, Yes),
    d("proxy_half_close", SANY, FLAG, false, Yes),
    d("proxy_download_rate", SANY, T1, false, Yes),
    d("proxy_upload_rate", SANY, T1, false, Yes),
    d("proxy_bind", SANY, T12, false, Yes),
    d("proxy_socket_keepalive", SANY, FLAG, false, Yes),
    d("proxy_protocol", SANY, FLAG, false, Yes),
    d("proxy_responses", SANY, T1, false, Yes),
    d("proxy_requests", SANY, T1, false, Yes),
    d("proxy_ssl", SANY, FLAG, false, Yes),
    d("proxy_ssl_server_name", SANY, FLAG, false, Yes),
    d("proxy_ssl_verify", SANY, FLAG, false, Yes),
    d("proxy_ssl_verify_depth", SANY, T1, false, Yes),
    d("proxy_ssl_crl", SANY, T1, false, Yes),
    d("tcp_nodelay", SANY, FLAG, false, Yes),
    d("log_format", SSTREAM, M2, false, Yes),
    d("access_log", SANY, M1, false, Yes),
    d("open_log_file_cache", SANY, take(&[1, 2, 3, 4]), false, Yes),
    d("map", SSTREAM, T2, true, Yes),
    d("split_clients", SSTREAM, T2, true, Yes),
    d("geo", SSTREAM, T12, true, Yes),
    d("set", SSRV, T2, false, Yes),
    d("allow", SANY, T1, false, Yes),
    d("deny", SANY, T1, false, Yes),
    d("return", SSRV, T1, false, Yes),
    d("pass", SSRV, T1, false, NotYet),
    d("limit_conn", SANY, T2, false, Yes),
    d("limit_conn_zone", SSTREAM, T2, false, Yes),
    d("limit_conn_log_level", SANY, T1, false, Yes),
    d("limit_conn_dry_run", SANY, FLAG, false, Yes),
    d("resolver", SANY.or(SUPS), M1, false, Yes),
    d("resolver_timeout", SANY.or(SUPS), T1, false, Yes),
    d("preread_buffer_size", SANY, T1, false, Yes),
    d("preread_timeout", SANY, T1, false, Yes),
    d("proxy_protocol_timeout", SANY, T1, false, Yes),
    d("ssl_preread", SANY, FLAG, false, Yes),
    d("ssl_certificate", SANY, T1, false, Yes),
    d("ssl_certificate_key", SANY, T1, false, Yes),
    d("ssl_password_file", SANY, T1, false, Yes),
    d("ssl_protocols", SANY, M1, false, Yes),
    d("proxy_ssl_certificate", SANY, T1, false, Yes),
    d("proxy_ssl_certificate_key", SANY, T1, false, Yes),
    d("proxy_ssl_password_file", SANY, T1, false, Yes),
    d("proxy_ssl_trusted_certificate", SANY, T1, false, Yes),
    d("proxy_ssl_protocols", SANY, M1, false, Yes),
    d("proxy_ssl_ciphers", SANY, T1, false, Yes),
    d("proxy_ssl_name", SANY, T1, false, Yes),
    d("proxy_ssl_session_reuse", SANY, FLAG, false, Yes),
    d("ssl_ciphers", SANY, T1, false, Yes),
    d("ssl_client_certificate", SANY, T1, false, NotYet),
    d("ssl_verify_client", SANY, T1, false, NotYet),
    d("ssl_trusted_certificate", SANY, T1, false, NotYet),
    d("ssl_verify_depth", SANY, T1, false, NotYet),
    d("ssl_ecdh_curve", SANY, T1, false, Yes),
    d("ssl_session_cache", SANY, T12, false, Yes),
    d("ssl_session_timeout", SANY, T1, false, Yes),
    d("ssl_session_tickets", SANY, FLAG, false, Yes),
    d("ssl_alpn", SANY, M1, false, Yes),
    d("ssl_handshake_timeout", SANY, T1, false, Yes),
    d("ssl_prefer_server_ciphers", SANY, FLAG, false, Yes),
    d("set_real_ip_from", SANY, T1, false, NotYet),
    d("server_name", SSRV, M1, false, NotYet),
    d("variables_hash_max_size", SSTREAM, T1, false, Accepted),
    d("variables_hash_bucket_size", SSTREAM, T1, false, Accepted),
    d("map_hash_max_size", SSTREAM, T1, false, Accepted),
    d("map_hash_bucket_size", SSTREAM, T1, false, Accepted),
    d("server_names_hash_max_size", SSTREAM, T1, false, Accepted),
    d(
        "server_names_hash_bucket_size",
        SSTREAM,
        T1,
        false,
        Accepted,
    ),
    d("least_conn", SUPS, T0, false, Yes),
    d("hash", SUPS, T12, false, Yes),
    d("random", SUPS, take(&[0, 1, 2]), false, Yes),
    d("zone", SUPS, T12, false, Accepted),
];

/// Looks a directive up by name: switchyard's own table first (http's row
/// when http and stream both have it), then the rest of nginx's directives
/// ([`super::known::KNOWN`], all not supported yet).
pub fn lookup(name: &str) -> Option<&'static Spec> {
    DIRECTIVES
        .iter()
        .chain(super::known::KNOWN.iter())
        .find(|spec| spec.name == name)
}

/// Looks a directive up as written in `ctx`: the row allowed there, else
/// any row of that name (which then reports "not allowed here", as nginx
/// does for a directive of another module's context).
pub fn lookup_in(name: &str, ctx: Ctx) -> Option<&'static Spec> {
    DIRECTIVES
        .iter()
        .chain(super::known::KNOWN.iter())
        .find(|spec| spec.name == name && spec.ctx.contains(ctx))
        .or_else(|| lookup(name))
}

/// Whether a row is one of the stream module's own (its note, if any, is a
/// [`super::directive_notes`] stream note).
pub fn is_stream_row(spec: &Spec) -> bool {
    let stream = Ctx::STREAM.or(Ctx::STREAM_SERVER).or(Ctx::STREAM_UPSTREAM);
    stream.contains(spec.ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert!(lookup("proxy_pass").is_some());
        assert!(lookup("nonsense").is_none());
        let ssi = lookup("ssi").unwrap();
        assert_eq!(ssi.support, Support::NotYet);
        assert!(ssi.ctx.contains(Ctx::LOCATION));
        assert!(!ssi.ctx.contains(Ctx::MAIN));
        // nginx.org's directives outside nginx's source are known too: the
        // stream module's `match` block (http's is switchyard's own row), a
        // commercial one, and one only inside a block of a module we lack.
        let stream_match = lookup_in("match", Ctx::STREAM).unwrap();
        assert_eq!(stream_match.support, Support::NotYet);
        assert_eq!(lookup_in("match", Ctx::HTTP).unwrap().support, Support::Yes);
        assert_eq!(lookup("api").unwrap().support, Support::NotYet);
        let issuer = lookup("issuer").unwrap();
        assert!(issuer.ctx.contains(Ctx::OIDC_PROVIDER) && !issuer.ctx.contains(Ctx::HTTP));
    }

    /// A name is in switchyard's table once per module (http's row and
    /// stream's); the rest of nginx's table has it once, for the contexts
    /// switchyard's rows do not cover, not supported yet.
    #[test]
    fn the_tables_do_not_overlap() {
        let mut ours = std::collections::HashSet::new();
        for spec in DIRECTIVES {
            assert!(
                ours.insert((spec.name, is_stream_row(spec))),
                "{} is listed twice",
                spec.name
            );
        }
        let mut known = std::collections::HashSet::new();
        for spec in super::super::known::KNOWN {
            assert!(known.insert(spec.name), "{} is listed twice", spec.name);
            assert_eq!(spec.support, Support::NotYet, "{}", spec.name);
            for row in DIRECTIVES.iter().filter(|r| r.name == spec.name) {
                assert_eq!(
                    row.ctx.0 & spec.ctx.0,
                    0,
                    "{}: a context is in both tables",
                    spec.name
                );
            }
        }
    }
}
