//! Byte streams the engines run over, beyond plain TCP: TLS so far.

pub mod tls;
