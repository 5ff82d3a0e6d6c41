//! From a chosen server to a response, in nginx's phase order: realip,
//! the server's rewrite directives, location lookup, the location's rewrite
//! directives (an `if` may swap the configuration), content (proxy, status
//! pages, static files, or `return`), internal redirects (index files,
//! `error_page`), then header filters (absolute `Location`, `add_header`).

use std::sync::Arc;

use crate::http::h1::body::RequestBody;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::config::model::{
    Handler, LocationConfig, LocationMatch, PassTarget, ProxyPass, ServerConfig, Settings,
};
use crate::observe::error_log;

use super::accel_redirect;
use super::body::ResponseBody;
use super::exchange::Exchange;
use super::generation::Generation;
use super::rewrite::{self, Outcome, Script};
use super::route::{auto_redirect, escape_uri, select_location};
use super::static_files::{self, Served};
use super::try_files::{self, Tried};
use super::uri_changes::{internal_uri, named_location, Changes, URI_CHANGES};
use super::{headers, proxy, realip, respond};

/// What to send.
pub enum Reply {
    /// A response.
    Response(Response<ResponseBody>),
    /// Close the connection without a response (`return 444`, `return 499`):
    /// the status for the access log.
    Close(u16),
}

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
    /// An internal redirect to a URI (with `?args` if it has them).
    Redirect(String),
    /// An internal redirect to `location @name`.
    Named(String),
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
        ex.splits = Some(http.split_clients.clone());
        ex.geos = Some(http.geos.clone());
    }
    realip::apply(&server.settings.real_ip, ex);
    let mut request = Some(request);
    let mut changes = Changes(URI_CHANGES);
    let (settings, content) = enter(server, ex, generation, &mut request, &mut changes).await;
    let (reply, settings) = run(content, settings, request, server, ex, generation, changes).await;
    // The gzip filter (http/gzip.rs), last of the header filters.
    let reply = match gzipped(reply, &settings, ex) {
        // limit_conn's counts and limit_rate go with the body (http/limits.rs).
        Reply::Response(r) => Reply::Response(super::limits::finish(r, &settings, ex)),
        close => close,
    };
    (reply, settings)
}

/// Applies the gzip filter to a response reply.
fn gzipped(reply: Reply, settings: &Settings, ex: &mut Exchange) -> Reply {
    match reply {
        Reply::Response(r) => Reply::Response(super::gzip::filter(ex, settings, r)),
        close => close,
    }
}

