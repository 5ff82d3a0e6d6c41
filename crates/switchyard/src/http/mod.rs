//! The HTTP side: accept -> parse -> route -> proxy (or answer) -> log.
//! A request reads top to bottom: [`server`] accepts and routes,
//! [`proxy`] talks to the upstream, [`body`] streams and logs.

pub mod body;
pub mod exchange;
pub mod generation;
pub mod guard;
pub mod log;
pub mod proxy;
pub mod respond;
pub mod route;
pub mod send_timeout;
pub mod server;
