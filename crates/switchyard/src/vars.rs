//! nginx variables (`$remote_addr`, `$http_user_agent`, ...) and the
//! templates that mix them with text (`proxy_set_header`, `log_format`,
//! `return`). A template is compiled once when the config loads; an unknown
//! variable is a config error, as in nginx.

use std::borrow::Cow;

/// A variable switchyard can evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `$remote_addr`.
    RemoteAddr,
    /// `$remote_port`.
    RemotePort,
    /// `$remote_user` (Basic auth user name).
    RemoteUser,
    /// `$time_local`.
    TimeLocal,
    /// `$time_iso8601`.
    TimeIso8601,
    /// `$msec`.
    Msec,
    /// `$request` (the request line).
    Request,
    /// `$request_method`.
    RequestMethod,
    /// `$request_uri`.
    RequestUri,
    /// `$uri` / `$document_uri`.
    Uri,
    /// `$args` / `$query_string`.
    Args,
    /// `$is_args`.
    IsArgs,
    /// `$request_length`.
    RequestLength,
    /// `$request_body`: the body the proxy read whole, if nginx would hold
    /// it in memory (not found otherwise).
    RequestBody,
    /// `$request_body_file`: the file `client_body_in_file_only` wrote the
    /// body to.
    RequestBodyFile,
    /// `$request_time`.
    RequestTime,
    /// `$status`.
    Status,
    /// `$body_bytes_sent`.
    BodyBytesSent,
    /// `$bytes_sent`.
    BytesSent,
    /// `$gzip_ratio`.
    GzipRatio,
    /// `$upstream_addr`.
    UpstreamAddr,
    /// `$upstream_status`.
    UpstreamStatus,
    /// `$upstream_response_time`.
    UpstreamResponseTime,
    /// `$upstream_response_length`: the body bytes each attempt received.
    UpstreamResponseLength,
    /// `$upstream_connect_time`.
    UpstreamConnectTime,
    /// `$upstream_header_time`.
    UpstreamHeaderTime,
    /// `$host`.
    Host,
    /// `$hostname`.
    Hostname,
    /// `$server_addr`.
    ServerAddr,
    /// `$server_port`.
    ServerPort,
    /// `$server_name`.
    ServerName,
    /// `$server_protocol`.
    ServerProtocol,
    /// `$scheme`.
    Scheme,
    /// `$https`: `on` on a TLS connection, else empty.
    Https,
    /// `$http2`: the HTTP/2 protocol a request came by, empty for HTTP/1.
    Http2,
    /// `$connection`.
    Connection,
    /// `$connection_requests`.
    ConnectionRequests,
    /// `$connection_time`: seconds since the connection was accepted.
    ConnectionTime,
    /// `$pid`.
    Pid,
    /// `$connections_active`, `_reading`, `_writing`, `_waiting`: the
    /// stub_status numbers.
    Connections(ConnectionState),
    /// `$nginx_version` (our version).
    NginxVersion,
    /// `$content_length`.
    ContentLength,
    /// `$content_type`.
    ContentType,
    /// `$proxy_host`.
    ProxyHost,
    /// `$proxy_port`.
    ProxyPort,
    /// `$proxy_add_x_forwarded_for`.
    ProxyAddXForwardedFor,
    /// `$http_NAME`: a request header (name lower-case, `_` for `-`).
    HttpHeader(String),
    /// `$sent_http_NAME`: a response header.
    SentHttp(String),
    /// `$sent_trailer_NAME`: a trailer `add_trailer` has rendered.
    SentTrailer(String),
    /// `$upstream_http_NAME`: an upstream response header.
    UpstreamHttp(String),
    /// `$upstream_cookie_NAME`: a cookie an upstream response sets (its
    /// `Set-Cookie` headers; name in lower case, matched case-blind).
    UpstreamCookie(String),
    /// `$arg_NAME`: a query argument.
    Arg(String),
    /// `$cookie_NAME`: a cookie.
    Cookie(String),
    /// `$realip_remote_addr`: the address before the realip module.
    RealIpRemoteAddr,
    /// `$realip_remote_port`: the port before the realip module.
    RealIpRemotePort,
    /// `$document_root`: `root` or `alias` of the location.
    DocumentRoot,
    /// `$request_filename`: the file path for the URI.
    RequestFilename,
    /// A variable made by `set`, `map`, `geo`, `split_clients`,
    /// `auth_request_set` or a regex's named capture (name in lower case),
    /// and what it is before anything gives it a value.
    User(String, Unset),
    /// `$pipe`: `p` for a request that was pipelined, `.` otherwise.
    Pipe,
    /// `$1`..`$9`: a capture of the last regex that matched (a `location ~`
    /// or an `if (... ~ ...)`); nginx has no `$0`.
    Capture(usize),
    /// stream: `$bytes_received` (from the client).
    BytesReceived,
    /// stream: `$upstream_bytes_sent`, per upstream attempt.
    UpstreamBytesSent,
    /// stream: `$upstream_bytes_received`, per upstream attempt.
    UpstreamBytesReceived,
    /// stream: `$upstream_first_byte_time`, per upstream attempt.
    UpstreamFirstByteTime,
    /// stream: `$upstream_session_time`, per upstream attempt.
    UpstreamSessionTime,
    /// stream: `$session_time`.
    SessionTime,
    /// stream: `$protocol` (`TCP` or `UDP`).
    Protocol,
    /// `$proxy_protocol_addr`, the client address a PROXY protocol header
    /// gave (not found without one).
    ProxyProtocolAddr,
    /// `$proxy_protocol_port`.
    ProxyProtocolPort,
    /// `$proxy_protocol_server_addr`.
    ProxyProtocolServerAddr,
    /// `$proxy_protocol_server_port`.
    ProxyProtocolServerPort,
    /// `$proxy_protocol_tlv_NAME`: a TLV of a PROXY v2 header (the name in
    /// lower case).
    ProxyProtocolTlv(String),
    /// stream: `$binary_remote_addr` (4 or 16 bytes, not text).
    BinaryRemoteAddr,
    /// stream: `$limit_conn_status` (`PASSED`, `REJECTED`,
    /// `REJECTED_DRY_RUN`; not found without `limit_conn`).
    LimitConnStatus,
    /// `$limit_req_status` (http: `PASSED`, `DELAYED`, `REJECTED`,
    /// `DELAYED_DRY_RUN`, `REJECTED_DRY_RUN`).
    LimitReqStatus,
    /// `$limit_rate` (http; settable with `set`).
    LimitRate,
    /// `$request_id`: 16 random bytes in hex, one value per request.
    RequestId,
    /// `$ssl_preread_protocol` (stream, with `ssl_preread on`).
    SslPrereadProtocol,
    /// `$ssl_preread_server_name`.
    SslPrereadServerName,
    /// `$ssl_preread_alpn_protocols`.
    SslPrereadAlpnProtocols,
    /// `$ssl_protocol`, `$ssl_cipher`, ...: what a terminated TLS
    /// handshake negotiated (stream `listen ... ssl`).
    Ssl(crate::transport::tls_server::SslVar),
}

