//! `geo [$address] $variable { ... }` (http and stream), parsed line by
//! line as ngx_http_geo_module's handler reads it, with its messages.
//! `include` inside the block was expanded by the parser; nginx's binary
//! range base (`FILE.bin`) is a cache of the same text, so it is neither
//! written nor read: the text always gives the same values.

use std::collections::HashMap;
use std::sync::Arc;

use nginx_conf::{Directive, Position};

use super::ConfigError;
use crate::geo::inet::{self, Net};
use crate::geo::radix::Radix;
use crate::geo::ranges::Ranges;
use crate::geo::{Geo, Table};
use crate::observe::error_log::stderr_line;
use crate::observe::ErrorLevel;
use crate::vars::Var;

fn warn(message: &str, at: &Position) {
    stderr_line(ErrorLevel::Warn, &format!("{message} in {at}"));
}

fn var_name<'a>(text: &'a str, at: &Position) -> Result<&'a str, ConfigError> {
    text.strip_prefix('$')
        .ok_or_else(|| ConfigError::at(format!("invalid variable name \"{text}\""), at))
}

/// The networks of a block not in `ranges` mode, as it fills.
struct Trees {
    v4: Radix,
    v6: Radix,
}

impl Trees {
    fn tree(&mut self, net: &Net) -> &mut Radix {
        if net.v6 {
            &mut self.v6
        } else {
            &mut self.v4
        }
    }

    /// ngx_http_geo_cidr_add: a network given twice warns, the later wins.
    fn add(&mut self, net: Net, value: &str, text: &str, at: &Position) {
        let value: Arc<str> = Arc::from(value);
        let tree = self.tree(&net);
        if tree.insert(net.addr, net.bits, value.clone()).is_ok() {
            return;
        }
        let old = tree
            .find(net.addr)
            .map(|v| v.to_string())
            .unwrap_or_default();
        warn(
            &format!("duplicate network \"{text}\", value: \"{value}\", old value: \"{old}\""),
            at,
        );
        tree.delete(net.addr, net.bits);
        // Just freed, so it cannot be busy.
        let _ = tree.insert(net.addr, net.bits, value);
    }
}

/// ngx_http_geo_cidr_value: a network for an entry or `proxy`.
fn cidr_value(text: &str, at: &Position) -> Result<Net, ConfigError> {
    if text == "255.255.255.255" {
        return Ok(Net {
            v6: false,
            addr: inet::v4_key(inet::INADDR_NONE),
            bits: 32,
        });
    }
    let parsed = inet::ptocidr(text.as_bytes())
        .ok_or_else(|| ConfigError::at(format!("invalid network \"{text}\""), at))?;
    if parsed.low_bits {
        warn(&format!("low address bits of {text} are meaningless"), at);
    }
    Ok(parsed.net)
}

/// A `ranges` entry `a.b.c.d-e.f.g.h`, in host order.
fn range_value(text: &str, at: &Position) -> Result<(u32, u32), ConfigError> {
    let invalid = || ConfigError::at(format!("invalid range \"{text}\""), at);
    let (a, b) = text.split_once('-').ok_or_else(invalid)?;
    let start = inet::inet_addr(a.as_bytes()).ok_or_else(invalid)?;
    let end = inet::inet_addr(b.as_bytes()).ok_or_else(invalid)?;
    if start > end {
        return Err(invalid());
    }
    Ok((start, end))
}

/// Adds a `geo` block's variable to the block's geos (http's when `http`),
/// as nginx defines it: a `split_clients` of that name is a duplicate, a
/// `map` of it gives way (the later definition of a changeable variable
/// wins).
pub(crate) fn add_geo<M, S>(
    geos: &mut HashMap<String, Arc<Geo>>,
    maps: &mut HashMap<String, M>,
    splits: &HashMap<String, S>,
    d: &Directive,
    http: bool,
) -> Result<(), ConfigError> {
    let (name, geo) = parse_geo(d, http)?;
    if splits.contains_key(&name) {
        return Err(ConfigError::at(
            format!("the duplicate \"{name}\" variable"),
            &d.position,
        ));
    }
    maps.remove(&name);
    geos.insert(name, Arc::new(geo));
    Ok(())
}

