//! The error log, in nginx's line format:
//! `2020/12/27 17:31:50 [error] 1234#5: *7 connect() failed ... , client: ...`.
//!
//! One global sink, swapped on reload and reopened on SIGUSR1. Before the
//! configuration has been read, messages go to standard error in the
//! `switchyard: [emerg] ...` form nginx uses for its own early messages.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;

use super::time::Civil;
use super::ErrorLevel;
use crate::config::model::{ErrorLogTarget, LogPath};

struct Target {
    level: ErrorLevel,
    sink: Sink,
}

enum Sink {
    Stderr,
    File { path: PathBuf, file: Mutex<File> },
}

struct Logger {
    targets: Vec<Target>,
}

fn logger() -> &'static ArcSwap<Logger> {
    static LOGGER: OnceLock<ArcSwap<Logger>> = OnceLock::new();
    LOGGER.get_or_init(|| {
        ArcSwap::from_pointee(Logger {
            targets: vec![Target {
                level: ErrorLevel::Error,
                sink: Sink::Stderr,
            }],
        })
    })
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Points the error log at `targets`. A file that cannot be opened is
/// reported (as nginx reports it) and replaced by standard error.
pub fn configure(targets: &[ErrorLogTarget]) -> Result<(), String> {
    let mut opened = Vec::new();
    let mut problem = None;
    for target in targets {
        let sink = match &target.path {
            LogPath::Stderr => Sink::Stderr,
            LogPath::File(path) => match open_append(path) {
                Ok(file) => Sink::File {
                    path: path.clone(),
                    file: Mutex::new(file),
                },
                Err(e) => {
                    problem = Some(format!(
                        "open() \"{}\" failed ({})",
                        path.display(),
                        crate::observe::error_log::os_error(&e)
                    ));
                    Sink::Stderr
                }
            },
        };
        opened.push(Target {
            level: target.level,
            sink,
        });
    }
    if opened.is_empty() {
        opened.push(Target {
            level: ErrorLevel::Error,
            sink: Sink::Stderr,
        });
    }
    logger().store(Arc::new(Logger { targets: opened }));
    match problem {
        Some(p) => Err(p),
        None => Ok(()),
    }
}

/// Reopens every log file (SIGUSR1, for logrotate).
pub fn reopen() {
    let current = logger().load_full();
    for target in &current.targets {
        if let Sink::File { path, file } = &target.sink {
            if let Ok(new_file) = open_append(path) {
                if let Ok(mut guard) = file.lock() {
                    *guard = new_file;
                }
            }
        }
    }
}

/// nginx's rendering of an OS error: `111: Connection refused`.
pub fn os_error(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => {
            let text = error.to_string();
            // std appends " (os error N)"; nginx prints "N: text".
            let text = text.split(" (os error").next().unwrap_or(&text).to_string();
            format!("{code}: {text}")
        }
        None => error.to_string(),
    }
}

/// Writes one line at `level`; `connection` is nginx's `*N` connection number.
pub fn log(level: ErrorLevel, connection: Option<u64>, message: &str) {
    let current = logger().load();
    let wanted = current.targets.iter().any(|t| level <= t.level);
    if !wanted {
        return;
    }
    let pid = std::process::id();
    let conn = connection.map(|c| format!("*{c} ")).unwrap_or_default();
    let line = format!(
        "{} [{}] {}#{}: {}{}\n",
        Civil::now().error_log(),
        level.name(),
        pid,
        thread_number(),
        conn,
        message
    );
    for target in current.targets.iter().filter(|t| level <= t.level) {
        match &target.sink {
            Sink::Stderr => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
            Sink::File { file, .. } => {
                if let Ok(mut f) = file.lock() {
                    let _ = f.write_all(line.as_bytes());
                }
            }
        }
    }
}

fn thread_number() -> u64 {
    // The kernel's thread id, as nginx prints its worker's tid.
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u64 }
}

/// Prints nginx's early-startup form to standard error: `switchyard: [emerg] msg`.
pub fn stderr_line(level: ErrorLevel, message: &str) {
    eprintln!("switchyard: [{}] {}", level.name(), message);
}

/// Convenience: an `[error]` line.
pub fn error(connection: Option<u64>, message: &str) {
    log(ErrorLevel::Error, connection, message);
}

/// Convenience: a `[warn]` line.
pub fn warn(message: &str) {
    log(ErrorLevel::Warn, None, message);
}

/// Convenience: a `[notice]` line.
pub fn notice(message: &str) {
    log(ErrorLevel::Notice, None, message);
}
