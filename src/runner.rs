//! Brings stages up to date: runs stale ones (up to `-j` at a time), restores cached ones,
//! and publishes results through `publish.rs`.
//!
//! Stages are evaluated only once every stage they read from is done, so a stage whose
//! upstream reran but wrote identical data is found up to date (early cutoff). A failing
//! stage stops its dependents; unrelated stages still finish.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use stages::kind::StageIo;

use crate::config::{InputRef, StageConfig};
use crate::lockfile::LockEntry;
use crate::manifest::{Manifest, OutputRecord};
use crate::plan::{Action, Evaluation, Project};
use crate::publish::{self, PublishError};
use crate::remote::Remote;
use crate::stage_key::{write_canonical, KeyHash, StageKey};
use crate::stale_reason::StaleReason;

/// How a stage ended in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Computed.
    Ran,
    /// Copied from the cache.
    Restored,
    /// Nothing to do.
    UpToDate,
    /// The stage failed.
    Failed,
    /// Not attempted: an upstream stage failed or the run was interrupted.
    Skipped,
}

impl Outcome {
    /// The word used in the summary table.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ran => "ran",
            Outcome::Restored => "restored",
            Outcome::UpToDate => "up to date",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

/// One row of the run summary.
#[derive(Debug, Clone, Serialize)]
pub struct StageOutcome {
    /// The stage.
    pub stage: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Wall time spent on it.
    pub seconds: f64,
    /// Why it ran or was restored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<StaleReason>,
    /// The error, for a failed or skipped stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where a restored result came from: `local` cache or `remote` cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Whether every stage succeeded.
    pub ok: bool,
    /// Rows in topological order.
    pub stages: Vec<StageOutcome>,
    /// Whether the user interrupted the run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// Transfers to and from the remote cache, when one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfers: Option<crate::remote::Transfers>,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Stage indices to bring up to date (with their ancestors).
    pub targets: Vec<usize>,
    /// Rerun the targets even if up to date.
    pub force: bool,
    /// How many stages may run at once.
    pub jobs: usize,
    /// Set to stop the run.
    pub cancel: Arc<AtomicBool>,
    /// Only restore (from the local or remote cache); never compute (`pipeline pull`).
    pub restore_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Done(Outcome),
}

struct Finished {
    index: usize,
    staging: tempfile::TempDir,
    seconds: f64,
    result: Result<(), String>,
}

/// Runs the plan for `options` on an opened project (the run lock must be held), consulting
/// `remote` after the local cache when one is given.
pub fn run(project: &mut Project, options: &RunOptions, remote: Option<&Remote>) -> RunReport {
    let selected: BTreeSet<usize> = project.config.dag.with_ancestors(&options.targets);
    let order: Vec<usize> = project
        .config
        .dag
        .order()
        .iter()
        .copied()
        .filter(|i| selected.contains(i))
        .collect();
    let mut states: BTreeMap<usize, State> = order.iter().map(|&i| (i, State::Pending)).collect();
    let mut done: BTreeMap<usize, Evaluation> = BTreeMap::new();
    let mut running: BTreeMap<usize, (Evaluation, Instant)> = BTreeMap::new();
    let mut outcomes: BTreeMap<usize, StageOutcome> = BTreeMap::new();
    let mut lock_updates: Vec<(String, LockEntry)> = Vec::new();
    let (tx, rx) = mpsc::channel::<Finished>();

    loop {
        let mut progressed = false;
        for &index in &order {
            if states[&index] != State::Pending {
                continue;
            }
            let stage = &project.config.stages[index];
            let upstream = project.config.dag.upstream(index);
            if let Some(&failed) = upstream.iter().find(|u| {
                matches!(
                    states.get(u),
                    Some(State::Done(Outcome::Failed | Outcome::Skipped))
                )
            }) {
                let name = &project.config.stages[failed].id;
                outcomes.insert(
                    index,
                    skipped(stage, format!("upstream `{name}` did not finish")),
                );
                states.insert(index, State::Done(Outcome::Skipped));
                progressed = true;
                continue;
            }
            if upstream
                .iter()
                .any(|u| !matches!(states.get(u), Some(State::Done(_))))
            {
                continue;
            }
            if options.cancel.load(Ordering::Relaxed) {
                outcomes.insert(index, skipped(stage, "interrupted".into()));
                states.insert(index, State::Done(Outcome::Skipped));
                progressed = true;
                continue;
            }
            let force = options.force && options.targets.contains(&index);
            let started = Instant::now();
            let evaluation = project.evaluate(index, &done, force);
            match evaluation.action {
                Action::UpToDate => {
                    lock_updates.extend(record_lock(project, stage, &evaluation, None));
                    outcomes.insert(index, row(stage, Outcome::UpToDate, started, Vec::new()));
                    done.insert(index, evaluation);
                    states.insert(index, State::Done(Outcome::UpToDate));
                    progressed = true;
                }
                Action::Restore => {
                    let Some(manifest) = evaluation.manifest.clone() else {
                        continue;
                    };
                    let dir = project.stage_output_dir(stage);
                    match publish::publish_outputs(
                        &project.cache,
                        &dir,
                        &manifest,
                        &project.stat_cache,
                    ) {
                        Ok(()) => {
                            tracing::info!("{}: restored from cache", stage.id);
                            lock_updates.extend(record_lock(project, stage, &evaluation, None));
                            let reasons = evaluation.reasons.clone();
                            let mut r = row(stage, Outcome::Restored, started, reasons);
                            r.source = Some("local");
                            outcomes.insert(index, r);
                            done.insert(index, evaluation);
                            states.insert(index, State::Done(Outcome::Restored));
                        }
                        Err(PublishError::CorruptObject { path }) => {
                            tracing::warn!(
                                "{}: discarding cached result: {} is corrupt",
                                stage.id,
                                project.config.relative(&path)
                            );
                            publish::discard_manifest(&project.cache, &manifest);
                            // Left pending: the next pass finds no manifest and runs it.
                        }
                        Err(err) => {
                            outcomes.insert(index, failed(stage, started, err.to_string()));
                            states.insert(index, State::Done(Outcome::Failed));
                        }
                    }
                    progressed = true;
                }
                Action::Run if stage.external_outputs.is_some() => {
                    lock_updates.extend(record_lock(project, stage, &evaluation, None));
                    let reasons = evaluation.reasons.clone();
                    outcomes.insert(index, row(stage, Outcome::Ran, started, reasons));
                    done.insert(index, evaluation);
                    states.insert(index, State::Done(Outcome::Ran));
                    progressed = true;
                }
                Action::Run => {
                    if let (Some(remote), false, Some((key, _))) =
                        (remote, force, evaluation.key.as_ref())
                    {
                        match fetch_remote(project, stage, remote, key) {
                            Ok(Some(restored)) => {
                                let mut evaluation = evaluation;
                                evaluation.resolved = Some(resolved_of(project, &restored));
                                evaluation.manifest = Some(restored);
                                lock_updates.extend(record_lock(project, stage, &evaluation, None));
                                let mut r = row(
                                    stage,
                                    Outcome::Restored,
                                    started,
                                    evaluation.reasons.clone(),
                                );
                                r.source = Some("remote");
                                outcomes.insert(index, r);
                                done.insert(index, evaluation);
                                states.insert(index, State::Done(Outcome::Restored));
                                progressed = true;
                                continue;
                            }
                            Ok(None) => {}
                            Err(err) if remote.require => {
                                outcomes.insert(
                                    index,
                                    failed(stage, started, format!("{err} (--require-remote)")),
                                );
                                states.insert(index, State::Done(Outcome::Failed));
                                progressed = true;
                                continue;
                            }
                            Err(err) => tracing::warn!("{}: {err}; computing locally", stage.id),
                        }
                    }
                    if options.restore_only {
                        outcomes.insert(index, skipped(stage, "not in the cache".into()));
                        states.insert(index, State::Done(Outcome::Skipped));
                        progressed = true;
                        continue;
                    }
                    if running.len() >= options.jobs.max(1) {
                        continue;
                    }
                    match start(
                        project,
                        index,
                        &evaluation,
                        &done,
                        &options.cancel,
                        tx.clone(),
                    ) {
                        Ok(()) => {
                            running.insert(index, (evaluation, started));
                            states.insert(index, State::Running);
                        }
                        Err(err) => {
                            outcomes.insert(index, failed(stage, started, err.to_string()));
                            states.insert(index, State::Done(Outcome::Failed));
                        }
                    }
                    progressed = true;
                }
                Action::Blocked => {
                    let reason = evaluation
                        .reasons
                        .first()
                        .map_or_else(|| "inputs unavailable".to_owned(), ToString::to_string);
                    outcomes.insert(index, failed(stage, started, reason));
                    states.insert(index, State::Done(Outcome::Failed));
                    progressed = true;
                }
            }
        }
        if progressed {
            continue;
        }
        if running.is_empty() {
            break;
        }
        let Ok(finished) = rx.recv() else {
            break;
        };
        let index = finished.index;
        let Some((evaluation, started)) = running.remove(&index) else {
            continue;
        };
        let stage = &project.config.stages[index];
        match finish(project, stage, evaluation, finished) {
            Ok(evaluation) => {
                if let (Some(remote), Some(manifest)) =
                    (remote.filter(|r| r.push), evaluation.manifest.as_ref())
                {
                    if let Err(err) = remote.upload(&project.cache, manifest) {
                        tracing::warn!("{}: not pushed: {err}", stage.id);
                    }
                }
                lock_updates.extend(record_lock(project, stage, &evaluation, None));
                let reasons = evaluation.reasons.clone();
                outcomes.insert(index, row(stage, Outcome::Ran, started, reasons));
                done.insert(index, evaluation);
                states.insert(index, State::Done(Outcome::Ran));
            }
            Err(message) => {
                tracing::debug!("{}: failed: {message}", stage.id);
                outcomes.insert(index, failed(stage, started, message));
                states.insert(index, State::Done(Outcome::Failed));
            }
        }
    }

    project.lockfile.stages.extend(lock_updates);
    let stages: Vec<StageOutcome> = order.iter().filter_map(|i| outcomes.remove(i)).collect();
    let interrupted = options.cancel.load(Ordering::Relaxed);
    RunReport {
        transfers: remote.map(Remote::transfers),
        ok: !interrupted
            && stages
                .iter()
                .all(|s| !matches!(s.outcome, Outcome::Failed | Outcome::Skipped)),
        stages,
        interrupted,
    }
}

fn row(
    stage: &StageConfig,
    outcome: Outcome,
    started: Instant,
    reasons: Vec<StaleReason>,
) -> StageOutcome {
    StageOutcome {
        stage: stage.id.0.clone(),
        outcome,
        seconds: started.elapsed().as_secs_f64(),
        reasons,
        error: None,
        source: None,
    }
}

/// Downloads `key` from the remote into the local cache and publishes its outputs.
fn fetch_remote(
    project: &Project,
    stage: &StageConfig,
    remote: &Remote,
    key: &KeyHash,
) -> Result<Option<Manifest>, crate::remote::RemoteError> {
    let Some(manifest) = remote.fetch(&project.cache, key)? else {
        return Ok(None);
    };
    let dir = project.stage_output_dir(stage);
    publish::publish_outputs(&project.cache, &dir, &manifest, &project.stat_cache)?;
    tracing::info!("{}: restored from {}", stage.id, remote.url());
    Ok(Some(manifest))
}

/// Where downstream stages find the outputs of a cached result.
pub fn resolved_of(project: &Project, manifest: &Manifest) -> crate::plan::Resolved {
    manifest
        .outputs
        .iter()
        .map(|(name, record)| {
            (
                name.clone(),
                crate::plan::ResolvedOutput {
                    content: record.content,
                    path: project.cache.object_path(&record.object),
                },
            )
        })
        .collect()
}

fn failed(stage: &StageConfig, started: Instant, error: String) -> StageOutcome {
    StageOutcome {
        error: Some(error),
        ..row(stage, Outcome::Failed, started, Vec::new())
    }
}

fn skipped(stage: &StageConfig, why: String) -> StageOutcome {
    StageOutcome {
        stage: stage.id.0.clone(),
        outcome: Outcome::Skipped,
        seconds: 0.0,
        reasons: Vec::new(),
        error: Some(why),
        source: None,
    }
}

/// The `pipeline.*` key-value pairs every Parquet artifact of this result carries.
pub fn provenance(key: &KeyHash, components: &StageKey) -> Vec<(String, String)> {
    let mut params = String::new();
    write_canonical(&components.params, &mut params);
    let inputs = serde_json::to_string(&components.inputs).unwrap_or_default();
    vec![
        ("pipeline.stage".into(), components.stage.clone()),
        ("pipeline.kind".into(), components.kind.clone()),
        ("pipeline.key".into(), key.0.clone()),
        ("pipeline.params".into(), params),
        ("pipeline.inputs".into(), inputs),
        (
            "pipeline.code_version".into(),
            components.code_version.clone(),
        ),
        ("pipeline.version".into(), env!("CARGO_PKG_VERSION").into()),
    ]
}

fn input_paths(
    project: &Project,
    stage: &StageConfig,
    done: &BTreeMap<usize, Evaluation>,
) -> Result<Vec<PathBuf>, String> {
    let mut paths = Vec::new();
    for input in &stage.inputs {
        match input {
            InputRef::File { path, .. } => paths.push(path.clone()),
            InputRef::Upstream { stage: up, output } => {
                let path = project
                    .config
                    .stages
                    .iter()
                    .position(|s| &s.id == up)
                    .and_then(|i| done.get(&i))
                    .and_then(|e| e.resolved.as_ref())
                    .and_then(|r| r.get(output))
                    .map(|o| o.path.clone())
                    .ok_or_else(|| format!("input `{input}` is not available"))?;
                paths.push(path);
            }
        }
    }
    Ok(paths)
}

fn start(
    project: &Project,
    index: usize,
    evaluation: &Evaluation,
    done: &BTreeMap<usize, Evaluation>,
    cancel: &Arc<AtomicBool>,
    tx: mpsc::Sender<Finished>,
) -> Result<(), String> {
    let stage = &project.config.stages[index];
    let (key, components) = evaluation
        .key
        .clone()
        .ok_or_else(|| "stage key unknown".to_owned())?;
    let inputs = input_paths(project, stage, done)?;
    let input_names: Vec<String> = stage.inputs.iter().map(ToString::to_string).collect();
    let staging =
        publish::staging_dir(&project.cache, stage.id.as_str()).map_err(|e| e.to_string())?;
    let provenance = provenance(&key, &components);
    let kind = stage.kind.clone();
    let params = stage.params.clone();
    let name = stage.id.0.clone();
    let cancel = cancel.clone();
    let reasons: Vec<String> = evaluation.reasons.iter().map(ToString::to_string).collect();
    tracing::info!("{name}: running ({})", reasons.join("; "));
    std::thread::Builder::new()
        .name(format!("stage-{name}"))
        .spawn(move || {
            let started = Instant::now();
            let io = StageIo {
                stage: &name,
                inputs: &inputs,
                input_names: &input_names,
                out_dir: staging.path(),
                provenance: &provenance,
                cancel: &cancel,
            };
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| kind.run(&params, &io)));
            let result = match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(err.to_string()),
                Err(panic) => Err(format!(
                    "stage panicked: {}",
                    panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("unknown cause")
                )),
            };
            let _ = tx.send(Finished {
                index,
                staging,
                seconds: started.elapsed().as_secs_f64(),
                result,
            });
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start a thread: {e}"))
}

