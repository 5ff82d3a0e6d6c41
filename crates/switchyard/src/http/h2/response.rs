//! A handler's response sent on an HTTP/2 stream: the head without the
//! hop-by-hop fields HTTP/2 forbids (RFC 9113 8.2.2), nginx's Date and
//! Content-Length as its header filter adds them, then DATA frames of at
//! most `http2_chunk_size` as the client's window lets them go, then the
//! trailers if the body has any. A response to HEAD ends with its head.

use std::time::{Duration, SystemTime};

use bytes::{Buf, Bytes};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;

use crate::http::body::ResponseBody;

/// Fields that belong to one HTTP/1.1 connection and may not appear in
/// HTTP/2 (nginx's HTTP/2 header filter never writes them).
const HOP_BY_HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// How a response should go out.
#[derive(Debug, Clone, Copy)]
pub struct Sending {
    /// The request was HEAD: no body follows the head.
    pub head_request: bool,
    /// `http2_chunk_size`.
    pub chunk_size: usize,
    /// `send_timeout` (zero: none): a client whose window stays shut
    /// longer loses the stream.
    pub send_timeout: Duration,
}

/// Sends `response` on `stream`; returns whether all of it went.
pub async fn send(
    mut stream: h2::server::SendResponse<Bytes>,
    response: Response<ResponseBody>,
    how: Sending,
) -> bool {
    let (parts, mut body) = response.into_parts();
    let no_body = how.head_request || !allows_body(parts.status);
    // A body that fails before its first byte is `return 444` (or an
    // upstream lost at once): nginx resets the stream, sending no head.
    // (A body never sent, to HEAD, is not read at all: it is not counted
    // as sent either.)
    let first = if no_body {
        std::task::Poll::Pending
    } else {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::pin::Pin::new(&mut body).poll_frame(cx))
        })
        .await
    };
    let (first, finished) = match first {
        std::task::Poll::Ready(Some(Err(_))) => {
            stream.send_reset(h2::Reason::INTERNAL_ERROR);
            return false;
        }
        std::task::Poll::Ready(Some(Ok(frame))) => (Some(frame), false),
        std::task::Poll::Ready(None) => (None, true),
        std::task::Poll::Pending => (None, false),
    };
    let ended = finished || (first.is_none() && body.is_end_stream());
    let mut head = Response::new(());
    *head.status_mut() = parts.status;
    *head.headers_mut() = head_fields(parts.headers, parts.status, &body, first.as_ref());
    let end_with_head = no_body || (ended && first.is_none());
    let mut send = match stream.send_response(head, end_with_head) {
        Ok(send) => send,
        Err(_) => return false,
    };
    if end_with_head {
        return true;
    }
    let mut next = first;
    loop {
        let frame = match next.take() {
            Some(frame) => frame,
            None => match body.frame().await {
                Some(Ok(frame)) => frame,
                Some(Err(_)) => {
                    // An upstream that broke off mid-body: the client must
                    // not take the response as whole.
                    send.send_reset(h2::Reason::INTERNAL_ERROR);
                    return false;
                }
                None => break,
            },
        };
        let frame = match frame.into_data() {
            Ok(data) => {
                if !send_data(&mut send, data, how).await {
                    return false;
                }
                continue;
            }
            Err(frame) => frame,
        };
        if let Ok(trailers) = frame.into_trailers() {
            return send.send_trailers(trailers).is_ok();
        }
    }
    send.send_data(Bytes::new(), true).is_ok()
}

fn allows_body(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

/// The head's fields: nginx's placed ones first (Server, Date,
/// Content-Type, Content-Length, Last-Modified), then the others, minus
/// those HTTP/2 forbids. Names are lower case already (`http` keeps them
/// so), as HTTP/2 requires.
fn head_fields(
    mut headers: HeaderMap,
    status: StatusCode,
    body: &ResponseBody,
    first: Option<&http_body::Frame<Bytes>>,
) -> HeaderMap {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    // TE may only say "trailers" in HTTP/2; a response has no use for it.
    headers.remove(header::TE);
    let mut out = HeaderMap::with_capacity(headers.len() + 2);
    let take = |name: HeaderName, out: &mut HeaderMap, headers: &mut HeaderMap| {
        if let header::Entry::Occupied(e) = headers.entry(name.clone()) {
            for value in e.remove_entry_mult().1 {
                out.append(name.clone(), value);
            }
        }
    };
    take(header::SERVER, &mut out, &mut headers);
    match headers.remove(header::DATE) {
        Some(date) => {
            out.insert(header::DATE, date);
        }
        None => {
            if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now())) {
                out.insert(header::DATE, v);
            }
        }
    }
    take(header::CONTENT_TYPE, &mut out, &mut headers);
    let length = headers.remove(header::CONTENT_LENGTH).or_else(|| {
        // A body whose length is known gets it said, as nginx does.
        let exact = body.size_hint().exact()?;
        let first = first
            .and_then(|f| f.data_ref())
            .map_or(0, |d| d.len() as u64);
        (allows_body(status)).then(|| HeaderValue::from(exact + first))
    });
    if let Some(length) = length {
        out.insert(header::CONTENT_LENGTH, length);
    }
    take(header::LAST_MODIFIED, &mut out, &mut headers);
    let mut last: Option<HeaderName> = None;
    for (name, value) in headers {
        if let Some(name) = name {
            last = Some(name);
        }
        if let Some(name) = &last {
            out.append(name.clone(), value);
        }
    }
    out
}

