//! nginx's command line, parsed the way nginx parses it: flags may be
//! combined (`-tq`), values may be attached (`-cFILE`) or separate
//! (`-c FILE`), and every message is nginx's.

use std::path::PathBuf;

/// What the command line asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `-?` / `-h`.
    pub help: bool,
    /// `-v`.
    pub version: bool,
    /// `-V`.
    pub configure: bool,
    /// `-t`.
    pub test: bool,
    /// `-T`.
    pub dump: bool,
    /// `-q`.
    pub quiet: bool,
    /// `-s SIGNAL`.
    pub signal: Option<Signal>,
    /// `-p PREFIX`.
    pub prefix: Option<PathBuf>,
    /// `-e FILE`.
    pub error_log: Option<String>,
    /// `-c FILE`.
    pub conf: Option<PathBuf>,
    /// `-g DIRECTIVES`.
    pub globals: Option<String>,
}

/// The signals `-s` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `stop`: SIGTERM, fast shutdown.
    Stop,
    /// `quit`: SIGQUIT, graceful shutdown.
    Quit,
    /// `reopen`: SIGUSR1, reopen log files.
    Reopen,
    /// `reload`: SIGHUP, reload the configuration.
    Reload,
}

impl Signal {
    /// The OS signal number.
    pub fn number(self) -> i32 {
        match self {
            Signal::Stop => libc::SIGTERM,
            Signal::Quit => libc::SIGQUIT,
            Signal::Reopen => libc::SIGUSR1,
            Signal::Reload => libc::SIGHUP,
        }
    }
}

/// nginx's usage text, with our defaults.
pub fn usage() -> String {
    format!(
        "switchyard version: switchyard/{}\n\
Usage: switchyard [-?hvVtTq] [-s signal] [-p prefix]\n\
                  [-e filename] [-c filename] [-g directives]\n\
       switchyard echo [options]     (the echo backend; see switchyard echo --help)\n\
       switchyard lab [options]      (the seed experiment; see switchyard lab --help)\n\
\n\
Options:\n\
  -?,-h         : this help\n\
  -v            : show version and exit\n\
  -V            : show version and configure options then exit\n\
  -t            : test configuration and exit\n\
  -T            : test configuration, dump it and exit\n\
  -q            : suppress non-error messages during configuration testing\n\
  -s signal     : send signal to a master process: stop, quit, reopen, reload\n\
  -p prefix     : set prefix path (default: the current directory)\n\
  -e filename   : set error log file (default: stderr)\n\
  -c filename   : set configuration file (default: conf/nginx.conf)\n\
  -g directives : set global directives out of configuration file\n",
        crate::VERSION
    )
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let bytes = arg.as_bytes();
        if bytes.first() != Some(&b'-') {
            return Err(format!("invalid option: \"{arg}\""));
        }
        let mut j = 1;
        while j < bytes.len() {
            let flag = bytes[j];
            j += 1;
            match flag {
                b'?' | b'h' => options.help = true,
                b'v' => options.version = true,
                b'V' => {
                    options.version = true;
                    options.configure = true;
                }
                b't' => options.test = true,
                b'T' => {
                    options.test = true;
                    options.dump = true;
                }
                b'q' => options.quiet = true,
                b'p' | b'c' | b'e' | b'g' | b's' => {
                    let value = if j < bytes.len() {
                        let v = arg[j..].to_string();
                        j = bytes.len();
                        v
                    } else if i + 1 < args.len() {
                        i += 1;
                        args[i].clone()
                    } else {
                        return Err(match flag {
                            b'p' => "option \"-p\" requires directory name".to_string(),
                            b'c' => "option \"-c\" requires file name".to_string(),
                            b'e' => "option \"-e\" requires file name".to_string(),
                            b'g' => "option \"-g\" requires parameter".to_string(),
                            _ => "option \"-s\" requires parameter".to_string(),
                        });
                    };
                    match flag {
                        b'p' => options.prefix = Some(PathBuf::from(value)),
                        b'c' => options.conf = Some(PathBuf::from(value)),
                        b'e' => options.error_log = Some(value),
                        b'g' => options.globals = Some(value),
                        _ => {
                            options.signal = Some(match value.as_str() {
                                "stop" => Signal::Stop,
                                "quit" => Signal::Quit,
                                "reopen" => Signal::Reopen,
                                "reload" => Signal::Reload,
                                _ => return Err(format!("invalid option: \"-s {value}\"")),
                            })
                        }
                    }
                }
                other => return Err(format!("invalid option: \"{}\"", other as char)),
            }
        }
        i += 1;
    }
    Ok(options)
}