/// From the server's rewrite directives on: where a request starts, and
/// where an internal redirect to a URI starts again.
async fn enter(
    server: &Arc<ServerConfig>,
    ex: &mut Exchange,
    generation: &Arc<Generation>,
    request: &mut Option<Request<RequestBody>>,
    changes: &mut Changes,
) -> (Arc<Settings>, Content) {
    let mut script = Script::new(server.settings.rewrite_log);
    match rewrite::run(&server.script, ex, &mut None, &mut script) {
        Outcome::Return(code, text) => {
            let content = returned(code, text, &server.settings, ex);
            (server.settings.clone(), content)
        }
        // The location is searched next whether or not the URI changed.
        Outcome::Continue | Outcome::Restart => {
            let (l, c) = find_and_serve(server, ex, generation, request, changes, None).await;
            (l.settings.clone(), c)
        }
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
        ex.splits = Some(http.split_clients.clone());
        ex.geos = Some(http.geos.clone());
    }
    let (reply, settings) = run(
        Content::Status(code),
        settings,
        None,
        server,
        ex,
        generation,
        Changes(URI_CHANGES),
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
    mut changes: Changes,
) -> (Reply, Arc<Settings>) {
    let mut intercepted = false;
    // An intercepted 401 keeps the upstream's WWW-Authenticate lines on
    // the error page (nginx's ngx_http_upstream_intercept_errors).
    let mut challenges: Vec<HeaderValue> = Vec::new();
    loop {
        let (response, source, status) = match content {
            Content::Close(code) => return (Reply::Close(code), settings),
            Content::Redirect(uri) => {
                if !changes.take(ex, &format!("while internally redirecting to \"{uri}\"")) {
                    content = Content::Response(
                        respond::error(500, settings.server_tokens),
                        Source::Direct,
                    );
                    continue;
                }
                internal_uri(ex, &uri);
                let (s, c) = enter(server, ex, generation, &mut request, &mut changes).await;
                settings = s;
                content = c;
                continue;
            }
            Content::Named(name) => {
                let Ok(named) = named_location(server, &name, ex, &mut changes) else {
                    content = Content::Response(
                        respond::error(500, settings.server_tokens),
                        Source::Direct,
                    );
                    continue;
                };
                let (l, c) = find_and_serve(
                    server,
                    ex,
                    generation,
                    &mut request,
                    &mut changes,
                    Some(named),
                )
                .await;
                settings = l.settings.clone();
                content = c;
                continue;
            }
            Content::Status(code) => (
                respond::error(code, settings.server_tokens),
                Source::Page,
                code,
            ),
            Content::Response(r, source) => {
                let status = r.status().as_u16();
                (r, source, status)
            }
        };
        // error_page looks the status up as it was decided: a 497 (plain
        // HTTP to an HTTPS port) is caught as 497 though nginx's page for it
        // says 400.
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
            accel_redirect::apply(&ex.carried, response.headers_mut());
            if source != Source::Upstream {
                // nginx leaves an upstream's relative Location as it is.
                absolute_location(&mut response, &settings, ex);
            }
            for value in challenges {
                response
                    .headers_mut()
                    .append(header::WWW_AUTHENTICATE, value);
            }
            // An access challenge stays on whatever answers the 401.
            for value in std::mem::take(&mut ex.www_authenticate) {
                response
                    .headers_mut()
                    .append(header::WWW_AUTHENTICATE, value);
            }
            super::expires::apply(&settings.expires, &*ex, &mut response);
            // nginx's header filter sends Last-Modified only with 200, 206
            // and 304 (a file served as a 404 page has none); an add_header
            // Last-Modified, applied next, is its own and stays.
            if !matches!(response.status().as_u16(), 200 | 206 | 304) {
                response.headers_mut().remove(header::LAST_MODIFIED);
            }
            headers::add(&settings.add_headers, ex, &mut response);
            return (Reply::Response(response), settings);
        };
        intercepted = true;
        if source == Source::Upstream && status == 401 {
            challenges = response
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .cloned()
                .collect();
        }
        let target = page.uri.render(ex);
        if !target.starts_with('/') && !target.starts_with('@') {
            // An URL: a redirect (302 unless `=301` etc.).
            let code = match page.response {
                Some(Some(c @ (301 | 302 | 303 | 307 | 308))) => c,
                _ => 302,
            };
            let mut r = respond::error(code, settings.server_tokens);
            if let Ok(v) = HeaderValue::from_str(&target) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            for value in challenges {
                r.headers_mut().append(header::WWW_AUTHENTICATE, value);
            }
            for value in std::mem::take(&mut ex.www_authenticate) {
                r.headers_mut().append(header::WWW_AUTHENTICATE, value);
            }
            super::expires::apply(&settings.expires, &*ex, &mut r);
            headers::add(&settings.add_headers, ex, &mut r);
            return (Reply::Response(r), settings);
        }
        // nginx keeps the headers the request had set (a redirect's
        // Location) across the error page's internal redirect.
        let location = response.headers().get(header::LOCATION).cloned();
        drop(response);
        if ex.method != http::Method::HEAD {
            ex.method = http::Method::GET;
        }
        let forced = match page.response {
            // nginx's error_page gives 494-497 an implicit `=400`: the
            // page answers 400 (ngx_http_core_error_page).
            None if (494..=497).contains(&status) => Some(400),
            None => Some(status),
            Some(code) => code,
        };
        // nginx's `r->err_status`: what `$status` says while the page is
        // made (nothing for a bare `=`, whose page decides).
        ex.err_status = forced;
        // The error page's own redirect is counted and followed here, so
        // that its status can be forced below.
        let (s, c) = if target.starts_with('@') {
            match named_location(server, &target, ex, &mut changes) {
                Ok(named) => {
                    let (l, c) = find_and_serve(
                        server,
                        ex,
                        generation,
                        &mut request,
                        &mut changes,
                        Some(named),
                    )
                    .await;
                    (l.settings.clone(), c)
                }
                Err(()) => (settings.clone(), Content::Status(500)),
            }
        } else if !changes.take(ex, &format!("while internally redirecting to \"{target}\"")) {
            (settings.clone(), Content::Status(500))
        } else {
            internal_uri(ex, &target);
            enter(server, ex, generation, &mut request, &mut changes).await
        };
        settings = s;
        content = match c {
            Content::Response(mut r, up) => {
                // A redirect answering an error (`return 302`, `rewrite
                // ... redirect`) keeps its own status, as nginx's does.
                let redirect = up == Source::Page
                    && matches!(r.status().as_u16(), 301 | 302 | 303 | 307 | 308);
                if let Some(code) = forced.filter(|_| !redirect) {
                    if let Ok(s) = StatusCode::from_u16(code) {
                        *r.status_mut() = s;
                    }
                }
                if let Some(l) = &location {
                    if !r.headers().contains_key(header::LOCATION) && up != Source::Upstream {
                        r.headers_mut().insert(header::LOCATION, l.clone());
                    }
                }
                Content::Response(r, up)
            }
            Content::Status(s) => Content::Status(forced.filter(|_| s < 400).unwrap_or(s)),
            other => other,
        };
    }
}

