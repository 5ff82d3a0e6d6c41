//! Static files from `root` / `alias`, as nginx's static and index modules
//! serve them: Content-Type by extension (`types`, `default_type`),
//! Last-Modified, ETag `"mtime-size"` in hex, If-Modified-Since /
//! If-None-Match -> 304, one byte range -> 206, streamed in chunks.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncSeekExt, ReadBuf};

use crate::config::model::{Alias, GzipStatic, LocationConfig, Settings};
use crate::observe::error_log;

use super::body::{empty, BoxError, ResponseBody};
use super::exchange::Exchange;

/// What the static handler decided.
pub enum Served {
    /// A response (the file, 304, 206, 416).
    Response(Response<ResponseBody>),
    /// An error status for the caller to answer (with `error_page`).
    Status(u16),
    /// The index module found an index file: internal redirect to this URI.
    Redirect(String),
    /// A directory without the trailing slash: 301 to `uri/` (absolutized
    /// by the caller).
    AddSlash(String),
}

/// The file path for `uri` under the location's `alias` or `root`
/// (`$request_filename`) and the document root (`$document_root`).
pub fn file_path(location: &LocationConfig, uri: &str) -> (PathBuf, PathBuf) {
    match &location.alias {
        Some(Alias {
            path: alias,
            prefix: Some(p),
        }) if uri.starts_with(p.as_str()) => {
            let mut path = alias.as_os_str().to_owned();
            path.push(&uri[p.len()..]);
            (PathBuf::from(path), alias.clone())
        }
        // In a regex location the alias is the whole file name.
        Some(Alias {
            path: alias,
            prefix: None,
        }) => (alias.clone(), alias.clone()),
        _ => {
            let root = &location.settings.root;
            let mut path = root.as_os_str().to_owned();
            path.push(uri);
            (PathBuf::from(path), root.clone())
        }
    }
}

fn log(ex: &Exchange, message: String) {
    error_log::error(
        Some(ex.conn.id),
        &format!("{message}{}", super::proxy::log_context(ex, None)),
    );
}

fn os_error_status(e: &std::io::Error) -> u16 {
    match e.kind() {
        ErrorKind::NotFound => 404,
        ErrorKind::PermissionDenied => 403,
        _ => match e.raw_os_error() {
            Some(libc::ENOTDIR) | Some(libc::ENAMETOOLONG) => 404,
            _ => 500,
        },
    }
}

/// Serves `ex.uri` from the file system.
pub async fn serve(location: &LocationConfig, ex: &Exchange, request: &HeaderMap) -> Served {
    let method = ex.method.as_str();
    if !matches!(method, "GET" | "HEAD" | "POST") {
        return Served::Status(405);
    }
    let settings = &location.settings;
    let (path, _) = file_path(location, &ex.uri);
    if ex.uri.ends_with('/') {
        return index(settings, ex, &path).await;
    }
    if method != "POST" {
        if let Some(served) = precompressed(settings, ex, request, &path).await {
            return served;
        }
    }
    let meta = match tokio::fs::metadata(&path).await {
        Ok(m) => m,
        Err(e) => {
            let status = os_error_status(&e);
            // `log_not_found off` keeps a 404's line out of the error log.
            if status != 404 || settings.log_not_found {
                log(
                    ex,
                    format!(
                        "open() \"{}\" failed ({})",
                        path.display(),
                        error_log::os_error(&e)
                    ),
                );
            }
            return Served::Status(status);
        }
    };
    if meta.is_dir() {
        let mut to = format!("{}/", super::route::escape_uri(&ex.uri));
        if let Some(args) = &ex.args {
            to.push('?');
            to.push_str(args);
        }
        return Served::AddSlash(to);
    }
    if method == "POST" {
        return Served::Status(405);
    }
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            log(
                ex,
                format!(
                    "open() \"{}\" failed ({})",
                    path.display(),
                    error_log::os_error(&e)
                ),
            );
            return Served::Status(os_error_status(&e));
        }
    };
    Served::Response(file_response(file, &path, &meta, settings, ex, request).await)
}