/// Which of stub_status's connection counts a `$connections_*` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Open connections.
    Active,
    /// Reading a request head.
    Reading,
    /// Serving a request.
    Writing,
    /// Idle between requests.
    Waiting,
}

/// What a user variable is before the request gives it a value, as the
/// handler nginx gives its name decides: `set`'s reads as empty (with
/// `uninitialized_variable_warn`'s warning in nginx), a named capture's
/// and `auth_request_set`'s as not found (`-` in the access log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unset {
    /// Found and empty.
    Empty,
    /// Not found.
    NotFound,
}

/// Which module's variables a template may name: http and stream each have
/// their own set in nginx (`$bytes_received` is unknown in http, `$request`
/// in stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarSet {
    /// The http module's variables.
    Http,
    /// The stream module's variables.
    Stream,
}

thread_local! {
    /// The names `set` and `map` define in the configuration being loaded:
    /// nginx knows every such variable before it compiles any template.
    static USER_VARS: std::cell::RefCell<Vec<(String, Unset)>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The variable set of the block being loaded.
    static VAR_SET: std::cell::Cell<VarSet> = const { std::cell::Cell::new(VarSet::Http) };
}

/// Runs `f` with templates compiled against `set` (the stream block is
/// loaded with [`VarSet::Stream`]).
pub fn with_var_set<T>(set: VarSet, f: impl FnOnce() -> T) -> T {
    let saved = VAR_SET.with(|v| v.replace(set));
    let out = f();
    VAR_SET.with(|v| v.set(saved));
    out
}

/// Runs `f` with `names` (lower case) known as user variables.
pub fn with_user_vars<T>(names: Vec<(String, Unset)>, f: impl FnOnce() -> T) -> T {
    let saved = USER_VARS.with(|v| std::mem::replace(&mut *v.borrow_mut(), names));
    let out = f();
    USER_VARS.with(|v| *v.borrow_mut() = saved);
    out
}

