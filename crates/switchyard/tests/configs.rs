//! Realistic configurations (`tests/configs/NAME/` at the repository root),
//! each run under Debian's nginx and under switchyard: `-t` must agree, and
//! a list of requests must get the same status, the listed headers and the
//! same body from both. See `tests/configs/README.md` for the format.
//!
//! nginx is the oracle, so it must be installed (`scripts/install-test-deps`);
//! without it these tests fail rather than pass vacuously.
//!
//! What legitimately differs between the two runs, and is normalised here
//! (nothing else is):
//! - each side's own listening ports (`@PORT@`, `@PORT2@`, ... in the
//!   config) appear in redirects and in what the echo backends saw: both are
//!   written back as the placeholder;
//! - the echo backend's `"peer":"127.0.0.1:N"` holds the proxy's ephemeral
//!   source port: `N` becomes `*`;
//! - a gzip-encoded body is compared decoded (two deflate implementations
//!   may choose different bytes for the same text);
//! - `Expires` is compared as its distance from `Date`, since the two runs
//!   happen a moment apart;
//! - chunked bodies are compared de-chunked (chunk sizes are not semantics);
//! - the signature of the built-in error pages (`<hr><center>nginx/1.22.1`
//!   or `switchyard/0.1.0`) is the server's name, like `Server`: it becomes
//!   `SERVER/VERSION` (or `SERVER` under `server_tokens off`), and a
//!   `Content-Length` equal to the length of the body as sent is compared
//!   as the length of the normalised body.
//!
//! - Debian's nginx is 1.22, which writes `Host` among the other request
//!   headers it sends up; the reference nginx (1.31.4 and later) writes it
//!   first: in what an echo backend saw from the oracle, `host` is moved
//!   first.
//!
//! `Server` and `Date` are never compared.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use support::{free_port, Echo, BIN};

/// Main-context directives both servers get on the command line (`-g`): a
/// foreground single process with its pid file in the prefix (Debian's
/// nginx would otherwise write /run/nginx.pid).
const GLOBALS: &str = "daemon off; master_process off; pid logs/nginx.pid;";

/// The mtime given to every static file, so `ETag` and `Last-Modified` are
/// known in advance (requests can send `If-None-Match`): 2024-01-02 03:04:05 UTC.
const FILE_MTIME_SECS: u64 = 1_704_164_645;

/// How long one request may take before the test fails.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The repository's `tests/configs`.
fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/configs")
}

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Nginx,
    Switchyard,
}

impl Kind {
    fn bin(self) -> PathBuf {
        match self {
            Kind::Nginx => support::nginx::nginx_bin(),
            Kind::Switchyard => PathBuf::from(BIN),
        }
    }

    /// The command line shared by `-t` and a run (`globals` for `-g`).
    fn command(self, prefix: &Path, conf: &Path, globals: &str) -> Command {
        let mut cmd = Command::new(self.bin());
        cmd.arg("-p")
            .arg(prefix)
            .args(["-e", "logs/error.log", "-c"])
            .arg(conf)
            .args(["-g", globals]);
        cmd
    }
}

/// A running server, killed on drop.
struct Server {
    child: Child,
}

