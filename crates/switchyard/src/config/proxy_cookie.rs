//! ngx_http_proxy_module's `proxy_cookie_domain`, `proxy_cookie_path` and
//! `proxy_cookie_flags`:
//! one level's lines, merged as nginx merges them (a level with none of a
//! directive inherits the whole list of the level above).

use nginx_conf::Directive;

use super::model::{CookieFlags, CookieName, ProxyCookie, RewriteFrom, ValueRewrite};
use super::ConfigError;
use crate::vars::Template;

/// One level's lines of each directive: `None` when the level has none,
/// `Some(empty)` for `off`.
#[derive(Debug, Clone, Default)]
pub(crate) struct CookieLayer {
    domains: Option<Vec<ValueRewrite>>,
    paths: Option<Vec<ValueRewrite>>,
    flags: Option<Vec<CookieFlags>>,
}

fn compile(d: &Directive, text: &str) -> Result<Template, ConfigError> {
    Template::compile(text).map_err(|e| ConfigError::at(e.to_string(), &d.position))
}

fn duplicate(d: &Directive) -> ConfigError {
    ConfigError::at(
        format!("\"{}\" directive is duplicate", d.name),
        &d.position,
    )
}

/// The list a directive's line goes into, or `None` after `off` there, as
/// nginx's NGX_CONF_UNSET_PTR / NULL pair: `off` must be the level's only
/// line of the directive, and lines after it are duplicates.
fn push_to<'a, T>(
    list: &'a mut Option<Vec<T>>,
    d: &Directive,
) -> Result<Option<&'a mut Vec<T>>, ConfigError> {
    let single = d.args.len() == 1;
    if matches!(list, Some(l) if l.is_empty()) {
        return Err(duplicate(d));
    }
    if single {
        if d.args[0].value != "off" {
            return Err(ConfigError::at(
                format!("invalid parameter \"{}\"", d.args[0].value),
                &d.position,
            ));
        }
        if list.is_some() {
            return Err(duplicate(d));
        }
        *list = Some(Vec::new());
        return Ok(None);
    }
    Ok(Some(list.get_or_insert_with(Vec::new)))
}

impl CookieLayer {
    /// Applies `d` if it is one of these directives; returns whether it was.
    pub(crate) fn apply(&mut self, d: &Directive) -> Result<bool, ConfigError> {
        match d.name.as_str() {
            "proxy_cookie_domain" => {
                let Some(list) = push_to(&mut self.domains, d)? else {
                    return Ok(true);
                };
                let (from, to) = (d.args[0].value.as_str(), d.args[1].value.as_str());
                // nginx: a domain regex is always caseless (`~*` is not
                // special here); a plain domain and its replacement lose
                // a leading dot, which the value keeps.
                let rule = match from.strip_prefix('~') {
                    Some(re) => ValueRewrite {
                        from: RewriteFrom::Regex(super::rewrite::regex(re, true, d)?),
                        to: compile(d, to)?,
                    },
                    None => ValueRewrite {
                        from: RewriteFrom::Domain(compile(d, strip_dot(from))?),
                        to: compile(d, strip_dot(to))?,
                    },
                };
                list.push(rule);
            }
            "proxy_cookie_path" => {
                let Some(list) = push_to(&mut self.paths, d)? else {
                    return Ok(true);
                };
                let (from, to) = (d.args[0].value.as_str(), d.args[1].value.as_str());
                let from = match from.strip_prefix('~') {
                    Some(re) => match re.strip_prefix('*') {
                        Some(re) => RewriteFrom::Regex(super::rewrite::regex(re, true, d)?),
                        None => RewriteFrom::Regex(super::rewrite::regex(re, false, d)?),
                    },
                    None => RewriteFrom::Prefix(compile(d, from)?),
                };
                list.push(ValueRewrite {
                    from,
                    to: compile(d, to)?,
                });
            }
            "proxy_cookie_flags" => {
                let Some(list) = push_to(&mut self.flags, d)? else {
                    return Ok(true);
                };
                let cookie = d.args[0].value.as_str();
                // nginx compiles a cookie regex caseless, `~*` or not.
                let cookie = match cookie.strip_prefix('~') {
                    Some(re) => CookieName::Regex(super::rewrite::regex(re, true, d)?),
                    None => CookieName::Exact(compile(d, cookie)?),
                };
                // Flags are checked per response, once rendered, as nginx
                // does: an unknown one is skipped then, not refused here.
                let flags = d.args[1..]
                    .iter()
                    .map(|a| compile(d, &a.value))
                    .collect::<Result<_, _>>()?;
                list.push(CookieFlags { cookie, flags });
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// This level's lines over `parent`'s, directive by directive.
    pub(crate) fn over(&self, parent: &CookieLayer) -> CookieLayer {
        CookieLayer {
            domains: self.domains.clone().or_else(|| parent.domains.clone()),
            paths: self.paths.clone().or_else(|| parent.paths.clone()),
            flags: self.flags.clone().or_else(|| parent.flags.clone()),
        }
    }

    /// The final lists (empty for `off` or unset).
    pub(crate) fn finish(&self) -> ProxyCookie {
        ProxyCookie {
            domains: self.domains.clone().unwrap_or_default(),
            paths: self.paths.clone().unwrap_or_default(),
            flags: self.flags.clone().unwrap_or_default(),
        }
    }
}

fn strip_dot(text: &str) -> &str {
    text.strip_prefix('.').unwrap_or(text)
}
