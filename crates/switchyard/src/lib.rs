//! switchyard: a reverse proxy and load balancer that reads nginx.conf.
//!
//! The binary (`main.rs`) is thin; everything lives here so that integration
//! tests and fuzz targets can reach the parts that take input.
#![warn(missing_docs)]

pub mod allocator;
pub mod cli;
pub mod config;
pub mod echo;
pub mod geo;
pub mod http;
pub mod known_vars;
pub mod lab;
pub mod observe;
pub mod runtime;
pub mod stream;
pub mod transport;
pub mod upstream;
pub mod vars;

/// switchyard's version, as `-v` prints it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The nginx release whose documented behaviour switchyard follows (where
/// nginx changed behaviour, switchyard does what this release does). `-V`
/// says it in nginx's own words, so that tools and nginx's test suite
/// hold switchyard to that release's behaviour, not an older one's.
pub const NGINX_BEHAVIOUR: &str = "1.31.5";
