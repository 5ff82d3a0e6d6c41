//! Shared helpers for integration tests: real processes on loopback,
//! ephemeral ports, readiness by pid file and accepting port, cleanup on drop.
#![allow(dead_code)]

pub mod lab;
pub mod loopback;
pub mod nginx;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// A port that was free a moment ago (bound to port 0 and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// Waits until `addr` accepts a connection.
pub fn wait_for_port(addr: SocketAddr, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("nothing accepts on {addr} after {limit:?}");
}

/// Waits until `condition` holds, polling.
pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// A running `switchyard echo`.
pub struct Echo {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its name (X-Served-By).
    pub name: String,
    /// Its stdout log lines so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Echo {
    /// Starts an echo backend on `listen` (use port 0 for an ephemeral one).
    pub fn start(name: &str, listen: &str) -> Echo {
        Self::start_with(name, listen, &[])
    }

    /// As [`Echo::start`], with more flags (`--tls`, `--mode tcp`, ...).
    pub fn start_with(name: &str, listen: &str, extra: &[&str]) -> Echo {
        let mut child = Command::new(BIN)
            .args(["echo", "--listen", listen, "--name", name])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn echo");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let ready = lines.next().expect("ready line").expect("read");
        let addr: SocketAddr = ready
            .strip_prefix("echo: listening on ")
            .and_then(|r| r.split(" as ").next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected ready line {ready:?}"));
        std::thread::spawn(move || for _ in lines {});
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Echo {
            child,
            addr,
            name: name.to_string(),
            log,
        }
    }

    /// Stops it (SIGKILL), e.g. to simulate a dead backend.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running balancer with its own prefix directory.
pub struct Balancer {
    child: Option<Child>,
    /// The prefix (a temporary directory).
    pub dir: tempfile::TempDir,
    /// The pid file.
    pub pid_file: PathBuf,
    /// The error log file.
    pub error_log: PathBuf,
    /// The access log file.
    pub access_log: PathBuf,
}

impl Balancer {
    /// Writes `http_body` into an nginx.conf (inside `http { }`, with an
    /// access log in the prefix) and starts the balancer; returns when the
    /// pid file exists and every `wait_ports` port accepts.
    pub fn start_http(http_body: &str, wait_ports: &[u16]) -> Balancer {
        Self::start_full(
            &format!(
                "error_log logs/error.log info;\nevents {{}}\nhttp {{\naccess_log logs/access.log;\n{http_body}\n}}\n"
            ),
            wait_ports,
            &[],
        )
    }

    /// Starts the balancer on a whole config text, with extra environment.
    pub fn start_full(conf: &str, wait_ports: &[u16], env: &[(&str, &str)]) -> Balancer {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let pid_file = dir.path().join("logs/nginx.pid");
        let error_log = dir.path().join("logs/error.log");
        let mut cmd = Command::new(BIN);
        cmd.arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn balancer");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !pid_file.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("balancer exited with {status}: {err}");
            }
            assert!(Instant::now() < deadline, "no pid file after 20s");
            std::thread::sleep(Duration::from_millis(10));
        }
        for port in wait_ports {
            wait_for_port(
                SocketAddr::from(([127, 0, 0, 1], *port)),
                Duration::from_secs(10),
            );
        }
        Balancer {
            child: Some(child),
            access_log: dir.path().join("logs/access.log"),
            dir,
            pid_file,
            error_log,
        }
    }

    /// The balancer's pid.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Waits for exit and returns the status code.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// The error log's text.
    pub fn error_log_text(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    /// The access log's lines.
    pub fn access_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.access_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Writes a new config text into the prefix (for reload tests).
    pub fn rewrite_conf(&self, conf: &str) {
        std::fs::write(self.dir.path().join("nginx.conf"), conf).unwrap();
    }

    /// The config path.
    pub fn conf_path(&self) -> PathBuf {
        self.dir.path().join("nginx.conf")
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names lower-cased -> values (last wins).
    pub headers: HashMap<String, String>,
    /// Header lines as received, in order.
    pub raw_headers: Vec<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response from `reader` (Content-Length, chunked, or until close).
pub fn read_response(reader: &mut impl BufRead) -> std::io::Result<Response> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "no response",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = HashMap::new();
    let mut raw_headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end_matches(['\r', '\n']).to_string();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        raw_headers.push(h);
    }
    let mut body = Vec::new();
    if let Some(len) = headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {size:?}")))?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if status != 204 && status != 304 && status >= 200 {
        reader.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        raw_headers,
        body,
    })
}

/// Sends raw bytes on a new connection and reads one response.
pub fn raw(addr: SocketAddr, request: &[u8]) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(request)?;
    read_response(&mut BufReader::new(s))
}

/// `GET path` on a new connection (`Connection: close`).
pub fn get(port: u16, path: &str) -> Response {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .expect("GET")
}

/// `POST path` with a body on a new connection.
pub fn post(port: u16, path: &str, body: &[u8]) -> Response {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    raw(addr, &req).expect("POST")
}

/// The upstream block text for a list of echo backends with extra params.
pub fn upstream_block(name: &str, servers: &[(SocketAddr, &str)]) -> String {
    let mut s = format!("upstream {name} {{\n");
    for (addr, params) in servers {
        s.push_str(&format!("    server {addr} {params};\n"));
    }
    s.push_str("}\n");
    s
}