/// A future of a subrequest (boxed: a subrequest runs the phases that
/// started it).
pub type SubrequestFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Response<ResponseBody>> + Send + 'a>>;

/// Runs a subrequest for `sub` (its URI, method and headers set) on
/// `server`: location lookup, rewrite, content, internal redirects and
/// error_page, as nginx runs `ngx_http_subrequest`; the response's head is
/// what the caller reads.
pub fn subrequest<'a>(
    server: &'a Arc<ServerConfig>,
    sub: &'a mut Exchange,
    generation: &'a Arc<Generation>,
    request: Request<RequestBody>,
) -> SubrequestFuture<'a> {
    Box::pin(async move {
        let mut request = Some(request);
        let mut changes = Changes(URI_CHANGES);
        let (location, content) =
            find_and_serve(server, sub, generation, &mut request, &mut changes, None).await;
        let settings = location.settings.clone();
        match run(content, settings, request, server, sub, generation, changes).await {
            (Reply::Response(r), _) => r,
            (Reply::Close(code), settings) => {
                let mut r = respond::error(500, settings.server_tokens);
                if let Ok(s) = StatusCode::from_u16(code) {
                    *r.status_mut() = s;
                }
                r
            }
        }
    })
}

/// The location for `ex.uri` (the server itself when none matches), or
/// `named`, then its rewrite directives, `try_files` and its content; a
/// rewritten URI searches the location again.
async fn find_and_serve(
    server: &Arc<ServerConfig>,
    ex: &mut Exchange,
    generation: &Arc<Generation>,
    request: &mut Option<Request<RequestBody>>,
    changes: &mut Changes,
    mut named: Option<Arc<LocationConfig>>,
) -> (Arc<LocationConfig>, Content) {
    loop {
        let found = match named.take() {
            Some(l) => l,
            None => {
                if let Some(name) = auto_redirect(&server.locations, &ex.uri) {
                    let mut to = escape_uri(name);
                    if let Some(args) = &ex.args {
                        to.push('?');
                        to.push_str(args);
                    }
                    let mut r = respond::error(301, server.settings.server_tokens);
                    if let Ok(v) = HeaderValue::from_str(&to) {
                        r.headers_mut().insert(header::LOCATION, v);
                    }
                    return (
                        find_location(server, ex),
                        Content::Response(r, Source::Page),
                    );
                }
                let found = find_location(server, ex);
                if found.internal && !ex.internal {
                    // nginx: an `internal` location is not found by a client's URI.
                    return (found, Content::Status(404));
                }
                found
            }
        };
        // A method `limit_except` does not list takes the configuration of
        // its block, as ngx_http_update_location_config swaps it in.
        let found = match &found.limit_except {
            Some(lmt) if !lmt.allows(&ex.method) => lmt.config.clone(),
            _ => found,
        };
        // From here the connection's lines go to this location's error_log
        // (an `if` block's keeps the one before).
        if let Some(log) = generation.error_log(&found.settings) {
            error_log::use_context(Some(log));
        }
        ex.location = Some(found.clone());
        let mut script = Script::new(found.settings.rewrite_log);
        let (location, outcome) = if found.script.is_empty() {
            // Nothing to run: skip the copies that let an `if` swap the location.
            (found, Outcome::Continue)
        } else {
            let mut current = Some(found.clone());
            let outcome = rewrite::run(&found.script, ex, &mut current, &mut script);
            let location = current.unwrap_or(found);
            ex.location = Some(location.clone());
            (location, outcome)
        };
        match outcome {
            Outcome::Return(code, text) => {
                let content = returned(code, text, &location.settings, ex);
                return (location, content);
            }
            Outcome::Restart => {
                let what = format!("while processing \"{}\"", ex.uri);
                if !changes.take(ex, &what) {
                    return (location, Content::Status(500));
                }
                continue;
            }
            Outcome::Continue => {}
        }
        // A location's realip runs in nginx's preaccess phase: after the
        // rewrite directives, before content (and only if the server's did not).
        if !ex.realip_applied {
            realip::apply(&location.settings.real_ip, ex);
        }
        // The preaccess phase (limit_req, limit_conn; http/limits.rs).
        if let Some(code) =
            super::limits::preaccess(&location.settings.limits, &generation.limits, ex).await
        {
            return (location, Content::Status(code));
        }
        // The access phase (allow/deny, auth_basic under `satisfy`): a
        // refusal is a status error_page may catch.
        if let Some(code) = super::access::check(&location.settings, ex, server, generation).await {
            return (location, Content::Status(code));
        }
        let location = match &location.try_files {
            None => location,
            Some(tf) => match try_files::run(tf, &location, ex).await {
                Tried::Found(Some(derived)) => {
                    ex.location = Some(derived.clone());
                    derived
                }
                Tried::Found(None) => location,
                Tried::Redirect(uri) => return (location, Content::Redirect(uri)),
                Tried::Named(name) => return (location, Content::Named(name)),
                Tried::Status(code) => return (location, Content::Status(code)),
            },
        };
        if script.no_upstream {
            error_log::error(
                Some(ex.conn.id),
                &format!("no upstream configuration{}", proxy::log_context(ex, None)),
            );
            return (location, Content::Status(500));
        }
        let content = serve(&location, ex, generation, request, script.valid_location).await;
        return (location, content);
    }
}

