//! Errors, worded as nginx words them.

use crate::ast::Position;

/// A configuration error. `Display` gives nginx's text without the
/// `nginx: [emerg] ` prefix, e.g. `unexpected "}" in /etc/nginx/nginx.conf:12`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A syntax error at a position (`unexpected "}"`, `unexpected end of
    /// file, expecting ";" or "}"`, ...).
    #[error("{message} in {position}")]
    Syntax {
        /// nginx's message.
        message: String,
        /// Where it happened.
        position: Position,
    },
    /// A file could not be read: `open() "/x.conf" failed (2: No such file
    /// or directory)`, with the including position when there is one.
    #[error("{}", io_message(.message, .position))]
    Io {
        /// nginx's message, e.g. `open() "/x.conf" failed (2: No such file or directory)`.
        message: String,
        /// The `include` that named the file, if any.
        position: Option<Position>,
    },
}

fn io_message(message: &str, position: &Option<Position>) -> String {
    match position {
        Some(p) => format!("{message} in {p}"),
        None => message.to_string(),
    }
}