/// How the configuration being loaded defines the user variable `lower`.
fn user_var(lower: &str) -> Option<Unset> {
    USER_VARS.with(|v| {
        v.borrow()
            .iter()
            .find(|(name, _)| name == lower)
            .map(|(_, unset)| *unset)
    })
}

impl Var {
    /// Whether `name` (without `$`) is a user variable: one `set` may give
    /// a value to, as it does any variable nginx declares changeable.
    pub fn is_user(name: &str) -> bool {
        matches!(Var::from_name(name), Some(Var::User(..)))
    }

    /// Looks a variable up by its name (without `$`).
    pub fn from_name(name: &str) -> Option<Var> {
        if VAR_SET.with(|v| v.get()) == VarSet::Stream {
            return Self::from_stream_name(name);
        }
        let lower = name.to_ascii_lowercase();
        let user = user_var(&lower);
        let prefixed = |prefix: &str| lower.strip_prefix(prefix).map(str::to_string);
        Some(match lower.as_str() {
            "remote_addr" => Var::RemoteAddr,
            "remote_port" => Var::RemotePort,
            "remote_user" => Var::RemoteUser,
            "time_local" => Var::TimeLocal,
            "time_iso8601" => Var::TimeIso8601,
            "msec" => Var::Msec,
            "request" => Var::Request,
            "request_method" => Var::RequestMethod,
            "request_uri" => Var::RequestUri,
            "uri" | "document_uri" => Var::Uri,
            "args" | "query_string" => Var::Args,
            "is_args" => Var::IsArgs,
            "request_length" => Var::RequestLength,
            "request_body" => Var::RequestBody,
            "request_body_file" => Var::RequestBodyFile,
            "request_time" => Var::RequestTime,
            "status" => Var::Status,
            "body_bytes_sent" => Var::BodyBytesSent,
            "bytes_sent" => Var::BytesSent,
            "gzip_ratio" => Var::GzipRatio,
            "upstream_addr" => Var::UpstreamAddr,
            "upstream_status" => Var::UpstreamStatus,
            "upstream_response_time" => Var::UpstreamResponseTime,
            "upstream_connect_time" => Var::UpstreamConnectTime,
            "upstream_header_time" => Var::UpstreamHeaderTime,
            "upstream_response_length" => Var::UpstreamResponseLength,
            "upstream_bytes_sent" => Var::UpstreamBytesSent,
            "upstream_bytes_received" => Var::UpstreamBytesReceived,
            "host" => Var::Host,
            "hostname" => Var::Hostname,
            "server_addr" => Var::ServerAddr,
            "server_port" => Var::ServerPort,
            "server_name" => Var::ServerName,
            "server_protocol" => Var::ServerProtocol,
            "scheme" => Var::Scheme,
            "https" => Var::Https,
            "http2" => Var::Http2,
            "connection" => Var::Connection,
            "connection_requests" => Var::ConnectionRequests,
            "connection_time" => Var::ConnectionTime,
            "pid" => Var::Pid,
            "proxy_protocol_addr" => Var::ProxyProtocolAddr,
            "proxy_protocol_port" => Var::ProxyProtocolPort,
            "proxy_protocol_server_addr" => Var::ProxyProtocolServerAddr,
            "proxy_protocol_server_port" => Var::ProxyProtocolServerPort,
            "connections_active" => Var::Connections(ConnectionState::Active),
            "connections_reading" => Var::Connections(ConnectionState::Reading),
            "connections_writing" => Var::Connections(ConnectionState::Writing),
            "connections_waiting" => Var::Connections(ConnectionState::Waiting),
            "nginx_version" => Var::NginxVersion,
            "content_length" => Var::ContentLength,
            "content_type" => Var::ContentType,
            "proxy_host" => Var::ProxyHost,
            "proxy_port" => Var::ProxyPort,
            "proxy_add_x_forwarded_for" => Var::ProxyAddXForwardedFor,
            "realip_remote_addr" => Var::RealIpRemoteAddr,
            "realip_remote_port" => Var::RealIpRemotePort,
            "binary_remote_addr" => Var::BinaryRemoteAddr,
            "limit_conn_status" => Var::LimitConnStatus,
            "limit_req_status" => Var::LimitReqStatus,
            "limit_rate" => Var::LimitRate,
            "request_id" => Var::RequestId,
            _ if lower.len() == 1 && (b'1'..=b'9').contains(&lower.as_bytes()[0]) => {
                Var::Capture((lower.as_bytes()[0] - b'0') as usize)
            }
            "document_root" => Var::DocumentRoot,
            "request_filename" => Var::RequestFilename,
            _ if crate::transport::tls_server::SslVar::from_name(&lower).is_some() => {
                Var::Ssl(crate::transport::tls_server::SslVar::from_name(&lower)?)
            }
            "pipe" => Var::Pipe,
            _ if user.is_some() => Var::User(lower.clone(), user?),
            _ => {
                if let Some(h) = prefixed("http_") {
                    Var::HttpHeader(h)
                } else if let Some(h) = prefixed("sent_http_") {
                    Var::SentHttp(h)
                } else if let Some(h) = prefixed("sent_trailer_") {
                    Var::SentTrailer(h)
                } else if let Some(c) = prefixed("upstream_cookie_") {
                    Var::UpstreamCookie(c)
                } else if let Some(h) = prefixed("upstream_http_") {
                    Var::UpstreamHttp(h)
                } else if let Some(a) = name.strip_prefix("arg_") {
                    Var::Arg(a.to_string())
                } else if let Some(c) = name.strip_prefix("cookie_") {
                    Var::Cookie(c.to_string())
                } else if let Some(t) = lower.strip_prefix("proxy_protocol_tlv_") {
                    Var::ProxyProtocolTlv(t.to_string())
                } else {
                    return None;
                }
            }
        })
    }
}

