//! The `pipeline` engine: reads `pipeline.toml`, decides which stages are stale and why,
//! runs them, and caches their results by content so nothing is computed twice.
//!
//! Phases, each producing a new type: [`raw_config::RawConfig`] (what serde read) ->
//! [`config::Config`] (validated) -> [`plan::Project::plan`] (freshness per stage) ->
//! [`runner::run`]. The stage computations live in the `stages` crate and know nothing
//! about caching.
//!
//! Public modules are the ones the integration tests drive the engine through (and the types
//! they expose); the rest (`publish`, `verify`, `gc`, `fingerprint`, ...) are the engine's own.

pub mod cache;
pub mod cli;
pub mod config;
pub mod config_error;
pub mod content_hash;
pub mod dag;
pub(crate) mod du;
pub mod error;
pub mod executor;
pub(crate) mod fingerprint;
pub(crate) mod gc;
pub(crate) mod inspect;
pub mod live_view;
pub mod lockfile;
pub mod logging;
pub mod manifest;
pub(crate) mod metrics_view;
pub(crate) mod overrides;
pub mod plan;
pub(crate) mod provenance;
pub(crate) mod publish;
pub(crate) mod raw_config;
pub mod registry;
pub mod remote;
pub(crate) mod run_lock;
pub mod runner;
pub(crate) mod show;
pub mod signing;
pub mod span;
pub mod stage_key;
pub mod stale_reason;
pub mod stat_cache;
pub(crate) mod verify;
