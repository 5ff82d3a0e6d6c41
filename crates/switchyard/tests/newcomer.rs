//! Issue 16: a newcomer's first hour, scripted. A fresh clone of the
//! committed repository in a temporary directory, then the README's
//! commands in the README's order, each run as written by `bash` in the
//! clone, with what a person would check of its output.
//!
//! Every command in the README's `sh` and `console` blocks must be in
//! [`STEPS`] (in the same order), so a README edit that adds, changes or
//! drops a command fails here until this walk-through follows it. The few
//! that are not run say why (`scripts/test` is the suite running this test).
//!
//! It builds switchyard in release mode in the clone (minutes the first
//! time). The clone's `target` is a link to a directory kept under the
//! workspace's own target directory, so that later runs rebuild only
//! switchyard's own crates; the commands still find `target/release`.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::lab::Lab;
use support::loopback::LoopbackOnly;

/// How the walk-through runs one README command.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Runs in the background until its output has `ready`; stopped by a
    /// later [`Step::Then`] of [`After::CtrlC`].
    Start {
        ready: &'static str,
        limit: Duration,
    },
    /// Runs to completion; `check` judges its exit code and output.
    Run { check: fn(i32, &str) },
    /// As `Run`, inside a network namespace with only loopback (a command
    /// whose config names addresses off this machine: the namespace makes
    /// sure nothing could reach them even if the lab let it through).
    RunIsolated { check: fn(i32, &str) },
    /// Not run, for the reason given.
    NotRun(&'static str),
}

/// What happens after a step, before the next README command.
#[derive(Debug, Clone, Copy)]
enum After {
    Nothing,
    /// Checks the background process's work so far, then sends it Ctrl-C
    /// (SIGINT to its process group, as a terminal does) and checks how it
    /// ended.
    CtrlC(fn(&str), fn(i32, &str)),
}

