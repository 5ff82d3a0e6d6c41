//! The upstream's `Set-Cookie` lines on the way down: `proxy_cookie_domain`,
//! `proxy_cookie_path` and `proxy_cookie_flags`, as nginx's
//! `ngx_http_proxy_rewrite_cookie`.
//!
//! A line is split into `;`-separated attributes; a line nginx rewrites is
//! written back from them (`; ` between, spaces around names and values
//! dropped), and a line no directive changes passes byte for byte.

use std::borrow::Cow;

use http::header::{self, Entry, HeaderValue};
use http::HeaderMap;

use super::response::rewrite_value;
use crate::config::model::{CookieFlags, CookieName, ProxyCookie};
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
    if let Some(flags) = flags_for(&attrs, &cookie.flags, ex) {
        edit_flags(&mut attrs, flags);
        // nginx writes the line back even when its flags were as asked.
        rewritten = true;
    }
    rewritten.then(|| write(&attrs))
}

// nginx's NGX_HTTP_PROXY_COOKIE_* bits, less the per-kind ones that only
// tell that some flag of the kind was given.
const SECURE_ON: u16 = 1 << 0;
const SECURE_OFF: u16 = 1 << 1;
const HTTPONLY_ON: u16 = 1 << 2;
const HTTPONLY_OFF: u16 = 1 << 3;
const SAMESITE_STRICT: u16 = 1 << 4;
const SAMESITE_LAX: u16 = 1 << 5;
const SAMESITE_NONE: u16 = 1 << 6;
const SAMESITE_OFF: u16 = 1 << 7;

/// nginx's `ngx_http_proxy_cookie_flags_masks`.
const FLAGS: [(&str, u16); 8] = [
    ("secure", SECURE_ON),
    ("nosecure", SECURE_OFF),
    ("httponly", HTTPONLY_ON),
    ("nohttponly", HTTPONLY_OFF),
    ("samesite=strict", SAMESITE_STRICT),
    ("samesite=lax", SAMESITE_LAX),
    ("samesite=none", SAMESITE_NONE),
    ("nosamesite", SAMESITE_OFF),
];

