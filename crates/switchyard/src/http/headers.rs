//! `add_header`: headers added to responses of the listed statuses (any
//! status with `always`), proxied or made by switchyard.

use http::{HeaderName, HeaderValue, Response};

use crate::config::model::AddHeader;

use super::body::ResponseBody;
use super::exchange::Exchange;
use super::h1::HeaderCase;

/// The statuses `add_header` applies to without `always`.
fn applies(status: u16) -> bool {
    matches!(
        status,
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

/// Adds the `add_header` lines that apply to `response`.
pub fn add(headers: &[AddHeader], ex: &Exchange, response: &mut Response<ResponseBody>) {
    if headers.is_empty() {
        return;
    }
    let ok = applies(response.status().as_u16());
    for h in headers.iter().filter(|h| ok || h.always) {
        let value = h.value.render(ex);
        if value.is_empty() {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            // The name goes out as the configuration spells it.
            let mut noted = HeaderCase::default();
            noted.note(&name, h.name.as_bytes());
            if !noted.is_empty() {
                let extensions = response.extensions_mut();
                match extensions.get_mut::<HeaderCase>() {
                    Some(case) => case.extend(&noted),
                    None => {
                        extensions.insert(noted);
                    }
                }
            }
            response.headers_mut().append(name, value);
        }
    }
}
