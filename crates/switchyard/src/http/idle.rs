//! nginx's two waits between requests on a client connection: the first
//! request's head must arrive within `client_header_timeout`; after a
//! response, the connection may sit idle for `keepalive_timeout`, and once a
//! new head starts arriving, it must be complete within
//! `client_header_timeout`. hyper has one timer for all three, so switchyard
//! keeps its own: the connection counts bytes read and requests in flight,
//! and a watchdog closes it (gracefully: an idle connection closes at once)
//! when the wait in force runs out.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the watchdog needs to know about one connection.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    /// Bytes read from the client so far.
    bytes_read: AtomicU64,
    /// Requests whose response is not finished.
    in_flight: AtomicU32,
    /// Requests served so far.
    served: AtomicU64,
    /// When the connection last became idle (ms since `start`).
    idle_since_ms: AtomicU64,
    /// `bytes_read` at that moment.
    idle_bytes: AtomicU64,
    /// When the first byte of the next head arrived (ms since `start`).
    head_started_ms: AtomicU64,
}

impl Activity {
    /// A new connection's record.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            bytes_read: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            served: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            idle_bytes: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// A request's head has arrived.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    /// A response has been sent (or abandoned).
    pub fn response_done(&self) {
        self.served.fetch_add(1, Ordering::SeqCst);
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle_bytes
                .store(self.bytes_read.load(Ordering::SeqCst), Ordering::SeqCst);
            self.idle_since_ms.store(self.now_ms(), Ordering::SeqCst);
        }
    }

    /// How long until the wait in force runs out; `None`: it has run out.
    /// `header` is `client_header_timeout`, `keepalive` is `keepalive_timeout`.
    fn remaining(&self, header: Duration, keepalive: Duration) -> Option<Duration> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return Some(header.min(keepalive).max(Duration::from_millis(100)));
        }
        let now = self.now_ms();
        let idle_since = self.idle_since_ms.load(Ordering::SeqCst);
        let new_bytes =
            self.bytes_read.load(Ordering::SeqCst) > self.idle_bytes.load(Ordering::SeqCst);
        let first = self.served.load(Ordering::SeqCst) == 0;
        let (since, limit) = if first {
            // The first head: client_header_timeout from the connection's start.
            (idle_since, header)
        } else if new_bytes {
            // A head is arriving on a kept-alive connection: from its first byte.
            (self.head_started_ms.load(Ordering::SeqCst), header)
        } else {
            (idle_since, keepalive)
        };
        let elapsed = Duration::from_millis(now.saturating_sub(since));
        limit.checked_sub(elapsed).filter(|d| !d.is_zero())
    }
}

/// Runs until the connection's wait runs out (then returns).
pub async fn watchdog(activity: Arc<Activity>, header: Duration, keepalive: Duration) {
    loop {
        match activity.remaining(header, keepalive) {
            // Look again within one header timeout at the latest, so that a
            // head that starts during a long keep-alive wait is timed.
            Some(wait) => {
                tokio::time::sleep(wait.min(header.max(Duration::from_millis(100)))).await
            }
            None => return,
        }
    }
}

/// Which of the two futures of [`first`] finished.
pub enum First<A, B> {
    /// The main one.
    Main(A),
    /// The side one.
    Side(B),
}

/// Runs `main` and `side` until one finishes, like a two-branch
/// `select!`, but polls `side` only when its own waker fired (or the task's
/// waker changed). The connection wakes its task many times per request;
/// the reload watch and the idle timer beside it rarely have anything to
/// say, and polling them each time costs a lock and a timer check.
pub fn first<M, S>(main: M, side: S) -> FirstOf<M, S>
where
    M: std::future::Future + Unpin,
    S: std::future::Future + Unpin,
{
    FirstOf {
        main,
        side,
        wake: Arc::new(SideWake {
            // Set: the first poll polls `side` to register its waker.
            woken: AtomicBool::new(true),
            task: std::sync::Mutex::new(None),
        }),
        task: None,
    }
}