/// ngx_http_gzip_static_module: `path.gz` in place of `path`, with
/// `Content-Encoding: gzip`, when `gzip_static` lets it and the file is
/// there; `None` when the plain file is served instead.
async fn precompressed(
    settings: &Settings,
    ex: &Exchange,
    request: &HeaderMap,
    path: &Path,
) -> Option<Served> {
    let g = &settings.gzip;
    let client_takes_gzip = match g.static_files {
        GzipStatic::Off => return None,
        GzipStatic::On => super::gzip::gzip_ok(g, ex, &HeaderMap::new()),
        GzipStatic::Always => true,
    };
    // Without gzip_vary a client that does not take gzip needs no look.
    if !g.vary && !client_takes_gzip {
        return None;
    }
    let mut gz = path.as_os_str().to_owned();
    gz.push(".gz");
    let gz = PathBuf::from(gz);
    let file = match tokio::fs::File::open(&gz).await {
        Ok(f) => f,
        Err(e) => {
            if os_error_status(&e) != 404 {
                let level = if e.kind() == ErrorKind::PermissionDenied {
                    crate::observe::ErrorLevel::Error
                } else {
                    crate::observe::ErrorLevel::Crit
                };
                error_log::log(
                    level,
                    Some(ex.conn.id),
                    &format!(
                        "open() \"{}\" failed ({}){}",
                        gz.display(),
                        error_log::os_error(&e),
                        super::proxy::log_context(ex, None)
                    ),
                );
            }
            return None;
        }
    };
    if g.static_files == GzipStatic::On {
        // The answer depends on Accept-Encoding once a `.gz` exists.
        ex.gzip_vary
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if !client_takes_gzip {
            return None;
        }
    }
    let meta = file.metadata().await.ok()?;
    if meta.is_dir() {
        return None;
    }
    if !meta.is_file() {
        error_log::log(
            crate::observe::ErrorLevel::Crit,
            Some(ex.conn.id),
            &format!(
                "\"{}\" is not a regular file{}",
                gz.display(),
                super::proxy::log_context(ex, None)
            ),
        );
        return Some(Served::Status(404));
    }
    // The type is the plain file's (nginx's is the URI's extension).
    let mut response = file_response(file, path, &meta, settings, ex, request).await;
    if matches!(
        response.status(),
        StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
    ) {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Some(Served::Response(response))
}

async fn index(settings: &Settings, ex: &Exchange, dir: &Path) -> Served {
    for name in &settings.index {
        let name = name.render(ex as &dyn crate::vars::VarSource);
        if name.starts_with('/') {
            // An absolute index is the last resort, redirected to as is.
            return Served::Redirect(name);
        }
        let mut candidate = dir.as_os_str().to_owned();
        candidate.push(&name);
        match tokio::fs::metadata(&candidate).await {
            Ok(_) => return Served::Redirect(format!("{}{}", ex.uri, name)),
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => {
                log(
                    ex,
                    format!(
                        "open() \"{}\" failed ({})",
                        Path::new(&candidate).display(),
                        error_log::os_error(&e)
                    ),
                );
                return Served::Status(os_error_status(&e));
            }
        }
    }
    match tokio::fs::metadata(dir).await {
        Ok(m) if m.is_dir() => {
            log(
                ex,
                format!("directory index of \"{}\" is forbidden", dir.display()),
            );
            Served::Status(403)
        }
        _ => {
            let first = settings
                .index
                .first()
                .map(|t| t.render(ex as &dyn crate::vars::VarSource))
                .unwrap_or_default();
            if settings.log_not_found {
                log(
                    ex,
                    format!(
                        "\"{}{}\" is not found (2: No such file or directory)",
                        dir.display(),
                        first
                    ),
                );
            }
            Served::Status(404)
        }
    }
}

/// The MIME type for `path` by its extension.
pub fn content_type(settings: &Settings, path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .and_then(|e| settings.types.get(&e.to_ascii_lowercase()))
        .cloned()
        .unwrap_or_else(|| settings.default_type.clone())
}

/// One `bytes=` range of a file of `size` bytes: `Ok(None)` when the header
/// is not a single range switchyard serves (the whole file is sent),
/// `Err(())` when it is unsatisfiable.
fn parse_range(header: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec.trim().split_once('-').ok_or(())?;
    let (start, end) = (start.trim(), end.trim());
    if start.is_empty() {
        let n: u64 = end.parse().map_err(|_| ())?;
        if n == 0 || size == 0 {
            return Err(());
        }
        return Ok(Some((size.saturating_sub(n), size - 1)));
    }
    let start: u64 = start.parse().map_err(|_| ())?;
    let end = if end.is_empty() {
        size.saturating_sub(1)
    } else {
        let e: u64 = end.parse().map_err(|_| ())?;
        if e < start {
            return Err(());
        }
        e.min(size.saturating_sub(1))
    };
    if start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

async fn file_response(
    mut file: tokio::fs::File,
    path: &Path,
    meta: &std::fs::Metadata,
    settings: &Settings,
    ex: &Exchange,
    request: &HeaderMap,
) -> Response<ResponseBody> {
    let head = ex.method == http::Method::HEAD;
    let size = meta.len();
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    let secs = mtime
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let mtime = UNIX_EPOCH + Duration::from_secs(secs);
    let last_modified = httpdate::fmt_http_date(mtime);
    let etag = format!("\"{secs:x}-{size:x}\"");
    let mut response = Response::new(empty());
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type(settings, path)) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&last_modified) {
        headers.insert(header::LAST_MODIFIED, v);
    }
    if settings.etag {
        if let Ok(v) = HeaderValue::from_str(&etag) {
            headers.insert(header::ETAG, v);
        }
    }
    let get = |name: header::HeaderName| request.get(name).and_then(|v| v.to_str().ok());
    // nginx's not-modified filter (http/not_modified.rs) on the 200.
    let tag = settings.etag.then_some(etag.as_str());
    match super::not_modified::check(request, Some(mtime), tag, settings.if_modified_since) {
        super::not_modified::Precondition::NotModified => {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response.headers_mut().remove(header::CONTENT_TYPE);
            return response;
        }
        super::not_modified::Precondition::Failed => {
            return super::respond::error(412, settings.server_tokens);
        }
        super::not_modified::Precondition::Send => {}
    }
    let range = get(header::RANGE)
        .filter(|_| if_range_holds(get(header::IF_RANGE), settings, ex, &etag, mtime));
    let (start, end) = match range.map(|r| parse_range(r, size)) {
        Some(Ok(Some((s, e)))) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {s}-{e}/{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            (s, e + 1)
        }
        Some(Err(())) => {
            let mut r = super::respond::error(416, settings.server_tokens);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
        _ => {
            response
                .headers_mut()
                .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            (0, size)
        }
    };
    let length = end - start;
    if let Ok(v) = HeaderValue::from_str(&length.to_string()) {
        response.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    if head || length == 0 {
        return response;
    }
    if start > 0 && file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return super::respond::error(500, settings.server_tokens);
    }
    *response.body_mut() = FileBody {
        file,
        remaining: length,
        buf: Vec::new(),
    }
    .boxed_unsync();
    response
}

/// nginx's range filter: a `Range` is served only when `If-Range` (if any)
/// is the response's entity tag, compared strongly, or its exact
/// modification time; both are taken after `add_header`, which may replace
/// or remove them. A date that does not parse, or a response without a
/// time, never matches.
fn if_range_holds(
    if_range: Option<&str>,
    settings: &Settings,
    ex: &Exchange,
    etag: &str,
    mtime: std::time::SystemTime,
) -> bool {
    let Some(if_range) = if_range else {
        return true;
    };
    let added = |name| super::headers::replaced(&settings.add_headers, ex, 200, name);
    if if_range.len() >= 2 && if_range.ends_with('"') {
        return match added("ETag") {
            Some(tag) => tag.as_deref() == Some(if_range),
            None => if_range == etag,
        };
    }
    let time = match added("Last-Modified") {
        Some(value) => value.and_then(|v| httpdate::parse_http_date(&v).ok()),
        None => Some(mtime),
    };
    time.is_some_and(|t| httpdate::parse_http_date(if_range).ok() == Some(t))
}

/// Streams `remaining` bytes of a file in chunks of up to 64 KiB.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    /// The chunk being read; kept while a read is pending, so a poll that
    /// returns `Pending` does not allocate and zero 64 KiB again.
    buf: Vec<u8>,
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = this.remaining.min(64 * 1024) as usize;
        if this.buf.len() != want {
            this.buf = vec![0u8; want];
        }
        let mut read = ReadBuf::new(&mut this.buf);
        match Pin::new(&mut this.file).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => {
                let n = read.filled().len();
                if n == 0 {
                    return Poll::Ready(Some(Err("file shrank while being sent".into())));
                }
                this.remaining -= n as u64;
                let mut chunk = std::mem::take(&mut this.buf);
                chunk.truncate(n);
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_as_nginx_reads_them() {
        assert_eq!(parse_range("bytes=2-5", 16), Ok(Some((2, 5))));
        assert_eq!(parse_range("bytes=10-", 16), Ok(Some((10, 15))));
        assert_eq!(parse_range("bytes=-3", 16), Ok(Some((13, 15))));
        assert_eq!(parse_range("bytes=-30", 16), Ok(Some((0, 15))));
        assert_eq!(parse_range("bytes=5-100", 16), Ok(Some((5, 15))));
        assert_eq!(parse_range("bytes=16-", 16), Err(()));
        assert_eq!(parse_range("bytes=5-2", 16), Err(()));
        assert_eq!(parse_range("bytes=0-1,4-5", 16), Ok(None));
        assert_eq!(parse_range("items=1-2", 16), Ok(None));
    }
}
