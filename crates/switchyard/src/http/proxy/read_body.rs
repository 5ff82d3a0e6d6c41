//! The client's body before the request goes up, as nginx's proxy reads
//! it (ngx_http_read_client_request_body): whole first with
//! `proxy_request_buffering on`, or only what has already arrived with
//! `off`; a body read whole is kept in the exchange, for `$request_body`
//! and for proxying the request again after an internal redirect.

use bytes::{Bytes, BytesMut};
use http::header;
use http_body_util::BodyExt;

use super::body::client_body;
use super::send::UpBody;
use crate::config::model::{InFileOnly, Settings};
use crate::http::exchange::Exchange;
use crate::http::h1::body::RequestBody;
use crate::http::request_body::{self, Framing, HeldBody};
use crate::observe::error_log;

/// Bodies up to this size (or `client_body_buffer_size`'s memory, if
/// larger) are read whole before the first attempt, so that a retry on the
/// next peer can send them again (nginx buffers every body with
/// `proxy_request_buffering on`, larger ones to a file; switchyard streams
/// those).
pub const RETRY_BUFFER: u64 = 64 * 1024;

/// A request proxied again after an internal redirect, whose body went up
/// (or was never read) before: the body held then goes up, or none.
#[derive(Debug, Clone, Copy)]
pub struct ProxiedBefore;

/// What a read of the body gave.
enum Read {
    /// All of it.
    Whole(Bytes),
    /// What came first; the rest is still to be read from the body.
    Part(Bytes, RequestBody),
}

/// Why a read failed: the status nginx answers.
type Status = u16;

/// Reads `incoming` until it ends or more than `cap` bytes came, refusing
/// more than `limit` bytes in all (0: no limit) with 413 and a client that
/// stalls longer than `timeout` between reads with 408. With `ready_only`
/// it reads only what has already arrived (nginx's unbuffered reading,
/// which takes what the socket has and goes on).
async fn read(
    mut incoming: RequestBody,
    cap: u64,
    ready_only: bool,
    settings: &Settings,
) -> Result<Read, Status> {
    let limit = settings.client_max_body_size;
    let mut buffer = BytesMut::new();
    loop {
        let next = if ready_only {
            match request_body::next_if_ready(&mut incoming).await {
                Some(next) => next,
                None => return Ok(Read::Part(buffer.freeze(), incoming)),
            }
        } else {
            match tokio::time::timeout(settings.client_body_timeout, incoming.frame()).await {
                Ok(next) => next,
                Err(_) => return Err(408),
            }
        };
        let Some(frame) = next else { break };
        let frame = frame.map_err(|_| 400u16)?;
        if let Some(data) = frame.data_ref() {
            if limit > 0 && (buffer.len() + data.len()) as u64 > limit {
                return Err(413);
            }
            buffer.extend_from_slice(data);
            if buffer.len() as u64 > cap {
                return Ok(Read::Part(buffer.freeze(), incoming));
            }
        }
    }
    Ok(Read::Whole(buffer.freeze()))
}

/// Reads what is left of a body that does not go up, and drops it.
async fn drain(
    mut incoming: RequestBody,
    mut seen: u64,
    settings: &Settings,
) -> Result<(), Status> {
    let limit = settings.client_max_body_size;
    loop {
        let Ok(next) = tokio::time::timeout(settings.client_body_timeout, incoming.frame()).await
        else {
            return Err(408);
        };
        let Some(frame) = next else { return Ok(()) };
        if let Some(data) = frame.map_err(|_| 400u16)?.data_ref() {
            seen += data.len() as u64;
            if limit > 0 && seen > limit {
                return Err(413);
            }
        }
    }
}

