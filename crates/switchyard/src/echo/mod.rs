//! `switchyard echo`: the echo-golem backend, and a test backend for load balancers.
//!
//! By default it behaves like the Flask "echo-golem" containers of the seed
//! experiment (POST body echoed back plus `"\n"`, Werkzeug access log on
//! stdout). On top of that every request can ask for a status, a delay or a
//! generated body of a given size, `GET` describes the request as JSON, and
//! `/healthz` can be flipped at run time to exercise health checks.
//!
//! The lab uses [`run`] (or [`serve`] with its own listener) in-process or
//! via `switchyard echo` as a child process.

mod args;
mod body;
mod handler;
mod log;
mod params;
mod raw;
mod server;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http::{HeaderValue, StatusCode};

pub use args::{hostname, resolve_listen, EchoArgs, Mode};
pub use body::EchoBody;
pub use params::{parse_delay, parse_size, Overrides, ParamError};
pub use server::serve;

/// Shared, read-mostly state of one echo server.
#[derive(Debug)]
pub struct EchoConfig {
    /// Instance name, shown in `X-Served-By`, JSON descriptions and log lines.
    pub name: String,
    /// `name` pre-validated as a header value, so requests cannot fail on it.
    served_by: HeaderValue,
    /// Longest delay a request may ask for; longer ones are clamped.
    pub max_delay: Duration,
    /// Largest generated body a request may ask for; larger ones are clamped.
    pub max_size: u64,
    /// Largest request body buffered for a JSON description (`GET` etc.).
    pub max_json_body: usize,
    /// How long in-flight requests may run after shutdown is requested.
    pub shutdown_grace: Duration,
    /// Whether to write the access log to stdout; the lab turns it off when
    /// it runs several servers in its own process.
    pub access_log: bool,
    /// Current `/healthz` status code, changed by `POST /healthz`.
    health: AtomicU16,
    /// `--tls`: HTTPS instead of HTTP.
    pub tls: Option<TlsAcceptor>,
}

/// The TLS side of `--tls` (rustls's acceptor has no `Debug`).
#[derive(Clone)]
pub struct TlsAcceptor(pub tokio_rustls::TlsAcceptor);

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsAcceptor")
    }
}

impl EchoConfig {
    /// A configuration with the given instance name and default limits.
    pub fn new(name: impl Into<String>) -> anyhow::Result<Self> {
        let name = name.into();
        let served_by = HeaderValue::from_str(&name)
            .with_context(|| format!("instance name {name:?} is not a valid header value"))?;
        let defaults = EchoArgs::default();
        Ok(EchoConfig {
            name,
            served_by,
            max_delay: defaults.max_delay,
            max_size: defaults.max_size,
            max_json_body: 1 << 20,
            shutdown_grace: Duration::from_secs(10),
            access_log: true,
            health: AtomicU16::new(200),
            tls: None,
        })
    }

    /// The configuration described by command-line arguments; the name
    /// defaults to the host name.
    pub fn from_args(args: &EchoArgs) -> anyhow::Result<Self> {
        let name = args.name.clone().unwrap_or_else(hostname);
        let mut config = EchoConfig::new(name)?;
        config.max_delay = args.max_delay;
        config.max_size = args.max_size;
        Ok(config)
    }

    /// The status `GET /healthz` currently answers.
    pub fn health(&self) -> StatusCode {
        StatusCode::from_u16(self.health.load(Ordering::Relaxed)).unwrap_or(StatusCode::OK)
    }

    /// Changes the status `GET /healthz` answers (also reachable in-process,
    /// so the lab can fail a backend without an HTTP round trip).
    pub fn set_health(&self, status: StatusCode) {
        self.health.store(status.as_u16(), Ordering::Relaxed);
    }
}

/// The certificate of `--tls`: `--tls-cert`/`--tls-key`, or one made now
/// for localhost, the instance name and the listening address (written to
/// `--tls-cert-out` for clients that verify it).
fn tls_acceptor(
    args: &EchoArgs,
    name: &str,
    local: std::net::SocketAddr,
) -> anyhow::Result<TlsAcceptor> {
    let config = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => crate::transport::tls::server_config(cert, key)?,
        (None, None) => {
            let mut names = vec![
                "localhost".to_string(),
                name.to_string(),
                local.ip().to_string(),
            ];
            names.dedup();
            let (config, pem) = crate::transport::tls::self_signed_server_config(&names)?;
            if let Some(out) = &args.tls_cert_out {
                std::fs::write(out, pem).with_context(|| format!("writing {}", out.display()))?;
            }
            config
        }
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    };
    Ok(TlsAcceptor(tokio_rustls::TlsAcceptor::from(config)))
}

/// Binds the configured address, prints
/// `echo: listening on ADDR as NAME` to stderr once ready (with `(tcp)` or
/// `(udp)` after it in those modes), and serves until SIGTERM or SIGINT;
/// in-flight requests get [`EchoConfig::shutdown_grace`] to finish.
pub async fn run(args: EchoArgs) -> anyhow::Result<()> {
    if args.tls && args.mode != Mode::Http {
        anyhow::bail!("--tls serves HTTPS: it goes with --mode http");
    }
    let mut config = EchoConfig::from_args(&args)?;
    let addr = resolve_listen(&args.listen).await?;
    let raw = Arc::new(raw::RawEcho {
        name: config.name.clone(),
        tag: args.tag,
    });
    match args.mode {
        Mode::Http => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            let local = listener.local_addr().context("reading bound address")?;
            let https = if args.tls {
                config.tls = Some(tls_acceptor(&args, &config.name, local)?);
                " (https)"
            } else {
                ""
            };
            // Install signal handlers before announcing readiness, so a
            // supervisor that signals us right after the ready line is not
            // killed by default signal disposition.
            let shutdown = server::shutdown_signal()?;
            eprintln!("echo: listening on {local} as {}{https}", config.name);
            serve(listener, Arc::new(config), shutdown).await?;
        }
        Mode::Tcp => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            let local = listener.local_addr().context("reading bound address")?;
            let shutdown = server::shutdown_signal()?;
            eprintln!("echo: listening on {local} as {} (tcp)", config.name);
            raw::serve_tcp(listener, raw, shutdown).await?;
        }
        Mode::Udp => {
            let socket = tokio::net::UdpSocket::bind(addr)
                .await
                .with_context(|| format!("binding {addr} (udp)"))?;
            let local = socket.local_addr().context("reading bound address")?;
            let shutdown = server::shutdown_signal()?;
            eprintln!("echo: listening on {local} as {} (udp)", config.name);
            raw::serve_udp(socket, raw, shutdown).await?;
        }
    }
    eprintln!("echo: shut down");
    Ok(())
}
