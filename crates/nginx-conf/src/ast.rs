//! The syntax tree: directives with their arguments, blocks and positions.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Where text came from: a file, or the `-g` command line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A configuration file (the main one or an included one).
    File(Arc<PathBuf>),
    /// Directives given with `-g`; nginx names this "command line".
    CommandLine,
}

/// A place in the configuration, printed the way nginx prints it in errors:
/// `/etc/nginx/nginx.conf:12`, or `command line`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    /// The file (or the command line) the directive was read from.
    pub source: Source,
    /// 1-based line number; nginx reports the line on which the directive's
    /// terminating `;` or `{` was read, and so do we.
    pub line: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::File(path) => write!(f, "{}:{}", path.display(), self.line),
            Source::CommandLine => f.write_str("command line"),
        }
    }
}

/// One argument of a directive, after quote removal and escape processing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// The argument's text with quotes removed and `\"`, `\'`, `\\`, `\t`,
    /// `\r`, `\n` translated (other `\x` pairs are kept as written, as nginx
    /// keeps them).
    pub value: String,
    /// Whether it was written in single or double quotes. nginx treats a
    /// quoted argument differently in a few places (`if` conditions, empty
    /// strings), so the distinction is kept.
    pub quoted: bool,
}

impl Arg {
    /// The argument's text.
    pub fn as_str(&self) -> &str {
        &self.value
    }
}

/// One directive: `name arg1 arg2;` or `name arg1 { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The directive's name (its first token).
    pub name: String,
    /// Its arguments, in order.
    pub args: Vec<Arg>,
    /// The directives inside its `{ }` block, if it has one.
    pub block: Option<Vec<Directive>>,
    /// Where nginx would report an error about it.
    pub position: Position,
}

/// A whole configuration: the top-level directives with every `include`
/// expanded in place, and the files read, in the order they were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The top-level ("main" context) directives.
    pub directives: Vec<Directive>,
    /// Every file read, for `-T`.
    pub files: Vec<SourceFile>,
}

/// One file that was read while parsing, with its text as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The path as nginx prints it in `-T` (`# configuration file PATH:`).
    pub path: PathBuf,
    /// The file's contents (invalid UTF-8 replaced).
    pub text: String,
}

impl Config {
    /// The `-T` dump: each file read, as nginx prints it:
    /// `# configuration file PATH:` then the contents, then an empty line.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for file in &self.files {
            out.push_str("# configuration file ");
            out.push_str(&file.path.display().to_string());
            out.push_str(":\n");
            out.push_str(&file.text);
            out.push('\n');
        }
        out
    }
}