/// Decides what body goes up, reading the client's as nginx would first:
/// the body and its length (`None`: unknown, it goes chunked or is
/// measured as it streams).
pub async fn prepare_body(
    settings: &Settings,
    ex: &mut Exchange,
    incoming: RequestBody,
    again: bool,
) -> Result<(UpBody, Option<u64>), Status> {
    let declared = ex
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| ::h1::content_length(v.as_bytes()).ok());
    let chunked = ex.headers.contains_key(header::TRANSFER_ENCODING) || incoming.length_unknown();
    // nginx reads a body when the request has a length (0 included) or is
    // chunked; one read before is not read again.
    let has_body = !again && (chunked || declared.is_some());
    if has_body && ex.held_body.is_none() {
        if let Some(streamed) = read_client_body(settings, ex, incoming, chunked, declared).await? {
            return Ok(streamed);
        }
    }
    if let Some(template) = &settings.proxy_set_body {
        let body = Bytes::from(template.render_bytes(ex));
        let len = body.len() as u64;
        return Ok((UpBody::Buffered(body), Some(len)));
    }
    if !settings.proxy_pass_request_body {
        return Ok((UpBody::Empty, None));
    }
    match &ex.held_body {
        Some(held) => {
            let bytes = held.bytes().clone();
            let len = bytes.len() as u64;
            Ok((UpBody::Buffered(bytes), Some(len)))
        }
        None => Ok((UpBody::Empty, None)),
    }
}

/// Reads the client's body: whole into `ex.held_body` (returns `None`), or
/// the start of it, returning the body to stream up.
async fn read_client_body(
    settings: &Settings,
    ex: &mut Exchange,
    incoming: RequestBody,
    chunked: bool,
    declared: Option<u64>,
) -> Result<Option<(UpBody, Option<u64>)>, Status> {
    let reading = &*settings.body;
    let sent = settings.proxy_set_body.is_none() && settings.proxy_pass_request_body;
    // nginx's condition for unbuffered reading (ngx_http_proxy_handler):
    // a chunked body to an HTTP/1.0 upstream must be measured first.
    let unbuffered =
        !reading.proxy_request_buffering && sent && (!chunked || settings.proxy_http_version_11);
    let memory = request_body::memory_limit(Framing::of(&incoming), reading);
    let whole = reading.in_file_only != InFileOnly::Off
        || (sent && chunked && !settings.proxy_http_version_11);
    let (cap, ready_only) = if unbuffered {
        // What arrived with the head, if it is all of the body and fits
        // in memory, is read as with buffering (nginx then turns
        // unbuffered reading off).
        (memory, true)
    } else if whole {
        (u64::MAX, false)
    } else if sent {
        (RETRY_BUFFER.max(memory), false)
    } else {
        // Not sent: only a body nginx would hold in memory is kept.
        (memory, false)
    };
    match read(incoming, cap, ready_only, settings).await? {
        Read::Whole(bytes) => {
            // A body larger than client_body_buffer_size goes to a
            // temporary file too, as nginx's does ($request_body_file).
            let in_memory = bytes.len() as u64 <= memory;
            let file = request_body::write_file(&bytes, reading, !in_memory)
                .await
                .map_err(|e| {
                    error_log::log(
                        crate::observe::ErrorLevel::Crit,
                        Some(ex.conn.id),
                        &format!("{e}{}", super::log_context(ex, None)),
                    );
                    500u16
                })?;
            if let Some(path) = file.as_ref().map(|f| f.path()) {
                // nginx's level: notice for client_body_in_file_only, where
                // the file is asked for, warn for a spilled body.
                let level = if reading.in_file_only == InFileOnly::Off {
                    crate::observe::ErrorLevel::Warn
                } else {
                    crate::observe::ErrorLevel::Notice
                };
                error_log::log(
                    level,
                    Some(ex.conn.id),
                    &format!(
                        "a client request body is buffered to a temporary file {}{}",
                        path.display(),
                        super::log_context(ex, None)
                    ),
                );
            }
            ex.held_body = Some(HeldBody::new(bytes, in_memory, file));
            Ok(None)
        }
        Read::Part(start, rest) => {
            // Too large to hold: it cannot go up again after a redirect.
            ex.body_streamed = true;
            if !sent {
                drain(rest, start.len() as u64, settings).await?;
                return Ok(None);
            }
            let stream = client_body(
                rest,
                settings.client_max_body_size,
                settings.client_body_timeout,
                start.len() as u64,
            );
            Ok(Some((
                UpBody::Stream(start, stream),
                declared.filter(|_| !chunked),
            )))
        }
    }
}
