//! The rewrite module's directives (`return`, `set`, `if`, `rewrite`),
//! `try_files` and `map`: parsed into [`Op`]s that run in file order for
//! each request.

use nginx_conf::Directive;

use super::model::{
    Condition, FileTest, MapConfig, Op, Rewrite, RewriteFlag, TryFallback, TryFile, TryFiles,
};
use super::{arg0, values, ConfigError};
use crate::vars::{Template, Unset};

fn compile(text: &str, d: &Directive) -> Result<Template, ConfigError> {
    Template::compile(text).map_err(|e| ConfigError::at(e.to_string(), &d.position))
}

/// The variable names `set`, `map` and the others define anywhere under
/// `block` (lower case, without `$`), each with what it is before it has
/// a value: nginx gives a name the handler of the first `set` or
/// `auth_request_set` that declares it, and a regex's named capture
/// replaces any handler (ngx_http_regex_compile), so that such a name is
/// not found until a match gives it a value.
pub(crate) fn user_var_names(block: &[Directive], out: &mut Vec<(String, Unset)>) {
    for d in block {
        let (name, unset) = match d.name.as_str() {
            "set" => (d.args.first(), Unset::Empty),
            "auth_request_set" => (d.args.first(), Unset::NotFound),
            "rewrite" => {
                // A rewrite's named captures are variables too.
                if let Some(re) = d.args.first() {
                    named_groups(&re.value, out);
                }
                (None, Unset::Empty)
            }
            "server_name" => {
                for a in d.args.iter().filter(|a| a.value.starts_with('~')) {
                    named_groups(&a.value[1..], out);
                }
                (None, Unset::Empty)
            }
            "location" if d.args.len() == 2 && d.args[0].value.starts_with('~') => {
                named_groups(&d.args[1].value, out);
                (None, Unset::Empty)
            }
            "if" => {
                for a in &d.args {
                    named_groups(&a.value, out);
                }
                (None, Unset::Empty)
            }
            "map" | "split_clients" => (d.args.get(1), Unset::Empty),
            "geo" => (d.args.last(), Unset::Empty),
            _ => (None, Unset::Empty),
        };
        if d.name == "map" {
            // Named captures of a map's regexes are variables too.
            for line in d.block.as_deref().unwrap_or_default() {
                if line.name.starts_with('~') {
                    named_groups(&line.name, out);
                }
            }
        }
        if let Some(name) = name.and_then(|a| a.value.strip_prefix('$')) {
            let name = name.to_ascii_lowercase();
            if !out.iter().any(|(n, _)| *n == name) {
                out.push((name, unset));
            }
        }
        if !matches!(d.name.as_str(), "map" | "types" | "split_clients" | "geo") {
            if let Some(inner) = &d.block {
                user_var_names(inner, out);
            }
        }
    }
}

/// The names of `(?P<name>...)` and `(?<name>...)` groups in `regex`:
/// not found until a match sets them, whatever declared them before.
fn named_groups(regex: &str, out: &mut Vec<(String, Unset)>) {
    for start in ["(?P<", "(?<"] {
        let mut rest = regex;
        while let Some(at) = rest.find(start) {
            rest = &rest[at + start.len()..];
            if let Some(end) = rest.find('>') {
                let name = rest[..end].to_ascii_lowercase();
                if name.is_empty() {
                    continue;
                }
                match out.iter_mut().find(|(n, _)| *n == name) {
                    Some(known) => known.1 = Unset::NotFound,
                    None => out.push((name, Unset::NotFound)),
                }
            }
        }
    }
}

/// `return code [text]` / `return URL`.
pub(crate) fn parse_return(d: &Directive) -> Result<Op, ConfigError> {
    let at = &d.position;
    let first = arg0(d);
    let invalid = || ConfigError::at(format!("invalid return code \"{first}\""), at);
    if d.args.len() == 1 {
        if let Some(code) = values::parse_number(first) {
            return if code > 999 {
                Err(invalid())
            } else {
                Ok(Op::Return {
                    code: code as u16,
                    text: None,
                })
            };
        }
        if first.starts_with("http://")
            || first.starts_with("https://")
            || first.starts_with("$scheme")
        {
            return Ok(Op::Return {
                code: 302,
                text: Some(compile(first, d)?),
            });
        }
        return Err(invalid());
    }
    match values::parse_number(first) {
        Some(code) if code <= 999 => Ok(Op::Return {
            code: code as u16,
            text: Some(compile(&d.args[1].value, d)?),
        }),
        _ => Err(invalid()),
    }
}

/// Compiles a regex as nginx's PCRE would take it (`caseless` for `~*`).
pub(crate) fn regex(
    pattern: &str,
    caseless: bool,
    d: &Directive,
) -> Result<regex::Regex, ConfigError> {
    super::pcre::compile(pattern, caseless).map_err(|e| ConfigError::at(e.to_string(), &d.position))
}

