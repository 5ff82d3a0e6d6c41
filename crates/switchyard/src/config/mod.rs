//! nginx.conf's syntax tree -> the typed [`model::Model`]. Every directive is
//! checked here, with nginx's message and `file:line` on error.

pub mod access;
mod auth;
pub mod directive_doc;
pub mod directive_notes;
pub mod directives;
mod geo;
mod gzip;
mod health;
mod http;
mod http2;
mod known;
mod limits;
pub mod listen;
pub mod map_hostnames;
pub mod model;
pub mod pcre;
mod proxy_cookie;
mod proxy_ssl;
pub mod proxy_url;
mod request_body;
mod rewrite;
mod settings;
mod ssl;
mod stream;
mod stream_values;
#[cfg(test)]
mod unclaimed_tests;
pub(crate) mod upstream;
pub mod values;

use std::fmt;
use std::path::{Path, PathBuf};

use nginx_conf::{Directive, Position, Source};

use directives::{Arity, Ctx, Spec, Support};
use model::{ErrorLogTarget, LogBuffering, LogPath, Main, Model};

use crate::observe::ErrorLevel;

/// A configuration error: nginx's message and, usually, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// nginx's message, e.g. `unknown directive "upstrem"`.
    pub message: String,
    /// Where, when nginx names a place.
    pub position: Option<Position>,
    /// Further errors of the same load: every directive that is not
    /// supported yet is named, not only the first (a migration list).
    pub more: Vec<ConfigError>,
    /// The directive's name, when the error is that it is not supported yet.
    pub unsupported: Option<String>,
}

impl ConfigError {
    /// An error at `position`.
    pub fn at(message: impl Into<String>, position: &Position) -> ConfigError {
        ConfigError {
            message: message.into(),
            position: Some(position.clone()),
            more: Vec::new(),
            unsupported: None,
        }
    }

    /// An error with no place (nginx prints some that way, e.g.
    /// `no "events" section in configuration`).
    pub fn bare(message: impl Into<String>) -> ConfigError {
        ConfigError {
            message: message.into(),
            position: None,
            more: Vec::new(),
            unsupported: None,
        }
    }

    /// One line that counts what the load found: `3 problems: 2 directives
    /// not supported yet: gzip (1), try_files (1); 1 other error`.    ///
    /// ```
    /// # use switchyard::config::ConfigError;
    /// let e = ConfigError::bare("unknown directive \"upstrem\"");
    /// assert_eq!(e.summary(), "1 problem: 1 error");
    /// ```
    pub fn summary(&self) -> String {
        let all: Vec<&ConfigError> = std::iter::once(self).chain(self.more.iter()).collect();
        let mut unsupported: Vec<(&str, usize)> = Vec::new();
        for name in all.iter().filter_map(|e| e.unsupported.as_deref()) {
            match unsupported.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => *count += 1,
                None => unsupported.push((name, 1)),
            }
        }
        let not_yet: usize = unsupported.iter().map(|(_, n)| n).sum();
        let other = all.len() - not_yet;
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut parts = Vec::new();
        if not_yet > 0 {
            let names: Vec<String> = unsupported
                .iter()
                .map(|(name, n)| format!("{name} ({n})"))
                .collect();
            parts.push(format!(
                "{} not supported yet: {}",
                plural(not_yet, "directive", "directives"),
                names.join(", ")
            ));
        }
        match (other, not_yet) {
            (0, _) => {}
            (n, 0) => parts.push(plural(n, "error", "errors")),
            (n, _) => parts.push(plural(n, "other error", "other errors")),
        }
        format!(
            "{}: {}",
            plural(all.len(), "problem", "problems"),
            parts.join("; ")
        )
    }

    /// Every error of the load, one line each (this one first).
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![self.to_string()];
        out.extend(self.more.iter().map(ToString::to_string));
        out
    }
}

