//! Evaluates each stage's freshness against the cache and `pipeline.lock`.
//!
//! [`Project`] gathers what evaluation reads (configuration, cache, lock file, stat cache);
//! [`Project::evaluate`] decides one stage given its upstream stages' resolved outputs, and
//! [`Project::plan`] walks the whole graph for `status` and `run --dry-run`. The runner uses
//! the same `evaluate` as stages finish, so a plan and the run that follows agree.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cache::{Cache, ObjectState};
use crate::config::{Config, InputRef, StageConfig};
use crate::content_hash::ContentHash;
use crate::fingerprint::compare;
use crate::lockfile::Lockfile;
use crate::manifest::Manifest;
use crate::stage_key::{KeyHash, KeyInput, StageKey, CACHE_FORMAT};
use crate::stale_reason::StaleReason;
use crate::stat_cache::StatCache;

/// Where a downstream stage finds one output, and the content hash its key uses.
#[derive(Debug, Clone)]
pub struct ResolvedOutput {
    /// The content hash (see `content_hash.rs`).
    pub content: ContentHash,
    /// The file to read: a cache object, or an external file.
    pub path: PathBuf,
}

/// A stage's outputs once known.
pub type Resolved = BTreeMap<String, ResolvedOutput>;

/// What must happen to a stage (`run --dry-run`; JSON: `up-to-date`, `restore`, `run`,
/// `run-if-upstream-changes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Nothing: its current result is cached and published.
    UpToDate,
    /// Its current result is cached; copy it to the outputs folder.
    Restore,
    /// Compute it.
    Run,
    /// An upstream stage must run first; whether this one then runs depends on its outputs.
    #[serde(rename = "run-if-upstream-changes")]
    Blocked,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::UpToDate => "up to date",
            Action::Restore => "restore from cache",
            Action::Run => "run",
            Action::Blocked => "run unless upstream outputs are unchanged",
        })
    }
}

/// How `status` shows a stage (JSON: `up-to-date`, `stale`, `never-run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageState {
    /// Its current result is cached and published.
    UpToDate,
    /// It must run or be restored.
    Stale,
    /// No result of it was ever recorded or cached.
    NeverRun,
}

impl std::fmt::Display for StageState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StageState::UpToDate => "up to date",
            StageState::Stale => "stale",
            StageState::NeverRun => "never run",
        })
    }
}

/// A stage's key and its components.
pub type Keyed = (KeyHash, StageKey);

/// What a stage needs, with exactly what the next step needs to do it.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Its current result is cached and published (or, for a source of external files,
    /// recorded): nothing to do.
    UpToDate {
        /// The key.
        key: Keyed,
        /// The cached result (`None` for a source of external files).
        manifest: Option<Manifest>,
        /// Where its outputs are.
        resolved: Resolved,
    },
    /// Its current result is cached; its published copies are missing or edited.
    Restore {
        /// The key.
        key: Keyed,
        /// The cached result to publish.
        manifest: Manifest,
        /// Where its outputs are.
        resolved: Resolved,
    },
    /// A source of external files whose hashes changed: recording them is its whole run.
    RecordSource {
        /// The key.
        key: Keyed,
        /// The files.
        resolved: Resolved,
    },
    /// It must be computed (or fetched from the remote cache).
    Run {
        /// The key.
        key: Keyed,
        /// Objects of the cached result for the key that are missing or corrupt: a run
        /// quarantines them and drops its manifest first.
        damaged: Vec<DamagedObject>,
    },
    /// Its inputs are not known yet (an upstream stage must run) or not available.
    Blocked {
        /// Where the chain of stale stages that blocks it starts (`None`: at this stage).
        root: Option<String>,
    },
}

/// The verdict on one stage, and why.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Why it is not up to date (empty when it is).
    pub reasons: Vec<StaleReason>,
    /// What it needs.
    pub verdict: Verdict,
}

impl Evaluation {
    /// What must happen, as `--dry-run` shows it.
    pub fn action(&self) -> Action {
        match self.verdict {
            Verdict::UpToDate { .. } => Action::UpToDate,
            Verdict::Restore { .. } => Action::Restore,
            Verdict::RecordSource { .. } | Verdict::Run { .. } => Action::Run,
            Verdict::Blocked { .. } => Action::Blocked,
        }
    }