impl Server {
    /// Starts `kind` on `conf`; returns once the pid file exists and every
    /// port accepts, or its stderr and error log if it exits.
    fn start(
        kind: Kind,
        prefix: &Path,
        conf: &Path,
        globals: &str,
        ports: &[u16],
    ) -> Result<Server, String> {
        let mut child = kind
            .command(prefix, conf, globals)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {kind:?}: {e}"));
        let pid_file = prefix.join("logs/nginx.pid");
        support::wait_started(
            &mut child,
            prefix,
            Some(&pid_file),
            ports,
            Duration::from_secs(20),
        )
        .map_err(|e| format!("{kind:?} {e}"))?;
        // Drain stderr so a chatty server never blocks on a full pipe.
        if let Some(mut e) = child.stderr.take() {
            std::thread::spawn(move || {
                let mut sink = Vec::new();
                let _ = e.read_to_end(&mut sink);
            });
        }
        Ok(Server { child })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kind -t` on `conf`: whether it passed, and what it said.
fn check(kind: Kind, prefix: &Path, conf: &Path, globals: &str) -> (bool, String) {
    let out = kind
        .command(prefix, conf, globals)
        .arg("-t")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {kind:?} -t: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A backend that answers an upgrade (`101 Switching Protocols`,
/// `Upgrade: websocket`) and then echoes every byte, for any number of
/// connections (up to a bound) until the test ends.
fn upgrade_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind upgrade backend");
    let addr = listener.local_addr().expect("upgrade backend address");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                if !text.contains("\r\nupgrade: websocket") {
                    let _ = stream.write_all(
                        b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    return;
                }
                let answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
                if stream.write_all(answer.as_bytes()).is_err() {
                    return;
                }
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// One request of a `requests` file.
#[derive(Debug, Default)]
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    /// Which listening port (1 = `@PORT@`, 2 = `@PORT2@`, ...).
    port: usize,
    /// The status nginx must give: guards against a config that both
    /// servers fail alike for a reason nobody meant.
    expect: Option<u16>,
    /// Headers compared for this request besides the file's list.
    compare: Vec<String>,
    /// Bytes sent after a 101; what comes back is compared as the body.
    frames: Option<Vec<u8>>,
    /// The line it starts on, to name it in failures.
    line: usize,
}

/// A parsed `requests` file.
#[derive(Debug, Default)]
struct Plan {
    /// Headers compared for every request.
    compare: Vec<String>,
    /// Whether both `-t` must fail (a config with a known mistake).
    t_fails: bool,
    requests: Vec<Request>,
}

/// `\n`, `\r`, `\t` and `\\` in a body or frames value.
fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push(b'\n'),
                Some('r') => out.push(b'\r'),
                Some('t') => out.push(b'\t'),
                Some('\\') => out.push(b'\\'),
                Some(other) => panic!("unknown escape \\{other}"),
                None => out.push(b'\\'),
            }
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    out
}

fn words(s: &str) -> Vec<String> {
    s.split([' ', ','])
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Parses the request list: blocks separated by blank lines; `#` starts a
/// comment line; `@key value` lines are instructions to the harness.
fn parse_plan(text: &str) -> Plan {
    let mut plan = Plan::default();
    let mut current: Option<Request> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        let n = i + 1;
        if line.trim_start().starts_with('#') {
            continue;
        }
        if line.is_empty() {
            if let Some(r) = current.take() {
                plan.requests.push(r);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix('@') {
            let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
            let value = value.trim();
            match (current.as_mut(), key) {
                (None, "compare") => plan.compare.extend(words(value)),
                (None, "t") => plan.t_fails = value == "fail",
                (Some(r), "compare") => r.compare.extend(words(value)),
                (Some(r), "expect") => {
                    r.expect = Some(
                        value
                            .parse()
                            .unwrap_or_else(|_| panic!("line {n}: @expect")),
                    )
                }
                (Some(r), "port") => {
                    r.port = value.parse().unwrap_or_else(|_| panic!("line {n}: @port"))
                }
                (Some(r), "body") => r.body = Some(unescape(value)),
                (Some(r), "frames") => r.frames = Some(unescape(value)),
                _ => panic!("line {n}: unknown instruction {line:?}"),
            }
            continue;
        }
        match current.as_mut() {
            None => {
                let (method, target) = line
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("line {n}: expected `METHOD TARGET`, got {line:?}"));
                current = Some(Request {
                    method: method.to_string(),
                    target: target.trim().to_string(),
                    port: 1,
                    line: n,
                    ..Request::default()
                });
            }
            Some(r) => {
                let (k, v) = line
                    .split_once(':')
                    .unwrap_or_else(|| panic!("line {n}: expected a header, got {line:?}"));
                r.headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    if let Some(r) = current.take() {
        plan.requests.push(r);
    }
    plan
}

/// One side's view of a configuration's placeholders.
struct Side {
    ports: Vec<u16>,
}

impl Side {
    /// Replaces `@PORT@`, `@PORT2@` ... with this side's ports.
    fn fill(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (i, port) in self.ports.iter().enumerate().rev() {
            out = out.replace(&port_placeholder(i), &port.to_string());
        }
        out
    }

    /// The reverse of [`Side::fill`] on what a server sent back: a port
    /// number (not part of a longer number) becomes its placeholder.
    fn unfill(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (i, port) in self.ports.iter().enumerate() {
            let re =
                regex::Regex::new(&format!(r"(^|[^0-9]){port}($|[^0-9])")).expect("port regex");
            // Twice: adjacent matches share a separator.
            for _ in 0..2 {
                out = re
                    .replace_all(&out, format!("${{1}}{}${{2}}", port_placeholder(i)))
                    .into_owned();
            }
        }
        out
    }
}

fn port_placeholder(i: usize) -> String {
    if i == 0 {
        "@PORT@".to_string()
    } else {
        format!("@PORT{}@", i + 1)
    }
}

/// What one server answered, normalised for comparison.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    headers: BTreeMap<String, Option<String>>,
    body: String,
}

/// Reads a response head: status and headers in order.
fn read_head(reader: &mut impl BufRead) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        // Closed without an answer (`return 444`): status 0 stands for it.
        return Ok((0, Vec::new()));
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    for _ in 0..200 {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            return Err(std::io::Error::other("response head cut short"));
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            return Ok((status, headers));
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Err(std::io::Error::other("more than 200 header lines"))
}

/// Reads a chunked body (and its trailer section).
fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    for _ in 0..100_000 {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| std::io::Error::other(format!("bad chunk size {size:?}")))?;
        if n == 0 {
            for _ in 0..100 {
                let mut t = String::new();
                if reader.read_line(&mut t)? == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
            return Err(std::io::Error::other("endless trailer"));
        }
        let mut chunk = vec![0; n + 2];
        reader.read_exact(&mut chunk)?;
        body.extend_from_slice(&chunk[..n]);
    }
    Err(std::io::Error::other("more than 100000 chunks"))
}

/// A response as read: status (0 for a close without one), headers with
/// lower-cased names in order, and the body (de-chunked).
type Raw = (u16, Vec<(String, String)>, Vec<u8>);

/// Sends `req` to `side` and reads the answer.
fn send(side: &Side, req: &Request) -> std::io::Result<Raw> {
    let port = side.ports[req.port - 1];
    let stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, side.fill(&req.target));
    let has = |name: &str| {
        req.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    if !has("host") {
        head.push_str("Host: localhost\r\n");
    }
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {}\r\n", side.fill(v)));
    }
    if !has("connection") {
        head.push_str("Connection: close\r\n");
    }
    if let Some(body) = &req.body {
        if !has("content-length") && !has("transfer-encoding") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if let Some(body) = &req.body {
        bytes.extend_from_slice(body);
    }
    (&stream).write_all(&bytes)?;
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader)?;
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let body = if status == 0 {
        Vec::new()
    } else if status == 101 {
        match &req.frames {
            Some(frames) => {
                reader.get_mut().write_all(frames)?;
                let mut back = vec![0; frames.len()];
                reader.read_exact(&mut back)?;
                back
            }
            None => Vec::new(),
        }
    } else if req.method == "HEAD" || status < 200 || status == 204 || status == 304 {
        Vec::new()
    } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(&mut reader)?
    } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        body
    } else {
        let mut body = Vec::new();
        reader.read_to_end(&mut body)?;
        body
    };
    Ok((status, headers, body))
}