/// The README's commands, in order, with how each is run and checked.
const STEPS: &[(&str, Step, After)] = &[
    (
        "cargo run --release -- lab",
        Step::Start {
            ready: "try:  curl",
            limit: Duration::from_secs(1800),
        },
        After::Nothing,
    ),
    (
        "scripts/test",
        Step::NotRun("it is the test suite, which runs this walk-through"),
        After::Nothing,
    ),
    (
        r#"curl -i localhost:8080 -H 'Content-Type: application/json' -d '{"foo": "bar"}'"#,
        Step::Run {
            check: |code, out| {
                assert_eq!(code, 0, "{out}");
                assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
                assert!(out.contains("X-Served-By: echogolem"), "{out}");
                assert!(out.contains("\r\n\r\n{\"foo\": \"bar\"}\n"), "{out}");
            },
        },
        After::Nothing,
    ),
    (
        "http --ignore-stdin localhost:8080 foo=bar",
        Step::Run {
            // Not on a terminal, HTTPie prints the body alone; the status
            // is checked in the balancer's access log below.
            check: |code, out| {
                assert_eq!(code, 0, "{out}");
                assert!(out.contains("\"foo\": \"bar\""), "{out}");
            },
        },
        After::CtrlC(
            |lab| {
                assert!(lab.contains("200 15 \"-\" \"HTTPie/"), "{lab}");
                // The two requests above went to the two backends in turn.
                for name in ["echogolem1", "echogolem2"] {
                    assert!(
                        lab.lines().any(|l| l.trim_start().starts_with(name)
                            && l.contains("\"POST / HTTP/1.0\" 200")),
                        "no request logged by {name}:\n{lab}"
                    );
                }
            },
            |code, lab| {
                assert_eq!(code, 0, "{lab}");
                assert!(lab.contains("stopping..."), "{lab}");
            },
        ),
    ),
    (
        "target/release/switchyard lab --requests 100",
        Step::Run {
            check: |code, out| {
                assert_eq!(code, 0, "{out}");
                assert!(out.contains("100 requests through the balancer"), "{out}");
                for name in ["echogolem1", "echogolem2"] {
                    assert!(
                        out.lines().any(|l| {
                            let mut w = l.split_whitespace();
                            w.next() == Some(name) && w.next() == Some("50")
                        }),
                        "{name} did not take 50:\n{out}"
                    );
                }
            },
        },
        After::Nothing,
    ),
    (
        "target/release/switchyard lab -c examples/lab/by-address.conf --requests 8",
        Step::RunIsolated {
            check: |code, out| {
                assert_eq!(code, 0, "{out}");
                assert!(out.contains("8 requests through the balancer"), "{out}");
                for row in ["192.0.2.11", "192.0.2.12", "198.51.100.3"] {
                    assert!(
                        out.lines().any(|l| l.trim_start().starts_with(row)),
                        "no answer from the stand-in for {row}:\n{out}"
                    );
                }
                assert!(!out.contains("failed"), "{out}");
            },
        },
        After::Nothing,
    ),
    (
        r#"export PATH="$PWD/target/release:$PATH""#,
        Step::Run {
            check: |code, out| assert_eq!(code, 0, "{out}"),
        },
        After::Nothing,
    ),
    (
        "switchyard -t -c examples/seed/nginx.conf",
        Step::Run {
            check: |code, out| {
                assert_eq!(code, 0, "{out}");
                assert!(out.contains("test is successful"), "{out}");
            },
        },
        After::Nothing,
    ),
    (
        "mkdir -p logs",
        Step::Run {
            check: |code, out| assert_eq!(code, 0, "{out}"),
        },
        After::Nothing,
    ),
    (
        "switchyard -c examples/seed/nginx.conf -g 'daemon off;'",
        Step::Start {
            ready: "host not found in upstream \"echogolem2:8080\"",
            limit: Duration::from_secs(30),
        },
        After::CtrlC(
            |log| {
                // What the README says: the failed name, where it is written,
                // at [error]; and every request a 502 meanwhile.
                let line = log
                    .lines()
                    .find(|l| l.contains("host not found in upstream \"echogolem1:8080\""))
                    .unwrap_or_else(|| panic!("{log}"));
                assert!(line.contains("[error]"), "{line}");
                assert!(line.contains("examples/seed/nginx.conf:4"), "{line}");
                support::wait_for_port(
                    SocketAddr::from(([127, 0, 0, 1], 8080)),
                    Duration::from_secs(10),
                );
                let r = support::get(8080, "/");
                assert_eq!(r.status, 502, "{r:?}");
            },
            |_, log| assert!(!log.contains("panicked"), "{log}"),
        ),
    ),
    (
        "SWITCHYARD_BLESS_DOCS=1 cargo test -p switchyard --lib config::directive_doc",
        Step::NotRun(
            "scripts/test runs the same test without the variable, where it fails if the doc differs from what this writes",
        ),
        After::Nothing,
    ),
    (
        "scripts/conformance",
        Step::NotRun("scripts/test runs it on the repository, where the suite is beside it"),
        After::Nothing,
    ),
    (
        "bench/compare --quick",
        Step::NotRun("a benchmark of minutes; bench/RESULTS.md has its latest run"),
        After::Nothing,
    ),
    (
        "bench/compare",
        Step::NotRun("a benchmark of about 20 minutes"),
        After::Nothing,
    ),
    (
        "bench/compare --scenarios a,d1 --workers 2 --rounds 5 --duration 10 --perf a",
        Step::NotRun("a benchmark with a profile; minutes"),
        After::Nothing,
    ),
    (
        "bench/instructions",
        Step::NotRun(
            "a benchmark under valgrind, on fixed ports; bench/RESULTS.md has its figures",
        ),
        After::Nothing,
    ),
    (
        "bench/instructions --scenario a --only switchyard,nginx",
        Step::NotRun("a benchmark under valgrind, on fixed ports"),
        After::Nothing,
    ),
];

/// The commands of a README: every line of its `sh` blocks (comments and
/// blank lines aside) and the `$ ` lines of its `console` blocks.
///
/// A command containing ` #` outside a comment would be cut there: none of
/// the README's does.
fn readme_commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block: Option<&str> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(info) = trimmed.strip_prefix("```") {
            block = match block {
                Some(_) => None,
                None => Some(if info.is_empty() { "-" } else { info }),
            };
            continue;
        }
        match block {
            Some("sh") if !trimmed.is_empty() && !trimmed.starts_with('#') => {
                // A trailing `   # comment` is for the reader.
                let command = match trimmed.find(" #") {
                    Some(i) => trimmed[..i].trim_end(),
                    None => trimmed,
                };
                out.push(command.to_string())
            }
            Some("console") => {
                if let Some(cmd) = trimmed.strip_prefix("$ ") {
                    out.push(cmd.to_string());
                }
            }
            _ => {}
        }
    }
    out
}