thread_local! {
    /// Directives found while loading that are not supported yet; the load
    /// goes on past them so that all are reported together.
    static UNSUPPORTED: std::cell::RefCell<Vec<ConfigError>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The access-log files met so far in this load, and how each buffers,
    /// as nginx keeps a buffer on the cycle's open file.
    static LOG_FILES: std::cell::RefCell<Vec<(PathBuf, Option<LogBuffering>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Records that an `access_log` writes to `path`, buffering as `buffer`;
/// false when an earlier `access_log` of the same file buffers otherwise
/// (nginx's "already defined with conflicting parameters"). An unbuffered
/// `access_log` of a buffered file writes through its buffer, as in nginx.
pub(crate) fn claim_log_file(path: &Path, buffer: Option<LogBuffering>) -> bool {
    LOG_FILES.with(|claimed| {
        let mut claimed = claimed.borrow_mut();
        match claimed.iter_mut().find(|(p, _)| p == path) {
            Some((_, earlier)) => match (*earlier, buffer) {
                (Some(a), Some(b)) => a == b,
                (None, Some(b)) => {
                    *earlier = Some(b);
                    true
                }
                (_, None) => true,
            },
            None => {
                claimed.push((path.to_path_buf(), buffer));
                true
            }
        }
    })
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.position {
            Some(p) => write!(f, "{} in {}", self.message, p),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<nginx_conf::Error> for ConfigError {
    fn from(e: nginx_conf::Error) -> Self {
        ConfigError::bare(e.to_string())
    }
}

/// What to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The main file (`-c`), absolute or relative to the prefix.
    pub conf_file: PathBuf,
    /// The prefix (`-p`).
    pub prefix: PathBuf,
    /// Directives from `-g`.
    pub globals: Option<String>,
}

/// A loaded configuration: the typed model and the syntax tree (for `-T`).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The typed model.
    pub model: Model,
    /// The files read.
    pub tree: nginx_conf::Config,
}

/// Reads, parses and checks a configuration.
pub fn load(options: &LoadOptions) -> Result<Loaded, ConfigError> {
    let tree = nginx_conf::parse_file(&options.conf_file)?;
    let mut directives = Vec::new();
    if let Some(globals) = &options.globals {
        let base = options.conf_file.parent().unwrap_or(Path::new("/"));
        let extra = nginx_conf::parse_str(globals, Source::CommandLine, base)?;
        directives.extend(extra.directives);
    }
    directives.extend(tree.directives.iter().cloned());
    UNSUPPORTED.with(|u| u.borrow_mut().clear());
    LOG_FILES.with(|b| b.borrow_mut().clear());
    let built = build(&directives, options).map(|mut model| {
        model.access_log_files = LOG_FILES.with(|b| std::mem::take(&mut *b.borrow_mut()));
        model
    });
    let unsupported = UNSUPPORTED.with(|u| std::mem::take(&mut *u.borrow_mut()));
    let mut unsupported = unsupported.into_iter();
    match (built, unsupported.next()) {
        (Ok(model), None) => Ok(Loaded { model, tree }),
        // Unsupported directives come first, in file order; a later hard
        // error (if any) is listed after them.
        (result, Some(mut first)) => {
            first.more.extend(unsupported);
            if let Err(e) = result {
                first.more.push(e);
            }
            Err(first)
        }
        (Err(e), None) => Err(e),
    }
}

/// Checks a directive's shape against the table: known, allowed here,
/// block or not, argument count, flag value. Returns its spec.
pub(crate) fn check(directive: &Directive, ctx: Ctx) -> Result<&'static Spec, ConfigError> {
    let name = &directive.name;
    let at = &directive.position;
    let spec = directives::lookup_in(name, ctx)
        .ok_or_else(|| ConfigError::at(format!("unknown directive \"{name}\""), at))?;
    if !spec.ctx.contains(ctx) {
        return Err(ConfigError::at(
            format!("\"{name}\" directive is not allowed here"),
            at,
        ));
    }
    // `server` is a block in http and stream, a line in upstream.
    let server_block = name == "server" && (ctx == Ctx::HTTP || ctx == Ctx::STREAM);
    let wants_block = if name == "server" {
        server_block
    } else {
        spec.block
    };
    if wants_block && directive.block.is_none() {
        return Err(ConfigError::at(
            format!("directive \"{name}\" has no opening \"{{\""),
            at,
        ));
    }
    if !wants_block && directive.block.is_some() {
        return Err(ConfigError::at(
            format!("directive \"{name}\" is not terminated by \";\""),
            at,
        ));
    }
    let arity = if server_block {
        Arity::Counts(1)
    } else {
        spec.arity
    };
    if !arity.accepts(directive.args.len()) {
        return Err(ConfigError::at(
            format!("invalid number of arguments in \"{name}\" directive"),
            at,
        ));
    }
    if spec.arity == Arity::Flag && values::parse_flag(&directive.args[0].value).is_none() {
        return Err(ConfigError::at(
            format!(
                "invalid value \"{}\" in \"{name}\" directive, it must be \"on\" or \"off\"",
                directive.args[0].value
            ),
            at,
        ));
    }
    if spec.support == Support::NotYet {
        // Recorded, and the directive is skipped: the load goes on so that
        // every unsupported directive is named.
        UNSUPPORTED.with(|u| {
            let mut e = ConfigError::at(format!("\"{name}\" is not supported yet"), at);
            e.unsupported = Some(name.clone());
            u.borrow_mut().push(e)
        });
    }
    Ok(spec)
}

/// Records an error that does not stop the load, like a directive that is
/// not supported yet: every such problem is reported together.
pub(crate) fn record_unsupported(error: ConfigError) {
    UNSUPPORTED.with(|u| u.borrow_mut().push(error));
}

/// The dynamic modules of nginx that switchyard has built in: loading one
/// is a no-op, said with a notice (on the error log at startup, and by `-t`).
const BUILT_IN_MODULES: &[&str] = &["ngx_stream_module"];

/// `load_module FILE`: a module switchyard has built in is accepted with a
/// notice; any other is not supported yet, by name.
fn load_module(d: &Directive) {
    let file = arg0(d);
    let module = Path::new(file)
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.trim_end_matches(".so"))
        .unwrap_or(file);
    if BUILT_IN_MODULES.contains(&module) {
        crate::observe::error_log::stderr_line(
            ErrorLevel::Notice,
            &format!(
                "load_module \"{file}\": {module} is built into switchyard, nothing to load in {}",
                d.position
            ),
        );
    } else {
        let mut e = ConfigError::at(
            format!("module \"{module}\" is not supported yet"),
            &d.position,
        );
        e.unsupported = Some(format!("load_module {module}"));
        record_unsupported(e);
    }
}

