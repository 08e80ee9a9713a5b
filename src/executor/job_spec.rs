//! What a cluster job must know to compute one stage: everything the controller decided
//! (kind, parameters, the key and its components, where each input is), so the worker never
//! re-reads `pipeline.toml` or re-plans. It travels inside the batch script, as one JSON
//! line, so a node needs no file from the controller beyond the inputs themselves.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use stages::kind::{OutputSpec, SHARD_FILE};

use crate::content_hash::ContentHash;
use crate::stage_key::{KeyHash, StageKey};

/// Bumped when the fields change; a worker refuses a spec of another format.
pub const SPEC_FORMAT: u32 = 1;

/// One input of the job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobInput {
    /// As declared (`pca:scores`, or a path).
    pub name: String,
    /// Where the controller sees it (a cache object or a file of the project).
    pub path: PathBuf,
    /// The blake3 of its bytes: the worker checks it before reading, and downloads the input
    /// by it from the remote cache.
    pub object: ContentHash,
}

/// Where the worker finds inputs and leaves results.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "kebab-case")]
pub enum JobExchange {
    /// The controller's cache folder, mounted on the node at the same path.
    Shared {
        /// The cache folder.
        cache_dir: PathBuf,
    },
    /// The remote cache.
    Remote {
        /// Its URL.
        url: String,
    },
}

/// Which part of the stage the job computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "kebab-case")]
pub enum Task {
    /// The whole stage.
    Whole,
    /// One piece of a sharded stage: the one `SLURM_ARRAY_TASK_ID` names.
    Shard {
        /// How many pieces.
        count: usize,
    },
    /// The outputs, from every piece's result.
    Merge {
        /// How many pieces.
        count: usize,
    },
}

/// Everything a worker needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSpec {
    /// [`SPEC_FORMAT`].
    pub format: u32,
    /// The stage.
    pub stage: String,
    /// Its kind.
    pub kind: String,
    /// The kind's code version in the controller's binary; a worker built from other code
    /// refuses the job rather than caching a result under a key it does not match.
    pub code_version: String,
    /// Parameters, defaults filled in.
    pub params: Value,
    /// Inputs in declaration order.
    pub inputs: Vec<JobInput>,
    /// The declared outputs, as (name, file).
    pub outputs: Vec<(String, String)>,
    /// The stage's key.
    pub key: KeyHash,
    /// Its components (the manifest records them; provenance is derived from them).
    pub components: StageKey,
    /// The folder holding `pipeline.toml`, where a `command` runs.
    pub project_dir: PathBuf,
    /// Where inputs and results are exchanged.
    pub exchange: JobExchange,
    /// Which part to compute.
    pub task: Task,
    /// Compute even when the result is cached already (`run --force`); otherwise a worker
    /// that finds its result (a requeued job) exits at once.
    #[serde(default)]
    pub force: bool,
}

impl JobSpec {
    /// The declared outputs as the stages crate describes them.
    pub fn output_specs(&self) -> Vec<OutputSpec> {
        self.outputs
            .iter()
            .map(|(name, file)| OutputSpec::new(name, file))
            .collect()
    }
}

/// The components of piece `shard` of `count` of a stage: the stage's own, with the piece
/// named in the parameters and a stage name no real stage can have (`.` is not allowed in
/// one), so a piece's key never collides with a stage's.
pub fn shard_components(components: &StageKey, shard: usize, count: usize) -> StageKey {
    let mut piece = components.clone();
    piece.stage = format!("{}.shard-{shard}-of-{count}", components.stage);
    if let Some(params) = piece.params.as_object_mut() {
        params.insert("shard".into(), shard.into());
        params.insert("shards".into(), count.into());
    }
    piece
}

/// The one output of a piece.
pub fn shard_outputs() -> Vec<OutputSpec> {
    vec![OutputSpec::new("shard", SHARD_FILE)]
}
