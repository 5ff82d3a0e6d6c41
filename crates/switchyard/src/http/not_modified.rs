//! nginx's not-modified filter (ngx_http_not_modified_filter_module) for a
//! 200 from a file: If-Unmodified-Since and If-Match refuse with 412,
//! If-Modified-Since (as `if_modified_since` says) and If-None-Match
//! answer 304.

use std::time::SystemTime;

use http::header;
use http::HeaderMap;

use crate::config::model::IfModifiedSince;

/// What the preconditions make of a 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Send the response.
    Send,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// nginx's `ngx_http_test_if_match`: whether `etag` is in the list (a `*`
/// matches any); `weak` lets a `W/` tag in the list match.
fn etag_in(list: &str, etag: Option<&str>, weak: bool) -> bool {
    if list == "*" {
        return true;
    }
    let Some(etag) = etag else {
        return false;
    };
    list.split(',').any(|item| {
        let item = item.trim_matches([' ', '\t']);
        let item = if weak {
            item.strip_prefix("W/").unwrap_or(item)
        } else {
            item
        };
        item == etag
    })
}

/// The not-modified filter for a response whose Last-Modified is `mtime`
/// (seconds) and whose entity tag is `etag`.
pub fn check(
    request: &HeaderMap,
    mtime: Option<SystemTime>,
    etag: Option<&str>,
    ims: IfModifiedSince,
) -> Precondition {
    let get = |name: header::HeaderName| request.get(name).and_then(|v| v.to_str().ok());
    let date = |text: &str| httpdate::parse_http_date(text).ok();
    if let Some(since) = get(header::IF_UNMODIFIED_SINCE) {
        let holds = matches!((mtime, date(since)), (Some(m), Some(s)) if s >= m);
        if !holds {
            return Precondition::Failed;
        }
    }
    if let Some(list) = get(header::IF_MATCH) {
        if !etag_in(list, etag, false) {
            return Precondition::Failed;
        }
    }
    let since = get(header::IF_MODIFIED_SINCE);
    let none_match = get(header::IF_NONE_MATCH);
    if since.is_none() && none_match.is_none() {
        return Precondition::Send;
    }
    if let Some(since) = since {
        // ngx_http_test_if_modified: whether the file counts as modified.
        let modified = match (mtime, ims) {
            (None, _) | (_, IfModifiedSince::Off) => true,
            (Some(m), mode) => match date(since) {
                Some(s) if s == m => false,
                Some(s) => mode == IfModifiedSince::Exact || s < m,
                None => true,
            },
        };
        if modified {
            return Precondition::Send;
        }
    }
    if let Some(list) = none_match {
        if !etag_in(list, etag, true) {
            return Precondition::Send;
        }
    }
    Precondition::NotModified
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(
                header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn as_nginx_decides() {
        let mtime = Some(UNIX_EPOCH + Duration::from_secs(1_000_000_000));
        let at = "Sun, 09 Sep 2001 01:46:40 GMT";
        let later = "Mon, 10 Sep 2001 01:46:40 GMT";
        let tag = Some("\"abc\"");
        let check = |h: &[(&str, &str)], mode| check(&headers(h), mtime, tag, mode);
        use IfModifiedSince::*;
        use Precondition::*;
        assert_eq!(check(&[("if-modified-since", at)], Exact), NotModified);
        assert_eq!(check(&[("if-modified-since", later)], Exact), Send);
        assert_eq!(check(&[("if-modified-since", later)], Before), NotModified);
        assert_eq!(check(&[("if-modified-since", at)], Off), Send);
        assert_eq!(
            check(&[("if-none-match", "\"x\", W/\"abc\"")], Exact),
            NotModified
        );
        assert_eq!(check(&[("if-none-match", "\"x\"")], Exact), Send);
        assert_eq!(check(&[("if-match", "W/\"abc\"")], Exact), Failed);
        assert_eq!(check(&[("if-match", "\"x\",\t\"abc\" ")], Exact), Send);
        assert_eq!(check(&[("if-match", "*")], Exact), Send);
        assert_eq!(check(&[("if-unmodified-since", at)], Exact), Send);
        assert_eq!(
            check(
                &[("if-unmodified-since", "Sat, 08 Sep 2001 01:46:40 GMT")],
                Exact
            ),
            Failed
        );
        // Both: the date says not modified, the tag decides.
        assert_eq!(
            check(
                &[("if-modified-since", at), ("if-none-match", "\"x\"")],
                Exact
            ),
            Send
        );
    }
}