    /// The key, when every input is known.
    pub fn key(&self) -> Option<&Keyed> {
        match &self.verdict {
            Verdict::UpToDate { key, .. }
            | Verdict::Restore { key, .. }
            | Verdict::RecordSource { key, .. }
            | Verdict::Run { key, .. } => Some(key),
            Verdict::Blocked { .. } => None,
        }
    }

    /// The cached result for the key, when there is a usable one.
    pub fn manifest(&self) -> Option<&Manifest> {
        match &self.verdict {
            Verdict::UpToDate { manifest, .. } => manifest.as_ref(),
            Verdict::Restore { manifest, .. } => Some(manifest),
            _ => None,
        }
    }

    /// Where the stage's outputs are, when known without running it.
    pub fn resolved(&self) -> Option<&Resolved> {
        match &self.verdict {
            Verdict::UpToDate { resolved, .. }
            | Verdict::Restore { resolved, .. }
            | Verdict::RecordSource { resolved, .. } => Some(resolved),
            _ => None,
        }
    }

    /// The same stage once its result exists: up to date, with `manifest` (`None` for a
    /// source) and its outputs.
    pub fn completed(self, manifest: Option<Manifest>, resolved: Resolved) -> Option<Self> {
        let key = self.key()?.clone();
        Some(Self {
            reasons: self.reasons,
            verdict: Verdict::UpToDate {
                key,
                manifest,
                resolved,
            },
        })
    }
}

/// An object of a cached result that failed verification.
#[derive(Debug, Clone)]
pub struct DamagedObject {
    /// The output it holds.
    pub output: String,
    /// Its hash (its name in the cache).
    pub object: ContentHash,
    /// Missing or corrupt.
    pub state: ObjectState,
}

/// Everything evaluation reads.
pub struct Project {
    /// The validated configuration.
    pub config: Config,
    /// The cache.
    pub cache: Cache,
    /// `pipeline.lock` as last written.
    pub lockfile: Lockfile,
    /// Where `pipeline.lock` lives.
    pub lockfile_path: PathBuf,
    /// Known file hashes.
    pub stat_cache: StatCache,
}

impl Project {
    /// Opens the project described by `config`.
    pub fn open(config: Config) -> Self {
        let cache = Cache::new(config.cache_dir.clone());
        let lockfile_path = config.root.join("pipeline.lock");
        let lockfile = Lockfile::load(&lockfile_path);
        let stat_cache = StatCache::load(&cache.stat_cache_path());
        Self {
            config,
            cache,
            lockfile,
            lockfile_path,
            stat_cache,
        }
    }

    /// The folder a stage's outputs are published to.
    pub fn stage_output_dir(&self, stage: &StageConfig) -> PathBuf {
        self.config.outputs_dir.join(stage.id.as_str())
    }

    /// The key components of `stage` given its inputs' and code files' hashes.
    fn stage_key(
        &self,
        stage: &StageConfig,
        inputs: Vec<KeyInput>,
        code: Vec<KeyInput>,
    ) -> StageKey {
        let env = stage
            .env
            .iter()
            .map(|name| {
                let value = std::env::var_os(name).map_or_else(
                    || "unset".to_owned(),
                    |v| blake3::hash(v.as_encoded_bytes()).to_hex()[..16].to_owned(),
                );
                (name.clone(), value)
            })
            .collect();
        StageKey {
            format: CACHE_FORMAT,
            stage: stage.id.0.clone(),
            kind: stage.kind.name().to_owned(),
            code_version: stage.kind.code_version(),
            params: key_params(stage),
            inputs,
            code,
            env,
        }
    }