/// The rustls this build links (Cargo.lock's, checked by a test).
const RUSTLS_VERSION: &str = "0.23";

/// The `-V` text: what this build has, in nginx's `configure arguments:`
/// form, so scripts that grep it find the truth.
pub fn configure_line() -> String {
    let have = [
        "--with-http_auth_request_module",
        "--with-http_gunzip_module",
        "--with-http_gzip_static_module",
        "--with-http_realip_module",
        "--with-http_ssl_module",
        "--with-http_stub_status_module",
        "--with-http_v2_module",
        "--with-http_upstream_hash_module",
        "--with-http_upstream_ip_hash_module",
        "--with-http_upstream_least_conn_module",
        "--with-http_upstream_random_module",
        "--with-http_upstream_keepalive_module",
        "--with-stream",
        "--with-stream_ssl_module",
        "--with-stream_ssl_preread_module",
    ];
    let missing = [
        "--without-http_ssi_module",
        "--without-http_autoindex_module",
        "--without-http_fastcgi_module",
        "--without-http_uwsgi_module",
        "--without-http_scgi_module",
        "--without-http_grpc_module",
        "--without-http_memcached_module",
        "--without-http_referer_module",
        "--without-http_userid_module",
        "--without-http_charset_module",
        "--without-http_empty_gif_module",
        "--without-http_browser_module",
        "--without-http-cache",
        "--without-http_mirror_module",
        "--without-mail_pop3_module",
        "--without-mail_imap_module",
        "--without-mail_smtp_module",
        // The stream sub-modules not implemented yet (nginx's test suite
        // reads these to skip what is missing).
        "--without-stream_pass_module",
        "--without-stream_upstream_least_time_module",
    ];
    format!(
        "switchyard version: switchyard/{}\nnginx version: nginx/{} (the behaviour switchyard follows)\nbuilt with rustc and rustls {}\nTLS SNI support enabled\nconfigure arguments: --prefix=. --conf-path=conf/nginx.conf --error-log-path=stderr --pid-path=logs/nginx.pid {} {}\n",
        crate::VERSION,
        crate::NGINX_BEHAVIOUR,
        RUSTLS_VERSION,
        have.join(" "),
        missing.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// -V must not deny a module whose directives switchyard supports, nor
    /// claim one whose directives it does not.
    #[test]
    fn configure_line_tells_the_truth() {
        use crate::config::directives::{lookup, Support};
        let line = configure_line();
        let module_directive = [
            ("http_rewrite_module", "set"),
            ("http_static_module", "root"),
            ("http_index_module", "index"),
            ("http_map_module", "map"),
            ("http_geo_module", "geo"),
            ("http_gzip_module", "gzip"),
            ("http_gunzip_module", "gunzip"),
            ("http_gzip_static_module", "gzip_static"),
            ("http_ssi_module", "ssi"),
            ("http_fastcgi_module", "fastcgi_pass"),
            ("http_access_module", "allow"),
            ("http_limit_req_module", "limit_req"),
            ("http_realip_module", "set_real_ip_from"),
            ("http_stub_status_module", "stub_status"),
            ("http_upstream_keepalive_module", "keepalive"),
        ];
        for (module, directive) in module_directive {
            let supported = lookup(directive).map(|d| d.support) == Some(Support::Yes);
            let denied = line.contains(&format!("--without-{module}"));
            assert!(
                !(supported && denied),
                "-V denies {module} but {directive} is supported"
            );
            if !supported {
                assert!(
                    !line.contains(&format!("--with-{module}")),
                    "-V claims {module}"
                );
            }
        }
        // Stream sub-modules: denied exactly when their directive is not
        // supported in a stream context.
        use crate::config::directives::{lookup_in, Ctx};
        assert!(line.contains("--with-stream "), "stream is built in");
        let stream_modules = [
            ("stream_access_module", "allow", Ctx::STREAM_SERVER),
            ("stream_map_module", "map", Ctx::STREAM),
            ("stream_set_module", "set", Ctx::STREAM_SERVER),
            ("stream_split_clients_module", "split_clients", Ctx::STREAM),
            ("stream_return_module", "return", Ctx::STREAM_SERVER),
            ("stream_geo_module", "geo", Ctx::STREAM),
            ("stream_limit_conn_module", "limit_conn", Ctx::STREAM_SERVER),
            ("stream_pass_module", "pass", Ctx::STREAM_SERVER),
            ("stream_upstream_hash_module", "hash", Ctx::STREAM_UPSTREAM),
            (
                "stream_upstream_least_conn_module",
                "least_conn",
                Ctx::STREAM_UPSTREAM,
            ),
            (
                "stream_upstream_random_module",
                "random",
                Ctx::STREAM_UPSTREAM,
            ),
        ];
        for (module, directive, ctx) in stream_modules {
            let supported = lookup_in(directive, ctx).map(|d| d.support) == Some(Support::Yes);
            let denied = line.contains(&format!("--without-{module}"));
            assert_eq!(
                supported, !denied,
                "-V and {directive} disagree on {module}"
            );
        }
        // Listed with --with- as nginx lists them (not built by default).
        for (module, directive) in [
            ("stream_ssl_module", "ssl_certificate"),
            ("stream_ssl_preread_module", "ssl_preread"),
        ] {
            let supported =
                lookup_in(directive, Ctx::STREAM_SERVER).map(|d| d.support) == Some(Support::Yes);
            assert_eq!(
                supported,
                line.contains(&format!("--with-{module} ")),
                "-V and {directive} disagree on {module}"
            );
        }
        let lock = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"));
        assert!(
            lock.contains(&format!("name = \"rustls\"\nversion = \"{RUSTLS_VERSION}.")),
            "-V names rustls {RUSTLS_VERSION}, Cargo.lock another"
        );
    }

    fn p(args: &[&str]) -> Result<Options, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn nginx_flag_forms() {
        let o = p(&["-tq", "-cfoo.conf", "-p", "/x/", "-g", "daemon off;"]).unwrap();
        assert!(o.test && o.quiet && !o.dump);
        assert_eq!(o.conf, Some(PathBuf::from("foo.conf")));
        assert_eq!(o.prefix, Some(PathBuf::from("/x/")));
        assert_eq!(o.globals.as_deref(), Some("daemon off;"));
        assert_eq!(p(&["-sreload"]).unwrap().signal, Some(Signal::Reload));
        assert!(p(&["-T"]).unwrap().dump);
    }

    #[test]
    fn nginx_errors() {
        assert_eq!(p(&["-c"]).unwrap_err(), "option \"-c\" requires file name");
        assert_eq!(
            p(&["-p"]).unwrap_err(),
            "option \"-p\" requires directory name"
        );
        assert_eq!(
            p(&["-s", "bogus"]).unwrap_err(),
            "invalid option: \"-s bogus\""
        );
        assert_eq!(p(&["-x"]).unwrap_err(), "invalid option: \"x\"");
        assert_eq!(p(&["foo"]).unwrap_err(), "invalid option: \"foo\"");
    }
}
