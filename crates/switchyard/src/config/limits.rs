//! ngx_http_limit_req_module, ngx_http_limit_conn_module and the core
//! module's `limit_rate` / `limit_rate_after`: the zones of the http block
//! and one level's limits, merged as nginx merges them (a level with its
//! own `limit_req` lines inherits none).

use super::set;
use std::cell::RefCell;
use std::sync::Arc;

use nginx_conf::Directive;

use super::model::{LimitConn, LimitConnZone, LimitReq, LimitReqZone, Limits};
use super::{arg0, values, ConfigError};
use crate::observe::ErrorLevel;
use crate::vars::Template;

thread_local! {
    /// The zones of the http block being loaded: nginx resolves a zone a
    /// `limit_req` names wherever in http it is declared.
    static ZONES: RefCell<Zones> = RefCell::new(Zones::default());
}

/// The `limit_req_zone` and `limit_conn_zone` zones of one http block.
#[derive(Debug, Clone, Default)]
pub(crate) struct Zones {
    /// `limit_req_zone` zones in file order.
    pub req: Vec<Arc<LimitReqZone>>,
    /// `limit_conn_zone` zones in file order.
    pub conn: Vec<Arc<LimitConnZone>>,
}

/// Reads every zone declared in an http block (its direct children).
pub(crate) fn collect_zones(block: &[Directive]) -> Result<Zones, ConfigError> {
    let mut zones = Zones::default();
    for d in block {
        match d.name.as_str() {
            "limit_req_zone" => {
                super::check(d, super::directives::Ctx::HTTP)?;
                let zone = parse_req_zone(d)?;
                if let Some(old) = zones.req.iter().find(|z| z.name == zone.name) {
                    return Err(ConfigError::at(
                        format!(
                            "limit_req_zone \"{}\" is already bound to key \"{}\"",
                            zone.name, old.key_text
                        ),
                        &d.position,
                    ));
                }
                zones.req.push(Arc::new(zone));
            }
            "limit_conn_zone" => {
                super::check(d, super::directives::Ctx::HTTP)?;
                let zone = super::stream_values::parse_limit_conn_zone(d)?;
                if let Some(old) = zones.conn.iter().find(|z| z.name == zone.name) {
                    return Err(ConfigError::at(
                        format!(
                            "limit_conn_zone \"{}\" is already bound to key \"{}\"",
                            zone.name, old.key_text
                        ),
                        &d.position,
                    ));
                }
                zones.conn.push(Arc::new(zone));
            }
            _ => {}
        }
    }
    Ok(zones)
}

/// Runs `f` with `zones` visible to `limit_req` / `limit_conn` lines.
pub(crate) fn with_zones<T>(zones: Zones, f: impl FnOnce() -> T) -> T {
    let saved = ZONES.with(|z| std::mem::replace(&mut *z.borrow_mut(), zones));
    let out = f();
    ZONES.with(|z| *z.borrow_mut() = saved);
    out
}

/// `limit_req_zone KEY zone=NAME:SIZE rate=N(r/s|r/m)`.
fn parse_req_zone(d: &Directive) -> Result<LimitReqZone, ConfigError> {
    let at = &d.position;
    let key_text = arg0(d).to_string();
    let key = Template::compile(&key_text).map_err(|e| ConfigError::at(e.to_string(), at))?;
    let mut name = None;
    let mut size = 0;
    let mut rate = 1000;
    for arg in &d.args[1..] {
        let p = arg.value.as_str();
        if let Some(zone) = p.strip_prefix("zone=") {
            let (zone_name, text) = zone
                .split_once(':')
                .ok_or_else(|| ConfigError::at(format!("invalid zone size \"{p}\""), at))?;
            size = values::parse_size(text)
                .ok_or_else(|| ConfigError::at(format!("invalid zone size \"{p}\""), at))?;
            if size < 8 * 4096 {
                return Err(ConfigError::at(format!("zone \"{p}\" is too small"), at));
            }
            name = Some(zone_name.to_string());
        } else if let Some(text) = p.strip_prefix("rate=") {
            let (digits, scale) = if let Some(n) = text.strip_suffix("r/s") {
                (n, 1)
            } else if let Some(n) = text.strip_suffix("r/m") {
                (n, 60)
            } else {
                (text, 1)
            };
            let n = values::parse_number(digits)
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError::at(format!("invalid rate \"{p}\""), at))?;
            rate = n.saturating_mul(1000) / scale;
        } else {
            return Err(ConfigError::at(format!("invalid parameter \"{p}\""), at));
        }
    }
    let name = name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ConfigError::at("\"limit_req_zone\" must have \"zone\" parameter", at))?;
    Ok(LimitReqZone {
        name,
        key,
        key_text,
        // A rate below 1 r/m rounds to 0 in nginx too; keep it positive so
        // the delay arithmetic never divides by zero.
        rate: rate.max(1),
        size,
    })
}

