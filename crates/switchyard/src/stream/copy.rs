//! The copy phase of a session: bytes both ways through one bounded
//! buffer per direction (`proxy_buffer_size`), half-close as nginx does
//! it, and the `proxy_timeout` idle timer, reset by progress either way.
//! Between two plain TCP sockets without rate limits the kernel moves the
//! bytes (`super::splice`), with the same bound and the same ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::splice::{self, Pipe};
use crate::upstream::io::UpstreamIo;

/// Byte counts and activity of one session, updated as bytes move (so a
/// session cut by a timeout still reports what it copied).
#[derive(Debug)]
pub(crate) struct Counters {
    /// From the client.
    pub from_client: AtomicU64,
    /// To the client.
    pub to_client: AtomicU64,
    /// From the upstream.
    pub from_upstream: AtomicU64,
    /// To the upstream.
    pub to_upstream: AtomicU64,
    /// Milliseconds after `epoch` of the first byte from the upstream
    /// (`u64::MAX`: none yet).
    pub first_byte_ms: AtomicU64,
    /// Milliseconds after `epoch` of the last progress either way.
    last_activity_ms: AtomicU64,
    epoch: Instant,
}

impl Counters {
    /// Counters for a copy starting now.
    pub fn new() -> Counters {
        Counters {
            from_client: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
            from_upstream: AtomicU64::new(0),
            to_upstream: AtomicU64::new(0),
            first_byte_ms: AtomicU64::new(u64::MAX),
            last_activity_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A direction's counters: the bytes read from its source and those
    /// written to its destination.
    pub(crate) fn of(&self, direction: Direction) -> (&AtomicU64, &AtomicU64) {
        match direction {
            Direction::Upstream => (&self.from_client, &self.to_upstream),
            Direction::Downstream => (&self.from_upstream, &self.to_client),
        }
    }

    /// Notes the first byte from the upstream, once.
    pub(crate) fn note_first_byte(&self) {
        let _ = self.first_byte_ms.compare_exchange(
            u64::MAX,
            self.now_ms(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    pub(crate) fn touch(&self) {
        self.last_activity_ms
            .store(self.now_ms(), Ordering::Relaxed);
    }

    /// Time from the start of the copy to the upstream's first byte.
    pub fn first_byte(&self) -> Option<Duration> {
        match self.first_byte_ms.load(Ordering::Relaxed) {
            u64::MAX => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Resolves once nothing moved either way for `timeout`.
    async fn idle(&self, timeout: Duration) {
        loop {
            let last = Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed));
            let since = self.epoch.elapsed().saturating_sub(last);
            if since >= timeout {
                return;
            }
            tokio::time::sleep(timeout - since).await;
        }
    }
}

/// Which way bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Client to upstream.
    Upstream,
    /// Upstream to client.
    Downstream,
}

/// How one direction ended.
#[derive(Debug)]
pub(crate) enum PumpEnd {
    /// The source closed and everything read was written.
    Eof,
    /// Reading the source failed (nginx treats it as the end of that side).
    ReadError(std::io::Error),
    /// Writing to the destination failed.
    WriteError(std::io::Error),
}

/// How the whole copy ended.
#[derive(Debug)]
pub(crate) enum CopyEnd {
    /// A side closed (the one named, last with half-close).
    Closed(Direction, PumpEnd),
    /// `proxy_timeout` passed with nothing moving.
    TimedOut,
}

/// How bytes are moved: the buffer size, the rates, half-close.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Each direction's buffer (`proxy_buffer_size`).
    pub size: usize,
    /// `proxy_upload_rate` in bytes per second (0: no limit).
    pub upload_rate: u64,
    /// `proxy_download_rate` in bytes per second (0: no limit).
    pub download_rate: u64,
    /// `proxy_half_close`.
    pub half_close: bool,
}

/// Waits out a rate delay without it counting as idle time (nginx does
/// not run proxy_timeout while a side is delayed).
async fn delay(counters: &Counters, ms: u64) {
    counters.touch();
    tokio::time::sleep(Duration::from_millis(ms)).await;
    counters.touch();
}

/// Copies `src` into `dst` through a buffer of `size` bytes, at most
/// `rate` bytes a second as nginx limits it (`rate * (seconds + 1) -
/// received` may be read now; each read then waits `n * 1000 / rate` ms);
/// with `half_close` the end of `src` is passed on as a shutdown of
/// `dst`'s write side.
async fn pump<R, W>(
    mut src: R,
    mut dst: W,
    size: usize,
    rate: u64,
    direction: Direction,
    counters: &Counters,
    half_close: bool,
) -> PumpEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (read_count, write_count) = counters.of(direction);
    let mut buf = vec![0u8; size.max(1)];
    loop {
        let mut room = buf.len();
        if rate > 0 {
            let received = read_count.load(Ordering::Relaxed);
            let allowed = rate.saturating_mul(counters.epoch.elapsed().as_secs() + 1);
            if allowed <= received {
                delay(counters, (received - allowed) * 1000 / rate + 1).await;
                continue;
            }
            room = room.min(usize::try_from(allowed - received).unwrap_or(usize::MAX));
        }
        let n = match src.read(&mut buf[..room]).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return PumpEnd::ReadError(e),
        };
        if direction == Direction::Downstream {
            counters.note_first_byte();
        }
        read_count.fetch_add(n as u64, Ordering::Relaxed);
        counters.touch();
        let mut written = 0;
        while written < n {
            match dst.write(&buf[written..n]).await {
                Ok(0) => return PumpEnd::WriteError(std::io::ErrorKind::WriteZero.into()),
                Ok(m) => {
                    written += m;
                    write_count.fetch_add(m as u64, Ordering::Relaxed);
                    counters.touch();
                }
                Err(e) => return PumpEnd::WriteError(e),
            }
        }
        // TLS may hold records back until flushed (a no-op for a socket).
        if let Err(e) = dst.flush().await {
            return PumpEnd::WriteError(e);
        }
        if let Some(ms) = (n as u64 * 1000).checked_div(rate) {
            if ms > 0 {
                delay(counters, ms).await;
            }
        }
    }
    if half_close {
        // The peer's read side sees the end; our reading of it goes on.
        let _ = dst.shutdown().await;
    }
    PumpEnd::Eof
}

/// Copies between `client` and `upstream` until the session ends: without
/// half-close at the first side that closes (nginx's default), with it
/// once both have; or when nothing moved for `timeout`.
pub(crate) async fn copy(
    client: &mut TcpStream,
    upstream: &mut UpstreamIo,
    shape: Shape,
    timeout: Duration,
    counters: &Counters,
) -> CopyEnd {
    if let UpstreamIo::Plain(u) = upstream {
        if shape.upload_rate == 0 && shape.download_rate == 0 {
            if let (Ok(up_pipe), Ok(down_pipe)) = (Pipe::take(), Pipe::take()) {
                let (client, u) = (&*client, &*u);
                let (size, half_close) = (shape.size, shape.half_close);
                let up = splice::pump(
                    client,
                    u,
                    up_pipe,
                    size,
                    Direction::Upstream,
                    counters,
                    half_close,
                );
                let down = splice::pump(
                    u,
                    client,
                    down_pipe,
                    size,
                    Direction::Downstream,
                    counters,
                    half_close,
                );
                return join_directions(up, down, half_close, timeout, counters).await;
            }
        }
    }
    let (cr, cw) = client.split();
    match upstream {
        UpstreamIo::Plain(u) => {
            let (ur, uw) = u.split();
            copy_halves(cr, cw, ur, uw, shape, timeout, counters).await
        }
        UpstreamIo::Unix(u) => {
            let (ur, uw) = u.split();
            copy_halves(cr, cw, ur, uw, shape, timeout, counters).await
        }
        UpstreamIo::Tls(u) => {
            let (ur, uw) = tokio::io::split(u.as_mut());
            copy_halves(cr, cw, ur, uw, shape, timeout, counters).await
        }
    }
}

/// [`copy`] for a client that is not a bare socket (TLS): its halves share
/// the stream through a lock, which a plain socket does not need.
pub(crate) async fn copy_stream<C>(
    client: &mut C,
    upstream: &mut UpstreamIo,
    shape: Shape,
    timeout: Duration,
    counters: &Counters,
) -> CopyEnd
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let (cr, cw) = tokio::io::split(client);
    match upstream {
        UpstreamIo::Plain(u) => {
            let (ur, uw) = u.split();
            copy_halves(cr, cw, ur, uw, shape, timeout, counters).await
        }
        UpstreamIo::Unix(u) => {
            let (ur, uw) = u.split();
            copy_halves(cr, cw, ur, uw, shape, timeout, counters).await
        }
        UpstreamIo::Tls(u) => {
            let (ur, uw) = tokio::io::split(u.as_mut());
            copy_halves(cr, cw, ur, uw, shape, timeout, counters).await
        }
    }
}

