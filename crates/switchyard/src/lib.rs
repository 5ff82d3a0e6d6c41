//! switchyard: a reverse proxy and load balancer that reads nginx.conf.
//!
//! The binary (`main.rs`) is thin; everything lives here so that integration
//! tests and fuzz targets can reach the parts that take input.

pub mod echo;
