//! Tokens -> directives, with `include` expanded.
//!
//! The structure follows `ngx_conf_parse`: a file (or the `-g` text) is read
//! statement by statement; a statement ended by `{` starts a nested block that
//! runs to its `}`; `include` reads other files in place. Every file must be
//! balanced on its own, as in nginx: a `}` in an included file cannot close a
//! block opened by the file that included it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::lexer::{Lexer, Mode, Token, Word};
use crate::{Arg, Config, Directive, Error, Position, Source, SourceFile};

/// How deeply blocks may nest (counting blocks in included files too) before
/// parsing is refused, so that hostile input cannot exhaust the stack.
pub const MAX_BLOCK_DEPTH: usize = 100;

/// How deeply `include`s may nest before parsing is refused.
pub const MAX_INCLUDE_DEPTH: usize = 50;

/// Parses the main configuration file at `path`, expanding `include`s
/// relative to the file's folder (nginx's conf prefix).
///
/// The path is used as given in messages and in [`Config::files`]; pass an
/// absolute path to get nginx's absolute file names.
pub fn parse_file(path: &Path) -> Result<Config, Error> {
    let prefix = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut parser = Parser::new(Some(prefix));
    let directives = parser.read_file(path, None)?;
    Ok(parser.finish(directives))
}

/// Parses text from `source` (used for `-g` directives, and in tests).
/// `include` inside it resolves relative to `include_base`.
///
/// When `source` is a file, the text is recorded in [`Config::files`] under
/// that path, as if it had been read from it.
pub fn parse_str(text: &str, source: Source, include_base: &Path) -> Result<Config, Error> {
    let mut parser = Parser::new(Some(include_base.to_path_buf()));
    let directives = parser.parse_root(text.as_bytes(), source)?;
    Ok(parser.finish(directives))
}

/// Parses raw bytes (invalid UTF-8 is replaced) without touching the file
/// system: `include` directives are checked for syntax but left in the tree
/// unexpanded. Meant for fuzzing and for callers that must not read files.
pub fn parse_bytes(data: &[u8], source: Source) -> Result<Config, Error> {
    let mut parser = Parser::new(None);
    let directives = parser.parse_root(data, source)?;
    Ok(parser.finish(directives))
}

/// Which `ngx_conf_parse` call a run of statements belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// The top of a file.
    File,
    /// Inside `{ ... }`.
    Block,
    /// The top of the `-g` text.
    Param,
}

/// State shared by the whole parse: files read, includes in progress.
struct Parser {
    /// Folder relative `include` paths resolve against; `None` turns include
    /// expansion off.
    conf_prefix: Option<PathBuf>,
    /// Files read, in order, each once.
    files: Vec<SourceFile>,
    /// Paths already in `files`.
    recorded: HashSet<PathBuf>,
    /// Canonical paths of the files being read, outermost first.
    reading: Vec<PathBuf>,
    /// How many blocks are open.
    depth: usize,
}

fn syntax(message: impl Into<String>, position: Position) -> Error {
    Error::Syntax {
        message: message.into(),
        position,
    }
}

/// `errno: strerror` for an I/O error, as nginx prints it after a message.
fn errno_text(err: &io::Error) -> String {
    let text = err.to_string();
    match err.raw_os_error() {
        Some(code) => {
            let suffix = format!(" (os error {code})");
            let detail = text.strip_suffix(&suffix).unwrap_or(&text);
            format!("{code}: {detail}")
        }
        None => text,
    }
}

fn has_glob_chars(path: &Path) -> bool {
    path.to_string_lossy().contains(['*', '?', '['])
}

/// The files a glob pattern names, sorted. Like libc's `glob()`, `*` and `?`
/// do not match a leading dot, unreadable folders are skipped, and a pattern
/// that is not valid glob syntax is taken literally.
fn glob_paths(pattern: &str) -> Vec<PathBuf> {
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let paths = match glob::glob_with(pattern, options) {
        Ok(paths) => paths,
        Err(_) => match glob::glob_with(&glob::Pattern::escape(pattern), options) {
            Ok(paths) => paths,
            Err(_) => return Vec::new(),
        },
    };
    let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
    found.sort();
    found
}

impl Parser {
    fn new(conf_prefix: Option<PathBuf>) -> Self {
        Parser {
            conf_prefix,
            files: Vec::new(),
            recorded: HashSet::new(),
            reading: Vec::new(),
            depth: 0,
        }
    }

    fn finish(self, directives: Vec<Directive>) -> Config {
        Config {
            directives,
            files: self.files,
        }
    }

    fn record(&mut self, path: &Path, data: &[u8]) {
        if self.recorded.insert(path.to_path_buf()) {
            self.files.push(SourceFile {
                path: path.to_path_buf(),
                text: String::from_utf8_lossy(data).into_owned(),
            });
        }
    }

