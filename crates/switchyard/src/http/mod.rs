//! The HTTP side: accept -> parse -> route -> proxy (or answer) -> log.
//! A request reads top to bottom: [`server`] accepts and routes (plain
//! HTTP/1.1 on the fast path in [`h1`], the rest through hyper), [`proxy`]
//! talks to the upstream, [`body`] streams and logs.

pub mod accel_redirect;
pub mod access;
pub mod auth_basic;
pub mod auth_request;
pub mod body;
pub mod crypt;
pub mod dispatch;
pub mod exchange;
pub mod expires;
pub mod generation;
pub mod guard;
pub mod gunzip;
pub mod gzip;
pub mod h1;
pub mod h2;
pub mod headers;
pub mod keepalive;
pub mod limit_conn;
pub mod limit_rate;
pub mod limit_req;
pub mod limits;
pub mod linger;
pub mod log;
pub mod not_modified;
pub mod outbox;
pub mod proxy;
pub mod realip;
pub mod request_body;
pub mod respond;
pub mod rewrite;
pub mod route;
pub mod server;
pub mod static_files;
pub mod status;
pub mod tls;
pub mod try_files;
mod uri_changes;
