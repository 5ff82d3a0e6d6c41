//! The lab's own traffic: the seed's request, sent N times across the
//! config's proxied locations, and a report of which backend answered each.

use std::collections::BTreeMap;
use std::time::Duration;

use super::plan::Target;

use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// Who answered, per path.
pub type Counts = BTreeMap<String, BTreeMap<String, u64>>;

/// Sends `n` copies of the seed's POST, taking `targets` in turn, one
/// connection each (as the seed's HTTPie did); counts answers by path and
/// `X-Served-By` (or by status when a request failed).
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
            .entry(target.path.clone())
            .or_default()
            .entry(key)
            .or_insert(0) += 1;
    }
    counts
}

async fn one(target: &Target) -> anyhow::Result<String> {
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(target.addr),
    )
    .await??;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = http::Request::post(target.path.as_str())
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
        println!("  by path:");
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
