//! ngx_http_gzip_module's directives (and the core module's `gzip_vary`,
//! `gzip_http_version`, `gzip_proxied` and `gzip_disable`): one level's
//! values, merged as nginx merges them.

use super::set;
use nginx_conf::Directive;

use super::model::{Gzip, GzipStatic, GzipTypes, Proxied};
use super::{arg0, invalid_value, values, ConfigError};

/// One level's explicitly set gzip values.
#[derive(Debug, Clone, Default)]
pub(crate) struct GzipLayer {
    enable: Option<bool>,
    types: Option<GzipTypes>,
    min_length: Option<u64>,
    level: Option<u32>,
    proxied: Option<u16>,
    vary: Option<bool>,
    http_version_11: Option<bool>,
    disable_msie6: Option<bool>,
    disable: Option<Vec<regex::Regex>>,
    buffers: Option<(u64, u64)>,
    static_files: Option<GzipStatic>,
    gunzip: Option<bool>,
    gunzip_buffers: Option<(u64, u64)>,
}

fn flag(d: &Directive) -> bool {
    values::parse_flag(arg0(d)).unwrap_or(false)
}

/// `gzip_buffers` / `gunzip_buffers NUMBER SIZE`, both above zero.
fn buffers(d: &Directive) -> Result<(u64, u64), ConfigError> {
    let n = values::parse_number(&d.args[0].value).filter(|n| *n > 0);
    let size = values::parse_size(&d.args[1].value).filter(|n| *n > 0);
    match (n, size) {
        (Some(n), Some(size)) => Ok((n, size)),
        _ => Err(invalid_value(d)),
    }
}

