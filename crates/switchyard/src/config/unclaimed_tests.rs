//! Every supported directive is consumed in every block the table allows
//! it in: one a block's builder leaves over is reported as not supported
//! yet there (`Seen::unclaimed`), and this test finds any such gap.
//!
//! Each (directive, block) pair is loaded with argument lists tried in
//! turn until one loads; a pair whose every try fails for other reasons
//! (a certificate file that does not exist, say) is not verified, and is
//! listed. The test fails on any pair reported as not supported in a
//! block, or if fewer pairs than a floor could be verified at all.

use super::directives::{Ctx, Spec, Support, DIRECTIVES};
use super::{load, LoadOptions};

/// What every try shares: zones, an upstream and a variable the
/// directives under test may name.
const HTTP_PRELUDE: &str = "limit_req_zone $remote_addr zone=z:1m rate=1r/s; \
    limit_conn_zone $remote_addr zone=c:1m; upstream u { server 127.0.0.1:1; } \
    map $uri $mapped { default 1; } match ok { status 200; }";
const STREAM_PRELUDE: &str = "limit_conn_zone $remote_addr zone=c:1m; \
    upstream u { server 127.0.0.1:1; } map $remote_addr $mapped { default 1; }";

/// Argument lists to try, by count.
const ARGS: &[&str] = &[
    "",
    "on",
    "off",
    "1",
    "10s",
    "1k",
    "x",
    "$uri",
    "/x",
    "text/plain",
    "127.0.0.1",
    "127.0.0.1:1",
    "http://127.0.0.1:1",
    "u",
    "z",
    "c 1",
    "zone=z",
    "any",
    "*",
    "TLSv1.2",
    "shared:S:1m",
    "error",
    "1.1",
    "X-A b",
    "404 /x",
    "/x /y",
    "$a $b",
    "$mapped 1",
    "1 2",
    "x y",
    "a b c",
    "/ /x",
    "$remote_addr zone=c2:1m",
    "$remote_addr zone=z2:1m rate=1r/s",
    "text/plain x",
    "127.0.0.1 valid=1s",
    "200 x",
    "$uri =404",
    "all",
    "logs/a.log",
    "interval=1",
    "off 1s",
    "off off",
    "x=1 10s",
    "HIGH",
    "X-A",
    "x 0",
    "503",
    "X-Accel-Redirect",
    "prime256v1",
];

/// The blocks whose builders end in `Seen::unclaimed`, each as a config
/// with `HERE` where the directive goes.
fn blocks() -> Vec<(Ctx, &'static str, String)> {
    let http = |inner: &str| format!("events {{}}\nhttp {{ {HTTP_PRELUDE}\n{inner}\n}}\n");
    let stream = |inner: &str| format!("events {{}}\nstream {{ {STREAM_PRELUDE}\n{inner}\n}}\n");
    vec![
        (Ctx::HTTP, "http", http("HERE")),
        (
            Ctx::SERVER,
            "server",
            http("server { listen 127.0.0.1:1; HERE }"),
        ),
        (
            Ctx::LOCATION,
            "location",
            http("server { listen 127.0.0.1:1; location / { HERE } }"),
        ),
        (
            Ctx::LOCATION_IF,
            "if in location",
            http("server { listen 127.0.0.1:1; location / { if ($uri) { HERE } } }"),
        ),
        (Ctx::STREAM, "stream", stream("HERE")),
        (
            Ctx::STREAM_SERVER,
            "stream server",
            stream("server { listen 127.0.0.1:1; proxy_pass u; HERE }"),
        ),
    ]
}

/// The load's error lines for `text`, or none when it loads.
fn errors(dir: &std::path::Path, text: &str) -> Vec<String> {
    let path = dir.join("nginx.conf");
    std::fs::write(&path, text).expect("a writable temporary directory");
    match load(&LoadOptions {
        conf_file: path,
        prefix: dir.to_path_buf(),
        globals: None,
    }) {
        Ok(_) => Vec::new(),
        Err(e) => e.lines(),
    }
}

fn supported_in(ctx: Ctx) -> impl Iterator<Item = &'static Spec> {
    DIRECTIVES
        .iter()
        .filter(move |s| s.support == Support::Yes && !s.block && s.ctx.contains(ctx))
        .filter(|s| !matches!(s.name, "include" | "load_module"))
}

#[test]
fn every_supported_directive_is_consumed_where_it_is_allowed() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut gaps = Vec::new();
    let mut unverified = Vec::new();
    let mut verified = 0;
    for (ctx, block, template) in blocks() {
        for spec in supported_in(ctx) {
            let mut loaded = false;
            for args in ARGS
                .iter()
                .filter(|a| spec.arity.accepts(a.split_whitespace().count()))
            {
                let line = format!("{} {args};", spec.name);
                let errors = errors(dir.path(), &template.replace("HERE", &line));
                if let Some(gap) = errors
                    .iter()
                    .find(|e| e.contains("is not supported yet in this block"))
                {
                    gaps.push(format!("{line} in {}: {gap}", block));
                    loaded = true;
                    break;
                }
                if errors.is_empty() {
                    loaded = true;
                    verified += 1;
                    break;
                }
            }
            if !loaded {
                unverified.push(format!("{} in {}", spec.name, block));
            }
        }
    }
    assert!(
        gaps.is_empty(),
        "supported directives left unconsumed: {gaps:#?}"
    );
    assert!(
        verified >= 500,
        "only {verified} (directive, block) pairs loaded; not verified: {unverified:#?}"
    );
}
