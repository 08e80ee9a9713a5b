//! The local executor: a stage computes on a thread of its own in this process, into a
//! staging folder of the cache; the runner commits and publishes what it leaves there.
//!
//! Each stage's parallel work runs on a rayon pool of its own, on as many of its threads as the
//! runner grants it (`scheduling.rs`; the rest wait in `thread_gate.rs` until granted). In one
//! shared pool, a network's training loop kept both workers busy with its fine-grained joins
//! while the parallel jobs of a stage beside it (LDA) waited in the pool's queue: LDA took 300 s
//! beside the networks, 7 s alone. Separate pools leave the sharing of the cores to the
//! operating system, which is fair, and the stages' results do not depend on the thread count.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use stages::kind::StageIo;

use crate::executor::thread_gate::ThreadGate;
use crate::plan::{Evaluation, Project};
use crate::provenance;
use crate::publish;
use crate::runner::{input_paths, Observer, StageError};

/// A computation that ended, successfully or not.
pub(crate) struct Finished {
    pub(crate) index: usize,
    pub(crate) staging: tempfile::TempDir,
    pub(crate) seconds: f64,
    pub(crate) result: Result<(), StageError>,
}

/// The threads a stage may use: `granted` of a pool of `all`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Threads {
    pub(crate) granted: usize,
    pub(crate) all: usize,
}

/// Starts computing stage `index` on a new thread, its parallel work on the granted threads
/// of a pool of its own; its end arrives on `tx`. The gate grants it more.
pub(crate) fn start(
    project: &Project,
    index: usize,
    (evaluation, threads): (&Evaluation, Threads),
    done: &BTreeMap<usize, Evaluation>,
    (cancel, observer): (&Arc<AtomicBool>, Option<Observer>),
    tx: mpsc::Sender<Finished>,
) -> Result<Arc<ThreadGate>, StageError> {
    let stage = &project.config.stages[index];
    let (key, components) = evaluation.key().cloned().ok_or_else(|| StageError::Start {
        message: "stage key unknown".into(),
    })?;
    let inputs = input_paths(project, stage, done)?;
    let input_names: Vec<String> = stage.inputs.iter().map(ToString::to_string).collect();
    let staging =
        publish::staging_dir(&project.cache, stage.id.as_str()).map_err(|e| StageError::Start {
            message: e.to_string(),
        })?;
    let provenance = provenance::pairs(&key, &components).map_err(|e| StageError::Start {
        message: e.to_string(),
    })?;
    let kind = stage.kind.clone();
    let params = stage.params.clone();
    let name = stage.id.0.clone();
    let project_dir = project.config.root.clone();
    let cancel = cancel.clone();
    let reasons: Vec<String> = evaluation.reasons.iter().map(ToString::to_string).collect();
    let all = threads.all.max(1);
    let granted = threads.granted.clamp(1, all);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(all)
        .thread_name({
            let name = name.clone();
            move |i| format!("{name}-{i}")
        })
        .build()
        .map_err(|e| StageError::Start {
            message: format!("cannot start the stage's {all} threads: {e}"),
        })?;
    let gate = Arc::new(ThreadGate::default());
    gate.park(&pool, all - granted);
    tracing::info!(
        "{name}: running ({}) on {granted} thread{}",
        reasons.join("; "),
        if granted == 1 { "" } else { "s" }
    );
    if let Some(observer) = &observer {
        let estimate = project
            .lockfile
            .stages
            .get(name.as_str())
            .and_then(|e| e.seconds);
        observer.0.started(&name, estimate);
    }
    let stage_gate = Arc::clone(&gate);
    let spawned = std::thread::Builder::new()
        .name(format!("stage-{name}"))
        .spawn(move || {
            let started = Instant::now();
            let report = |message: &str, done: f64| {
                if let Some(observer) = &observer {
                    observer.0.progress(&name, message, done);
                }
            };
            let io = StageIo {
                stage: &name,
                inputs: &inputs,
                input_names: &input_names,
                out_dir: staging.path(),
                provenance: &provenance,
                project_dir: &project_dir,
                cancel: &cancel,
                progress: &report,
            };
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pool.install(|| kind.run(&params, &io))
            }));
            stage_gate.open();
            let result = match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(StageError::Computation {
                    message: err.to_string(),
                    logs: None,
                }),
                Err(panic) => Err(StageError::Panicked {
                    message: panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("unknown cause")
                        .to_owned(),
                }),
            };
            let _ = tx.send(Finished {
                index,
                staging,
                seconds: started.elapsed().as_secs_f64(),
                result,
            });
        });
    match spawned {
        Ok(_) => Ok(gate),
        Err(e) => {
            gate.open();
            Err(StageError::Start {
                message: format!("cannot start a thread: {e}"),
            })
        }
    }
}