/// Parses a `geo` block (`http`: the http module's, which has `proxy`
/// and `proxy_recursive`); returns the variable's name and the block.
pub(crate) fn parse_geo(d: &Directive, http: bool) -> Result<(String, Geo), ConfigError> {
    let at = &d.position;
    let first = d.args.first().map_or("", |a| a.value.as_str());
    let mut source_name = None;
    let mut name = var_name(first, at)?;
    if let Some(second) = d.args.get(1) {
        source_name = Some(name);
        name = var_name(&second.value, at)?;
    }
    let lower = name.to_ascii_lowercase();
    if !Var::is_user(name) {
        return Err(ConfigError::at(
            format!("the duplicate \"{name}\" variable"),
            at,
        ));
    }
    let mut ranges_mode = false;
    let mut trees: Option<Trees> = None;
    let mut ranges = Ranges::default();
    let mut default: Option<Arc<str>> = None;
    let mut proxies = Vec::new();
    let mut proxy_recursive = false;
    let mut volatile = false;
    for line in d.block.as_deref().unwrap_or_default() {
        let lat = &line.position;
        if line.block.is_some() {
            return Err(ConfigError::at("unexpected \"{\"", lat));
        }
        let key = line.name.as_str();
        if line.args.is_empty() {
            match key {
                "ranges" => {
                    if trees.is_some() {
                        return Err(ConfigError::at(
                            "the \"ranges\" directive must be the first directive inside \"geo\" block",
                            lat,
                        ));
                    }
                    ranges_mode = true;
                    continue;
                }
                "proxy_recursive" if http => {
                    proxy_recursive = true;
                    continue;
                }
                "volatile" => {
                    volatile = true;
                    continue;
                }
                _ => {}
            }
        }
        if line.args.len() != 1 {
            return Err(ConfigError::at("invalid number of the geo parameters", lat));
        }
        let arg = line.args[0].value.as_str();
        match key {
            // Already read in place by the parser.
            "include" => continue,
            "proxy" if http => {
                proxies.push(cidr_value(arg, lat)?);
                continue;
            }
            _ => {}
        }
        if ranges_mode {
            if key == "default" {
                if let Some(old) = &default {
                    warn(
                        &format!(
                            "duplicate default geo range value: \"{arg}\", old value: \"{old}\""
                        ),
                        lat,
                    );
                }
                default = Some(Arc::from(arg));
                continue;
            }
            let (net, del) = match key {
                "delete" => (arg, true),
                _ => (key, false),
            };
            let (start, end) = range_value(net, lat)?;
            if del {
                if ranges.delete(start, end) {
                    warn(&format!("no address range \"{net}\" to delete"), lat);
                }
                continue;
            }
            ranges
                .add(start, end, &Arc::from(arg), net, &mut |w| warn(&w, lat))
                .map_err(|e| ConfigError::at(e.to_string(), lat))?;
            continue;
        }
        let trees = trees.get_or_insert_with(|| Trees {
            v4: Radix::new(),
            v6: Radix::new(),
        });
        if key == "default" {
            for v6 in [false, true] {
                let net = Net {
                    v6,
                    addr: 0,
                    bits: 0,
                };
                trees.add(net, arg, key, lat);
            }
            continue;
        }
        let (net_text, del) = match key {
            "delete" => (arg, true),
            _ => (key, false),
        };
        let net = cidr_value(net_text, lat)?;
        if del {
            if !trees.tree(&net).delete(net.addr, net.bits) {
                warn(&format!("no network \"{net_text}\" to delete"), lat);
            }
            continue;
        }
        trees.add(net, arg, net_text, lat);
    }
    let source = match source_name {
        None => None,
        Some(s) => Some(Var::from_name(s).ok_or_else(|| {
            let stream = !http;
            let message = if crate::known_vars::is_nginx_variable(s, stream) {
                format!("variable \"${s}\" is not supported yet")
            } else {
                format!("unknown \"{s}\" variable")
            };
            ConfigError::at(message, at)
        })?),
    };
    let table = if ranges_mode {
        Table::Ranges {
            ranges,
            default: default.unwrap_or_else(|| Arc::from("")),
        }
    } else {
        let mut trees = trees.unwrap_or_else(|| Trees {
            v4: Radix::new(),
            v6: Radix::new(),
        });
        // The empty default under everything; a `default` already there
        // stays.
        let _ = trees.v4.insert(0, 0, Arc::from(""));
        let _ = trees.v6.insert(0, 0, Arc::from(""));
        Table::Cidr {
            v4: trees.v4,
            v6: trees.v6,
        }
    };
    Ok((
        lower,
        Geo {
            source,
            proxies,
            proxy_recursive,
            volatile,
            table,
        },
    ))
}