    /// Parses in-memory text as a main file (or as the `-g` text).
    fn parse_root(&mut self, data: &[u8], source: Source) -> Result<Vec<Directive>, Error> {
        if let Source::File(path) = &source {
            self.record(path, data);
            self.reading.push(canonical(path));
        }
        self.parse_source(data, source)
    }

    /// Reads and parses the file at `path`; `from` is the `include` that
    /// named it, if any.
    fn read_file(&mut self, path: &Path, from: Option<&Position>) -> Result<Vec<Directive>, Error> {
        let mut file = File::open(path).map_err(|err| Error::Io {
            message: format!(
                "open() \"{}\" failed ({})",
                path.display(),
                errno_text(&err)
            ),
            position: from.cloned(),
        })?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(|err| Error::Io {
            message: format!(
                "pread() \"{}\" failed ({})",
                path.display(),
                errno_text(&err)
            ),
            position: None,
        })?;

        let real = canonical(path);
        if let Some(position) = from {
            if self.reading.contains(&real) {
                return Err(syntax(
                    format!("recursive include of \"{}\"", path.display()),
                    position.clone(),
                ));
            }
            if self.reading.len() > MAX_INCLUDE_DEPTH {
                return Err(syntax(
                    format!("includes nested too deeply (more than {MAX_INCLUDE_DEPTH} levels)"),
                    position.clone(),
                ));
            }
        }

        self.record(path, &data);
        self.reading.push(real);
        let result = self.parse_source(&data, Source::File(Arc::new(path.to_path_buf())));
        self.reading.pop();
        result
    }

    fn parse_source(&mut self, data: &[u8], source: Source) -> Result<Vec<Directive>, Error> {
        let (mode, level) = match source {
            Source::File(_) => (Mode::File, Level::File),
            Source::CommandLine => (Mode::Param, Level::Param),
        };
        let mut lexer = Lexer::new(data, mode);
        self.parse_level(&mut lexer, &source, level)
    }

    /// Parses statements up to the end of the input (`File`, `Param`) or to
    /// the `}` closing the block (`Block`).
    fn parse_level(
        &mut self,
        lexer: &mut Lexer<'_>,
        source: &Source,
        level: Level,
    ) -> Result<Vec<Directive>, Error> {
        let at = |line: usize| Position {
            source: source.clone(),
            line,
        };
        let mut directives = Vec::new();
        loop {
            let token = lexer
                .next_token()
                .map_err(|err| syntax(err.message, at(err.line)))?;
            let (words, block, line) = match token {
                Token::BlockEnd { line } => {
                    if level == Level::Block {
                        return Ok(directives);
                    }
                    return Err(syntax("unexpected \"}\"", at(line)));
                }
                Token::Eof { line } => {
                    if level == Level::Block {
                        return Err(syntax("unexpected end of file, expecting \"}\"", at(line)));
                    }
                    return Ok(directives);
                }
                Token::Statement { words, block, line } => (words, block, line),
            };
            let position = at(line);
            if block && level == Level::Param {
                return Err(syntax(
                    "block directives are not supported in -g option",
                    position,
                ));
            }
            let mut words = words.into_iter();
            let Some(name) = words.next() else {
                // The lexer never returns an empty statement.
                continue;
            };
            let args: Vec<Arg> = words.map(arg).collect();

            if name.value == "include" {
                if block {
                    return Err(syntax(
                        "directive \"include\" is not terminated by \";\"",
                        position,
                    ));
                }
                if args.len() != 1 {
                    return Err(syntax(
                        "invalid number of arguments in \"include\" directive",
                        position,
                    ));
                }
                if let Some(prefix) = self.conf_prefix.clone() {
                    let target = args.first().map(Arg::as_str).unwrap_or_default();
                    directives.extend(self.include(&prefix, target, &position)?);
                    continue;
                }
            }

            let inner = if block {
                if self.depth >= MAX_BLOCK_DEPTH {
                    return Err(syntax(
                        format!("blocks nested too deeply (more than {MAX_BLOCK_DEPTH} levels)"),
                        position,
                    ));
                }
                self.depth += 1;
                let inner = self.parse_level(lexer, source, Level::Block);
                self.depth -= 1;
                Some(inner?)
            } else {
                None
            };
            directives.push(Directive {
                name: name.value,
                args,
                block: inner,
                position,
            });
        }
    }

    /// Expands `include target;` found at `position`.
    fn include(
        &mut self,
        prefix: &Path,
        target: &str,
        position: &Position,
    ) -> Result<Vec<Directive>, Error> {
        let full = prefix.join(target);
        if !has_glob_chars(&full) {
            return self.read_file(&full, Some(position));
        }
        let mut directives = Vec::new();
        for path in glob_paths(&full.to_string_lossy()) {
            directives.extend(self.read_file(&path, Some(position))?);
        }
        Ok(directives)
    }
}

fn arg(word: Word) -> Arg {
    Arg {
        value: word.value,
        quoted: word.quoted,
    }
}

/// The canonical form of `path` for recursion checks, or `path` itself when
/// it cannot be resolved.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}
