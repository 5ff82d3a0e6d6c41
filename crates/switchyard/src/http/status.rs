//! What switchyard serves about itself: `stub_status` (nginx's text),
//! `metrics` (Prometheus) and `status_page` (a live HTML page that polls its
//! own JSON, so a person watches round robin happen on one page).

use http::{HeaderValue, Response};

use super::body::{full, ResponseBody};
use super::generation::Generation;
use crate::observe::metrics::{self, PeerState, Resolving};

/// The live state of every peer of every upstream in `generation`, http's
/// then stream's (`stream:NAME`), and a row for each server whose name has
/// not resolved yet.
pub fn peer_states(generation: &Generation) -> Vec<PeerState> {
    let mut groups: Vec<&std::sync::Arc<crate::upstream::Upstream>> =
        generation.upstreams.values().collect();
    groups.sort_by(|a, b| a.label.cmp(&b.label));
    let mut stream: Vec<_> = generation.stream.upstreams.values().collect();
    stream.sort_by(|a, b| a.label.cmp(&b.label));
    groups.extend(stream);
    let mut out = Vec::new();
    for upstream in groups {
        for (cfg, stats) in upstream.snapshot() {
            out.push(PeerState {
                upstream: upstream.label.clone(),
                peer: cfg.name.clone(),
                backup: cfg.backup,
                requests: stats.requests,
                active: stats.active_conns,
                healthy: stats.healthy,
                failed: stats.failed,
                down: cfg.down,
                resolving: None,
            });
        }
        let now = std::time::Instant::now();
        for waiting in upstream.unresolved() {
            out.push(PeerState {
                upstream: upstream.label.clone(),
                peer: waiting.server,
                backup: false,
                requests: 0,
                active: 0,
                healthy: false,
                failed: false,
                down: false,
                resolving: Some(Resolving {
                    error: waiting.error,
                    next_try_in: waiting
                        .next_try
                        .saturating_duration_since(now)
                        .as_secs_f64(),
                }),
            });
        }
    }
    out
}

fn typed(body: String, content_type: &'static str) -> Response<ResponseBody> {
    let mut r = Response::new(full(body));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}

/// Our own pages change with every look: not to be cached.
fn with_type(body: String, content_type: &'static str) -> Response<ResponseBody> {
    let mut r = typed(body, content_type);
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    r
}

/// `stub_status`: nginx's text with nginx's headers (no Cache-Control).
pub fn stub_status() -> Response<ResponseBody> {
    typed(metrics::global().stub_status(), "text/plain")
}

/// `metrics`.
pub fn prometheus(generation: &Generation) -> Response<ResponseBody> {
    with_type(
        metrics::prometheus(metrics::global(), &peer_states(generation)),
        "text/plain; version=0.0.4",
    )
}

/// `status_page`: the page, or its JSON when the path ends in `.json`.
pub fn status_page(generation: &Generation, path: &str) -> Response<ResponseBody> {
    if path.ends_with(".json") {
        return with_type(status_json(generation), "application/json");
    }
    let json_url = format!("{}.json", path.trim_end_matches('/'));
    with_type(
        PAGE.replace("__JSON_URL__", &json_url),
        "text/html; charset=utf-8",
    )
}

