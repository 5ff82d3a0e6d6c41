//! The error log, in nginx's line format:
//! `2020/12/27 17:31:50 [error] 1234#5: *7 connect() failed ... , client: ...`.
//!
//! One global sink, swapped on reload and reopened on SIGUSR1. Before the
//! configuration has been read, messages go to standard error in the
//! `switchyard: [emerg] ...` form nginx uses for its own early messages.
//!
//! An `error_log` of an http, server or location level is a [`ContextLog`]:
//! once a request has chosen its server and location, the lines of its
//! connection go there, as nginx switches a connection's log
//! (ngx_http_set_virtual_server, ngx_http_update_location_config). The
//! choice lives in a task-local cell that the connection's tasks carry.

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

/// The `error_log` lines of one http, server or location level, opened
/// when its configuration is loaded.
pub struct ContextLog {
    targets: Vec<Target>,
}

impl std::fmt::Debug for ContextLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextLog")
            .field("targets", &self.targets.len())
            .finish()
    }
}

impl ContextLog {
    /// Opens `targets` (nginx's `open() "..." failed` when one cannot be).
    pub fn open(targets: &[ErrorLogTarget]) -> Result<Arc<ContextLog>, String> {
        let mut opened = Vec::new();
        for target in targets {
            let sink = match &target.path {
                LogPath::Stderr => Sink::Stderr,
                LogPath::File(path) => Sink::File {
                    path: path.clone(),
                    file: Mutex::new(open_append(path).map_err(|e| {
                        format!("open() \"{}\" failed ({})", path.display(), os_error(&e))
                    })?),
                },
            };
            opened.push(Target {
                level: target.level,
                sink,
            });
        }
        let log = Arc::new(ContextLog { targets: opened });
        let mut all = match context_logs().lock() {
            Ok(a) => a,
            Err(poisoned) => poisoned.into_inner(),
        };
        all.retain(|weak| weak.strong_count() > 0);
        all.push(Arc::downgrade(&log));
        Ok(log)
    }
}

/// Every context log alive, for SIGUSR1.
fn context_logs() -> &'static Mutex<Vec<std::sync::Weak<ContextLog>>> {
    static ALL: OnceLock<Mutex<Vec<std::sync::Weak<ContextLog>>>> = OnceLock::new();
    ALL.get_or_init(Default::default)
}

tokio::task_local! {
    /// The context log of the request a task serves, if its level has one.
    static CURRENT: std::cell::RefCell<Option<Arc<ContextLog>>>;
}

/// Runs `task` with a context-log cell of its own, starting with `log`
/// (a connection's task starts with none; a task spawned for a request
/// carries the request's, see [`current`]).
pub async fn scoped<F: std::future::Future>(log: Option<Arc<ContextLog>>, task: F) -> F::Output {
    CURRENT.scope(std::cell::RefCell::new(log), task).await
}

/// The context log in force in this task.
pub fn current() -> Option<Arc<ContextLog>> {
    CURRENT
        .try_with(|cell| cell.borrow().clone())
        .ok()
        .flatten()
}

/// Sends this task's lines to `log` from now on (`None`: the main log).
pub fn use_context(log: Option<&Arc<ContextLog>>) {
    let _ = CURRENT.try_with(|cell| {
        let mut slot = cell.borrow_mut();
        let same = match (&*slot, log) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            *slot = log.cloned();
        }
    });
}

/// Reopens every log file (SIGUSR1, for logrotate).
pub fn reopen() {
    let contexts: Vec<Arc<ContextLog>> = match context_logs().lock() {
        Ok(all) => all.iter().filter_map(|w| w.upgrade()).collect(),
        Err(poisoned) => poisoned
            .into_inner()
            .iter()
            .filter_map(|w| w.upgrade())
            .collect(),
    };
    for context in &contexts {
        reopen_targets(&context.targets);
    }
    let current = logger().load_full();
    reopen_targets(&current.targets);
}

fn reopen_targets(targets: &[Target]) {
    for target in targets {
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
    match current() {
        Some(context) => write_to(&context.targets, level, connection, message),
        None => write_to(&logger().load().targets, level, connection, message),
    }
}

fn write_to(targets: &[Target], level: ErrorLevel, connection: Option<u64>, message: &str) {
    let wanted = targets.iter().any(|t| level <= t.level);
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
    for target in targets.iter().filter(|t| level <= t.level) {
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
