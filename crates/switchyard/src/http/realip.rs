//! The realip module: a trusted peer (`set_real_ip_from`) may name the
//! client in `real_ip_header`; `$remote_addr` (and [`Exchange::client_addr`])
//! then become that address. Runs before anything else looks at the client.

use std::net::IpAddr;

use crate::config::model::RealIp;

use super::exchange::Exchange;

/// Applies `realip` to `ex.client_addr`.
pub fn apply(realip: &RealIp, ex: &mut Exchange) {
    let peer = ex.conn.remote.ip();
    if realip.from.is_empty() || !trusted(realip, peer) {
        return;
    }
    let name = realip.header.as_deref().unwrap_or("x-real-ip");
    let values: Vec<&str> = ex
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.is_empty() {
        return;
    }
    let found = if name == "x-forwarded-for" {
        let joined = values.join(",");
        let addrs: Vec<&str> = joined.split(',').map(str::trim).collect();
        let mut chosen = None;
        for a in addrs.iter().rev() {
            let Some(ip) = parse(a) else { break };
            chosen = Some(ip);
            if !realip.recursive || !trusted(realip, ip) {
                break;
            }
        }
        chosen
    } else {
        parse(values[0].trim())
    };
    if let Some(ip) = found {
        ex.client_addr = ip;
    }
}

fn trusted(realip: &RealIp, ip: IpAddr) -> bool {
    realip.from.iter().any(|c| c.contains(ip))
}

fn parse(text: &str) -> Option<IpAddr> {
    text.parse().ok()
}
