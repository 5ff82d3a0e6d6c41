//! The rewrite phase: `set`, `return`, `if`, `rewrite` and `break` run in
//! file order, first the server's, then the location's. A location `if`
//! that matches makes its own configuration the one that answers ("if is
//! evil": nothing else of the location's body applies, and later
//! directives still run).

use std::sync::Arc;

use crate::config::model::{
    Condition, FileTest, Handler, LocationConfig, Op, Rewrite, RewriteFlag,
};
use crate::observe::{error_log, ErrorLevel};
use crate::vars::{Segment, Var, VarSource};

use super::exchange::Exchange;

/// What the script decided.
#[derive(Debug)]
pub enum Outcome {
    /// Go on in this location (its URI may have changed, with `break`).
    Continue,
    /// The URI changed (`rewrite` without a flag, or `last`): the
    /// location is searched again (nginx's post-rewrite phase).
    Restart,
    /// `return code [text]` (text rendered), or a `rewrite` redirect
    /// (the `Location` as text), or 500 for an empty rewritten URI.
    Return(u16, Option<String>),
}

/// The request's state across the rewrite scripts it runs.
#[derive(Debug)]
pub struct Script {
    /// `rewrite_log` of the configuration running the script.
    pub log: bool,
    /// The URI was rewritten and the location must be searched again.
    pub uri_changed: bool,
    /// False once `break` followed a rewrite: the URI no longer relates
    /// to the location's name (`proxy_pass` then sends it whole).
    pub valid_location: bool,
    /// A matching `if` had a `proxy_pass` of its own: nginx's content
    /// handler stays the proxy's through later `if`s that have none.
    if_proxied: bool,
    /// The last matching `if` has no `proxy_pass` and its location none
    /// either, after one that had: nginx runs the proxy with no upstream
    /// configured, and answers 500.
    pub no_upstream: bool,
}

impl Script {
    /// A script state for a configuration with `rewrite_log` = `log`.
    pub fn new(log: bool) -> Script {
        Script {
            log,
            uri_changed: false,
            valid_location: true,
            if_proxied: false,
            no_upstream: false,
        }
    }
}

/// Runs `ops`; a matching location `if` replaces `location`.
pub fn run(
    ops: &[Op],
    ex: &mut Exchange,
    location: &mut Option<Arc<LocationConfig>>,
    script: &mut Script,
) -> Outcome {
    match step(ops, ex, location, script) {
        Flow::Return(code, text) => Outcome::Return(code, text),
        Flow::Next | Flow::Break if script.uri_changed => Outcome::Restart,
        Flow::Next | Flow::Break => Outcome::Continue,
    }
}

enum Flow {
    Next,
    Break,
    Return(u16, Option<String>),
}

fn step(
    ops: &[Op],
    ex: &mut Exchange,
    location: &mut Option<Arc<LocationConfig>>,
    script: &mut Script,
) -> Flow {
    for op in ops {
        match op {
            Op::Set(name, value) => {
                let v = value.render(ex);
                ex.set_var(name, v);
            }
            Op::Return { code, text } => {
                return Flow::Return(*code, text.as_ref().map(|t| t.render(ex)))
            }
            Op::Break => {
                if script.uri_changed {
                    script.uri_changed = false;
                    script.valid_location = false;
                }
                return Flow::Break;
            }
            Op::Rewrite(rewrite) => match apply(rewrite, ex, script) {
                Flow::Next => {}
                other => return other,
            },
            Op::If(block) => {
                if holds(&block.condition, ex, script) {
                    if let Some(l) = &block.location {
                        *location = Some(l.clone());
                        script.log = l.settings.rewrite_log;
                        if block.own_proxy {
                            script.if_proxied = true;
                            script.no_upstream = false;
                        } else if script.if_proxied {
                            script.no_upstream = !matches!(l.handler, Handler::Proxy(_));
                        }
                    }
                    match step(&block.script, ex, location, script) {
                        Flow::Next => {}
                        other => return other,
                    }
                }
            }
        }
    }
    Flow::Next
}

