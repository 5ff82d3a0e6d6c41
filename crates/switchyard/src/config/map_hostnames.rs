//! `map { hostnames; ... }`: keys that are hostname masks, as nginx's
//! ngx_hash_add_key (NGX_HASH_WILDCARD_KEY) takes them and
//! ngx_hash_find_combined looks them up: the exact name first, then the
//! longest leading wildcard (`*.example.com`, or `.example.com` which also
//! matches `example.com`), then the longest trailing one (`www.example.*`).

use std::collections::{HashMap, HashSet};

/// Why a key was refused, as nginx words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// More than one `*`, a `*` in the middle, `..` or a NUL.
    #[error("invalid hostname or wildcard \"{0}\"")]
    Invalid(String),
    /// The same name (or mask) twice, or `.example.com` with
    /// `example.com`.
    #[error("conflicting parameter \"{0}\"")]
    Conflicting(String),
}

/// The keys of one map, exact and wildcard.
#[derive(Debug, Clone)]
pub struct Hostnames<T> {
    /// Exact keys, lower case.
    exact: HashMap<String, T>,
    /// Names an exact key would conflict with: the exact keys and the
    /// names of `.example.com` keys.
    taken: HashSet<String>,
    /// Leading wildcards by their name (`example.com`): the value and
    /// whether the name itself matches (`.example.com`).
    head: HashMap<String, (T, bool)>,
    /// Trailing wildcards by their prefix (`www.example`).
    tail: HashMap<String, T>,
}

impl<T> Default for Hostnames<T> {
    fn default() -> Self {
        Hostnames {
            exact: HashMap::new(),
            taken: HashSet::new(),
            head: HashMap::new(),
            tail: HashMap::new(),
        }
    }
}

impl<T> Hostnames<T> {
    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.head.is_empty() && self.tail.is_empty()
    }

    /// Adds `key` (without its `\` escape) with `value`; a mask is a mask
    /// only when `wildcard` (the map said `hostnames` before this key, as
    /// nginx reads them in order), else it is a name like any other.
    pub fn add(&mut self, key: &str, value: T, wildcard: bool) -> Result<(), KeyError> {
        let lower = key.to_ascii_lowercase();
        let conflicting = || KeyError::Conflicting(lower.clone());
        if wildcard {
            let bytes = key.as_bytes();
            let stars = bytes.iter().filter(|&&c| c == b'*').count();
            if stars > 1 || key.contains("..") || key.contains('\0') {
                return Err(KeyError::Invalid(key.to_string()));
            }
            if key.len() > 1 && bytes[0] == b'.' {
                let name = lower[1..].to_string();
                if self.taken.contains(&name) || self.head.contains_key(&name) {
                    return Err(conflicting());
                }
                self.taken.insert(name.clone());
                self.head.insert(name, (value, true));
                return Ok(());
            }
            if key.len() > 2 {
                if let Some(name) = lower.strip_prefix("*.") {
                    if self.head.contains_key(name) {
                        return Err(conflicting());
                    }
                    self.head.insert(name.to_string(), (value, false));
                    return Ok(());
                }
                if let Some(prefix) = lower.strip_suffix(".*") {
                    if self.tail.contains_key(prefix) {
                        return Err(conflicting());
                    }
                    self.tail.insert(prefix.to_string(), value);
                    return Ok(());
                }
            }
            if stars > 0 {
                return Err(KeyError::Invalid(key.to_string()));
            }
        }
        if !self.taken.insert(lower.clone()) {
            return Err(conflicting());
        }
        self.exact.insert(lower, value);
        Ok(())
    }

    /// The value for `name` (lower case): exact, then the longest leading
    /// wildcard, then the longest trailing one.
    pub fn find(&self, name: &str) -> Option<&T> {
        if let Some(v) = self.exact.get(name) {
            return Some(v);
        }
        if name.is_empty() {
            return None;
        }
        if let Some((v, true)) = self.head.get(name) {
            return Some(v);
        }
        // The suffixes after each dot, longest first.
        for (i, _) in name.match_indices('.') {
            if let Some((v, _)) = self.head.get(&name[i + 1..]) {
                return Some(v);
            }
        }
        // The prefixes before each dot, longest first.
        for (i, _) in name.rmatch_indices('.') {
            if let Some(v) = self.tail.get(&name[..i]) {
                return Some(v);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(keys: &[&str]) -> Hostnames<String> {
        let mut h = Hostnames::default();
        for k in keys {
            h.add(k, k.to_string(), true).unwrap();
        }
        h
    }

    #[test]
    fn exact_then_longest_head_then_longest_tail() {
        let h = map(&[
            "example.com",
            "*.example.com",
            ".dot.example.com",
            "*.a.b.example.com",
            "example.*",
            "www.example.*",
            "*.org",
        ]);
        let at = |n: &str| h.find(n).cloned();
        assert_eq!(at("example.com").as_deref(), Some("example.com"));
        assert_eq!(at("x.example.com").as_deref(), Some("*.example.com"));
        assert_eq!(at("dot.example.com").as_deref(), Some(".dot.example.com"));
        assert_eq!(at("w.dot.example.com").as_deref(), Some(".dot.example.com"));
        // No key for b.example.com: the shorter wildcard applies.
        assert_eq!(at("q.b.example.com").as_deref(), Some("*.example.com"));
        assert_eq!(
            at("q.a.b.example.com").as_deref(),
            Some("*.a.b.example.com")
        );
        assert_eq!(at("a.b.example.com").as_deref(), Some("*.example.com"));
        assert_eq!(at("example.org").as_deref(), Some("*.org"));
        assert_eq!(at("example.net").as_deref(), Some("example.*"));
        assert_eq!(at("www.example.co.uk").as_deref(), Some("www.example.*"));
        assert_eq!(at("www.example").as_deref(), None);
        assert_eq!(at("org"), None);
        assert_eq!(at("example"), None);
    }

    #[test]
    fn masks_are_checked_as_nginx_checks_them() {
        let mut h: Hostnames<()> = Hostnames::default();
        for bad in ["*", "www.*.com", "*.*.com", "a..com", "*example.com"] {
            assert_eq!(
                h.add(bad, (), true),
                Err(KeyError::Invalid(bad.into())),
                "{bad}"
            );
        }
        h.add("Example.com", (), true).unwrap();
        assert!(
            matches!(h.add(".example.COM", (), true), Err(KeyError::Conflicting(k)) if k == ".example.com")
        );
        h.add("*.example.com", (), true).unwrap();
        assert!(h.add(".example.com", (), true).is_err());
        h.add(".other.com", (), true).unwrap();
        assert!(h.add("other.com", (), true).is_err());
        assert!(h.add("*.other.com", (), true).is_err());
        h.add("www.*", (), true).unwrap();
        assert!(h.add("WWW.*", (), true).is_err());
        // Without `hostnames` a mask is a name like any other.
        let mut plain = Hostnames::default();
        plain.add("*.example.com", 1, false).unwrap();
        assert_eq!(plain.find("*.example.com"), Some(&1));
        assert_eq!(plain.find("x.example.com"), None);
    }
}