    /// Decides what `index` needs, given the evaluations of the stages before it.
    pub fn evaluate(
        &self,
        index: usize,
        upstream: &BTreeMap<usize, Evaluation>,
        force: bool,
    ) -> Evaluation {
        let stage = &self.config.stages[index];
        let blocked = |reasons: Vec<StaleReason>, root: Option<String>| Evaluation {
            reasons,
            verdict: Verdict::Blocked { root },
        };

        let mut key_inputs = Vec::new();
        for input in &stage.inputs {
            match input {
                InputRef::Upstream { stage: up, output } => {
                    let up_index = self.config.stages.iter().position(|s| &s.id == up);
                    let evaluation = up_index.and_then(|i| upstream.get(&i));
                    match evaluation.and_then(Evaluation::resolved) {
                        Some(resolved) => match resolved.get(output) {
                            Some(out) => key_inputs.push(KeyInput {
                                name: input.to_string(),
                                hash: out.content,
                            }),
                            None => return blocked(vec![StaleReason::ResultNotCached], None),
                        },
                        None => {
                            let root = match evaluation.map(|e| &e.verdict) {
                                Some(Verdict::Blocked { root: Some(root) }) => root.clone(),
                                _ => up.0.clone(),
                            };
                            return blocked(
                                vec![StaleReason::UpstreamStale {
                                    stage: up.0.clone(),
                                    root: root.clone(),
                                }],
                                Some(root),
                            );
                        }
                    }
                }
                InputRef::File { display, path } => match self.stat_cache.hashes(path) {
                    Ok(hashes) => key_inputs.push(KeyInput {
                        name: display.clone(),
                        hash: hashes.content,
                    }),
                    Err(_) => {
                        return blocked(
                            vec![StaleReason::InputMissing {
                                path: display.clone(),
                            }],
                            None,
                        )
                    }
                },
            }
        }

        let mut external_resolved = None;
        if let Some(external) = &stage.external_outputs {
            let paths: Vec<PathBuf> = external.iter().map(|(_, p)| p.clone()).collect();
            let mut resolved = Resolved::new();
            for ((name, path), hashes) in external.iter().zip(self.stat_cache.hash_all(&paths)) {
                let shown = self.config.relative(path);
                match hashes {
                    Ok(h) => {
                        key_inputs.push(KeyInput {
                            name: shown,
                            hash: h.content,
                        });
                        resolved.insert(
                            name.clone(),
                            ResolvedOutput {
                                content: h.content,
                                path: path.clone(),
                            },
                        );
                    }
                    Err(_) => {
                        return blocked(vec![StaleReason::InputMissing { path: shown }], None)
                    }
                }
            }
            external_resolved = Some(resolved);
        }

        let mut code = Vec::new();
        for (display, path) in &stage.code {
            match self.stat_cache.hashes(path) {
                Ok(hashes) => code.push(KeyInput {
                    name: display.clone(),
                    hash: hashes.content,
                }),
                Err(_) => {
                    return blocked(
                        vec![StaleReason::InputMissing {
                            path: display.clone(),
                        }],
                        None,
                    )
                }
            }
        }
        let components = self.stage_key(stage, key_inputs, code);
        let hash = components.hash();
        let recorded = self.lockfile.stages.get(stage.id.as_str());
        let changes = |reasons: &mut Vec<StaleReason>| match recorded {
            Some(entry) if entry.key != hash => {
                reasons.extend(compare(&entry.components, &components))
            }
            Some(_) => {}
            None => reasons.push(StaleReason::NeverRun),
        };
        let mut reasons = Vec::new();
        if force {
            reasons.push(StaleReason::Forced);
        }

        if let Some(resolved) = external_resolved {
            changes(&mut reasons);
            let key = (hash, components);
            let verdict = if reasons.is_empty() {
                Verdict::UpToDate {
                    key,
                    manifest: None,
                    resolved,
                }
            } else {
                Verdict::RecordSource { key, resolved }
            };
            return Evaluation { reasons, verdict };
        }
        if force {
            return Evaluation {
                reasons,
                verdict: Verdict::Run {
                    key: (hash, components),
                    damaged: Vec::new(),
                },
            };
        }

        let run = |reasons: Vec<StaleReason>, key: Keyed, damaged: Vec<DamagedObject>| Evaluation {
            reasons,
            verdict: Verdict::Run { key, damaged },
        };
        let manifest_path = || self.config.relative(&self.cache.manifest_path(&hash));
        match self.cache.read_manifest(&hash) {
            Ok(Some(manifest)) if !manifest.matches(&stage.outputs) => run(
                vec![StaleReason::CachedOutputsDiffer {
                    path: manifest_path(),
                }],
                (hash, components),
                Vec::new(),
            ),
            Ok(Some(manifest)) => {
                let damaged = self.damaged_objects(&manifest);
                if !damaged.is_empty() {
                    let reasons = damaged
                        .iter()
                        .map(|d| StaleReason::CachedObjectDamaged {
                            output: d.output.clone(),
                            object: d.object.short(),
                            problem: d.state.describe().to_owned(),
                        })
                        .collect();
                    return run(reasons, (hash, components), damaged);
                }
                changes(&mut reasons);
                reasons.extend(self.check_published(stage, &manifest));
                let resolved = manifest
                    .outputs
                    .iter()
                    .map(|(name, record)| {
                        (
                            name.clone(),
                            ResolvedOutput {
                                content: record.content,
                                path: self.cache.object_path(&record.object),
                            },
                        )
                    })
                    .collect();
                let key = (hash, components);
                let verdict = if reasons.is_empty() {
                    Verdict::UpToDate {
                        key,
                        manifest: Some(manifest),
                        resolved,
                    }
                } else {
                    Verdict::Restore {
                        key,
                        manifest,
                        resolved,
                    }
                };
                Evaluation { reasons, verdict }
            }
            Ok(None) => {
                changes(&mut reasons);
                if reasons.is_empty() {
                    reasons.push(StaleReason::ResultNotCached);
                }
                run(reasons, (hash, components), Vec::new())
            }
            Err(unreadable) => run(
                vec![StaleReason::ManifestUnreadable {
                    path: self.config.relative(&unreadable.path),
                }],
                (hash, components),
                Vec::new(),
            ),
        }
    }