/// The location `ex.uri` selects, its regex captures kept; without one,
/// the server's own configuration (its `try_files` included).
fn find_location(server: &Arc<ServerConfig>, ex: &mut Exchange) -> Arc<LocationConfig> {
    let found = select_location(&server.locations, &ex.uri)
        .unwrap_or(&server.unmatched)
        .clone();
    if let LocationMatch::Regex(re) = &found.matcher {
        let uri = ex.uri.clone();
        rewrite::capture(ex, re, &uri);
    }
    found
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
    valid_location: bool,
) -> Content {
    match &location.handler {
        Handler::Proxy(pass) => {
            let (pass, upstream) = match &pass.target {
                PassTarget::Evaluated(template) => {
                    match proxy::evaluated::evaluate(
                        pass,
                        template,
                        ex,
                        generation,
                        &location.settings,
                    )
                    .await
                    {
                        Ok((evaluated, upstream)) => (
                            std::borrow::Cow::Owned(
                                rewritten_pass(&evaluated, ex, valid_location).into_owned(),
                            ),
                            upstream,
                        ),
                        Err(status) => return Content::Status(status),
                    }
                }
                PassTarget::Fixed(_) => {
                    let Some(upstream) = pass
                        .target_name()
                        .and_then(|name| generation.upstreams.get(name))
                        .cloned()
                    else {
                        return Content::Status(500);
                    };
                    (rewritten_pass(pass, ex, valid_location), upstream)
                }
            };
            let pass = &*pass;
            let request = match request.take() {
                Some(request) => request,
                // Proxied again after an internal redirect: the body held
                // the first time goes up again (or none), as nginx reuses
                // the body it read.
                None if !ex.body_streamed => {
                    let mut again = Request::new(RequestBody::Empty);
                    *again.method_mut() = ex.method.clone();
                    again.extensions_mut().insert(proxy::ProxiedBefore);
                    again
                }
                None => {
                    // A streamed body cannot be sent again.
                    error_log::error(
                        Some(ex.conn.id),
                        &format!(
                            "internal redirect to a proxied location after the request body was streamed upstream is not supported yet{}",
                            proxy::log_context(ex, None)
                        ),
                    );
                    return Content::Status(500);
                }
            };
            // The proxy reads the request's headers from the exchange,
            // which took them (see server::handle). Boxed: the proxy's
            // state is most of a request's, and a future is copied whole
            // into each one that awaits it, level by level up to the
            // connection's task.
            let response = Box::pin(proxy::proxy(request, location, pass, upstream, ex)).await;
            // The upstream answered when its header arrived; a 502/504 made
            // here (refused, timed out, no live peers) is our own error.
            let source = if ex.upstream.last().is_some_and(|t| t.header.is_some()) {
                Source::Upstream
            } else {
                Source::Page
            };
            if source == Source::Upstream {
                if let Some(rate) =
                    accel_redirect::limit_rate(&ex.upstream_headers, &location.settings)
                {
                    ex.limit_rate = Some(rate);
                }
                if let Some(target) =
                    accel_redirect::target(&ex.upstream_headers, &location.settings)
                {
                    // The answer is dropped unread (its connection with it,
                    // as nginx finalizes the upstream) and the request goes on.
                    drop(response);
                    let mut carried = accel_redirect::carried(&ex.upstream_headers);
                    // nginx carries the cookies through its copy handler,
                    // which rewrites them by the proxying location's rules.
                    proxy::cookie::rewrite_set_cookies(
                        &mut carried,
                        &location.settings.proxy_cookie,
                        ex,
                    );
                    ex.carried = carried;
                    return match target {
                        accel_redirect::Target::Named(name) => Content::Named(name),
                        accel_redirect::Target::Uri(uri) => {
                            if ex.method != http::Method::HEAD {
                                ex.method = http::Method::GET;
                            }
                            // Its arguments are the URI's own, none without `?`.
                            ex.args = None;
                            Content::Redirect(uri)
                        }
                        accel_redirect::Target::Unsafe(uri) => {
                            error_log::error(
                                Some(ex.conn.id),
                                &format!(
                                    "unsafe URI \"{uri}\" was detected{}",
                                    proxy::log_context(ex, None)
                                ),
                            );
                            Content::Status(404)
                        }
                    };
                }
            }
            Content::Response(response, source)
        }
        // nginx's stub_status answers GET and HEAD only.
        Handler::StubStatus if !matches!(ex.method, Method::GET | Method::HEAD) => {
            Content::Status(405)
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
                    // A special response of nginx's: error_page may catch it.
                    Content::Response(r, Source::Page)
                }
            }
        }
    }
}