/// The future of [`first`].
pub struct FirstOf<M, S> {
    main: M,
    side: S,
    wake: Arc<SideWake>,
    /// The task waker `side` last saw.
    task: Option<std::task::Waker>,
}

struct SideWake {
    woken: AtomicBool,
    task: std::sync::Mutex<Option<std::task::Waker>>,
}

impl std::task::Wake for SideWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = match self.task.lock() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if let Some(task) = task {
            task.wake();
        }
    }
}

impl<M, S> std::future::Future for FirstOf<M, S>
where
    M: std::future::Future + Unpin,
    S: std::future::Future + Unpin,
{
    type Output = First<M::Output, S::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let moved = !this.task.as_ref().is_some_and(|t| t.will_wake(cx.waker()));
        if this.wake.woken.swap(false, Ordering::Acquire) || moved {
            if moved {
                this.task = Some(cx.waker().clone());
                let mut slot = match this.wake.task.lock() {
                    Ok(t) => t,
                    Err(poisoned) => poisoned.into_inner(),
                };
                *slot = Some(cx.waker().clone());
            }
            let waker = std::task::Waker::from(this.wake.clone());
            if let Poll::Ready(out) =
                Pin::new(&mut this.side).poll(&mut Context::from_waker(&waker))
            {
                return Poll::Ready(First::Side(out));
            }
        }
        Pin::new(&mut this.main).poll(cx).map(First::Main)
    }
}

/// The client socket, counting what it reads.
pub struct Counted<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Counted<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Counted { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            let a = &self.activity;
            let before = a.bytes_read.fetch_add(read as u64, Ordering::SeqCst);
            if a.in_flight.load(Ordering::SeqCst) == 0
                && before == a.idle_bytes.load(Ordering::SeqCst)
            {
                a.head_started_ms.store(a.now_ms(), Ordering::SeqCst);
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A response body that tells the connection when it is done.
pub struct Finished<B> {
    inner: B,
    activity: Option<Arc<Activity>>,
}

impl<B> Finished<B> {
    /// Wraps `inner`; the request counts as in flight until it is dropped.
    pub fn new(inner: B, activity: Arc<Activity>) -> Self {
        Finished {
            inner,
            activity: Some(activity),
        }
    }
}

impl<B> Drop for Finished<B> {
    fn drop(&mut self) {
        if let Some(a) = self.activity.take() {
            a.response_done();
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Finished<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_hears_the_side_only_when_it_wakes() {
        let (tx, mut rx) = tokio::sync::watch::channel(0u8);
        let side = std::pin::pin!(async move { rx.changed().await.is_ok() });
        let main = std::pin::pin!(tokio::time::sleep(Duration::from_secs(5)));
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = tx.send(1);
            tx
        });
        assert!(matches!(first(main, side).await, First::Side(true)));
        let _ = sender.await;

        let side = std::pin::pin!(std::future::pending::<()>());
        let main = std::pin::pin!(tokio::time::sleep(Duration::from_millis(10)));
        assert!(matches!(first(main, side).await, First::Main(())));
    }

    #[test]
    fn waits_follow_nginx() {
        let a = Activity::new();
        let header = Duration::from_secs(2);
        let keepalive = Duration::from_secs(5);
        // First request: the header timeout from the start.
        assert!(a.remaining(header, keepalive).unwrap() <= header);
        a.request_started();
        a.response_done();
        // Idle after a response: the keep-alive timeout.
        let idle = a.remaining(header, keepalive).unwrap();
        assert!(idle > header && idle <= keepalive, "{idle:?}");
        // A new head arriving: the header timeout again.
        a.head_started_ms.store(a.now_ms(), Ordering::SeqCst);
        a.bytes_read.fetch_add(10, Ordering::SeqCst);
        assert!(a.remaining(header, keepalive).unwrap() <= header);
    }
}
