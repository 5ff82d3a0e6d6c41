//! Regular expressions as nginx's PCRE reads them, compiled with the
//! `regex` crate. The dialects share what configurations use (classes,
//! `\p{..}`, named captures in both spellings, `(?i)`); what PCRE has
//! beyond that and can be said in `regex` terms is rewritten here first:
//! `\Q...\E`, a literal run.

use std::borrow::Cow;

/// A pattern that did not compile; `Display` is nginx's message.
#[derive(Debug, thiserror::Error)]
#[error("pcre2_compile() failed: {error} in \"{pattern}\"")]
pub struct PcreError {
    error: regex::Error,
    pattern: String,
}

/// Compiles `pattern` (caseless for `~*`, regex server names and the like).
pub fn compile(pattern: &str, caseless: bool) -> Result<regex::Regex, PcreError> {
    regex::RegexBuilder::new(&rewrite(pattern))
        .case_insensitive(caseless)
        .build()
        .map_err(|error| PcreError {
            error,
            pattern: pattern.to_string(),
        })
}

/// `pattern` with each `\Q...\E` (to the end when `\E` is missing, as in
/// PCRE) made an escaped literal; unchanged when it has none.
fn rewrite(pattern: &str) -> Cow<'_, str> {
    if !pattern.contains("\\Q") {
        return Cow::Borrowed(pattern);
    }
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut rest = pattern;
    while let Some(at) = find_quote_start(rest) {
        out.push_str(&rest[..at]);
        let quoted = &rest[at + 2..];
        let (literal, after) = match quoted.find("\\E") {
            Some(end) => (&quoted[..end], &quoted[end + 2..]),
            None => (quoted, ""),
        };
        out.push_str(&regex::escape(literal));
        rest = after;
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Where the first `\Q` that is not itself escaped (`\\Q` is a backslash
/// and a `Q`) starts.
fn find_quote_start(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes[i + 1] == b'Q' {
                return Some(i);
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_run_is_literal() {
        let re = compile(r"^(?P<name>[a-z]+)\Q.example.com\E$", false).unwrap();
        let caps = re.captures("blah.example.com").unwrap();
        assert_eq!(&caps["name"], "blah");
        assert!(!re.is_match("blahxexample.com"), "the dot is literal");
        // To the end without \E; an escaped backslash is not a \Q.
        assert!(compile(r"^a\Q.*", false).unwrap().is_match("a.*"));
        assert!(!compile(r"^a\Q.*", false).unwrap().is_match("abc"));
        assert_eq!(rewrite(r"a\\Qb"), r"a\\Qb");
        assert_eq!(rewrite("plain"), "plain");
    }

    #[test]
    fn errors_are_worded_as_nginx_words_them() {
        let e = compile("(", false).unwrap_err().to_string();
        assert!(e.starts_with("pcre2_compile() failed: "), "{e}");
        assert!(e.ends_with(" in \"(\""), "{e}");
    }
}