/// `rewrite regex replacement [last|break|redirect|permanent]`.
pub(crate) fn parse_rewrite(d: &Directive) -> Result<Op, ConfigError> {
    let at = &d.position;
    let pattern = d.args[0].value.as_str();
    let mut replacement = d.args[1].value.as_str();
    if replacement.is_empty() {
        return Err(ConfigError::at("empty replacement", at));
    }
    let regex = regex(pattern, false, d)?;
    // The last "?" drops the original arguments.
    let add_args = match replacement.strip_suffix('?') {
        Some(r) => {
            replacement = r;
            false
        }
        None => true,
    };
    let mut flag = if ["http://", "https://", "$scheme"]
        .iter()
        .any(|p| replacement.starts_with(p))
    {
        RewriteFlag::Redirect(302)
    } else {
        RewriteFlag::None
    };
    if let Some(f) = d.args.get(2) {
        flag = match (f.value.as_str(), flag) {
            ("last", RewriteFlag::None) => RewriteFlag::Last,
            ("break", RewriteFlag::None) => RewriteFlag::Break,
            ("last" | "break", redirect) => redirect,
            ("redirect", _) => RewriteFlag::Redirect(302),
            ("permanent", _) => RewriteFlag::Redirect(301),
            (other, _) => {
                return Err(ConfigError::at(
                    format!("invalid parameter \"{other}\""),
                    at,
                ))
            }
        };
    }
    // A literal "?" starts the new arguments; a redirect keeps them in
    // one Location, where they only choose '&' for appended arguments.
    let (uri, args) = match replacement.split_once('?') {
        Some((u, a)) if !matches!(flag, RewriteFlag::Redirect(_)) => {
            (compile(u, d)?, Some(compile(a, d)?))
        }
        Some(_) => (compile(replacement, d)?, Some(Template::default())),
        None => (compile(replacement, d)?, None),
    };
    Ok(Op::Rewrite(Box::new(Rewrite {
        regex,
        pattern: pattern.to_string(),
        uri,
        args,
        add_args,
        flag,
    })))
}

/// `try_files file ... uri` / `try_files file ... =code`.
pub(crate) fn parse_try_files(d: &Directive) -> Result<TryFiles, ConfigError> {
    let (last, names) = d.args.split_last().ok_or_else(|| {
        ConfigError::at(
            "invalid number of arguments in \"try_files\" directive",
            &d.position,
        )
    })?;
    let mut files = Vec::new();
    for a in names {
        let (name, dir) = match a.value.strip_suffix('/') {
            Some(n) => (n, true),
            None => (a.value.as_str(), false),
        };
        files.push(TryFile {
            name: compile(name, d)?,
            dir,
        });
    }
    let fallback = match last.value.strip_prefix('=') {
        Some(code) => match values::parse_number(code) {
            Some(c) if c <= 999 => TryFallback::Code(c as u16),
            _ => {
                return Err(ConfigError::at(
                    format!("invalid code \"{}\"", last.value),
                    &d.position,
                ))
            }
        },
        None => TryFallback::Uri(compile(&last.value, d)?),
    };
    Ok(TryFiles { files, fallback })
}

/// `set $name value`.
pub(crate) fn parse_set(d: &Directive) -> Result<Op, ConfigError> {
    let name = arg0(d);
    let Some(bare) = name.strip_prefix('$') else {
        return Err(ConfigError::at(
            format!("invalid variable name \"{name}\""),
            &d.position,
        ));
    };
    // A built-in variable is settable only when nginx gives it a set
    // handler ($limit_rate, $args).
    let settable = matches!(
        crate::vars::Var::from_name(bare),
        Some(crate::vars::Var::LimitRate | crate::vars::Var::Args)
    );
    if !settable && !crate::vars::Var::is_user(bare) {
        return Err(ConfigError::at(
            format!("the duplicate \"{bare}\" variable"),
            &d.position,
        ));
    }
    Ok(Op::Set(
        bare.to_ascii_lowercase(),
        compile(&d.args[1].value, d)?,
    ))
}