/// Tracks directives already seen in one block, for `is duplicate`.
#[derive(Default)]
pub(crate) struct Seen(Vec<String>);

impl Seen {
    /// Errors if `directive` was already set in this block.
    pub(crate) fn once(&mut self, directive: &Directive) -> Result<(), ConfigError> {
        if self.0.iter().any(|n| n == &directive.name) {
            return Err(ConfigError::at(
                format!("\"{}\" directive is duplicate", directive.name),
                &directive.position,
            ));
        }
        self.0.push(directive.name.clone());
        Ok(())
    }

    /// The last word on a directive no builder of its block consumed. An
    /// accepted (tuning) directive is only checked for duplicates, as
    /// nginx checks it; a not-yet-supported one was recorded by [`check`].
    /// A supported directive that reaches here is a gap in switchyard (the
    /// directive works elsewhere, not in this block), so it is recorded as
    /// not supported yet instead of being silently ignored.
    pub(crate) fn unclaimed(
        &mut self,
        directive: &Directive,
        spec: &Spec,
    ) -> Result<(), ConfigError> {
        if spec.support == Support::Yes {
            let mut e = ConfigError::at(
                format!("\"{}\" is not supported yet in this block", directive.name),
                &directive.position,
            );
            e.unsupported = Some(directive.name.clone());
            record_unsupported(e);
        }
        self.once(directive)
    }
}

/// The first argument's text.
pub(crate) fn arg0(directive: &Directive) -> &str {
    directive
        .args
        .first()
        .map(|a| a.value.as_str())
        .unwrap_or("")
}

/// The first argument as an nginx time, or nginx's "invalid value".
pub(crate) fn time_arg(directive: &Directive) -> Result<std::time::Duration, ConfigError> {
    values::parse_time(arg0(directive)).ok_or_else(|| invalid_value(directive))
}

/// The first argument as a plain number, or nginx's "invalid value".
pub(crate) fn number_arg(directive: &Directive) -> Result<u64, ConfigError> {
    values::parse_number(arg0(directive)).ok_or_else(|| invalid_value(directive))
}

