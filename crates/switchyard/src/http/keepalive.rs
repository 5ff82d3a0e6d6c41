//! `keepalive_disable`: the browsers nginx closes the connection for after
//! a response, known by their User-Agent as ngx_http_process_user_agent
//! knows them (MSIE 4 to 6 may stall after a POST answered on a kept-alive
//! connection; old Safari may send a POST on one the server closed).

use http::header::{HeaderMap, USER_AGENT};
use http::Method;

use crate::config::model::KeepaliveDisable;

/// What a request's User-Agent says, as far as keep-alive cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Browser {
    msie6: bool,
    safari: bool,
}

/// Whether `keepalive_disable` ends the connection after this request.
pub fn disabled(disable: &KeepaliveDisable, method: &Method, headers: &HeaderMap) -> bool {
    // MSIE 6 matters for POSTs only: a GET never reads the User-Agent.
    let msie6 = disable.msie6 && *method == Method::POST;
    if !msie6 && !disable.safari {
        return false;
    }
    let browser = headers
        .get_all(USER_AGENT)
        .iter()
        .map(|ua| browser(ua.as_bytes()))
        .fold(Browser::default(), |a, b| Browser {
            msie6: a.msie6 || b.msie6,
            safari: a.safari || b.safari,
        });
    (browser.msie6 && msie6) || (browser.safari && disable.safari)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// nginx's reading of one User-Agent: `MSIE 4.`/`MSIE 5.`, or `MSIE 6.`
/// without `SV1` after it, is MSIE 6 or older (not when Opera says so);
/// Safari is `Safari/` with `Mac OS X`, in a browser that is not MSIE,
/// Opera, Gecko or Chrome.
fn browser(ua: &[u8]) -> Browser {
    let mut msie = false;
    let mut msie6 = false;
    if let Some(at) = find(ua, b"MSIE ") {
        // nginx wants eight bytes from "MSIE " on: "MSIE 5.0".
        if at + 7 < ua.len() {
            msie = true;
            if ua[at + 6] == b'.' {
                msie6 = match ua[at + 5] {
                    b'4' | b'5' => true,
                    b'6' => find(&ua[at + 8..], b"SV1").is_none(),
                    _ => false,
                };
            }
        }
    }
    let opera = find(ua, b"Opera").is_some();
    if opera {
        msie6 = false;
    }
    let safari = !msie
        && !opera
        && find(ua, b"Gecko/").is_none()
        && find(ua, b"Chrome/").is_none()
        && find(ua, b"Safari/").is_some()
        && find(ua, b"Mac OS X").is_some();
    Browser { msie6, safari }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_as_nginx_reads_them() {
        let b = |ua: &str| browser(ua.as_bytes());
        assert!(b("MSIE 5.0").msie6);
        assert!(b("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)").msie6);
        assert!(!b("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)").msie6);
        assert!(!b("MSIE 7.0").msie6);
        assert!(!b("MSIE 5.").msie6, "seven bytes are not enough");
        assert!(!b("Opera/9 (MSIE 5.0)").msie6);
        assert!(b("Mac OS X Safari/7534.48.3").safari);
        assert!(!b("Mac OS X Chrome/1 Safari/537").safari);
        assert!(!b("Mac OS X Gecko/2010 Safari/1").safari);
        assert!(!b("Windows Safari/1").safari);
        assert!(!b("MSIE 5.0 Mac OS X Safari/1").safari);
    }

    #[test]
    fn msie6_only_for_posts_and_none_disables_nothing() {
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, "MSIE 5.0".parse().unwrap());
        let default = KeepaliveDisable::default();
        assert!(disabled(&default, &Method::POST, &headers));
        assert!(!disabled(&default, &Method::GET, &headers));
        let none = KeepaliveDisable {
            none: true,
            msie6: false,
            safari: false,
        };
        assert!(!disabled(&none, &Method::POST, &headers));
    }
}
