//! The Slurm executor: each stage that must run becomes one batch job (a sharded stage: a
//! job array of its pieces, then a merge job that waits for all of them with `afterok`).
//!
//! The controller submits with `sbatch --parsable` and records the id at once (for
//! cancelling), then asks about every job of the run with one `squeue` per poll, falling back
//! to `sacct` when accounting is on and a job has left the queue. A job Slurm reports ended
//! other than COMPLETED (FAILED, TIMEOUT, CANCELLED, OUT_OF_MEMORY, NODE_FAIL, ...) fails its
//! stage with that state and the tail of its log; one that vanished from Slurm without a
//! result is failed after `vanished_after_seconds`. Dependencies between stages are not
//! handed to Slurm: a stage is submitted when its inputs exist, so early cutoff and restores
//! behave exactly as in a local run.

pub mod commands;
mod script;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use commands::{JobState, StatusLine};
pub use script::render_script;

use super::job_spec::{JobSpec, Task};
use super::resources::Resources;
use super::settings::ExecutorSettings;

/// Every job id this process submitted and has not seen end, so a second Ctrl-C (which exits
/// at once) can still cancel them.
static SUBMITTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Cancels every job this process submitted that is still known to run; for the interrupt
/// handler's last word. Errors are printed, not returned: the process is about to exit.
pub fn cancel_submitted() {
    // A panic elsewhere must not hide the jobs: a poisoned list is still the list.
    let jobs: Vec<String> = match SUBMITTED.lock() {
        Ok(jobs) => jobs.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    if jobs.is_empty() {
        return;
    }
    match commands::cancel(&jobs) {
        Ok(()) => eprintln!("cancelled Slurm jobs {}", jobs.join(", ")),
        Err(err) => eprintln!("{err}"),
    }
}

fn remember(job: &str) {
    if let Ok(mut jobs) = SUBMITTED.lock() {
        jobs.push(job.to_owned());
    }
}

fn forget(job: &str) {
    if let Ok(mut jobs) = SUBMITTED.lock() {
        jobs.retain(|j| j != job);
    }
}

/// How a tracked stage's jobs ended.
#[derive(Debug)]
pub enum JobEnd {
    /// Its last job completed: the result should be in the cache.
    Completed,
    /// A job ended without a result.
    Failed {
        /// The job (`123`, or `124_3` for a piece).
        job: String,
        /// Slurm's state.
        state: String,
        /// Its log file.
        log: PathBuf,
    },
    /// Slurm no longer knows the job; whether a result exists decides.
    Vanished {
        /// The job.
        job: String,
        /// How long it has been unknown.
        unseen: Duration,
    },
}

struct Tracked {
    stage: String,
    /// The job array of a sharded stage, and its size.
    array: Option<(String, usize)>,
    /// The job whose completion means the result is committed (the merge job when sharded).
    main: String,
    last_seen: Instant,
}

/// The jobs of one run.
pub struct SlurmJobs {
    settings: ExecutorSettings,
    worker: PathBuf,
    log_dir: PathBuf,
    tracked: BTreeMap<usize, Tracked>,
    last_poll: Option<Instant>,
    accounting: Option<bool>,
}

impl SlurmJobs {
    /// Ready to submit, with job logs under `default_log_dir` unless `[executor] log_dir`
    /// says otherwise.
    pub fn new(settings: &ExecutorSettings, default_log_dir: &Path) -> Result<Self, String> {
        let worker = match &settings.worker {
            Some(path) => path.clone(),
            None => std::env::current_exe().map_err(|e| {
                format!("cannot tell where this binary is ({e}); set [executor] worker")
            })?,
        };
        let log_dir = settings
            .log_dir
            .clone()
            .unwrap_or_else(|| default_log_dir.to_owned());
        std::fs::create_dir_all(&log_dir).map_err(|e| {
            format!(
                "cannot create the job log folder {}: {e}",
                log_dir.display()
            )
        })?;
        // Slurm opens the log on the node, relative to nothing: give it an absolute path.
        let log_dir = std::path::absolute(&log_dir).unwrap_or(log_dir);
        Ok(Self {
            settings: settings.clone(),
            worker,
            log_dir,
            tracked: BTreeMap::new(),
            last_poll: None,
            accounting: None,
        })
    }

    /// Whether no job is being watched.
    pub fn is_empty(&self) -> bool {
        self.tracked.is_empty()
    }

    /// How long to wait for anything else before the next poll is due.
    pub fn tick(&self) -> Duration {
        Duration::from_secs_f64(self.settings.poll_seconds.clamp(0.05, 0.25))
    }

    /// Submits the job(s) of stage `index`; returns the ids for the log. A sharded spec
    /// (`shards` > 1) becomes a job array and a merge job.
    pub fn submit(
        &mut self,
        index: usize,
        spec: &JobSpec,
        resources: &Resources,
        shards: usize,
    ) -> Result<Vec<String>, String> {
        let stage = spec.stage.clone();
        let mut ids = Vec::new();
        let array = if shards > 1 {
            let piece = JobSpec {
                task: Task::Shard { count: shards },
                ..spec.clone()
            };
            let mut args = self.base_args(&stage, resources, &piece, "%A_%a");
            args.push(format!("--array=0-{}", shards - 1));
            let id = commands::submit(&args, &render_script(&self.worker, &piece)?)?;
            remember(&id);
            ids.push(id.clone());
            Some((id, shards))
        } else {
            None
        };
        let main_spec = match array {
            Some(_) => JobSpec {
                task: Task::Merge { count: shards },
                ..spec.clone()
            },
            None => spec.clone(),
        };
        let mut args = self.base_args(&stage, resources, &main_spec, "%j");
        if let Some((array_id, _)) = &array {
            // Without it, a merge waiting on a failed piece would stay pending forever.
            args.push(format!("--dependency=afterok:{array_id}"));
            args.push("--kill-on-invalid-dep=yes".into());
        }
        let main = match commands::submit(&args, &render_script(&self.worker, &main_spec)?) {
            Ok(id) => id,
            Err(err) => {
                if let Some((array_id, _)) = &array {
                    let _ = commands::cancel(std::slice::from_ref(array_id));
                    forget(array_id);
                }
                return Err(err);
            }
        };
        remember(&main);
        ids.push(main.clone());
        self.tracked.insert(
            index,
            Tracked {
                stage,
                array,
                main,
                last_seen: Instant::now(),
            },
        );
        Ok(ids)
    }

    fn base_args(
        &self,
        stage: &str,
        resources: &Resources,
        spec: &JobSpec,
        log: &str,
    ) -> Vec<String> {
        let mut args = vec![
            format!("--job-name=pipeline:{stage}"),
            format!("--output={}", job_log(&self.log_dir, stage, log).display()),
            format!("--cpus-per-task={}", resources.cpus),
            format!("--mem={}M", resources.mem_mb),
            format!("--time={}", resources.slurm_time()),
        ];
        if let Some(partition) = resources
            .partition
            .as_ref()
            .or(self.settings.partition.as_ref())
        {
            args.push(format!("--partition={partition}"));
        }
        if let Some(account) = &self.settings.account {
            args.push(format!("--account={account}"));
        }
        let workdir = match spec.exchange {
            super::job_spec::JobExchange::Shared { .. } => spec.project_dir.clone(),
            super::job_spec::JobExchange::Remote { .. } => std::env::temp_dir(),
        };
        if let Ok(dir) = std::path::absolute(&workdir) {
            args.push(format!("--chdir={}", dir.display()));
        }
        args.extend(self.settings.sbatch_args.iter().cloned());
        args
    }

    /// Asks Slurm about every watched job (one `squeue`, and one `sacct` for jobs that left
    /// the queue when accounting is on) once `poll_seconds` have passed since the last time;
    /// returns the stages whose jobs ended or vanished.
    pub fn poll(&mut self) -> Result<Vec<(usize, JobEnd)>, String> {
        let due = self
            .last_poll
            .is_none_or(|t| t.elapsed().as_secs_f64() >= self.settings.poll_seconds);
        if !due || self.tracked.is_empty() {
            return Ok(Vec::new());
        }
        self.last_poll = Some(Instant::now());
        let mut jobs: Vec<String> = Vec::new();
        for t in self.tracked.values() {
            jobs.extend(t.array.iter().map(|(id, _)| id.clone()));
            jobs.push(t.main.clone());
        }
        let mut lines = commands::query(&jobs)?;
        let listed = |lines: &[StatusLine], job: &str| lines.iter().any(|l| l.job == job);
        let missing: Vec<String> = jobs
            .iter()
            .filter(|j| !listed(&lines, j))
            .cloned()
            .collect();
        if !missing.is_empty() && self.accounting != Some(false) {
            match commands::accounting(&missing)? {
                Some(found) => {
                    self.accounting = Some(true);
                    lines.extend(found);
                }
                None => self.accounting = Some(false),
            }
        }
        let mut ended = Vec::new();
        for (&index, tracked) in &mut self.tracked {
            let now = Instant::now();
            if let Some((array_id, _)) = &tracked.array {
                let failed_piece =
                    lines
                        .iter()
                        .filter(|l| &l.job == array_id)
                        .find_map(|l| match &l.state {
                            JobState::Ended(state) => Some((l.task, state.clone())),
                            _ => None,
                        });
                if let Some((task, state)) = failed_piece {
                    let job = match task {
                        Some(task) => format!("{array_id}_{task}"),
                        None => array_id.clone(),
                    };
                    let log = job_log(&self.log_dir, &tracked.stage, &job);
                    ended.push((index, JobEnd::Failed { job, state, log }));
                    continue;
                }
            }
            let main = lines.iter().find(|l| l.job == tracked.main);
            match main.map(|l| &l.state) {
                Some(JobState::Active) => tracked.last_seen = now,
                Some(JobState::Completed) => ended.push((index, JobEnd::Completed)),
                Some(JobState::Ended(state)) => ended.push((
                    index,
                    JobEnd::Failed {
                        job: tracked.main.clone(),
                        state: state.clone(),
                        log: job_log(&self.log_dir, &tracked.stage, &tracked.main),
                    },
                )),
                None => ended.push((
                    index,
                    JobEnd::Vanished {
                        job: tracked.main.clone(),
                        unseen: now.duration_since(tracked.last_seen),
                    },
                )),
            }
        }
        Ok(ended)
    }

    /// Stops watching stage `index` (its end has been handled); cancels whatever of it still
    /// runs (the merge job of a failed piece).
    pub fn release(&mut self, index: usize) {
        if let Some(tracked) = self.tracked.remove(&index) {
            let jobs: Vec<String> = tracked
                .array
                .iter()
                .map(|(id, _)| id.clone())
                .chain([tracked.main])
                .collect();
            for job in &jobs {
                forget(job);
            }
        }
    }

    /// Cancels every watched job with one `scancel`; returns their stages.
    pub fn cancel_all(&mut self) -> Vec<usize> {
        let jobs: Vec<String> = self
            .tracked
            .values()
            .flat_map(|t| {
                t.array
                    .iter()
                    .map(|(id, _)| id.clone())
                    .chain([t.main.clone()])
            })
            .collect();
        match commands::cancel(&jobs) {
            Ok(()) => tracing::info!("cancelled Slurm jobs {}", jobs.join(", ")),
            Err(err) => tracing::error!("{err}; cancel jobs {} by hand", jobs.join(", ")),
        }
        let stages: Vec<usize> = self.tracked.keys().copied().collect();
        for index in &stages {
            self.release(*index);
        }
        stages
    }

    /// Cancels the jobs of stage `index` that may still be queued (after a piece failed).
    pub fn cancel_stage(&mut self, index: usize) {
        if let Some(tracked) = self.tracked.get(&index) {
            let _ = commands::cancel(std::slice::from_ref(&tracked.main));
        }
        self.release(index);
    }

    /// How long a job may stay unknown before its stage fails.
    pub fn vanished_after(&self) -> Duration {
        Duration::from_secs_f64(self.settings.vanished_after_seconds)
    }
}

/// Where Slurm writes the log of `job` of `stage` (`job` may be sbatch's `%j` or `%A_%a`).
fn job_log(log_dir: &Path, stage: &str, job: &str) -> PathBuf {
    log_dir.join(format!("{stage}-{job}.log"))
}

/// The last `lines` lines of a job's log, or a note that there is none.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("(no log at {}: {err})", path.display()),
    }
}
