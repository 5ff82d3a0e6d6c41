//! Which `server` and which `location` answer a request, in nginx's order.

use std::sync::Arc;

use crate::config::model::{LocationConfig, LocationMatch, ServerConfig};

/// Picks the virtual server for `host` among those on one listening address:
/// an exact name, then the longest leading wildcard (`*.example.com`,
/// `.example.com`), then a trailing wildcard (`www.example.*`), then the
/// first regular expression (`~^www\d+\.`) in file order, then the
/// `default_server` (or the first server on the address).
pub fn select_server<'a>(
    servers: &'a [(Arc<ServerConfig>, bool)],
    host: Option<&str>,
) -> Option<&'a Arc<ServerConfig>> {
    select_server_by_name(servers, host).map(|(server, _)| server)
}

/// The regex name that chose a server, and the normalized host it
/// matched (its captures are variables).
pub struct ByRegex<'a> {
    /// The `server_name ~...` regex.
    pub re: &'a regex::Regex,
    /// The host, lower case, without port or trailing dot.
    pub host: String,
}

/// [`select_server`], and the regex name that chose the server, if one
/// did.
pub fn select_server_by_name<'a>(
    servers: &'a [(Arc<ServerConfig>, bool)],
    host: Option<&str>,
) -> Option<(&'a Arc<ServerConfig>, Option<ByRegex<'a>>)> {
    let default = servers
        .iter()
        .find(|(_, is_default)| *is_default)
        .or_else(|| servers.first())
        .map(|(s, _)| (s, None));
    // One server on the address answers whatever the Host says.
    if servers.len() == 1 {
        return default;
    }
    let Some(host) = host else { return default };
    let host = host.trim_end_matches('.');
    let host: std::borrow::Cow<'_, str> = if host.bytes().any(|b| b.is_ascii_uppercase()) {
        host.to_ascii_lowercase().into()
    } else {
        host.into()
    };
    let host = strip_port(&host);
    if let Some((s, _)) = servers
        .iter()
        .find(|(s, _)| s.names.iter().any(|n| n == host))
    {
        return Some((s, None));
    }
    // The longest leading wildcard, then the longest trailing one.
    let mut best: Option<(&Arc<ServerConfig>, usize)> = None;
    for (server, _) in servers {
        for name in &server.names {
            let suffix = name
                .strip_prefix('*')
                .or_else(|| name.strip_prefix('.').map(|_| name.as_str()));
            if let Some(suffix) = suffix {
                let matches =
                    host.ends_with(suffix) || (name.starts_with('.') && host == &name[1..]);
                if matches && best.is_none_or(|(_, len)| suffix.len() > len) {
                    best = Some((server, suffix.len()));
                }
            }
        }
    }
    if let Some((s, _)) = best {
        return Some((s, None));
    }
    for (server, _) in servers {
        for name in &server.names {
            if let Some(prefix) = name.strip_suffix('*') {
                if host.starts_with(prefix) && best.is_none_or(|(_, len)| prefix.len() > len) {
                    best = Some((server, prefix.len()));
                }
            }
        }
    }
    if let Some((s, _)) = best {
        return Some((s, None));
    }
    for (server, _) in servers {
        if let Some(re) = server.name_regexes.iter().find(|re| re.is_match(host)) {
            return Some((
                server,
                Some(ByRegex {
                    re,
                    host: host.to_string(),
                }),
            ));
        }
    }
    default
}

/// A Host value without its port.
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split(']')
            .next()
            .map(|h| &host[..h.len() + 1])
            .unwrap_or(host);
    }
    host.split(':').next().unwrap_or(host)
}

/// Finds the location for `uri` (already normalized), in nginx's order:
/// `=` exact; else the longest prefix; if that prefix is `^~`, it wins;
/// otherwise nested locations of the prefix, then regexes in file order,
/// and the longest prefix if no regex matches.
pub fn select_location<'a>(
    locations: &'a [Arc<LocationConfig>],
    uri: &str,
) -> Option<&'a Arc<LocationConfig>> {
    let mut longest: Option<(&Arc<LocationConfig>, usize, bool)> = None;
    for loc in locations {
        match &loc.matcher {
            LocationMatch::Exact(p) if p == uri => return Some(loc),
            LocationMatch::Prefix(p) | LocationMatch::PrefixNoRegex(p)
                if uri.starts_with(p.as_str())
                    && longest.is_none_or(|(_, len, _)| p.len() > len) =>
            {
                let no_regex = matches!(loc.matcher, LocationMatch::PrefixNoRegex(_));
                longest = Some((loc, p.len(), no_regex));
            }
            _ => {}
        }
    }
    if let Some((loc, _, no_regex)) = longest {
        if let Some(inner) = select_location(&loc.nested, uri) {
            return Some(inner);
        }
        if no_regex {
            return Some(loc);
        }
    }
    for loc in locations {
        if let LocationMatch::Regex(re) = &loc.matcher {
            if re.is_match(uri) {
                return Some(loc);
            }
        }
    }
    longest.map(|(loc, _, _)| loc)
}

