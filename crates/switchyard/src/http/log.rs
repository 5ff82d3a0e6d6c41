//! The access-log destinations of one location, opened when the
//! configuration loads.

use std::io::Write;
use std::sync::Arc;

use crate::config::model::{AccessLogTarget, LogPath};
use crate::observe::access_log::{self, LogFile};
use crate::observe::log_format::LogFormat;

enum Sink {
    Stderr,
    File(Arc<LogFile>),
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
                LogPath::Stderr => Sink::Stderr,
                LogPath::File(path) => Sink::File(access_log::open(path).map_err(|e| {
                    format!(
                        "open() \"{}\" failed ({})",
                        path.display(),
                        crate::observe::error_log::os_error(&e)
                    )
                })?),
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
            }
        }
    }
}
