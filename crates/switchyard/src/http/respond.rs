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

/// Whether nginx has a page for `code` (`ngx_http_error_pages`): 3xx
/// redirects, 400-416, 421, 429, 494-498, 500-505, 507.
pub fn has_page(code: u16) -> bool {
    matches!(code, 301..=303 | 307 | 308 | 400..=416 | 421 | 429 | 494..=498 | 500..=505 | 507)
}

/// nginx's special pages for its own codes: (status sent, title, extra line).
fn special(code: u16) -> Option<(u16, &'static str, Option<&'static str>)> {
    Some(match code {
        494 => (
            400,
            "400 Request Header Or Cookie Too Large",
            Some("Request Header Or Cookie Too Large"),
        ),
        495 => (
            400,
            "400 The SSL certificate error",
            Some("The SSL certificate error"),
        ),
        496 => (
            400,
            "400 No required SSL certificate was sent",
            Some("No required SSL certificate was sent"),
        ),
        497 => (
            400,
            "400 The plain HTTP request was sent to HTTPS port",
            Some("The plain HTTP request was sent to HTTPS port"),
        ),
        // 498 (request canceled) keeps its status with the 404 page.
        498 => (498, "404 Not Found", None),
        _ => return None,
    })
}

/// An error response with nginx's page; an empty body (and no
/// Content-Type) for codes nginx has no page for, as nginx.
pub fn error(code: u16, server_tokens: bool) -> Response<ResponseBody> {
    if !has_page(code) {
        let mut response = Response::new(full(""));
        *response.status_mut() =
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return response;
    }
    let (status, body) = match special(code) {
        Some((status, title, extra)) => {
            let signature = if server_tokens {
                format!("switchyard/{}", crate::VERSION)
            } else {
                "switchyard".to_string()
            };
            let h1 = if status == 400 {
                "400 Bad Request"
            } else {
                title
            };
            let extra = extra
                .map(|e| format!("<center>{e}</center>\r\n"))
                .unwrap_or_default();
            (
                status,
                format!("<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{h1}</h1></center>\r\n{extra}<hr><center>{signature}</center>\r\n</body>\r\n</html>\r\n"),
            )
        }
        None => (code, error_page(code, server_tokens)),
    };
    let mut response = Response::new(full(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html"),
    );
    if matches!(code, 495..=497) {
        // nginx closes the connection after these.
        response
            .headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// `return code [text]`: a redirect for 301/302/303/307/308 (text is the
/// Location), a body of type `default_type` otherwise; no text gives
/// nginx's page for an error or redirect code, an empty body of
/// `default_type` for the others (none at all for 204).
pub fn return_response(
    code: u16,
    text: Option<String>,
    server_tokens: bool,
    default_type: &str,
) -> Response<ResponseBody> {
    let status = StatusCode::from_u16(code.max(100)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let is_redirect = matches!(code, 301 | 302 | 303 | 307 | 308);
    let typed = |body: String| {
        let mut r = Response::new(full(body));
        *r.status_mut() = status;
        if let Ok(v) = HeaderValue::from_str(default_type) {
            r.headers_mut().insert(http::header::CONTENT_TYPE, v);
        }
        r
    };
    match text {
        Some(location) if is_redirect => {
            let mut r = error(code, server_tokens);
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            r
        }
        Some(body) => typed(body),
        None if code >= 400 || is_redirect => error(code, server_tokens),
        None if code == 204 => {
            let mut r = Response::new(full(""));
            *r.status_mut() = status;
            r
        }
        None => typed(String::new()),
    }
}
