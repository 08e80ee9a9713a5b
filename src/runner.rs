//! Brings stages up to date: runs stale ones (up to `-j` at a time), restores cached ones,
//! and publishes results through `publish.rs`.
//!
//! Stages are evaluated only once every stage they read from is done, so a stage whose
//! upstream reran but wrote identical data is found up to date (early cutoff). A failing
//! stage stops its dependents; unrelated stages still finish.
//!
//! [`Scheduler`] walks the graph; each evaluated stage goes to one function per action
//! (`up_to_date`, `restore`, `record_external`, `compute`). A stage that must compute waits
//! as ready until a pass settles nothing else; then the ready stages start, longest chain
//! first, each with its share of the threads (`executor/scheduling.rs`). Every stage ends in
//! [`Scheduler::settle`], the one place that records an outcome. A cached result whose objects
//! fail verification is quarantined and dropped before the stage runs, so it is recomputed (or
//! re-fetched from the remote cache) as if it had never been cached.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::cache::ObjectState;
use crate::config::{InputRef, StageConfig};
use crate::executor::job_spec::{JobExchange, JobInput, JobSpec, Task, SPEC_FORMAT};
use crate::executor::local::{self, Finished, Threads};
use crate::executor::scheduling;
use crate::executor::slurm::{self, JobEnd, SlurmJobs};
use crate::executor::thread_gate::ThreadGate;
use crate::executor::{Exchange, ExecutorKind};
use crate::lockfile::LockEntry;
use crate::manifest::{Manifest, OutputRecord};
use crate::plan::{Evaluation, Project, Verdict};
use crate::publish::{self, PublishError};
use crate::remote::Remote;
use crate::stage_key::KeyHash;
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

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Ran => "ran",
            Outcome::Restored => "restored",
            Outcome::UpToDate => "up to date",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        })
    }
}

/// Where a restored result came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreSource {
    /// The local cache.
    Local,
    /// The remote cache.
    Remote,
}