/// nginx's notice lines of `rewrite_log on`, with the request's context.
fn notice(ex: &Exchange, message: &str) {
    error_log::log(
        ErrorLevel::Notice,
        Some(ex.conn.id),
        &format!("{message}{}", super::proxy::log_context(ex, None)),
    );
}

/// Runs `re` on `text` as nginx's `ngx_http_regex_exec`: the captures
/// (`$1`..`$9`) and the named captures (variables) of a match are kept.
pub fn capture(ex: &mut Exchange, re: &regex::Regex, text: &str) -> bool {
    if !ex.capture(re, text) {
        return false;
    }
    for (i, name) in re.capture_names().enumerate() {
        if let Some(name) = name {
            let value = ex.captures.get(i).cloned().flatten().unwrap_or_default();
            ex.set_var(&name.to_ascii_lowercase(), value);
        }
    }
    true
}

/// Logs a regex test as nginx does when `rewrite_log` is on.
fn log_match(ex: &Exchange, script: &Script, pattern: &str, text: &str, matched: bool) {
    if script.log {
        let verb = if matched { "matches" } else { "does not match" };
        notice(ex, &format!("\"{pattern}\" {verb} \"{text}\""));
    }
}

fn apply(rewrite: &Rewrite, ex: &mut Exchange, script: &mut Script) -> Flow {
    let uri = ex.uri.clone();
    let matched = capture(ex, &rewrite.regex, &uri);
    log_match(ex, script, &rewrite.pattern, &uri, matched);
    if !matched {
        return Flow::Next;
    }
    // nginx escapes captures placed in arguments or in a redirect when the
    // client's URI had escapes (or a '+'): the capture is of the decoded URI.
    let quoted = {
        let path = ex.raw_uri.split('?').next().unwrap_or_default();
        path.contains('%') || path.contains('+')
    };
    let original_args = ex.args.clone().filter(|a| !a.is_empty());
    if let RewriteFlag::Redirect(code) = rewrite.flag {
        let mut location = unescape_redirect(&render(&rewrite.uri, ex, quoted));
        if let (true, Some(args)) = (rewrite.add_args, &original_args) {
            location.push(if rewrite.args.is_some() { '&' } else { '?' });
            location.push_str(args);
        }
        if script.log {
            notice(ex, &format!("rewritten redirect: \"{location}\""));
        }
        return Flow::Return(code, Some(location));
    }
    let new_uri = render(&rewrite.uri, ex, false);
    match &rewrite.args {
        Some(template) => {
            let mut args = render(template, ex, quoted);
            if let (true, Some(original)) = (rewrite.add_args, &original_args) {
                args.push('&');
                args.push_str(original);
            }
            ex.args = Some(args).filter(|a| !a.is_empty());
        }
        None if !rewrite.add_args => ex.args = None,
        None => {}
    }
    if script.log {
        notice(
            ex,
            &format!(
                "rewritten data: \"{new_uri}\", args: \"{}\"",
                ex.args.as_deref().unwrap_or_default()
            ),
        );
    }
    if new_uri.is_empty() {
        error_log::error(
            Some(ex.conn.id),
            &format!(
                "the rewritten URI has a zero length{}",
                super::proxy::log_context(ex, None)
            ),
        );
        return Flow::Return(500, None);
    }
    ex.uri = new_uri;
    ex.internal = true;
    match rewrite.flag {
        RewriteFlag::Break => {
            script.valid_location = false;
            script.uri_changed = false;
            Flow::Break
        }
        RewriteFlag::Last => {
            script.uri_changed = true;
            Flow::Break
        }
        _ => {
            script.uri_changed = true;
            Flow::Next
        }
    }
}

/// Renders `template`, escaping captures as nginx's `NGX_ESCAPE_ARGS`
/// when `escape_captures`.
fn render(template: &crate::vars::Template, ex: &Exchange, escape_captures: bool) -> String {
    if !escape_captures {
        return template.render(ex);
    }
    let mut out = String::new();
    for segment in template.segments() {
        match segment {
            Segment::Literal(text) => out.push_str(text),
            Segment::Var(var @ Var::Capture(_)) => {
                if let Some(v) = ex.var(var) {
                    escape_args(&v, &mut out);
                }
            }
            Segment::Var(var) => {
                if let Some(v) = ex.var(var) {
                    out.push_str(&v);
                }
            }
        }
    }
    out
}

