//! The spelling of header names. `http::HeaderMap` keeps names in lower
//! case; nginx passes a name on as it came (`Sec-WebSocket-Key`, a
//! backend's `set-cookie`) and writes `add_header` and `proxy_set_header`
//! names as the configuration spells them. A [`HeaderCase`] travels in a
//! request's or response's extensions with the spelling of every name that
//! differs from the usual one (`Content-Type`), so that the common message,
//! whose names are all in their usual case, carries nothing extra.
//!
//! It also carries the bytes of values `http::HeaderValue` cannot hold:
//! nginx writes an `add_header` value as rendered, control bytes and all
//! (`"x:$x\n"`, a `$ssl_client_cert` of many lines, a `$uri` decoded
//! from `%02`), while a `HeaderValue` refuses them. The map holds a
//! stand-in of the same length with each such byte made a space, and the
//! head is written with the bytes noted here for that very stand-in.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

/// The names of a head whose spelling is not their usual case, and the
/// values whose bytes a `HeaderValue` cannot hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderCase {
    spellings: Vec<(HeaderName, Bytes)>,
    raw_values: Vec<RawValue>,
}

/// The bytes to write for one stand-in value in the map.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawValue {
    /// Where the stand-in's bytes live: the value is told apart from any
    /// other by its own allocation, which moving it into the map, or
    /// cloning it, keeps.
    stand_in: usize,
    bytes: Bytes,
}

/// Whether `b` may be in a `HeaderValue` (visible ASCII, obs-text, space
/// and tab).
fn value_byte(b: u8) -> bool {
    (b >= 0x20 && b != 0x7f) || b == b'\t'
}

impl HeaderCase {
    /// A value for the map from `bytes`: the value itself when a
    /// `HeaderValue` can hold it, else a stand-in whose bytes this notes.
    /// `None` only for an empty value.
    pub fn value(&mut self, bytes: &[u8]) -> Option<HeaderValue> {
        if bytes.is_empty() {
            return None;
        }
        if bytes.iter().all(|&b| value_byte(b)) {
            return HeaderValue::from_bytes(bytes).ok();
        }
        let cleaned: Vec<u8> = bytes
            .iter()
            .map(|&b| if value_byte(b) { b } else { b' ' })
            .collect();
        let stand_in = HeaderValue::from_maybe_shared(Bytes::from(cleaned)).ok()?;
        self.raw_values.push(RawValue {
            stand_in: stand_in.as_bytes().as_ptr() as usize,
            bytes: Bytes::copy_from_slice(bytes),
        });
        Some(stand_in)
    }

    /// The bytes to write for `value`: its noted bytes when it is a
    /// stand-in, else its own.
    fn bytes_of<'a>(&'a self, value: &'a HeaderValue) -> &'a [u8] {
        if !self.raw_values.is_empty() {
            let at = value.as_bytes().as_ptr() as usize;
            // The bytes are compared too: a stand-in dropped from the map
            // may have its allocation reused by another value.
            let stands_for = |raw: &RawValue| {
                raw.stand_in == at
                    && raw.bytes.len() == value.len()
                    && raw.bytes.iter().zip(value.as_bytes()).all(|(&r, &v)| {
                        if value_byte(r) {
                            r == v
                        } else {
                            v == b' '
                        }
                    })
            };
            if let Some(raw) = self.raw_values.iter().find(|r| stands_for(r)) {
                return &raw.bytes;
            }
        }
        value.as_bytes()
    }

    /// Notes that `name` was spelled `spelled` (nothing to note when that
    /// is its usual case, or when an earlier line already spelled it).
    pub fn note(&mut self, name: &HeaderName, spelled: &[u8]) {
        if is_usual(name, spelled) || self.spellings.iter().any(|(n, _)| n == name) {
            return;
        }
        self.spellings
            .push((name.clone(), Bytes::copy_from_slice(spelled)));
    }

    /// How `name` is to be spelled, if not in its usual case.
    pub fn spelling(&self, name: &HeaderName) -> Option<&[u8]> {
        self.spellings
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, spelled)| &spelled[..])
    }

    /// Whether every name is in its usual case and every value is its own.
    pub fn is_empty(&self) -> bool {
        self.spellings.is_empty() && self.raw_values.is_empty()
    }

    /// Takes `other`'s spellings of names this one has not spelled, and
    /// its stand-in values.
    pub fn extend(&mut self, other: &HeaderCase) {
        for (name, spelled) in &other.spellings {
            self.note(name, spelled);
        }
        self.raw_values.extend(other.raw_values.iter().cloned());
    }
}

/// Names nginx writes in a case of their own.
const SPECIAL: [(HeaderName, &[u8]); 2] = [
    (http::header::ETAG, b"ETag"),
    (http::header::WWW_AUTHENTICATE, b"WWW-Authenticate"),
];

