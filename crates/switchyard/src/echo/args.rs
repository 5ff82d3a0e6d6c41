//! Command-line / environment configuration for `switchyard echo`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};

use super::params::{parse_delay, parse_size};

/// Arguments of `switchyard echo`; every flag can also come from the
/// environment so the lab can configure containers without a command line.
#[derive(clap::Args, Debug, Clone)]
pub struct EchoArgs {
    /// Address to listen on: `host:port`, `[::1]:port` or `:port` (all IPv4 interfaces).
    #[arg(long, env = "ECHO_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: String,

    /// Instance name, sent as `X-Served-By` and appended to log lines
    /// (default: the host name).
    #[arg(long, env = "ECHO_NAME")]
    pub name: Option<String>,

    /// Upper bound for `x-echo-delay` / `?delay=`; longer delays are clamped.
    #[arg(long, env = "ECHO_MAX_DELAY", default_value = "30s", value_parser = parse_delay_arg)]
    pub max_delay: Duration,

    /// Upper bound for `?size=`; larger sizes are clamped.
    #[arg(long, env = "ECHO_MAX_SIZE", default_value = "1GiB", value_parser = parse_size_arg)]
    pub max_size: u64,

    /// What to serve: `http` (echo-golem and more), `tcp` (every byte sent
    /// back) or `udp` (every datagram answered with itself), for `stream {}`.
    #[arg(long, env = "ECHO_MODE", value_enum, default_value_t = Mode::Http)]
    pub mode: Mode,

    /// In `tcp` and `udp` mode, name the instance in every answer: a TCP
    /// connection starts with `NAME\n`, a UDP answer with `NAME `.
    #[arg(long, env = "ECHO_TAG")]
    pub tag: bool,

    /// Serve HTTPS: with `--tls-cert`/`--tls-key`, or a self-signed
    /// certificate made at start (for localhost, the name and the address).
    #[arg(long, env = "ECHO_TLS")]
    pub tls: bool,

    /// PEM certificate (chain) for `--tls`.
    #[arg(long, env = "ECHO_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key for `--tls`.
    #[arg(long, env = "ECHO_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Write the self-signed certificate made for `--tls` here, for a
    /// client that verifies it.
    #[arg(long, env = "ECHO_TLS_CERT_OUT")]
    pub tls_cert_out: Option<std::path::PathBuf>,
}

/// The protocol `switchyard echo` serves.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// HTTP/1.x: echo-golem's behaviour, JSON descriptions, `/healthz`.
    #[default]
    Http,
    /// A TCP echo.
    Tcp,
    /// A UDP echo.
    Udp,
}

impl Default for EchoArgs {
    /// The same defaults as the command line, for in-process use by the lab.
    fn default() -> Self {
        EchoArgs {
            listen: "0.0.0.0:8080".to_string(),
            name: None,
            max_delay: Duration::from_secs(30),
            max_size: 1 << 30,
            mode: Mode::Http,
            tag: false,
            tls: false,
            tls_cert: None,
            tls_key: None,
            tls_cert_out: None,
        }
    }
}

fn parse_delay_arg(s: &str) -> Result<Duration, String> {
    parse_delay(s).map_err(|e| e.to_string())
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

/// Resolves a `--listen` value to a socket address.
///
/// `:port` is accepted because it is the usual shorthand in container
/// environments; host names are resolved and the first address is used.
pub async fn resolve_listen(listen: &str) -> anyhow::Result<SocketAddr> {
    let spec = if listen.starts_with(':') {
        format!("0.0.0.0{listen}")
    } else {
        listen.to_string()
    };
    if let Ok(addr) = spec.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if !spec.contains(':') {
        bail!("invalid listen address {listen:?}: expected host:port, [ip6]:port or :port");
    }
    let mut addrs = tokio::net::lookup_host(spec.as_str())
        .await
        .with_context(|| format!("resolving listen address {listen:?}"))?;
    addrs
        .next()
        .with_context(|| format!("listen address {listen:?} resolved to nothing"))
}

/// The machine's host name, used as the default instance name (the same
/// thing Flask's container showed as its identity).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is a valid writable buffer of the length we pass.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "echo".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    if name.is_empty() {
        "echo".to_string()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listen_forms() {
        let a = resolve_listen(":9000").await.unwrap();
        assert_eq!(a, "0.0.0.0:9000".parse().unwrap());
        let a = resolve_listen("[::1]:81").await.unwrap();
        assert_eq!(a, "[::1]:81".parse().unwrap());
        let a = resolve_listen("127.0.0.1:0").await.unwrap();
        assert_eq!(a, "127.0.0.1:0".parse().unwrap());
        assert!(resolve_listen("nonsense").await.is_err());
    }

    #[test]
    fn hostname_not_empty() {
        assert!(!hostname().is_empty());
    }
}
