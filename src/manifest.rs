//! The record of one cached stage result: key components, output objects, timings.
//!
//! A manifest's existence under `cache/manifests/KEY.json` is the commit point of a stage
//! result: it is written last, atomically, after every object it names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use stages::kind::OutputSpec;

use crate::content_hash::ContentHash;
use crate::stage_key::{KeyHash, StageKey};

/// One output of a cached result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// File name inside the stage's output folder.
    pub file: String,
    /// Hash of every byte: the object's address in the cache.
    pub object: ContentHash,
    /// Hash of the data without provenance: what dependents' keys use.
    pub content: ContentHash,
    /// Size in bytes.
    pub size: u64,
}

/// One cached stage result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The key this result belongs to.
    pub key: KeyHash,
    /// The key's components.
    pub components: StageKey,
    /// Outputs by name.
    pub outputs: BTreeMap<String, OutputRecord>,
    /// How long the stage ran, in seconds.
    pub seconds: f64,
    /// When the result was made, in seconds since the epoch.
    pub created_unix: u64,
}

impl Manifest {
    /// Whether this result has exactly the outputs `declared`, by name and file. A manifest
    /// that names other files (an older kind, or one edited in a shared cache to point
    /// anywhere) is not a result of this stage, so its file names never become paths.
    pub fn matches(&self, declared: &[OutputSpec]) -> bool {
        self.outputs.len() == declared.len()
            && declared.iter().all(|spec| {
                self.outputs
                    .get(&spec.name)
                    .is_some_and(|record| record.file == spec.file)
            })
    }
}