fn status_json(generation: &Generation) -> String {
    let m = metrics::global();
    let recorded = m.peers();
    let mut upstreams: Vec<serde_json::Value> = Vec::new();
    let states = peer_states(generation);
    let mut names: Vec<&String> = states.iter().map(|p| &p.upstream).collect();
    names.dedup();
    for name in names {
        let peers: Vec<serde_json::Value> = states
            .iter()
            .filter(|p| &p.upstream == name)
            .map(|p| {
                let counts = recorded
                    .iter()
                    .find(|((u, a), _)| *u == p.upstream && *a == p.peer)
                    .map(|(_, pm)| (pm.response_counts(), pm.failures.load(std::sync::atomic::Ordering::Relaxed)))
                    .unwrap_or_default();
                let state = if p.resolving.is_some() {
                    "resolving"
                } else if p.down {
                    "down"
                } else if !p.healthy {
                    "unhealthy"
                } else if p.failed {
                    "failed"
                } else {
                    "up"
                };
                serde_json::json!({
                    "peer": p.peer,
                    "backup": p.backup,
                    "state": state,
                    "requests": p.requests,
                    "active": p.active,
                    "responses": {"1xx": counts.0[0], "2xx": counts.0[1], "3xx": counts.0[2], "4xx": counts.0[3], "5xx": counts.0[4]},
                    "failures": counts.1,
                    "error": p.resolving.as_ref().map(|r| r.error.clone()),
                    "next_try_in": p.resolving.as_ref().map(|r| (r.next_try_in * 10.0).round() / 10.0),
                })
            })
            .collect();
        upstreams.push(serde_json::json!({"name": name, "peers": peers}));
    }
    use std::sync::atomic::Ordering::Relaxed;
    serde_json::json!({
        "version": crate::VERSION,
        "connections": {
            "active": m.active.load(Relaxed).max(0),
            "accepted": m.accepted.load(Relaxed),
            "handled": m.handled.load(Relaxed),
        },
        "requests": m.requests.load(Relaxed),
        "upstreams": upstreams,
    })
    .to_string()
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>switchyard status</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; }
table { border-collapse: collapse; margin-bottom: 2em; min-width: 40em; }
th, td { border-bottom: 1px solid #ddd; padding: .35em .8em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.up { color: #17803d; } .down, .unhealthy, .failed { color: #b42318; font-weight: bold; }
.resolving { color: #b54708; font-weight: bold; }
.bar { display: inline-block; height: .8em; background: #3b82f6; vertical-align: middle; }
#summary { color: #555; }
</style>
</head>
<body>
<h1>switchyard status</h1>
<p id="summary">loading...</p>
<div id="upstreams"></div>
<script>
const url = "__JSON_URL__";
function cell(text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; return td; }
async function refresh() {
  try {
    const data = await (await fetch(url, {cache: "no-store"})).json();
    document.getElementById("summary").textContent =
      `switchyard/${data.version}: ${data.connections.active} active connections, ${data.requests} requests`;
    const root = document.getElementById("upstreams");
    root.replaceChildren();
    for (const up of data.upstreams) {
      const h = document.createElement("h2"); h.textContent = `upstream ${up.name}`; root.appendChild(h);
      const table = document.createElement("table");
      table.innerHTML = "<tr><th>peer</th><th>state</th><th>requests</th><th>active</th><th>2xx</th><th>4xx</th><th>5xx</th><th>failures</th><th></th></tr>";
      const most = Math.max(1, ...up.peers.map(p => p.requests));
      for (const p of up.peers) {
        const tr = document.createElement("tr");
        tr.className = "peer";
        tr.dataset.peer = p.peer;
        tr.appendChild(cell(p.peer + (p.backup ? " (backup)" : "")));
        tr.appendChild(cell(p.state === "resolving" ? `resolving (${p.error}; next try in ${p.next_try_in}s)` : p.state, p.state));
        const req = cell(String(p.requests)); req.className = "requests"; tr.appendChild(req);
        tr.appendChild(cell(String(p.active)));
        tr.appendChild(cell(String(p.responses["2xx"])));
        tr.appendChild(cell(String(p.responses["4xx"])));
        tr.appendChild(cell(String(p.responses["5xx"])));
        tr.appendChild(cell(String(p.failures)));
        const barCell = document.createElement("td");
        const bar = document.createElement("span"); bar.className = "bar"; bar.style.width = (200 * p.requests / most) + "px";
        barCell.appendChild(bar); tr.appendChild(barCell);
        table.appendChild(tr);
      }
      root.appendChild(table);
    }
  } catch (e) {
    document.getElementById("summary").textContent = "cannot reach " + url + ": " + e;
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
"#;
