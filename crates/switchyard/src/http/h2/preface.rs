//! Whether a plain connection speaks HTTP/2: the address takes it, and the
//! first bytes are the client preface (RFC 9113 3.4), looked for as
//! nginx's ngx_http_wait_request_handler does.

use crate::upstream::addr::PeerAddr;

use crate::http::generation::Generation;

/// The client connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preface {
    /// The whole preface: HTTP/2 with prior knowledge.
    Whole,
    /// The start of it: more bytes decide.
    Partial,
    /// Not HTTP/2: an HTTP/1.x request (or garbage) for the HTTP/1 driver.
    No,
}

/// Reads `first`, the bytes a new connection sent so far.
pub fn preface(first: &[u8]) -> Preface {
    let n = first.len().min(PREFACE.len());
    if first[..n] != PREFACE[..n] {
        Preface::No
    } else if n == PREFACE.len() {
        Preface::Whole
    } else {
        Preface::Partial
    }
}

/// Whether connections to `local` take HTTP/2, as nginx decides per
/// address: the `http2` directive of the address's default server, or
/// `listen ... http2` on any `listen` of that address.
pub fn enabled(generation: &Generation, local: &PeerAddr) -> bool {
    let servers = generation.servers_for(local);
    let default = servers
        .iter()
        .find(|(_, default)| *default)
        .or_else(|| servers.first());
    default.is_some_and(|(s, _)| s.settings.http2) || listen_http2(generation, local)
}

/// Whether a `listen` of `local` says `http2` (nginx's `addr_conf->http2`):
/// the address then takes HTTP/2 for every server on it, whatever their
/// `http2` directives say.
pub fn listen_http2(generation: &Generation, local: &PeerAddr) -> bool {
    let servers = generation.servers_for(local);
    servers.iter().any(|(s, _)| {
        s.listens
            .iter()
            .any(|l| l.http2 && (l.addr == *local || local.wildcard().as_ref() == Some(&l.addr)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preface_is_recognised_in_pieces() {
        assert_eq!(preface(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Preface::Whole);
        assert_eq!(
            preface(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00"),
            Preface::Whole
        );
        assert_eq!(preface(b"PRI * HT"), Preface::Partial);
        assert_eq!(preface(b"P"), Preface::Partial);
        assert_eq!(preface(b"POST / HTTP/1.1\r\n"), Preface::No);
        assert_eq!(preface(b"GET / HTTP/1.1\r\n"), Preface::No);
    }
}
