//! The process: load the configuration, bind, write the pid file, serve,
//! and answer signals (HUP reload, QUIT graceful stop, TERM/INT fast stop,
//! USR1 reopen logs). One process with a multi-threaded runtime; nginx's
//! `worker_processes` sets the number of worker threads.

mod listeners;
mod workers;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::config::model::{ErrorLogTarget, LogPath};
use crate::config::{self, LoadOptions};
use crate::http::generation::Generation;
use crate::http::server::Shared;
use crate::observe::{access_log, error_log, ErrorLevel};
use crate::upstream::addr::PeerAddr;

/// How the process was asked to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// What to load.
    pub load: LoadOptions,
    /// `-e`, overriding the main `error_log`.
    pub error_log: Option<String>,
}

fn configure_error_log(
    configured: &[ErrorLogTarget],
    override_path: Option<&str>,
    prefix: &Path,
) -> Result<(), String> {
    let mut targets = configured.to_vec();
    if let Some(path) = override_path {
        let path = if path == "stderr" {
            LogPath::Stderr
        } else {
            LogPath::File(config::full_path(prefix, path))
        };
        targets = vec![ErrorLogTarget {
            path,
            level: targets
                .first()
                .map(|t| t.level)
                .unwrap_or(ErrorLevel::Error),
        }];
    }
    error_log::configure(&targets)
}

/// Runs the load balancer until it is told to stop; returns the exit code.
pub fn run(options: RunOptions) -> i32 {
    let loaded = match config::load(&options.load) {
        Ok(l) => l,
        Err(e) => {
            for line in e.lines() {
                error_log::stderr_line(ErrorLevel::Emerg, &line);
            }
            return 1;
        }
    };
    if let Err(e) = configure_error_log(
        &loaded.model.main.error_log,
        options.error_log.as_deref(),
        &options.load.prefix,
    ) {
        error_log::stderr_line(
            ErrorLevel::Alert,
            &format!("could not open error log file: {e}"),
        );
    }
    let generation = match Generation::build(loaded.model, None) {
        Ok(g) => g,
        Err(e) => {
            error_log::stderr_line(ErrorLevel::Emerg, &e);
            return 1;
        }
    };
    if let Err(e) = access_log::configure(&generation.model.access_log_files) {
        error_log::stderr_line(ErrorLevel::Emerg, &e);
        return 1;
    }
    let mut bound = HashMap::new();
    for (addr, backlog, ipv6only, kind) in bind_addresses(&generation) {
        match listeners::bind_listener(&addr, &backlog, ipv6only) {
            Ok(l) => {
                bound.insert(addr, (l, kind));
            }
            Err(e) => {
                error_log::stderr_line(ErrorLevel::Emerg, &e);
                return 1;
            }
        }
    }
    let mut bound_udp = HashMap::new();
    for (addr, opts, ipv6only) in udp_addresses(&generation) {
        match listeners::bind_udp(addr, &opts, ipv6only) {
            Ok(s) => {
                bound_udp.insert(addr, s);
            }
            Err(e) => {
                error_log::stderr_line(ErrorLevel::Emerg, &e);
                return 1;
            }
        }
    }
    let main = generation.model.main.clone();
    if let Some(limit) = main.worker_rlimit_nofile {
        set_nofile(limit);
    }
    if main.daemon {
        if let Err(e) = daemonize() {
            error_log::stderr_line(ErrorLevel::Emerg, &e);
            return 1;
        }
    }
    let workers = main.worker_processes.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    // The main thread runs signals, reloads, name resolution and health
    // checks; connections are served by the worker threads.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error_log::stderr_line(ErrorLevel::Emerg, &format!("cannot start the runtime: {e}"));
            return 1;
        }
    };
    let pid_file = main.pid.clone();
    let code = runtime.block_on(serve(
        options, generation, bound, bound_udp, workers, pid_file,
    ));
    // Buffered access-log lines go out before the pid file says we are gone.
    access_log::flush_all();
    let _ = std::fs::remove_file(&main.pid);
    // Connection tasks may still hold sockets; do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

/// `worker_rlimit_nofile`: the open-file limit, as nginx sets it for its
/// workers (a failure is logged, as nginx logs it, and startup goes on).
fn set_nofile(limit: u64) {
    let wanted = libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: limit as libc::rlim_t,
    };
    // SAFETY: setrlimit reads a valid, initialised struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } != 0 {
        let e = std::io::Error::last_os_error();
        error_log::log(
            ErrorLevel::Alert,
            None,
            &format!(
                "setrlimit(RLIMIT_NOFILE, {limit}) failed ({})",
                error_log::os_error(&e)
            ),
        );
    }
}

