//! From a chosen server to a response, in nginx's phase order: realip,
//! the server's rewrite directives, location lookup, the location's rewrite
//! directives (an `if` may swap the configuration), content (proxy, status
//! pages, static files, or `return`), internal redirects (index files,
//! `error_page`), then header filters (absolute `Location`, `add_header`).

use std::sync::Arc;

use crate::http::h1::body::RequestBody;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::config::model::{Handler, LocationConfig, LocationMatch, ServerConfig, Settings};
use crate::observe::error_log;

use super::body::ResponseBody;
use super::exchange::Exchange;
use super::generation::Generation;
use super::rewrite::{self, Outcome};
use super::route::{normalize_uri, select_location};
use super::static_files::{self, Served};
use super::{headers, proxy, realip, respond};

/// What to send.
pub enum Reply {
    /// A response.
    Response(Response<ResponseBody>),
    /// Close the connection without a response (`return 444`, `return 499`):
    /// the status for the access log.
    Close(u16),
}

/// nginx stops after this many internal redirects.
const MAX_REDIRECTS: usize = 10;

/// Where a response came from, for `error_page`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The upstream answered: caught only with `proxy_intercept_errors on`.
    Upstream,
    /// An error page of ours (nginx's special response): always caught.
    Page,
    /// Sent as is (`return` with a text, files, status pages): never caught.
    Direct,
}

enum Content {
    Response(Response<ResponseBody>, Source),
    Status(u16),
    Redirect(String),
    Close(u16),
}

/// Serves a request on `server`; returns the reply and the settings of the
/// configuration that answered (for logging and connection handling).
pub async fn respond(
    request: Request<RequestBody>,
    server: &Arc<ServerConfig>,
    ex: &mut Exchange,
    generation: &Arc<Generation>,
) -> (Reply, Arc<Settings>) {
    if let Some(http) = generation.http() {
        ex.maps = Some(http.maps.clone());
    }
    realip::apply(&server.settings.real_ip, ex);
    let mut settings = server.settings.clone();
    let mut request = Some(request);
    let content = match rewrite::run(&server.script, ex, &mut None) {
        Outcome::Return(code, text) => returned(code, text, &settings, ex),
        Outcome::Continue => {
            let (l, c) = find_and_serve(server, ex, generation, &mut request).await;
            settings = l.settings.clone();
            c
        }
    };
    let (reply, settings) = run(content, settings, request, server, ex, generation).await;
    // The gzip filter (http/gzip.rs), last of the header filters.
    (gzipped(reply, &settings, ex), settings)
}

/// Applies the gzip filter to a response reply.
fn gzipped(reply: Reply, settings: &Settings, ex: &mut Exchange) -> Reply {
    match reply {
        Reply::Response(r) => Reply::Response(super::gzip::filter(ex, settings, r)),
        close => close,
    }
}

/// An error status decided before the content phase (e.g. 413 for
/// `client_max_body_size`), answered with nginx's page or the `error_page`
/// of `settings` (the location the URI selects).
pub async fn respond_status(
    code: u16,
    settings: Arc<Settings>,
    server: &Arc<ServerConfig>,
    ex: &mut Exchange,
    generation: &Arc<Generation>,
) -> (Reply, Arc<Settings>) {
    if let Some(http) = generation.http() {
        ex.maps = Some(http.maps.clone());
    }
    let (reply, settings) = run(
        Content::Status(code),
        settings,
        None,
        server,
        ex,
        generation,
    )
    .await;
    // The gzip filter (http/gzip.rs), last of the header filters.
    (gzipped(reply, &settings, ex), settings)
}

