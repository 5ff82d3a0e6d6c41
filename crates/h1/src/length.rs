//! The one Content-Length rule, for requests and responses alike: nginx's
//! `ngx_atoof` over the value without the whitespace around it.

/// A `Content-Length` value that is not a length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid Content-Length")]
pub struct InvalidContentLength;

/// The largest length accepted: nginx's `off_t` is signed 64-bit.
const MAX: u64 = i64::MAX as u64;

/// Parses a `Content-Length` value: one or more ASCII digits and nothing
/// else (no sign, no list, no hex, no space inside), at most `i64::MAX`.
/// Spaces and tabs around the digits are not part of the value (a header
/// parser strips them; this rule does too, so that callers agree).
///
/// ```
/// assert_eq!(h1::content_length(b"42"), Ok(42));
/// assert!(h1::content_length(b"+5").is_err());
/// assert!(h1::content_length(b"5, 5").is_err());
/// ```
pub fn content_length(value: &[u8]) -> Result<u64, InvalidContentLength> {
    let digits = crate::trim_ows(value);
    if digits.is_empty() {
        return Err(InvalidContentLength);
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(InvalidContentLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .filter(|&n| n <= MAX)
            .ok_or(InvalidContentLength)?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_digits_only() {
        assert_eq!(content_length(b"0"), Ok(0));
        assert_eq!(content_length(b"007"), Ok(7));
        assert_eq!(content_length(b" 12\t"), Ok(12));
        assert_eq!(content_length(b"9223372036854775807"), Ok(MAX));
        for bad in [
            &b""[..],
            b" ",
            b"+5",
            b"-1",
            b"1 2",
            b"5,5",
            b"0x10",
            b"1e3",
            b"9223372036854775808",
            b"99999999999999999999999",
            b"\x00",
        ] {
            assert_eq!(content_length(bad), Err(InvalidContentLength), "{bad:?}");
        }
    }
}