/// `limit_req zone=NAME [burst=N] [nodelay | delay=N]`.
fn parse_req(d: &Directive) -> Result<LimitReq, ConfigError> {
    let at = &d.position;
    let mut zone_name = None;
    let mut burst = 0;
    let mut delay = 0;
    for arg in &d.args {
        let p = arg.value.as_str();
        if let Some(name) = p.strip_prefix("zone=") {
            zone_name = Some(name.to_string());
        } else if let Some(n) = p.strip_prefix("burst=") {
            burst = values::parse_number(n)
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError::at(format!("invalid burst value \"{p}\""), at))?;
        } else if let Some(n) = p.strip_prefix("delay=") {
            delay = values::parse_number(n)
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError::at(format!("invalid delay value \"{p}\""), at))?;
        } else if p == "nodelay" {
            // nginx's NGX_MAX_INT_T_VALUE / 1000: no excess is ever delayed.
            delay = u64::MAX / 1_000_000;
        } else {
            return Err(ConfigError::at(format!("invalid parameter \"{p}\""), at));
        }
    }
    let name = zone_name
        .ok_or_else(|| ConfigError::at("\"limit_req\" must have \"zone\" parameter", at))?;
    let zone = ZONES
        .with(|z| z.borrow().req.iter().find(|z| z.name == name).cloned())
        .ok_or_else(|| ConfigError::bare(format!("zero size shared memory zone \"{name}\"")))?;
    Ok(LimitReq {
        zone,
        burst: burst.saturating_mul(1000),
        delay: delay.saturating_mul(1000),
    })
}

/// `limit_conn ZONE N`, against the http block's zones.
fn parse_conn(d: &Directive) -> Result<LimitConn, ConfigError> {
    let zones = ZONES.with(|z| z.borrow().conn.clone());
    super::stream_values::parse_limit_conn(d, &zones)
}

/// `limit_req_log_level` / `limit_conn_log_level` (http and stream):
/// `info`, `notice`, `warn` or `error`.
pub(super) fn level(d: &Directive) -> Result<ErrorLevel, ConfigError> {
    Ok(match arg0(d) {
        "info" => ErrorLevel::Info,
        "notice" => ErrorLevel::Notice,
        "warn" => ErrorLevel::Warn,
        "error" => ErrorLevel::Error,
        other => {
            return Err(ConfigError::at(
                format!("invalid value \"{other}\""),
                &d.position,
            ))
        }
    })
}

/// A status for `limit_req_status` / `limit_conn_status` (400..=599).
fn status(d: &Directive) -> Result<u16, ConfigError> {
    let n = values::parse_number(arg0(d))
        .ok_or_else(|| ConfigError::at("invalid number", &d.position))?;
    if !(400..=599).contains(&n) {
        return Err(ConfigError::at(
            "value must be between 400 and 599",
            &d.position,
        ));
    }
    Ok(n as u16)
}

/// A size that may hold variables (`limit_rate $rate`), as nginx's
/// `ngx_http_set_complex_value_size_slot`: a constant is checked now.
fn size_value(d: &Directive) -> Result<Template, ConfigError> {
    let text = arg0(d);
    if !text.contains('$') && values::parse_size(text).is_none() {
        return Err(ConfigError::at(
            format!("invalid value \"{text}\""),
            &d.position,
        ));
    }
    Template::compile(text).map_err(|e| ConfigError::at(e.to_string(), &d.position))
}

/// One level's explicitly set limits.
#[derive(Debug, Clone, Default)]
pub(crate) struct LimitsLayer {
    req: Option<Vec<LimitReq>>,
    req_status: Option<u16>,
    req_log_level: Option<ErrorLevel>,
    req_dry_run: Option<bool>,
    conn: Option<Vec<LimitConn>>,
    conn_status: Option<u16>,
    conn_log_level: Option<ErrorLevel>,
    conn_dry_run: Option<bool>,
    rate: Option<Template>,
    rate_after: Option<Template>,
}

