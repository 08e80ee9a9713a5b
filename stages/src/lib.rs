//! Stage computations for the pipeline: pure functions from typed parameters and input
//! files to output files. Nothing here knows about caching, locks, `pipeline.toml` or the
//! command line; see `kind.rs` for the contract with the engine.

pub mod error;
pub mod kind;

use std::sync::Arc;

pub use error::{Error, Result};

/// Every built-in stage kind.
pub fn catalog() -> Vec<Arc<dyn kind::StageKind>> {
    Vec::new()
}
