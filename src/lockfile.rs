//! `pipeline.lock`: per stage, the key, its components and the output hashes of the last
//! result published. Deterministic order and formatting so it diffs cleanly in git; written
//! atomically. It is also the memory that `status` compares against to say what changed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::manifest::OutputRecord;
use crate::publish::{write_atomic, PublishError};
use crate::stage_key::{KeyHash, StageKey};

/// One stage's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockEntry {
    /// The key of the published result.
    pub key: KeyHash,
    /// The key's components.
    pub components: StageKey,
    /// Outputs by name.
    pub outputs: BTreeMap<String, OutputRecord>,
    /// How long the result took to compute, in seconds (the live view's estimate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

/// The whole lock file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Lockfile {
    /// Format version of this file.
    pub version: u32,
    /// Records by stage name.
    pub stages: BTreeMap<String, LockEntry>,
}

impl Lockfile {
    /// Reads the lock file; a missing one is empty, an unreadable one is ignored with a warning.
    pub fn load(path: &Path) -> Self {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|err| {
                tracing::warn!("ignoring unreadable {}: {err}", path.display());
                Self::default()
            }),
            Err(_) => Self::default(),
        }
    }

    /// Reads a lock file that must be there and readable (`gc --keep-lock`): keeping nothing
    /// because a file could not be read would remove what it protects.
    pub fn read_strict(path: &Path) -> Result<Self, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not a pipeline.lock: {e}", path.display()))
    }

    /// Writes the lock file atomically.
    pub fn save(&self, path: &Path) -> Result<(), PublishError> {
        let mut text = serde_json::to_string_pretty(&Lockfile {
            version: 1,
            stages: self.stages.clone(),
        })
        .map_err(|e| PublishError::Io {
            action: "encode",
            path: path.to_owned(),
            source: std::io::Error::other(e),
        })?;
        text.push('\n');
        write_atomic(path, text.as_bytes())
    }
}
