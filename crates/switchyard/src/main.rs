//! The `switchyard` binary: nginx's command line for the load balancer,
//! plus the `echo` and `lab` subcommands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use switchyard::cli::{self, Options};
use switchyard::config::{self, LoadOptions};
use switchyard::observe::{error_log, ErrorLevel};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "switchyard echo",
    about = "The echo backend: echo-golem's behaviour and more"
)]
struct EchoCli {
    #[command(flatten)]
    args: switchyard::echo::EchoArgs,
}

#[derive(Parser)]
#[command(name = "switchyard lab", about = "The seed experiment in one command")]
struct LabCli {
    #[command(flatten)]
    args: switchyard::lab::LabArgs,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("echo") => {
            return run_async(async move {
                let cli = EchoCli::parse_from(&args[1..]);
                switchyard::echo::run(cli.args).await
            })
        }
        Some("lab") => {
            return run_async(async move {
                let cli = LabCli::parse_from(&args[1..]);
                switchyard::lab::run(cli.args).await
            })
        }
        _ => {}
    }
    let options = match cli::parse(&args[1..]) {
        Ok(o) => o,
        Err(e) => {
            error_log::stderr_line(ErrorLevel::Emerg, &e);
            return ExitCode::from(1);
        }
    };
    ExitCode::from(balancer(options) as u8)
}

fn run_async(job: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchyard: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(job) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load_options(options: &Options) -> LoadOptions {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let prefix = match &options.prefix {
        Some(p) if p.is_absolute() => p.clone(),
        Some(p) => cwd.join(p),
        None => cwd,
    };
    let conf = options
        .conf
        .clone()
        .unwrap_or_else(|| PathBuf::from("conf/nginx.conf"));
    // nginx resolves a relative -c against the prefix; with our default
    // prefix (the current directory) that is the path as typed.
    let conf_file = if conf.is_absolute() {
        conf
    } else {
        prefix.join(conf)
    };
    LoadOptions {
        conf_file: normalize(&conf_file),
        prefix,
        globals: options.globals.clone(),
    }
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn balancer(options: Options) -> i32 {
    if options.help {
        print!("{}", cli::usage());
        return 0;
    }
    if options.configure {
        eprint!("{}", cli::configure_line());
        return 0;
    }
    if options.version {
        eprintln!("switchyard version: switchyard/{}", switchyard::VERSION);
        return 0;
    }
    let load = load_options(&options);
    let conf_name = load.conf_file.display().to_string();
    if options.test {
        return match config::load(&load) {
            Ok(loaded) => {
                if !options.quiet {
                    eprintln!("switchyard: the configuration file {conf_name} syntax is ok");
                    eprintln!("switchyard: configuration file {conf_name} test is successful");
                }
                if options.dump {
                    print!("{}", loaded.tree.dump());
                }
                0
            }
            Err(e) => {
                for line in e.lines() {
                    error_log::stderr_line(ErrorLevel::Emerg, &line);
                }
                eprintln!("switchyard: configuration file {conf_name} test failed");
                1
            }
        };
    }
    if let Some(signal) = options.signal {
        return send_signal(&load, signal);
    }
    switchyard::runtime::run(switchyard::runtime::RunOptions {
        load,
        error_log: options.error_log,
    })
}

fn send_signal(load: &LoadOptions, signal: cli::Signal) -> i32 {
    let loaded = match config::load(load) {
        Ok(l) => l,
        Err(e) => {
            for line in e.lines() {
                error_log::stderr_line(ErrorLevel::Emerg, &line);
            }
            return 1;
        }
    };
    let pid = match switchyard::runtime::read_pid(&loaded.model.main.pid) {
        Ok(p) => p,
        Err(e) => {
            error_log::stderr_line(ErrorLevel::Error, &e);
            return 1;
        }
    };
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid, signal.number()) } != 0 {
        let e = std::io::Error::last_os_error();
        error_log::stderr_line(
            ErrorLevel::Alert,
            &format!(
                "kill({pid}, {}) failed ({})",
                signal.number(),
                error_log::os_error(&e)
            ),
        );
        return 1;
    }
    0
}