fn write_pid(path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(path, format!("{}\n", std::process::id())).map_err(|e| {
        format!(
            "open() \"{}\" failed ({})",
            path.display(),
            error_log::os_error(&e)
        )
    })
}

/// nginx's `daemon on`: fork, let the parent exit, start a new session.
/// Done before any thread exists (the runtime starts after it).
fn daemonize() -> Result<(), String> {
    // SAFETY: called before any thread is spawned; the child only continues
    // single-threaded Rust code, the parent exits immediately.
    unsafe {
        match libc::fork() {
            -1 => return Err("fork() failed".into()),
            0 => {}
            _ => libc::_exit(0),
        }
        if libc::setsid() == -1 {
            return Err("setsid() failed".into());
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            if null > 2 {
                libc::close(null);
            }
        }
    }
    Ok(())
}

/// Every stream-socket address to bind, http's and stream's, with the
/// module serving it.
fn bind_addresses(
    generation: &Generation,
) -> Vec<(
    PeerAddr,
    crate::config::model::SocketOpts,
    bool,
    workers::Kind,
)> {
    let http = generation
        .bind_addresses()
        .into_iter()
        .map(|(a, b, v6)| (a, b, v6, workers::Kind::Http));
    let stream = generation
        .stream
        .bind_addresses(false)
        .into_iter()
        .map(|(a, b, v6)| (a, b, v6, workers::Kind::Stream));
    http.chain(stream).collect()
}

/// The UDP addresses of stream's `listen ... udp` (always IP ones: the
/// configuration refuses `listen unix:... udp` as not supported yet).
fn udp_addresses(
    generation: &Generation,
) -> Vec<(SocketAddr, crate::config::model::SocketOpts, bool)> {
    generation
        .stream
        .bind_addresses(true)
        .into_iter()
        .filter_map(|(a, o, v6)| Some((a.inet()?, o, v6)))
        .collect()
}

struct Server {
    shared: Arc<Shared>,
    epoch: watch::Sender<u64>,
    stopping: watch::Sender<bool>,
    workers: workers::Workers,
    /// The bound sockets, by address (kept open across reloads), with the
    /// module serving each.
    listening: HashMap<PeerAddr, (listeners::Listener, workers::Kind)>,
    /// The bound UDP sockets of stream listeners, by address.
    listening_udp: HashMap<SocketAddr, std::net::UdpSocket>,
    max_connections: usize,
}

impl Server {
    fn listen(
        &mut self,
        addr: PeerAddr,
        listener: listeners::Listener,
        kind: workers::Kind,
    ) -> Result<(), String> {
        self.workers.listen(&addr, &listener, kind)?;
        self.listening.insert(addr, (listener, kind));
        Ok(())
    }

    fn listen_udp(&mut self, addr: SocketAddr, socket: std::net::UdpSocket) -> Result<(), String> {
        self.workers.listen_udp(addr, &socket)?;
        self.listening_udp.insert(addr, socket);
        Ok(())
    }

    fn unlisten(&mut self, addr: &PeerAddr) {
        self.workers.unlisten(addr);
        self.listening.remove(addr);
    }

    /// At exit, the files of the Unix sockets listened on go, as nginx's
    /// ngx_close_listening_sockets deletes them (a reload keeps them).
    fn unlink_unix_sockets(&self) {
        for addr in self.listening.keys() {
            if let PeerAddr::Unix(path) = addr {
                listeners::unlink_unix(path);
            }
        }
    }
}

/// Starts name resolution and health checks of every upstream new in this
/// generation, and returns once each has made its first resolution attempt,
/// so that the generation is complete before it serves a request (nginx
/// resolves at startup and reload too). Names that do not resolve are
/// retried in the background.
async fn start_resolving(generation: &Generation) {
    let attempts: Vec<JoinHandle<()>> = generation
        .upstreams
        .values()
        .chain(generation.stream.upstreams.values())
        .filter_map(|upstream| upstream.activate())
        .collect();
    for attempt in attempts {
        let _ = attempt.await;
    }
}

