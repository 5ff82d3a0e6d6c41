//! ngx_http_auth_request_module: a GET subrequest to `auth_request`'s URI
//! with the client's headers and no body decides the request; 2xx lets it
//! through, 401 and 403 are passed on (a 401 with the subrequest's
//! `WWW-Authenticate` lines), anything else is a 500. `auth_request_set`
//! values are evaluated in the subrequest and set on the request.

use std::sync::Arc;

use http::{header, Method, Request};

use crate::config::model::{ServerConfig, Settings};
use crate::http::h1::body::RequestBody;
use crate::observe::error_log;
use crate::vars::VarSource;

use super::access::Verdict;
use super::exchange::Exchange;
use super::generation::Generation;

/// The subrequest's exchange: the request's connection, client, headers,
/// `$request_uri` and variables, with the auth URI as its own.
fn sub_exchange(ex: &Exchange, uri: &str) -> Option<(Exchange, Request<RequestBody>)> {
    let request = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .body(RequestBody::Empty)
        .ok()?;
    let (parts, body) = request.into_parts();
    let path = super::route::normalize_uri(parts.uri.path())?;
    let mut sub = Exchange::new(ex.conn.clone(), &parts, ex.headers.clone(), path);
    sub.start = ex.start;
    sub.raw_uri = ex.raw_uri.clone();
    sub.protocol = ex.protocol;
    sub.target_host = ex.target_host.clone();
    sub.server_name = ex.server_name.clone();
    sub.client_addr = ex.client_addr;
    sub.client_port = ex.client_port;
    sub.realip_applied = ex.realip_applied;
    sub.user_vars = ex.user_vars.clone();
    sub.maps = ex.maps.clone();
    sub.geos = ex.geos.clone();
    // nginx's subrequest shares its parent's variables: the map values
    // read so far hold in it too.
    if let (Ok(mut into), Ok(from)) = (sub.map_values.lock(), ex.map_values.lock()) {
        into.clone_from(&from);
    }
    sub.splits = ex.splits.clone();
    sub.limit_req_status = ex.limit_req_status;
    sub.limit_conn_status = ex.limit_conn_status;
    sub.internal = true;
    sub.subrequest = true;
    // nginx's subrequest starts with request_length 0 and reads no body.
    sub.head_length = Some(0);
    // The subrequest shares the request's variables, $request_id too.
    let id = ex
        .request_id
        .get_or_init(super::exchange::request_id_value)
        .clone();
    let _ = sub.request_id.set(id);
    Some((sub, Request::from_parts(parts, body)))
}

/// ngx_http_auth_request_handler.
pub async fn check(
    settings: &Settings,
    ex: &mut Exchange,
    server: &Arc<ServerConfig>,
    generation: &Arc<Generation>,
) -> Verdict {
    let Some(uri) = &settings.auth.request else {
        return Verdict::Declined;
    };
    let Some((mut sub, request)) = sub_exchange(ex, uri) else {
        return Verdict::Refuse(500);
    };
    let response = super::dispatch::subrequest(server, &mut sub, generation, request).await;
    let status = response.status().as_u16();
    sub.status = status;
    sub.sent_headers = response.headers().clone();
    // Only the head is wanted (nginx's header_only subrequest).
    drop(response);
    for (name, value) in &settings.auth.request_set {
        let value = value.render(&sub as &dyn VarSource);
        ex.set_var(name, value);
    }
    match status {
        403 => Verdict::Refuse(403),
        401 => {
            // The subrequest's own challenges, else its upstream's.
            let mut challenges: Vec<_> = sub
                .sent_headers
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .cloned()
                .collect();
            if challenges.is_empty() {
                challenges = sub
                    .upstream_headers
                    .get_all(header::WWW_AUTHENTICATE)
                    .iter()
                    .cloned()
                    .collect();
            }
            ex.www_authenticate = challenges;
            Verdict::Refuse(401)
        }
        200..=299 => Verdict::Allow,
        other => {
            error_log::error(
                Some(ex.conn.id),
                &format!(
                    "auth request unexpected status: {other}{}",
                    super::proxy::log_context(ex, None)
                ),
            );
            Verdict::Refuse(500)
        }
    }
}
