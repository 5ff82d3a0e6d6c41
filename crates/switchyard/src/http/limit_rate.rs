//! `limit_rate` / `limit_rate_after` on a response body, as nginx's write
//! filter paces a response: at most `rate * (seconds since the request
//! began + 1) - (sent - after)` bytes may go now, and after each write the
//! connection waits `written * 1000 / rate` ms. The body also keeps the
//! request's `limit_conn` counts until it ends.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::body::{BoxError, ResponseBody};
use super::limit_conn::Held;

/// How a response is paced.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Bytes per second (0: not paced).
    pub rate: u64,
    /// Bytes sent before pacing starts.
    pub after: u64,
    /// When the request began (nginx's `r->start_sec`).
    pub start: Instant,
    /// Bytes of the response head, counted as sent as nginx's `c->sent`.
    pub head: u64,
}

/// A response body paced by [`Pace`] and holding `limit_conn` counts.
pub struct Limited {
    inner: ResponseBody,
    pace: Option<Pace>,
    sent: u64,
    /// Bytes of a frame not yet sent.
    pending: Option<Bytes>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    _held: Vec<Held>,
}

impl Limited {
    /// Wraps `inner`.
    pub fn new(inner: ResponseBody, pace: Option<Pace>, held: Vec<Held>) -> Limited {
        let sent = pace.map_or(0, |p| p.head);
        Limited {
            inner,
            pace: pace.filter(|p| p.rate > 0),
            sent,
            pending: None,
            sleep: None,
            _held: held,
        }
    }

    /// How many bytes may go now; `Err` is how long to wait first.
    fn allowance(&self, pace: &Pace) -> Result<u64, Duration> {
        let seconds = pace.start.elapsed().as_secs();
        let budget = i128::from(pace.rate) * i128::from(seconds + 1);
        let counted = i128::from(self.sent) - i128::from(pace.after);
        let limit = budget - counted;
        if limit <= 0 {
            let ms = (-limit) * 1000 / i128::from(pace.rate) + 1;
            return Err(Duration::from_millis(ms as u64));
        }
        Ok(limit as u64)
    }
}

impl Body for Limited {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Some(pace) = this.pace else {
            return Pin::new(&mut this.inner).poll_frame(cx);
        };
        loop {
            if this.pending.is_none() && this.inner.is_end_stream() {
                // The last bytes are out: nothing is left to pace.
                return Poll::Ready(None);
            }
            if let Some(sleep) = this.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
            }
            let mut data = match this.pending.take() {
                Some(data) => data,
                None => match Pin::new(&mut this.inner).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) if data.is_empty() => continue,
                        Ok(data) => data,
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    },
                    other => return other,
                },
            };
            let limit = match this.allowance(&pace) {
                Ok(limit) => limit,
                Err(wait) => {
                    this.pending = Some(data);
                    this.sleep = Some(Box::pin(tokio::time::sleep(wait)));
                    continue;
                }
            };
            let n = data.len().min(usize::try_from(limit).unwrap_or(usize::MAX));
            if n < data.len() {
                this.pending = Some(data.split_off(n));
            }
            // The bytes under limit_rate_after are not waited for.
            let before = this.sent.saturating_sub(pace.after);
            this.sent += n as u64;
            let after = this.sent.saturating_sub(pace.after);
            let ms = (after - before).saturating_mul(1000) / pace.rate;
            if ms > 0 {
                this.sleep = Some(Box::pin(tokio::time::sleep(Duration::from_millis(ms))));
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        if let Some(p) = &self.pending {
            let n = p.len() as u64;
            hint.set_lower(hint.lower() + n);
            if let Some(upper) = hint.upper() {
                hint.set_upper(upper + n);
            }
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn paces_after_the_free_part() {
        let start = Instant::now();
        let body = super::super::body::full(vec![b'x'; 12000]);
        let pace = Pace {
            rate: 4000,
            after: 4000,
            start,
            head: 0,
        };
        let mut limited = Limited::new(body, Some(pace), Vec::new());
        let mut got = Vec::new();
        while let Some(frame) = limited.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            got.push((data.len(), start.elapsed().as_millis()));
        }
        let total: usize = got.iter().map(|(n, _)| n).sum();
        assert_eq!(total, 12000);
        // The 4000 free bytes and the first second's 4000 go at once, the
        // rest at 4000 bytes a second.
        assert_eq!(got[0].0, 8000, "{got:?}");
        assert!(got[0].1 < 100, "{got:?}");
        assert!(start.elapsed() >= Duration::from_millis(1000), "{got:?}");
        assert!(start.elapsed() < Duration::from_millis(2500), "{got:?}");
    }
}
