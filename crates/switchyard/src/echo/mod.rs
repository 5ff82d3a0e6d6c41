//! `switchyard echo`: the echo-golem backend, and a test backend for load balancers.