/// nginx's auto redirect: `uri` is a location's name without its trailing
/// `/`, that location passes requests on (`proxy_pass`), and no location
/// is named `uri` itself; nginx then answers 301 to the location's name
/// without looking at regexes. Returns that name.
pub fn auto_redirect<'a>(locations: &'a [Arc<LocationConfig>], uri: &str) -> Option<&'a str> {
    let name = |loc: &'a LocationConfig| match &loc.matcher {
        LocationMatch::Exact(p) | LocationMatch::Prefix(p) | LocationMatch::PrefixNoRegex(p) => {
            Some(p.as_str())
        }
        LocationMatch::Regex(_) | LocationMatch::Named(_) => None,
    };
    if locations.iter().any(|l| name(l) == Some(uri)) {
        return None;
    }
    let target = locations.iter().find_map(|l| {
        let n = name(l)?;
        let proxied = matches!(l.handler, crate::config::model::Handler::Proxy(_));
        (proxied && n.strip_suffix('/') == Some(uri)).then_some(n)
    });
    if target.is_some() {
        return target;
    }
    // nginx looks into the nested locations of the longest prefix.
    let longest = locations
        .iter()
        .filter(|l| {
            matches!(&l.matcher, LocationMatch::Prefix(p) | LocationMatch::PrefixNoRegex(p)
                if uri.starts_with(p.as_str()))
        })
        .max_by_key(|l| name(l).map(str::len))?;
    auto_redirect(&longest.nested, uri)
}