/// The flags of the first `proxy_cookie_flags` line whose cookie is this
/// line's, rendered; `None` when no line names it or its flags render to
/// none nginx knows.
fn flags_for(attrs: &[Attr<'_>], lines: &[CookieFlags], ex: &mut Exchange) -> Option<u16> {
    let name = attrs.first()?.key.as_deref()?;
    let line = lines.iter().find(|line| match &line.cookie {
        CookieName::Regex(re) => ex.capture(re, name),
        CookieName::Exact(cookie) => cookie.render(ex).eq_ignore_ascii_case(name),
    })?;
    let mut bits = 0;
    for flag in &line.flags {
        let flag = flag.render(ex);
        // An unknown flag is only a debug line in nginx.
        if let Some((_, bit)) = FLAGS.iter().find(|(n, _)| n.eq_ignore_ascii_case(&flag)) {
            bits |= bit;
        }
    }
    (bits != 0).then_some(bits)
}

/// Sets and removes flags as nginx's `ngx_http_proxy_edit_cookie_flags`.
/// The first flag of a kind to set that the line already has is kept as
/// written and the kind counts as set; past that, one of the kind is
/// dropped if its removal was asked (so `secure nosecure` keeps one
/// Secure). A SameSite of another value becomes the one asked for, and
/// flags still to set go at the end: Secure, HttpOnly, SameSite.
fn edit_flags(attrs: &mut Vec<Attr<'_>>, mut bits: u16) {
    for attr in attrs.iter_mut().skip(1) {
        let Some(key) = attr.key.as_deref() else {
            continue;
        };
        if key.eq_ignore_ascii_case("secure") {
            if bits & SECURE_ON != 0 {
                bits &= !SECURE_ON;
            } else if bits & SECURE_OFF != 0 {
                attr.key = None;
            }
        } else if key.eq_ignore_ascii_case("httponly") {
            if bits & HTTPONLY_ON != 0 {
                bits &= !HTTPONLY_ON;
            } else if bits & HTTPONLY_OFF != 0 {
                attr.key = None;
            }
        } else if key.eq_ignore_ascii_case("samesite") {
            let wanted = [
                (SAMESITE_STRICT, "Strict"),
                (SAMESITE_LAX, "Lax"),
                (SAMESITE_NONE, "None"),
            ]
            .into_iter()
            .find(|(bit, _)| bits & bit != 0);
            match wanted {
                Some((bit, value)) => {
                    bits &= !bit;
                    let same = attr
                        .value
                        .as_deref()
                        .is_some_and(|v| v.eq_ignore_ascii_case(value));
                    if !same {
                        attr.key = Some(Cow::Borrowed("SameSite"));
                        attr.value = Some(Cow::Borrowed(value));
                    }
                }
                None if bits & SAMESITE_OFF != 0 => attr.key = None,
                None => {}
            }
        }
    }
    let flag = |key: &'static str, value: Option<&'static str>| Attr {
        key: Some(Cow::Borrowed(key)),
        value: value.map(Cow::Borrowed),
    };
    if bits & SECURE_ON != 0 {
        attrs.push(flag("Secure", None));
    }
    if bits & HTTPONLY_ON != 0 {
        attrs.push(flag("HttpOnly", None));
    }
    if bits & SAMESITE_STRICT != 0 {
        attrs.push(flag("SameSite", Some("Strict")));
    } else if bits & SAMESITE_LAX != 0 {
        attrs.push(flag("SameSite", Some("Lax")));
    } else if bits & SAMESITE_NONE != 0 {
        attrs.push(flag("SameSite", Some("None")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{RewriteFrom, ValueRewrite};
    use crate::vars::Template;

    fn exchange() -> Exchange {
        Exchange::for_test()
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

    fn flags(cookie: CookieName, flags: &[&str]) -> ProxyCookie {
        ProxyCookie {
            flags: vec![CookieFlags {
                cookie,
                flags: flags
                    .iter()
                    .map(|f| Template::compile(f).unwrap())
                    .collect(),
            }],
            ..Default::default()
        }
    }

    fn named(name: &str, list: &[&str]) -> ProxyCookie {
        flags(CookieName::Exact(Template::literal(name)), list)
    }

    #[test]
    fn flags_are_added_in_nginx_order_and_kept_as_written_when_there() {
        let mut ex = exchange();
        let all = named("A", &["samesite=lax", "HTTPONLY", "secure"]);
        assert_eq!(
            rewrite_cookie("a=1", &all, &mut ex).as_deref(),
            Some("a=1; Secure; HttpOnly; SameSite=Lax")
        );
        // Flags already as asked stay as written, but the line is still
        // written back nginx's way.
        assert_eq!(
            rewrite_cookie("a=1;secure;samesite=LAX;httponly", &all, &mut ex).as_deref(),
            Some("a=1; secure; samesite=LAX; httponly")
        );
        assert_eq!(
            rewrite_cookie("a=1; SameSite=None; x", &all, &mut ex).as_deref(),
            Some("a=1; SameSite=Lax; x; Secure; HttpOnly")
        );
        // A SameSite without a value is given one.
        assert_eq!(
            rewrite_cookie("a=1; samesite", &named("a", &["samesite=strict"]), &mut ex).as_deref(),
            Some("a=1; SameSite=Strict")
        );
    }

    #[test]
    fn flags_are_removed_and_a_set_and_removed_kind_keeps_one() {
        let mut ex = exchange();
        let off = named("a", &["nosecure", "nohttponly", "nosamesite"]);
        assert_eq!(
            rewrite_cookie(
                "a=1; Secure; Path=/; HttpOnly; SameSite=Lax; Secure",
                &off,
                &mut ex
            )
            .as_deref(),
            Some("a=1; Path=/")
        );
        let both = named("a", &["secure", "nosecure"]);
        assert_eq!(
            rewrite_cookie("a=1; Secure; secure", &both, &mut ex).as_deref(),
            Some("a=1; Secure")
        );
        assert_eq!(
            rewrite_cookie("a=1", &both, &mut ex).as_deref(),
            Some("a=1; Secure")
        );
    }

    #[test]
    fn only_known_flags_count_and_only_the_first_matching_line_applies() {
        let mut ex = exchange();
        assert_eq!(
            rewrite_cookie("a=1", &named("a", &["bogus", ""]), &mut ex),
            None
        );
        let mut two = named("a", &["httponly"]);
        two.flags.extend(named("a", &["secure"]).flags);
        assert_eq!(
            rewrite_cookie("a=1", &two, &mut ex).as_deref(),
            Some("a=1; HttpOnly")
        );
        assert_eq!(rewrite_cookie("b=1", &two, &mut ex), None);
        // A cookie regex is caseless.
        let re = regex::RegexBuilder::new("^X")
            .case_insensitive(true)
            .build()
            .unwrap();
        let by_regex = flags(CookieName::Regex(re), &["secure"]);
        assert_eq!(
            rewrite_cookie("xy=1", &by_regex, &mut ex).as_deref(),
            Some("xy=1; Secure")
        );
    }
}
