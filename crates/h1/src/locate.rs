//! Where a head broke: httparse says only that it did, nginx's log names
//! the header line up to the offending byte and the byte itself. The
//! offending byte is found by asking httparse again on shorter prefixes
//! (its verdict on a prefix is "partial" until the bad byte is in it), so
//! the place is httparse's own, not a second opinion; this runs only on
//! heads already refused.

/// Where a refused head went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// In the start line (request line or status line).
    StartLine,
    /// In a header line: the line up to the offending byte, and the byte.
    Header(String, u8),
}

/// Locates the offending byte of `head`, which `fails` refuses: the
/// shortest prefix that `fails` also refuses ends with it.
pub fn locate(head: &[u8], fails: impl Fn(&[u8]) -> bool) -> Broken {
    // fails(head[..hi]) holds, fails(head[..lo]) does not (an empty head
    // is never refused).
    let (mut lo, mut hi) = (0, head.len());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fails(&head[..mid]) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let at = hi.saturating_sub(1);
    let line_start = match head[..at].iter().rposition(|&b| b == b'\n') {
        Some(lf) => lf + 1,
        None => return Broken::StartLine,
    };
    match head.get(at) {
        Some(&byte) => Broken::Header(
            String::from_utf8_lossy(&head[line_start..at]).into_owned(),
            byte,
        ),
        None => Broken::StartLine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response_fails(head: &[u8]) -> bool {
        let mut slots = [httparse::EMPTY_HEADER; 16];
        httparse::Response::new(&mut slots).parse(head).is_err()
    }

    #[test]
    fn names_the_line_and_byte() {
        let at = |t: &[u8]| locate(t, response_fails);
        assert_eq!(
            at(b"HTTP/1.1 200 OK\r\nA: b\r\nBad Header: x\r\n\r\n"),
            Broken::Header("Bad".into(), b' ')
        );
        assert_eq!(
            at(b"HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n"),
            Broken::Header("X: a".into(), 1)
        );
        assert_eq!(
            at(b"HTTP/1.1 200 OK\r\n: x\r\n\r\n"),
            Broken::Header(String::new(), b':')
        );
        assert_eq!(at(b"HTTP/1.1 OK 200\r\n\r\n"), Broken::StartLine);
        assert_eq!(at(b"HTTP/1.1 200 OK\rX\n\r\n"), Broken::StartLine);
    }
}
