//! Where a header section broke: httparse says only that it did, nginx's
//! log names the line up to the offending byte and the byte itself.

/// A byte a header name may hold (RFC 9110's tchar).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The first offending byte in the header lines of `head` (the start line
/// is skipped): the line up to it, and the byte. `None` if no header line
/// is broken (the start line was, or the head simply ended).
pub fn invalid_header(head: &[u8]) -> Option<(String, u8)> {
    let first_end = head.iter().position(|&b| b == b'\n')? + 1;
    let mut at = first_end;
    while at < head.len() {
        let start = at;
        if head[at..].starts_with(b"\r\n") || head[at] == b'\n' {
            return None; // the blank line: the section ended intact
        }
        let mut in_name = true;
        loop {
            let Some(&b) = head.get(at) else {
                return None; // the head is not complete yet
            };
            let bad = if in_name {
                if b == b':' && at > start {
                    in_name = false;
                    false
                } else {
                    !is_tchar(b)
                }
            } else if b == b'\r' {
                match head.get(at + 1) {
                    Some(b'\n') => {
                        at += 2;
                        break;
                    }
                    Some(_) => true,
                    None => return None,
                }
            } else if b == b'\n' {
                at += 1;
                break;
            } else {
                (b < 0x20 && b != b'\t') || b == 0x7f
            };
            if bad {
                return Some((String::from_utf8_lossy(&head[start..at]).into_owned(), b));
            }
            at += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_line_and_byte() {
        let at = |t: &[u8]| invalid_header(t);
        assert_eq!(
            at(b"HTTP/1.1 200 OK\r\nA: b\r\nBad Header: x\r\n\r\n"),
            Some(("Bad".into(), b' '))
        );
        assert_eq!(
            at(b"HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n"),
            Some(("X: a".into(), 1))
        );
        assert_eq!(
            at(b"HTTP/1.1 200 OK\r\n: x\r\n\r\n"),
            Some((String::new(), b':'))
        );
        assert_eq!(at(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n"), None);
        assert_eq!(at(b"HTTP/1.1 200 OK\r\nA: b"), None);
    }
}
