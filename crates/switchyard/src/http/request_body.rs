//! A request body as nginx keeps it once a module (the proxy) has read it
//! whole: its bytes, whether nginx would hold them in memory buffers
//! (`$request_body` is found only then) and the file
//! `client_body_in_file_only` wrote them to (`$request_body_file`).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};

use crate::config::model::{BodyReading, InFileOnly, TempPath};
use crate::http::body::BoxError;
use crate::http::h1::body::RequestBody;

/// A body read whole (nginx's `r->request_body` after reading).
#[derive(Debug)]
pub struct HeldBody {
    /// The bytes: what goes up again after an internal redirect.
    bytes: Bytes,
    /// Whether nginx would have kept the body in memory buffers.
    in_memory: bool,
    /// The file `client_body_in_file_only` wrote it to.
    file: Option<BodyFile>,
}

impl HeldBody {
    /// A body of `bytes`, in memory or not as `in_memory` says, written to
    /// `file` if it was.
    pub fn new(bytes: Bytes, in_memory: bool, file: Option<BodyFile>) -> HeldBody {
        HeldBody {
            // A body in a file is not in memory buffers in nginx.
            in_memory: in_memory && file.is_none(),
            bytes,
            file,
        }
    }

    /// The body's bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// `$request_body`: the bytes if nginx would hold them in memory.
    pub fn in_memory(&self) -> Option<&[u8]> {
        self.in_memory.then_some(&self.bytes[..])
    }

    /// `$request_body_file`: the file the body was written to.
    pub fn file_name(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }
}

/// How a body came, for nginx's rule of what stays in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// HTTP/1 with a Content-Length.
    Length,
    /// HTTP/1 chunked.
    Chunked,
    /// An HTTP/2 stream.
    H2,
}

impl Framing {
    /// How `body` comes.
    pub fn of(body: &RequestBody) -> Framing {
        match body {
            RequestBody::H2(_) => Framing::H2,
            RequestBody::Fed(fed) if fed.is_chunked() => Framing::Chunked,
            RequestBody::Fed(_) | RequestBody::Empty => Framing::Length,
        }
    }
}

/// The largest body nginx keeps in memory buffers, as its readers size
/// them from `client_body_buffer_size`: with a Content-Length over HTTP/1
/// a body shorter than one and a quarter buffers gets a buffer of its own
/// size (ngx_http_read_client_request_body); a chunked or HTTP/2 body gets
/// one buffer, and what does not fit in it goes to a file. (The part that
/// came with the request head is in nginx's header buffer, not counted
/// here: nginx may keep a body a little larger than this in memory.)
pub fn memory_limit(framing: Framing, reading: &BodyReading) -> u64 {
    let size = reading.buffer_size;
    match framing {
        Framing::Length => (size + size / 4).saturating_sub(1),
        Framing::Chunked | Framing::H2 => size,
    }
}

/// A body's temporary file; a `clean` one is removed when the request is
/// over (this is dropped with the request's exchange).
#[derive(Debug)]
pub struct BodyFile {
    path: PathBuf,
    clean: bool,
}

