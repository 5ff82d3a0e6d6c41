//! Counters behind `stub_status`, the Prometheus `metrics` handler and the
//! status page. Plain atomics, written on the request path without locks
//! except the first time a peer is seen.
//!
//! The exposition format is written by hand: it is a few lines of text, and
//! writing it ourselves keeps it in the classic Prometheus format that
//! `promtool check metrics` reads (prometheus-client writes OpenMetrics).

use crate::upstream::addr::PeerAddr;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds (seconds) of the response-time histogram buckets.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Counters of one upstream peer.
#[derive(Debug, Default)]
pub struct PeerMetrics {
    /// Responses by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub responses: [AtomicU64; 5],
    /// Attempts that failed (connect errors, timeouts, invalid responses).
    pub failures: AtomicU64,
    /// Histogram bucket counts (cumulative at render time).
    buckets: [AtomicU64; BUCKETS.len()],
    /// Sum of response times in microseconds.
    sum_micros: AtomicU64,
    /// Number of observed response times.
    count: AtomicU64,
}

impl PeerMetrics {
    /// Records a response header received after `elapsed`.
    pub fn response(&self, status: u16, elapsed: Duration) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a failed attempt.
    pub fn failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Responses by class, for the status page.
    pub fn response_counts(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.responses[i].load(Ordering::Relaxed))
    }
}

/// Counters of one listening address.
#[derive(Debug, Default)]
pub struct ListenerMetrics {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Requests received.
    pub requests: AtomicU64,
}

/// Process-wide counters (nginx's stub_status numbers and more).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections handled (accepted and not refused for worker_connections).
    pub handled: AtomicU64,
    /// Requests received.
    pub requests: AtomicU64,
    /// Connections open now.
    pub active: AtomicI64,
    /// Requests being served now (nginx's Writing): from the end of the
    /// head until the response is written.
    pub in_flight: AtomicI64,
    /// Connections in the middle of a request head (nginx's Reading): bytes
    /// of it have arrived, not yet all of it. A head that arrives whole is
    /// parsed before anything could see it, so it is never counted.
    pub reading: AtomicI64,
    peers: Mutex<BTreeMap<(String, String), Arc<PeerMetrics>>>,
    listeners: Mutex<BTreeMap<PeerAddr, Arc<ListenerMetrics>>>,
}

/// How many client connections are in each of nginx's states (stub_status
/// and the `$connections_*` variables): waiting is what is neither reading
/// nor writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionStates {
    /// Open connections.
    pub active: i64,
    /// Reading a request head.
    pub reading: i64,
    /// Serving a request.
    pub writing: i64,
    /// Idle between requests.
    pub waiting: i64,
}