/// Sets a directive's value once: a second occurrence at the same level is
/// nginx's `"NAME" directive is duplicate`.
fn set<T>(slot: &mut Option<T>, d: &Directive, value: T) -> Result<(), ConfigError> {
    if slot.is_some() {
        return Err(ConfigError::at(
            format!("\"{}\" directive is duplicate", d.name),
            &d.position,
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// `"NAME" directive invalid value` (nginx's slot-setter wording).
pub(crate) fn invalid_value(directive: &Directive) -> ConfigError {
    ConfigError::at(
        format!("\"{}\" directive invalid value", directive.name),
        &directive.position,
    )
}

/// Resolves `path` against the prefix, as nginx's `ngx_conf_full_name`.
pub fn full_path(prefix: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        prefix.join(p)
    }
}

fn build(directives: &[Directive], options: &LoadOptions) -> Result<Model, ConfigError> {
    let mut main = Main {
        worker_processes: Some(1),
        daemon: true,
        pid: full_path(&options.prefix, "logs/nginx.pid"),
        error_log: Vec::new(),
        worker_connections: 512,
        worker_shutdown_timeout: None,
        worker_rlimit_nofile: None,
    };
    let mut seen = Seen::default();
    let mut events_seen = false;
    let mut http_block = None;
    let mut stream_block = None;
    for d in directives {
        let spec = check(d, Ctx::MAIN)?;
        let repeatable = matches!(
            spec.name,
            "error_log" | "include" | "env" | "load_module" | "thread_pool"
        );
        if !repeatable {
            seen.once(d)?;
        }
        match spec.name {
            "worker_processes" => {
                let v = arg0(d);
                main.worker_processes = if v == "auto" {
                    None
                } else {
                    match values::parse_number(v) {
                        Some(n) if n > 0 => Some(n as usize),
                        _ => return Err(invalid_value(d)),
                    }
                };
            }
            "daemon" => main.daemon = values::parse_flag(arg0(d)).unwrap_or(true),
            "pid" => main.pid = full_path(&options.prefix, arg0(d)),
            "error_log" => main.error_log.push(error_log_target(d, &options.prefix)?),
            "worker_shutdown_timeout" => main.worker_shutdown_timeout = Some(time_arg(d)?),
            "worker_rlimit_nofile" => main.worker_rlimit_nofile = Some(number_arg(d)?),
            "events" => {
                events_seen = true;
                let mut seen_events = Seen::default();
                for e in d.block.as_deref().unwrap_or_default() {
                    let spec = check(e, Ctx::EVENTS)?;
                    if spec.name != "include" {
                        seen_events.once(e)?;
                    }
                    if spec.name == "worker_connections" {
                        main.worker_connections = match values::parse_number(arg0(e)) {
                            Some(n) if n > 0 => n as usize,
                            _ => {
                                return Err(ConfigError::at(
                                    format!("invalid number \"{}\"", arg0(e)),
                                    &e.position,
                                ))
                            }
                        };
                    }
                }
            }
            "http" => http_block = Some(d),
            "load_module" => load_module(d),
            "stream" => stream_block = Some(d),
            _ => {} // accepted directives with no effect here (user, pcre_jit, ...)
        }
    }
    if !events_seen {
        return Err(ConfigError::bare("no \"events\" section in configuration"));
    }
    // Certificates are named relative to the directory of nginx.conf.
    let conf_file = full_path(&options.prefix, &options.conf_file.to_string_lossy());
    let conf_prefix = conf_file.parent().unwrap_or(&options.prefix);
    let http = match http_block {
        Some(d) => Some(auth::with_conf_prefix(conf_prefix.to_path_buf(), || {
            http::build_http(d, &options.prefix, conf_prefix)
        })?),
        None => None,
    };
    let stream = match stream_block {
        Some(d) => Some(stream::build_stream(d, &options.prefix, conf_prefix)?),
        None => None,
    };
    Ok(Model {
        conf_file: options.conf_file.clone(),
        prefix: options.prefix.clone(),
        main,
        http,
        stream,
        access_log_files: Vec::new(),
    })
}

/// Parses `error_log FILE [LEVEL]`.
pub(crate) fn error_log_target(
    d: &Directive,
    prefix: &Path,
) -> Result<ErrorLogTarget, ConfigError> {
    let file = arg0(d);
    let path = if file == "stderr" {
        LogPath::Stderr
    } else if file.starts_with("syslog:") || file.starts_with("memory:") {
        return Err(ConfigError::at(
            format!("\"error_log\" to \"{file}\" is not supported yet"),
            &d.position,
        ));
    } else {
        LogPath::File(full_path(prefix, file))
    };
    let level = match d.args.get(1) {
        None => ErrorLevel::Error,
        Some(arg) => ErrorLevel::from_name(&arg.value).ok_or_else(|| {
            ConfigError::at(format!("invalid log level \"{}\"", arg.value), &d.position)
        })?,
    };
    if d.args.len() > 2 {
        return Err(ConfigError::at(
            "invalid number of arguments in \"error_log\" directive",
            &d.position,
        ));
    }
    Ok(ErrorLogTarget { path, level })
}
