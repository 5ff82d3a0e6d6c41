//! Issue 16, the lab tried with a user's own config: every upstream address
//! is simulated on loopback (address literals and implicit `proxy_pass`
//! targets included), a child that dies stops the lab at once, the traffic
//! reaches every proxied location, and the lab's words fit what it does.

mod support;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use support::lab::Lab;
use support::loopback::LoopbackOnly;
use support::{free_port, write_file, BIN};

/// The request counts of the lab's report, by the row's first word.
fn report_rows(text: &str) -> Vec<(String, u64)> {
    let Some((_, table)) = text.split_once("requests through the balancer:") else {
        return Vec::new();
    };
    table
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty() && !l.contains("by target:"))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.parse().ok()?))
        })
        .collect()
}

/// Waits for a `--requests` lab to exit 0 and checks its report's rows
/// (backend, count), in any order; its output.
fn report_of(lab: &mut Lab, want: &[(&str, u64)]) -> String {
    let code = lab.wait(Duration::from_secs(60));
    let text = lab.text();
    assert_eq!(code, 0, "{text}");
    let mut rows = report_rows(&text);
    rows.sort();
    let mut want: Vec<(String, u64)> = want.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    want.sort();
    assert_eq!(rows, want, "{text}");
    text
}

/// Finding 1: OpenShift nodes listed by address, and a `proxy_pass` to a
/// literal with no upstream block, all answered by the lab's own echo
/// backends inside a namespace where any other address is unreachable.
/// Before, the balancer connected to the real addresses (502s here).
#[test]
fn every_upstream_address_is_simulated_on_loopback() {
    let ns = LoopbackOnly::create("lab");
    let dir = tempfile::tempdir().unwrap();
    let conf = write_file(
        dir.path(),
        "nginx.conf",
        "events {}\nhttp {\n\
         upstream ingress {\n    server 192.168.122.11:80;\n    server 192.168.122.12:80;\n}\n\
         server {\n    listen 127.0.0.1:8080;\n\
         location / { proxy_pass http://ingress; }\n\
         location /api/ { proxy_pass http://10.1.2.3:9999; }\n}\n}\n",
    );
    let mut lab = Lab::spawn(
        Command::new("ip")
            .args(["netns", "exec", &ns.0, BIN])
            .args(["lab", "-c", conf.to_str().unwrap(), "--requests", "8"]),
    );
    let text = report_of(
        &mut lab,
        &[
            ("10.1.2.3", 4),
            ("192.168.122.11", 2),
            ("192.168.122.12", 2),
        ],
    );
    assert!(!text.contains("failed"), "{text}");
    assert!(text.contains("/api/ -> 10.1.2.3"), "{text}");
}

/// Finding 5: the balancer cannot bind its port; the lab says so and stops
/// at once (it used to wait 10 s for a pid file).
#[test]
fn a_busy_port_stops_the_lab_at_once() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let conf = write_file(
        dir.path(),
        "nginx.conf",
        &format!(
            "events {{}}\nhttp {{\nupstream u {{ server app:80; }}\n\
             server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://u; }} }}\n}}\n"
        ),
    );
    let started = Instant::now();
    let mut lab = Lab::start(&["-c", conf.to_str().unwrap()]);
    let code = lab.wait(Duration::from_secs(20));
    let took = started.elapsed();
    let text = lab.text();
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("Address already in use"), "{text}");
    assert!(text.contains("switchyard exited"), "{text}");
    assert!(took < Duration::from_secs(5), "took {took:?}:\n{text}");
    drop(busy);
}