/// Why a stage failed or was not attempted, for people (`Display`) and machines (`--json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "cause", rename_all = "kebab-case")]
pub enum StageError {
    /// The computation returned an error.
    #[error("{message}{}", logs.as_ref().map(|l| format!("\n(its full stdout and stderr are in {l})")).unwrap_or_default())]
    Computation {
        /// The stage's own message.
        message: String,
        /// Where the output of a failed command was kept.
        #[serde(skip_serializing_if = "Option::is_none")]
        logs: Option<String>,
    },
    /// The computation panicked (a defect; the run goes on).
    #[error("stage panicked: {message}")]
    Panicked {
        /// The panic message.
        message: String,
    },
    /// Committing, restoring or publishing the result failed.
    #[error("{message}")]
    Publish {
        /// What failed, with the path.
        message: String,
    },
    /// The remote cache failed and `--require-remote` was given.
    #[error("{message} (--require-remote)")]
    Remote {
        /// What failed.
        message: String,
    },
    /// The stage's inputs are not available.
    #[error("{reason}")]
    Blocked {
        /// Why.
        reason: String,
    },
    /// The stage could not be started.
    #[error("cannot start the stage: {message}")]
    Start {
        /// Why.
        message: String,
    },
    /// An upstream stage failed or was skipped.
    #[error("upstream `{stage}` did not finish")]
    UpstreamFailed {
        /// The upstream stage.
        stage: String,
    },
    /// The stage's cluster job ended without a result.
    #[error("Slurm job {job} ended {state}; the end of its log ({log}):\n{tail}")]
    Job {
        /// The job id (`123`, or `124_3` for one piece of a sharded stage).
        job: String,
        /// Slurm's state: FAILED, TIMEOUT, CANCELLED, OUT_OF_MEMORY, NODE_FAIL, ...
        state: String,
        /// The job's log file.
        log: String,
        /// Its last lines.
        tail: String,
    },
    /// The stage's cluster job is gone and left no result.
    #[error("{message}")]
    Vanished {
        /// What happened.
        message: String,
    },
    /// The user interrupted the run.
    #[error("interrupted")]
    Interrupted,
    /// `pipeline pull` found no cached result.
    #[error("not in the cache")]
    NotCached,
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
    /// The error message, for a failed or skipped stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The error as data, for a failed or skipped stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<StageError>,
    /// Where a restored result came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<RestoreSource>,
    /// The Slurm jobs that computed it (`--executor slurm`): the job array of a sharded
    /// stage, then its merge job.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<String>,
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
    /// A failure after the stages finished (writing `pipeline.lock`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Who is told what the run does as it does it (the live view on a terminal).
pub trait RunObserver: Send + Sync {
    /// The run will settle `stages` stages.
    fn planned(&self, _stages: usize) {}
    /// `stage` started computing; it took `estimate` seconds last time.
    fn started(&self, _stage: &str, _estimate: Option<f64>) {}
    /// `stage` reported progress: a message and the share done, 0 to 1.
    fn progress(&self, _stage: &str, _message: &str, _done: f64) {}
    /// `stage` ended with `outcome`.
    fn settled(&self, _stage: &str, _outcome: Outcome) {}
}

/// A shared observer.
#[derive(Clone)]
pub struct Observer(pub Arc<dyn RunObserver>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
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
    /// Told of every start, progress report and outcome.
    pub observer: Option<Observer>,
    /// Where stages that must run are computed.
    pub executor: ExecutorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    /// Must compute; waits for a slot.
    Ready,
    Running,
    Done(Outcome),
}

/// How a stage ended, with what its dependents need.
enum Settled {
    /// Done with a result: `evaluation.resolved()` tells dependents where its outputs are.
    Done {
        outcome: Outcome,
        evaluation: Box<Evaluation>,
        source: Option<RestoreSource>,
    },
    /// Failed or skipped.
    NotDone { outcome: Outcome, error: StageError },
}

/// Whether a pass over the pending stages changed anything.
#[derive(PartialEq, Eq)]
enum Step {
    Progressed,
    Waiting,
}

/// Runs the plan for `options` on an opened project (the run lock must be held), consulting
/// `remote` after the local cache when one is given.
pub fn run(project: &mut Project, options: &RunOptions, remote: Option<&Remote>) -> RunReport {
    let (report, lock_updates) = {
        let mut scheduler = Scheduler::new(project, options, remote);
        scheduler.drive();
        scheduler.into_report()
    };
    project.lockfile.stages.extend(lock_updates);
    report
}

struct Scheduler<'a> {
    project: &'a Project,
    options: &'a RunOptions,
    remote: Option<&'a Remote>,
    order: Vec<usize>,
    states: BTreeMap<usize, State>,
    done: BTreeMap<usize, Evaluation>,
    running: BTreeMap<usize, (Evaluation, Instant)>,
    /// Stages that must compute, with their evaluation, waiting for a slot.
    ready: BTreeMap<usize, Evaluation>,
    /// Threads granted to each stage computing locally, and the gate that grants it more.
    threads: BTreeMap<usize, (usize, Arc<ThreadGate>)>,
    /// The threads shared out between stages: the global pool's (`RAYON_NUM_THREADS`).
    pool_threads: usize,
    /// Each stage's estimated seconds to the end of the pipeline, by stage index.
    chain: Vec<f64>,
    outcomes: BTreeMap<usize, StageOutcome>,
    lock_updates: Vec<(String, LockEntry)>,
    tx: mpsc::Sender<Finished>,
    rx: mpsc::Receiver<Finished>,
    /// The cluster jobs of this run (`--executor slurm`), or why they cannot be submitted.
    slurm: Option<Result<SlurmJobs, String>>,
    /// The job ids of each submitted stage, for its row of the report.
    job_ids: BTreeMap<usize, Vec<String>>,
}

impl<'a> Scheduler<'a> {
    fn new(project: &'a Project, options: &'a RunOptions, remote: Option<&'a Remote>) -> Self {
        let selected: BTreeSet<usize> = project.config.dag.with_ancestors(&options.targets);
        let order: Vec<usize> = project
            .config
            .dag
            .order()
            .iter()
            .copied()
            .filter(|i| selected.contains(i))
            .collect();
        let states = order.iter().map(|&i| (i, State::Pending)).collect();
        let (tx, rx) = mpsc::channel();
        if let Some(observer) = &options.observer {
            observer.0.planned(order.len());
        }
        let slurm = (options.executor == ExecutorKind::Slurm).then(|| {
            let logs = project.cache.logs_dir().join("slurm");
            SlurmJobs::new(&project.config.executor, &logs)
        });
        let estimates: Vec<f64> = project
            .config
            .stages
            .iter()
            .map(|stage| {
                project
                    .lockfile
                    .stages
                    .get(stage.id.as_str())
                    .and_then(|e| e.seconds)
                    .unwrap_or(stage.resources.time_seconds as f64)
            })
            .collect();
        let dag = &project.config.dag;
        let chain = scheduling::critical_paths(dag.order(), |i| dag.downstream(i), &estimates);
        Self {
            project,
            options,
            remote,
            order,
            states,
            done: BTreeMap::new(),
            running: BTreeMap::new(),
            ready: BTreeMap::new(),
            threads: BTreeMap::new(),
            pool_threads: rayon::current_num_threads(),
            chain,
            outcomes: BTreeMap::new(),
            lock_updates: Vec::new(),
            tx,
            rx,
            slurm,
            job_ids: BTreeMap::new(),
        }
    }

