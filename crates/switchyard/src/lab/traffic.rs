//! The lab's own traffic: the seed's request, sent N times across the
//! config's proxied locations, and a report of which backend answered each.

use std::collections::BTreeMap;
use std::time::Duration;

use super::plan::{StandKind, Target};

use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// Who answered, per path.
pub type Counts = BTreeMap<String, BTreeMap<String, u64>>;

/// Sends `n` copies of the seed's POST (HTTPS to a TLS backend, a datagram
/// to a UDP one), taking `targets` in turn, one connection each (as the
/// seed's HTTPie did); counts answers by target and `X-Served-By` (or by
/// status when a request failed).
pub async fn send(targets: &[Target], n: u64) -> Counts {
    let mut counts = Counts::new();
    if targets.is_empty() {
        return counts;
    }
    for i in 0..n {
        let target = &targets[(i % targets.len() as u64) as usize];
        let key = match one(target).await {
            Ok(key) => key,
            Err(e) => format!("(failed: {e})"),
        };
        *counts
            .entry(target.label())
            .or_default()
            .entry(key)
            .or_insert(0) += 1;
    }
    counts
}

async fn one(target: &Target) -> anyhow::Result<String> {
    if target.kind == StandKind::Udp {
        return datagram(target).await;
    }
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(target.addr),
    )
    .await??;
    match target.kind {
        StandKind::Https => {
            // The lab's backends make their certificates up: any is taken.
            let config = crate::transport::tls::client_config(None)?;
            let name = rustls_pki_types::ServerName::IpAddress(target.addr.ip().into());
            let tls = tokio::time::timeout(
                Duration::from_secs(5),
                tokio_rustls::TlsConnector::from(config).connect(name, stream),
            )
            .await??;
            post(tls, target).await
        }
        _ => post(stream, target).await,
    }
}

/// The seed's POST over `io`; who answered.
async fn post<S>(io: S, target: &Target) -> anyhow::Result<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(conn);
    let path = if target.path.is_empty() {
        "/"
    } else {
        target.path.as_str()
    };
    let request = http::Request::post(path)
        .header("host", format!("{}:{}", target.host, target.addr.port()))
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("switchyard-lab/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(bytes::Bytes::from_static(b"{\"foo\": \"bar\"}")))?;
    let response =
        tokio::time::timeout(Duration::from_secs(30), sender.send_request(request)).await??;
    let status = response.status();
    let served_by = response
        .headers()
        .get("x-served-by")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let _ = response.into_body().collect().await?;
    Ok(match served_by {
        Some(name) if status.is_success() => name,
        Some(name) => format!("{name} ({status})"),
        None => format!("({status})"),
    })
}

/// One datagram through a UDP listener; the tagged answer names the backend.
async fn datagram(target: &Target) -> anyhow::Result<String> {
    let local = if target.addr.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(target.addr).await?;
    socket.send(b"hello from the lab").await?;
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf)).await??;
    let answer = String::from_utf8_lossy(&buf[..n]);
    Ok(answer
        .split_whitespace()
        .next()
        .unwrap_or("(empty answer)")
        .to_string())
}

/// Prints the counts as a bar chart: by backend, then by path when the
/// traffic went to more than one.
pub fn report(counts: &Counts, total: u64) {
    let mut by_backend: BTreeMap<&str, u64> = BTreeMap::new();
    for per_path in counts.values() {
        for (name, n) in per_path {
            *by_backend.entry(name).or_insert(0) += n;
        }
    }
    println!();
    println!("  {total} requests through the balancer:");
    bars(by_backend.iter().map(|(k, v)| (k.to_string(), *v)), total);
    if counts.len() > 1 {
        println!("  by target:");
        bars(
            counts.iter().flat_map(|(path, per)| {
                per.iter()
                    .map(move |(name, n)| (format!("{path} -> {name}"), *n))
            }),
            total,
        );
    }
    println!();
}

fn bars(rows: impl Iterator<Item = (String, u64)>, total: u64) {
    let rows: Vec<(String, u64)> = rows.collect();
    let widest = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (name, count) in rows {
        let bar = "#".repeat(((count * 40) / total.max(1)) as usize);
        println!("    {name:<widest$}  {count:>6}  {bar}");
    }
}
