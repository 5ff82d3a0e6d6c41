//! nginx's preaccess phase for limit_req and limit_conn (limit_req's
//! handler runs first, as nginx registers it last), and the response end
//! of both limit_conn (counts held until the response is sent) and
//! limit_rate. The zones live in the generation and survive a reload that
//! keeps their key and size.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::Response;
use http_body_util::BodyExt;

use crate::config::model::{Http, Limits, Settings};
use crate::observe::{error_log, ErrorLevel};

use super::body::ResponseBody;
use super::exchange::Exchange;
use super::limit_conn::{ConnZone, Refused};
use super::limit_rate::{Limited, Pace};
use super::limit_req::{now_ms, Lookup, ReqZone};
use crate::vars::VarSource;

/// The zones of a generation, by name.
#[derive(Debug, Default)]
pub struct LimitZones {
    /// `limit_req_zone` buckets.
    pub req: HashMap<String, Arc<ReqZone>>,
    /// `limit_conn_zone` counts.
    pub conn: HashMap<String, Arc<ConnZone>>,
}

impl LimitZones {
    /// The zones of `http`, keeping `previous`'s state for a zone whose key
    /// and size did not change. A zone whose key changed at the same size
    /// fails the reload with nginx's message.
    pub fn build(http: &Http, previous: Option<&LimitZones>) -> Result<LimitZones, String> {
        let mut zones = LimitZones::default();
        for zone in &http.limit_req_zones {
            let old = previous.and_then(|p| p.req.get(&zone.name));
            let state = match old {
                Some(old) if old.config.size == zone.size => {
                    if old.config.key_text != zone.key_text {
                        return Err(format!(
                            "limit_req \"{}\" uses the \"{}\" key while previously it used the \"{}\" key",
                            zone.name, zone.key_text, old.config.key_text
                        ));
                    }
                    old.renewed(zone.clone())
                }
                _ => ReqZone::new(zone.clone()),
            };
            zones.req.insert(zone.name.clone(), state);
        }
        for zone in &http.limit_conn_zones {
            let old = previous.and_then(|p| p.conn.get(&zone.name));
            let state = match old {
                Some(old) if old.config.size == zone.size => {
                    if old.config.key_text != zone.key_text {
                        return Err(format!(
                            "limit_conn_zone \"{}\" uses the \"{}\" key while previously it used the \"{}\" key",
                            zone.name, zone.key_text, old.config.key_text
                        ));
                    }
                    old.clone()
                }
                _ => ConnZone::new(zone.clone()),
            };
            zones.conn.insert(zone.name.clone(), state);
        }
        Ok(zones)
    }
}

