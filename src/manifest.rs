//! The record of one cached stage result: key components, output objects, timings.
//!
//! A manifest's existence under `cache/manifests/KEY.json` is the commit point of a stage
//! result: it is written last, atomically, after every object it names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