/// Internal redirects, `error_page` and the header filters until a reply.
async fn run(
    mut content: Content,
    mut settings: Arc<Settings>,
    mut request: Option<Request<RequestBody>>,
    server: &Arc<ServerConfig>,
    ex: &mut Exchange,
    generation: &Arc<Generation>,
) -> (Reply, Arc<Settings>) {
    let mut redirects = 0;
    let mut intercepted = false;
    loop {
        let (response, source) = match content {
            Content::Close(code) => return (Reply::Close(code), settings),
            Content::Redirect(uri) => {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    error_log::error(
                        Some(ex.conn.id),
                        &format!(
                            "rewrite or internal redirection cycle while internally redirecting to \"{uri}\"{}",
                            proxy::log_context(ex, None)
                        ),
                    );
                    content = Content::Response(
                        respond::error(500, settings.server_tokens),
                        Source::Direct,
                    );
                    continue;
                }
                internal_uri(ex, &uri);
                let (l, c) = find_and_serve(server, ex, generation, &mut request).await;
                settings = l.settings.clone();
                content = c;
                continue;
            }
            Content::Status(code) => (respond::error(code, settings.server_tokens), Source::Page),
            Content::Response(r, source) => (r, source),
        };
        let status = response.status().as_u16();
        let catch = !intercepted
            && match source {
                Source::Upstream => settings.proxy_intercept_errors,
                Source::Page => true,
                Source::Direct => false,
            };
        let page = catch
            .then(|| {
                settings
                    .error_pages
                    .iter()
                    .find(|p| p.codes.contains(&status))
            })
            .flatten()
            .cloned();
        let Some(page) = page else {
            let mut response = response;
            if source != Source::Upstream {
                // nginx leaves an upstream's relative Location as it is.
                absolute_location(&mut response, &settings, ex);
            }
            headers::add(&settings.add_headers, ex, &mut response);
            return (Reply::Response(response), settings);
        };
        intercepted = true;
        let target = page.uri.render(ex);
        if !target.starts_with('/') {
            // An URL: a redirect (302 unless `=301` etc.).
            let code = match page.response {
                Some(Some(c @ (301 | 302 | 303 | 307 | 308))) => c,
                _ => 302,
            };
            let mut r = respond::error(code, settings.server_tokens);
            if let Ok(v) = HeaderValue::from_str(&target) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            headers::add(&settings.add_headers, ex, &mut r);
            return (Reply::Response(r), settings);
        }
        drop(response);
        if ex.method != http::Method::HEAD {
            ex.method = http::Method::GET;
        }
        internal_uri(ex, &target);
        let (l, c) = find_and_serve(server, ex, generation, &mut request).await;
        settings = l.settings.clone();
        let forced = match page.response {
            None => Some(status),
            Some(code) => code,
        };
        content = match c {
            Content::Response(mut r, up) => {
                if let Some(code) = forced {
                    if let Ok(s) = StatusCode::from_u16(code) {
                        *r.status_mut() = s;
                    }
                }
                Content::Response(r, up)
            }
            Content::Status(s) => Content::Status(forced.filter(|_| s < 400).unwrap_or(s)),
            other => other,
        };
    }
}

/// Sets `$uri` and `$args` for an internal redirect to `target`.
fn internal_uri(ex: &mut Exchange, target: &str) {
    ex.internal = true;
    let (path, args) = match target.split_once('?') {
        Some((p, a)) => (p, Some(a.to_string())),
        None => (target, None),
    };
    ex.uri = normalize_uri(path).unwrap_or_else(|| path.to_string());
    if args.is_some() {
        ex.args = args;
    }
}

/// The location for `ex.uri` (the server itself when none matches), its
/// rewrite directives, then its content.
async fn find_and_serve(
    server: &Arc<ServerConfig>,
    ex: &mut Exchange,
    generation: &Arc<Generation>,
    request: &mut Option<Request<RequestBody>>,
) -> (Arc<LocationConfig>, Content) {
    let found = select_location(&server.locations, &ex.uri).cloned();
    let found = found.unwrap_or_else(|| {
        Arc::new(LocationConfig {
            matcher: LocationMatch::Prefix(String::new()),
            nested: Vec::new(),
            handler: Handler::None,
            settings: server.settings.clone(),
            script: Vec::new(),
            alias: None,
            internal: false,
        })
    });
    if let LocationMatch::Regex(re) = &found.matcher {
        let uri = ex.uri.clone();
        ex.capture(re, &uri);
    }
    if found.internal && !ex.internal {
        // nginx: an `internal` location is not found by a client's URI.
        return (found, Content::Status(404));
    }
    let (location, outcome) = if found.script.is_empty() {
        // Nothing to run: skip the copies that let an `if` swap the location.
        ex.location = Some(found.clone());
        (found, Outcome::Continue)
    } else {
        ex.location = Some(found.clone());
        let mut current = Some(found.clone());
        let outcome = rewrite::run(&found.script, ex, &mut current);
        let location = current.unwrap_or(found);
        ex.location = Some(location.clone());
        (location, outcome)
    };
    if let Outcome::Return(code, text) = outcome {
        return (
            location.clone(),
            returned(code, text, &location.settings, ex),
        );
    }
    // A location's realip runs in nginx's preaccess phase: after the
    // rewrite directives, before content (and only if the server's did not).
    if ex.client_addr == ex.conn.remote.ip() {
        realip::apply(&location.settings.real_ip, ex);
    }
    // The access phase (allow/deny): a denial is a 403 error_page may catch.
    if !super::access::check(&location.settings, ex) {
        return (location, Content::Status(403));
    }
    let content = serve(&location, ex, generation, request).await;
    (location, content)
}

