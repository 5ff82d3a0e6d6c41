//! The upstream's response as it goes down: nginx's hidden headers
//! (`proxy_hide_header`, `proxy_pass_header`), `proxy_redirect`.

use http::header::{self, HeaderValue};
use http::HeaderMap;

use crate::config::model::{ProxyPass, ProxyRedirect, Settings};
use crate::http::exchange::Exchange;

/// Upstream response headers nginx does not pass down by default
/// (`proxy_hide_header`'s defaults and the hop-by-hop ones).
const HIDDEN: [&str; 8] = [
    "date",
    "server",
    "x-pad",
    "x-accel-expires",
    "x-accel-redirect",
    "x-accel-limit-rate",
    "x-accel-buffering",
    "x-accel-charset",
];

/// Hop-by-hop headers that never pass (a 101 keeps `Upgrade`).
const HOP_BY_HOP: [&str; 4] = ["connection", "keep-alive", "transfer-encoding", "upgrade"];

/// The headers passed to the client.
pub fn filter_headers(upstream: &HeaderMap, settings: &Settings, switching: bool) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(upstream.len() + 2);
    for (name, value) in upstream {
        let n = name.as_str();
        let hidden_by_default =
            HIDDEN.contains(&n) && !settings.proxy_pass_headers.iter().any(|p| p == n);
        let hop = HOP_BY_HOP.contains(&n) && !(switching && n == "upgrade");
        if hidden_by_default || hop || settings.proxy_hide_headers.iter().any(|h| h == n) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// Rewrites `Location` and `Refresh` by `proxy_redirect`.
pub fn rewrite_redirects(
    headers: &mut HeaderMap,
    settings: &Settings,
    pass: &ProxyPass,
    ex: &Exchange,
) {
    if !headers.contains_key(header::LOCATION) && !headers.contains_key(header::REFRESH) {
        return;
    }
    let rules: Vec<(String, String)> = match &settings.proxy_redirect {
        ProxyRedirect::Off => return,
        ProxyRedirect::Default => match &pass.location_prefix {
            // nginx: the proxy_pass URL (with the location name when the URL
            // has no URI part) is replaced by the location name.
            Some(prefix) => {
                let from = format!(
                    "http://{}{}",
                    pass.proxy_host,
                    pass.uri.as_deref().unwrap_or(prefix.as_str())
                );
                vec![(from, prefix.clone())]
            }
            None => return,
        },
        ProxyRedirect::Rules(rules) => rules
            .iter()
            .map(|(from, to)| (from.clone(), to.render(ex)))
            .collect(),
    };
    for name in [header::LOCATION, header::REFRESH] {
        let Some(value) = headers.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let rewritten = rewrite_one(value, &rules, name == header::REFRESH);
        if let Some(new) = rewritten.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, new);
        }
    }
}

fn rewrite_one(value: &str, rules: &[(String, String)], refresh: bool) -> Option<String> {
    // Refresh: "5; url=http://..." — the URL part is rewritten.
    let (head, url) = if refresh {
        let at = value.to_ascii_lowercase().find("url=")? + 4;
        (&value[..at], &value[at..])
    } else {
        ("", value)
    };
    for (from, to) in rules {
        if url.len() >= from.len()
            && url.is_char_boundary(from.len())
            && url[..from.len()].eq_ignore_ascii_case(from)
        {
            return Some(format!("{head}{to}{}", &url[from.len()..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_prefix_case_insensitively() {
        let rules = vec![("http://backend/".to_string(), "/app/".to_string())];
        assert_eq!(
            rewrite_one("HTTP://Backend/x?y", &rules, false).as_deref(),
            Some("/app/x?y")
        );
        assert_eq!(rewrite_one("http://other/x", &rules, false), None);
        assert_eq!(
            rewrite_one("5; url=http://backend/z", &rules, true).as_deref(),
            Some("5; url=/app/z")
        );
    }
}
