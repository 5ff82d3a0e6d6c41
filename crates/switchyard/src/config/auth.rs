//! ngx_http_auth_basic_module's `auth_basic` / `auth_basic_user_file`,
//! ngx_http_auth_request_module's `auth_request` / `auth_request_set` and
//! the core module's `satisfy`: one level's values, merged as nginx
//! merges them.

use super::set;
use std::cell::RefCell;
use std::path::PathBuf;

use nginx_conf::Directive;

use super::model::Auth;
use super::{arg0, ConfigError};
use crate::vars::Template;

thread_local! {
    /// The directory of nginx.conf while the http block loads: nginx
    /// resolves a relative `auth_basic_user_file` against it.
    static CONF_PREFIX: RefCell<PathBuf> = const { RefCell::new(PathBuf::new()) };
}

/// Runs `f` with relative user files resolved against `conf_prefix`.
pub(crate) fn with_conf_prefix<T>(conf_prefix: PathBuf, f: impl FnOnce() -> T) -> T {
    let saved = CONF_PREFIX.with(|p| std::mem::replace(&mut *p.borrow_mut(), conf_prefix));
    let out = f();
    CONF_PREFIX.with(|p| *p.borrow_mut() = saved);
    out
}

/// One level's explicitly set values.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthLayer {
    realm: Option<Option<Template>>,
    user_file: Option<Template>,
    satisfy_any: Option<bool>,
    request: Option<Option<String>>,
    request_set: Option<Vec<(String, Template)>>,
}

fn compile(d: &Directive, text: &str) -> Result<Template, ConfigError> {
    Template::compile(text).map_err(|e| ConfigError::at(e.to_string(), &d.position))
}

impl AuthLayer {
    /// Applies `d` if it is one of these directives; returns whether it was.
    pub(crate) fn apply(&mut self, d: &Directive) -> Result<bool, ConfigError> {
        match d.name.as_str() {
            "auth_basic" => {
                // `off` written as such turns it off; a realm that only
                // evaluates to "off" is checked per request.
                let realm = match arg0(d) {
                    "off" => None,
                    text => Some(compile(d, text)?),
                };
                set(&mut self.realm, d, realm)?
            }
            "auth_basic_user_file" => {
                let text = arg0(d);
                // A relative path is under nginx.conf's directory (nginx's
                // conf prefix), variables or not.
                let text = if text.starts_with('/') {
                    text.to_string()
                } else {
                    CONF_PREFIX.with(|p| p.borrow().join(text).display().to_string())
                };
                set(&mut self.user_file, d, compile(d, &text)?)?
            }
            "auth_request" => {
                let uri = match arg0(d) {
                    "off" => None,
                    uri => Some(uri.to_string()),
                };
                set(&mut self.request, d, uri)?
            }
            "auth_request_set" => {
                let super::model::Op::Set(name, value) = super::rewrite::parse_set(d)? else {
                    return Ok(true);
                };
                self.request_set
                    .get_or_insert_with(Vec::new)
                    .push((name, value));
            }
            "satisfy" => {
                let any = match arg0(d) {
                    "all" => false,
                    "any" => true,
                    other => {
                        return Err(ConfigError::at(
                            format!("invalid value \"{other}\" in \"satisfy\" directive, it must be \"all\" or \"any\""),
                            &d.position,
                        ))
                    }
                };
                set(&mut self.satisfy_any, d, any)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// This level's values over `parent`'s.
    pub(crate) fn over(&self, parent: &AuthLayer) -> AuthLayer {
        AuthLayer {
            realm: self.realm.clone().or_else(|| parent.realm.clone()),
            user_file: self.user_file.clone().or_else(|| parent.user_file.clone()),
            satisfy_any: self.satisfy_any.or(parent.satisfy_any),
            request: self.request.clone().or_else(|| parent.request.clone()),
            request_set: self
                .request_set
                .clone()
                .or_else(|| parent.request_set.clone()),
        }
    }

    /// The final values.
    pub(crate) fn finish(&self) -> Auth {
        Auth {
            realm: self.realm.clone().flatten(),
            user_file: self.user_file.clone(),
            satisfy_any: self.satisfy_any.unwrap_or(false),
            request: self.request.clone().flatten(),
            request_set: self.request_set.clone().unwrap_or_default(),
        }
    }
}
