//! Access-log files: one open handle per path, shared by every location
//! and every configuration generation that names it, reopened on SIGUSR1.
//!
//! A file may buffer its lines (`access_log ... buffer= flush= gzip`), as
//! nginx buffers them per open file: the buffer is written out when the
//! next line would overflow it, `flush=` after its first line, before the
//! file is reopened, and when the process exits. With `gzip` every write
//! is one whole gzip member, so the file is a concatenation `zcat` reads.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::config::model::LogBuffering;

/// An open log file.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    state: Mutex<FileState>,
}

#[derive(Debug)]
struct FileState {
    file: Option<File>,
    buffer: Option<Buffer>,
}

#[derive(Debug)]
struct Buffer {
    settings: LogBuffering,
    lines: Vec<u8>,
    /// When the lines in the buffer must be written (`flush=`), set by the
    /// first line into an empty buffer.
    due: Option<Instant>,
}

impl LogFile {
    /// Appends one line (a newline is added).
    pub fn write_line(&self, line: &str) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let state = &mut *state;
        let Some(buffer) = state.buffer.as_mut() else {
            write_out(&mut state.file, &line_bytes(line), None);
            return;
        };
        let len = line.len() + 1;
        if len > buffer.settings.size - buffer.lines.len() {
            write_out(&mut state.file, &buffer.lines, buffer.settings.gzip);
            buffer.lines.clear();
            buffer.due = None;
        }
        if len > buffer.settings.size {
            // Longer than the whole buffer: written by itself, as nginx does.
            write_out(&mut state.file, &line_bytes(line), buffer.settings.gzip);
            return;
        }
        if buffer.lines.is_empty() {
            if let Some(after) = buffer.settings.flush {
                buffer.due = Some(Instant::now() + after);
                flusher().wake();
            }
        }
        buffer.lines.extend_from_slice(line.as_bytes());
        buffer.lines.push(b'\n');
    }

    /// Writes out what the buffer holds.
    fn flush(&self) {
        if let Ok(mut state) = self.state.lock() {
            flush_buffer(&mut state);
        }
    }

    /// Sets how the file buffers, writing out what an old buffer held.
    fn set_buffering(&self, settings: Option<LogBuffering>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.buffer.as_ref().map(|b| b.settings) == settings {
            return;
        }
        flush_buffer(&mut state);
        state.buffer = settings.map(|settings| Buffer {
            settings,
            lines: Vec::with_capacity(settings.size),
            due: None,
        });
    }

    fn reopen(&self) {
        if let Ok(file) = open_append(&self.path) {
            if let Ok(mut state) = self.state.lock() {
                flush_buffer(&mut state);
                state.file = Some(file);
            }
        }
    }

    /// When the buffer must be written next, if it has a deadline.
    fn due(&self) -> Option<Instant> {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.buffer.as_ref().and_then(|b| b.due))
    }
}

fn flush_buffer(state: &mut MutexGuard<'_, FileState>) {
    let state = &mut **state;
    if let Some(buffer) = state.buffer.as_mut() {
        if !buffer.lines.is_empty() {
            write_out(&mut state.file, &buffer.lines, buffer.settings.gzip);
            buffer.lines.clear();
        }
        buffer.due = None;
    }
}

/// Writes `bytes` to the file, as one gzip member at `gzip`'s level when
/// set. A failed write loses the lines, as nginx's does (it cannot log
/// its own log's failure anywhere better than the error log, which it
/// rate-limits; switchyard leaves that to the error log's own checks).
fn write_out(file: &mut Option<File>, bytes: &[u8], gzip: Option<u32>) {
    let Some(file) = file.as_mut() else {
        return;
    };
    match gzip {
        None => {
            let _ = file.write_all(bytes);
        }
        Some(level) => {
            let mut encoder = GzEncoder::new(
                Vec::with_capacity(bytes.len() / 4 + 64),
                Compression::new(level),
            );
            if encoder.write_all(bytes).is_ok() {
                if let Ok(member) = encoder.finish() {
                    let _ = file.write_all(&member);
                }
            }
        }
    }
}