/// The `proxy_pass` for a request whose URI was changed. nginx sends the
/// client's URI as it came only while it is the request's URI; after a
/// rewrite or an internal redirect it sends the new URI (escaped) with its
/// arguments, and after `break` (or `rewrite ... break`) the whole new URI
/// even when `proxy_pass` has a URI part (`valid_location` unset). A
/// `proxy_pass` with variables whose URL has a URI part sends that URI as it
/// is, whatever the request's URI became (ngx_http_proxy_create_request uses
/// the evaluated URI whenever it is not empty).
fn rewritten_pass<'a>(
    pass: &'a ProxyPass,
    ex: &Exchange,
    valid_location: bool,
) -> std::borrow::Cow<'a, ProxyPass> {
    if pass.verbatim_uri || (valid_location && !(ex.internal && pass.uri.is_none())) {
        return std::borrow::Cow::Borrowed(pass);
    }
    // An empty URI part replacing an empty prefix: the new URI, whole.
    std::borrow::Cow::Owned(ProxyPass {
        uri: Some(String::new()),
        location_prefix: Some(String::new()),
        ..pass.clone()
    })
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
        // nginx's `headers_in.server`: the request line's host, then Host
        // (an invalid one is never set there).
        ex.target_host
            .clone()
            .or_else(|| {
                ex.headers
                    .get(header::HOST)
                    .filter(|h| super::guard::valid_host(h.as_bytes()))
                    .and_then(|h| h.to_str().ok())
                    .map(|h| strip_port(h).to_ascii_lowercase())
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| match ex.conn.local.ip() {
                Some(ip) => ip.to_string(),
                // nginx names a Unix socket `unix:PATH` here too.
                None => ex.conn.local.to_string(),
            })
    };
    // nginx's header filter: the connection's scheme, and the port
    // unless it is the scheme's own.
    let (scheme, default_port) = if ex.conn.tls.is_some() {
        ("https", 443)
    } else {
        ("http", 80)
    };
    // A Unix socket has no port (nginx's 0: none written).
    let port = match ex.conn.local.port() {
        Some(port) if settings.port_in_redirect && port != default_port => format!(":{port}"),
        _ => String::new(),
    };
    if let Ok(v) = HeaderValue::from_str(&format!("{scheme}://{host}{port}{location}")) {
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