impl GzipLayer {
    /// Applies `d` if it is one of these directives; returns whether it was.
    pub(crate) fn apply(&mut self, d: &Directive) -> Result<bool, ConfigError> {
        match d.name.as_str() {
            "gzip" => set(&mut self.enable, d, flag(d))?,
            "gzip_vary" => set(&mut self.vary, d, flag(d))?,
            "gzip_min_length" => {
                let n = values::parse_size(arg0(d)).ok_or_else(|| invalid_value(d))?;
                set(&mut self.min_length, d, n)?
            }
            "gzip_comp_level" => {
                let n = values::parse_number(arg0(d)).ok_or_else(|| {
                    ConfigError::at(
                        format!("\"{}\" directive invalid number", d.name),
                        &d.position,
                    )
                })?;
                if !(1..=9).contains(&n) {
                    return Err(ConfigError::at(
                        format!("\"{}\" directive value must be between 1 and 9", d.name),
                        &d.position,
                    ));
                }
                set(&mut self.level, d, n as u32)?
            }
            "gzip_http_version" => {
                let v = match arg0(d) {
                    v if v.eq_ignore_ascii_case("1.0") => false,
                    v if v.eq_ignore_ascii_case("1.1") => true,
                    other => {
                        return Err(ConfigError::at(
                            format!("invalid value \"{other}\""),
                            &d.position,
                        ))
                    }
                };
                set(&mut self.http_version_11, d, v)?
            }
            "gzip_buffers" => set(&mut self.buffers, d, buffers(d)?)?,
            "gunzip_buffers" => set(&mut self.gunzip_buffers, d, buffers(d)?)?,
            "gunzip" => set(&mut self.gunzip, d, flag(d))?,
            "gzip_static" => {
                let mode = match arg0(d) {
                    "off" => GzipStatic::Off,
                    "on" => GzipStatic::On,
                    "always" => GzipStatic::Always,
                    other => {
                        return Err(ConfigError::at(
                            format!("invalid value \"{other}\""),
                            &d.position,
                        ))
                    }
                };
                set(&mut self.static_files, d, mode)?
            }
            "gzip_types" => self.add_types(d),
            "gzip_proxied" => {
                let mut mask = self.proxied.unwrap_or(0);
                for a in &d.args {
                    let bit = Proxied::ALL
                        .iter()
                        .find(|(name, _)| a.value.eq_ignore_ascii_case(name))
                        .map(|(_, bit)| *bit)
                        .ok_or_else(|| {
                            ConfigError::at(format!("invalid value \"{}\"", a.value), &d.position)
                        })?;
                    mask |= bit;
                }
                self.proxied = Some(mask);
            }
            "gzip_disable" => {
                let list = self.disable.get_or_insert_with(Vec::new);
                for a in &d.args {
                    if a.value == "msie6" {
                        self.disable_msie6 = Some(true);
                        continue;
                    }
                    let re = super::pcre::compile(&a.value, true)
                        .map_err(|e| ConfigError::at(e.to_string(), &d.position))?;
                    list.push(re);
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `gzip_types`: repeated lines add up; `*` takes any type; `text/html`
    /// is always in (nginx's default type is put in first).
    fn add_types(&mut self, d: &Directive) {
        let types = self
            .types
            .get_or_insert_with(|| GzipTypes::List(vec!["text/html".to_string()]));
        for a in &d.args {
            match types {
                GzipTypes::Any => return,
                GzipTypes::List(list) => {
                    if a.value == "*" {
                        *types = GzipTypes::Any;
                        return;
                    }
                    let t = a.value.to_ascii_lowercase();
                    if !list.contains(&t) {
                        list.push(t);
                    }
                }
            }
        }
    }

    /// This level's values over `parent`'s.
    pub(crate) fn over(&self, parent: &GzipLayer) -> GzipLayer {
        macro_rules! pick {
            ($($field:ident),*) => {
                GzipLayer { $($field: self.$field.clone().or_else(|| parent.$field.clone()),)* }
            };
        }
        pick!(
            enable,
            types,
            min_length,
            level,
            proxied,
            vary,
            http_version_11,
            disable_msie6,
            disable,
            buffers,
            static_files,
            gunzip,
            gunzip_buffers
        )
    }

    /// The final settings with nginx's defaults for anything unset.
    pub(crate) fn finish(&self) -> Gzip {
        Gzip {
            enable: self.enable.unwrap_or(false),
            types: self
                .types
                .clone()
                .unwrap_or_else(|| GzipTypes::List(vec!["text/html".to_string()])),
            min_length: self.min_length.unwrap_or(20),
            level: self.level.unwrap_or(1),
            proxied: self.proxied.unwrap_or(Proxied::OFF),
            vary: self.vary.unwrap_or(false),
            http_version_11: self.http_version_11.unwrap_or(true),
            disable_msie6: self.disable_msie6.unwrap_or(false),
            disable: self.disable.clone().unwrap_or_default(),
            static_files: self.static_files.unwrap_or(GzipStatic::Off),
            gunzip: self.gunzip.unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(text: &str) -> Result<GzipLayer, ConfigError> {
        let parsed = nginx_conf::parse_str(
            text,
            nginx_conf::Source::CommandLine,
            std::path::Path::new("/"),
        )
        .unwrap();
        let mut l = GzipLayer::default();
        for d in &parsed.directives {
            assert!(l.apply(d)?, "{}", d.name);
        }
        Ok(l)
    }

    #[test]
    fn defaults_are_nginx_s() {
        let g = GzipLayer::default().finish();
        assert!(!g.enable && !g.vary && g.http_version_11 && !g.disable_msie6);
        assert_eq!((g.min_length, g.level, g.proxied), (20, 1, Proxied::OFF));
        assert!(g.types.matches("text/html") && !g.types.matches("text/css"));
    }

    #[test]
    fn types_add_up_and_star_takes_all() {
        let g = layer("gzip_types text/css; gzip_types Application/JSON;")
            .unwrap()
            .finish();
        for t in ["text/html", "text/css", "application/json"] {
            assert!(g.types.matches(t), "{t}");
        }
        assert!(!g.types.matches("image/png"));
        let g = layer("gzip_types *;").unwrap().finish();
        assert!(g.types.matches("image/png") && g.types.matches(""));
    }

    #[test]
    fn inner_levels_inherit_what_they_do_not_set() {
        let outer = layer("gzip on; gzip_disable msie6 curl; gzip_comp_level 5;").unwrap();
        let inner = layer("gzip_disable wget;").unwrap().over(&outer).finish();
        assert!(inner.enable && inner.disable_msie6);
        assert_eq!(inner.level, 5);
        assert_eq!(inner.disable.len(), 1, "the regexes are replaced");
        assert!(inner.disable[0].is_match("WGET/1"));
    }

    #[test]
    fn bad_values_have_nginx_s_messages() {
        let msg = |t: &str| layer(t).unwrap_err().message;
        assert_eq!(
            msg("gzip_comp_level 10;"),
            "\"gzip_comp_level\" directive value must be between 1 and 9"
        );
        assert_eq!(
            msg("gzip_comp_level x;"),
            "\"gzip_comp_level\" directive invalid number"
        );
        assert_eq!(
            msg("gzip_proxied expired bogus;"),
            "invalid value \"bogus\""
        );
        assert_eq!(msg("gzip_http_version 2.0;"), "invalid value \"2.0\"");
        assert_eq!(
            msg("gzip_buffers 0 4k;"),
            "\"gzip_buffers\" directive invalid value"
        );
        assert_eq!(msg("gzip on; gzip off;"), "\"gzip\" directive is duplicate");
        assert_eq!(
            msg("gzip_min_length 1x;"),
            "\"gzip_min_length\" directive invalid value"
        );
        let p = layer("gzip_proxied expired; gzip_proxied auth;")
            .unwrap()
            .finish()
            .proxied;
        assert_eq!(p, Proxied::EXPIRED | Proxied::AUTH);
    }
}
