//! Request routing and response building.
//!
//! Order of decisions for every request:
//! 1. parse `x-echo-*` headers and query knobs (bad values -> 400),
//! 2. sleep for the requested delay,
//! 3. route: `/healthz`, then `?size=`, then echo for POST/PUT/PATCH, else a
//!    JSON description of the request,
//! 4. apply the status override, add `X-Served-By`, write the access log.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::body::EchoBody;
use super::params::{parse_status, Overrides};
use super::{log, EchoConfig};

const TEXT_HTML: &str = "text/html; charset=utf-8";
const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
const OCTETS: &str = "application/octet-stream";

/// Largest request body that `POST /healthz` will read; a status code is 3 bytes.
const MAX_HEALTH_BODY: usize = 64;

/// Handles one request; never fails, every problem becomes a response.
pub async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    config: Arc<EchoConfig>,
) -> Result<Response<EchoBody>, Infallible> {
    // Werkzeug logs the request line as received; hyper has parsed it, but
    // method, request-target and version reassemble to the same text.
    let request_line = format!("{} {} {:?}", req.method(), req.uri(), req.version());

    let mut resp = match Overrides::from_request(
        req.headers(),
        req.uri().query(),
        config.max_delay,
        config.max_size,
    ) {
        Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        Ok(overrides) => {
            if let Some(delay) = overrides.delay.filter(|d| !d.is_zero()) {
                tokio::time::sleep(delay).await;
            }
            let sets_health = is_health_switch(&req);
            let mut resp = route(req, peer, &config, &overrides).await;
            // `POST /healthz?status=503` names the new health; the answer
            // to the switch itself says it was taken.
            if let Some(status) = overrides.status.filter(|_| !sets_health) {
                *resp.status_mut() = status;
            }
            resp
        }
    };

    // 204 and 304 must not have a body; drop it so an override like
    // `?status=204` on a POST still yields a well-formed response.
    if matches!(
        resp.status(),
        StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
    ) {
        *resp.body_mut() = EchoBody::empty();
        resp.headers_mut().remove(CONTENT_TYPE);
    }
    resp.headers_mut()
        .insert("x-served-by", config.served_by.clone());

    if config.access_log {
        log::emit(&log::format_line(
            peer.ip(),
            &request_line,
            resp.status().as_u16(),
            &config.name,
        ));
    }
    Ok(resp)
}

async fn route(
    req: Request<Incoming>,
    peer: SocketAddr,
    config: &EchoConfig,
    overrides: &Overrides,
) -> Response<EchoBody> {
    if is_health_path(req.uri().path()) {
        return healthz(req, config, overrides.status).await;
    }
    if let Some(size) = overrides.size {
        return with_type(
            Response::new(EchoBody::generated(size, overrides.chunked)),
            OCTETS,
        );
    }
    if matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) {
        return with_type(Response::new(EchoBody::echo(req.into_body())), TEXT_HTML);
    }
    describe(req, peer, config).await
}

/// Whether `req` switches the health code (`POST` or `PUT /healthz`).
fn is_health_switch<B>(req: &Request<B>) -> bool {
    is_health_path(req.uri().path()) && matches!(*req.method(), Method::POST | Method::PUT)
}

/// The paths of the one health switch: `/healthz`, `/readyz` (OpenShift's
/// API) and anything under `/healthz/` (its routers' `/healthz/ready`).
fn is_health_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz") || path.starts_with("/healthz/")
}

/// How to switch the health code, for a switch request that gave none.
const HEALTH_USAGE: &str =
    "give the new /healthz status as ?status=CODE or as the body (curl -d 503 .../healthz)\n";

/// `GET /healthz` reports the current health code; `POST /healthz` (or
/// `PUT`) changes it, to `?status=` or to the status code in the body, so
/// tests can fail a backend at run time.
async fn healthz(
    req: Request<Incoming>,
    config: &EchoConfig,
    query_status: Option<StatusCode>,
) -> Response<EchoBody> {
    match *req.method() {
        Method::GET | Method::HEAD => {
            let code = config.health();
            let word = if code.as_u16() < 400 {
                "ok"
            } else {
                "unhealthy"
            };
            text(code, format!("{word}\n"))
        }
        Method::POST | Method::PUT => {
            if let Some(code) = query_status {
                config.set_health(code);
                return text(StatusCode::OK, format!("{}\n", code.as_u16()));
            }
            let body = match Limited::new(req.into_body(), MAX_HEALTH_BODY)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "healthz body must be a status code\n",
                    )
                }
            };
            if body.iter().all(u8::is_ascii_whitespace) {
                return text(StatusCode::BAD_REQUEST, HEALTH_USAGE);
            }
            let parsed = std::str::from_utf8(&body)
                .map_err(|_| "healthz body must be a status code".to_string())
                .and_then(|s| parse_status(s).map_err(|e| e.to_string()));
            match parsed {
                Ok(code) => {
                    config.set_health(code);
                    text(StatusCode::OK, format!("{}\n", code.as_u16()))
                }
                Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
            }
        }
        _ => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "healthz accepts GET, HEAD and POST\n",
        ),
    }
}

/// Answers a JSON description of the request, for checking what a proxy
/// forwarded (headers added or stripped, rewritten paths, ...).
async fn describe(
    req: Request<Incoming>,
    peer: SocketAddr,
    config: &EchoConfig,
) -> Response<EchoBody> {
    let (parts, body) = req.into_parts();
    // Buffering is fine here (unlike the echo path) because the body is
    // bounded, and a JSON document needs it whole anyway.
    let body = match Limited::new(body, config.max_json_body).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body too large (or unreadable) for a JSON description\n",
            )
        }
    };
    // HeaderMap keeps names in first-seen order, with repeated names grouped.
    let headers: Vec<[String; 2]> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            [
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            ]
        })
        .collect();
    let doc = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
        "peer": peer.to_string(),
        "version": format!("{:?}", parts.version),
        "name": config.name,
    });
    let mut out = doc.to_string();
    out.push('\n');
    with_type(Response::new(EchoBody::full(out)), JSON)
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<EchoBody> {
    let mut resp = with_type(Response::new(EchoBody::full(body)), TEXT_PLAIN);
    *resp.status_mut() = status;
    resp
}

fn with_type(mut resp: Response<EchoBody>, content_type: &'static str) -> Response<EchoBody> {
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