    fn slurm_jobs(&mut self) -> Option<&mut SlurmJobs> {
        self.slurm.as_mut().and_then(|s| s.as_mut().ok())
    }

    fn drive(&mut self) {
        loop {
            let mut progressed = false;
            for index in self.order.clone() {
                if self.states[&index] == State::Pending && self.step(index) == Step::Progressed {
                    progressed = true;
                }
            }
            if progressed || self.launch() {
                continue;
            }
            self.grant_free_threads();
            if self.running.is_empty() {
                break;
            }
            match self
                .slurm_jobs()
                .filter(|j| !j.is_empty())
                .map(|j| j.tick())
            {
                Some(tick) => match self.rx.recv_timeout(tick) {
                    Ok(finished) => self.on_finished(finished),
                    Err(mpsc::RecvTimeoutError::Timeout) => self.poll_jobs(),
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
                None => {
                    let Ok(finished) = self.rx.recv() else {
                        break;
                    };
                    self.on_finished(finished);
                }
            }
        }
    }

    /// Cancels every job on Ctrl-C, else asks Slurm (when a poll is due) and settles the
    /// stages whose jobs ended.
    fn poll_jobs(&mut self) {
        let cancelled = self.options.cancel.load(Ordering::Relaxed);
        let Some(jobs) = self.slurm_jobs() else {
            return;
        };
        if cancelled {
            let stages = jobs.cancel_all();
            for index in stages {
                let started = self.running.remove(&index).map(|(_, s)| s);
                self.fail(index, started, StageError::Interrupted);
            }
            return;
        }
        let ended = match jobs.poll() {
            Ok(ended) => ended,
            Err(err) => {
                // A slurmctld hiccup is not a stage failure; the next poll asks again.
                tracing::warn!("{err}");
                return;
            }
        };
        let grace = jobs.vanished_after();
        for (index, end) in ended {
            match end {
                JobEnd::Completed => self.on_committed(index, None),
                JobEnd::Failed { job, state, log } => {
                    if let Some(jobs) = self.slurm_jobs() {
                        jobs.cancel_stage(index);
                    }
                    let started = self.running.remove(&index).map(|(_, s)| s);
                    let error = StageError::Job {
                        tail: slurm::log_tail(&log, 20),
                        job,
                        state,
                        log: self.project.config.relative(&log),
                    };
                    self.fail(index, started, error);
                }
                JobEnd::Vanished { job, unseen } => {
                    let message = format!(
                        "Slurm job {job} is no longer known to Slurm and left no result (waited {:.0} s)",
                        unseen.as_secs_f64()
                    );
                    if self.result_exists(index) {
                        self.on_committed(index, None);
                    } else if unseen >= grace {
                        self.on_committed(index, Some(message));
                    }
                }
            }
        }
    }

    /// Whether the committed result of running stage `index` can be found.
    fn result_exists(&self, index: usize) -> bool {
        let Some(key) = self.running.get(&index).and_then(|(e, _)| e.key()) else {
            return false;
        };
        let stage = self.stage(index);
        match self.project.config.executor.exchange {
            Exchange::SharedFolder => self
                .project
                .cache
                .read_manifest(&key.0)
                .ok()
                .flatten()
                .is_some_and(|m| m.matches(&stage.outputs)),
            Exchange::Remote => self.remote.is_some_and(|r| r.has_manifest(&key.0)),
        }
    }

    /// A worker committed stage `index` to the cache: publishes it as a local run would.
    /// `missing` is the error to give when the result cannot be found.
    fn on_committed(&mut self, index: usize, missing: Option<String>) {
        if let Some(jobs) = self.slurm_jobs() {
            jobs.release(index);
        }
        let Some((evaluation, started)) = self.running.remove(&index) else {
            return;
        };
        let stage = self.stage(index);
        match collect_committed(self.project, stage, evaluation, self.remote) {
            Ok(Some(evaluation)) => {
                // With the remote exchange the worker pushed the result itself.
                let push = self.project.config.executor.exchange == Exchange::SharedFolder;
                self.settle_ran(index, started, evaluation, push);
            }
            Ok(None) => {
                let message = missing.unwrap_or_else(|| {
                    "its Slurm job completed but its result is not in the cache".into()
                });
                self.fail(index, Some(started), StageError::Vanished { message });
            }
            Err(error) => self.fail(index, Some(started), error),
        }
    }

    /// Submits stage `index` as a Slurm job.
    fn submit(&mut self, index: usize, evaluation: &Evaluation) -> Result<(), StageError> {
        let stage = self.stage(index);
        let mut spec = job_spec(self.project, stage, evaluation, &self.done, self.remote)?;
        spec.force = self.options.force && self.options.targets.contains(&index);
        let shards = stage.kind.shards(&stage.params);
        let jobs = match &mut self.slurm {
            Some(Ok(jobs)) => jobs,
            Some(Err(message)) => {
                return Err(StageError::Start {
                    message: message.clone(),
                })
            }
            None => {
                return Err(StageError::Start {
                    message: "no Slurm executor".into(),
                })
            }
        };
        let ids = jobs
            .submit(index, &spec, &stage.resources, shards)
            .map_err(|message| StageError::Start { message })?;
        let reasons: Vec<String> = evaluation.reasons.iter().map(ToString::to_string).collect();
        tracing::info!(
            "{}: submitted as Slurm job {} ({}; {})",
            stage.id,
            ids.join(" + "),
            stage.resources,
            reasons.join("; ")
        );
        self.job_ids.insert(index, ids);
        if let Some(observer) = &self.options.observer {
            let estimate = self
                .project
                .lockfile
                .stages
                .get(stage.id.as_str())
                .and_then(|e| e.seconds);
            observer.0.started(stage.id.as_str(), estimate);
        }
        Ok(())
    }

    fn into_report(mut self) -> (RunReport, Vec<(String, LockEntry)>) {
        let stages: Vec<StageOutcome> = self
            .order
            .iter()
            .filter_map(|i| self.outcomes.remove(i))
            .collect();
        let interrupted = self.options.cancel.load(Ordering::Relaxed);
        let report = RunReport {
            transfers: self.remote.map(Remote::transfers),
            ok: !interrupted
                && stages
                    .iter()
                    .all(|s| !matches!(s.outcome, Outcome::Failed | Outcome::Skipped)),
            stages,
            interrupted,
            error: None,
        };
        (report, self.lock_updates)
    }

    fn stage(&self, index: usize) -> &'a StageConfig {
        &self.project.config.stages[index]
    }

