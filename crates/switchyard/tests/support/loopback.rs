//! A network namespace with nothing but loopback, made by the test and
//! removed on drop: a connection to any other address fails there
//! (ENETUNREACH), so a config that names addresses off this machine, or
//! fixed ports, can run without anything leaving it.

use std::process::Command;

/// The namespace, by name (`ip netns exec NAME ...`).
pub struct LoopbackOnly(pub String);

impl LoopbackOnly {
    /// Creates `sy-TAG-PID` with its loopback up; a failure says what is
    /// needed (root and iproute2, as CI has).
    pub fn create(tag: &str) -> LoopbackOnly {
        let name = format!("sy-{tag}-{}", std::process::id());
        for args in [
            vec!["netns", "add", name.as_str()],
            vec!["-n", name.as_str(), "link", "set", "lo", "up"],
        ] {
            let out = Command::new("ip").args(&args).output().expect("run ip");
            assert!(
                out.status.success(),
                "`ip {}` failed: {} (needs root and iproute2, as scripts/install-test-deps and CI provide)",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        LoopbackOnly(name)
    }
}

impl Drop for LoopbackOnly {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}
