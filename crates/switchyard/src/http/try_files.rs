//! `try_files` (nginx's precontent phase): the first name that exists
//! under `root` / `alias` becomes the URI served; when none does, the last
//! argument decides (an internal redirect, a named location, a status).

use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::model::{Alias, LocationConfig, TryFallback, TryFiles};
use crate::observe::{error_log, ErrorLevel};

use super::exchange::Exchange;

/// What `try_files` decided.
#[derive(Debug)]
pub enum Tried {
    /// A name exists: `ex.uri` names it; serve it. In a regex location
    /// with `alias`, the configuration whose alias is that file.
    Found(Option<Arc<LocationConfig>>),
    /// None exists: internal redirect to this URI (`?args` included).
    Redirect(String),
    /// None exists: internal redirect to this named location (`@name`).
    Named(String),
    /// None exists: `=CODE`.
    Status(u16),
}

/// Where nginx looks for `name`: under the alias (a prefix location's
/// alias replaces the location's prefix when `name` starts with it), or
/// under the root. Returns the path and the name as placed under it.
fn place<'a>(location: &LocationConfig, uri: &str, name: &'a str) -> (PathBuf, &'a str) {
    let (base, placed) = match &location.alias {
        Some(Alias {
            path,
            prefix: Some(prefix),
        }) => {
            // nginx compares with the URI's first bytes (the location's
            // prefix, as the location matched).
            let head = uri.get(..prefix.len()).unwrap_or(uri);
            (path, name.strip_prefix(head).unwrap_or(name))
        }
        Some(Alias { path, prefix: None }) => (path, name),
        None => (&location.settings.root, name),
    };
    let mut full = base.as_os_str().to_owned();
    full.push(placed);
    (PathBuf::from(full), placed)
}

/// Tries `tf`'s names for the request; on a find, `ex.uri` is changed to it.
pub async fn run(tf: &TryFiles, location: &Arc<LocationConfig>, ex: &mut Exchange) -> Tried {
    for file in &tf.files {
        let name = file.name.render(ex);
        let (path, placed) = place(location, &ex.uri, &name);
        let meta = match tokio::fs::metadata(&path).await {
            Ok(m) => m,
            Err(e) => {
                let quiet = e.kind() == ErrorKind::NotFound
                    || matches!(
                        e.raw_os_error(),
                        Some(libc::ENOTDIR) | Some(libc::ENAMETOOLONG)
                    );
                if !quiet {
                    error_log::log(
                        ErrorLevel::Crit,
                        Some(ex.conn.id),
                        &format!(
                            "stat() \"{}\" failed ({}){}",
                            path.display(),
                            error_log::os_error(&e),
                            super::proxy::log_context(ex, None)
                        ),
                    );
                }
                continue;
            }
        };
        if meta.is_dir() != file.dir {
            continue;
        }
        return match &location.alias {
            None => {
                ex.uri = name;
                Tried::Found(None)
            }
            Some(Alias {
                path: alias,
                prefix: None,
            }) => {
                if file.dir {
                    return Tried::Found(None);
                }
                // nginx's add_uri_to_alias: the alias with the URI after it.
                let mut whole = alias.as_os_str().to_owned();
                whole.push(&name);
                let mut derived = LocationConfig::clone(location);
                derived.alias = Some(Alias {
                    path: PathBuf::from(whole),
                    prefix: None,
                });
                ex.uri = name;
                Tried::Found(Some(Arc::new(derived)))
            }
            Some(Alias {
                prefix: Some(prefix),
                ..
            }) => {
                let head = ex.uri.get(..prefix.len()).unwrap_or(&ex.uri).to_string();
                ex.uri = format!("{head}{placed}");
                Tried::Found(None)
            }
        };
    }
    match &tf.fallback {
        TryFallback::Code(code) => Tried::Status(*code),
        TryFallback::Uri(template) => {
            let rendered = template.render(ex);
            // nginx places the last name as the others (an alias prefix
            // taken off it too) before redirecting to it.
            let (_, placed) = place(location, &ex.uri, &rendered);
            let target = placed.to_string();
            if target.starts_with('@') {
                return Tried::Named(target);
            }
            if !target.contains('?') {
                // ngx_http_split_args: a URI without '?' has no arguments.
                ex.args = None;
            }
            Tried::Redirect(target)
        }
    }
}