impl Var {
    /// The stream module's variables (ngx_stream_variables.c and the
    /// upstream module's), plus `set`/`map` names.
    fn from_stream_name(name: &str) -> Option<Var> {
        let lower = name.to_ascii_lowercase();
        let user = user_var(&lower);
        Some(match lower.as_str() {
            "remote_addr" => Var::RemoteAddr,
            "remote_port" => Var::RemotePort,
            "server_addr" => Var::ServerAddr,
            "server_port" => Var::ServerPort,
            "bytes_sent" => Var::BytesSent,
            "bytes_received" => Var::BytesReceived,
            "connection" => Var::Connection,
            "hostname" => Var::Hostname,
            "pid" => Var::Pid,
            "msec" => Var::Msec,
            "nginx_version" => Var::NginxVersion,
            "time_iso8601" => Var::TimeIso8601,
            "time_local" => Var::TimeLocal,
            "protocol" => Var::Protocol,
            "status" => Var::Status,
            "session_time" => Var::SessionTime,
            "upstream_addr" => Var::UpstreamAddr,
            "upstream_bytes_sent" => Var::UpstreamBytesSent,
            "upstream_bytes_received" => Var::UpstreamBytesReceived,
            "upstream_connect_time" => Var::UpstreamConnectTime,
            "upstream_first_byte_time" => Var::UpstreamFirstByteTime,
            "upstream_session_time" => Var::UpstreamSessionTime,
            "proxy_protocol_addr" => Var::ProxyProtocolAddr,
            "proxy_protocol_port" => Var::ProxyProtocolPort,
            "proxy_protocol_server_addr" => Var::ProxyProtocolServerAddr,
            "proxy_protocol_server_port" => Var::ProxyProtocolServerPort,
            "binary_remote_addr" => Var::BinaryRemoteAddr,
            "limit_conn_status" => Var::LimitConnStatus,
            "ssl_preread_protocol" => Var::SslPrereadProtocol,
            "ssl_preread_server_name" => Var::SslPrereadServerName,
            "ssl_preread_alpn_protocols" => Var::SslPrereadAlpnProtocols,
            // The stream module's handshake does not see the ClientHello.
            "ssl_curves" => return None,
            _ if crate::transport::tls_server::SslVar::from_name(&lower).is_some() => {
                Var::Ssl(crate::transport::tls_server::SslVar::from_name(&lower)?)
            }
            _ if lower.len() == 1 && (b'1'..=b'9').contains(&lower.as_bytes()[0]) => {
                Var::Capture((lower.as_bytes()[0] - b'0') as usize)
            }
            _ if user.is_some() => Var::User(lower.clone(), user?),
            _ => match lower.strip_prefix("proxy_protocol_tlv_") {
                Some(t) => Var::ProxyProtocolTlv(t.to_string()),
                None => return None,
            },
        })
    }
}

/// Something that knows the value of variables: a request in flight.
pub trait VarSource {
    /// The variable's value, or `None` when it is not found (nginx's
    /// "not found", logged as `-`).
    fn var(&self, var: &Var) -> Option<Cow<'_, str>>;