impl BodyFile {
    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BodyFile {
    fn drop(&mut self) {
        if self.clean {
            // Blocking, and brief: nginx unlinks it in its pool cleanup too.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Why a body's file could not be written: nginx's words for the error log.
#[derive(Debug, thiserror::Error)]
#[error("{call} \"{path}\" failed ({os})")]
pub struct BodyFileError {
    call: &'static str,
    path: String,
    os: String,
}

/// nginx's temporary file counter (`ngx_temp_number`): names are its
/// values, ten digits wide.
static TEMP_NUMBER: AtomicU32 = AtomicU32::new(0);

/// Writes `bytes` to a new temporary file under `temp` as
/// `client_body_in_file_only` does (`on` keeps it, `clean` removes it when
/// the request is over), or as nginx spills a body larger than
/// `client_body_buffer_size` (`spill`: removed when the request is over);
/// `None` when neither applies.
pub async fn write_file(
    bytes: &Bytes,
    reading: &BodyReading,
    spill: bool,
) -> Result<Option<BodyFile>, BodyFileError> {
    let clean = match reading.in_file_only {
        InFileOnly::Off if spill => true,
        InFileOnly::Off => return Ok(None),
        InFileOnly::On => false,
        InFileOnly::Clean => true,
    };
    let bytes = bytes.clone();
    let temp = reading.temp_path.clone();
    let written = tokio::task::spawn_blocking(move || create_temp_file(&temp, &bytes)).await;
    match written {
        Ok(Ok(path)) => Ok(Some(BodyFile { path, clean })),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(BodyFileError {
            call: "write()",
            path: reading.temp_path.dir.display().to_string(),
            os: e.to_string(),
        }),
    }
}

/// The path of temporary file number `n` under `temp`: its levels are the
/// name's last digits, as nginx's `ngx_create_hashed_filename` makes them
/// (`/spool 1 2` puts 0000000123 in `/spool/3/12/`).
fn temp_file_path(temp: &TempPath, n: u32) -> PathBuf {
    let name = format!("{n:010}");
    let mut path = temp.dir.clone();
    let mut end = name.len();
    for &level in &temp.levels {
        let start = end.saturating_sub(level);
        path.push(&name[start..end]);
        end = start;
    }
    path.push(&name);
    path
}

fn create_temp_file(temp: &TempPath, bytes: &[u8]) -> Result<PathBuf, BodyFileError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |call: &'static str, path: &Path, e: std::io::Error| BodyFileError {
        call,
        path: path.display().to_string(),
        os: crate::observe::error_log::os_error(&e),
    };
    let mut created_dirs = false;
    let mut n = TEMP_NUMBER.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
    loop {
        let path = temp_file_path(temp, n);
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path);
        let mut file = match opened {
            Ok(f) => f,
            // A name left by an earlier run: the next number.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                n = TEMP_NUMBER.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
                continue;
            }
            // nginx makes the directory at start and the levels on demand.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !created_dirs => {
                created_dirs = true;
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| failed("mkdir()", parent, e))?;
                }
                continue;
            }
            Err(e) => return Err(failed("open()", &path, e)),
        };
        file.write_all(bytes)
            .map_err(|e| failed("write()", &path, e))?;
        return Ok(path);
    }
}

/// The body's next frame if it is there now, `None` if it is not: what
/// nginx's read of a body finds already arrived. A body that is not ready
/// gets one more turn: the task wakes itself once, so that its connection
/// (which feeds the body between two polls of the handler) can hand over
/// what it has already read.
pub fn next_if_ready(body: &mut RequestBody) -> NextIfReady<'_> {
    NextIfReady {
        body,
        yielded: false,
    }
}

/// See [`next_if_ready`].
pub struct NextIfReady<'a> {
    body: &'a mut RequestBody,
    yielded: bool,
}

impl Future for NextIfReady<'_> {
    type Output = Option<Option<Result<Frame<Bytes>, BoxError>>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match Pin::new(&mut *this.body).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(Some(frame)),
            Poll::Pending if !this.yielded => {
                this.yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Pending => Poll::Ready(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_files_are_hashed_by_their_last_digits() {
        let temp = TempPath {
            dir: PathBuf::from("/spool"),
            levels: vec![1, 2],
        };
        assert_eq!(
            temp_file_path(&temp, 123),
            PathBuf::from("/spool/3/12/0000000123")
        );
        let flat = TempPath {
            dir: PathBuf::from("/t"),
            levels: Vec::new(),
        };
        assert_eq!(temp_file_path(&flat, 7), PathBuf::from("/t/0000000007"));
    }

    #[test]
    fn memory_follows_the_buffer_size() {
        let reading = BodyReading {
            buffer_size: 2048,
            in_file_only: InFileOnly::Off,
            temp_path: TempPath {
                dir: PathBuf::new(),
                levels: Vec::new(),
            },
            proxy_request_buffering: true,
        };
        assert_eq!(memory_limit(Framing::Length, &reading), 2559);
        assert_eq!(memory_limit(Framing::Chunked, &reading), 2048);
        let held = HeldBody::new(Bytes::from_static(b"abc"), true, None);
        assert_eq!(held.in_memory(), Some(&b"abc"[..]));
        assert!(HeldBody::new(Bytes::new(), false, None)
            .in_memory()
            .is_none());
    }
}