/// A server block listening on `port` proxying `/` to `target`.
pub fn proxy_server(port: u16, target: &str, extra: &str) -> String {
    format!(
        "server {{\n    listen 127.0.0.1:{port};\n    {extra}\n    location / {{\n        proxy_pass http://{target};\n    }}\n}}\n"
    )
}

/// Path of a file inside a temp dir, for configs that include others.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

/// A keep-alive HTTP/1.1 client connection, for many requests in a row.
pub struct KeepAlive {
    reader: BufReader<TcpStream>,
    port: u16,
}

impl KeepAlive {
    /// Connects to 127.0.0.1:`port`.
    pub fn connect(port: u16) -> KeepAlive {
        let s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = s.set_nodelay(true);
        KeepAlive {
            reader: BufReader::new(s),
            port,
        }
    }

    /// `GET path` on this connection; reconnects once if the server closed it.
    pub fn get(&mut self, path: &str) -> Response {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost:{}\r\n\r\n",
            self.port
        );
        let send = |c: &mut KeepAlive| {
            c.reader.get_mut().write_all(req.as_bytes())?;
            read_response(&mut c.reader)
        };
        match send(self) {
            Ok(r) => {
                if r.header("connection") == Some("close") {
                    *self = KeepAlive::connect(self.port);
                }
                r
            }
            Err(_) => {
                *self = KeepAlive::connect(self.port);
                send(self).expect("GET on a fresh keep-alive connection")
            }
        }
    }
}

/// Fields of /proc/PID/status in kB (e.g. "VmHWM", "VmRSS").
pub fn proc_status_kib(pid: i32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The pids whose parent is `pid` (from /proc).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) {
            // pid (comm) state ppid ...: comm may hold spaces, split after ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(pid) {
                out.push(child);
            }
        }
    }
    out
}

/// Whether a process `pid` exists (a zombie counts: it was not reaped).
pub fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Counts the lines of `text` containing `needle`.
pub fn count_lines(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

/// A backend for one upgraded connection: it reads a request head,
/// answers `101 Switching Protocols` (`Upgrade: protocol`), then echoes
/// every byte it reads until the connection closes.
pub fn upgrade_echo_backend(protocol: &'static str) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: {protocol}\r\nConnection: upgrade\r\n\r\n"
        );
        if stream.write_all(answer.as_bytes()).is_err() {
            return;
        }
        let mut buf = [0u8; 256];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 || stream.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    });
    addr
}

/// What `switchyard -t` said of a configuration.
pub struct ConfCheck {
    /// The exit code.
    pub code: Option<i32>,
    /// What it wrote to stderr.
    pub stderr: String,
    /// The configuration file (error messages name it).
    pub conf: PathBuf,
    /// The prefix the file lives in, removed on drop.
    pub dir: tempfile::TempDir,
}

/// Runs `switchyard -t -p PREFIX -c PREFIX/nginx.conf` on `conf_text`.
pub fn check_conf(conf_text: &str) -> ConfCheck {
    check_conf_with(Path::new(BIN), conf_text)
}

/// Runs `BIN -t -p PREFIX -e logs/error.log -c PREFIX/nginx.conf` on
/// `conf_text`, for switchyard or nginx alike (the error log is named so
/// that nginx does not try its compiled-in path).
pub fn check_conf_with(bin: &Path, conf_text: &str) -> ConfCheck {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("logs")).expect("logs dir");
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, conf_text).expect("write nginx.conf");
    let out = Command::new(bin)
        .arg("-t")
        .arg("-p")
        .arg(dir.path())
        .args(["-e", "logs/error.log", "-c"])
        .arg(&conf)
        .output()
        .expect("run -t");
    ConfCheck {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        conf,
        dir,
    }
}

impl ConfCheck {
    /// Asserts a failed load whose error is `message` at `line` of the file.
    pub fn assert_error(&self, message: &str, line: usize) {
        assert_eq!(self.code, Some(1), "{}", self.stderr);
        let wanted = format!("{message} in {}:{line}", self.conf.display());
        assert!(
            self.stderr.contains(&wanted),
            "wanted {wanted:?} in {}",
            self.stderr
        );
    }

    /// The `[emerg]` and `[warn]` lines, from the level on, with the
    /// configuration's path written `CONF`: the part nginx and switchyard
    /// must agree on.
    pub fn problem_lines(&self) -> Vec<String> {
        let path = self.conf.display().to_string();
        self.stderr
            .lines()
            .filter_map(|l| {
                let at = l.find("[emerg] ").or_else(|| l.find("[warn] "))?;
                Some(l[at..].replace(&path, "CONF"))
            })
            .collect()
    }
}

/// Waits until a server started with its stderr piped is up: its pid file
/// exists (when one is named) and each of `ports` on 127.0.0.1 accepts.
/// If it exits first, the error is its stderr and `prefix`'s
/// logs/error.log; past `limit` it panics, naming what is missing.
pub fn wait_started(
    child: &mut Child,
    prefix: &Path,
    pid_file: Option<&Path>,
    ports: &[u16],
    limit: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut pending: Vec<u16> = ports.to_vec();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let log = std::fs::read_to_string(prefix.join("logs/error.log")).unwrap_or_default();
            return Err(format!("exited with {status}: {err}\n{log}"));
        }
        if pid_file.is_none_or(Path::exists) {
            pending.retain(|p| {
                let addr = SocketAddr::from(([127, 0, 0, 1], *p));
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err()
            });
            if pending.is_empty() {
                return Ok(());
            }
        }
        assert!(
            Instant::now() < deadline,
            "no pid file or ports {pending:?} not accepting after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
