//! The lab's console: commands typed while it runs, to watch a balancer
//! react. A node (every echo backend of one host: its ports and its health
//! port) can fail its health checks, heal, be killed and be started again.

/// One line typed at the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `fail NAME`: its health endpoints answer 503.
    Fail(String),
    /// `heal NAME`: its health endpoints answer 200 again.
    Heal(String),
    /// `kill NAME`: its backends stop (connections refused).
    Kill(String),
    /// `start NAME`: a killed node's backends start again, where they were.
    Start(String),
    /// `help` (or `?`).
    Help,
    /// An empty line.
    Nothing,
    /// Anything else, as typed.
    Unknown(String),
}

/// The help text, printed at start and on `help`.
pub const HELP: &str = "  type: fail NAME | heal NAME | kill NAME | start NAME (a backend's name, as listed above), then Enter";

/// Whether the lab may read commands from its standard input: a pipe or a
/// file, or a terminal it has in the foreground (a background job that read
/// its terminal would be stopped by SIGTTIN).
pub fn usable() -> bool {
    // SAFETY: isatty, tcgetpgrp and getpgrp only read the process's state.
    unsafe {
        if libc::isatty(0) == 0 {
            return true;
        }
        libc::tcgetpgrp(0) == libc::getpgrp()
    }
}

impl Command {
    /// Parses one typed line.
    pub fn parse(line: &str) -> Command {
        let mut words = line.split_whitespace();
        let (Some(verb), name) = (words.next(), words.next()) else {
            return Command::Nothing;
        };
        let extra = words.next().is_some();
        match (verb, name) {
            ("help" | "?", None) => Command::Help,
            ("fail", Some(n)) if !extra => Command::Fail(n.to_string()),
            ("heal", Some(n)) if !extra => Command::Heal(n.to_string()),
            ("kill", Some(n)) if !extra => Command::Kill(n.to_string()),
            ("start", Some(n)) if !extra => Command::Start(n.to_string()),
            _ => Command::Unknown(line.trim().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse() {
        assert_eq!(
            Command::parse("fail echogolem1"),
            Command::Fail("echogolem1".into())
        );
        assert_eq!(
            Command::parse("  heal  web2 "),
            Command::Heal("web2".into())
        );
        assert_eq!(
            Command::parse("kill 192.0.2.11"),
            Command::Kill("192.0.2.11".into())
        );
        assert_eq!(Command::parse("start a"), Command::Start("a".into()));
        assert_eq!(Command::parse("?"), Command::Help);
        assert_eq!(Command::parse("   "), Command::Nothing);
        assert_eq!(Command::parse("kill"), Command::Unknown("kill".into()));
        assert_eq!(
            Command::parse("kill a b"),
            Command::Unknown("kill a b".into())
        );
        assert_eq!(
            Command::parse("explode"),
            Command::Unknown("explode".into())
        );
    }
}