    /// The objects of `manifest` that are missing or do not match their hashes (in parallel:
    /// a current stat record makes each check one `stat`).
    fn damaged_objects(&self, manifest: &Manifest) -> Vec<DamagedObject> {
        use rayon::prelude::*;
        let records: Vec<(&String, &crate::manifest::OutputRecord)> =
            manifest.outputs.iter().collect();
        records
            .par_iter()
            .filter_map(|(name, record)| {
                match self.cache.check_object(&record.object, &self.stat_cache) {
                    ObjectState::Sound => None,
                    state => Some(DamagedObject {
                        output: (*name).clone(),
                        object: record.object,
                        state,
                    }),
                }
            })
            .collect()
    }

    fn check_published(&self, stage: &StageConfig, manifest: &Manifest) -> Vec<StaleReason> {
        let dir = self.stage_output_dir(stage);
        let mut reasons = Vec::new();
        for spec in &stage.outputs {
            let Some(record) = manifest.outputs.get(&spec.name) else {
                continue;
            };
            let path = dir.join(&spec.file);
            let shown = self.config.relative(&path);
            match self.stat_cache.hashes(&path) {
                Ok(hashes) if hashes.object == record.object => {}
                Ok(_) => reasons.push(StaleReason::OutputModified { path: shown }),
                Err(_) => reasons.push(StaleReason::OutputMissing { path: shown }),
            }
        }
        reasons
    }

    /// How `status` shows stage `index` given its evaluation.
    pub fn state_of(&self, index: usize, evaluation: &Evaluation) -> StageState {
        let stage = &self.config.stages[index];
        if evaluation.action() == Action::UpToDate {
            StageState::UpToDate
        } else if !self.lockfile.stages.contains_key(stage.id.as_str())
            && evaluation.manifest().is_none()
        {
            StageState::NeverRun
        } else {
            StageState::Stale
        }
    }

    /// Evaluates `stages` (indices) in topological order, as `status` and `--dry-run` see them.
    pub fn plan(&self, stages: &[usize], force: &[usize]) -> BTreeMap<usize, Evaluation> {
        let mut evaluations = BTreeMap::new();
        for &index in self.config.dag.order() {
            if !stages.contains(&index) {
                continue;
            }
            let evaluation = self.evaluate(index, &evaluations, force.contains(&index));
            evaluations.insert(index, evaluation);
        }
        evaluations
    }
}

/// The parameters that enter the key: all of them but the ones that only decide how the work
/// is split (`shards`), which the kind vouches never change its result.
fn key_params(stage: &StageConfig) -> serde_json::Value {
    let mut params = stage.params.clone();
    if let Some(map) = params.as_object_mut() {
        for name in stage.kind.scheduling_params() {
            map.remove(*name);
        }
    }
    params
}
