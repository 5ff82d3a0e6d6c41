//! The fuzz targets as plain functions, so that cargo-fuzz (nightly,
//! `fuzz_targets/`) and the stable runner (`src/bin/stable_fuzz.rs`,
//! `tests/corpus.rs`) drive the same code. A target must never panic.

use std::borrow::Cow;

use bytes::BytesMut;
use h1::chunked::{
    encode_chunk, encode_last_chunk, ChunkedDecoder, ChunkedError, ChunkedLimits, Step,
};

use switchyard::http::guard;
use switchyard::http::route::normalize_uri;
use switchyard::observe::log_format::{Escape, LogFormat};
use switchyard::vars::{Var, VarSource};

/// The names of the targets, as in `fuzz_targets/` and `corpus/`.
pub const TARGETS: [&str; 6] = [
    "config_parser",
    "log_format",
    "request_head",
    "h1_response_head",
    "h1_chunked",
    "h1_request_head",
];

/// Runs target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "config_parser" => config_parser(data),
        "log_format" => log_format(data),
        "request_head" => request_head(data),
        "h1_response_head" => h1_response_head(data),
        "h1_chunked" => h1_chunked(data),
        "h1_request_head" => h1_request_head(data),
        other => panic!("no target {other}"),
    }
}

/// nginx.conf text -> syntax tree (and `-T`-style dump of what parsed).
pub fn config_parser(data: &[u8]) {
    if let Ok(config) = nginx_conf::parse_bytes(data, nginx_conf::Source::CommandLine) {
        let _ = format!("{config:?}");
    }
}

/// Variable values for the log_format target: every variable gets the
/// same fuzzed text, so escaping sees every byte.
struct Values<'a>(&'a str);

impl VarSource for Values<'_> {
    fn var(&self, var: &Var) -> Option<Cow<'_, str>> {
        match var {
            Var::Status => None,
            _ => Some(Cow::Borrowed(self.0)),
        }
    }
}

/// `log_format` text (before the first NUL) compiled with each escape,
/// rendered with the rest of the input as every variable's value.
pub fn log_format(data: &[u8]) {
    let (format, value) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let format = String::from_utf8_lossy(format);
    let value = String::from_utf8_lossy(value);
    for escape in [Escape::Default, Escape::Json, Escape::None] {
        if let Ok(compiled) = LogFormat::compile(&format, escape) {
            let line = compiled.render(&Values(&value));
            let printable = |b: u8| (0x20..0x7f).contains(&b);
            if escape == Escape::Default && format.bytes().all(printable) {
                // nginx's default escaping leaves only printable ASCII.
                assert!(line.bytes().all(printable), "unescaped byte in {line:?}");
            }
        }
    }
}

/// A request head as lines: `METHOD TARGET` then `name: value` lines;
/// whatever `http` accepts goes through the guard and URI normalization.
pub fn request_head(data: &[u8]) {
    let _ = h1::content_length(data);
    let _ = guard::valid_host(data);
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or("");
    let mut words = first.splitn(3, ' ');
    let method = words.next().unwrap_or("GET");
    let target = words.next().unwrap_or("/");
    let version = match words.next() {
        Some("HTTP/1.0") => http::Version::HTTP_10,
        _ => http::Version::HTTP_11,
    };
    let mut builder = http::Request::builder()
        .method(method)
        .uri(target)
        .version(version);
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            builder = builder.header(name, value.trim_start());
        }
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    // The guard's rules (method, target form, Host) never panic.
    let _ = guard::check_request(&parts);
    // The framing rules are the codec's: a head it takes has at most one
    // Content-Length or Transfer-Encoding line, under any limits.
    for limits in [
        h1::RequestLimits::default(),
        h1::RequestLimits {
            line: 16,
            total: 16,
            max_headers: 1,
            ..Default::default()
        },
    ] {
        let mut buffer = bytes::BytesMut::from(data);
        if let Ok(Some(head)) = h1::parse_request(&mut buffer, &limits) {
            let cl = head.headers.get_all("content-length").count();
            let te = head.headers.get_all("transfer-encoding").count();
            assert!(cl + te <= 1, "two framings passed: {head:?}");
        }
    }
    if let Some(uri) = normalize_uri(parts.uri.path()) {
        assert!(uri.starts_with('/'), "{uri:?}");
        assert!(!uri.contains("/../") && !uri.ends_with("/.."), "{uri:?}");
    }
}

/// A number derived from the input (FNV-1a), so that where an input is cut
/// in two, or which variant of a target runs, is the same on every replay.
fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Where to cut `data` in two for the "any split parses the same" checks.
fn cut_of(data: &[u8]) -> usize {
    (hash(data) % (data.len() as u64 + 1)) as usize
}

