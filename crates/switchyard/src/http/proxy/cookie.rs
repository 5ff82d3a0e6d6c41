//! The upstream's `Set-Cookie` lines on the way down: `proxy_cookie_domain`
//! and `proxy_cookie_path`, as nginx's `ngx_http_proxy_rewrite_cookie`.
//!
//! A line is split into `;`-separated attributes; a line nginx rewrites is
//! written back from them (`; ` between, spaces around names and values
//! dropped), and a line no directive changes passes byte for byte.

use std::borrow::Cow;

use http::header::{self, Entry, HeaderValue};
use http::HeaderMap;

use super::response::rewrite_value;
use crate::config::model::ProxyCookie;
use crate::http::exchange::Exchange;

/// Rewrites every `Set-Cookie` of `headers` by `cookie`'s directives.
pub fn rewrite_set_cookies(headers: &mut HeaderMap, cookie: &ProxyCookie, ex: &mut Exchange) {
    if cookie.is_off() {
        return;
    }
    let Entry::Occupied(mut entry) = headers.entry(header::SET_COOKIE) else {
        return;
    };
    for value in entry.iter_mut() {
        // Regexes and variables work on text; a line that is not UTF-8
        // passes as it came.
        let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
            continue;
        };
        let Some(new) = rewrite_cookie(text, cookie, ex) else {
            continue;
        };
        // A replacement that renders to bytes no header may carry (a
        // variable's CR or LF) leaves the line as it came.
        if let Ok(new) = HeaderValue::from_bytes(new.as_bytes()) {
            *value = new;
        }
    }
}

/// One attribute of a `Set-Cookie` line: `key` or `key=value`.
#[derive(Debug)]
pub(super) struct Attr<'a> {
    /// The name, spaces around it dropped; `None` once removed.
    pub(super) key: Option<Cow<'a, str>>,
    /// The value after `=`, spaces around it dropped; `None` without `=`.
    pub(super) value: Option<Cow<'a, str>>,
}

/// `line` split as nginx's `ngx_http_proxy_parse_cookie`: at every `;`,
/// with only spaces (not tabs) trimmed, so a trailing `;` makes an empty
/// last attribute.
pub(super) fn parse(line: &str) -> Vec<Attr<'_>> {
    line.split(';')
        .map(|part| {
            let part = part.trim_start_matches(' ');
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k, Some(v.trim_matches(' '))),
                None => (part, None),
            };
            Attr {
                key: Some(Cow::Borrowed(key.trim_end_matches(' '))),
                value: value.map(Cow::Borrowed),
            }
        })
        .collect()
}

/// The attributes written back as nginx does: `; ` before each one after
/// the first (by position, as nginx counts), removed ones left out.
pub(super) fn write(attrs: &[Attr<'_>]) -> String {
    let mut out = String::new();
    for (i, attr) in attrs.iter().enumerate() {
        let Some(key) = &attr.key else {
            continue;
        };
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(key);
        if let Some(value) = &attr.value {
            out.push('=');
            out.push_str(value);
        }
    }
    out
}

/// The line rewritten, or `None` when no directive changed it.
fn rewrite_cookie(line: &str, cookie: &ProxyCookie, ex: &mut Exchange) -> Option<String> {
    let mut attrs = parse(line);
    // nginx leaves alone a line whose first part is not `name=value`.
    attrs.first()?.value.as_ref()?;
    let mut rewritten = false;
    for attr in attrs.iter_mut().skip(1) {
        let (Some(key), Some(value)) = (&attr.key, &attr.value) else {
            continue;
        };
        let rules = if key.eq_ignore_ascii_case("domain") {
            &cookie.domains
        } else if key.eq_ignore_ascii_case("path") {
            &cookie.paths
        } else {
            continue;
        };
        if let Some(new) = rewrite_value(value, rules, ex) {
            attr.value = Some(Cow::Owned(new));
            rewritten = true;
        }
    }
    rewritten.then(|| write(&attrs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{RewriteFrom, ValueRewrite};
    use crate::http::exchange::ConnInfo;
    use crate::vars::Template;

    fn exchange() -> Exchange {
        let conn = std::sync::Arc::new(ConnInfo {
            id: 1,
            remote: "127.0.0.1:1".parse().unwrap(),
            local: "127.0.0.1:80".parse().unwrap(),
            requests: Default::default(),
            tls: None,
        });
        let (parts, ()) = http::Request::new(()).into_parts();
        Exchange::new(conn, &parts, HeaderMap::new(), "/".into())
    }

    fn rule(from: RewriteFrom, to: &str) -> ValueRewrite {
        ValueRewrite {
            from,
            to: Template::compile(to).unwrap(),
        }
    }

    fn paths() -> ProxyCookie {
        ProxyCookie {
            paths: vec![rule(RewriteFrom::Prefix(Template::literal("/a/")), "/b/")],
            ..Default::default()
        }
    }

    #[test]
    fn a_rewritten_line_is_written_back_spaced_as_nginx() {
        let mut ex = exchange();
        assert_eq!(
            rewrite_cookie("n = v ;path= /a/x ;Secure;", &paths(), &mut ex).as_deref(),
            Some("n=v; path=/b/x; Secure; ")
        );
    }

    #[test]
    fn a_line_no_rule_changes_is_left_alone() {
        let mut ex = exchange();
        assert_eq!(rewrite_cookie("n=v;path=/c/", &paths(), &mut ex), None);
        // Without `name=value` first, nginx does not look further.
        assert_eq!(rewrite_cookie("n; Path=/a/", &paths(), &mut ex), None);
        // A Path without `=` has no value to rewrite.
        assert_eq!(rewrite_cookie("n=v; Path", &paths(), &mut ex), None);
    }

    #[test]
    fn every_path_attribute_is_rewritten_whatever_its_case() {
        let mut ex = exchange();
        assert_eq!(
            rewrite_cookie("n=v; PATH=/a/1; path=/a/2", &paths(), &mut ex).as_deref(),
            Some("n=v; PATH=/b/1; path=/b/2")
        );
    }

    #[test]
    fn set_cookie_lines_are_rewritten_in_place_and_order() {
        let mut ex = exchange();
        let mut headers = HeaderMap::new();
        for line in ["a=1; Path=/a/", "b=2;Path=/z/", "c=3;path=/a/c"] {
            headers.append(header::SET_COOKIE, HeaderValue::from_static(line));
        }
        rewrite_set_cookies(&mut headers, &paths(), &mut ex);
        let lines: Vec<_> = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(lines, ["a=1; Path=/b/", "b=2;Path=/z/", "c=3; path=/b/c"]);
    }
}