/// The comparable form of an answer (see the module doc for what is normalised).
fn normalise(
    kind: Kind,
    side: &Side,
    compare: &[String],
    status: u16,
    headers: &[(String, String)],
    raw_body: &[u8],
) -> Answer {
    let all = |name: &str| -> Option<String> {
        let values: Vec<&str> = headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join("\n"))
    };
    let decoded;
    let body = if all("content-encoding").as_deref() == Some("gzip") {
        let mut out = Vec::new();
        match flate2::read::GzDecoder::new(raw_body).read_to_end(&mut out) {
            Ok(_) => decoded = out,
            Err(e) => decoded = format!("<undecodable gzip body: {e}>").into_bytes(),
        }
        &decoded[..]
    } else {
        raw_body
    };
    let peer = regex::Regex::new(r#""peer":"127\.0\.0\.1:[0-9]+""#).expect("peer regex");
    let text = String::from_utf8_lossy(body);
    let text = side.unfill(&text);
    let body = peer.replace_all(&text, r#""peer":"127.0.0.1:*""#);
    let body = echo_seen(&body, kind == Kind::Nginx);
    let signature = regex::Regex::new(r"<hr><center>(nginx|switchyard)(/[0-9.]+)?</center>")
        .expect("signature regex");
    let body = signature
        .replace_all(&body, |c: &regex::Captures| {
            let version = if c.get(2).is_some() { "/VERSION" } else { "" };
            format!("<hr><center>SERVER{version}</center>")
        })
        .into_owned();

    let mut compared = BTreeMap::new();
    for name in compare {
        let raw = all(name);
        let mut value = raw.as_deref().map(|v| side.unfill(v));
        // A Content-Length that frames the body as sent is compared as the
        // length of the normalised body (an error page's signature holds
        // the server's name); any other value as it is.
        if name == "content-length" && raw == Some(raw_body.len().to_string()) {
            value = Some(format!("{} (the body's length)", body.len()));
        }
        if name == "expires" {
            let date = all("date").and_then(|d| httpdate::parse_http_date(&d).ok());
            let expires = value
                .as_deref()
                .and_then(|e| httpdate::parse_http_date(e).ok());
            if let (Some(d), Some(e)) = (date, expires) {
                value = Some(match e.duration_since(d) {
                    Ok(ahead) => format!("Date+{}s", ahead.as_secs()),
                    Err(behind) => format!("Date-{}s", behind.duration().as_secs()),
                });
            }
        }
        compared.insert(name.clone(), value);
    }
    Answer {
        status,
        headers: compared,
        body,
    }
}

/// An echo backend's JSON written back in one form for both sides; from
/// Debian's nginx (1.22, `oracle`) with its `Host` header moved first, where
/// the nginx of the reference (1.31.4 and later, nginx commit dea68dbf1)
/// writes it, right after the request line. Any other body as it is.
fn echo_seen(body: &str, oracle: bool) -> String {
    let Ok(mut echo) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.to_string();
    };
    let Some(headers) = echo.get_mut("headers").and_then(|h| h.as_array_mut()) else {
        return body.to_string();
    };
    let is_host = |pair: &serde_json::Value| pair.get(0).and_then(|n| n.as_str()) == Some("host");
    if let Some(at) = headers.iter().position(is_host).filter(|_| oracle) {
        let host = headers.remove(at);
        headers.insert(0, host);
    }
    // Written back as the echo backend writes it: no spaces.
    serde_json::to_string(&echo).unwrap_or_else(|_| body.to_string())
}