/// Parses a response head from `pieces` arriving one after the other: the
/// outcome and, once a head is taken, what is left in the buffer.
fn response_in_pieces(
    pieces: &[&[u8]],
    limits: &h1::ResponseLimits,
    head_request: bool,
) -> (Result<Option<h1::ResponseHead>, h1::ResponseError>, Vec<u8>) {
    let mut buffer = BytesMut::new();
    let mut outcome = Ok(None);
    for piece in pieces {
        buffer.extend_from_slice(piece);
        if matches!(outcome, Ok(None)) {
            outcome = h1::parse_response(&mut buffer, limits, head_request);
        }
    }
    // What is left matters once a head is taken (it is the body); after a
    // refusal the buffer is dropped.
    let rest = if matches!(outcome, Ok(Some(_))) {
        buffer.to_vec()
    } else {
        Vec::new()
    };
    (outcome, rest)
}

/// An upstream's response head through the `h1` codec: never a panic; the
/// same outcome whole or cut in two; a parsed head's framing agrees with
/// its headers, and written back it parses the same.
pub fn h1_response_head(data: &[u8]) {
    let head_request = hash(data) & 1 == 1;
    for limits in [
        h1::ResponseLimits::default(),
        h1::ResponseLimits {
            max_head: 64,
            max_headers: 4,
        },
    ] {
        let whole = response_in_pieces(&[data], &limits, head_request);
        let (a, b) = data.split_at(cut_of(data));
        let split = response_in_pieces(&[a, b], &limits, head_request);
        assert_eq!(whole, split, "cut at {}", a.len());
        let (Ok(Some(head)), _) = whole else {
            continue;
        };
        let lengths: Vec<_> = head.headers.get_all("content-length").collect();
        let codings: Vec<_> = head.headers.get_all("transfer-encoding").collect();
        assert!(lengths.len() <= 1 && codings.len() <= 1 && lengths.len() + codings.len() <= 1);
        match head.framing {
            h1::Framing::Length(n) => {
                assert_eq!(
                    lengths.first().map(|h| h1::content_length(h.value())),
                    Some(Ok(n))
                )
            }
            h1::Framing::Chunked => assert_eq!(codings.len(), 1),
            h1::Framing::UntilClose => assert!(lengths.is_empty() && codings.is_empty()),
            h1::Framing::None => {}
        }
        let mut out = Vec::new();
        h1::write_response_head(
            &mut out,
            head.version,
            head.status,
            &head.reason,
            &head.headers,
        );
        let again = h1::parse_response(
            &mut BytesMut::from(&out[..]),
            &h1::ResponseLimits::default(),
            head_request,
        );
        let Ok(Some(again)) = again else {
            panic!(
                "a written head does not parse: {again:?} {:?}",
                String::from_utf8_lossy(&out)
            );
        };
        assert_eq!((again.headers, again.framing), (head.headers, head.framing));
    }
}

/// A client's request head through the `h1` codec: never a panic; the same
/// outcome whole or cut in two; every refusal has one of nginx's statuses.
pub fn h1_request_head(data: &[u8]) {
    let limits = h1::RequestLimits::default();
    let parse = |pieces: &[&[u8]]| {
        let mut buffer = BytesMut::new();
        let mut outcome = Ok(None);
        for piece in pieces {
            buffer.extend_from_slice(piece);
            if matches!(outcome, Ok(None)) {
                outcome = h1::parse_request(&mut buffer, &limits);
            }
        }
        let rest = if matches!(outcome, Ok(Some(_))) {
            buffer.to_vec()
        } else {
            Vec::new()
        };
        (outcome, rest)
    };
    let whole = parse(&[data]);
    let (a, b) = data.split_at(cut_of(data));
    assert_eq!(whole, parse(&[a, b]), "cut at {}", a.len());
    match whole.0 {
        Err(e) => assert!([400, 414, 494, 501, 505].contains(&e.status()), "{e:?}"),
        Ok(Some(head)) => {
            let mut out = Vec::new();
            h1::write_request_head(
                &mut out,
                &head.method,
                &head.target,
                head.version,
                &head.headers,
            );
            let again = h1::parse_request(&mut BytesMut::from(&out[..]), &limits);
            // The written head is the same head; its length is that of the
            // bytes written (the original's spacing may differ).
            let Ok(Some(again)) = again else {
                panic!("the written head does not parse: {again:?}");
            };
            assert_eq!(again.length, out.len());
            assert_eq!(
                h1::RequestHead {
                    length: head.length,
                    ignored: head.ignored.clone(),
                    ..again
                },
                head
            );
        }
        Ok(None) => {}
    }
}