/// The condition of `if (...)`, as nginx's lexer splits it into arguments.
pub(crate) fn parse_condition(d: &Directive) -> Result<Condition, ConfigError> {
    let at = &d.position;
    let mut args: Vec<String> = d.args.iter().map(|a| a.value.clone()).collect();
    let invalid = |text: &str| ConfigError::at(format!("invalid condition \"{text}\""), at);
    let first = args[0].clone();
    let Some(stripped) = first.strip_prefix('(') else {
        return Err(invalid(&first));
    };
    args[0] = stripped.to_string();
    let last = args.len() - 1;
    let Some(stripped) = args[last].strip_suffix(')') else {
        return Err(invalid(&args[last].clone()));
    };
    args[last] = stripped.to_string();
    // Only a lone "(" or ")" is no argument (ngx_http_rewrite_if_condition):
    // an empty string is one, as in `if ($http_apikey = "")`.
    if args[last].is_empty() {
        args.pop();
    }
    if args.first().is_some_and(String::is_empty) {
        args.remove(0);
    }
    let var = |text: &str| -> Result<Template, ConfigError> {
        if !text.starts_with('$') {
            return Err(invalid(text));
        }
        compile(text, d)
    };
    match args.len() {
        1 => Ok(Condition::Value(var(&args[0])?)),
        2 => {
            let (negated, op) = match args[0].strip_prefix('!') {
                Some(op) => (true, op),
                None => (false, args[0].as_str()),
            };
            let test = match op {
                "-f" => FileTest::File,
                "-d" => FileTest::Dir,
                "-e" => FileTest::Exists,
                "-x" => FileTest::Exec,
                _ => {
                    return Err(ConfigError::at(
                        format!("unexpected \"{}\" in condition", args[0]),
                        at,
                    ))
                }
            };
            Ok(Condition::File(compile(&args[1], d)?, test, negated))
        }
        3 => {
            let lhs = var(&args[0])?;
            let rhs = &args[2];
            let regex = |ci: bool| {
                super::pcre::compile(rhs, ci).map_err(|e| ConfigError::at(e.to_string(), at))
            };
            Ok(match args[1].as_str() {
                "=" => Condition::Equals(lhs, compile(rhs, d)?, false),
                "!=" => Condition::Equals(lhs, compile(rhs, d)?, true),
                "~" => Condition::Matches(lhs, regex(false)?, false),
                "~*" => Condition::Matches(lhs, regex(true)?, false),
                "!~" => Condition::Matches(lhs, regex(false)?, true),
                "!~*" => Condition::Matches(lhs, regex(true)?, true),
                other => {
                    return Err(ConfigError::at(
                        format!("unexpected \"{other}\" in condition"),
                        at,
                    ))
                }
            })
        }
        _ => Err(invalid(&args.join(" "))),
    }
}

/// `map SOURCE $name { ... }`: returns the name and the map.
/// Parses a `map` block into `maps`, by the variable it defines; a second
/// map of one variable is nginx's "the duplicate" error.
pub(crate) fn add_map(
    maps: &mut std::collections::HashMap<String, std::sync::Arc<MapConfig>>,
    d: &Directive,
) -> Result<(), ConfigError> {
    let (name, map) = parse_map(d)?;
    if maps.contains_key(&name) {
        return Err(ConfigError::at(
            format!("the duplicate \"{name}\" variable"),
            &d.position,
        ));
    }
    maps.insert(name, std::sync::Arc::new(map));
    Ok(())
}

fn parse_map(d: &Directive) -> Result<(String, MapConfig), ConfigError> {
    let at = &d.position;
    let source = compile(&d.args[0].value, d)?;
    let name = d.args[1]
        .value
        .strip_prefix('$')
        .ok_or_else(|| {
            ConfigError::at(format!("invalid variable name \"{}\"", d.args[1].value), at)
        })?
        .to_ascii_lowercase();
    let mut map = MapConfig {
        source,
        keys: Default::default(),
        hostnames: false,
        regexes: Vec::new(),
        default: Template::default(),
        volatile: false,
    };
    let mut default_seen = false;
    for line in d.block.as_deref().unwrap_or_default() {
        let lat = &line.position;
        if line.block.is_some() {
            return Err(ConfigError::at("unexpected \"{\"", lat));
        }
        let key = line.name.as_str();
        match (key, line.args.len()) {
            ("volatile", 0) => {
                map.volatile = true;
                continue;
            }
            ("hostnames", 0) => {
                map.hostnames = true;
                continue;
            }
            ("include", _) => continue,
            (_, 1) => {}
            _ => return Err(ConfigError::at("invalid number of the map parameters", lat)),
        }
        let value = Template::compile(&line.args[0].value)
            .map_err(|e| ConfigError::at(e.to_string(), lat))?;
        if key == "default" {
            if default_seen {
                return Err(ConfigError::at("duplicate default map parameter", lat));
            }
            default_seen = true;
            map.default = value;
        } else if let Some(re) = key.strip_prefix('~') {
            let (ci, re) = match re.strip_prefix('*') {
                Some(r) => (true, r),
                None => (false, re),
            };
            let re =
                super::pcre::compile(re, ci).map_err(|e| ConfigError::at(e.to_string(), lat))?;
            map.regexes.push((re, value));
        } else {
            let key = key.strip_prefix('\\').unwrap_or(key);
            map.keys
                .add(key, value, map.hostnames)
                .map_err(|e| ConfigError::at(e.to_string(), lat))?;
        }
    }
    Ok((name, map))
}