async fn serve(
    options: RunOptions,
    generation: Generation,
    bound: HashMap<PeerAddr, (listeners::Listener, workers::Kind)>,
    bound_udp: HashMap<SocketAddr, std::net::UdpSocket>,
    workers: usize,
    pid_file: PathBuf,
) -> i32 {
    let (Ok(mut hup), Ok(mut quit), Ok(mut term), Ok(mut int), Ok(mut usr1)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::quit()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined1()),
    ) else {
        error_log::stderr_line(ErrorLevel::Emerg, "cannot install signal handlers");
        return 1;
    };
    // Resolve before the pid file says we are up, as nginx resolves while
    // reading its configuration.
    start_resolving(&generation).await;
    // The pid file says "ready for signals": it is written only now that
    // every listener is bound and every handler installed.
    if let Err(e) = write_pid(&pid_file) {
        error_log::stderr_line(ErrorLevel::Emerg, &e);
        return 1;
    }
    let (epoch_tx, epoch_rx) = watch::channel(0u64);
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker_connections = generation.model.main.worker_connections;
    let shutdown_timeout = generation.model.main.worker_shutdown_timeout;
    let max_connections = worker_connections.saturating_mul(workers).max(1);
    let shared = Arc::new(Shared {
        current: ArcSwap::from_pointee(generation),
        epoch: epoch_rx,
        stopping: stop_rx,
        next_connection: AtomicU64::new(0),
        connections: Arc::new(Semaphore::new(max_connections)),
    });
    let worker_threads = match workers::Workers::start(workers, shared.clone()) {
        Ok(w) => w,
        Err(e) => {
            error_log::stderr_line(ErrorLevel::Emerg, &e);
            return 1;
        }
    };
    let mut server = Server {
        shared: shared.clone(),
        epoch: epoch_tx,
        stopping: stop_tx,
        workers: worker_threads,
        listening: HashMap::new(),
        listening_udp: HashMap::new(),
        max_connections,
    };
    for (addr, (listener, kind)) in bound {
        if let Err(e) = server.listen(addr, listener, kind) {
            error_log::stderr_line(ErrorLevel::Emerg, &e);
            return 1;
        }
    }
    for (addr, socket) in bound_udp {
        if let Err(e) = server.listen_udp(addr, socket) {
            error_log::stderr_line(ErrorLevel::Emerg, &e);
            return 1;
        }
    }
    error_log::notice(&format!(
        "switchyard/{} started, {} worker threads",
        crate::VERSION,
        workers
    ));

    loop {
        tokio::select! {
            _ = hup.recv() => {
                error_log::notice("signal 1 (SIGHUP) received, reconfiguring");
                reload(&options, &mut server).await;
            }
            _ = usr1.recv() => {
                error_log::notice("signal 10 (SIGUSR1) received, reopening logs");
                error_log::reopen();
                access_log::reopen_all();
            }
            _ = quit.recv() => {
                error_log::notice("signal 3 (SIGQUIT) received, shutting down gracefully");
                // A TERM or INT while connections drain stops at once, as
                // nginx's master turns a quit into a terminate.
                let code = tokio::select! {
                    code = graceful_stop(&server, shutdown_timeout) => code,
                    _ = term.recv() => {
                        error_log::notice("signal 15 (SIGTERM) received, exiting");
                        0
                    }
                    _ = int.recv() => {
                        error_log::notice("signal 2 (SIGINT) received, exiting");
                        0
                    }
                };
                server.unlink_unix_sockets();
                return code;
            }
            _ = term.recv() => {
                error_log::notice("signal 15 (SIGTERM) received, exiting");
                server.unlink_unix_sockets();
                return 0;
            }
            _ = int.recv() => {
                error_log::notice("signal 2 (SIGINT) received, exiting");
                server.unlink_unix_sockets();
                return 0;
            }
        }
    }
}

async fn graceful_stop(server: &Server, timeout: Option<Duration>) -> i32 {
    let _ = server.stopping.send(true);
    server.epoch.send_modify(|e| *e += 1);
    // Every open connection holds one permit: all permits back means every
    // connection has finished.
    let permits = server.shared.connections.clone();
    let total = u32::try_from(server.max_connections).unwrap_or(u32::MAX);
    let wait_all = async {
        let _ = permits.acquire_many(total).await;
    };
    match timeout {
        Some(t) => {
            let _ = tokio::time::timeout(t, wait_all).await;
        }
        None => wait_all.await,
    }
    0
}

