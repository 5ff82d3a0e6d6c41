//! One direction of a plain TCP session moved by the kernel: splice(2)
//! from the source socket into a pipe and from the pipe into the
//! destination, so the bytes never enter user space. nginx's stream proxy
//! reads them into its buffer and writes them out again; the bytes on the
//! wire, their order and the half-close are the same either way, and a
//! direction never holds more than `proxy_buffer_size` bytes in flight
//! (the pipe is drained before the next read), as nginx's buffer bounds it.
//!
//! Used only where nothing needs to see the bytes: both sides plain TCP
//! and no rate limit on the direction.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::copy::{Counters, Direction, PumpEnd};

/// A pipe, closed on drop: where one direction's bytes wait between the
/// two splices.
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

thread_local! {
    /// Empty pipes of finished sessions, for the next ones: making a pipe
    /// and closing it cost more than a short session's whole copy.
    static SPARE: std::cell::RefCell<Vec<Pipe>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How many spare pipes a worker thread keeps (two descriptors each).
const SPARE_PIPES: usize = 64;

impl Pipe {
    /// A spare empty pipe of this thread, or a new one.
    pub(crate) fn take() -> io::Result<Pipe> {
        match SPARE.with(|spare| spare.borrow_mut().pop()) {
            Some(pipe) => Ok(pipe),
            None => Pipe::new(),
        }
    }

    /// Gives an empty pipe back for a later session.
    fn give_back(self) {
        SPARE.with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < SPARE_PIPES {
                spare.push(self);
            }
        });
    }

    /// A non-blocking pipe (it fails when descriptors run out; the session
    /// then copies through a buffer).
    fn new() -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded: both descriptors are open and ours alone.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Pipe { read, write })
    }
}

/// A pipe in use by one direction: given back to the thread's spares when
/// the direction ends or is dropped (its session over) with the pipe
/// empty, closed when bytes are still in it.
struct InUse {
    pipe: Option<Pipe>,
    holding: usize,
}

impl Drop for InUse {
    fn drop(&mut self) {
        if let Some(pipe) = self.pipe.take() {
            if self.holding == 0 {
                pipe.give_back();
            }
        }
    }
}

/// splice(2) without blocking: the bytes moved, or the error (WouldBlock
/// when the source is empty or the destination full).
fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: plain descriptors and null offsets (sockets and pipes have
    // none); the kernel checks the descriptors.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Moves `src`'s bytes to `dst` through `pipe` until `src` ends, as
/// `copy::pump` does (same counters, same half-close), with at most `size`
/// bytes in flight.
pub(crate) async fn pump(
    src: &TcpStream,
    dst: &TcpStream,
    pipe: Pipe,
    size: usize,
    direction: Direction,
    counters: &Counters,
    half_close: bool,
) -> PumpEnd {
    let (read_count, write_count) = counters.of(direction);
    let size = size.max(1);
    let (pipe_in, pipe_out) = (pipe.write.as_raw_fd(), pipe.read.as_raw_fd());
    let mut in_use = InUse {
        pipe: Some(pipe),
        holding: 0,
    };
    loop {
        let n = match src
            .async_io(Interest::READABLE, || {
                splice(src.as_raw_fd(), pipe_in, size)
            })
            .await
        {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return PumpEnd::ReadError(e),
        };
        in_use.holding = n;
        if direction == Direction::Downstream {
            counters.note_first_byte();
        }
        read_count.fetch_add(n as u64, Ordering::Relaxed);
        counters.touch();
        while in_use.holding > 0 {
            let left = in_use.holding;
            match dst
                .async_io(Interest::WRITABLE, || {
                    splice(pipe_out, dst.as_raw_fd(), left)
                })
                .await
            {
                Ok(0) => return PumpEnd::WriteError(io::ErrorKind::WriteZero.into()),
                Ok(m) => {
                    in_use.holding -= m;
                    write_count.fetch_add(m as u64, Ordering::Relaxed);
                    counters.touch();
                }
                Err(e) => return PumpEnd::WriteError(e),
            }
        }
    }
    drop(in_use);
    if half_close {
        // The peer's read side sees the end; our reading of it goes on.
        let _ = socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write);
    }
    PumpEnd::Eof
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A connected pair of loopback sockets.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn moves_every_byte_in_order_and_passes_the_end_on() {
        // writer -> [a_in | a_out] -> splice -> [b_in | b_out] -> reader
        let (mut writer, a_out) = pair().await;
        let (b_in, mut reader) = pair().await;
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let sent = data.clone();
        let feeding = tokio::spawn(async move {
            writer.write_all(&sent).await.unwrap();
            writer.shutdown().await.unwrap();
            writer
        });
        let counters = Counters::new();
        let pipe = Pipe::take().unwrap();
        let moving = pump(
            &a_out,
            &b_in,
            pipe,
            16 * 1024,
            Direction::Downstream,
            &counters,
            true,
        );
        let mut got = Vec::new();
        let (end, read) = tokio::join!(moving, reader.read_to_end(&mut got));
        assert!(matches!(end, PumpEnd::Eof), "{end:?}");
        // The half-close reached the reader: read_to_end returned.
        assert_eq!(read.unwrap(), data.len());
        assert!(got == data, "bytes differ");
        assert_eq!(
            counters.from_upstream.load(Ordering::Relaxed),
            data.len() as u64
        );
        assert_eq!(
            counters.to_client.load(Ordering::Relaxed),
            data.len() as u64
        );
        assert!(counters.first_byte().is_some());
        drop(feeding.await.unwrap());
    }
}
