//! Debian's nginx as an oracle: started on a self-contained config in its
//! own prefix, stopped on drop. Tests that compare with it fail (not pass)
//! when nginx is missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The nginx binary, or a failure that says how to get it.
pub fn nginx_bin() -> PathBuf {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nginx"))
            .find(|p| p.is_file())
    });
    from_path
        .or_else(|| {
            let p = PathBuf::from("/usr/sbin/nginx");
            p.is_file().then_some(p)
        })
        .unwrap_or_else(|| {
            panic!(
                "nginx is not installed: the differential tests compare switchyard with it. \
                 Install it with scripts/install-test-deps (Debian package nginx-light)."
            )
        })
}

/// A running nginx (one process: `master_process off`) with its own prefix.
pub struct Nginx {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Writes `http_body` inside `http { }` of a self-contained nginx.conf
    /// (every path under a temporary prefix) and starts nginx on it; returns
    /// when `port` accepts.
    pub fn start(http_body: &str, port: u16) -> Nginx {
        Self::start_conf(
            &format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid logs/nginx.pid;\n\
                 error_log logs/error.log info;\nevents {{}}\nhttp {{\n\
                 client_body_temp_path tmp/body;\nproxy_temp_path tmp/proxy;\n\
                 fastcgi_temp_path tmp/fastcgi;\nuwsgi_temp_path tmp/uwsgi;\nscgi_temp_path tmp/scgi;\n\
                 {http_body}\n}}\n"
            ),
            port,
        )
    }

    /// Starts nginx on a whole config text (its paths relative to a
    /// temporary prefix with `logs/` and `tmp/`); returns when `port` accepts.
    pub fn start_conf(conf: &str, port: u16) -> Nginx {
        let bin = nginx_bin();
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["logs", "tmp"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut child = Command::new(&bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg("logs/error.log")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        if let Err(e) = super::wait_started(
            &mut child,
            dir.path(),
            None,
            &[port],
            Duration::from_secs(10),
        ) {
            panic!("nginx {e}");
        }
        Nginx {
            child: Some(child),
            dir,
        }
    }

    /// The access log's lines (`logs/access.log` under the prefix).
    pub fn access_lines(&self) -> Vec<String> {
        read_lines(&self.dir.path().join("logs/access.log"))
    }

    /// Its prefix.
    pub fn dir_path(&self) -> &Path {
        self.dir.path()
    }

    /// The lines of a log file under the prefix.
    pub fn log_lines(&self, relative: &str) -> Vec<String> {
        read_lines(&self.dir.path().join(relative))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A file's lines (none if it is missing).
pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}
