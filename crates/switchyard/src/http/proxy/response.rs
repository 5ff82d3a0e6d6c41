//! The upstream's response as it goes down: nginx's hidden headers
//! (`proxy_hide_header`, `proxy_pass_header`), `proxy_redirect`.

use http::header::{self, HeaderValue};
use http::HeaderMap;

use crate::config::model::{ProxyPass, ProxyRedirect, RewriteFrom, Settings, ValueRewrite};
use crate::http::exchange::Exchange;
use crate::vars::Template;

/// Upstream response headers nginx does not pass down by default
/// (`proxy_hide_header`'s defaults). A `match` on the name, not a list
/// search: every header of every proxied response is asked.
fn hidden_by_default(name: &str) -> bool {
    matches!(
        name,
        "date"
            | "server"
            | "x-pad"
            | "x-accel-expires"
            | "x-accel-redirect"
            | "x-accel-limit-rate"
            | "x-accel-buffering"
            | "x-accel-charset"
    )
}

/// Hop-by-hop headers that never pass. `Upgrade` does, in any response
/// to an HTTP/1 client (nginx's ngx_http_upstream_copy_upgrade; HTTP/2
/// has no place for it, and its writer leaves it out).
fn hop_by_hop(name: &str) -> bool {
    matches!(name, "connection" | "keep-alive" | "transfer-encoding")
}

/// The headers passed to the client.
pub fn filter_headers(upstream: &HeaderMap, settings: &Settings) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(upstream.len() + 2);
    for (name, value) in upstream {
        let n = name.as_str();
        let hidden_by_default =
            hidden_by_default(n) && !settings.proxy_pass_headers.iter().any(|p| p == n);
        if hidden_by_default || hop_by_hop(n) || settings.proxy_hide_headers.iter().any(|h| h == n)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// Rewrites `Location` and `Refresh` by `proxy_redirect`; whether a rule
/// rewrote `Location` (nginx's header filter then makes a relative one
/// absolute, and leaves one no rule touched as it came).
pub fn rewrite_redirects(
    headers: &mut HeaderMap,
    settings: &Settings,
    pass: &ProxyPass,
    ex: &mut Exchange,
) -> bool {
    if !headers.contains_key(header::LOCATION) && !headers.contains_key(header::REFRESH) {
        return false;
    }
    let default;
    let rules: &[ValueRewrite] = match &settings.proxy_redirect {
        ProxyRedirect::Off => return false,
        ProxyRedirect::Default => match &pass.location_prefix {
            // nginx: the proxy_pass URL (with the location name when the URL
            // has no URI part) is replaced by the location name.
            Some(prefix) => {
                let from = format!(
                    "http://{}{}",
                    pass.proxy_host,
                    pass.uri.as_deref().unwrap_or(prefix.as_str())
                );
                default = [ValueRewrite {
                    from: RewriteFrom::Prefix(Template::literal(&from)),
                    to: Template::literal(prefix),
                }];
                &default
            }
            None => return false,
        },
        ProxyRedirect::Rules(rules) => rules,
    };
    let mut location_rewritten = false;
    for name in [header::LOCATION, header::REFRESH] {
        let Some(value) = headers.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let value = value.to_string();
        let rewritten = rewrite_redirect(&value, rules, name == header::REFRESH, ex);
        if let Some(new) = rewritten.and_then(|v| HeaderValue::from_str(&v).ok()) {
            location_rewritten |= name == header::LOCATION;
            headers.insert(name, new);
        }
    }
    location_rewritten
}

/// `Location` or `Refresh` by the first rule that applies.
fn rewrite_redirect(
    value: &str,
    rules: &[ValueRewrite],
    refresh: bool,
    ex: &mut Exchange,
) -> Option<String> {
    // Refresh: "5; url=http://..." — the URL part is rewritten.
    let (head, url) = if refresh {
        let at = value.to_ascii_lowercase().find("url=")? + 4;
        (&value[..at], &value[at..])
    } else {
        ("", value)
    };
    rewrite_value(url, rules, ex).map(|new| format!("{head}{new}"))
}

/// `value` rewritten by the first of `rules` that applies to it, as nginx
/// tries its rewrite handlers in order; `None` when none does. A rule's
/// pattern and replacement are rendered only as it is tried, as nginx's.
pub(super) fn rewrite_value(
    value: &str,
    rules: &[ValueRewrite],
    ex: &mut Exchange,
) -> Option<String> {
    for rule in rules {
        match &rule.from {
            RewriteFrom::Prefix(from) => {
                let from = from.render(ex);
                if let Some(rest) = value.strip_prefix(from.as_str()) {
                    return Some(format!("{}{rest}", rule.to.render(ex)));
                }
            }
            RewriteFrom::Domain(domain) => {
                let domain = domain.render(ex);
                let (dot, rest) = match value.strip_prefix('.') {
                    Some(rest) => (".", rest),
                    None => ("", value),
                };
                if rest.eq_ignore_ascii_case(&domain) {
                    return Some(format!("{dot}{}", rule.to.render(ex)));
                }
            }
            RewriteFrom::Regex(re) => {
                if ex.capture(re, value) {
                    return Some(rule.to.render(ex));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange() -> Exchange {
        Exchange::for_test()
    }

    fn rule(from: RewriteFrom, to: &str) -> ValueRewrite {
        ValueRewrite {
            from,
            to: Template::compile(to).unwrap(),
        }
    }

    #[test]
    fn rewrites_a_prefix_case_sensitively_as_nginx() {
        let mut ex = exchange();
        let from = RewriteFrom::Prefix(Template::literal("http://backend/"));
        let rules = vec![rule(from, "/app/")];
        assert_eq!(
            rewrite_redirect("http://backend/x?y", &rules, false, &mut ex).as_deref(),
            Some("/app/x?y")
        );
        assert_eq!(
            rewrite_redirect("HTTP://Backend/x", &rules, false, &mut ex),
            None
        );
        assert_eq!(
            rewrite_redirect("5; url=http://backend/z", &rules, true, &mut ex).as_deref(),
            Some("5; url=/app/z")
        );
    }

    #[test]
    fn a_regex_replaces_the_whole_value_with_its_captures() {
        let mut ex = exchange();
        let re = regex::Regex::new("^(.+)/regex_w_([^/]+)").unwrap();
        let rules = vec![rule(RewriteFrom::Regex(re), "$1/$2/test.html")];
        assert_eq!(
            rewrite_redirect(
                "http://b/regex_w_captures/test.html",
                &rules,
                false,
                &mut ex
            )
            .as_deref(),
            Some("http://b/captures/test.html")
        );
    }

    #[test]
    fn a_domain_matches_whole_without_case_and_keeps_its_dot() {
        let mut ex = exchange();
        let rules = vec![rule(
            RewriteFrom::Domain(Template::literal("www.example.org")),
            "example.com",
        )];
        assert_eq!(
            rewrite_value("www.Example.ORG", &rules, &mut ex).as_deref(),
            Some("example.com")
        );
        assert_eq!(
            rewrite_value(".www.example.org", &rules, &mut ex).as_deref(),
            Some(".example.com")
        );
        assert_eq!(rewrite_value("a.www.example.org", &rules, &mut ex), None);
        assert_eq!(rewrite_value("www.example.org.", &rules, &mut ex), None);
    }
}