/// Whether `spelled` is `name` in its usual case: nginx's own spelling for
/// the few it has, else a capital at the start and after each `-`, the
/// rest in lower case. Every header line of every head comes here, so the
/// bytes are compared eight at a time (see [`usual_word`]).
fn is_usual(name: &HeaderName, spelled: &[u8]) -> bool {
    let lower = name.as_str().as_bytes();
    if lower.len() != spelled.len() {
        return false;
    }
    if matches!(lower.len(), 4 | 16) {
        if let Some((_, special)) = SPECIAL.iter().find(|(n, _)| n == name) {
            return *special == spelled;
        }
    }
    // Byte 0 counts as "after a dash": it is capitalised too.
    let mut after_dash = 0x80u64;
    for (l, s) in lower.chunks(8).zip(spelled.chunks(8)) {
        let (l, s) = (word(l), word(s));
        let (usual, dashes) = usual_word(l, s, after_dash);
        if !usual {
            return false;
        }
        after_dash = dashes >> 56;
    }
    true
}

/// Up to eight bytes as a little-endian word, zero-padded. A short tail
/// is read with overlapping loads of fixed sizes: a copy of a variable
/// length is a call to `memcpy`, which costs more than the loads for a
/// name's few bytes.
fn word(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    if let Some(full) = bytes.first_chunk::<8>() {
        return u64::from_le_bytes(*full);
    }
    if n >= 4 {
        let (Some(lo), Some(hi)) = (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) else {
            return 0;
        };
        // The two loads overlap when n < 8; the shared bytes are equal.
        return u64::from(u32::from_le_bytes(*lo))
            | u64::from(u32::from_le_bytes(*hi)) << (8 * (n - 4));
    }
    match n {
        0 => 0,
        // Bytes 0, n/2 and n-1 cover every byte of a 1- to 3-byte tail.
        _ => {
            u64::from(bytes[0])
                | u64::from(bytes[n / 2]) << (8 * (n / 2))
                | u64::from(bytes[n - 1]) << (8 * (n - 1))
        }
    }
}

const HIGH: u64 = 0x8080_8080_8080_8080;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// Whether eight bytes of a spelling are the usual case of eight bytes of
/// the lower-case name, and where the name's dashes are (0x80 in each
/// byte that is `-`). `carry` is 0x80 when the byte before this word was
/// a dash (or this is the first word).
///
/// A spelling differs from the lower-case name only in case (the name was
/// made from it), so `lower ^ spelled` is 0x20 exactly where the spelling
/// has a capital; the usual case has one exactly at the letters that start
/// the name or follow a dash. Names are ASCII, so no byte has its high bit.
fn usual_word(lower: u64, spelled: u64, carry: u64) -> (bool, u64) {
    let dashes = zero_bytes(lower ^ 0x2d2d_2d2d_2d2d_2d2d);
    let starts = (dashes << 8) | carry;
    let at_least_a = (lower | HIGH).wrapping_sub(0x6161_6161_6161_6161) & HIGH;
    let at_most_z = (0xfafa_fafa_fafa_fafa_u64.wrapping_sub(lower)) & HIGH;
    let capitals = (starts & at_least_a & at_most_z) >> 2;
    ((lower ^ spelled) == capitals, dashes)
}

/// 0x80 in each byte of `x` that is zero, exactly (no false positives:
/// the low seven bits are added without carrying into the next byte).
fn zero_bytes(x: u64) -> u64 {
    !(((x & LOW7).wrapping_add(LOW7)) | x) & HIGH
}

/// Appends `name` in its usual case: its lower-case bytes, then a capital
/// at the start and after each `-`, in place.
fn write_usual(out: &mut Vec<u8>, name: &HeaderName) {
    if let Some((_, special)) = SPECIAL.iter().find(|(n, _)| n == name) {
        out.extend_from_slice(special);
        return;
    }
    let start = out.len();
    out.extend_from_slice(name.as_str().as_bytes());
    let mut upper = true;
    for b in &mut out[start..] {
        if upper {
            b.make_ascii_uppercase();
        }
        upper = *b == b'-';
    }
}

