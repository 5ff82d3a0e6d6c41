//! Scalar values as nginx parses them: times (`ngx_parse_time`), sizes
//! (`ngx_parse_size`), numbers and `on`/`off` flags.

use std::time::Duration;

/// Parses an nginx time such as `60s`, `500ms`, `1h 30m` or `10` (seconds).
/// Returns `None` for anything nginx would call an "invalid value".
pub fn parse_time(text: &str) -> Option<Duration> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return None;
    }
    let mut total_ms: u64 = 0;
    let mut i = 0;
    // Units must come in decreasing order, each at most once, as nginx
    // enforces with its `step` variable.
    let mut last_rank = u8::MAX;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return None;
        }
        let value: u64 = text[start..i].parse().ok()?;
        let (unit_ms, rank, len) = match (bytes.get(i), bytes.get(i + 1)) {
            (Some(b'y'), _) => (365 * 86_400_000, 8, 1),
            (Some(b'M'), _) => (30 * 86_400_000, 7, 1),
            (Some(b'w'), _) => (7 * 86_400_000, 6, 1),
            (Some(b'd'), _) => (86_400_000, 5, 1),
            (Some(b'h'), _) => (3_600_000, 4, 1),
            (Some(b'm'), Some(b's')) => (1, 1, 2),
            (Some(b'm'), _) => (60_000, 3, 1),
            (Some(b's'), _) => (1000, 2, 1),
            (None, _) | (Some(b' '), _) => (1000, 2, 0),
            _ => return None,
        };
        if rank >= last_rank {
            return None;
        }
        last_rank = rank;
        i += len;
        total_ms = total_ms.checked_add(value.checked_mul(unit_ms)?)?;
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
    }
    Some(Duration::from_millis(total_ms))
}

/// Parses an nginx size such as `1m`, `16k`, `1G` or `512` (bytes).
pub fn parse_size(text: &str) -> Option<u64> {
    let (digits, multiplier) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 1024),
        b'm' | b'M' => (&text[..text.len() - 1], 1024 * 1024),
        b'g' | b'G' => (&text[..text.len() - 1], 1024 * 1024 * 1024),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(multiplier)
}

/// Parses a plain non-negative number (`ngx_atoi`).
pub fn parse_number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses `on`/`off` (case-insensitive, as nginx's `ngx_conf_set_flag_slot`).
pub fn parse_flag(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("on") {
        Some(true)
    } else if text.eq_ignore_ascii_case("off") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_time("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_time("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_time("1h 30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_time("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_time("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_time("10x"), None);
        assert_eq!(parse_time("s"), None);
        assert_eq!(parse_time(""), None);
        assert_eq!(parse_time("1s 1m"), None);
        assert_eq!(parse_time("1s1s"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("16K"), Some(16 << 10));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("1x"), None);
        assert_eq!(parse_size("m"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn flags_and_numbers() {
        assert_eq!(parse_flag("ON"), Some(true));
        assert_eq!(parse_flag("off"), Some(false));
        assert_eq!(parse_flag("maybe"), None);
        assert_eq!(parse_number("1024"), Some(1024));
        assert_eq!(parse_number("-1"), None);
        assert_eq!(parse_number("x"), None);
    }
}
