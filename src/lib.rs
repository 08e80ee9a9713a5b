//! The `pipeline` engine: reads `pipeline.toml`, decides which stages are stale and why,
//! runs them, and caches their results by content so nothing is computed twice.
//!
//! Phases, each producing a new type: [`raw_config::RawConfig`] (what serde read) ->
//! [`config::Config`] (validated) -> [`plan::Project::plan`] (freshness per stage) ->
//! [`runner::run`]. The stage computations live in the `stages` crate and know nothing
//! about caching.

pub mod cache;
pub mod cli;
pub mod config;
pub mod config_error;
pub mod content_hash;
pub mod dag;
pub mod error;
pub mod fingerprint;
pub mod gc;
pub mod inspect;
pub mod lockfile;
pub mod logging;
pub mod manifest;
pub mod metrics_view;
pub mod plan;
pub mod provenance;
pub mod publish;
pub mod raw_config;
pub mod registry;
pub mod remote;
pub mod run_lock;
pub mod runner;
pub mod signing;
pub mod span;
pub mod stage_key;
pub mod stale_reason;
pub mod stat_cache;
pub mod verify;
