//! Property tests: chunked coding round-trips whatever the split, the
//! Content-Length rule agrees with a reference, and a valid head parses
//! the same however it arrives.

use bytes::BytesMut;
use h1::chunked::{encode_chunk, encode_last_chunk, ChunkedDecoder, Step};
use h1::{parse_request, parse_response, Headers, RequestLimits, ResponseLimits};
use proptest::prelude::*;

/// Cuts `wire` into pieces at the given lengths (the rest last).
fn pieces<'a>(wire: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = wire;
    for &cut in cuts {
        if rest.is_empty() {
            break;
        }
        let (a, b) = rest.split_at(cut.min(rest.len()));
        out.push(a);
        rest = b;
    }
    out.push(rest);
    out
}

/// The reference rule: optional spaces/tabs, decimal digits, optional
/// spaces/tabs, and a value that fits an i64.
fn reference_length(value: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(value).ok()?;
    let digits = s.trim_matches(|c| c == ' ' || c == '\t');
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u128 = digits.parse().ok().or(Some(u128::MAX))?;
    (n <= i64::MAX as u128).then_some(n as u64)
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
}

fn value() -> impl Strategy<Value = String> {
    "[ -~]{0,20}".prop_map(|v| v.trim().to_string())
}

proptest! {
    #[test]
    fn chunked_round_trip_at_any_split(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..200), 0..8),
        extension in prop::option::of("[a-z=;\" ]{0,10}"),
        trailers in prop::collection::vec((token(), value()), 0..3),
        after in prop::collection::vec(any::<u8>(), 0..10),
        cuts in prop::collection::vec(0usize..40, 0..60),
    ) {
        let mut wire = Vec::new();
        for c in &chunks {
            match &extension {
                // An extension after the size: `5;ext\r\n`.
                Some(e) => {
                    wire.extend_from_slice(format!("{:X};{e}\r\n", c.len()).as_bytes());
                    wire.extend_from_slice(c);
                    wire.extend_from_slice(b"\r\n");
                }
                None => encode_chunk(&mut wire, c),
            }
        }
        let mut t = Headers::new();
        for (n, v) in &trailers {
            t.append(n.clone(), v.clone());
        }
        encode_last_chunk(&mut wire, &t);
        let body_end = wire.len();
        wire.extend_from_slice(&after);

        let mut decoder = ChunkedDecoder::default();
        let mut body = Vec::new();
        let mut consumed = 0;
        let mut done = false;
        'outer: for piece in pieces(&wire, &cuts) {
            let mut rest = piece;
            loop {
                match decoder.decode(rest).unwrap() {
                    Step::Data(r) => {
                        prop_assert!(!r.is_empty());
                        body.extend_from_slice(&rest[r.clone()]);
                        consumed += r.end;
                        rest = &rest[r.end..];
                    }
                    Step::NeedMore => {
                        consumed += rest.len();
                        break;
                    }
                    Step::Done(n) => {
                        consumed += n;
                        done = true;
                        break 'outer;
                    }
                }
            }
        }
        prop_assert!(done);
        prop_assert_eq!(consumed, body_end);
        prop_assert_eq!(body, chunks.concat());
    }

    #[test]
    fn chunked_decoder_never_panics(input in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut decoder = ChunkedDecoder::default();
        let mut rest = &input[..];
        while let Ok(step) = decoder.decode(rest) {
            match step {
                Step::Data(r) => rest = &rest[r.end..],
                Step::NeedMore | Step::Done(_) => break,
            }
        }
    }

    #[test]
    fn content_length_matches_the_reference(
        value in prop_oneof![
            "[0-9]{1,25}",
            "[ \t]{0,2}[0-9+, \t-]{0,22}[ \t]{0,2}",
            prop::collection::vec(any::<u8>(), 0..8).prop_map(|v| String::from_utf8_lossy(&v).into_owned()),
        ]
    ) {
        prop_assert_eq!(h1::content_length(value.as_bytes()).ok(), reference_length(value.as_bytes()));
    }

    #[test]
    fn a_response_head_parses_the_same_however_it_arrives(
        status in 200u16..600,
        lines in prop::collection::vec((token(), value()), 0..10),
        body in "[a-z]{0,10}",
        cuts in prop::collection::vec(1usize..30, 0..40),
    ) {
        let mut text = format!("HTTP/1.1 {status} Reason\r\n");
        for (n, v) in &lines {
            if n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding") {
                continue;
            }
            text.push_str(&format!("{n}: {v}\r\n"));
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        let limits = ResponseLimits::default();
        let whole = parse_response(&mut BytesMut::from(text.as_bytes()), &limits, false)
            .unwrap()
            .unwrap();
        let mut buffer = BytesMut::new();
        let mut parsed = None;
        for piece in pieces(text.as_bytes(), &cuts) {
            buffer.extend_from_slice(piece);
            if parsed.is_none() {
                parsed = parse_response(&mut buffer, &limits, false).unwrap();
            }
        }
        prop_assert_eq!(parsed.as_ref(), Some(&whole));
        prop_assert_eq!(&buffer[..], body.as_bytes());
        // Written back, the names and order are as they came.
        let mut out = Vec::new();
        h1::write_headers(&mut out, &whole.headers);
        let start = text.find("\r\n").unwrap() + 2;
        let end = text.find("\r\n\r\n").unwrap() + 2;
        prop_assert_eq!(String::from_utf8_lossy(&out), &text[start..end]);
    }

    #[test]
    fn a_request_head_parses_the_same_however_it_arrives(
        method in "[A-Z]{1,8}",
        path in "/[a-z0-9/?=&]{0,20}",
        lines in prop::collection::vec((token(), value()), 0..10),
        cuts in prop::collection::vec(1usize..30, 0..40),
    ) {
        let mut text = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n");
        for (n, v) in &lines {
            let framing = ["content-length", "transfer-encoding", "host"]
                .iter()
                .any(|f| n.eq_ignore_ascii_case(f));
            if !framing {
                text.push_str(&format!("{n}: {v}\r\n"));
            }
        }
        text.push_str("\r\n");
        let limits = RequestLimits::default();
        let whole = parse_request(&mut BytesMut::from(text.as_bytes()), &limits)
            .unwrap()
            .unwrap();
        let mut buffer = BytesMut::new();
        let mut parsed = None;
        for piece in pieces(text.as_bytes(), &cuts) {
            buffer.extend_from_slice(piece);
            if parsed.is_none() {
                parsed = parse_request(&mut buffer, &limits).unwrap();
            }
        }
        prop_assert_eq!(parsed, Some(whole));
        prop_assert!(buffer.is_empty());
    }
}
