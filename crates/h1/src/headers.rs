//! Header lines kept as they came: names with their case, in their order,
//! repeated lines as they were, looked up without regard to case.

use bytes::Bytes;

/// One header line: its name exactly as sent and its value (without the
/// whitespace around it), both sharing the head's bytes when parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    name: Bytes,
    value: Bytes,
}

impl Header {
    /// A header line from its name and value, taken as they are (the
    /// caller vouches for them: written heads put them on the wire as given).
    pub fn new(name: impl Into<Bytes>, value: impl Into<Bytes>) -> Header {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The name, in the case it came in.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The value.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The name as shared bytes (no copy).
    pub fn name_bytes(&self) -> &Bytes {
        &self.name
    }

    /// The value as shared bytes (no copy).
    pub fn value_bytes(&self) -> &Bytes {
        &self.value
    }

    /// Whether this line's name is `name`, ignoring case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    /// The line as nginx quotes it in its error log: `Name: value`.
    pub fn display_line(&self) -> String {
        format!(
            "{}: {}",
            String::from_utf8_lossy(&self.name),
            String::from_utf8_lossy(&self.value)
        )
    }
}

/// The header lines of one head, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    lines: Vec<Header>,
}

impl Headers {
    /// No lines.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// No lines, room for `n`.
    pub fn with_capacity(n: usize) -> Headers {
        Headers {
            lines: Vec::with_capacity(n),
        }
    }

    /// Appends a line after the others.
    pub fn push(&mut self, header: Header) {
        self.lines.push(header);
    }

    /// Appends `name: value` after the others.
    pub fn append(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.lines.push(Header::new(name, value));
    }

    /// How many lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The lines in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.lines.iter()
    }

    /// The value of the first line named `name` (any case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.lines.iter().find(|h| h.is(name)).map(Header::value)
    }

    /// Every line named `name` (any case), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Header> + 'a {
        self.lines.iter().filter(move |h| h.is(name))
    }

    /// Whether a line is named `name` (any case).
    pub fn contains(&self, name: &str) -> bool {
        self.lines.iter().any(|h| h.is(name))
    }

    /// Removes every line named `name` (any case); says how many went.
    pub fn remove_all(&mut self, name: &str) -> usize {
        let before = self.lines.len();
        self.lines.retain(|h| !h.is(name));
        before - self.lines.len()
    }

    /// Whether any `name` line lists `token` in its comma-separated value
    /// (`Connection: close`), both compared without regard to case.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .any(|h| crate::has_token(h.value(), token.as_bytes()))
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;

    fn into_iter(self) -> Self::IntoIter {
        self.lines.iter()
    }
}

impl IntoIterator for Headers {
    type Item = Header;
    type IntoIter = std::vec::IntoIter<Header>;

    fn into_iter(self) -> Self::IntoIter {
        self.lines.into_iter()
    }
}

impl FromIterator<Header> for Headers {
    fn from_iter<I: IntoIterator<Item = Header>>(iter: I) -> Headers {
        Headers {
            lines: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_case_order_and_repeats_and_looks_up_in_any_case() {
        let mut h = Headers::new();
        h.append("set-cookie", "a=1");
        h.append("X-Custom-Name", "v");
        h.append("Set-Cookie", "b=2");
        let names: Vec<&[u8]> = h.iter().map(Header::name).collect();
        assert_eq!(names, [&b"set-cookie"[..], b"X-Custom-Name", b"Set-Cookie"]);
        assert_eq!(h.get("SET-COOKIE"), Some(&b"a=1"[..]));
        assert_eq!(h.get_all("set-cookie").count(), 2);
        assert!(h.contains("x-custom-name"));
        assert_eq!(h.remove_all("set-cookie"), 2);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn tokens() {
        let mut h = Headers::new();
        h.append("Connection", "Keep-Alive, Close");
        assert!(h.has_token("connection", "close"));
        assert!(!h.has_token("connection", "upgrade"));
    }
}