impl LimitsLayer {
    /// Applies `d` if it is one of these directives; returns whether it was.
    pub(crate) fn apply(&mut self, d: &Directive) -> Result<bool, ConfigError> {
        let flag = || values::parse_flag(arg0(d)).unwrap_or(false);
        match d.name.as_str() {
            "limit_req" => {
                let limit = parse_req(d)?;
                let limits = self.req.get_or_insert_with(Vec::new);
                if limits.iter().any(|l| Arc::ptr_eq(&l.zone, &limit.zone)) {
                    return Err(ConfigError::at(
                        "\"limit_req\" directive is duplicate",
                        &d.position,
                    ));
                }
                limits.push(limit);
            }
            "limit_req_status" => set(&mut self.req_status, d, status(d)?)?,
            "limit_req_log_level" => set(&mut self.req_log_level, d, level(d)?)?,
            "limit_req_dry_run" => set(&mut self.req_dry_run, d, flag())?,
            "limit_conn" => {
                let limit = parse_conn(d)?;
                let limits = self.conn.get_or_insert_with(Vec::new);
                if limits.iter().any(|l| Arc::ptr_eq(&l.zone, &limit.zone)) {
                    return Err(ConfigError::at(
                        "\"limit_conn\" directive is duplicate",
                        &d.position,
                    ));
                }
                limits.push(limit);
            }
            "limit_conn_status" => set(&mut self.conn_status, d, status(d)?)?,
            "limit_conn_log_level" => set(&mut self.conn_log_level, d, level(d)?)?,
            "limit_conn_dry_run" => set(&mut self.conn_dry_run, d, flag())?,
            "limit_rate" => set(&mut self.rate, d, size_value(d)?)?,
            "limit_rate_after" => set(&mut self.rate_after, d, size_value(d)?)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// This level's values over `parent`'s.
    pub(crate) fn over(&self, parent: &LimitsLayer) -> LimitsLayer {
        macro_rules! pick {
            ($($field:ident),*) => {
                LimitsLayer { $($field: self.$field.clone().or_else(|| parent.$field.clone()),)* }
            };
        }
        pick!(
            req,
            req_status,
            req_log_level,
            req_dry_run,
            conn,
            conn_status,
            conn_log_level,
            conn_dry_run,
            rate,
            rate_after
        )
    }

    /// The final limits with nginx's defaults.
    pub(crate) fn finish(&self) -> Limits {
        let req_log_level = self.req_log_level.unwrap_or(ErrorLevel::Error);
        Limits {
            req: self.req.clone().unwrap_or_default(),
            req_status: self.req_status.unwrap_or(503),
            req_log_level,
            // nginx logs a delay one level below the refusal (info stays info).
            req_delay_log_level: match req_log_level {
                ErrorLevel::Info | ErrorLevel::Notice => ErrorLevel::Info,
                ErrorLevel::Warn => ErrorLevel::Notice,
                _ => ErrorLevel::Warn,
            },
            req_dry_run: self.req_dry_run.unwrap_or(false),
            conn: self.conn.clone().unwrap_or_default(),
            conn_status: self.conn_status.unwrap_or(503),
            conn_log_level: self.conn_log_level.unwrap_or(ErrorLevel::Error),
            conn_dry_run: self.conn_dry_run.unwrap_or(false),
            rate: self.rate.clone(),
            rate_after: self.rate_after.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::model::Model;
    use crate::config::{load, ConfigError, LoadOptions};

    fn load_str(text: &str) -> Result<Model, ConfigError> {
        let dir = tempfile::tempdir().map_err(|e| ConfigError::bare(e.to_string()))?;
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, text).map_err(|e| ConfigError::bare(e.to_string()))?;
        load(&LoadOptions {
            conf_file: path,
            prefix: dir.path().to_path_buf(),
            globals: None,
        })
        .map(|l| l.model)
    }

    #[test]
    fn zones_and_limits_merge() {
        let model = load_str(
            "events {}\nhttp {\n\
             limit_req zone=one burst=3;\n\
             limit_req_zone $binary_remote_addr zone=one:1m rate=30r/m;\n\
             limit_conn_zone $binary_remote_addr zone=c:1m;\n\
             server { listen 127.0.0.1:8080;\n\
               location / { }\n\
               location /x { limit_req zone=one nodelay; limit_conn c 2; limit_req_status 429; }\n\
             } }",
        )
        .unwrap();
        let http = model.http.unwrap();
        assert_eq!(http.limit_req_zones[0].rate, 500);
        let server = &http.servers[0];
        let root = &server.locations[0].settings.limits;
        assert_eq!(root.req.len(), 1, "inherited from http");
        assert_eq!(root.req[0].burst, 3000);
        assert_eq!(root.req[0].delay, 0);
        assert_eq!(root.req_status, 503);
        let x = &server.locations[1].settings.limits;
        assert_eq!(x.req[0].burst, 0);
        assert!(x.req[0].delay > 1_000_000_000);
        assert_eq!(x.req_status, 429);
        assert_eq!(x.conn[0].max, 2);
    }

    #[test]
    fn nginx_messages() {
        for (conf, message) in [
            (
                "limit_req zone=nope;",
                "zero size shared memory zone \"nope\"",
            ),
            (
                "limit_req_zone $uri zone=a:1m rate=0r/s;",
                "invalid rate \"rate=0r/s\"",
            ),
            (
                "limit_req_zone $uri zone=a:1k rate=1r/s;",
                "zone \"zone=a:1k\" is too small",
            ),
            (
                "limit_req_zone $uri rate=1r/s rate=2r/s;",
                "\"limit_req_zone\" must have \"zone\" parameter",
            ),
            (
                "limit_req_zone $uri zone=a:1m rate=1r/s; limit_req zone=a burst=0;",
                "invalid burst value \"burst=0\"",
            ),
            (
                "limit_req_zone $uri zone=a:1m rate=1r/s; limit_req zone=a; limit_req zone=a;",
                "\"limit_req\" directive is duplicate",
            ),
            (
                "limit_req_zone $uri zone=a:1m rate=1r/s; limit_req_zone $uri zone=a:1m rate=1r/s;",
                "limit_req_zone \"a\" is already bound to key \"$uri\"",
            ),
            ("limit_req_status 600;", "value must be between 400 and 599"),
            ("limit_rate 1x;", "invalid value \"1x\""),
        ] {
            let text = format!("events {{}}\nhttp {{ {conf} }}");
            let err = load_str(&text).unwrap_err();
            assert!(err.message.contains(message), "{conf}: {}", err.message);
        }
    }
}