/// Copies `from` into `to` (files and directories), filling placeholders
/// in text files with `fill`, and giving every file [`FILE_MTIME_SECS`].
fn copy_tree(from: &Path, to: &Path, fill: &dyn Fn(&str) -> String) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .unwrap_or_else(|e| panic!("read {}: {e}", from.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().expect("file name");
        let dest = to.join(name);
        if path.is_dir() {
            copy_tree(&path, &dest, fill);
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let bytes = match String::from_utf8(bytes) {
            Ok(text) => fill(&text).into_bytes(),
            Err(e) => e.into_bytes(),
        };
        std::fs::write(&dest, bytes).unwrap_or_else(|e| panic!("write {}: {e}", dest.display()));
        let file = std::fs::File::options()
            .write(true)
            .open(&dest)
            .expect("open for mtime");
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(FILE_MTIME_SECS))
            .expect("set mtime");
    }
}

/// The placeholders a config names, e.g. `BACKEND_` gives every `x` of
/// `@BACKEND_x@`, sorted and deduplicated.
fn placeholders(text: &str, prefix: &str) -> Vec<String> {
    let re = regex::Regex::new(&format!("@{prefix}([A-Za-z0-9]+)@")).expect("placeholder regex");
    let mut names: Vec<String> = re.captures_iter(text).map(|c| c[1].to_string()).collect();
    names.sort();
    names.dedup();
    names
}