fn finish(
    project: &Project,
    stage: &StageConfig,
    mut evaluation: Evaluation,
    finished: Finished,
) -> Result<Evaluation, String> {
    finished.result?;
    let (key, components) = evaluation
        .key
        .clone()
        .ok_or_else(|| "stage key unknown".to_owned())?;
    let outputs = publish::commit_outputs(&project.cache, finished.staging.path(), &stage.outputs)
        .map_err(|e| e.to_string())?;
    let manifest = Manifest {
        key,
        components,
        outputs,
        seconds: finished.seconds,
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    publish::write_manifest(&project.cache, &manifest).map_err(|e| e.to_string())?;
    let dir = project.stage_output_dir(stage);
    publish::publish_fresh_outputs(&project.cache, &dir, &manifest, &project.stat_cache)
        .map_err(|e| e.to_string())?;
    tracing::info!("{}: finished in {:.2}s", stage.id, finished.seconds);
    evaluation.resolved = Some(resolved_of(project, &manifest));
    evaluation.manifest = Some(manifest);
    Ok(evaluation)
}

fn record_lock(
    project: &Project,
    stage: &StageConfig,
    evaluation: &Evaluation,
    manifest: Option<&Manifest>,
) -> Option<(String, LockEntry)> {
    let (key, components) = evaluation.key.clone()?;
    let outputs = match manifest.or(evaluation.manifest.as_ref()) {
        Some(m) => m.outputs.clone(),
        None => external_records(project, stage, evaluation),
    };
    Some((
        stage.id.0.clone(),
        LockEntry {
            key,
            components,
            outputs,
        },
    ))
}

fn external_records(
    project: &Project,
    stage: &StageConfig,
    evaluation: &Evaluation,
) -> BTreeMap<String, OutputRecord> {
    let Some(resolved) = &evaluation.resolved else {
        return BTreeMap::new();
    };
    resolved
        .iter()
        .map(|(name, out)| {
            let size = std::fs::metadata(&out.path).map_or(0, |m| m.len());
            let _ = stage;
            (
                name.clone(),
                OutputRecord {
                    file: project.config.relative(&out.path),
                    object: out.content,
                    content: out.content,
                    size,
                },
            )
        })
        .collect()
}