/// A decoded chunked body: its data and how many input bytes it took;
/// `None` when the input ended first.
type Decoded = Option<(Vec<u8>, usize)>;

/// Decodes `pieces` one after the other; `bytewise`: one byte per call.
fn decode_pieces(
    pieces: &[&[u8]],
    limits: ChunkedLimits,
    bytewise: bool,
) -> Result<Decoded, ChunkedError> {
    let mut decoder = ChunkedDecoder::new(limits);
    let mut body = Vec::new();
    let mut used = 0;
    for piece in pieces {
        let mut rest: &[u8] = piece;
        while !rest.is_empty() {
            let take = if bytewise { 1 } else { rest.len() };
            let (now, later) = rest.split_at(take);
            let mut now = now;
            loop {
                match decoder.decode(now)? {
                    Step::Data(range) => {
                        assert!(!range.is_empty() && range.end <= now.len());
                        body.extend_from_slice(&now[range.clone()]);
                        used += range.end;
                        now = &now[range.end..];
                    }
                    Step::NeedMore => {
                        used += now.len();
                        break;
                    }
                    Step::Done(n) => return Ok(Some((body, used + n))),
                }
            }
            rest = later;
        }
    }
    Ok(None)
}

/// A chunked body through the `h1` decoder: never a panic; the same
/// outcome whole, cut in two, or a byte at a time; a decoded body encoded
/// again decodes to itself.
pub fn h1_chunked(data: &[u8]) {
    let limits = if hash(data) & 1 == 1 {
        ChunkedLimits::default()
    } else {
        ChunkedLimits {
            max_size_line: 16,
            max_trailers: 64,
        }
    };
    let whole = decode_pieces(&[data], limits, false);
    let (a, b) = data.split_at(cut_of(data));
    assert_eq!(
        whole,
        decode_pieces(&[a, b], limits, false),
        "cut at {}",
        a.len()
    );
    if data.len() <= 4096 {
        assert_eq!(whole, decode_pieces(&[data], limits, true), "byte by byte");
    }
    if let Ok(Some((body, used))) = whole {
        assert!(used <= data.len());
        let mut wire = Vec::new();
        encode_chunk(&mut wire, &body);
        encode_last_chunk(&mut wire, &h1::Headers::new());
        assert_eq!(
            decode_pieces(&[&wire], ChunkedLimits::default(), false),
            Ok(Some((body, wire.len())))
        );
    }
}

/// A small deterministic PRNG (xorshift64*), so runs can be replayed by seed.
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (a zero seed is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Tokens the mutator splices in: the grammar's interesting bytes.
const DICTIONARY: &[&[u8]] = &[
    b"{",
    b"}",
    b";",
    b"\"",
    b"'",
    b"\\",
    b"$",
    b"${",
    b"#",
    b"\n",
    b"\r\n",
    b" ",
    b"\t",
    b"\0",
    b"include ",
    b"http",
    b"server",
    b"location",
    b"upstream",
    b"$remote_addr",
    b"${status}",
    b"$http_",
    b"Content-Length",
    b"Transfer-Encoding",
    b"chunked",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.0 ",
    b"\r\n\r\n",
    b"0\r\n\r\n",
    b";ext=1",
    b"ffffffff",
    b"Connection: close\r\n",
    b"Host",
    b"%00",
    b"%2e%2e",
    b"/..",
    b"/./",
    b"//",
    b"http://",
    b"*",
    b":",
    b"\xff",
    b"\xc3\xa9",
];

/// One mutation of `input` in the spirit of libFuzzer's: flip, insert,
/// delete, duplicate, splice a dictionary token, or cross over with `other`.
pub fn mutate(rng: &mut Rng, input: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                input.insert(i, rng.next_u64() as u8);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                input.drain(i..i + n);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(32));
                let piece = input[i..i + n].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, piece);
            }
            4 | 5 => {
                let token = DICTIONARY[rng.below(DICTIONARY.len())];
                let at = rng.below(len + 1);
                input.splice(at..at, token.iter().copied());
            }
            _ if !other.is_empty() => {
                let from = rng.below(other.len());
                let n = 1 + rng.below((other.len() - from).min(64));
                let at = rng.below(len + 1);
                input.splice(at..at, other[from..from + n].iter().copied());
            }
            _ => {}
        }
    }
    input.truncate(64 * 1024);
}

/// The seed corpus of a target (`corpus/NAME/*`), sorted by name.
pub fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}