    /// The one place where a stage's outcome is recorded.
    fn settle(&mut self, index: usize, started: Option<Instant>, settled: Settled) {
        let stage = self.stage(index);
        let seconds = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        let row = match settled {
            Settled::Done {
                outcome,
                evaluation,
                source,
            } => {
                self.lock_updates
                    .extend(record_lock(self.project, stage, &evaluation));
                let row = StageOutcome {
                    stage: stage.id.0.clone(),
                    outcome,
                    seconds,
                    reasons: evaluation.reasons.clone(),
                    error: None,
                    cause: None,
                    source,
                    jobs: self.job_ids.remove(&index).into_iter().flatten().collect(),
                };
                self.done.insert(index, *evaluation);
                row
            }
            Settled::NotDone { outcome, error } => {
                if outcome == Outcome::Failed {
                    tracing::debug!("{}: failed: {error}", stage.id);
                }
                StageOutcome {
                    stage: stage.id.0.clone(),
                    outcome,
                    seconds,
                    reasons: Vec::new(),
                    error: Some(error.to_string()),
                    cause: Some(error),
                    source: None,
                    jobs: self.job_ids.remove(&index).into_iter().flatten().collect(),
                }
            }
        };
        if let Some(observer) = &self.options.observer {
            observer.0.settled(&row.stage, row.outcome);
        }
        self.states.insert(index, State::Done(row.outcome));
        self.outcomes.insert(index, row);
    }

    fn fail(&mut self, index: usize, started: Option<Instant>, error: StageError) {
        self.settle(
            index,
            started,
            Settled::NotDone {
                outcome: Outcome::Failed,
                error,
            },
        );
    }

    fn skip(&mut self, index: usize, error: StageError) {
        self.settle(
            index,
            None,
            Settled::NotDone {
                outcome: Outcome::Skipped,
                error,
            },
        );
    }