/// The shell a newcomer types into: the clone as working directory, the
/// `export`s made so far.
struct Shell {
    dir: PathBuf,
    exports: Vec<String>,
}

impl Shell {
    fn command(&self, line: &str) -> Command {
        let mut script = self.exports.join("\n");
        script.push('\n');
        // `exec`, so that the process is the command itself (its exit code,
        // its signals); a builtin like `export` runs in the shell.
        if line.starts_with("export ") {
            script.push_str(line);
        } else {
            script.push_str(&format!("exec {line}"));
        }
        let mut c = Command::new("bash");
        c.arg("-c")
            .arg(script)
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        // What `cargo test` sets for this test is not a newcomer's shell.
        for (key, _) in std::env::vars() {
            if key.starts_with("CARGO_") && key != "CARGO_HOME" {
                c.env_remove(key);
            }
        }
        c
    }

    fn run(&self, line: &str, isolated: Option<&str>) -> (i32, String) {
        let mut c = match isolated {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "bash", "-c"])
                    .arg(format!("{}\nexec {line}", self.exports.join("\n")))
                    .current_dir(&self.dir)
                    .stdin(Stdio::null());
                c
            }
            None => self.command(line),
        };
        let out = c.output().expect("run bash");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }

    fn start(&self, line: &str) -> Lab {
        Lab::spawn(&mut self.command(line))
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_path_buf()
}

fn port_8080_free() -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], 8080)),
        Duration::from_millis(200),
    )
    .is_err()
}

#[test]
fn the_readme_walked_through_on_a_fresh_clone() {
    for tool in ["git", "curl", "http", "ip"] {
        let found = Command::new("bash")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            found,
            "`{tool}` is needed (scripts/install-test-deps installs it)"
        );
    }
    assert!(
        port_8080_free(),
        "the README's lab listens on 8080: free it first"
    );

    let root = workspace_root();
    let tmp = tempfile::tempdir().unwrap();
    let clone = tmp.path().join("switchyard");
    let status = Command::new("git")
        .args(["clone", "--quiet"])
        .arg(&root)
        .arg(&clone)
        .status()
        .expect("git clone");
    assert!(status.success(), "git clone {}", root.display());
    let cache = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("newcomer");
    std::fs::create_dir_all(&cache).unwrap();
    std::os::unix::fs::symlink(&cache, clone.join("target")).unwrap();

    let readme = std::fs::read_to_string(clone.join("README.md")).unwrap();
    let commands = readme_commands(&readme);
    let known: Vec<&str> = STEPS.iter().map(|(c, _, _)| *c).collect();
    assert_eq!(
        commands, known,
        "the README's commands and this walk-through differ: update STEPS with the README"
    );

    let mut shell = Shell {
        dir: clone,
        exports: Vec::new(),
    };
    let mut background: Option<Lab> = None;
    for (line, step, after) in STEPS {
        eprintln!("newcomer: $ {line}");
        match *step {
            Step::NotRun(why) => eprintln!("newcomer:   not run here: {why}"),
            Step::Start { ready, limit } => {
                let mut bg = shell.start(line);
                bg.wait_for_line(ready, limit);
                background = Some(bg);
            }
            Step::Run { check } => {
                let (code, out) = shell.run(line, None);
                check(code, &out);
                if line.starts_with("export ") {
                    shell.exports.push(line.to_string());
                }
            }
            Step::RunIsolated { check } => {
                let ns = LoopbackOnly::create("newcomer");
                let (code, out) = shell.run(line, Some(&ns.0));
                check(code, &out);
            }
        }
        if let After::CtrlC(before, ended) = *after {
            let mut bg = background.take().expect("a background command to stop");
            before(&bg.text());
            let code = bg.ctrl_c(Duration::from_secs(30));
            ended(code, &bg.text());
        }
    }
    assert!(
        background.is_none(),
        "a background command was never stopped"
    );
}
