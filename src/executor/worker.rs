//! `pipeline worker`: computes one stage (or one piece of a sharded stage) on a cluster node,
//! from the [`JobSpec`] its batch script carries, and commits the result to the cache with
//! the same atomic publish as a local run. The controller learns of the result from the cache
//! (or the remote) and the job's exit status; the worker publishes nothing to `outputs/`.
//!
//! Nothing is trusted by name: every input is checked against the hash the controller
//! recorded before the stage reads it, and a worker whose code version differs from the
//! controller's refuses the job instead of caching a result under a key it does not match.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use stages::kind::{StageIo, SHARD_FILE};

use super::job_spec::{shard_components, shard_outputs, JobExchange, JobSpec, Task, SPEC_FORMAT};
use crate::cache::Cache;
use crate::manifest::Manifest;
use crate::publish::{self, PublishError};
use crate::registry::Registry;
use crate::remote::{Remote, RemoteError, Trust};
use crate::stage_key::StageKey;
use crate::stat_cache::StatCache;

/// Why a worker could not produce its result.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The spec could not be read.
    #[error("cannot read the job spec: {0}")]
    Spec(String),
    /// The spec asks for something this binary cannot do.
    #[error("{0}")]
    Mismatch(String),
    /// An input is missing or differs from what the controller hashed.
    #[error("input `{name}` ({path}): {problem}")]
    Input {
        /// As declared.
        name: String,
        /// Where it was looked for.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// The stage itself failed.
    #[error(transparent)]
    Stage(#[from] stages::Error),
    /// Committing the result failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The remote cache failed.
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

/// Reads a spec from its JSON text.
pub fn parse_spec(text: &str) -> Result<JobSpec, WorkerError> {
    let spec: JobSpec =
        serde_json::from_str(text.trim()).map_err(|e| WorkerError::Spec(e.to_string()))?;
    if spec.format != SPEC_FORMAT {
        return Err(WorkerError::Mismatch(format!(
            "the job spec has format {}, this binary reads format {SPEC_FORMAT}: use the same pipeline binary on the nodes as on the controller",
            spec.format
        )));
    }
    Ok(spec)
}

/// Computes what `spec` asks for; `shard` is the array task id of a [`Task::Shard`] job.
pub fn run(spec: &JobSpec, registry: &Registry, shard: Option<usize>) -> Result<(), WorkerError> {
    let kind = registry.get(&spec.kind).ok_or_else(|| {
        WorkerError::Mismatch(format!("this binary has no stage kind `{}`", spec.kind))
    })?;
    if kind.code_version() != spec.code_version {
        return Err(WorkerError::Mismatch(format!(
            "stage `{}`: this binary's `{}` code differs from the controller's (version {} here, {} there): install the same pipeline binary on every node",
            spec.stage,
            spec.kind,
            short(&kind.code_version()),
            short(&spec.code_version)
        )));
    }
    if spec.components.hash() != spec.key {
        return Err(WorkerError::Mismatch(
            "the job spec's key does not match its components".into(),
        ));
    }
    let (components, outputs) = match (spec.task, shard) {
        (Task::Whole | Task::Merge { .. }, _) => (spec.components.clone(), spec.output_specs()),
        (Task::Shard { count }, Some(index)) if index < count => (
            shard_components(&spec.components, index, count),
            shard_outputs(),
        ),
        (Task::Shard { count }, shard) => {
            return Err(WorkerError::Mismatch(format!(
                "a shard job needs SLURM_ARRAY_TASK_ID from 0 to {}, got {shard:?}",
                count.saturating_sub(1)
            )))
        }
    };
    let key = components.hash();
    let place = Place::open(spec)?;
    let stat_cache = StatCache::default();
    let existing = match spec.force {
        true => None,
        false => place.existing(&key, &outputs, &stat_cache)?,
    };
    if let Some(existing) = existing {
        tracing::info!("{}: already cached as {}", spec.stage, existing.key.short());
        return Ok(());
    }
    let inputs = place.inputs(spec, &stat_cache)?;
    let shard_files = match spec.task {
        Task::Merge { count } => place.shard_results(spec, count, &stat_cache)?,
        _ => Vec::new(),
    };
    let input_names: Vec<String> = spec.inputs.iter().map(|i| i.name.clone()).collect();
    let provenance = crate::provenance::pairs(&key, &components)
        .map_err(|e| WorkerError::Spec(e.to_string()))?;
    let staging = publish::staging_dir(&place.cache, &spec.stage)?;
    let cancel = AtomicBool::new(false);
    let started = Instant::now();
    let io = StageIo {
        stage: &spec.stage,
        inputs: &inputs,
        input_names: &input_names,
        out_dir: staging.path(),
        provenance: &provenance,
        project_dir: &spec.project_dir,
        cancel: &cancel,
        progress: &|message, done| tracing::debug!("{message} ({:.0}%)", done * 100.0),
    };
    tracing::info!("{}: computing ({:?}) on {}", spec.stage, spec.task, host());
    let computed = match (spec.task, shard) {
        (Task::Shard { .. }, Some(index)) => kind.run_shard(&spec.params, &io, index),
        (Task::Merge { .. }, _) => kind.merge_shards(&spec.params, &io, &shard_files),
        _ => kind.run(&spec.params, &io),
    };
    if let Err(err) = computed {
        if let JobExchange::Shared { .. } = spec.exchange {
            if let Some(dir) = publish::keep_logs(&place.cache, &spec.stage, staging.path()) {
                eprintln!("the command's stdout and stderr are in {}", dir.display());
            }
        }
        return Err(err.into());
    }
    let records = publish::commit_outputs(&place.cache, staging.path(), &outputs, &stat_cache)?;
    let manifest = Manifest {
        key,
        components,
        outputs: records,
        seconds: started.elapsed().as_secs_f64(),
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    publish::write_manifest(&place.cache, &manifest)?;
    if let Some(remote) = &place.remote {
        remote.upload(&place.cache, &manifest)?;
    }
    tracing::info!(
        "{}: committed {} in {:.2}s",
        spec.stage,
        manifest.key.short(),
        manifest.seconds
    );
    Ok(())
}

fn short(version: &str) -> &str {
    &version[..12.min(version.len())]
}

fn host() -> String {
    std::env::var("SLURMD_NODENAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "this node".into())
}

/// The cache the worker commits to, and the remote when results travel through one.
struct Place {
    cache: Cache,
    remote: Option<Remote>,
    // A node-local cache for the remote exchange, removed when the job ends.
    _scratch: Option<tempfile::TempDir>,
}

impl Place {
    fn open(spec: &JobSpec) -> Result<Self, WorkerError> {
        match &spec.exchange {
            JobExchange::Shared { cache_dir } => Ok(Self {
                cache: Cache::new(cache_dir.clone()),
                remote: None,
                _scratch: None,
            }),
            JobExchange::Remote { url } => {
                let scratch = tempfile::Builder::new()
                    .prefix("pipeline-worker-")
                    .tempdir()
                    .map_err(|e| PublishError::Io {
                        action: "create a scratch folder in",
                        path: std::env::temp_dir(),
                        source: e,
                    })?;
                let signer = match std::env::var("PIPELINE_SIGNING_KEY") {
                    Ok(text) if !text.is_empty() => Some(
                        crate::signing::SigningIdentity::parse(&text)
                            .map_err(|e| WorkerError::Mismatch(e.to_string()))?,
                    ),
                    _ => None,
                };
                let trust = Trust {
                    trusted: Vec::new(),
                    signer,
                };
                Ok(Self {
                    cache: Cache::new(scratch.path().join("cache")),
                    remote: Some(Remote::open(url, true, true, trust)?),
                    _scratch: Some(scratch),
                })
            }
        }
    }

    /// The result for `key`, when it is already cached (a requeued job, a rerun).
    fn existing(
        &self,
        key: &crate::stage_key::KeyHash,
        outputs: &[stages::kind::OutputSpec],
        stat_cache: &StatCache,
    ) -> Result<Option<Manifest>, WorkerError> {
        if let Some(remote) = &self.remote {
            return Ok(remote.fetch(&self.cache, key, outputs, stat_cache)?);
        }
        let manifest = self.cache.read_manifest(key).ok().flatten();
        Ok(manifest.filter(|m| {
            m.matches(outputs)
                && m.outputs.values().all(|r| {
                    self.cache.check_object(&r.object, stat_cache)
                        == crate::cache::ObjectState::Sound
                })
        }))
    }

    /// Every input, checked against its hash; downloaded first from the remote.
    fn inputs(&self, spec: &JobSpec, stat_cache: &StatCache) -> Result<Vec<PathBuf>, WorkerError> {
        let mut paths = Vec::with_capacity(spec.inputs.len());
        for input in &spec.inputs {
            let path = match &self.remote {
                Some(remote) => {
                    remote.fetch_object(&self.cache, &input.object, stat_cache)?;
                    self.cache.object_path(&input.object)
                }
                None => input.path.clone(),
            };
            let fail = |problem: String| WorkerError::Input {
                name: input.name.clone(),
                path: path.display().to_string(),
                problem,
            };
            let hashes = stat_cache
                .hashes(&path)
                .map_err(|e| fail(format!("cannot be read on {}: {e}", host())))?;
            if hashes.object != input.object {
                return Err(fail(format!(
                    "its bytes changed since the controller hashed them (blake3 {} there, {} here)",
                    input.object.short(),
                    hashes.object.short()
                )));
            }
            paths.push(path);
        }
        Ok(paths)
    }

    /// The shard files of every piece, in order, for a merge.
    fn shard_results(
        &self,
        spec: &JobSpec,
        count: usize,
        stat_cache: &StatCache,
    ) -> Result<Vec<PathBuf>, WorkerError> {
        let outputs = shard_outputs();
        (0..count)
            .map(|index| {
                let components: StageKey = shard_components(&spec.components, index, count);
                let key = components.hash();
                let manifest = self.existing(&key, &outputs, stat_cache)?.ok_or_else(|| {
                    WorkerError::Mismatch(format!(
                        "stage `{}`: the result of shard {index} of {count} is not in the cache",
                        spec.stage
                    ))
                })?;
                let record = manifest.outputs.get("shard").ok_or_else(|| {
                    WorkerError::Mismatch(format!("shard {index}: no `{SHARD_FILE}` recorded"))
                })?;
                Ok(self.cache.object_path(&record.object))
            })
            .collect()
    }
}
