//! The access log: one Werkzeug-style line per request on stdout.
//!
//! Format (what echo-golem's Flask printed, plus our instance name):
//! `10.88.2.6 - - [27/Dec/2020 17:31:50] "POST / HTTP/1.0" 200 - echogolem1`

use std::io::Write;
use std::net::IpAddr;

/// Formats the current local time as `%d/%b/%Y %H:%M:%S`, as Werkzeug does.
///
/// libc's `strftime` is used rather than a date crate because it is already a
/// dependency; the process never calls `setlocale`, so `%b` is the C locale's
/// English month abbreviation.
pub fn werkzeug_now() -> String {
    // SAFETY: time(NULL) has no preconditions.
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    // SAFETY: an all-zero tm is a valid value to be overwritten.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() {
        return "01/Jan/1970 00:00:00".to_string();
    }
    let mut buf = [0u8; 64];
    let fmt = c"%d/%b/%Y %H:%M:%S";
    // SAFETY: buf is writable for buf.len() bytes, fmt is NUL-terminated and
    // tm was filled by localtime_r.
    let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm) };
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Builds one access-log line (without the trailing newline).
pub fn format_line(peer: IpAddr, request_line: &str, status: u16, name: &str) -> String {
    // Show IPv4 clients that came in over a dual-stack socket as plain IPv4,
    // like Werkzeug would on an IPv4 socket.
    let peer = peer.to_canonical();
    format!(
        "{peer} - - [{}] \"{request_line}\" {status} - {name}",
        werkzeug_now()
    )
}

/// Writes one line to stdout and flushes it.
///
/// The lab reads us through a pipe and matches lines as they arrive, so each
/// line is flushed explicitly instead of relying on stdout's buffering mode.
/// Write errors (a closed pipe) are ignored: losing a log line must not fail
/// a request.
pub fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shape() {
        let line = format_line(
            "::ffff:10.88.2.6".parse().unwrap(),
            "POST / HTTP/1.0",
            200,
            "echogolem1",
        );
        let (head, rest) = line.split_once(" [").unwrap();
        assert_eq!(head, "10.88.2.6 - -");
        let (date, tail) = rest.split_once("] ").unwrap();
        assert_eq!(date.len(), "27/Dec/2020 17:31:50".len());
        assert_eq!(&date[2..3], "/");
        assert_eq!(tail, "\"POST / HTTP/1.0\" 200 - echogolem1");
    }
}
