//! Response bodies on their way to the client: counted for `$body_bytes_sent`,
//! bounded by `proxy_read_timeout` between two reads from the upstream, and
//! logged (access log) when finished or abandoned.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

use super::exchange::Exchange;
use super::log::AccessLog;
use crate::config::model::AddHeader;

/// Runs once when a response body fails mid-way (to write the error-log line).
pub type OnBodyError = Box<dyn FnOnce(&Exchange, &BoxError) + Send>;

/// A boxed error for bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type every response has.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// A body of fixed bytes.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> ResponseBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// The upstream stopped sending for longer than `proxy_read_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("upstream timed out (110: Connection timed out) while reading upstream")]
pub struct ReadTimeout;

/// Wraps an upstream body: each frame must arrive within `timeout`.
pub struct TimedBody<B> {
    inner: B,
    timeout: Duration,
    /// Kept across frames and reset when a wait starts: a new timer per
    /// wait cost an allocation, a registration and a deregistration.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether `sleep` times the current wait (it is left registered
    /// after a frame arrives; an early wake-up from it is harmless).
    armed: bool,
}

impl<B> TimedBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, timeout: Duration) -> Self {
        TimedBody {
            inner,
            timeout,
            sleep: None,
            armed: false,
        }
    }
}

/// Starts timing a wait of `timeout` on `sleep` unless `armed` says it
/// already times this one, then polls it.
pub(crate) fn poll_wait(
    sleep: &mut Option<Pin<Box<tokio::time::Sleep>>>,
    armed: &mut bool,
    timeout: Duration,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if !*armed {
        *armed = true;
        let deadline = tokio::time::Instant::now() + timeout;
        match sleep {
            Some(s) => s.as_mut().reset(deadline),
            None => *sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
    }
    match sleep {
        Some(s) => s.as_mut().poll(cx),
        None => Poll::Pending,
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match poll_wait(&mut this.sleep, &mut this.armed, this.timeout, cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(ReadTimeout)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Counts the bytes that reach the client, ends the body with its
/// `add_trailer` lines, and writes the access log when the body is done
/// (or dropped early: a client that went away is logged too, as nginx
/// logs it). Both need the exchange as it is once the body has gone.
pub struct LoggedBody {
    inner: ResponseBody,
    exchange: Option<Box<Exchange>>,
    log: Option<Arc<AccessLog>>,
    on_error: Option<OnBodyError>,
    tunnel: Option<TunnelLog>,
    /// The `add_trailer` lines still to render, at the body's end (their
    /// values may read `$upstream_response_length` or earlier trailers).
    trailers: Vec<AddHeader>,
    /// The inner body has ended (its trailers frame is out, or was empty).
    inner_ended: bool,
}

/// What a finished 101 hands its tunnel: the exchange and where it is
/// logged.
pub type Logged = (Box<Exchange>, Arc<AccessLog>);

/// A 101's access-log line goes to the task that joins the two upgraded
/// connections: nginx finalizes (and logs) an upgraded request when its
/// tunnel closes, with the tunnel's bytes in `$bytes_sent` and
/// `$body_bytes_sent`. Carried in the 101's extensions (hence the shared
/// slot: extensions must be cloneable).
#[derive(Clone)]
pub struct TunnelLog(Arc<Mutex<Option<tokio::sync::oneshot::Sender<Logged>>>>);

impl TunnelLog {
    /// The 101's side, and the tunnel's, which receives the line's
    /// exchange once the 101's body is done (nothing if it is not logged).
    pub fn pair() -> (TunnelLog, tokio::sync::oneshot::Receiver<Logged>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (TunnelLog(Arc::new(Mutex::new(Some(tx)))), rx)
    }

    /// Hands `logged` to the tunnel; back if the tunnel is gone already.
    fn hand_over(&self, logged: Logged) -> Option<Logged> {
        let sender = self.0.lock().ok().and_then(|mut s| s.take());
        match sender {
            Some(tx) => tx.send(logged).err(),
            None => Some(logged),
        }
    }
}

impl LoggedBody {
    /// Wraps `inner`; `on_error` runs once if the body fails mid-way.
    /// Without `log`, no line is written (the body is wrapped for its
    /// trailers).
    pub fn new(
        inner: ResponseBody,
        exchange: Box<Exchange>,
        log: Option<Arc<AccessLog>>,
        on_error: Option<OnBodyError>,
    ) -> Self {
        LoggedBody {
            inner,
            exchange: Some(exchange),
            log,
            on_error,
            tunnel: None,
            trailers: Vec::new(),
            inner_ended: false,
        }
    }

    /// The body ends with these `add_trailer` lines (those that apply to
    /// the response's status), rendered as it ends.
    pub fn with_trailers(mut self, trailers: Vec<AddHeader>) -> Self {
        self.trailers = trailers;
        self
    }

    /// Renders the trailers, in order (each sees the ones before it as
    /// `$sent_trailer_NAME`); an empty value adds none.
    fn render_trailers(&mut self) -> Option<http::HeaderMap> {
        let lines = std::mem::take(&mut self.trailers);
        let ex = self.exchange.as_mut()?;
        for line in &lines {
            let value = line.value.render(&**ex);
            if value.is_empty() {
                continue;
            }
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(line.name.as_bytes()),
                http::HeaderValue::from_str(&value),
            ) {
                ex.sent_trailers.append(name, value);
            }
        }
        (!ex.sent_trailers.is_empty()).then(|| ex.sent_trailers.clone())
    }

    /// The line is the tunnel's to write, if `tunnel` is set (a 101).
    pub fn logged_by(mut self, tunnel: Option<TunnelLog>) -> Self {
        self.tunnel = tunnel;
        self
    }

    fn finish(&mut self) {
        let Some(exchange) = self.exchange.take() else {
            return;
        };
        // The body goes first: an upstream body left unread marks the
        // end of its response as it is dropped ($upstream_response_time).
        self.inner = empty();
        let Some(log) = &self.log else {
            return;
        };
        let exchange = match &self.tunnel {
            Some(tunnel) => match tunnel.hand_over((exchange, log.clone())) {
                Some((exchange, _)) => exchange,
                None => return,
            },
            None => exchange,
        };
        log.write(&*exchange);
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.inner_ended {
            this.finish();
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.inner_ended = true;
            if !this.trailers.is_empty() {
                if let Some(trailers) = this.render_trailers() {
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
            }
        }
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(ex)) = (frame.data_ref(), this.exchange.as_mut()) {
                    ex.body_bytes_sent += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let (Some(f), Some(ex)) = (this.on_error.take(), this.exchange.as_ref()) {
                    f(ex, e);
                }
                this.finish();
            }
            Poll::Ready(None) => this.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner_ended || (self.trailers.is_empty() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        // A body that ends with trailers goes out chunked: it has no
        // Content-Length, as nginx clears it then.
        if self.trailers.is_empty() {
            self.inner.size_hint()
        } else {
            SizeHint::default()
        }
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Channel(tokio::sync::mpsc::Receiver<Bytes>);

    impl Body for Channel {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn each_wait_gets_the_whole_timeout() {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let mut body = TimedBody::new(Channel(rx), Duration::from_millis(150));
        tokio::spawn(async move {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = tx.send(Bytes::from_static(b"x")).await;
            }
            // Then silence, longer than the timeout.
            tokio::time::sleep(Duration::from_secs(2)).await;
        });
        // 4 x 50 ms is longer than the timeout; no single wait is.
        for _ in 0..4 {
            let frame = body.frame().await;
            assert!(matches!(frame, Some(Ok(_))));
        }
        let timed_out = body.frame().await;
        assert!(matches!(timed_out, Some(Err(e)) if e.is::<ReadTimeout>()));
    }
}