/// The preaccess phase: `Some(status)` refuses the request. A request is
/// limited once, in the first location that has limits (nginx marks the
/// main request); a delayed request waits here.
pub async fn preaccess(limits: &Limits, zones: &LimitZones, ex: &mut Exchange) -> Option<u16> {
    if ex.limit_req_status.is_none() && !limits.req.is_empty() {
        match limit_req(limits, zones, ex) {
            Req::Refuse(status) => return Some(status),
            Req::Delay(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Req::Pass => {}
        }
    }
    if ex.limit_conn_status.is_none() && !limits.conn.is_empty() {
        return limit_conn(limits, zones, ex);
    }
    None
}

enum Req {
    Pass,
    Delay(u64),
    Refuse(u16),
}

fn thousandths(n: u64) -> String {
    format!("{}.{:03}", n / 1000, n % 1000)
}

/// nginx's ngx_http_limit_req_handler.
fn limit_req(limits: &Limits, zones: &LimitZones, ex: &mut Exchange) -> Req {
    let now = now_ms();
    let last = limits.req.len() - 1;
    // Limits looked up but not yet accounted: (index, zone, key).
    let mut taken: Vec<(usize, &Arc<ReqZone>, Vec<u8>)> = Vec::new();
    let mut outcome = None;
    let mut current = 0;
    for (i, limit) in limits.req.iter().enumerate() {
        let Some(zone) = zones.req.get(&limit.zone.name) else {
            continue;
        };
        current = i;
        let key = limit.zone.key.render_bytes(&*ex);
        if key.is_empty() {
            continue;
        }
        if key.len() > 65535 {
            error_log::error(
                Some(ex.conn.id),
                &format!(
                    "the value of the \"{}\" key is more than 65535 bytes: \"{}\"{}",
                    limit.zone.key_text,
                    String::from_utf8_lossy(&key),
                    super::proxy::log_context(ex, None)
                ),
            );
            continue;
        }
        match zone.lookup(&key, limit.burst, i == last, now) {
            Lookup::Again => taken.push((i, zone, key)),
            other => {
                outcome = Some(other);
                break;
            }
        }
    }
    let excess = match outcome {
        None if taken.is_empty() => return Req::Pass,
        None => 0,
        Some(Lookup::Ok(excess)) => excess,
        Some(refused @ (Lookup::Busy(_) | Lookup::Full)) => {
            let name = &limits.req[current].zone.name;
            match refused {
                Lookup::Busy(excess) => error_log::log(
                    limits.req_log_level,
                    Some(ex.conn.id),
                    &format!(
                        "limiting requests{}, excess: {} by zone \"{name}\"{}",
                        if limits.req_dry_run { ", dry run" } else { "" },
                        thousandths(excess),
                        super::proxy::log_context(ex, None)
                    ),
                ),
                _ => error_log::log(
                    ErrorLevel::Alert,
                    None,
                    &format!("could not allocate node in limit_req zone \"{name}\""),
                ),
            }
            for (_, zone, key) in &taken {
                zone.release(key);
            }
            if limits.req_dry_run {
                ex.limit_req_status = Some("REJECTED_DRY_RUN");
                return Req::Pass;
            }
            ex.limit_req_status = Some("REJECTED");
            return Req::Refuse(limits.req_status);
        }
        Some(Lookup::Again) => 0,
    };
    // ngx_http_limit_req_account: the longest delay any limit asks for.
    let delay_of = |i: usize, excess: u64| {
        let limit = &limits.req[i];
        (excess > limit.delay).then(|| (excess - limit.delay) * 1000 / limit.zone.rate.max(1))
    };
    let mut worst = (delay_of(current, excess).unwrap_or(0), excess, current);
    for (i, zone, key) in taken.iter().rev() {
        let excess = zone.account(key, now_ms());
        if let Some(ms) = delay_of(*i, excess) {
            if ms > worst.0 {
                worst = (ms, excess, *i);
            }
        }
    }
    let (ms, excess, which) = worst;
    if ms == 0 {
        ex.limit_req_status = Some("PASSED");
        return Req::Pass;
    }
    error_log::log(
        limits.req_delay_log_level,
        Some(ex.conn.id),
        &format!(
            "delaying request{}, excess: {}, by zone \"{}\"{}",
            if limits.req_dry_run { ", dry run" } else { "" },
            thousandths(excess),
            limits.req[which].zone.name,
            super::proxy::log_context(ex, None)
        ),
    );
    if limits.req_dry_run {
        ex.limit_req_status = Some("DELAYED_DRY_RUN");
        return Req::Pass;
    }
    ex.limit_req_status = Some("DELAYED");
    Req::Delay(ms)
}

/// nginx's ngx_http_limit_conn_handler.
fn limit_conn(limits: &Limits, zones: &LimitZones, ex: &mut Exchange) -> Option<u16> {
    for limit in &limits.conn {
        let Some(zone) = zones.conn.get(&limit.zone.name) else {
            continue;
        };
        let key = limit.zone.key.render_bytes(&*ex);
        if key.is_empty() {
            continue;
        }
        if key.len() > 255 {
            error_log::error(
                Some(ex.conn.id),
                &format!(
                    "the value of the \"{}\" key is more than 255 bytes: \"{}\"{}",
                    limit.zone.key_text,
                    String::from_utf8_lossy(&key),
                    super::proxy::log_context(ex, None)
                ),
            );
            continue;
        }
        ex.limit_conn_status = Some("PASSED");
        match zone.enter(&key, limit.max) {
            Ok(held) => ex.limit_held.push(held),
            Err(why) => {
                if why == Refused::Limit {
                    error_log::log(
                        limits.conn_log_level,
                        Some(ex.conn.id),
                        &format!(
                            "limiting connections{} by zone \"{}\"{}",
                            if limits.conn_dry_run {
                                ", dry run,"
                            } else {
                                ""
                            },
                            limit.zone.name,
                            super::proxy::log_context(ex, None)
                        ),
                    );
                }
                // nginx's cleanup_all: the counts this request took go too.
                ex.limit_held.clear();
                if limits.conn_dry_run {
                    ex.limit_conn_status = Some("REJECTED_DRY_RUN");
                    return None;
                }
                ex.limit_conn_status = Some("REJECTED");
                return Some(limits.conn_status);
            }
        }
    }
    None
}

/// `limit_rate`'s value for this request: `set $limit_rate` first, else
/// the directive (its variables evaluated now).
pub fn rate(settings: &Settings, ex: &Exchange) -> u64 {
    if let Some(rate) = ex.limit_rate {
        return rate;
    }
    size_of(settings.limits.rate.as_ref(), ex)
}

fn size_of(template: Option<&crate::vars::Template>, ex: &Exchange) -> u64 {
    template
        .map(|t| t.render(ex as &dyn VarSource))
        .and_then(|text| crate::config::values::parse_size(&text))
        .unwrap_or(0)
}

/// The response end of the limits: the body keeps the request's
/// `limit_conn` counts until it is sent, and is paced by `limit_rate`.
pub fn finish(
    response: Response<ResponseBody>,
    settings: &Settings,
    ex: &mut Exchange,
) -> Response<ResponseBody> {
    let rate = rate(settings, ex);
    if rate == 0 && ex.limit_held.is_empty() {
        return response;
    }
    let pace = (rate > 0).then(|| Pace {
        rate,
        after: size_of(settings.limits.rate_after.as_ref(), ex),
        start: tokio::time::Instant::from_std(ex.start),
        head: head_bytes(&response),
    });
    let held = std::mem::take(&mut ex.limit_held);
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Limited::new(body, pace, held).boxed_unsync())
}

/// About what the response head takes on the wire (nginx counts it in the
/// bytes a connection has sent).
fn head_bytes(response: &Response<ResponseBody>) -> u64 {
    let mut n = 17 + 37 + 2;
    for (name, value) in response.headers() {
        n += name.as_str().len() + value.len() + 4;
    }
    n as u64
}
