//! How a request body is read: the core module's `client_body_buffer_size`,
//! `client_body_in_file_only`, `client_body_in_single_buffer` and
//! `client_body_temp_path`, and the proxy's `proxy_request_buffering`; one
//! level's values, merged as nginx merges them.

use super::set;
use std::path::Path;

use nginx_conf::Directive;

use super::model::{BodyReading, InFileOnly, TempPath};
use super::{arg0, full_path, invalid_value, values, ConfigError};

/// nginx's `client_body_buffer_size` default: two memory pages.
const DEFAULT_BUFFER_SIZE: u64 = 8 * 1024;

/// One level's explicitly set values.
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyLayer {
    buffer_size: Option<u64>,
    in_file_only: Option<InFileOnly>,
    single_buffer: Option<bool>,
    temp_path: Option<TempPath>,
    proxy_request_buffering: Option<bool>,
}

impl BodyLayer {
    /// Applies `d` if it is one of these directives; returns whether it was.
    pub(crate) fn apply(&mut self, d: &Directive, prefix: &Path) -> Result<bool, ConfigError> {
        match d.name.as_str() {
            "client_body_buffer_size" => {
                let size = values::parse_size(arg0(d)).ok_or_else(|| invalid_value(d))?;
                set(&mut self.buffer_size, d, size)?
            }
            "client_body_in_file_only" => {
                let mode = match arg0(d) {
                    "off" => InFileOnly::Off,
                    "on" => InFileOnly::On,
                    "clean" => InFileOnly::Clean,
                    other => {
                        return Err(ConfigError::at(
                            format!("invalid value \"{other}\""),
                            &d.position,
                        ))
                    }
                };
                set(&mut self.in_file_only, d, mode)?
            }
            // A body held here is one buffer whatever this says (nginx's
            // flag only shapes its buffers), so it is kept for `-t`'s checks.
            "client_body_in_single_buffer" => set(&mut self.single_buffer, d, flag(d)?)?,
            "client_body_temp_path" => set(&mut self.temp_path, d, temp_path(d, prefix)?)?,
            "proxy_request_buffering" => set(&mut self.proxy_request_buffering, d, flag(d)?)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// This level's values over `parent`'s.
    pub(crate) fn over(&self, parent: &BodyLayer) -> BodyLayer {
        BodyLayer {
            buffer_size: self.buffer_size.or(parent.buffer_size),
            in_file_only: self.in_file_only.or(parent.in_file_only),
            single_buffer: self.single_buffer.or(parent.single_buffer),
            temp_path: self.temp_path.clone().or_else(|| parent.temp_path.clone()),
            proxy_request_buffering: self
                .proxy_request_buffering
                .or(parent.proxy_request_buffering),
        }
    }

    /// The final values, nginx's defaults for what is unset.
    pub(crate) fn finish(&self, prefix: &Path) -> BodyReading {
        BodyReading {
            buffer_size: self.buffer_size.unwrap_or(DEFAULT_BUFFER_SIZE),
            in_file_only: self.in_file_only.unwrap_or(InFileOnly::Off),
            temp_path: self.temp_path.clone().unwrap_or_else(|| TempPath {
                dir: full_path(prefix, "client_body_temp"),
                levels: Vec::new(),
            }),
            proxy_request_buffering: self.proxy_request_buffering.unwrap_or(true),
        }
    }
}

fn flag(d: &Directive) -> Result<bool, ConfigError> {
    values::parse_flag(arg0(d)).ok_or_else(|| {
        ConfigError::at(
            format!(
                "invalid value \"{}\" in \"{}\" directive, it must be \"on\" or \"off\"",
                arg0(d),
                d.name
            ),
            &d.position,
        )
    })
}

/// `PATH [LEVEL1 [LEVEL2 [LEVEL3]]]` as nginx's `ngx_conf_set_path_slot`
/// reads it: each level a positive number, the levels' digits at most 10
/// (the length of a temporary file's name) in all.
fn temp_path(d: &Directive, prefix: &Path) -> Result<TempPath, ConfigError> {
    let invalid = || ConfigError::at("invalid value", &d.position);
    if d.args.len() > 4 {
        return Err(ConfigError::at(
            format!("invalid number of arguments in \"{}\" directive", d.name),
            &d.position,
        ));
    }
    let name = arg0(d);
    let name = name.strip_suffix('/').unwrap_or(name);
    let mut levels = Vec::new();
    for arg in &d.args[1..] {
        let level = values::parse_number(&arg.value)
            .filter(|n| *n > 0)
            .ok_or_else(invalid)?;
        levels.push(usize::try_from(level).map_err(|_| invalid())?);
    }
    if levels.iter().sum::<usize>() > 10 {
        return Err(invalid());
    }
    Ok(TempPath {
        dir: full_path(prefix, name),
        levels,
    })
}
