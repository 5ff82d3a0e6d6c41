//! The request as it goes up: URI, method, headers and body, by nginx's
//! rules (`proxy_set_header` defaults, `proxy_pass` URI replacement,
//! `proxy_method`, `proxy_pass_request_*`, `proxy_set_body`).

use crate::http::h1::body::RequestBody;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::HeaderMap;
use http_body_util::BodyExt;

use super::body::client_body;
use super::send::UpBody;
use crate::config::model::{ProxyPass, Settings};
use crate::http::exchange::Exchange;
use crate::http::h1::HeaderCase;

/// Client request headers nginx never passes up as they are: its own
/// defaults replace them (`Host`, `Connection`, the body framing) or drop
/// them (`Keep-Alive`, `TE`, `Expect`, `Upgrade`).
const NOT_PASSED: [&str; 8] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "te",
    "expect",
    "upgrade",
];

/// Bodies up to this size are read whole before the first attempt, so that
/// a retry on the next peer can send them again (nginx buffers every body
/// with `proxy_request_buffering on`; larger ones are streamed here).
pub const RETRY_BUFFER: u64 = 64 * 1024;

/// Reads a whole body, refusing more than `limit` bytes (0: no limit) with
/// 413, and a client that stalls longer than `timeout` between reads with 408.
pub async fn read_limited(
    mut incoming: RequestBody,
    limit: u64,
    timeout: std::time::Duration,
) -> Result<Bytes, u16> {
    let mut buffer = bytes::BytesMut::new();
    loop {
        let Ok(next) = tokio::time::timeout(timeout, incoming.frame()).await else {
            return Err(408);
        };
        let Some(frame) = next else { break };
        let frame = frame.map_err(|_| 400u16)?;
        if let Some(data) = frame.data_ref() {
            if limit > 0 && (buffer.len() + data.len()) as u64 > limit {
                return Err(413);
            }
            buffer.extend_from_slice(data);
        }
    }
    Ok(buffer.freeze())
}

/// Decides what body goes up and reads it when it must be held.
pub async fn prepare_body(
    settings: &Settings,
    ex: &Exchange,
    headers: &HeaderMap,
    incoming: RequestBody,
) -> Result<(UpBody, Option<u64>), u16> {
    if let Some(body) = &settings.proxy_set_body {
        let text = body.render(ex);
        let len = text.len() as u64;
        return Ok((UpBody::Buffered(Bytes::from(text)), Some(len)));
    }
    if !settings.proxy_pass_request_body {
        return Ok((UpBody::Empty, None));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| ::h1::content_length(v.as_bytes()).ok());
    let chunked = headers.contains_key(header::TRANSFER_ENCODING) || incoming.length_unknown();
    if !chunked && declared.unwrap_or(0) == 0 {
        return Ok((UpBody::Empty, declared.filter(|_| !chunked)));
    }
    // An HTTP/1.0 upstream needs a Content-Length: a chunked body is read
    // first, as nginx does; small bodies are read so a retry can resend them.
    let hold = (chunked && !settings.proxy_http_version_11)
        || (!chunked && declared.unwrap_or(0) <= RETRY_BUFFER);
    if hold {
        let bytes = read_limited(
            incoming,
            settings.client_max_body_size,
            settings.client_body_timeout,
        )
        .await?;
        let len = bytes.len() as u64;
        return Ok((UpBody::Buffered(bytes), Some(len)));
    }
    let stream = client_body(
        incoming,
        settings.client_max_body_size,
        settings.client_body_timeout,
    );
    Ok((UpBody::Stream(stream), declared.filter(|_| !chunked)))
}

/// The URI sent upstream: the client's URI as sent when `proxy_pass` has
/// no URI part; else the location prefix replaced by that part.
pub fn upstream_uri(pass: &ProxyPass, ex: &Exchange) -> String {
    if let (true, Some(uri)) = (pass.verbatim_uri, &pass.uri) {
        return uri.clone();
    }
    match (&pass.uri, &pass.location_prefix) {
        (Some(uri), Some(prefix)) if ex.uri.starts_with(prefix.as_str()) => {
            let mut out = uri.clone();
            out.push_str(&escape_path(&ex.uri[prefix.len()..]));
            if let Some(args) = &ex.args {
                out.push('?');
                out.push_str(args);
            }
            out
        }
        _ => ex.raw_uri.clone(),
    }
}

/// Re-escapes a decoded path the way nginx does before sending it up.
fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The headers sent upstream: `proxy_set_header` values first (nginx's
/// defaults included), then the client's headers that nginx passes, then
/// the body length; and how their names are spelled (the configuration's
/// spelling, then the client's).
pub fn build_headers(
    settings: &Settings,
    ex: &Exchange,
    client: &HeaderMap,
    client_case: Option<&HeaderCase>,
    body_len: Option<u64>,
) -> (HeaderMap, HeaderCase) {
    let mut headers = HeaderMap::with_capacity(client.len() + 4);
    let mut case = HeaderCase::default();
    for (name, value) in &settings.proxy_set_headers {
        let rendered = value.render(ex);
        if rendered.is_empty() {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&rendered),
        ) {
            case.note(&n, name.as_bytes());
            headers.append(n, v);
        }
    }
    if let Some(client_case) = client_case.filter(|_| settings.proxy_pass_request_headers) {
        case.extend(client_case);
    }
    if settings.proxy_pass_request_headers {
        for (name, value) in client {
            let n = name.as_str();
            if NOT_PASSED.contains(&n)
                || settings
                    .proxy_set_headers
                    .iter()
                    .any(|(s, _)| s.eq_ignore_ascii_case(n))
            {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(len) = body_len {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    (headers, case)
}
