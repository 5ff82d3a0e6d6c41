//! A response on its way out to the client: the head as nginx writes it,
//! then the body framed as the head says, written as it comes, with
//! `send_timeout` on every stall. While the client is slow to read, the
//! request body is still fed to the handler (a proxied upload and its
//! response may be in flight at once).

use std::pin::Pin;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use http::Response;
use http_body::Body;

use super::conn::ConnectionContext;
use super::intake::Intake;
use super::response::{encode_head, ChunkedCoding, Framing, HeadFor, StatusLine};
use super::{write_header_line, HeaderCase};
use crate::http::body::{poll_wait, ResponseBody};
use crate::http::outbox::Outbox;
use crate::observe::error_log;
use crate::transport::client::ClientStream;

/// nginx's error-log words when `send_timeout` runs out.
pub const SEND_TIMED_OUT: &str =
    "client timed out (110: Connection timed out) while sending response to client";

/// Writes the response, after `interim` (an interim response still due);
/// whether it went out complete (the connection can carry another
/// request).
pub async fn write_response<S: ClientStream>(
    stream: &mut S,
    buffer: &mut BytesMut,
    mut intake: Option<&mut Intake>,
    interim: &[u8],
    response: Response<ResponseBody>,
    mut request: HeadFor,
    cx: &ConnectionContext,
) -> bool {
    let (parts, mut body) = response.into_parts();
    let coding = parts.extensions.get::<ChunkedCoding>();
    if coding.is_some_and(|c| c.off) {
        request.chunked = false;
    }
    let mut head = Vec::with_capacity(256 + interim.len());
    head.extend_from_slice(interim);
    let framing = encode_head(
        &mut head,
        parts.status,
        parts.extensions.get::<StatusLine>(),
        &parts.headers,
        parts.extensions.get::<HeaderCase>(),
        &body.size_hint(),
        request,
    );
    let mut writer = Writer {
        out: Outbox::with(Bytes::from(head)),
        framing,
        left: match framing {
            Framing::Length(n) => n,
            _ => 0,
        },
        ended: None,
        trailer_case: coding.map(|c| &c.trailer_case),
        trailed: false,
    };
    if matches!(framing, Framing::Empty | Framing::Length(0)) {
        writer.ended = Some(true);
    }
    // send_timeout: the timer is kept and reset between stalls.
    let mut stall: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut stalled = false;
    // The first piece of body goes out with the head when it is ready at
    // once; a body that fails before anything was written sends nothing
    // at all (`return 444`, an upstream that broke at once).
    if writer.ended.is_none() {
        let first = std::future::poll_fn(|c| Poll::Ready(Pin::new(&mut body).poll_frame(c))).await;
        match first {
            Poll::Ready(Some(Err(_))) => return false,
            Poll::Ready(frame) => writer.take(frame),
            Poll::Pending => {}
        }
    } else if parts.status.as_u16() >= 200 {
        // No body goes out, but a failing one means no response at all.
        let first = std::future::poll_fn(|c| Poll::Ready(Pin::new(&mut body).poll_frame(c))).await;
        if let Poll::Ready(Some(Err(_))) = first {
            return false;
        }
    }
    // While the body keeps it waiting, a client that closes is noticed (a
    // request body still to come is read instead).
    let mut watching =
        stream.plain_socket().is_some() && intake.as_deref().is_none_or(Intake::is_done);
    let mut feed = |stream: &mut S, buffer: &mut BytesMut, c: &mut std::task::Context<'_>| {
        intake
            .as_deref_mut()
            .is_some_and(|i| i.step(stream, buffer, c))
    };
    std::future::poll_fn(|c| loop {
        while !writer.out.is_empty() {
            match writer.out.poll_write_some(stream, c) {
                Poll::Ready(Ok(_)) => stalled = false,
                Poll::Ready(Err(_)) => return Poll::Ready(false),
                Poll::Pending => {
                    if feed(stream, buffer, c) {
                        continue;
                    }
                    let timed_out = !cx.send_timeout.is_zero()
                        && poll_wait(&mut stall, &mut stalled, cx.send_timeout, c).is_ready();
                    if timed_out {
                        error_log::log(
                            crate::observe::ErrorLevel::Info,
                            Some(cx.conn.id),
                            SEND_TIMED_OUT,
                        );
                        return Poll::Ready(false);
                    }
                    return Poll::Pending;
                }
            }
        }
        if let Some(complete) = writer.ended {
            return Poll::Ready(complete);
        }
        match Pin::new(&mut body).poll_frame(c) {
            // A body that breaks mid-way: the client sees the cut.
            Poll::Ready(Some(Err(_))) => return Poll::Ready(false),
            Poll::Ready(frame) => writer.take(frame),
            Poll::Pending => {
                if feed(stream, buffer, c) {
                    continue;
                }
                if client_closed(stream, &mut watching, c) {
                    error_log::log(
                        crate::observe::ErrorLevel::Info,
                        Some(cx.conn.id),
                        CLIENT_CLOSED,
                    );
                    return Poll::Ready(false);
                }
                return Poll::Pending;
            }
        }
    })
    .await
}

