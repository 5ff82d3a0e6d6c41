//! What switchyard tells people: the error log, the access log, and the
//! clock formats both use.

pub mod access_log;
pub mod error_log;
pub mod log_file_cache;
pub mod log_format;
pub mod metrics;
pub mod time;

/// nginx's error-log levels, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorLevel {
    /// `emerg`.
    Emerg,
    /// `alert`.
    Alert,
    /// `crit`.
    Crit,
    /// `error` (the default threshold).
    Error,
    /// `warn`.
    Warn,
    /// `notice`.
    Notice,
    /// `info`.
    Info,
    /// `debug`.
    Debug,
}

impl ErrorLevel {
    /// Parses a level name as written in `error_log`.
    pub fn from_name(name: &str) -> Option<ErrorLevel> {
        Some(match name {
            "emerg" => ErrorLevel::Emerg,
            "alert" => ErrorLevel::Alert,
            "crit" => ErrorLevel::Crit,
            "error" => ErrorLevel::Error,
            "warn" => ErrorLevel::Warn,
            "notice" => ErrorLevel::Notice,
            "info" => ErrorLevel::Info,
            "debug" => ErrorLevel::Debug,
            _ => return None,
        })
    }

    /// The level's name as nginx prints it.
    pub fn name(self) -> &'static str {
        match self {
            ErrorLevel::Emerg => "emerg",
            ErrorLevel::Alert => "alert",
            ErrorLevel::Crit => "crit",
            ErrorLevel::Error => "error",
            ErrorLevel::Warn => "warn",
            ErrorLevel::Notice => "notice",
            ErrorLevel::Info => "info",
            ErrorLevel::Debug => "debug",
        }
    }
}