    fn step(&mut self, index: usize) -> Step {
        let upstream = self.project.config.dag.upstream(index);
        if let Some(&failed) = upstream.iter().find(|u| {
            matches!(
                self.states.get(u),
                Some(State::Done(Outcome::Failed | Outcome::Skipped))
            )
        }) {
            let stage = self.stage(failed).id.0.clone();
            self.skip(index, StageError::UpstreamFailed { stage });
            return Step::Progressed;
        }
        if upstream
            .iter()
            .any(|u| !matches!(self.states.get(u), Some(State::Done(_))))
        {
            return Step::Waiting;
        }
        if self.options.cancel.load(Ordering::Relaxed) {
            self.skip(index, StageError::Interrupted);
            return Step::Progressed;
        }
        let force = self.options.force && self.options.targets.contains(&index);
        let started = Instant::now();
        let evaluation = self.project.evaluate(index, &self.done, force);
        match &evaluation.verdict {
            Verdict::UpToDate { .. } => {
                self.settle(
                    index,
                    Some(started),
                    Settled::Done {
                        outcome: Outcome::UpToDate,
                        evaluation: Box::new(evaluation),
                        source: None,
                    },
                );
                Step::Progressed
            }
            Verdict::Restore { .. } => {
                self.restore(index, started, evaluation);
                Step::Progressed
            }
            Verdict::RecordSource { .. } => {
                self.settle(
                    index,
                    Some(started),
                    Settled::Done {
                        outcome: Outcome::Ran,
                        evaluation: Box::new(evaluation),
                        source: None,
                    },
                );
                Step::Progressed
            }
            Verdict::Run { .. } => self.compute(index, started, evaluation, force),
            Verdict::Blocked { .. } => {
                let reason = evaluation
                    .reasons
                    .first()
                    .map_or_else(|| "inputs unavailable".to_owned(), ToString::to_string);
                self.fail(index, Some(started), StageError::Blocked { reason });
                Step::Progressed
            }
        }
    }

    /// Copies a cached result to the outputs folder. An object that turns out corrupt on the
    /// way is quarantined and the stage is left pending: the next pass finds no cached result
    /// and computes it.
    fn restore(&mut self, index: usize, started: Instant, evaluation: Evaluation) {
        let stage = self.stage(index);
        let Verdict::Restore { manifest, .. } = &evaluation.verdict else {
            self.fail(
                index,
                Some(started),
                StageError::Publish {
                    message: "no cached result to restore".into(),
                },
            );
            return;
        };
        let cache = &self.project.cache;
        let manifest = manifest.clone();
        match publish_cached(self.project, stage, &manifest) {
            Ok(()) => {
                tracing::info!("{}: restored from cache", stage.id);
                self.settle(
                    index,
                    Some(started),
                    Settled::Done {
                        outcome: Outcome::Restored,
                        evaluation: Box::new(evaluation),
                        source: Some(RestoreSource::Local),
                    },
                );
            }
            Err(PublishError::CorruptObject { .. }) => {
                let damaged: Vec<_> = manifest
                    .outputs
                    .iter()
                    .filter(|(_, r)| {
                        cache.check_object(&r.object, &self.project.stat_cache)
                            != ObjectState::Sound
                    })
                    .map(|(name, r)| (name.clone(), r.object, ObjectState::Corrupt))
                    .collect();
                self.drop_damaged(stage, &manifest.key, &damaged);
            }
            Err(err) => self.fail(
                index,
                Some(started),
                StageError::Publish {
                    message: err.to_string(),
                },
            ),
        }
    }

    /// Quarantines the corrupt objects of a cached result and drops its manifest, so the
    /// result counts as never cached.
    fn drop_damaged(
        &self,
        stage: &StageConfig,
        key: &KeyHash,
        damaged: &[(String, crate::content_hash::ContentHash, ObjectState)],
    ) {
        let cache = &self.project.cache;
        for (output, object, state) in damaged {
            let shown = self.project.config.relative(&cache.object_path(object));
            match state {
                ObjectState::Corrupt => match publish::quarantine_object(cache, object) {
                    Ok(moved) => tracing::warn!(
                        "{}: cache object {shown} (output `{output}`) is corrupt: moved to {}; the result will be recomputed",
                        stage.id,
                        self.project.config.relative(&moved)
                    ),
                    Err(err) => tracing::warn!(
                        "{}: cache object {shown} (output `{output}`) is corrupt and could not be quarantined: {err}",
                        stage.id
                    ),
                },
                ObjectState::Missing => tracing::warn!(
                    "{}: cache object {shown} (output `{output}`) is missing; the result will be recomputed",
                    stage.id
                ),
                ObjectState::Sound => {}
            }
        }
        publish::discard_manifest(cache, key);
    }

