//! `add_header`: headers added to responses of the listed statuses (any
//! status with `always`), proxied or made by switchyard.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, Response};

use crate::config::model::AddHeader;
use crate::vars::{Var, VarSource};

use super::body::ResponseBody;
use super::exchange::Exchange;
use super::h1::HeaderCase;

/// The statuses `add_header` applies to without `always`.
pub(crate) fn applies(status: u16) -> bool {
    matches!(
        status,
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

/// The headers nginx's `add_header` sets rather than adds
/// (`ngx_http_set_response_header`): one value replaces the handler's, an
/// empty value removes it.
fn replaces(name: &str) -> bool {
    name.eq_ignore_ascii_case("last-modified") || name.eq_ignore_ascii_case("etag")
}

/// What `add_header` will make of `name` (`Last-Modified` or `ETag`) on a
/// response of `status`: `None` when no line applies (the handler's value
/// stands), `Some(None)` when a line removes it, `Some(Some(v))` when one
/// replaces it. The range filter compares `If-Range` with these final
/// values, as nginx's runs after the headers filter.
pub fn replaced(
    headers: &[AddHeader],
    ex: &Exchange,
    status: u16,
    name: &str,
) -> Option<Option<String>> {
    let ok = applies(status);
    headers
        .iter()
        .rfind(|h| (ok || h.always) && h.name.eq_ignore_ascii_case(name))
        .map(|h| Some(h.value.render(ex)).filter(|v| !v.is_empty()))
}

/// Adds the `add_header` lines that apply to `response`.
pub fn add(headers: &[AddHeader], ex: &Exchange, response: &mut Response<ResponseBody>) {
    if headers.is_empty() {
        return;
    }
    let ok = applies(response.status().as_u16());
    for h in headers.iter().filter(|h| ok || h.always) {
        let value = h.value.render(&Filtering {
            ex,
            sent: response.headers(),
        });
        let replace = replaces(&h.name);
        if value.is_empty() {
            if replace {
                response.headers_mut().remove(h.name.as_str());
            }
            continue;
        }
        let Ok(name) = HeaderName::from_bytes(h.name.as_bytes()) else {
            continue;
        };
        // The name goes out as the configuration spells it, the value
        // as rendered (control bytes too, as nginx writes them).
        let mut noted = HeaderCase::default();
        noted.note(&name, h.name.as_bytes());
        let Some(value) = noted.value(value.as_bytes()) else {
            continue;
        };
        if !noted.is_empty() {
            let extensions = response.extensions_mut();
            match extensions.get_mut::<HeaderCase>() {
                Some(case) => case.extend(&noted),
                None => {
                    extensions.insert(noted);
                }
            }
        }
        if replace {
            response.headers_mut().insert(name, value);
        } else {
            response.headers_mut().append(name, value);
        }
    }
}

/// The exchange as nginx's headers filter sees it: `$sent_http_NAME`
/// reads the response's headers as they are so far (the lines above
/// included), as ngx_http_variable_sent_http reads r->headers_out.
struct Filtering<'a> {
    ex: &'a Exchange,
    sent: &'a HeaderMap,
}

impl VarSource for Filtering<'_> {
    fn var(&self, var: &Var) -> Option<Cow<'_, str>> {
        match var {
            Var::SentHttp(h) => Exchange::header(self.sent, h).map(Cow::Owned),
            _ => self.ex.var(var),
        }
    }

    fn var_bytes(&self, var: &Var) -> Option<Cow<'_, [u8]>> {
        match var {
            Var::SentHttp(h) => Exchange::header_value_bytes(self.sent, h),
            _ => self.ex.var_bytes(var),
        }
    }
}
