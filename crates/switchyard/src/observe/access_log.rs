//! Access-log files: one open handle per path, shared by every location
//! and every configuration generation that names it, reopened on SIGUSR1.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// An open log file.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl LogFile {
    /// Appends one line (a newline is added).
    pub fn write_line(&self, line: &str) {
        let mut buffer = String::with_capacity(line.len() + 1);
        buffer.push_str(line);
        buffer.push('\n');
        if let Ok(mut guard) = self.file.lock() {
            if let Some(file) = guard.as_mut() {
                let _ = file.write_all(buffer.as_bytes());
            }
        }
    }

    fn reopen(&self) {
        if let Ok(file) = open_append(&self.path) {
            if let Ok(mut guard) = self.file.lock() {
                *guard = Some(file);
            }
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<LogFile>>> {
    static FILES: OnceLock<Mutex<HashMap<PathBuf, Arc<LogFile>>>> = OnceLock::new();
    FILES.get_or_init(|| Mutex::new(HashMap::new()))
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
        file: Mutex::new(Some(file)),
    });
    files.insert(path.to_path_buf(), log.clone());
    Ok(log)
}

/// Reopens every access log (SIGUSR1).
pub fn reopen_all() {
    if let Ok(files) = registry().lock() {
        for file in files.values() {
            file.reopen();
        }
    }
}
