//! The realip module: a trusted peer (`set_real_ip_from`) may name the
//! client in `real_ip_header`; `$remote_addr` (and [`Exchange::client_addr`])
//! then become that address. Runs before anything else looks at the client.

use std::net::IpAddr;

use crate::config::model::RealIp;

use super::exchange::Exchange;

/// Applies `realip` to `ex.client_addr` (and `ex.client_port`: a port
/// the header gives with the address, else none).
pub fn apply(realip: &RealIp, ex: &mut Exchange) {
    let trusted_peer = match ex.conn.remote.ip() {
        Some(ip) => trusted(realip, ip),
        // A Unix socket's peer: trusted by `set_real_ip_from unix:`.
        None => realip.from_unix,
    };
    if !trusted_peer {
        return;
    }
    let name = realip.header.as_deref().unwrap_or("x-real-ip");
    if name == "proxy_protocol" {
        // The PROXY header's source, when it named one.
        if let Some((source, _)) = ex.conn.proxy_protocol {
            ex.client_addr = crate::config::access::Client::Ip(source.ip());
            ex.client_port = Some(source.port());
            ex.realip_applied = true;
        }
        return;
    }
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
            let Some(found) = parse(a) else { break };
            chosen = Some(found);
            if !realip.recursive || !trusted(realip, found.0) {
                break;
            }
        }
        chosen
    } else {
        parse(values[0].trim())
    };
    if let Some((ip, port)) = found {
        ex.client_addr = crate::config::access::Client::Ip(ip);
        ex.client_port = port;
        ex.realip_applied = true;
    }
}

fn trusted(realip: &RealIp, ip: IpAddr) -> bool {
    realip.from.iter().any(|c| c.contains(ip))
}

/// An address with an optional port, as nginx's ngx_parse_addr_port reads
/// it: `addr`, `addr:port`, `[v6]` or `[v6]:port`, the port 1 to 65535.
fn parse(text: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(ip) = text.parse() {
        return Some((ip, None));
    }
    let (addr, port) = if let Some(inner) = text.strip_prefix('[') {
        let (addr, rest) = inner.split_once(']')?;
        if rest.is_empty() {
            return Some((addr.parse().ok()?, None));
        }
        (addr, rest.strip_prefix(':')?)
    } else {
        text.split_once(':')?
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port = port.parse::<u16>().ok().filter(|&p| p > 0)?;
    Some((addr.parse().ok()?, Some(port)))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn addresses_take_a_port_as_nginx_reads_them() {
        let v4 = "192.0.2.1".parse().unwrap();
        let v6 = "2001:db8::1".parse().unwrap();
        assert_eq!(parse("192.0.2.1"), Some((v4, None)));
        assert_eq!(parse("192.0.2.1:123"), Some((v4, Some(123))));
        assert_eq!(parse("2001:db8::1"), Some((v6, None)));
        assert_eq!(parse("[2001:db8::1]"), Some((v6, None)));
        assert_eq!(parse("[2001:db8::1]:8080"), Some((v6, Some(8080))));
        for bad in [
            "192.0.2.1:0",
            "192.0.2.1:65536",
            "192.0.2.1:",
            "192.0.2.1:+1",
            "[2001:db8::1]x",
            "x:1",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