/// nginx's `ngx_escape_uri(..., NGX_ESCAPE_URI)`: what a decoded URI needs
/// escaped to be sent in a `Location` again.
pub fn escape_uri(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        let escaped = b <= 0x20
            || b >= 0x7f
            || matches!(
                b,
                b'"' | b'#' | b'%' | b'<' | b'>' | b'?' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
            );
        if escaped {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// nginx's URI normalization for matching and `$uri`: percent-decoding,
/// merging slashes, resolving `.` and `..`. `None` means the URI climbs above
/// the root or has a `%` not followed by two hex digits (nginx's
/// `ngx_http_parse_complex_uri` refuses both: 400).
pub fn normalize_uri(path: &str) -> Option<String> {
    normalize_uri_with(path, true)
}

/// [`normalize_uri`] with `merge_slashes` as configured: off keeps the
/// empty segments of `//` (a `..` still removes one).
pub fn normalize_uri_with(path: &str, merge_slashes: bool) -> Option<String> {
    if is_normal(path) {
        return Some(path.to_string());
    }
    normalize_slow(path, merge_slashes)
}

fn normalize_slow(path: &str, merge_slashes: bool) -> Option<String> {
    let decoded = percent_decode(path)?;
    let mut segments: Vec<&str> = Vec::new();
    let trailing_slash =
        decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    let parts: Vec<&str> = decoded.split('/').collect();
    let last = parts.len().saturating_sub(1);
    for (i, segment) in parts.iter().enumerate() {
        match *segment {
            // The root's and the trailing slash's empty parts are no segment.
            "" if i == 0 || i == last || merge_slashes => {}
            "." => {}
            ".." => {
                segments.pop()?;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Some(out)
}

/// Whether `path` is already what `normalize_uri` makes of it: rooted, no
/// escapes, no empty segment, no segment starting with a dot (which may be
/// `.` or `..`). Most paths are, and skip the decoding and rebuilding.
fn is_normal(path: &str) -> bool {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return false;
    }
    let mut previous = 0u8;
    for &b in bytes {
        if b == b'%' || (previous == b'/' && (b == b'/' || b == b'.')) {
            return false;
        }
        previous = b;
    }
    true
}

/// `None` for a `%` without two hex digits after it, or one that decodes to
/// NUL: nginx refuses the request rather than pass the `%` on.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let (h, l) = (hex(bytes.get(i + 1))?, hex(bytes.get(i + 2))?);
            let decoded = (h * 16 + l) as u8;
            if decoded == 0 {
                return None;
            }
            out.push(decoded);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(http_body: &str) -> Vec<(Arc<ServerConfig>, bool)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, format!("events {{}}\nhttp {{\n{http_body}\n}}\n")).unwrap();
        let loaded = crate::config::load(&crate::config::LoadOptions {
            conf_file: path,
            prefix: dir.path().to_path_buf(),
            globals: None,
        })
        .unwrap_or_else(|e| panic!("{}", e.lines().join("; ")));
        let http = loaded.model.http.expect("an http block");
        http.servers.iter().map(|s| (s.clone(), false)).collect()
    }

    #[test]
    fn virtual_servers_in_nginx_order() {
        let all = servers(
            "server { listen 127.0.0.1:8080; server_name first; }
             server { listen 127.0.0.1:8080; server_name \"\"; }
             server { listen 127.0.0.1:8080; server_name wc.example.*; }
             server { listen 127.0.0.1:8080; server_name wc.example.com.*; }
             server { listen 127.0.0.1:8080; server_name .dot.example.com; }
             server { listen 127.0.0.1:8080; server_name \"~^(?P<name>[a-z]+)\\Q.example.org\\E$\"; }",
        );
        let pick = |host: Option<&str>| {
            let (s, by) = select_server_by_name(&all, host).unwrap();
            (s.primary_name.clone(), by.map(|b| b.host))
        };
        assert_eq!(pick(Some("nothing")).0, "first", "the default");
        assert_eq!(pick(Some("")).0, "", "no Host: the empty name");
        assert_eq!(pick(None).0, "first", "no SNI: the default");
        assert_eq!(
            pick(Some("wc.example.com.x")).0,
            "wc.example.com.*",
            "longest trailing"
        );
        assert_eq!(pick(Some("wc.example.net")).0, "wc.example.*");
        assert_eq!(pick(Some("a.dot.example.com")).0, "dot.example.com");
        let (name, by) = pick(Some("BLAH.example.org:8080"));
        assert_eq!(name, "~^(?P<name>[a-z]+)\\Q.example.org\\E$");
        assert_eq!(
            by.as_deref(),
            Some("blah.example.org"),
            "matched lower-cased"
        );
        assert_eq!(
            pick(Some("blahxexample.org")).0,
            "first",
            "\\Q quotes the dot"
        );
    }

    #[test]
    fn normalizes() {
        assert_eq!(normalize_uri("/a//b/./c/../d").as_deref(), Some("/a/b/d"));
        assert_eq!(normalize_uri("/").as_deref(), Some("/"));
        assert_eq!(normalize_uri("/a/").as_deref(), Some("/a/"));
        assert_eq!(normalize_uri("/%41"), Some("/A".to_string()));
        for bad in ["/%41%2", "/a%", "/a%1", "/%zz", "/%00", "/a%g1"] {
            assert_eq!(normalize_uri(bad), None, "{bad}");
        }
        assert_eq!(normalize_uri("/.."), None);
        assert_eq!(normalize_uri("/a/.."), Some("/".to_string()));
        for path in [
            "/", "/a", "/a/b/", "/a.b/c.", "/x-y_z", "/.", "/a/.b", "//", "a", "",
        ] {
            if is_normal(path) {
                assert_eq!(normalize_slow(path, true).as_deref(), Some(path), "{path}");
            }
        }
        assert!(!is_normal("/a/../b") && !is_normal("/a//b") && !is_normal("/%41"));
        assert_eq!(escape_uri("/dir sp/?#%é"), "/dir%20sp/%3F%23%25%C3%A9");
    }

    #[test]
    fn merge_slashes_off_keeps_empty_segments() {
        let keep = |p| normalize_uri_with(p, false);
        assert_eq!(keep("/foo//../bar").as_deref(), Some("/foo/bar"));
        assert_eq!(keep("/foo///../bar").as_deref(), Some("/foo//bar"));
        assert_eq!(keep("//a//").as_deref(), Some("//a//"));
        assert_eq!(keep("/a/./b/").as_deref(), Some("/a/b/"));
        assert_eq!(normalize_uri("//a//").as_deref(), Some("/a/"));
    }
}
