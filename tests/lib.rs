//! Integration tests: the real `pipeline` binary and the real engine API.
//!
//! One test binary (`autotests = false`), a module per topic, each test in its own temporary
//! project folder.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod support;

mod analysis;
mod cli;
mod config_errors;
mod engine;
mod integrity;
mod interop;
mod remote;
mod report;
mod slurm;
mod user_stages;