async fn reload(options: &RunOptions, server: &mut Server) {
    let loaded = match config::load(&options.load) {
        Ok(l) => l,
        Err(e) => {
            for line in e.lines() {
                error_log::log(ErrorLevel::Emerg, None, &line);
            }
            return;
        }
    };
    let old = server.shared.current.load_full();
    let generation = match Generation::build(loaded.model, Some(&old)) {
        Ok(g) => g,
        Err(e) => {
            error_log::log(ErrorLevel::Emerg, None, &e);
            return;
        }
    };
    let wanted = bind_addresses(&generation);
    let mut fresh = Vec::new();
    let mut switched = Vec::new();
    for (addr, backlog, ipv6only, kind) in &wanted {
        match server.listening.get(addr) {
            // The same socket, now for the other module: workers re-listen.
            Some((_, old)) if old != kind => switched.push((addr.clone(), *kind)),
            Some(_) => {}
            None => match listeners::bind_listener(addr, backlog, *ipv6only) {
                Ok(l) => fresh.push((addr.clone(), l, *kind)),
                Err(e) => {
                    error_log::log(ErrorLevel::Emerg, None, &e);
                    return;
                }
            },
        }
    }
    let wanted_udp = udp_addresses(&generation);
    let mut fresh_udp = Vec::new();
    for (addr, opts, ipv6only) in &wanted_udp {
        if !server.listening_udp.contains_key(addr) {
            match listeners::bind_udp(*addr, opts, *ipv6only) {
                Ok(s) => fresh_udp.push((*addr, s)),
                Err(e) => {
                    error_log::log(ErrorLevel::Emerg, None, &e);
                    return;
                }
            }
        }
    }
    if let Err(e) = configure_error_log(
        &generation.model.main.error_log,
        options.error_log.as_deref(),
        &options.load.prefix,
    ) {
        error_log::log(
            ErrorLevel::Alert,
            None,
            &format!("could not open error log file: {e}"),
        );
    }
    describe_changes(&old, &generation);
    start_resolving(&generation).await;
    if let Err(e) = access_log::configure(&generation.model.access_log_files) {
        error_log::log(ErrorLevel::Emerg, None, &e);
        return;
    }
    let replaced = server.shared.current.swap(Arc::new(generation));
    // nginx's old workers close what they still hold (upgraded connections)
    // `worker_shutdown_timeout` after a reload; without it they wait.
    if let Some(timeout) = replaced.model.main.worker_shutdown_timeout {
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            replaced.retire();
        });
    }
    for (addr, listener, kind) in fresh {
        if let Err(e) = server.listen(addr, listener, kind) {
            error_log::log(ErrorLevel::Emerg, None, &e);
        }
    }
    for (addr, kind) in switched {
        if let Some((listener, _)) = server.listening.remove(&addr) {
            if let Err(e) = server.listen(addr, listener, kind) {
                error_log::log(ErrorLevel::Emerg, None, &e);
            }
        }
    }
    let gone: Vec<PeerAddr> = server
        .listening
        .keys()
        .filter(|a| !wanted.iter().any(|(w, _, _, _)| w == *a))
        .cloned()
        .collect();
    for addr in gone {
        server.unlisten(&addr);
        error_log::notice(&format!("stopped listening on {addr}"));
        // nginx deletes the file of a Unix socket a reload dropped.
        if let PeerAddr::Unix(path) = &addr {
            error_log::log(
                ErrorLevel::Warn,
                None,
                &format!("deleting socket {}", path.display()),
            );
            listeners::unlink_unix(path);
        }
    }
    for (addr, socket) in fresh_udp {
        if let Err(e) = server.listen_udp(addr, socket) {
            error_log::log(ErrorLevel::Emerg, None, &e);
        }
    }
    let gone_udp: Vec<SocketAddr> = server
        .listening_udp
        .keys()
        .filter(|a| !wanted_udp.iter().any(|(w, _, _)| w == *a))
        .copied()
        .collect();
    for addr in gone_udp {
        server.workers.unlisten_udp(addr);
        server.listening_udp.remove(&addr);
        error_log::notice(&format!("stopped listening on {addr} (udp)"));
    }
    server.epoch.send_modify(|e| *e += 1);
}

fn describe_changes(old: &Generation, new: &Generation) {
    let names = |g: &Generation| -> Vec<String> { g.upstreams.keys().cloned().collect() };
    let (before, after) = (names(old), names(new));
    for n in after.iter().filter(|n| !before.contains(n)) {
        error_log::notice(&format!("reload: upstream \"{n}\" added"));
    }
    for n in before.iter().filter(|n| !after.contains(n)) {
        error_log::notice(&format!("reload: upstream \"{n}\" removed"));
    }
    for (name, up) in &new.upstreams {
        if let Some(prev) = old.upstreams.get(name) {
            if !Arc::ptr_eq(prev, up) {
                let list = |u: &crate::config::model::UpstreamConfig| -> Vec<String> {
                    u.servers.iter().map(|s| s.display_name()).collect()
                };
                let (a, b) = (list(&prev.config), list(&up.config));
                for s in b.iter().filter(|s| !a.contains(s)) {
                    error_log::notice(&format!("reload: upstream \"{name}\": server {s} added"));
                }
                for s in a.iter().filter(|s| !b.contains(s)) {
                    error_log::notice(&format!("reload: upstream \"{name}\": server {s} removed"));
                }
            }
        }
    }
}

/// The pid in a pid file, for `-s`.
pub fn read_pid(path: &PathBuf) -> Result<i32, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "open() \"{}\" failed ({})",
            path.display(),
            error_log::os_error(&e)
        )
    })?;
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            format!(
                "invalid PID number \"{}\" in \"{}\"",
                text.trim(),
                path.display()
            )
        })
}
