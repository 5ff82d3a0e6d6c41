//! Parsing of the per-request knobs (`?status=`, `x-echo-delay`, `?size=` ...).
//!
//! Everything here returns a short, client-facing error message because bad
//! values are answered with `400` rather than being silently ignored: a typo
//! in a test should fail loudly.

use std::time::Duration;

use http::{HeaderMap, StatusCode};

/// A client-facing reason why a request knob could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

fn err(msg: impl Into<String>) -> ParamError {
    ParamError(msg.into())
}

/// Parses a delay such as `200ms`, `2s` or `1.5s`; a bare number means milliseconds.
pub fn parse_delay(s: &str) -> Result<Duration, ParamError> {
    let s = s.trim();
    let (num, scale_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| err(format!("bad delay {s:?}: expected e.g. 200ms or 2s")))?;
    if !value.is_finite() || value < 0.0 {
        return Err(err(format!("bad delay {s:?}: must be non-negative")));
    }
    let ms = value * scale_ms;
    // Anything beyond a day is certainly a mistake and would overflow nothing
    // useful; it gets clamped by max-delay anyway.
    Ok(Duration::from_secs_f64((ms / 1000.0).min(86_400.0)))
}

/// Parses a size such as `10MiB`, `512KiB`, `1GiB`, `100B` or `100` (bytes);
/// decimal `KB`/`MB`/`GB` are accepted too.
pub fn parse_size(s: &str) -> Result<u64, ParamError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| err(format!("bad size {s:?}: expected e.g. 100, 10KiB or 10MiB")))?;
    let mult: u64 = match unit.trim() {
        "" | "B" | "b" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" | "m" => 1 << 20,
        "GiB" | "G" | "g" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(err(format!("bad size unit {other:?} in {s:?}"))),
    };
    n.checked_mul(mult)
        .ok_or_else(|| err(format!("bad size {s:?}: too large")))
}

/// Parses a status override; 1xx codes are refused because hyper cannot send
/// them as a final response.
pub fn parse_status(s: &str) -> Result<StatusCode, ParamError> {
    let s = s.trim();
    let code: u16 = s
        .parse()
        .map_err(|_| err(format!("bad status {s:?}: expected a number 200-999")))?;
    if !(200..=999).contains(&code) {
        return Err(err(format!("bad status {code}: must be 200-999")));
    }
    StatusCode::from_u16(code).map_err(|_| err(format!("bad status {code}")))
}

/// Parses a boolean flag such as `?chunked=1`.
pub fn parse_bool(s: &str) -> Result<bool, ParamError> {
    match s.trim() {
        "1" | "true" | "yes" | "on" | "" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(err(format!("bad boolean {other:?}: expected 1 or 0"))),
    }
}

/// Decodes `%XX` escapes and `+` in a query component; invalid escapes are
/// kept literally (this is a test server, not a validator).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a raw query string into decoded `(key, value)` pairs, in order.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// The per-request behaviour asked for by headers and query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Status to answer with instead of the natural one.
    pub status: Option<StatusCode>,
    /// How long to wait before answering (already clamped to max-delay).
    pub delay: Option<Duration>,
    /// Generate a body of this many bytes (already clamped to max-size).
    pub size: Option<u64>,
    /// Send the generated body with chunked transfer encoding.
    pub chunked: bool,
}

impl Overrides {
    /// Collects overrides from the `x-echo-*` headers, then the query string;
    /// the query wins when both are present because it is the more specific
    /// (per-URL) of the two.
    pub fn from_request(
        headers: &HeaderMap,
        query: Option<&str>,
        max_delay: Duration,
        max_size: u64,
    ) -> Result<Overrides, ParamError> {
        let mut o = Overrides::default();
        if let Some(v) = headers.get("x-echo-status") {
            let v = v.to_str().map_err(|_| err("bad x-echo-status header"))?;
            o.status = Some(parse_status(v)?);
        }
        if let Some(v) = headers.get("x-echo-delay") {
            let v = v.to_str().map_err(|_| err("bad x-echo-delay header"))?;
            o.delay = Some(parse_delay(v)?);
        }
        for (k, v) in query_pairs(query.unwrap_or("")) {
            match k.as_str() {
                "status" => o.status = Some(parse_status(&v)?),
                "delay" => o.delay = Some(parse_delay(&v)?),
                "size" => o.size = Some(parse_size(&v)?),
                "chunked" => o.chunked = parse_bool(&v)?,
                _ => {}
            }
        }
        o.delay = o.delay.map(|d| d.min(max_delay));
        o.size = o.size.map(|s| s.min(max_size));
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays() {
        assert_eq!(parse_delay("200ms").unwrap(), Duration::from_millis(200));
        assert_eq!(parse_delay("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_delay("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_delay("150").unwrap(), Duration::from_millis(150));
        assert!(parse_delay("abc").is_err());
        assert!(parse_delay("-1s").is_err());
        assert!(parse_delay("").is_err());
        assert!(parse_delay("NaNs").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10MiB").unwrap(), 10 << 20);
        assert_eq!(parse_size("3KiB").unwrap(), 3072);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("17").unwrap(), 17);
        assert_eq!(parse_size("17B").unwrap(), 17);
        assert_eq!(parse_size("2KB").unwrap(), 2000);
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("1TiB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
        assert!(parse_size("18446744073709551615GiB").is_err());
    }

    #[test]
    fn statuses() {
        assert_eq!(
            parse_status("503").unwrap(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert!(parse_status("100").is_err());
        assert!(parse_status("1000").is_err());
        assert!(parse_status("x").is_err());
    }

    #[test]
    fn query_decoding() {
        assert_eq!(
            query_pairs("a=1&b=%32%30&c&d=x+y&e=%zz&f=%4"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "20".into()),
                ("c".into(), "".into()),
                ("d".into(), "x y".into()),
                ("e".into(), "%zz".into()),
                ("f".into(), "%4".into()),
            ]
        );
    }

    #[test]
    fn overrides_query_wins_and_clamps() {
        let mut h = HeaderMap::new();
        h.insert("x-echo-status", "502".parse().unwrap());
        h.insert("x-echo-delay", "1s".parse().unwrap());
        let o = Overrides::from_request(
            &h,
            Some("status=503&size=5GiB&chunked=1"),
            Duration::from_millis(100),
            1 << 30,
        )
        .unwrap();
        assert_eq!(o.status, Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(o.delay, Some(Duration::from_millis(100)));
        assert_eq!(o.size, Some(1 << 30));
        assert!(o.chunked);
        assert!(Overrides::from_request(&h, Some("size=lots"), Duration::ZERO, 0).is_err());
    }
}