/// Finding 6: with `--requests`, the report and nothing that invites a
/// Ctrl-C; the user's config is named as such, not as the seed; the traffic
/// reaches every location that proxies, each to its own upstream.
#[test]
fn requests_reach_every_location_and_the_words_fit() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let conf = write_file(
        dir.path(),
        "app.conf",
        &format!(
            "events {{}}\nhttp {{\nupstream web {{ server web1:80; server web2:80; }}\n\
             upstream api {{ server api1:9000; }}\n\
             server {{ listen 127.0.0.1:{port};\n\
             location / {{ proxy_pass http://web; }}\n\
             location /api/ {{ proxy_pass http://api; }}\n}}\n}}\n"
        ),
    );
    let mut lab = Lab::start(&["-c", conf.to_str().unwrap(), "--requests", "8"]);
    let text = report_of(&mut lab, &[("api1", 4), ("web1", 2), ("web2", 2)]);
    assert!(text.contains("/api/ -> api1"), "{text}");
    assert!(!text.contains("try:"), "{text}");
    assert!(!text.contains("Ctrl-C"), "{text}");
    assert!(!text.contains("the seed experiment"), "{text}");
    assert!(
        text.contains("app.conf, with 3 simulated backend(s)"),
        "{text}"
    );

    // --path sends everything where it says.
    let mut lab = Lab::start(&[
        "-c",
        conf.to_str().unwrap(),
        "--requests",
        "3",
        "--path",
        "/api/v1",
    ]);
    let code = lab.wait(Duration::from_secs(60));
    let text = lab.text();
    assert_eq!(code, 0, "{text}");
    assert_eq!(report_rows(&text), [("api1".to_string(), 3)], "{text}");
}

/// The process group of `pid` (field 5 of /proc/PID/stat).
fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// Finding 6: Ctrl-C on the terminal (SIGINT to the whole foreground group)
/// reaches the lab alone (its children run in groups of their own, so they
/// cannot print `shut down` before the lab decides to stop them), and the
/// lab prints `stopping...` before any backend's `shut down` line.
#[test]
fn ctrl_c_says_stopping_before_the_backends_stop() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let conf = write_file(
        dir.path(),
        "nginx.conf",
        &format!(
            "events {{}}\nhttp {{\nupstream u {{ server one:80; server two:80; }}\n\
             server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://u; }} }}\n}}\n"
        ),
    );
    let mut lab = Lab::start(&["-c", conf.to_str().unwrap()]);
    lab.wait_for_line("stop: Ctrl-C", Duration::from_secs(30));
    let lab_group = process_group(lab.child.id());
    let children = support::children_of(lab.child.id());
    assert_eq!(children.len(), 3, "two backends and the balancer");
    for child in children {
        assert_ne!(
            process_group(child),
            lab_group,
            "child {child} shares the lab's group"
        );
    }
    unsafe {
        libc::kill(-(lab.child.id() as i32), libc::SIGINT);
    }
    let code = lab.wait(Duration::from_secs(20));
    let lines = lab.out.lock().unwrap().clone();
    let text = lines.join("\n");
    assert_eq!(code, 0, "{text}");
    let stopping = lines
        .iter()
        .position(|l| l.contains("stopping..."))
        .unwrap_or_else(|| panic!("no stopping line:\n{text}"));
    let first_shut_down = lines
        .iter()
        .position(|l| l.contains("echo: shut down"))
        .unwrap_or_else(|| panic!("no shut down line:\n{text}"));
    assert!(stopping < first_shut_down, "{text}");
}

/// Beyond the findings: `lab -c` lists every problem of a config at once,
/// as `-t` does, with the summary line, and exits 1.
#[test]
fn a_broken_config_shows_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_file(
        dir.path(),
        "nginx.conf",
        "events {}\nhttp {\n gzip_window 8k;\n upstream u { server a:80; }\n\
         server { listen 127.0.0.1:1; sub_filter a b;\n location / { proxy_pass http://u; expirse 1h; } }\n}\n",
    );
    let mut lab = Lab::start(&["-c", conf.to_str().unwrap()]);
    let code = lab.wait(Duration::from_secs(20));
    let text = lab.text();
    assert_eq!(code, 1, "{text}");
    for needle in [
        "\"gzip_window\" is not supported yet in",
        "\"sub_filter\" is not supported yet in",
        "unknown directive \"expirse\" in",
        "3 problems: 2 directives not supported yet: gzip_window (1), sub_filter (1); 1 other error",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
}

