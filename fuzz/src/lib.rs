//! The fuzz targets as plain functions, so that cargo-fuzz (nightly,
//! `fuzz_targets/`) and the stable runner (`src/bin/stable_fuzz.rs`,
//! `tests/corpus.rs`) drive the same code. A target must never panic.

use std::borrow::Cow;

use switchyard::http::guard;
use switchyard::http::route::normalize_uri;
use switchyard::observe::log_format::{Escape, LogFormat};
use switchyard::vars::{Var, VarSource};

/// The names of the targets, as in `fuzz_targets/` and `corpus/`.
pub const TARGETS: [&str; 3] = ["config_parser", "log_format", "request_head"];

/// Runs target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "config_parser" => config_parser(data),
        "log_format" => log_format(data),
        "request_head" => request_head(data),
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
    let _ = guard::parse_content_length(data);
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
    for limits in [
        guard::Limits::from_buffers((4, 8192)),
        guard::Limits::from_buffers((1, 16)),
        guard::Limits::from_buffers((u64::MAX, u64::MAX)),
    ] {
        let verdict = guard::check_request(&parts, &limits);
        if verdict.is_ok() {
            // What passes has one framing at most, and a Host or an absolute target.
            let cl = parts
                .headers
                .get_all(http::header::CONTENT_LENGTH)
                .iter()
                .count();
            let te = parts
                .headers
                .get_all(http::header::TRANSFER_ENCODING)
                .iter()
                .count();
            assert!(cl + te <= 1, "two framings passed: {parts:?}");
        }
    }
    if let Some(uri) = normalize_uri(parts.uri.path()) {
        assert!(uri.starts_with('/'), "{uri:?}");
        assert!(!uri.contains("/../") && !uri.ends_with("/.."), "{uri:?}");
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