/// nginx's `ngx_escape_uri(..., NGX_ESCAPE_ARGS)`.
fn escape_args(text: &str, out: &mut String) {
    for b in text.bytes() {
        let escaped = b <= 0x20
            || b >= 0x7f
            || matches!(
                b,
                b'"' | b'#' | b'%' | b'&' | b'+' | b';' | b'<' | b'>' | b'?' | b'\\' | b'^'
            )
            || matches!(b, b'`' | b'{' | b'|' | b'}');
        if escaped {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
}

/// nginx's `ngx_unescape_uri(..., NGX_UNESCAPE_REDIRECT)`, quirks kept:
/// `%XX` is decoded when it stands for a printable character above `%`
/// (so `%0D%0A` stays escaped); a `?`, written or decoded, ends the
/// decoding (the rest is copied as it is); a broken escape loses its `%`.
fn unescape_redirect(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        if b == b'?' {
            out.push(b);
            break;
        }
        if b != b'%' {
            out.push(b);
            continue;
        }
        let Some(&first) = bytes.get(i) else { break };
        i += 1;
        let Some(high) = hex(first) else {
            // The invalid quoted character: kept, its '%' lost.
            out.push(first);
            continue;
        };
        let Some(&second) = bytes.get(i) else { break };
        i += 1;
        let Some(low) = hex(second) else { continue };
        let c = (high << 4) | low;
        if c == b'?' && !second.is_ascii_digit() {
            out.push(c);
            break;
        }
        if c > b'%' && c < 0x7f {
            out.push(c);
        } else {
            out.extend_from_slice(&[b'%', first, second]);
        }
    }
    out.extend_from_slice(&bytes[i.min(bytes.len())..]);
    String::from_utf8_lossy(&out).into_owned()
}

fn holds(condition: &Condition, ex: &mut Exchange, script: &Script) -> bool {
    match condition {
        Condition::Value(t) => {
            let v = t.render(ex);
            !v.is_empty() && v != "0"
        }
        Condition::Equals(lhs, rhs, negated) => (lhs.render(ex) == rhs.render(ex)) != *negated,
        Condition::Matches(lhs, re, negated) => {
            let text = lhs.render(ex);
            let matched = capture(ex, re, &text);
            log_match(ex, script, re.as_str(), &text, matched);
            matched != *negated
        }
        Condition::File(path, test, negated) => {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path.render(ex));
            let ok = match (test, meta) {
                (FileTest::File, Ok(m)) => m.is_file(),
                (FileTest::Dir, Ok(m)) => m.is_dir(),
                (FileTest::Exists, Ok(_)) => true,
                (FileTest::Exec, Ok(m)) => m.permissions().mode() & 0o100 != 0,
                (_, Err(_)) => false,
            };
            ok != *negated
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_a_redirect_as_nginx() {
        assert_eq!(
            unescape_redirect("http%3A%2F%2Fexample.com%2F%3Ffrom%3Dblah"),
            "http://example.com/?from%3Dblah"
        );
        assert_eq!(unescape_redirect("/a%3fb%41?%41"), "/a?b%41?%41");
        assert_eq!(
            unescape_redirect("http%3A%2F%2Fexample.com%0D%0Asplit"),
            "http://example.com%0D%0Asplit"
        );
        // A broken escape loses its '%', as in nginx.
        assert_eq!(unescape_redirect("/a%20b%"), "/a%20b");
        assert_eq!(unescape_redirect("/a%zb"), "/azb");
    }

    #[test]
    fn escapes_arguments_as_nginx() {
        let mut out = String::new();
        escape_args("/a b%&c=d?", &mut out);
        assert_eq!(out, "/a%20b%25%26c=d%3F");
    }
}