fn returned(code: u16, text: Option<String>, settings: &Settings, ex: &Exchange) -> Content {
    if matches!(code, 444 | 499) {
        return Content::Close(code);
    }
    if text.is_none() && code >= 400 {
        return Content::Status(code);
    }
    // nginx types a `return` body by the URI's extension, as a file.
    let response = respond::return_response(
        code,
        text,
        settings.server_tokens,
        &static_files::content_type(settings, std::path::Path::new(&ex.uri)),
    );
    // A redirect goes through nginx's special responses (error_page may
    // catch it); a text is sent as it is.
    let source = if matches!(code, 301..=303 | 307 | 308) {
        Source::Page
    } else {
        Source::Direct
    };
    Content::Response(response, source)
}

async fn serve(
    location: &Arc<LocationConfig>,
    ex: &mut Exchange,
    generation: &Arc<Generation>,
    request: &mut Option<Request<RequestBody>>,
) -> Content {
    match &location.handler {
        Handler::Proxy(pass) => {
            let Some(upstream) = generation.upstreams.get(pass.target_name()).cloned() else {
                return Content::Status(500);
            };
            let Some(mut request) = request.take() else {
                // The request body went to an earlier upstream: an
                // error_page cannot proxy again (yet).
                error_log::error(
                    Some(ex.conn.id),
                    &format!(
                        "internal redirect to a proxied location after the request was proxied is not supported yet{}",
                        proxy::log_context(ex, None)
                    ),
                );
                return Content::Status(500);
            };
            // The exchange took the headers (see server::handle); the
            // proxy reads both copies.
            *request.headers_mut() = ex.headers.clone();
            let response = proxy::proxy(request, location, pass, upstream, ex).await;
            // The upstream answered when its header arrived; a 502/504 made
            // here (refused, timed out, no live peers) is our own error.
            let source = if ex.upstream.last().is_some_and(|t| t.header.is_some()) {
                Source::Upstream
            } else {
                Source::Page
            };
            Content::Response(response, source)
        }
        Handler::StubStatus => Content::Response(super::status::stub_status(), Source::Direct),
        Handler::Metrics => {
            Content::Response(super::status::prometheus(generation), Source::Direct)
        }
        Handler::StatusPage => Content::Response(
            super::status::status_page(generation, &ex.uri),
            Source::Direct,
        ),
        Handler::None => {
            let ex: &Exchange = ex;
            // The request's headers are in the exchange; once the request
            // went upstream, a file is served as to a request without any.
            let none = http::HeaderMap::new();
            let headers = if request.is_some() {
                &ex.headers
            } else {
                &none
            };
            match static_files::serve(location, ex, headers).await {
                Served::Response(r) => Content::Response(r, Source::Direct),
                Served::Status(code) => Content::Status(code),
                Served::Redirect(uri) => Content::Redirect(uri),
                Served::AddSlash(to) => {
                    let mut r = respond::error(301, location.settings.server_tokens);
                    if let Ok(v) = HeaderValue::from_str(&to) {
                        r.headers_mut().insert(header::LOCATION, v);
                    }
                    Content::Response(r, Source::Direct)
                }
            }
        }
    }
}

/// nginx's header filter: a `Location` starting with `/` becomes
/// `http://HOST[:PORT]/...` when `absolute_redirect` is on.
pub fn absolute_location(
    response: &mut Response<ResponseBody>,
    settings: &Settings,
    ex: &Exchange,
) {
    if !settings.absolute_redirect {
        return;
    }
    let Some(location) = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .filter(|l| l.starts_with('/'))
        .map(str::to_string)
    else {
        return;
    };
    let host = if settings.server_name_in_redirect {
        ex.server_name.clone()
    } else {
        ex.headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| strip_port(h).to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| ex.conn.local.ip().to_string())
    };
    let port = ex.conn.local.port();
    let port = if settings.port_in_redirect && port != 80 {
        format!(":{port}")
    } else {
        String::new()
    };
    if let Ok(v) = HeaderValue::from_str(&format!("http://{host}{port}{location}")) {
        response.headers_mut().insert(header::LOCATION, v);
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    host.split(':').next().unwrap_or(host)
}