/// Beyond the findings: the lab's console. `fail NAME` makes a backend fail
/// its health checks and the balancer stops sending to it, `heal NAME`
/// brings it back, `kill NAME` stops it (the lab keeps running) and
/// `start NAME` starts it again where it was.
#[test]
fn the_console_fails_heals_kills_and_starts_a_backend() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let conf = write_file(
        dir.path(),
        "nginx.conf",
        &format!(
            "events {{}}\nhttp {{\nupstream u {{ server web1:80; server web2:80; \
             health_check interval=200ms fails=1 passes=1 uri=/healthz; }}\n\
             server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://u; }} }}\n}}\n"
        ),
    );
    let mut lab = Lab::start_with_console(&["-c", conf.to_str().unwrap()]);
    lab.wait_for_line("type: fail NAME", Duration::from_secs(30));
    let who = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                let r = support::get(port, "/");
                match (r.status, r.header("x-served-by")) {
                    (200, Some(name)) => name.to_string(),
                    (status, _) => status.to_string(),
                }
            })
            .collect()
    };
    fn only(name: &str, seen: Vec<String>) -> bool {
        seen.iter().all(|n| n == name)
    }
    let both = |seen: Vec<String>| seen.contains(&"web1".into()) && seen.contains(&"web2".into());
    support::wait_until(Duration::from_secs(10), "both backends", || both(who(4)));

    lab.type_line("fail web1");
    lab.wait_for_line("web1 on 127.0.1.1", Duration::from_secs(5));
    support::wait_until(Duration::from_secs(10), "web1 out", || only("web2", who(4)));
    lab.type_line("heal web1");
    support::wait_until(Duration::from_secs(10), "web1 back", || both(who(4)));

    lab.type_line("fail web1");
    lab.type_line("stats");
    lab.wait_for_line("backend", Duration::from_secs(5));
    // A stats row: NAME ADDRESS STATE SERVED (a relayed log line has `|`).
    fn is_row(line: &str, name: &str) -> bool {
        let mut words = line.split_whitespace();
        words.next() == Some(name) && words.next().is_some_and(|w| w != "|")
    }
    let row = |name: &str, lab: &Lab| -> Vec<String> {
        let text = lab.text();
        let line = text
            .lines()
            .rev()
            .find(|l| is_row(l, name))
            .unwrap_or_else(|| panic!("no stats row for {name}:\n{text}"))
            .to_string();
        line.split_whitespace().map(str::to_string).collect()
    };
    support::wait_until(Duration::from_secs(5), "the stats rows", || {
        lab.text().lines().any(|l| is_row(l, "web2"))
    });
    let web1 = row("web1", &lab);
    assert_eq!(web1[2], "failing", "{web1:?}");
    assert!(web1[3].parse::<u64>().unwrap() > 0, "{web1:?}");
    assert_eq!(row("web2", &lab)[2], "up");
    lab.type_line("heal web1");

    lab.type_line("kill web2");
    lab.wait_for_line(": killed", Duration::from_secs(5));
    lab.type_line("stats");
    support::wait_until(Duration::from_secs(5), "web2 killed in the stats", || {
        lab.text()
            .lines()
            .any(|l| is_row(l, "web2") && l.contains(" killed "))
    });
    support::wait_until(Duration::from_secs(10), "web2 out", || only("web1", who(4)));
    assert!(
        lab.child.try_wait().unwrap().is_none(),
        "the lab stopped:\n{}",
        lab.text()
    );
    lab.type_line("start web2");
    lab.wait_for_line(": started", Duration::from_secs(10));
    // A failed peer is tried again after fail_timeout (10 s by default),
    // counted from its last failure: the bound leaves room for a slow machine.
    support::wait_until(Duration::from_secs(25), "web2 back", || both(who(4)));

    lab.type_line("explode");
    lab.wait_for_line("unknown command \"explode\"", Duration::from_secs(5));
}