/// nginx's error-log words when the client goes while its response waits.
const CLIENT_CLOSED: &str = "client prematurely closed connection while sending response to client";

/// Whether the client has gone while its response waits for more body (a
/// slow upstream, `limit_rate`), as nginx's ngx_http_test_reading notices:
/// the connection was reset (a client that closes with bytes of the
/// response unread resets it). A half-close (the end of what the client
/// sends, read as 0) is not taken for an abort, as nginx takes it: HTTP
/// allows it and the client may still be reading (tests/hostile.rs,
/// half_closed_client_still_gets_its_response). Either, or bytes there
/// (a pipelined request), end the watch.
fn client_closed<S: ClientStream>(
    stream: &S,
    watching: &mut bool,
    c: &mut std::task::Context<'_>,
) -> bool {
    let Some(socket) = stream.plain_socket().filter(|_| *watching) else {
        return false;
    };
    let mut byte = [0u8; 1];
    let mut peeked = tokio::io::ReadBuf::new(&mut byte);
    match socket.poll_peek(c, &mut peeked) {
        Poll::Ready(Err(_)) => true,
        Poll::Ready(Ok(_)) => {
            *watching = false;
            false
        }
        Poll::Pending => false,
    }
}

/// The response's bytes on their way out.
struct Writer<'a> {
    out: Outbox,
    /// How the trailers' names are spelled.
    trailer_case: Option<&'a HeaderCase>,
    /// The last chunk, with the trailers, is queued.
    trailed: bool,
    framing: Framing,
    /// Body bytes still due under `Content-Length`.
    left: u64,
    /// The body has ended: whether it was complete.
    ended: Option<bool>,
}

impl Writer<'_> {
    /// Queues a frame of the body (`None`: its end).
    fn take(
        &mut self,
        frame: Option<Result<http_body::Frame<Bytes>, crate::http::body::BoxError>>,
    ) {
        match frame {
            Some(Ok(frame)) => {
                let data = match frame.into_data() {
                    Ok(data) => data,
                    Err(frame) => {
                        // Trailers end a chunked body; other framings have
                        // no place for them (nginx writes them only there).
                        if let (Ok(trailers), Framing::Chunked) =
                            (frame.into_trailers(), self.framing)
                        {
                            self.push_trailers(&trailers);
                        }
                        return;
                    }
                };
                if data.is_empty() {
                    return;
                }
                match self.framing {
                    Framing::Chunked => self.out.push_chunk(data),
                    Framing::UntilClose => self.out.push(data),
                    Framing::Length(_) | Framing::Empty => {
                        let n = (data.len() as u64).min(self.left);
                        self.left -= n;
                        self.out.push(data.slice(..n as usize));
                        if self.left == 0 {
                            self.ended = Some(true);
                        }
                    }
                }
            }
            None => {
                if self.framing == Framing::Chunked && !self.trailed {
                    self.out.push_last_chunk();
                }
                // Shorter than announced: the connection must close. A
                // body delimited by the close ends the connection anyway.
                self.ended = Some(self.left == 0 && self.framing != Framing::UntilClose);
            }
            Some(Err(_)) => self.ended = Some(false),
        }
    }

    /// Queues the last chunk with `trailers`, each line as nginx's
    /// chunked filter writes it.
    fn push_trailers(&mut self, trailers: &http::HeaderMap) {
        let mut last = b"0\r\n".to_vec();
        for (name, value) in trailers {
            write_header_line(&mut last, name, value, self.trailer_case);
        }
        last.extend_from_slice(b"\r\n");
        self.out.push(Bytes::from(last));
        self.trailed = true;
    }
}
