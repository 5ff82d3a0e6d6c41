//! The one HTTP/1 connection driver for client connections: every request
//! of every HTTP/1.0 and 1.1 client is read, answered and kept alive here,
//! on the `h1` codec (crates/h1). An idle kept-alive connection holds no
//! buffer at all (nginx's 0.5 KB per idle connection).

pub mod body;
pub mod case;
pub mod conn;
pub mod head;
pub mod intake;
pub mod park;
pub mod response;
pub mod upgrade;
pub mod writer;

pub use case::{write_header_line, HeaderCase};

/// Whether a comma-separated header value lists `token` (any case): the
/// `h1` codec's rule, one for both directions.
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    ::h1::has_token(value, token)
}