/// Appends `Name: value` and its line end: the name as `case` spells it,
/// else in its usual case (`Content-Type`), as nginx writes the names it
/// makes. Every head switchyard writes, up and down, goes through here.
pub fn write_header_line(
    out: &mut Vec<u8>,
    name: &HeaderName,
    value: &HeaderValue,
    case: Option<&HeaderCase>,
) {
    match case.and_then(|c| c.spelling(name)) {
        Some(spelled) => out.extend_from_slice(spelled),
        None => write_usual(out, name),
    }
    out.extend_from_slice(b": ");
    match case {
        Some(case) => out.extend_from_slice(case.bytes_of(value)),
        None => out.extend_from_slice(value.as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> HeaderName {
        HeaderName::from_bytes(n.as_bytes()).unwrap()
    }

    #[test]
    fn notes_only_unusual_spellings_and_the_first_one() {
        let mut case = HeaderCase::default();
        case.note(&name("content-type"), b"Content-Type");
        case.note(&name("x-ip"), b"X-IP");
        case.note(&name("x-ip"), b"x-ip");
        case.note(&name("set-cookie"), b"set-cookie");
        assert_eq!(case.spelling(&name("content-type")), None);
        assert_eq!(case.spelling(&name("x-ip")), Some(&b"X-IP"[..]));
        assert_eq!(case.spelling(&name("set-cookie")), Some(&b"set-cookie"[..]));
    }

    #[test]
    fn a_value_with_control_bytes_is_written_as_it_was_rendered() {
        let mut case = HeaderCase::default();
        let plain = case.value(b"x:0 y:0").unwrap();
        assert!(case.is_empty(), "a value HeaderValue holds needs no note");
        let raw = case.value(b"x:0\n\x02y").unwrap();
        assert_eq!(raw.as_bytes(), b"x:0  y", "the stand-in has spaces");
        assert!(!case.is_empty());
        assert_eq!(case.value(b""), None);

        let mut out = Vec::new();
        // Moved into a map and cloned, the stand-in still finds its bytes.
        let mut map = http::HeaderMap::new();
        map.append(name("x-foo"), raw.clone());
        map.append(name("x-foo"), plain);
        for value in map.get_all("x-foo") {
            write_header_line(&mut out, &name("x-foo"), value, Some(&case));
        }
        assert_eq!(out, b"X-Foo: x:0\n\x02y\r\nX-Foo: x:0 y:0\r\n");

        // Another value of the same bytes as the stand-in is its own.
        let lookalike = HeaderValue::from_static("x:0  y");
        out.clear();
        write_header_line(&mut out, &name("x-foo"), &lookalike, Some(&case));
        assert_eq!(out, b"X-Foo: x:0  y\r\n");
    }

    /// The byte-at-a-time rule the word-at-a-time check must agree with.
    fn usual_slowly(lower: &[u8], spelled: &[u8]) -> bool {
        let mut upper = true;
        lower.len() == spelled.len()
            && lower.iter().zip(spelled).all(|(&l, &s)| {
                let usual = if upper { l.to_ascii_uppercase() } else { l };
                upper = l == b'-';
                usual == s
            })
    }

    #[test]
    fn word_reads_any_tail_as_zero_padded_little_endian() {
        let bytes = b"abcdefghij";
        for n in 0..=8 {
            let mut padded = [0u8; 8];
            padded[..n].copy_from_slice(&bytes[..n]);
            assert_eq!(word(&bytes[..n]), u64::from_le_bytes(padded), "{n}");
        }
    }

    #[test]
    fn the_word_check_agrees_with_the_byte_rule() {
        let names = [
            "a",
            "ab",
            "a-b",
            "-a",
            "a-",
            "--",
            "x-ip",
            "content-type",
            "x-forwarded-for",
            "sec-websocket-key",
            "a1-b2-c3-d4-e5",
            "x-very-long-header-name-with-dashes",
            "abcdefgh",
            "abcdefg-h",
            "abcdefgh-i",
            "x_y-z",
            "a-b-c-d-e-f-g-h-i-j",
            "12-ab",
        ];
        for lower in names {
            let name = name(lower);
            let len = lower.len();
            // Every spelling that differs from the name only in case, for
            // short names; for long ones, each single-letter flip of the
            // usual case and of the lower case.
            let mut spellings: Vec<Vec<u8>> = Vec::new();
            if len <= 10 {
                for mask in 0u32..(1 << len) {
                    spellings.push(
                        lower
                            .bytes()
                            .enumerate()
                            .map(|(i, b)| {
                                if mask & (1 << i) != 0 {
                                    b.to_ascii_uppercase()
                                } else {
                                    b
                                }
                            })
                            .collect(),
                    );
                }
            } else {
                let mut usual = Vec::new();
                write_usual(&mut usual, &name);
                for base in [usual, lower.as_bytes().to_vec()] {
                    for i in 0..len {
                        let mut s = base.clone();
                        s[i] = if s[i].is_ascii_uppercase() {
                            s[i].to_ascii_lowercase()
                        } else {
                            s[i].to_ascii_uppercase()
                        };
                        spellings.push(s);
                    }
                    spellings.push(base);
                }
            }
            for spelled in spellings {
                assert_eq!(
                    is_usual(&name, &spelled),
                    usual_slowly(lower.as_bytes(), &spelled),
                    "{lower} spelled {}",
                    String::from_utf8_lossy(&spelled)
                );
            }
        }
        assert!(is_usual(&name("etag"), b"ETag"));
        assert!(!is_usual(&name("etag"), b"Etag"));
        assert!(is_usual(&name("www-authenticate"), b"WWW-Authenticate"));
    }

    #[test]
    fn writes_the_spelling_or_the_usual_case() {
        let mut case = HeaderCase::default();
        case.note(&name("x-ip"), b"X-IP");
        let value = HeaderValue::from_static("1");
        let mut out = Vec::new();
        write_header_line(&mut out, &name("x-ip"), &value, Some(&case));
        write_header_line(&mut out, &name("x-a-b"), &value, Some(&case));
        write_header_line(&mut out, &name("etag"), &value, None);
        assert_eq!(out, b"X-IP: 1\r\nX-A-B: 1\r\nETag: 1\r\n");
    }
}