async fn copy_halves<CR, CW, UR, UW>(
    cr: CR,
    cw: CW,
    ur: UR,
    uw: UW,
    shape: Shape,
    timeout: Duration,
    counters: &Counters,
) -> CopyEnd
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    UR: AsyncRead + Unpin,
    UW: AsyncWrite + Unpin,
{
    let half_close = shape.half_close;
    counters.touch();
    let up = pump(
        cr,
        uw,
        shape.size,
        shape.upload_rate,
        Direction::Upstream,
        counters,
        half_close,
    );
    let down = pump(
        ur,
        cw,
        shape.size,
        shape.download_rate,
        Direction::Downstream,
        counters,
        half_close,
    );
    join_directions(up, down, half_close, timeout, counters).await
}

/// Runs both directions until the session ends: without half-close at the
/// first side that closes (nginx's default), with it once both have; or
/// when nothing moved for `timeout`.
async fn join_directions(
    up: impl std::future::Future<Output = PumpEnd>,
    down: impl std::future::Future<Output = PumpEnd>,
    half_close: bool,
    timeout: Duration,
    counters: &Counters,
) -> CopyEnd {
    tokio::pin!(up, down);
    let idle = counters.idle(timeout);
    tokio::pin!(idle);
    let mut up_done: Option<PumpEnd> = None;
    let mut down_done: Option<PumpEnd> = None;
    loop {
        tokio::select! {
            end = &mut up, if up_done.is_none() => {
                if !half_close || !matches!(end, PumpEnd::Eof) || down_done.is_some() {
                    return CopyEnd::Closed(Direction::Upstream, end);
                }
                up_done = Some(end);
            }
            end = &mut down, if down_done.is_none() => {
                if !half_close || !matches!(end, PumpEnd::Eof) || up_done.is_some() {
                    return CopyEnd::Closed(Direction::Downstream, end);
                }
                down_done = Some(end);
            }
            _ = &mut idle => return CopyEnd::TimedOut,
        }
    }
}