/// A connection counted in one state (Reading or Writing) while this lives:
/// the count goes down on every way out, a `?` or a dropped task included.
#[must_use = "the state is counted only while this lives"]
pub struct InState(&'static AtomicI64);

impl InState {
    /// Counts one more in `state` (a counter of [`global`]).
    pub fn enter(state: &'static AtomicI64) -> InState {
        state.fetch_add(1, Ordering::Relaxed);
        InState(state)
    }
}

impl Drop for InState {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

impl Metrics {
    /// The counters of `peer` in `upstream` (created on first use).
    pub fn peer(&self, upstream: &str, peer: &str) -> Arc<PeerMetrics> {
        let mut peers = match self.peers.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        peers
            .entry((upstream.to_string(), peer.to_string()))
            .or_default()
            .clone()
    }

    /// The counters of a listening address (created on first use).
    pub fn listener(&self, addr: &PeerAddr) -> Arc<ListenerMetrics> {
        let mut listeners = match self.listeners.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(l) = listeners.get(addr) {
            return l.clone();
        }
        listeners.entry(addr.clone()).or_default().clone()
    }

    /// The connection states stub_status reports, read once.
    pub fn states(&self) -> ConnectionStates {
        let active = self.active.load(Ordering::Relaxed).max(0);
        let reading = self.reading.load(Ordering::Relaxed).clamp(0, active);
        let writing = self
            .in_flight
            .load(Ordering::Relaxed)
            .clamp(0, active - reading);
        ConnectionStates {
            active,
            reading,
            writing,
            waiting: active - reading - writing,
        }
    }

    /// nginx's `stub_status` text.
    pub fn stub_status(&self) -> String {
        let s = self.states();
        format!(
            "Active connections: {} \nserver accepts handled requests\n {} {} {} \nReading: {} Writing: {} Waiting: {} \n",
            s.active,
            self.accepted.load(Ordering::Relaxed),
            self.handled.load(Ordering::Relaxed),
            self.requests.load(Ordering::Relaxed),
            s.reading,
            s.writing,
            s.waiting,
        )
    }

    /// A snapshot of every peer's counters.
    pub fn peers(&self) -> Vec<((String, String), Arc<PeerMetrics>)> {
        match self.peers.lock() {
            Ok(p) => p.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// A snapshot of every listener's counters.
    pub fn listeners(&self) -> Vec<(PeerAddr, Arc<ListenerMetrics>)> {
        match self.listeners.lock() {
            Ok(l) => l.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// The live state of one peer, read from its balancer at scrape time.
#[derive(Debug, Clone)]
pub struct PeerState {
    /// The upstream's name.
    pub upstream: String,
    /// The peer's address.
    pub peer: String,
    /// Whether it is a backup.
    pub backup: bool,
    /// Picked so far.
    pub requests: u64,
    /// Connections in use.
    pub active: u32,
    /// Active health checks say healthy.
    pub healthy: bool,
    /// Skipped because of max_fails / fail_timeout.
    pub failed: bool,
    /// Marked `down`.
    pub down: bool,
    /// Not an address yet: a server whose name is waiting to resolve (then
    /// `peer` is the server as written).
    pub resolving: Option<Resolving>,
}

/// Why a server has no address yet, and when it is looked up again.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolving {
    /// The last lookup's error.
    pub error: String,
    /// Seconds until the next lookup (0 when it is due).
    pub next_try_in: f64,
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the Prometheus text exposition.
pub fn prometheus(metrics: &Metrics, peers: &[PeerState]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(4096);
    let counter = |out: &mut String, name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    counter(
        &mut out,
        "switchyard_connections_accepted_total",
        "Client connections accepted.",
        metrics.accepted.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "switchyard_connections_handled_total",
        "Client connections handled.",
        metrics.handled.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "switchyard_http_requests_total",
        "Client requests received.",
        metrics.requests.load(Ordering::Relaxed),
    );
    let _ = writeln!(
        out,
        "# HELP switchyard_connections_active Client connections open now.\n# TYPE switchyard_connections_active gauge\nswitchyard_connections_active {}",
        metrics.active.load(Ordering::Relaxed).max(0)
    );
    let listeners = metrics.listeners();
    let _ = writeln!(out, "# HELP switchyard_listener_connections_total Connections accepted per listening address.\n# TYPE switchyard_listener_connections_total counter");
    for (addr, l) in &listeners {
        let _ = writeln!(
            out,
            "switchyard_listener_connections_total{{listen=\"{addr}\"}} {}",
            l.connections.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(out, "# HELP switchyard_listener_requests_total Requests received per listening address.\n# TYPE switchyard_listener_requests_total counter");
    for (addr, l) in &listeners {
        let _ = writeln!(
            out,
            "switchyard_listener_requests_total{{listen=\"{addr}\"}} {}",
            l.requests.load(Ordering::Relaxed)
        );
    }
    let labels = |p: &PeerState| {
        format!(
            "upstream=\"{}\",peer=\"{}\"",
            escape_label(&p.upstream),
            escape_label(&p.peer)
        )
    };
    let gauge_block =
        |out: &mut String, name: &str, help: &str, kind: &str, f: &dyn Fn(&PeerState) -> u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for p in peers {
                let _ = writeln!(out, "{name}{{{}}} {}", labels(p), f(p));
            }
        };
    gauge_block(
        &mut out,
        "switchyard_upstream_peer_requests_total",
        "Requests sent to the peer.",
        "counter",
        &|p| p.requests,
    );
    gauge_block(
        &mut out,
        "switchyard_upstream_peer_active_connections",
        "Connections to the peer in use now.",
        "gauge",
        &|p| u64::from(p.active),
    );
    gauge_block(
        &mut out,
        "switchyard_upstream_peer_up",
        "1 if the peer takes requests (not down, failed, unhealthy or resolving).",
        "gauge",
        &|p| u64::from(p.healthy && !p.failed && !p.down && p.resolving.is_none()),
    );
    gauge_block(
        &mut out,
        "switchyard_upstream_peer_resolving",
        "1 for a server whose name has not resolved yet (peer is the server as written).",
        "gauge",
        &|p| u64::from(p.resolving.is_some()),
    );
    gauge_block(
        &mut out,
        "switchyard_upstream_peer_healthy",
        "1 if active health checks pass (or none are configured).",
        "gauge",
        &|p| u64::from(p.healthy),
    );
    let recorded = metrics.peers();
    let find = |p: &PeerState| {
        recorded
            .iter()
            .find(|((u, a), _)| *u == p.upstream && *a == p.peer)
            .map(|(_, m)| m.clone())
    };
    let _ = writeln!(out, "# HELP switchyard_upstream_peer_responses_total Responses from the peer by status class.\n# TYPE switchyard_upstream_peer_responses_total counter");
    for p in peers {
        let counts = find(p).map(|m| m.response_counts()).unwrap_or_default();
        for (i, c) in counts.iter().enumerate() {
            let _ = writeln!(
                out,
                "switchyard_upstream_peer_responses_total{{{},code=\"{}xx\"}} {c}",
                labels(p),
                i + 1
            );
        }
    }
    gauge_block(
        &mut out,
        "switchyard_upstream_peer_failures_total",
        "Failed attempts on the peer.",
        "counter",
        &|p| {
            find(p)
                .map(|m| m.failures.load(Ordering::Relaxed))
                .unwrap_or(0)
        },
    );
    let _ = writeln!(out, "# HELP switchyard_upstream_peer_response_seconds Time to the response header.\n# TYPE switchyard_upstream_peer_response_seconds histogram");
    for p in peers {
        let m = find(p).unwrap_or_default();
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += m.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "switchyard_upstream_peer_response_seconds_bucket{{{},le=\"{bound}\"}} {cumulative}", labels(p));
        }
        let count = m.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "switchyard_upstream_peer_response_seconds_bucket{{{},le=\"+Inf\"}} {count}",
            labels(p)
        );
        let _ = writeln!(
            out,
            "switchyard_upstream_peer_response_seconds_sum{{{}}} {}",
            labels(p),
            m.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "switchyard_upstream_peer_response_seconds_count{{{}}} {count}",
            labels(p)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stub_status_format() {
        let m = Metrics::default();
        m.accepted.store(3, Ordering::Relaxed);
        m.handled.store(3, Ordering::Relaxed);
        m.requests.store(7, Ordering::Relaxed);
        m.active.store(2, Ordering::Relaxed);
        m.in_flight.store(1, Ordering::Relaxed);
        assert_eq!(
            m.stub_status(),
            "Active connections: 2 \nserver accepts handled requests\n 3 3 7 \nReading: 0 Writing: 1 Waiting: 1 \n"
        );
        m.active.store(4, Ordering::Relaxed);
        m.reading.store(1, Ordering::Relaxed);
        assert_eq!(
            m.states(),
            ConnectionStates {
                active: 4,
                reading: 1,
                writing: 1,
                waiting: 2
            }
        );
        assert!(m
            .stub_status()
            .ends_with("Reading: 1 Writing: 1 Waiting: 2 \n"));
    }

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        let p = m.peer("u", "127.0.0.1:1");
        p.response(200, Duration::from_millis(3));
        p.response(503, Duration::from_millis(300));
        let text = prometheus(
            &m,
            &[PeerState {
                upstream: "u".into(),
                peer: "127.0.0.1:1".into(),
                backup: false,
                requests: 2,
                active: 0,
                healthy: true,
                failed: false,
                down: false,
                resolving: None,
            }],
        );
        assert!(text.contains("switchyard_upstream_peer_response_seconds_bucket{upstream=\"u\",peer=\"127.0.0.1:1\",le=\"0.005\"} 1"));
        assert!(text.contains("switchyard_upstream_peer_response_seconds_bucket{upstream=\"u\",peer=\"127.0.0.1:1\",le=\"0.5\"} 2"));
        assert!(text.contains("switchyard_upstream_peer_responses_total{upstream=\"u\",peer=\"127.0.0.1:1\",code=\"5xx\"} 1"));
        assert!(text
            .contains("switchyard_upstream_peer_resolving{upstream=\"u\",peer=\"127.0.0.1:1\"} 0"));
    }
}