    /// Brings a stage that must run up to date: from the remote cache if it has the key,
    /// otherwise by computing it on a thread of its own.
    fn compute(
        &mut self,
        index: usize,
        started: Instant,
        evaluation: Evaluation,
        force: bool,
    ) -> Step {
        let stage = self.stage(index);
        let Verdict::Run {
            key: (key, _),
            damaged,
        } = &evaluation.verdict
        else {
            self.fail(
                index,
                Some(started),
                StageError::Start {
                    message: "the stage has no key to run with".into(),
                },
            );
            return Step::Progressed;
        };
        if !damaged.is_empty() {
            let damaged: Vec<_> = damaged
                .iter()
                .map(|d| (d.output.clone(), d.object, d.state))
                .collect();
            self.drop_damaged(stage, key, &damaged);
        }
        if let (Some(remote), false) = (self.remote, force) {
            match fetch_remote(self.project, stage, remote, key) {
                Ok(Some(restored)) => {
                    let resolved = resolved_of(self.project, &restored);
                    if let Some(evaluation) = evaluation.completed(Some(restored), resolved) {
                        self.settle(
                            index,
                            Some(started),
                            Settled::Done {
                                outcome: Outcome::Restored,
                                evaluation: Box::new(evaluation),
                                source: Some(RestoreSource::Remote),
                            },
                        );
                    }
                    return Step::Progressed;
                }
                Ok(None) => {}
                Err(err) if remote.require => {
                    let message = err.to_string();
                    self.fail(index, Some(started), StageError::Remote { message });
                    return Step::Progressed;
                }
                Err(err) => tracing::warn!("{}: {err}; computing locally", stage.id),
            }
        }
        if self.options.restore_only {
            self.skip(index, StageError::NotCached);
            return Step::Progressed;
        }
        self.ready.insert(index, evaluation);
        self.states.insert(index, State::Ready);
        Step::Progressed
    }

    /// Starts as many ready stages as there are free slots, longest chain first, each local
    /// one on its share of the threads left by those running. Whether anything started or
    /// ended.
    fn launch(&mut self) -> bool {
        if self.ready.is_empty() {
            return false;
        }
        if self.options.cancel.load(Ordering::Relaxed) {
            for index in std::mem::take(&mut self.ready).into_keys() {
                self.skip(index, StageError::Interrupted);
            }
            return true;
        }
        let slots = self.options.jobs.max(1).saturating_sub(self.running.len());
        let ready: Vec<usize> = self.ready.keys().copied().collect();
        let position = |index: usize| self.order.iter().position(|&i| i == index);
        let picked = scheduling::pick(&ready, slots, &self.chain, |i| {
            position(i).unwrap_or(usize::MAX)
        });
        let all = self.pool_threads;
        let shares = scheduling::shares(self.free_threads(), picked.len());
        for (index, threads) in picked.iter().copied().zip(shares) {
            let Some(evaluation) = self.ready.remove(&index) else {
                continue;
            };
            let started = Instant::now();
            let started_job = if self.slurm.is_some() {
                self.submit(index, &evaluation)
            } else {
                local::start(
                    self.project,
                    index,
                    (
                        &evaluation,
                        Threads {
                            granted: threads,
                            all,
                        },
                    ),
                    &self.done,
                    (&self.options.cancel, self.options.observer.clone()),
                    self.tx.clone(),
                )
                .map(|gate| {
                    self.threads.insert(index, (threads, gate));
                })
            };
            match started_job {
                Ok(()) => {
                    self.running.insert(index, (evaluation, started));
                    self.states.insert(index, State::Running);
                }
                Err(error) => self.fail(index, Some(started), error),
            }
        }
        !picked.is_empty()
    }

    /// The pool's threads not granted to a running stage.
    fn free_threads(&self) -> usize {
        let granted: usize = self.threads.values().map(|(granted, _)| granted).sum();
        self.pool_threads.saturating_sub(granted)
    }

    /// With no stage waiting to start, hands the free threads to the running stages, longest
    /// chain first: a stage started beside others need not finish on its share alone.
    fn grant_free_threads(&mut self) {
        let mut free = self.free_threads();
        if free == 0 || !self.ready.is_empty() {
            return;
        }
        let all = self.pool_threads;
        let mut running: Vec<usize> = self.threads.keys().copied().collect();
        running.sort_by(|&a, &b| self.chain[b].total_cmp(&self.chain[a]));
        for index in running {
            let stage = self.stage(index);
            let Some((granted, gate)) = self.threads.get_mut(&index) else {
                continue;
            };
            let more = free.min(all.saturating_sub(*granted));
            if more == 0 {
                continue;
            }
            gate.grant(more);
            *granted += more;
            free -= more;
            tracing::info!("{}: now on {granted} threads", stage.id);
        }
    }

    /// Records a computed result, first uploading it when `push` and the remote wants it.
    fn settle_ran(&mut self, index: usize, started: Instant, evaluation: Evaluation, push: bool) {
        if let (Some(remote), Some(manifest), true) =
            (self.remote.filter(|r| r.push), evaluation.manifest(), push)
        {
            if let Err(err) = remote.upload(&self.project.cache, manifest) {
                tracing::warn!("{}: not pushed: {err}", self.stage(index).id);
            }
        }
        self.settle(
            index,
            Some(started),
            Settled::Done {
                outcome: Outcome::Ran,
                evaluation: Box::new(evaluation),
                source: None,
            },
        );
    }

