//! The spelling of header names. `http::HeaderMap` keeps names in lower
//! case; nginx passes a name on as it came (`Sec-WebSocket-Key`, a
//! backend's `set-cookie`) and writes `add_header` and `proxy_set_header`
//! names as the configuration spells them. A [`HeaderCase`] travels in a
//! request's or response's extensions with the spelling of every name that
//! differs from the usual one (`Content-Type`), so that the common message,
//! whose names are all in their usual case, carries nothing extra.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

/// The names of a head whose spelling is not their usual case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderCase(Vec<(HeaderName, Bytes)>);

impl HeaderCase {
    /// Notes that `name` was spelled `spelled` (nothing to note when that
    /// is its usual case, or when an earlier line already spelled it).
    pub fn note(&mut self, name: &HeaderName, spelled: &[u8]) {
        if is_usual(name, spelled) || self.0.iter().any(|(n, _)| n == name) {
            return;
        }
        self.0.push((name.clone(), Bytes::copy_from_slice(spelled)));
    }

    /// How `name` is to be spelled, if not in its usual case.
    pub fn spelling(&self, name: &HeaderName) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, spelled)| &spelled[..])
    }

    /// Whether every name is in its usual case.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Takes `other`'s spellings of names this one has not spelled.
    pub fn extend(&mut self, other: &HeaderCase) {
        for (name, spelled) in &other.0 {
            self.note(name, spelled);
        }
    }
}

/// Names nginx writes in a case of their own.
const SPECIAL: [(HeaderName, &[u8]); 2] = [
    (http::header::ETAG, b"ETag"),
    (http::header::WWW_AUTHENTICATE, b"WWW-Authenticate"),
];

/// Whether `spelled` is `name` in its usual case: nginx's own spelling for
/// the few it has, else a capital at the start and after each `-`, the
/// rest in lower case. (Every header line of every head comes here: a
/// plain loop over the bytes, which stops at the first that differs.)
fn is_usual(name: &HeaderName, spelled: &[u8]) -> bool {
    let lower = name.as_str().as_bytes();
    if lower.len() != spelled.len() {
        return false;
    }
    if let Some((_, special)) = SPECIAL.iter().find(|(n, _)| n == name) {
        return *special == spelled;
    }
    let mut upper = true;
    for (&l, &s) in lower.iter().zip(spelled) {
        let usual = if upper { l.to_ascii_uppercase() } else { l };
        if usual != s {
            return false;
        }
        upper = l == b'-';
    }
    true
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
    out.extend_from_slice(value.as_bytes());
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