/// The text of every file of the config directory but `www/`.
fn config_texts(dir: &Path) -> String {
    let mut all = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read config dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                if path.file_name() != Some("www".as_ref()) {
                    stack.push(path);
                }
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                all.push_str(&text);
            }
        }
    }
    all
}

/// One side's prefix: the config directory's files (but `www/` and
/// `requests`) with the placeholders filled, `mime.types`, `logs/`, `tmp/`,
/// on ports of its own.
fn prepare(
    src: &Path,
    shared_fill: &dyn Fn(&str) -> String,
    port_count: usize,
) -> (Side, tempfile::TempDir) {
    let side = Side {
        ports: (0..port_count).map(|_| free_port()).collect(),
    };
    let prefix = tempfile::tempdir().expect("tempdir");
    for sub in ["logs", "tmp"] {
        std::fs::create_dir_all(prefix.path().join(sub)).expect("mkdir");
    }
    // A real install has mime.types beside nginx.conf.
    std::fs::copy("/etc/nginx/mime.types", prefix.path().join("mime.types"))
        .expect("/etc/nginx/mime.types (Debian's nginx-common)");
    let fill = |t: &str| side.fill(&shared_fill(t));
    for entry in std::fs::read_dir(src).expect("read config dir") {
        let path = entry.expect("entry").path();
        let file = path.file_name().expect("name").to_owned();
        if file == "www" || file == "requests" {
            continue;
        }
        if path.is_dir() {
            copy_tree(&path, &prefix.path().join(&file), &fill);
        } else {
            let text = std::fs::read_to_string(&path).expect("config file is text");
            std::fs::write(prefix.path().join(&file), fill(&text)).expect("write");
        }
    }
    (side, prefix)
}

/// Runs one configuration under both servers and compares.
fn run(name: &str) {
    let src = configs_dir().join(name);
    let plan_text = std::fs::read_to_string(src.join("requests"))
        .unwrap_or_else(|e| panic!("{name}/requests: {e}"));
    let plan = parse_plan(&plan_text);
    let texts = config_texts(&src);

    // Backends, shared by both sides: the same addresses in both configs.
    let mut echos = Vec::new();
    let mut fills: Vec<(String, String)> = Vec::new();
    for b in placeholders(&texts, "BACKEND_") {
        let echo = Echo::start(&b, "127.0.0.1:0");
        fills.push((format!("@BACKEND_{b}@"), echo.addr.to_string()));
        echos.push(echo);
    }
    for w in placeholders(&texts, "WS_") {
        fills.push((format!("@WS_{w}@"), upgrade_backend().to_string()));
    }
    // Bound but not listening: connections are refused, and nothing else
    // can take the port while the socket lives.
    let mut dead = Vec::new();
    for d in placeholders(&texts, "DEAD_") {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        let addr = s.local_addr().expect("addr").as_socket().expect("inet");
        fills.push((format!("@DEAD_{d}@"), addr.to_string()));
        dead.push(s);
    }
    let www = tempfile::tempdir().expect("tempdir");
    fills.push(("@ROOT@".to_string(), www.path().display().to_string()));
    let shared_fill = |t: &str| {
        let mut t = t.to_string();
        for (k, v) in &fills {
            t = t.replace(k.as_str(), v);
        }
        t
    };
    if src.join("www").is_dir() {
        copy_tree(&src.join("www"), www.path(), &|t| t.to_string());
    }

    let port_count = (2..=9)
        .take_while(|i| texts.contains(&port_placeholder(i - 1)))
        .count()
        + 1;
    let prepare = || prepare(&src, &shared_fill, port_count);
    let mut sides: Vec<(Kind, Side, tempfile::TempDir)> = [Kind::Nginx, Kind::Switchyard]
        .into_iter()
        .map(|kind| {
            let (side, prefix) = prepare();
            (kind, side, prefix)
        })
        .collect();

    // -t: the verdicts must agree (and match what the plan says).
    let mut verdicts = Vec::new();
    for (kind, _, prefix) in &sides {
        let conf = prefix.path().join("nginx.conf");
        verdicts.push(check(*kind, prefix.path(), &conf, GLOBALS));
    }
    let (nginx_ok, nginx_said) = &verdicts[0];
    let (switchyard_ok, switchyard_said) = &verdicts[1];
    assert_eq!(
        nginx_ok, switchyard_ok,
        "{name}: -t verdicts differ\nnginx:\n{nginx_said}\nswitchyard:\n{switchyard_said}"
    );
    assert_eq!(
        !nginx_ok,
        plan.t_fails,
        "{name}: nginx -t {} but the plan says otherwise:\n{nginx_said}",
        if *nginx_ok { "passes" } else { "fails" }
    );
    if plan.t_fails {
        return;
    }
    assert!(!plan.requests.is_empty(), "{name}: no requests");

    // A port picked free can be taken by another test's process before
    // the server binds it: then that side starts again on new ports (a
    // bounded number of times).
    let mut servers = Vec::new();
    for (kind, side, prefix) in sides.iter_mut() {
        let mut tries = 0;
        let server = loop {
            let conf = prefix.path().join("nginx.conf");
            match Server::start(*kind, prefix.path(), &conf, GLOBALS, &side.ports) {
                Ok(server) => break server,
                Err(why) if why.contains("Address already in use") && tries < 3 => {
                    tries += 1;
                    (*side, *prefix) = prepare();
                }
                Err(why) => panic!("{name}: {why}"),
            }
        };
        servers.push(server);
    }

    let sides: Vec<(Kind, &Side)> = sides.iter().map(|(k, s, _)| (*k, s)).collect();
    compare_answers(name, &plan, &sides);
    drop(servers);
    drop(echos);
}