    fn on_finished(&mut self, finished: Finished) {
        let index = finished.index;
        self.threads.remove(&index);
        let Some((evaluation, started)) = self.running.remove(&index) else {
            return;
        };
        let stage = self.stage(index);
        match finish(self.project, stage, evaluation, finished) {
            Ok(evaluation) => self.settle_ran(index, started, evaluation, true),
            Err(error) => self.fail(index, Some(started), error),
        }
    }
}

/// The outputs a worker committed for a running stage, published; `Ok(None)` when the cache
/// (or the remote) has no result for its key.
fn collect_committed(
    project: &Project,
    stage: &StageConfig,
    evaluation: Evaluation,
    remote: Option<&Remote>,
) -> Result<Option<Evaluation>, StageError> {
    let unknown_key = || StageError::Start {
        message: "stage key unknown".into(),
    };
    let (key, _) = evaluation.key().cloned().ok_or_else(unknown_key)?;
    let manifest = match (project.config.executor.exchange, remote) {
        (Exchange::Remote, Some(remote)) => {
            fetch_remote(project, stage, remote, &key).map_err(|e| StageError::Remote {
                message: e.to_string(),
            })?
        }
        _ => {
            let Some(manifest) = project
                .cache
                .read_manifest(&key)
                .map_err(|e| StageError::Publish {
                    message: format!("the manifest {} cannot be read", e.path.display()),
                })?
                .filter(|m| m.matches(&stage.outputs))
            else {
                return Ok(None);
            };
            // Written by another process: verified on the way out like any cached result.
            publish_cached(project, stage, &manifest).map_err(|e| StageError::Publish {
                message: e.to_string(),
            })?;
            Some(manifest)
        }
    };
    let Some(manifest) = manifest else {
        return Ok(None);
    };
    tracing::info!(
        "{}: finished in {:.2}s on the cluster",
        stage.id,
        manifest.seconds
    );
    let resolved = resolved_of(project, &manifest);
    evaluation
        .completed(Some(manifest), resolved)
        .map(Some)
        .ok_or_else(unknown_key)
}

/// What the worker of stage `stage` needs; with the remote exchange, its inputs are uploaded
/// first so the node can fetch them.
fn job_spec(
    project: &Project,
    stage: &StageConfig,
    evaluation: &Evaluation,
    done: &BTreeMap<usize, Evaluation>,
    remote: Option<&Remote>,
) -> Result<JobSpec, StageError> {
    let start_error = |message: String| StageError::Start { message };
    let (key, components) = evaluation
        .key()
        .cloned()
        .ok_or_else(|| start_error("stage key unknown".into()))?;
    let paths = input_paths(project, stage, done)?;
    let exchange = match project.config.executor.exchange {
        Exchange::SharedFolder => JobExchange::Shared {
            cache_dir: std::path::absolute(project.cache.dir())
                .map_err(|e| start_error(format!("cannot resolve the cache folder: {e}")))?,
        },
        Exchange::Remote => JobExchange::Remote {
            url: remote
                .ok_or_else(|| {
                    start_error(
                        "[executor] cache = \"remote\" needs a remote cache ([cache] remote, --remote or PIPELINE_REMOTE)".into(),
                    )
                })?
                .url()
                .to_owned(),
        },
    };
    let mut inputs = Vec::with_capacity(paths.len());
    for (input, path) in stage.inputs.iter().zip(paths) {
        let object = project
            .stat_cache
            .hashes(&path)
            .map_err(|e| start_error(format!("cannot hash input `{input}`: {e}")))?
            .object;
        if let (Exchange::Remote, Some(remote)) = (project.config.executor.exchange, remote) {
            remote
                .put_object(&path, &object)
                .map_err(|e| StageError::Remote {
                    message: format!("cannot upload input `{input}` for the cluster: {e}"),
                })?;
        }
        let path = std::path::absolute(&path).unwrap_or(path);
        inputs.push(JobInput {
            name: input.to_string(),
            path,
            object,
        });
    }
    Ok(JobSpec {
        format: SPEC_FORMAT,
        stage: stage.id.0.clone(),
        kind: stage.kind.name().to_owned(),
        code_version: components.code_version.clone(),
        params: stage.params.clone(),
        inputs,
        outputs: stage
            .outputs
            .iter()
            .map(|o| (o.name.clone(), o.file.clone()))
            .collect(),
        key,
        components,
        project_dir: std::path::absolute(&project.config.root)
            .unwrap_or_else(|_| project.config.root.clone()),
        exchange,
        task: Task::Whole,
        force: false,
    })
}