    /// The variable's value as bytes: the same as [`VarSource::var`] except
    /// for variables that are not text (`$binary_remote_addr`).
    fn var_bytes(&self, var: &Var) -> Option<Cow<'_, [u8]>> {
        self.var(var).map(|value| match value {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        })
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text as written.
    Literal(String),
    /// A variable.
    Var(Var),
}

/// A compiled string with variables.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    segments: Vec<Segment>,
}

/// Why a template did not compile; `Display` is nginx's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `unknown "x" variable`: nginx has no such variable.
    #[error("unknown \"{0}\" variable")]
    Unknown(String),
    /// A variable nginx has and switchyard does not yet.
    #[error("variable \"${0}\" is not supported yet")]
    NotYet(String),
    /// `invalid variable name`.
    #[error("invalid variable name")]
    InvalidName,
    /// `the closing bracket in "x" variable is missing`.
    #[error("the closing bracket in \"{0}\" variable is missing")]
    MissingBracket(String),
}

impl Template {
    /// Compiles `text`, resolving each `$name` / `${name}`.
    pub fn compile(text: &str) -> Result<Template, TemplateError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(dollar) = rest.find('$') {
            literal.push_str(&rest[..dollar]);
            let after = &rest[dollar + 1..];
            let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
                let end = inner
                    .find('}')
                    .ok_or_else(|| TemplateError::MissingBracket(inner.to_string()))?;
                (&inner[..end], end + 2)
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            };
            if name.is_empty() {
                return Err(TemplateError::InvalidName);
            }
            let var = Var::from_name(name).ok_or_else(|| {
                let stream = VAR_SET.with(|v| v.get()) == VarSet::Stream;
                if crate::known_vars::is_nginx_variable(name, stream) {
                    TemplateError::NotYet(name.to_string())
                } else {
                    TemplateError::Unknown(name.to_string())
                }
            })?;
            if !literal.is_empty() {
                segments.push(Segment::Literal(std::mem::take(&mut literal)));
            }
            segments.push(Segment::Var(var));
            rest = &after[consumed..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Template { segments })
    }

    /// A template of plain text.
    pub fn literal(text: &str) -> Template {
        Template {
            segments: if text.is_empty() {
                Vec::new()
            } else {
                vec![Segment::Literal(text.to_string())]
            },
        }
    }

    /// The compiled pieces.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether the template is empty text (nginx does not send a
    /// `proxy_set_header` whose value is empty).
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Renders to bytes, with missing variables as nothing: what is sent
    /// on the wire (`return` in stream), where a value may be binary.
    pub fn render_bytes(&self, source: &dyn VarSource) -> Vec<u8> {
        let mut out = Vec::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.extend_from_slice(text.as_bytes()),
                Segment::Var(var) => {
                    if let Some(value) = source.var_bytes(var) {
                        out.extend_from_slice(&value);
                    }
                }
            }
        }
        out
    }

    /// Renders with missing variables as empty strings.
    pub fn render(&self, source: &dyn VarSource) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Var(var) => {
                    if let Some(value) = source.var(var) {
                        out.push_str(&value);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl VarSource for Fixed {
        fn var(&self, var: &Var) -> Option<Cow<'_, str>> {
            match var {
                Var::RemoteAddr => Some("10.0.0.1".into()),
                Var::HttpHeader(h) if h == "user_agent" => Some("curl".into()),
                _ => None,
            }
        }
    }

    #[test]
    fn compiles_and_renders() {
        let t = Template::compile("$remote_addr - ${http_user_agent}x $status.").unwrap();
        assert_eq!(t.render(&Fixed), "10.0.0.1 - curlx .");
    }

    #[test]
    fn stream_and_http_know_their_own_variables() {
        assert!(Template::compile("$bytes_received").is_err());
        assert!(with_var_set(VarSet::Stream, || Template::compile("$bytes_received")).is_ok());
        assert!(with_var_set(VarSet::Stream, || Template::compile("$request")).is_err());
        assert!(Template::compile("$request").is_ok());
    }

    #[test]
    fn errors_are_nginx_words() {
        assert_eq!(
            Template::compile("$nope").unwrap_err().to_string(),
            "unknown \"nope\" variable"
        );
        assert_eq!(
            Template::compile("a $").unwrap_err().to_string(),
            "invalid variable name"
        );
        assert!(matches!(
            Template::compile("${abc").unwrap_err(),
            TemplateError::MissingBracket(_)
        ));
    }
}
