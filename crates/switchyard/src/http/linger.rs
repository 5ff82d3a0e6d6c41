//! nginx's lingering close (ngx_http_set_lingering_close and
//! ngx_http_lingering_close_handler): a connection that closes while the
//! client may still be sending shuts its write side, then reads and drops
//! what arrives until the client closes, a read waits longer than
//! `lingering_timeout`, or `lingering_time` has passed. A close with
//! unread bytes would send a reset, and a reset can destroy the response
//! still in flight to the client.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::config::model::{Lingering, LingeringClose};

/// nginx's `NGX_HTTP_LINGERING_BUFFER_SIZE`: what one lingering read takes.
const SINK_SIZE: usize = 4096;

/// Whether a connection closing under `lingering` lingers, as
/// ngx_http_finalize_connection decides it: `always` on every close, `on`
/// when `may_send` says the client may still be sending (asked only
/// then, since finding out may take a read), `off` never.
pub fn wanted(lingering: Lingering, may_send: impl FnOnce() -> bool) -> bool {
    match lingering.close {
        LingeringClose::Off => false,
        LingeringClose::Always => true,
        LingeringClose::On => may_send(),
    }
}

/// When a lingering (or a discarding) that starts now must end: nginx
/// keeps the deadline in whole seconds (`ngx_time() + lingering_time /
/// 1000`), so a fraction of a second counts for nothing.
pub fn deadline(lingering: Lingering) -> Instant {
    Instant::now() + Duration::from_secs(lingering.time.as_secs())
}

/// How long the next read may wait: `lingering_timeout`, cut short by
/// the deadline. `None` once the deadline has passed, when nginx closes.
pub fn next_wait(lingering: Lingering, deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then(|| lingering.timeout.min(left))
}

/// Reads and drops what the client sends (its write side already shut)
/// until it closes, within `lingering`'s limits.
pub async fn drain<S: AsyncRead + Unpin>(stream: &mut S, lingering: Lingering) {
    let deadline = deadline(lingering);
    let mut sink = [0u8; SINK_SIZE];
    // The first wait is a whole `lingering_timeout`, as nginx arms it
    // before it looks at the deadline.
    let mut wait = lingering.timeout;
    loop {
        match tokio::time::timeout(wait, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => {}
            // Closed, failed, or silent for too long.
            _ => return,
        }
        match next_wait(lingering, deadline) {
            Some(next) => wait = next,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(close: LingeringClose) -> Lingering {
        Lingering {
            close,
            ..Lingering::default()
        }
    }

    #[test]
    fn the_modes_decide_as_nginx() {
        assert!(!wanted(with(LingeringClose::Off), || true));
        assert!(wanted(with(LingeringClose::Always), || false));
        assert!(!wanted(with(LingeringClose::On), || false));
        assert!(wanted(with(LingeringClose::On), || true));
    }

    #[test]
    fn the_deadline_is_in_whole_seconds() {
        let short = Lingering {
            time: Duration::from_millis(900),
            ..Lingering::default()
        };
        assert!(next_wait(short, deadline(short)).is_none());
        let long = Lingering {
            time: Duration::from_millis(2500),
            timeout: Duration::from_secs(5),
            ..Lingering::default()
        };
        let wait = next_wait(long, deadline(long)).unwrap_or_default();
        assert!(wait <= Duration::from_secs(2) && wait > Duration::from_millis(1500));
    }
}
