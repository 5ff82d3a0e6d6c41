//! A running `switchyard lab`, started as a shell starts a job: in its own
//! process group, its stdout and stderr collected line by line.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{children_of, BIN};

/// The lab process and what it printed.
pub struct Lab {
    /// The `switchyard lab` process.
    pub child: Child,
    /// Every line it printed, stdout first-come with stderr.
    pub out: Arc<Mutex<Vec<String>>>,
}

impl Lab {
    /// `switchyard lab ARGS...`, with no console (stdin is /dev/null).
    pub fn start(args: &[&str]) -> Lab {
        Self::spawn(Command::new(BIN).arg("lab").args(args).stdin(Stdio::null()))
    }

    /// `switchyard lab ARGS...` with its console on a pipe: [`Lab::type_line`].
    pub fn start_with_console(args: &[&str]) -> Lab {
        Self::spawn(
            Command::new(BIN)
                .arg("lab")
                .args(args)
                .stdin(Stdio::piped()),
        )
    }

    /// Types a line at the lab's console.
    pub fn type_line(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("started with a console");
        writeln!(stdin, "{line}").expect("write to the lab's console");
        stdin.flush().expect("flush the lab's console");
    }

    /// Any command that runs the lab (`ip netns exec NS switchyard lab ...`).
    pub fn spawn(command: &mut Command) -> Lab {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn switchyard lab");
        let out = Arc::new(Mutex::new(Vec::new()));
        for reader in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = out.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
        }
        Lab { child, out }
    }

    /// Everything printed so far.
    pub fn text(&self) -> String {
        self.out.lock().unwrap().join("\n")
    }

    /// Waits until a printed line contains `needle`; panics with the output
    /// after `limit`, or if the lab exits first.
    pub fn wait_for_line(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if self.out.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the readers drain what it printed last.
                std::thread::sleep(Duration::from_millis(100));
                if self.out.lock().unwrap().iter().any(|l| l.contains(needle)) {
                    return;
                }
                panic!(
                    "the lab exited ({status}) before printing {needle:?}:\n{}",
                    self.text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?} after {limit:?}:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ctrl-C, as a terminal sends it (SIGINT to the whole process group);
    /// the exit code, or a panic with the output after `limit`.
    pub fn ctrl_c(&mut self, limit: Duration) -> i32 {
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGINT);
        }
        self.wait(limit)
    }

    /// Waits for exit; the exit code, or a panic with the output.
    pub fn wait(&mut self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The reader threads finish with the pipes; give them a moment.
                std::thread::sleep(Duration::from_millis(100));
                return status.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "the lab did not exit within {limit:?}; output:\n{}",
            self.text()
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The lab's children run in process groups of their own: take them
        // down one by one, then the lab's group, even if the lab is gone.
        let pid = self.child.id();
        for child in children_of(pid) {
            unsafe {
                libc::kill(child as i32, libc::SIGKILL);
            }
        }
        unsafe {
            libc::kill(-(pid as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}