/// Opens (creating) a log file for appending, as nginx opens its logs.
pub(crate) fn open_append(path: impl AsRef<Path>) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// A log line's bytes with its line end.
pub(crate) fn line_bytes(line: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    bytes
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<LogFile>>> {
    static FILES: OnceLock<Mutex<HashMap<PathBuf, Arc<LogFile>>>> = OnceLock::new();
    FILES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Every open log file, outside the registry's lock.
fn all_files() -> Vec<Arc<LogFile>> {
    registry()
        .lock()
        .map(|files| files.values().cloned().collect())
        .unwrap_or_default()
}

/// Opens (or shares the already open) log file at `path`.
pub fn open(path: &Path) -> std::io::Result<Arc<LogFile>> {
    let mut files = registry()
        .lock()
        .map_err(|_| std::io::Error::other("log registry poisoned"))?;
    if let Some(existing) = files.get(path) {
        return Ok(existing.clone());
    }
    let file = open_append(path)?;
    let log = Arc::new(LogFile {
        path: path.to_path_buf(),
        state: Mutex::new(FileState {
            file: Some(file),
            buffer: None,
        }),
    });
    files.insert(path.to_path_buf(), log.clone());
    Ok(log)
}

/// Opens every file a configuration names (nginx creates them all, even
/// one that every level below overrides) and makes each buffer as it says;
/// an open file it does not name writes each line at once. The error is
/// nginx's `open()` message.
pub fn configure(files: &[(PathBuf, Option<LogBuffering>)]) -> Result<(), String> {
    for (path, _) in files {
        open(path).map_err(|e| {
            format!(
                "open() \"{}\" failed ({})",
                path.display(),
                crate::observe::error_log::os_error(&e)
            )
        })?;
    }
    for file in all_files() {
        let settings = files
            .iter()
            .find(|(path, _)| *path == file.path)
            .and_then(|(_, b)| *b);
        file.set_buffering(settings);
    }
    Ok(())
}

/// Reopens every access log (SIGUSR1), writing out their buffers first.
pub fn reopen_all() {
    for file in all_files() {
        file.reopen();
    }
}

/// Writes out every buffer: at exit, so that no line is lost.
pub fn flush_all() {
    for file in all_files() {
        file.flush();
    }
}

/// The thread that writes out buffers whose `flush=` time has come. One for
/// the process, started with the first line that sets a deadline; it sleeps
/// until the nearest deadline, or until a new one is set.
struct Flusher {
    woken: Mutex<bool>,
    wake: Condvar,
}

impl Flusher {
    fn wake(&self) {
        if let Ok(mut woken) = self.woken.lock() {
            *woken = true;
            self.wake.notify_one();
        }
    }

    fn run(&self) {
        loop {
            let now = Instant::now();
            let mut nearest: Option<Instant> = None;
            for file in all_files() {
                match file.due() {
                    Some(due) if due <= now => file.flush(),
                    Some(due) => nearest = Some(nearest.map_or(due, |n| n.min(due))),
                    None => {}
                }
            }
            let Ok(mut woken) = self.woken.lock() else {
                return;
            };
            // An idle flusher still looks once a minute: cheap, and a lost
            // wake-up can then delay a line by a minute at most.
            let wait = nearest.map_or(Duration::from_secs(60), |n| {
                n.saturating_duration_since(now)
            });
            while !*woken {
                match self.wake.wait_timeout(woken, wait) {
                    Ok((guard, timeout)) => {
                        woken = guard;
                        if timeout.timed_out() {
                            break;
                        }
                    }
                    Err(_) => return,
                }
            }
            *woken = false;
        }
    }
}

fn flusher() -> &'static Flusher {
    static FLUSHER: OnceLock<&'static Flusher> = OnceLock::new();
    FLUSHER.get_or_init(|| {
        let flusher: &'static Flusher = Box::leak(Box::new(Flusher {
            woken: Mutex::new(false),
            wake: Condvar::new(),
        }));
        let spawned = std::thread::Builder::new()
            .name("access-log-flush".into())
            .spawn(move || flusher.run());
        if spawned.is_err() {
            crate::observe::error_log::log(
                crate::observe::ErrorLevel::Alert,
                None,
                "could not start the access log flush thread: buffered lines wait for the buffer to fill",
            );
        }
        flusher
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn temp_log(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("switchyard-log-{}-{name}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("access.log");
        let _ = std::fs::remove_file(&path);
        path
    }

    fn buffered(path: &Path, settings: LogBuffering) -> Arc<LogFile> {
        // Not `configure`: it sets every open file, other tests' too.
        let file = open(path).unwrap();
        file.set_buffering(Some(settings));
        file
    }

    #[test]
    fn lines_wait_in_the_buffer_until_it_would_overflow() {
        let path = temp_log("overflow");
        let settings = LogBuffering {
            size: 10,
            flush: None,
            gzip: None,
        };
        let file = buffered(&path, settings);
        file.write_line("abcd");
        file.write_line("efgh");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        file.write_line("ij");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "abcd\nefgh\n");
        // Longer than the buffer: out at once, after what was buffered.
        file.write_line("0123456789");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "abcd\nefgh\nij\n0123456789\n"
        );
        file.flush();
    }

    #[test]
    fn gzip_writes_whole_members_that_concatenate() {
        let path = temp_log("gzip");
        let settings = LogBuffering {
            size: 64 * 1024,
            flush: None,
            gzip: Some(1),
        };
        let file = buffered(&path, settings);
        file.write_line("one");
        file.flush();
        file.write_line("two");
        file.flush();
        let bytes = std::fs::read(&path).unwrap();
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "one\ntwo\n");
    }

    #[test]
    fn flush_time_writes_the_buffer_without_more_lines() {
        let path = temp_log("flush");
        let settings = LogBuffering {
            size: 64 * 1024,
            flush: Some(Duration::from_millis(100)),
            gzip: None,
        };
        let file = buffered(&path, settings);
        file.write_line("late");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&path).unwrap() != "late\n" {
            assert!(
                Instant::now() < deadline,
                "the flush thread never wrote the line"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
