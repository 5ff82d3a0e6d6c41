//! Byte streams the engines run over, beyond plain TCP: TLS so far.

pub mod ciphers;
pub mod sessions;
pub mod tls;
pub mod tls_client;
pub mod tls_server;
pub mod x509;
