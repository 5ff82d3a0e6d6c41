//! The stream module: TCP sessions proxied to upstream groups, as nginx's
//! `stream {}` does. A session is: accept, pick a peer with the group's
//! balancer, connect (moving on to the next peer on failure, per
//! `proxy_next_upstream*`), copy bytes both ways with bounded buffers until
//! one side closes (or both, with `proxy_half_close`) or `proxy_timeout`
//! passes idle, then write the access-log line. UDP sessions (udp.rs)
//! group a client's datagrams the same way.

mod copy;
pub mod generation;
pub mod limit;
mod preread;
mod proxy;
pub mod session;
mod splice;
pub mod ssl_preread;
mod target;
mod tls;
pub mod udp;
mod vars;
