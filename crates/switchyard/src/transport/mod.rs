//! Byte streams the engines run over: plain TCP (and Unix sockets, see
//! accept.rs) and TLS, and what the
//! HTTP driver asks of each (client.rs).

pub mod accept;
pub mod ciphers;
pub mod client;
pub mod client_cert;
pub(crate) mod proxy_protocol;
pub mod sessions;
pub mod tls;
pub mod tls_client;
pub mod tls_server;
pub mod x509;
