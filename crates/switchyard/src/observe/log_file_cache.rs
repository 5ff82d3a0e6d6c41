//! `open_log_file_cache`: the files a log path with variables opened,
//! kept open between lines as nginx's open file cache keeps them.
//!
//! Every name used gets an entry (up to `max`; a new one pushes out the
//! least recently used). Its file stays open once the name was used
//! `min_uses` times, and is closed when unused for `inactive`. After
//! `valid` a kept file is checked against its name: when the name now
//! names another file (or none) it is reopened. Until then lines go to the
//! file that was opened, even if it was moved: nginx's behaviour, which
//! log rotation has to wait out.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::time::Instant;

use super::access_log::open_append;
use crate::config::model::LogFileCache;

struct Entry {
    name: String,
    file: Option<File>,
    uses: u64,
    /// When the file was opened or last found to be its name's.
    checked: Instant,
    accessed: Instant,
}

/// The cache of one level's `open_log_file_cache`.
pub struct FileCache {
    settings: LogFileCache,
    /// Most recently used first.
    entries: Vec<Entry>,
}

impl FileCache {
    /// An empty cache.
    pub fn new(settings: LogFileCache) -> FileCache {
        FileCache {
            settings,
            entries: Vec::new(),
        }
    }

    /// Appends `bytes` to the file `name` names, through the cache.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let now = Instant::now();
        self.expire(now);
        let index = match self.entries.iter().position(|e| e.name == name) {
            Some(i) => {
                let entry = &mut self.entries[i];
                entry.uses += 1;
                let stale = now.duration_since(entry.checked) >= self.settings.valid;
                if entry.file.is_none() || (stale && !still_named(entry)) {
                    entry.file = None;
                    match open_append(name) {
                        Ok(file) => entry.file = Some(file),
                        Err(e) => {
                            self.entries.remove(i);
                            return Err(e);
                        }
                    }
                    entry.checked = now;
                } else if stale {
                    entry.checked = now;
                }
                i
            }
            None => {
                let file = open_append(name)?;
                if self.entries.len() >= self.settings.max {
                    self.entries.pop();
                }
                self.entries.push(Entry {
                    name: name.to_string(),
                    file: Some(file),
                    uses: 1,
                    checked: now,
                    accessed: now,
                });
                self.entries.len() - 1
            }
        };
        let mut entry = self.entries.remove(index);
        let written = match entry.file.as_mut() {
            Some(file) => file.write_all(bytes),
            None => Ok(()),
        };
        entry.accessed = now;
        if entry.uses < self.settings.min_uses {
            entry.file = None;
        }
        self.entries.insert(0, entry);
        written
    }

    /// Drops entries unused for `inactive`, as nginx does on each lookup.
    fn expire(&mut self, now: Instant) {
        let inactive = self.settings.inactive;
        self.entries
            .retain(|e| now.duration_since(e.accessed) < inactive);
    }
}

/// Whether the name still names the file that is open.
fn still_named(entry: &Entry) -> bool {
    let (Some(file), Ok(named)) = (&entry.file, std::fs::metadata(&entry.name)) else {
        return false;
    };
    file.metadata()
        .map(|open| open.dev() == named.dev() && open.ino() == named.ino())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("switchyard-lfc-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn cache(max: usize, min_uses: u64) -> FileCache {
        FileCache::new(LogFileCache {
            max,
            inactive: Duration::from_secs(20),
            min_uses,
            valid: Duration::from_secs(60),
        })
    }

    #[test]
    fn a_kept_file_takes_lines_after_its_directory_moved() {
        let base = dir("moved");
        let logs = base.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let name = logs.join("a.log").to_string_lossy().into_owned();
        let mut cache = cache(3, 1);
        cache.write(&name, b"1\n").unwrap();
        std::fs::rename(&logs, base.join("moved")).unwrap();
        cache.write(&name, b"2\n").unwrap();
        let text = std::fs::read_to_string(base.join("moved/a.log")).unwrap();
        assert_eq!(text, "1\n2\n");
    }

    #[test]
    fn below_min_uses_and_pushed_out_files_are_reopened() {
        let base = dir("reopen");
        let logs = base.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let name = |n: &str| logs.join(n).to_string_lossy().into_owned();
        let mut cache = cache(2, 2);
        cache.write(&name("once"), b"x\n").unwrap();
        cache.write(&name("kept"), b"x\n").unwrap();
        cache.write(&name("kept"), b"x\n").unwrap();
        // A third name pushes out the least recently used ("once").
        cache.write(&name("third"), b"x\n").unwrap();
        cache.write(&name("third"), b"x\n").unwrap();
        std::fs::rename(&logs, base.join("moved")).unwrap();
        // Not kept open, so opened again, in a directory that is gone.
        assert!(cache.write(&name("once"), b"y\n").is_err());
        // A failed open adds no entry: "kept" and "third" are still open.
        cache.write(&name("kept"), b"y\n").unwrap();
        cache.write(&name("third"), b"y\n").unwrap();
        let moved = base.join("moved");
        assert_eq!(
            std::fs::read_to_string(moved.join("kept")).unwrap(),
            "x\nx\ny\n"
        );
        assert_eq!(
            std::fs::read_to_string(moved.join("third")).unwrap(),
            "x\nx\ny\n"
        );
    }
}