/// Sends every request of `plan` to both sides (nginx first) and fails
/// with every difference, normalised as the module doc says.
fn compare_answers(name: &str, plan: &Plan, sides: &[(Kind, &Side)]) {
    let mut failures = Vec::new();
    for req in &plan.requests {
        let mut compare = plan.compare.clone();
        compare.extend(req.compare.iter().cloned());
        let mut answers = Vec::new();
        for (kind, side) in sides {
            let (status, headers, body) = send(side, req).unwrap_or_else(|e| {
                panic!(
                    "{name}: {} {} (line {}) to {kind:?}: {e}",
                    req.method, req.target, req.line
                )
            });
            answers.push(normalise(*kind, side, &compare, status, &headers, &body));
        }
        let what = format!("{} {} (requests line {})", req.method, req.target, req.line);
        if let Some(expect) = req.expect {
            if answers[0].status != expect {
                failures.push(format!(
                    "{what}: nginx answered {}, the plan expects {expect}",
                    answers[0].status
                ));
            }
        }
        // CONFIGS_SHOW=1 prints every pair, to write or debug a plan.
        if std::env::var_os("CONFIGS_SHOW").is_some() {
            eprintln!(
                "{name}: {what}\n  nginx:      {:?}\n  switchyard: {:?}",
                answers[0], answers[1]
            );
        }
        if answers[0] != answers[1] {
            failures.push(format!(
                "{what}:\n  nginx:      {:?}\n  switchyard: {:?}",
                answers[0], answers[1]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} requests differ:\n{}",
        failures.len(),
        plan.requests.len(),
        failures.join("\n")
    );
}

/// One `#[test]` per configuration directory, and a list of them all.
macro_rules! configs {
    ($($test:ident => $dir:literal,)*) => {
        $(
            #[test]
            fn $test() {
                run($dir);
            }
        )*
        /// Every configuration that has a test.
        const LISTED: &[&str] = &[$($dir),*];
    };
}

configs! {
    api_gateway => "api-gateway",
    canary_split => "canary-split",
    code_server => "code-server",
    django_gunicorn => "django-gunicorn",
    gitea => "gitea",
    grafana => "grafana",
    health_endpoints => "health-endpoints",
    home_assistant => "home-assistant",
    jellyfin => "jellyfin",
    keycloak => "keycloak",
    load_balancing => "load-balancing",
    maintenance => "maintenance",
    mattermost => "mattermost",
    mistake_regex_uri => "mistake-regex-uri",
    nextcloud_proxy => "nextcloud-proxy",
    oauth2_proxy => "oauth2-proxy",
    plausible_proxy => "plausible-proxy",
    prometheus_basic_auth => "prometheus-basic-auth",
    redirects => "redirects",
    security_headers => "security-headers",
    spa => "spa",
    static_site => "static-site",
    uptime_kuma => "uptime-kuma",
    vaultwarden => "vaultwarden",
    wordpress => "wordpress",

}

/// A configuration directory without a test would never run: every one
/// (but `known-gaps/`) must be in the list above.
#[test]
fn every_config_is_listed() {
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(configs_dir()).expect("tests/configs") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if path.is_dir() && name != "known-gaps" && !LISTED.contains(&name.as_str()) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "configs without a test: {missing:?}");
}

/// The modules of Debian's `modules-enabled/` that the stock test keeps:
/// those `scripts/install-test-deps` installs (libnginx-mod-stream), which
/// switchyard has built in. A machine may hold others that some other
/// package enabled (ngx_http_echo_module from libnginx-mod-http-echo, on
/// these machines): a stock install of nginx-light with the project's test
/// dependencies has none of them, and switchyard rightly refuses a module
/// it lacks, so their `load_module` lines are left out of the copy.
const STOCK_MODULES: &[&str] = &["ngx_stream_module"];

/// Replaces `from` with `to` in `text`, failing if `from` is not there:
/// the stock test edits Debian's files only where it means to.
fn edit(text: &str, from: &str, to: &str, file: &str) -> String {
    assert!(
        text.contains(from),
        "{file} has no {from:?}: Debian's file changed; update the stock test"
    );
    text.replace(from, to)
}

/// Debian's stock /etc/nginx/nginx.conf with sites-enabled/default, copied
/// into a temporary prefix with only its listen ports, pid, log and
/// include paths, module list (see [`STOCK_MODULES`]) and document root
/// changed: `-t` must pass on both, and both must serve the default site
/// alike.
#[test]
fn debian_stock_default_site() {
    let etc = Path::new("/etc/nginx");
    let www = tempfile::tempdir().expect("tempdir");
    // The page Debian's nginx-common puts in /var/www/html (its postinst
    // copies it from /usr/share/nginx/html), plus a directory to exercise
    // try_files' `$uri/` and the slash redirect.
    let page = [
        "/var/www/html/index.nginx-debian.html",
        "/usr/share/nginx/html/index.html",
    ]
    .iter()
    .find_map(|p| std::fs::read(p).ok())
    .expect("Debian's default page (nginx-common)");
    let site = tempfile::tempdir().expect("tempdir");
    std::fs::write(site.path().join("index.nginx-debian.html"), page).expect("write page");
    std::fs::create_dir_all(site.path().join("docs")).expect("mkdir");
    std::fs::write(site.path().join("docs/index.html"), "<p>docs</p>\n").expect("write");
    std::fs::write(site.path().join("notes.txt"), "plain text\n").expect("write");
    copy_tree(site.path(), www.path(), &|t| t.to_string());

    let v6 = TcpListener::bind("[::1]:0").is_ok();
    let mut sides = Vec::new();
    for _ in 0..2 {
        let side = Side {
            ports: vec![free_port()],
        };
        let port = side.ports[0];
        let prefix = tempfile::tempdir().expect("tempdir");
        let p = prefix.path();
        for sub in ["logs", "conf.d", "sites-enabled", "modules-enabled"] {
            std::fs::create_dir_all(p.join(sub)).expect("mkdir");
        }
        std::fs::copy(etc.join("mime.types"), p.join("mime.types")).expect("mime.types");
        // load_module names paths under the prefix, as Debian's
        // /usr/share/nginx/modules does.
        std::os::unix::fs::symlink("/usr/lib/nginx/modules", p.join("modules"))
            .expect("modules link");
        for entry in std::fs::read_dir(etc.join("conf.d"))
            .expect("conf.d")
            .flatten()
        {
            std::fs::copy(entry.path(), p.join("conf.d").join(entry.file_name())).expect("copy");
        }
        for entry in std::fs::read_dir(etc.join("modules-enabled"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if STOCK_MODULES
                .iter()
                .any(|m| text.contains(&format!("/{m}.so")))
            {
                std::fs::write(p.join("modules-enabled").join(entry.file_name()), text)
                    .expect("write module file");
            }
        }
        let file = "/etc/nginx/nginx.conf";
        let mut conf = std::fs::read_to_string(file).expect("Debian's /etc/nginx/nginx.conf");
        for (from, to) in [
            ("pid /run/nginx.pid;", "pid logs/nginx.pid;"),
            (
                "error_log /var/log/nginx/error.log;",
                "error_log logs/error.log;",
            ),
            (
                "access_log /var/log/nginx/access.log;",
                "access_log logs/access.log;",
            ),
            (
                "include /etc/nginx/modules-enabled/*.conf;",
                "include modules-enabled/*.conf;",
            ),
            ("include /etc/nginx/mime.types;", "include mime.types;"),
            (
                "include /etc/nginx/conf.d/*.conf;",
                "include conf.d/*.conf;",
            ),
            (
                "include /etc/nginx/sites-enabled/*;",
                "include sites-enabled/*;",
            ),
        ] {
            conf = edit(&conf, from, to, file);
        }
        std::fs::write(p.join("nginx.conf"), conf).expect("write nginx.conf");
        let file = "/etc/nginx/sites-enabled/default";
        let mut default = std::fs::read_to_string(file).expect("Debian's default site");
        default = edit(
            &default,
            "listen 80 default_server;",
            &format!("listen 127.0.0.1:{port} default_server;"),
            file,
        );
        // The IPv6 listen stays, on loopback, where the machine has it.
        let v6_listen = if v6 {
            format!("listen [::1]:{port} default_server;")
        } else {
            String::new()
        };
        default = edit(&default, "listen [::]:80 default_server;", &v6_listen, file);
        default = edit(
            &default,
            "root /var/www/html;",
            &format!("root {};", www.path().display()),
            file,
        );
        std::fs::write(p.join("sites-enabled/default"), default).expect("write default");
        sides.push((side, prefix));
    }

    // The file keeps its own pid line; -g only keeps both in the foreground.
    let globals = "daemon off; master_process off;";
    let kinds = [Kind::Nginx, Kind::Switchyard];
    for (kind, (_, prefix)) in kinds.iter().zip(&sides) {
        let (ok, said) = check(
            *kind,
            prefix.path(),
            &prefix.path().join("nginx.conf"),
            globals,
        );
        assert!(ok, "{kind:?} -t refuses Debian's stock config:\n{said}");
    }
    let mut servers = Vec::new();
    for (kind, (side, prefix)) in kinds.iter().zip(&sides) {
        let conf = prefix.path().join("nginx.conf");
        let server = Server::start(*kind, prefix.path(), &conf, globals, &side.ports)
            .unwrap_or_else(|why| panic!("debian-stock: {why}"));
        servers.push(server);
    }
    let plan = parse_plan(
        r#"
@compare content-type content-length content-encoding etag last-modified location accept-ranges content-range vary

GET /
@expect 200

GET /
Accept-Encoding: gzip, deflate
@expect 200

HEAD /
@expect 200

GET /index.nginx-debian.html
@expect 200

GET /notes.txt
Accept-Encoding: gzip
@expect 200

GET /docs
@expect 301

GET /docs/
@expect 200

GET /missing.html
@expect 404

GET /../../etc/passwd
@expect 400

POST /
@body x=1
@expect 405

GET /
If-None-Match: "65937d25-267"
@expect 304

GET /
If-Modified-Since: Tue, 02 Jan 2024 03:04:05 GMT
@expect 304

GET /notes.txt
Range: bytes=2-6
@expect 206

GET /
Host: other.example.com
@expect 200
"#,
    );
    let pairs: Vec<(Kind, &Side)> = kinds
        .iter()
        .copied()
        .zip(sides.iter().map(|(s, _)| s))
        .collect();
    compare_answers("debian-stock", &plan, &pairs);
    drop(servers);
}