/// Sends `data` in DATA frames of at most `chunk_size`, each as the
/// stream's and the connection's windows allow.
async fn send_data(send: &mut h2::SendStream<Bytes>, mut data: Bytes, how: Sending) -> bool {
    while data.has_remaining() {
        let want = data.len().min(how.chunk_size);
        send.reserve_capacity(want);
        let granted = std::future::poll_fn(|cx| send.poll_capacity(cx));
        let granted = if how.send_timeout.is_zero() {
            granted.await
        } else {
            match tokio::time::timeout(how.send_timeout, granted).await {
                Ok(g) => g,
                Err(_) => {
                    send.send_reset(h2::Reason::CANCEL);
                    return false;
                }
            }
        };
        let n = match granted {
            Some(Ok(n)) if n > 0 => n.min(want),
            Some(Ok(_)) => continue,
            _ => return false,
        };
        let piece = data.split_to(n);
        if send.send_data(piece, false).is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A body of fixed frames.
    struct Frames(VecDeque<http_body::Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = crate::http::body::BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    /// Sends `response` from a server to a client over an in-memory pipe;
    /// returns the head, the DATA frame sizes and the trailers.
    async fn round_trip(
        response: Response<ResponseBody>,
        how: Sending,
    ) -> (http::response::Parts, Vec<usize>, Option<HeaderMap>) {
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(async move {
            let mut conn = h2::server::handshake(server_io).await.unwrap();
            let (_, respond) = conn.accept().await.unwrap().unwrap();
            let sent = tokio::spawn(send(respond, response, how));
            while conn.accept().await.is_some() {}
            sent.await.unwrap()
        });
        let (mut client, conn) = h2::client::handshake(client_io).await.unwrap();
        let conn = tokio::spawn(conn);
        let method = if how.head_request {
            http::Method::HEAD
        } else {
            http::Method::GET
        };
        let request = http::Request::builder()
            .method(method)
            .uri("http://localhost/")
            .body(())
            .unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        let (parts, mut recv) = response.await.unwrap().into_parts();
        let mut sizes = Vec::new();
        while let Some(data) = recv.data().await {
            let data = data.unwrap();
            let _ = recv.flow_control().release_capacity(data.len());
            sizes.push(data.len());
        }
        let trailers = recv.trailers().await.unwrap();
        drop(recv);
        drop(client);
        let _ = conn.await;
        assert!(server.await.unwrap());
        (parts, sizes, trailers)
    }

    const HOW: Sending = Sending {
        head_request: false,
        chunk_size: 8192,
        send_timeout: Duration::ZERO,
    };

    #[tokio::test]
    async fn data_goes_in_chunk_size_frames_then_the_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", HeaderValue::from_static("42"));
        let frames = VecDeque::from([
            http_body::Frame::data(Bytes::from(vec![b'a'; 20000])),
            http_body::Frame::trailers(trailers),
        ]);
        let body: ResponseBody = Frames(frames).boxed_unsync();
        let (parts, sizes, trailers) = round_trip(Response::new(body), HOW).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(sizes.iter().sum::<usize>(), 20000);
        assert!(sizes.iter().all(|n| *n <= 8192), "{sizes:?}");
        assert_eq!(trailers.unwrap()["x-sum"], "42");
    }

    #[tokio::test]
    async fn head_sends_the_length_and_no_data() {
        let body = crate::http::body::full("twelve bytes");
        let how = Sending {
            head_request: true,
            ..HOW
        };
        let (parts, sizes, _) = round_trip(Response::new(body), how).await;
        assert_eq!(parts.headers[header::CONTENT_LENGTH], "12");
        assert!(sizes.is_empty(), "{sizes:?}");
    }

    #[test]
    fn hop_by_hop_fields_go_and_placed_ones_lead() {
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.insert(header::SERVER, HeaderValue::from_static("switchyard"));
        let body = crate::http::body::full("hello");
        let out = head_fields(h, StatusCode::OK, &body, None);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            ["server", "date", "content-type", "content-length", "x-a"]
        );
        assert_eq!(out[header::CONTENT_LENGTH], "5");
    }
}
