//! Responses switchyard makes itself: nginx's error pages, `return`.

use http::{HeaderValue, Response, StatusCode};

use super::body::{full, ResponseBody};

/// nginx's HTML page for an error status.
pub fn error_page(code: u16, server_tokens: bool) -> String {
    let reason = nginx_reason(code).unwrap_or_else(|| {
        StatusCode::from_u16(code)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("")
    });
    let signature = if server_tokens {
        format!("switchyard/{}", crate::VERSION)
    } else {
        "switchyard".to_string()
    };
    format!(
        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>{signature}</center>\r\n</body>\r\n</html>\r\n"
    )
}

/// The reason phrases of nginx's own pages where they differ from the
/// registry's (checked against nginx 1.22's `return CODE;`).
fn nginx_reason(code: u16) -> Option<&'static str> {
    Some(match code {
        401 => "Authorization Required",
        405 => "Not Allowed",
        408 => "Request Time-out",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        416 => "Requested Range Not Satisfiable",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        _ => return None,
    })
}

/// An error response with nginx's page.
pub fn error(code: u16, server_tokens: bool) -> Response<ResponseBody> {
    let body = error_page(code, server_tokens);
    let mut response = Response::new(full(body));
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html"),
    );
    response
}

/// `return code [text]`: a redirect for 301/302/303/307/308 (text is the
/// Location), a body otherwise; no text on an error code gives nginx's page.
pub fn return_response(
    code: u16,
    text: Option<String>,
    server_tokens: bool,
) -> Response<ResponseBody> {
    let status = StatusCode::from_u16(code.max(100)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let is_redirect = matches!(code, 301 | 302 | 303 | 307 | 308);
    match text {
        Some(location) if is_redirect => {
            let mut r = error(code, server_tokens);
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            r
        }
        Some(body) => {
            let mut r = Response::new(full(body));
            *r.status_mut() = status;
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            );
            r
        }
        None if code >= 300 => error(code, server_tokens),
        None => {
            let mut r = Response::new(full(""));
            *r.status_mut() = status;
            r
        }
    }
}