/// Downloads `key` from the remote into the local cache and publishes its outputs.
fn fetch_remote(
    project: &Project,
    stage: &StageConfig,
    remote: &Remote,
    key: &KeyHash,
) -> Result<Option<Manifest>, crate::remote::RemoteError> {
    let Some(manifest) = remote.fetch(&project.cache, key, &stage.outputs, &project.stat_cache)?
    else {
        return Ok(None);
    };
    publish_cached(project, stage, &manifest)?;
    tracing::info!("{}: restored from {}", stage.id, remote.url());
    Ok(Some(manifest))
}

/// Copies the outputs of a cached result (`manifest`) to the stage's folder, verifying each
/// object on the way.
fn publish_cached(
    project: &Project,
    stage: &StageConfig,
    manifest: &Manifest,
) -> Result<(), PublishError> {
    publish::publish_outputs(
        &project.cache,
        &project.stage_output_dir(stage),
        &stage.outputs,
        manifest,
        &project.stat_cache,
    )
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

pub(crate) fn input_paths(
    project: &Project,
    stage: &StageConfig,
    done: &BTreeMap<usize, Evaluation>,
) -> Result<Vec<PathBuf>, StageError> {
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
                    .and_then(Evaluation::resolved)
                    .and_then(|r| r.get(output))
                    .map(|o| o.path.clone())
                    .ok_or_else(|| StageError::Blocked {
                        reason: format!("input `{input}` is not available"),
                    })?;
                paths.push(path);
            }
        }
    }
    Ok(paths)
}

fn finish(
    project: &Project,
    stage: &StageConfig,
    evaluation: Evaluation,
    finished: Finished,
) -> Result<Evaluation, StageError> {
    if let Err(mut error) = finished.result {
        if let StageError::Computation { logs, .. } = &mut error {
            *logs = publish::keep_logs(&project.cache, stage.id.as_str(), finished.staging.path())
                .map(|dir| project.config.relative(&dir));
        }
        return Err(error);
    }
    let publish_error = |e: PublishError| StageError::Publish {
        message: e.to_string(),
    };
    let unknown_key = || StageError::Start {
        message: "stage key unknown".into(),
    };
    let (key, components) = evaluation.key().cloned().ok_or_else(unknown_key)?;
    let committing = Instant::now();
    let outputs = publish::commit_outputs(
        &project.cache,
        finished.staging.path(),
        &stage.outputs,
        &project.stat_cache,
    )
    .map_err(publish_error)?;
    let manifest = Manifest {
        key,
        components,
        outputs,
        seconds: finished.seconds,
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    publish::write_manifest(&project.cache, &manifest).map_err(publish_error)?;
    let committed = committing.elapsed();
    let dir = project.stage_output_dir(stage);
    publish::publish_fresh_outputs(
        &project.cache,
        &dir,
        &stage.outputs,
        &manifest,
        &project.stat_cache,
    )
    .map_err(publish_error)?;
    tracing::debug!(
        "{}: outputs hashed and stored in {:.2}s, published in {:.2}s",
        stage.id,
        committed.as_secs_f64(),
        (committing.elapsed() - committed).as_secs_f64()
    );
    tracing::info!("{}: finished in {:.2}s", stage.id, finished.seconds);
    let resolved = resolved_of(project, &manifest);
    evaluation
        .completed(Some(manifest), resolved)
        .ok_or_else(unknown_key)
}

fn record_lock(
    project: &Project,
    stage: &StageConfig,
    evaluation: &Evaluation,
) -> Option<(String, LockEntry)> {
    let (key, components) = evaluation.key().cloned()?;
    let outputs = match evaluation.manifest() {
        Some(m) => m.outputs.clone(),
        None => external_records(project, evaluation),
    };
    // Tenths of a second: enough for an estimate, and a rerun as fast as the last one
    // leaves the lock file unchanged.
    let seconds = evaluation
        .manifest()
        .map(|m| (m.seconds * 10.0).round() / 10.0);
    Some((
        stage.id.0.clone(),
        LockEntry {
            key,
            components,
            outputs,
            seconds,
        },
    ))
}

fn external_records(project: &Project, evaluation: &Evaluation) -> BTreeMap<String, OutputRecord> {
    let Some(resolved) = evaluation.resolved() else {
        return BTreeMap::new();
    };
    resolved
        .iter()
        .map(|(name, out)| {
            let size = std::fs::metadata(&out.path).map_or(0, |m| m.len());
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
