//! The lab's own traffic: the seed's request, sent N times, and a report of
//! which backend answered each one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// Sends `n` copies of the seed's POST to `front`, one connection each (as
/// the seed's HTTPie did); counts answers by `X-Served-By` (or by status
/// when a request failed).
pub async fn send(front: SocketAddr, n: u64) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let key = match one(front).await {
            Ok(key) => key,
            Err(e) => format!("(failed: {e})"),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

async fn one(front: SocketAddr) -> anyhow::Result<String> {
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(front),
    )
    .await??;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = http::Request::post("/")
        .header("host", format!("localhost:{}", front.port()))
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

/// Prints the counts as a bar chart.
pub fn report(counts: &BTreeMap<String, u64>, total: u64) {
    println!();
    println!("  {total} requests through the balancer:");
    let widest = counts.keys().map(|k| k.len()).max().unwrap_or(0);
    for (name, count) in counts {
        let bar = "#".repeat(((count * 40) / total.max(1)) as usize);
        println!("    {name:<widest$}  {count:>6}  {bar}");
    }
    println!();
}
