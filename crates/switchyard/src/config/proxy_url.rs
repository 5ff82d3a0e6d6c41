//! The URL of `proxy_pass`, taken apart as nginx's ngx_parse_url does with
//! a URI part: once at load time for a fixed URL, per request for one with
//! variables.

use super::upstream::{split_host_port, unix_path};

/// Where a `proxy_pass` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authority {
    /// `host[:port]`: a name, an upstream group or an address literal.
    Inet {
        /// The host as written (brackets of an IPv6 literal removed).
        host: String,
        /// The port, the scheme's default when none is written.
        port: u16,
        /// Whether the URL writes a port.
        explicit_port: bool,
    },
    /// `unix:PATH`.
    Unix(String),
}

/// A `proxy_pass` URL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// `https://`.
    pub https: bool,
    /// Where it points.
    pub authority: Authority,
    /// `$proxy_host`, the default `Host` sent: the host with its port
    /// unless that is the scheme's default; `localhost` for a socket.
    pub proxy_host: String,
    /// The URI part (`/x/` of `http://u/x/`), if written.
    pub uri: Option<String>,
}

/// Why a URL cannot be used, in nginx's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Neither `http://` nor `https://`.
    #[error("invalid URL prefix")]
    Prefix,
    /// What ngx_parse_url says of the rest (already with `in upstream "..."`).
    #[error("{0}")]
    Address(String),
}

impl ProxyUrl {
    /// Parses `url` (`http://host:port/uri`, `https://unix:/path:/uri`).
    pub fn parse(url: &str) -> Result<ProxyUrl, UrlError> {
        let (rest, https) = if let Some(r) = strip_prefix_ci(url, "http://") {
            (r, false)
        } else if let Some(r) = strip_prefix_ci(url, "https://") {
            (r, true)
        } else {
            return Err(UrlError::Prefix);
        };
        let default_port = if https { 443 } else { 80 };
        if let Some(socket) = strip_prefix_ci(rest, "unix:") {
            // The path runs to the first colon; a URI follows it.
            let (path, uri) = match socket.split_once(':') {
                Some((path, uri)) => (path, Some(uri.to_string())),
                None => (socket, None),
            };
            let path = unix_path(path)
                .map_err(|e| UrlError::Address(format!("{e} in upstream \"{rest}\"")))?;
            return Ok(ProxyUrl {
                https,
                authority: Authority::Unix(path.to_string()),
                proxy_host: "localhost".to_string(),
                uri,
            });
        }
        // The host ends at the URI's `/` or its arguments' `?`.
        let (authority, uri) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], Some(rest[i..].to_string())),
            None => (rest, None),
        };
        let (host, port, explicit_port) =
            split_host_port(authority, default_port).map_err(UrlError::Address)?;
        let proxy_host = if explicit_port && port != default_port {
            authority.to_string()
        } else {
            authority.split(':').next().unwrap_or(authority).to_string()
        };
        Ok(ProxyUrl {
            https,
            authority: Authority::Inet {
                host,
                port,
                explicit_port,
            },
            proxy_host,
            uri,
        })
    }
}

/// `text` without `prefix`, compared without case.
fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    if text.len() >= prefix.len()
        && text.is_char_boundary(prefix.len())
        && text[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&text[prefix.len()..])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_path_runs_to_the_first_colon() {
        let url = ProxyUrl::parse("http://unix:/tmp/app.sock:/x/").unwrap();
        assert_eq!(url.authority, Authority::Unix("/tmp/app.sock".into()));
        assert_eq!(url.uri.as_deref(), Some("/x/"));
        assert_eq!(url.proxy_host, "localhost");
        let whole = ProxyUrl::parse("http://unix:/tmp/app.sock/x").unwrap();
        assert_eq!(whole.authority, Authority::Unix("/tmp/app.sock/x".into()));
        assert_eq!(whole.uri, None);
        assert_eq!(
            ProxyUrl::parse("http://unix:").unwrap_err().to_string(),
            "no path in the unix domain socket in upstream \"unix:\""
        );
    }

    #[test]
    fn the_host_keeps_its_port_unless_it_is_the_default() {
        let url = ProxyUrl::parse("HTTPS://backend:443/a").unwrap();
        assert!(url.https);
        assert_eq!(url.proxy_host, "backend");
        assert_eq!(url.uri.as_deref(), Some("/a"));
        let url = ProxyUrl::parse("http://backend:8080").unwrap();
        assert_eq!(url.proxy_host, "backend:8080");
        assert_eq!(
            url.authority,
            Authority::Inet {
                host: "backend".into(),
                port: 8080,
                explicit_port: true
            }
        );
        assert_eq!(ProxyUrl::parse("ftp://x").unwrap_err(), UrlError::Prefix);
    }
}
