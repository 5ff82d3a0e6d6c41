//! The access-log destinations of one location, opened when the
//! configuration loads.

use std::io::Write;
use std::sync::Arc;

use crate::config::model::{AccessLogPath, AccessLogTarget, LogPath};
use crate::observe::access_log::{self, LogFile};
use crate::observe::log_file_cache::FileCache;
use crate::observe::log_format::LogFormat;
use crate::observe::ErrorLevel;

enum Sink {
    Stderr,
    File(Arc<LogFile>),
    /// A path with variables: the file is opened for each line.
    Evaluated {
        path: crate::vars::Template,
        test_root: bool,
        cache: Option<std::sync::Mutex<FileCache>>,
    },
}

/// Where one location's access-log lines go (possibly nowhere).
pub struct AccessLog {
    targets: Vec<(Sink, Arc<LogFormat>, Option<crate::vars::Template>)>,
    sent_headers: bool,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessLog({} targets)", self.targets.len())
    }
}

impl AccessLog {
    /// Opens the files of `targets`; the error is nginx's `open()` message.
    pub fn open(targets: &[AccessLogTarget]) -> Result<AccessLog, String> {
        let mut opened = Vec::new();
        for t in targets {
            let sink = match &t.path {
                AccessLogPath::Evaluated {
                    path,
                    test_root,
                    cache,
                } => Sink::Evaluated {
                    path: path.clone(),
                    test_root: *test_root,
                    cache: cache.map(|c| std::sync::Mutex::new(FileCache::new(c))),
                },
                AccessLogPath::Fixed(LogPath::Stderr) => Sink::Stderr,
                AccessLogPath::Fixed(LogPath::File(path)) => {
                    Sink::File(access_log::open(path).map_err(|e| {
                        format!(
                            "open() \"{}\" failed ({})",
                            path.display(),
                            crate::observe::error_log::os_error(&e)
                        )
                    })?)
                }
            };
            opened.push((sink, t.format.clone(), t.condition.clone()));
        }
        let sent_headers = opened.iter().any(|(_, f, _)| f.reads_sent_headers());
        Ok(AccessLog {
            targets: opened,
            sent_headers,
        })
    }

    /// Whether a line reads the response headers (`$sent_http_*`).
    pub fn reads_sent_headers(&self) -> bool {
        self.sent_headers
    }

    /// Writes the line of a request (or a stream session) to every target.
    pub fn write(&self, source: &dyn crate::vars::VarSource) {
        for (sink, format, condition) in &self.targets {
            if let Some(condition) = condition {
                let value = condition.render(source);
                if value.is_empty() || value == "0" {
                    continue;
                }
            }
            let line = format.render(source);
            match sink {
                Sink::Stderr => {
                    let _ = writeln!(std::io::stderr(), "{line}");
                }
                Sink::File(file) => file.write_line(&line),
                Sink::Evaluated {
                    path,
                    test_root,
                    cache,
                } => write_evaluated(source, path, *test_root, cache.as_ref(), &line),
            }
        }
    }
}

/// Writes a line to a log whose path has variables: the file is opened
/// (created) for the line and closed after it. In http nothing is written
/// unless the request's root directory exists, as nginx tests it before
/// it evaluates the path.
fn write_evaluated(
    source: &dyn crate::vars::VarSource,
    path: &crate::vars::Template,
    test_root: bool,
    cache: Option<&std::sync::Mutex<FileCache>>,
    line: &str,
) {
    if test_root {
        let root = source
            .var(&crate::vars::Var::DocumentRoot)
            .map(|r| r.into_owned())
            .unwrap_or_default();
        let failed = match std::fs::metadata(&root) {
            Ok(meta) if meta.is_dir() => None,
            Ok(_) => Some("20: Not a directory".to_string()),
            Err(e) => Some(crate::observe::error_log::os_error(&e)),
        };
        if let Some(why) = failed {
            crate::observe::error_log::log(
                ErrorLevel::Error,
                None,
                &format!("testing \"{root}\" existence failed ({why})"),
            );
            return;
        }
    }
    let name = path.render(source);
    let text = access_log::line_bytes(line);
    let written = match cache {
        Some(cache) => match cache.lock() {
            Ok(mut cache) => cache.write(&name, &text),
            Err(_) => Ok(()),
        },
        None => access_log::open_append(&name).and_then(|mut file| file.write_all(&text)),
    };
    if let Err(e) = written {
        crate::observe::error_log::log(
            ErrorLevel::Crit,
            None,
            &format!(
                "open() \"{name}\" failed ({})",
                crate::observe::error_log::os_error(&e)
            ),
        );
    }
}
