//! The nginx configuration language, as nginx's own `ngx_conf_file.c` reads it.
//!
//! This crate turns text into a syntax tree of [`Directive`]s and knows nothing
//! of what any directive means (that is the job of the binary's `config`
//! module). It expands `include` (with globs, relative to the main file's
//! folder, as nginx does), remembers every file it read for a `-T` dump, and
//! reports every syntax error with nginx's wording and `file:line`.

#![warn(missing_docs)]

mod ast;
mod error;
mod lexer;
mod parser;

pub use ast::{Arg, Config, Directive, Position, Source, SourceFile};
pub use error::Error;
pub use parser::{parse_bytes, parse_file, parse_str, MAX_BLOCK_DEPTH, MAX_INCLUDE_DEPTH};
