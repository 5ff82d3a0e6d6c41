//! Active health checks (nginx Plus's `health_check` and `match`, in the
//! open build): every `interval` each peer is probed with an HTTP request;
//! `fails` consecutive failures take it out of rotation, `passes`
//! consecutive successes bring it back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use super::Upstream;
use crate::config::model::{HeaderCondition, HealthCheck, HealthMatch, Probe};
use crate::observe::error_log;
use crate::upstream::PeerAddr;

/// Runs the checks of `upstream` until it is dropped (a reload that changes
/// the upstream replaces it, and this task ends with it).
pub async fn run(upstream: Weak<Upstream>, check: HealthCheck) {
    let mut counters: HashMap<PeerAddr, (u32, u32, bool)> = HashMap::new();
    let mut ticker = tokio::time::interval(check.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(up) = upstream.upgrade() else { return };
        let peers = up.peer_addresses();
        drop(up);
        let probes = peers.iter().map(|(_, addr)| probe(addr.clone(), &check));
        let results = futures_join_all(probes).await;
        let Some(up) = upstream.upgrade() else { return };
        for ((id, addr), outcome) in peers.into_iter().zip(results) {
            let entry = counters.entry(addr.clone()).or_insert((0, 0, true));
            let (fails, passes, healthy) = entry;
            match outcome {
                Ok(()) => {
                    *fails = 0;
                    *passes += 1;
                    if !*healthy && *passes >= check.passes {
                        *healthy = true;
                        up.set_health(id, true);
                        error_log::log(
                            crate::observe::ErrorLevel::Notice,
                            None,
                            &format!(
                                "peer {addr} of upstream \"{}\" is healthy again",
                                up.config.name
                            ),
                        );
                    }
                }
                Err(why) => {
                    *passes = 0;
                    *fails += 1;
                    if *healthy && *fails >= check.fails {
                        *healthy = false;
                        up.set_health(id, false);
                        error_log::log(
                            crate::observe::ErrorLevel::Warn,
                            None,
                            &format!(
                                "peer {addr} of upstream \"{}\" is unhealthy: {why} (health check: {})",
                                up.config.name,
                                describe(&check)
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// What a probe does, for the error log: `GET /readyz over TLS`, `connect`.
fn describe(check: &HealthCheck) -> String {
    let what = match check.probe {
        Probe::Http => format!("GET {}", check.uri),
        Probe::Connect => "connect".to_string(),
    };
    let port = check
        .port
        .map(|p| format!(" on port {p}"))
        .unwrap_or_default();
    let tls = if check.tls.is_some() { " over TLS" } else { "" };
    format!("{what}{port}{tls}")
}

/// Runs the probes concurrently (no extra crate: each is a spawned task).
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<Result<(), String>>
where
    F: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(
            h.await
                .unwrap_or_else(|e| Err(format!("probe task failed: {e}"))),
        );
    }
    out
}

fn probe(
    addr: PeerAddr,
    check: &HealthCheck,
) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
    let check = check.clone();
    async move {
        // `port=` moves an IP peer's probe; a socket has no port.
        let target = match (&addr, check.port) {
            (PeerAddr::Inet(a), Some(port)) => PeerAddr::Inet(SocketAddr::new(a.ip(), port)),
            _ => addr,
        };
        match tokio::time::timeout(check.timeout, probe_once(target, &check)).await {
            Ok(result) => result,
            Err(_) => Err("timed out".to_string()),
        }
    }
}

async fn probe_once(target: PeerAddr, check: &HealthCheck) -> Result<(), String> {
    let connect_failed =
        |e: std::io::Error| format!("connect() failed ({})", error_log::os_error(&e));
    let target = match target {
        PeerAddr::Inet(a) => a,
        PeerAddr::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(&path)
                .await
                .map_err(connect_failed)?;
            return match (&check.tls, check.probe) {
                (Some(_), _) => Err("SSL to a unix socket is not supported yet".to_string()),
                (None, Probe::Connect) => Ok(()),
                (None, Probe::Http) => http_probe(stream, "localhost", check).await,
            };
        }
    };
    let stream = tokio::net::TcpStream::connect(target)
        .await
        .map_err(connect_failed)?;
    let host = target.to_string();
    match (&check.tls, check.probe) {
        (None, Probe::Connect) => Ok(()),
        (None, Probe::Http) => http_probe(stream, &host, check).await,
        (Some(tls), probe) => {
            let name = match &tls.name {
                Some(n) => crate::transport::tls::server_name(n),
                None => Some(rustls_pki_types::ServerName::IpAddress(target.ip().into())),
            }
            .ok_or_else(|| "invalid ssl_name".to_string())?;
            let stream = tls
                .connector
                .connect(name, stream)
                .await
                .map_err(|e| format!("SSL handshake failed ({e})"))?;
            match probe {
                Probe::Connect => Ok(()),
                Probe::Http => http_probe(stream, &host, check).await,
            }
        }
    }
}

/// The probe's request and the verdict on its response, over any stream.
async fn http_probe<S>(stream: S, host: &str, check: &HealthCheck) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<bytes::Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let request = http::Request::get(check.uri.as_str())
        .header(http::header::HOST, host)
        .header(
            http::header::USER_AGENT,
            concat!("switchyard-health-check/", env!("CARGO_PKG_VERSION")),
        )
        .header(http::header::CONNECTION, "close")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    match &check.matcher {
        None if (200..400).contains(&status) => Ok(()),
        None => Err(format!("status {status}")),
        Some(m) => evaluate(m, status, &headers, &body),
    }
}

/// Whether a response satisfies a `match` block.
pub fn evaluate(
    m: &HealthMatch,
    status: u16,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    if !m.status.is_empty() {
        let inside = m
            .status
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&status));
        if inside == m.status_negated {
            return Err(format!("status {status} does not match"));
        }
    }
    for cond in &m.headers {
        let value = headers
            .get(cond.name.as_str())
            .and_then(|v| v.to_str().ok());
        let ok = match (&cond.condition, value) {
            (HeaderCondition::Present, v) => v.is_some(),
            (HeaderCondition::Absent, v) => v.is_none(),
            (HeaderCondition::Equals(want), Some(v)) => v == want,
            (HeaderCondition::NotEquals(want), Some(v)) => v != want,
            (HeaderCondition::Matches(re), Some(v)) => re.is_match(v),
            (HeaderCondition::NotMatches(re), Some(v)) => !re.is_match(v),
            (_, None) => false,
        };
        if !ok {
            return Err(format!("header {} does not match", cond.name));
        }
    }
    if let Some((re, negated)) = &m.body {
        let text = String::from_utf8_lossy(body);
        if re.is_match(&text) == *negated {
            return Err("body does not match".to_string());
        }
    }
    Ok(())
}

/// Starts the checker of `upstream` if its config has one.
pub fn spawn(upstream: &Arc<Upstream>) {
    if let Some(check) = upstream.config.health_check.clone() {
        tokio::spawn(run(Arc::downgrade(upstream), check));
    }
}

/// The default probe timeout when `timeout=` is not given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
