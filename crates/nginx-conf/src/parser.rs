//! Tokens -> directives, with `include` expanded.

use std::path::Path;

use crate::{Config, Error, Source};

/// Parses the main configuration file at `path`, expanding `include`s
/// relative to the file's folder (nginx's conf prefix).
pub fn parse_file(path: &Path) -> Result<Config, Error> {
    let _ = path;
    todo!()
}

/// Parses text from `source` (used for `-g` directives, and in tests).
/// `include` inside it resolves relative to `include_base`.
pub fn parse_str(text: &str, source: Source, include_base: &Path) -> Result<Config, Error> {
    let _ = (text, source, include_base);
    todo!()
}
