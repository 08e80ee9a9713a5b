//! The command line: argument definitions (clap) and the glue from each command to the
//! engine. Results go to stdout; logs and errors go to stderr.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::config::Config;
use crate::config_error::{suggest, ConfigErrors};
use crate::dag::DagFormat;
use crate::error::{Exit, UsageError};
use crate::executor::ExecutorKind;
use crate::plan::{Action, Evaluation, Project};
use crate::publish;
use crate::registry::Registry;
use crate::remote::Remote;
use crate::run_lock::RunLock;
use crate::runner::{self, Outcome, RestoreSource, RunOptions, RunReport};

/// A batch data pipeline with content-hashed stage caching.
#[derive(Debug, Parser)]
#[command(name = "pipeline", version, about, max_term_width = 100)]
pub struct Cli {
    /// The pipeline file.
    #[arg(
        long,
        short = 'c',
        global = true,
        default_value = "pipeline.toml",
        value_name = "FILE"
    )]
    pub config: PathBuf,
    /// More log output (-v: debug, -vv: trace).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors on stderr.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Override a parameter of the pipeline file for this command (the value is TOML:
    /// `--set knn_full.k_max=5`, `--set classifier.hidden=[256]`); repeatable.
    #[arg(long = "set", global = true, value_name = "STAGE.KEY=VALUE")]
    pub set: Vec<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the remote cache is and how to use it.
#[derive(Debug, Clone, clap::Args)]
pub struct RemoteArgs {
    /// Remote cache URL (`s3://bucket/prefix`, `file:///path`); overrides `PIPELINE_REMOTE`
    /// and `[cache] remote`.
    #[arg(long, value_name = "URL")]
    pub remote: Option<String>,
    /// Upload results computed here (also `PIPELINE_PUSH=1` or `[cache] push = true`).
    #[arg(long)]
    pub push: bool,
    /// Fail instead of computing locally when the remote cannot be reached.
    #[arg(long)]
    pub require_remote: bool,
}

impl RemoteArgs {
    fn open(&self, config: &Config) -> anyhow::Result<Option<Remote>> {
        let url = self
            .remote
            .clone()
            .or_else(|| {
                std::env::var("PIPELINE_REMOTE")
                    .ok()
                    .filter(|v| !v.is_empty())
            })
            .or_else(|| config.remote.clone());
        let Some(url) = url else {
            if self.require_remote {
                anyhow::bail!(UsageError::NoRemote);
            }
            return Ok(None);
        };
        let env_push = std::env::var("PIPELINE_PUSH")
            .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
        let signer = match std::env::var("PIPELINE_SIGNING_KEY") {
            Ok(text) if !text.is_empty() => Some(crate::signing::SigningIdentity::parse(&text)?),
            _ => None,
        };
        let trust = crate::remote::Trust {
            trusted: config.trusted_keys.clone(),
            signer,
        };
        let remote = Remote::open(
            &url,
            self.push || env_push || config.push,
            self.require_remote,
            trust,
        )?;
        Ok(Some(remote))
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring stages (default: all) and the stages they depend on up to date.
    Run {
        /// Stages to bring up to date; their stale upstream stages run first.
        stages: Vec<String>,
        /// Rerun the named stages (or all) even if up to date.
        #[arg(long)]
        force: bool,
        /// Print what would happen, and why, without doing it.
        #[arg(long)]
        dry_run: bool,
        /// How many independent stages may run at once.
        #[arg(long, short = 'j', default_value_t = 2, value_name = "N")]
        jobs: usize,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Where stages that must run are computed (default: `[executor] kind`, else local).
        #[arg(long, value_enum, value_name = "KIND")]
        executor: Option<ExecutorKind>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Compute one stage of a cluster job from the job spec on stdin (what a batch script
    /// submitted by `--executor slurm` runs on a node).
    #[command(hide = true)]
    Worker {
        /// Read the job spec from this file instead of stdin.
        #[arg(long, value_name = "FILE")]
        spec: Option<PathBuf>,
        /// The piece of a sharded stage (default: `SLURM_ARRAY_TASK_ID`).
        #[arg(long, value_name = "N")]
        shard: Option<usize>,
    },
    /// Upload the cached results of stages (default: all) to the remote cache.
    Push {
        /// Stages to push.
        stages: Vec<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Download and restore stages (default: all) from the remote cache; computes nothing.
    Pull {
        /// Stages to restore, with the stages they depend on.
        stages: Vec<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Show every stage as up to date, stale or never run, with the reasons.
    Status {
        /// Only these stages.
        stages: Vec<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the stage graph.
    Dag {
        /// Output format.
        #[arg(long, value_enum, default_value_t = DagFormat::Text)]
        format: DagFormat,
    },
    /// Show a Parquet file's schema, row count, row groups and provenance.
    Inspect {
        /// The Parquet file.
        file: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what each stage takes on disk: its cached results and its published outputs.
    Du {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the first rows of a Parquet output as a table.
    Show {
        /// The output, as `STAGE:OUTPUT` (`ingest:tracks`).
        output: String,
        /// How many rows.
        #[arg(long, default_value_t = 10, value_name = "N")]
        head: usize,
        /// Which columns, comma-separated (default: the first few).
        #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
        columns: Vec<String>,
        /// Print the rows as a JSON array of objects.
        #[arg(long)]
        json: bool,
    },
    /// Validate the pipeline file and exit.
    Check,
    /// Print a new key pair for signing pushed results (`[cache] trusted_keys`,
    /// `PIPELINE_SIGNING_KEY`).
    Keygen,
    /// Hash every cache object and manifest; report corrupt, missing, orphaned and
    /// quarantined entries.
    Verify {
        /// Drop what cannot be trusted, so the next run recomputes it.
        #[arg(long)]
        repair: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove cache entries that no lock file references (this project's `pipeline.lock`,
    /// and any given with --keep-lock).
    Gc {
        /// Print what would be removed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also keep everything another lock file references (repeatable).
        #[arg(long, value_name = "FILE")]
        keep_lock: Vec<PathBuf>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the evaluate stage's metrics, or their differences from another run's.
    Metrics {
        /// Another run's `metrics.json` to compare with.
        #[arg(long, value_name = "OTHER_METRICS_JSON")]
        diff: Option<PathBuf>,
        /// The metrics file (default: the evaluate stage's published `metrics.json`).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Every value, not only each model stage's headline figures.
        #[arg(long)]
        all: bool,
    },
}

/// Runs the parsed command line and returns the exit code.
pub fn execute(cli: Cli) -> anyhow::Result<Exit> {
    let registry = Registry::builtin();
    match cli.command {
        Command::Inspect { file, json } => {
            let inspection = crate::inspect::inspect(&file)?;
            if json {
                print_out(&format!("{}\n", serde_json::to_string_pretty(&inspection)?))
            } else {
                print_out(&inspection.render())
            }
        }
        Command::Metrics { diff, file, all } => {
            let file = match file {
                Some(file) => file,
                None => {
                    let config = load(&cli.config, &cli.set, &registry)?;
                    let stage = config
                        .stages
                        .iter()
                        .find(|s| s.kind.name() == "evaluate")
                        .map_or("evaluate", |s| s.id.as_str());
                    config.outputs_dir.join(stage).join("metrics.json")
                }
            };
            use crate::metrics_view as view;
            let this = view::load(&file)?;
            let other = diff.map(|path| view::load(&path)).transpose()?;
            let text = match (all, other) {
                (true, Some(other)) => {
                    view::render_diff(&view::flatten(&this), &view::flatten(&other))
                }
                (true, None) => view::render(&view::flatten(&this)),
                (false, Some(other)) => {
                    view::render_summary_diff(&view::headlines(&this), &view::headlines(&other))
                }
                (false, None) => view::render_summary(&view::headlines(&this)),
            };
            print_out(&text)
        }
        Command::Verify { repair, json } => {
            let config = load(&cli.config, &cli.set, &registry)?;
            verify(config, repair, json)
        }
        Command::Gc {
            dry_run,
            keep_lock,
            json,
        } => {
            let config = load(&cli.config, &cli.set, &registry)?;
            gc(config, dry_run, &keep_lock, json)
        }
        Command::Show {
            output,
            head,
            columns,
            json,
        } => {
            let config = load(&cli.config, &cli.set, &registry)?;
            let path = output_path(&config, &output)?;
            let preview = crate::show::preview(&path, head, &columns)?;
            if json {
                print_out(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&preview.to_json())?
                ))
            } else {
                print_out(&preview.render())
            }
        }
        Command::Du { json } => {
            let project = Project::open(load(&cli.config, &cli.set, &registry)?);
            let usage = crate::du::measure(&project);
            if json {
                print_out(&format!("{}\n", serde_json::to_string_pretty(&usage)?))
            } else {
                print_out(&usage.render())
            }
        }
        Command::Keygen => {
            let identity = crate::signing::SigningIdentity::generate()
                .map_err(|e| anyhow::anyhow!("cannot draw a random key: {e}"))?;
            print_out(&format!(
                "public key (add it to [cache] trusted_keys): {}\nsecret key (set it as PIPELINE_SIGNING_KEY on machines that push): {}\n",
                identity.public(),
                identity.secret_text()
            ))
        }
        Command::Check => {
            let config = load(&cli.config, &cli.set, &registry)?;
            eprintln!(
                "{}: {} stages, configuration is valid",
                cli.config.display(),
                config.stages.len()
            );
            Ok(Exit::Success)
        }
        Command::Dag { format } => {
            let config = load(&cli.config, &cli.set, &registry)?;
            print_out(&config.dag.render(format))
        }
        Command::Status { stages, json } => {
            let config = load(&cli.config, &cli.set, &registry)?;
            let selected = resolve_targets(&config, &stages)?;
            let project = Project::open(config);
            status(&project, &selected, json)
        }
        Command::Worker { spec, shard } => worker(spec.as_deref(), shard, &registry),
        Command::Run {
            stages,
            force,
            dry_run,
            jobs,
            json,
            executor,
            remote,
        } => {
            let config = load(&cli.config, &cli.set, &registry)?;
            let targets = resolve_targets(&config, &stages)?;
            if dry_run {
                let project = Project::open(config);
                return dry_run_plan(&project, &targets, force, json);
            }
            let remote = remote.open(&config)?;
            let executor = executor.unwrap_or(config.executor.kind);
            run_locked(
                config,
                &targets,
                (force, jobs, false, executor),
                remote.as_ref(),
                json,
            )
        }
        Command::Pull { stages, remote } => {
            let config = load(&cli.config, &cli.set, &registry)?;
            let targets = resolve_targets(&config, &stages)?;
            let remote = remote.open(&config)?.ok_or(UsageError::NoRemote)?;
            run_locked(
                config,
                &targets,
                (false, 1, true, ExecutorKind::Local),
                Some(&remote),
                false,
            )
        }
        Command::Push { stages, remote } => {
            let config = load(&cli.config, &cli.set, &registry)?;
            let targets = resolve_targets(&config, &stages)?;
            let remote = remote.open(&config)?.ok_or(UsageError::NoRemote)?;
            push(config, &targets, &remote)
        }
    }
}

fn lock_project(config: Config) -> anyhow::Result<(RunLock, Project)> {
    let cache_dir = config.cache_dir.clone();
    let lock_display = config.relative(&cache_dir.join("lock"));
    let lock = RunLock::acquire(&cache_dir.join("lock"), &lock_display)
        .with_context(|| format!("cannot lock {lock_display}"))?;
    // Freshness is decided only now that no other run can change the cache.
    let project = Project::open(config);
    publish::clean_leftovers(&project.cache, &project.config.outputs_dir);
    Ok((lock, project))
}

/// The published file of `STAGE:OUTPUT`, which must be a Parquet output.
fn output_path(config: &Config, reference: &str) -> Result<PathBuf, UsageError> {
    let not_a_table = |message: String| UsageError::NotATable { message };
    let (stage_name, output) = reference.split_once(':').ok_or_else(|| {
        not_a_table(format!(
            "`{reference}` is not STAGE:OUTPUT (e.g. ingest:tracks)"
        ))
    })?;
    let stage = config
        .stages
        .iter()
        .find(|s| s.id.as_str() == stage_name)
        .ok_or_else(|| UsageError::UnknownStage {
            name: stage_name.to_owned(),
            config: config.file.display().to_string(),
            suggestion: suggest(stage_name, config.stage_names()),
        })?;
    let spec = stage
        .outputs
        .iter()
        .find(|o| o.name == output)
        .ok_or_else(|| {
            let names: Vec<&str> = stage.outputs.iter().map(|o| o.name.as_str()).collect();
            not_a_table(format!(
                "stage `{stage_name}` has no output `{output}`{} (it writes: {})",
                suggest(output, names.iter().copied())
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default(),
                names.join(", ")
            ))
        })?;
    if !spec.file.ends_with(".parquet") {
        return Err(not_a_table(format!(
            "`{reference}` is `{}`, not a Parquet table",
            spec.file
        )));
    }
    let path = match &stage.external_outputs {
        Some(files) => files
            .iter()
            .find(|(name, _)| name == output)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| not_a_table(format!("`{reference}` names no file")))?,
        None => config.outputs_dir.join(stage.id.as_str()).join(&spec.file),
    };
    if !path.is_file() {
        return Err(not_a_table(format!(
            "`{}` is not there yet: run `pipeline run {stage_name}` first",
            config.relative(&path)
        )));
    }
    Ok(path)
}

fn verify(config: Config, repair: bool, json: bool) -> anyhow::Result<Exit> {
    // Checking reads only; repairing writes into the cache, so it waits for any run.
    let (_lock, project) = if repair {
        let (lock, project) = lock_project(config)?;
        (Some(lock), project)
    } else {
        (None, Project::open(config))
    };
    let relative = |p: &std::path::Path| project.config.relative(p);
    let report = crate::verify::verify(&project.cache, repair, &relative)?;
    if json {
        print_out(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        print_out(&report.render())?;
    }
    Ok(if report.has_problems() && !report.repaired {
        Exit::StageFailed
    } else {
        Exit::Success
    })
}

fn gc(config: Config, dry_run: bool, keep_locks: &[PathBuf], json: bool) -> anyhow::Result<Exit> {
    let (_lock, project) = lock_project(config)?;
    let own = project.config.relative(&project.lockfile_path);
    let mut locks = Vec::new();
    if project.lockfile_path.exists() {
        locks.push((
            own,
            crate::lockfile::Lockfile::read_strict(&project.lockfile_path)
                .map_err(anyhow::Error::msg)?,
        ));
    } else {
        tracing::warn!("{own} does not exist: nothing of this project is kept");
    }
    for path in keep_locks {
        let lock = crate::lockfile::Lockfile::read_strict(path).map_err(anyhow::Error::msg)?;
        locks.push((path.display().to_string(), lock));
    }
    let report = crate::gc::collect(&project.cache, &locks, dry_run)?;
    if json {
        print_out(&format!("{}\n", serde_json::to_string_pretty(&report)?))
    } else {
        print_out(&report.render())
    }
}

fn push(config: Config, targets: &[usize], remote: &Remote) -> anyhow::Result<Exit> {
    let (_lock, project) = lock_project(config)?;
    let selected: Vec<usize> = targets.to_vec();
    let evaluations = project.plan(&(0..project.config.stages.len()).collect::<Vec<_>>(), &[]);
    let mut out = String::new();
    let mut failed = false;
    for index in selected {
        let name = project.config.stages[index].id.as_str();
        let Some(manifest) = evaluations.get(&index).and_then(Evaluation::manifest) else {
            let _ = writeln!(
                out,
                "{name}: nothing cached for the current key (run it first)"
            );
            continue;
        };
        match remote.upload(&project.cache, manifest) {
            Ok(()) => {
                let _ = writeln!(out, "{name}: pushed");
            }
            Err(err) => {
                failed = true;
                eprintln!("error: {name}: {err}");
            }
        }
    }
    let t = remote.transfers();
    let _ = writeln!(
        out,
        "uploaded {} objects, {} bytes to {}",
        t.uploaded_objects,
        t.uploaded_bytes,
        remote.url()
    );
    print_out(&out)?;
    Ok(if failed {
        Exit::StageFailed
    } else {
        Exit::Success
    })
}

fn run_locked(
    config: Config,
    targets: &[usize],
    (force, jobs, restore_only, executor): (bool, usize, bool, ExecutorKind),
    remote: Option<&Remote>,
    json: bool,
) -> anyhow::Result<Exit> {
    let cancel = Arc::new(AtomicBool::new(false));
    install_interrupt_handler(&cancel);
    let (_lock, mut project) = lock_project(config)?;
    let view = crate::live_view::LiveView::on_terminal();
    let options = RunOptions {
        targets: targets.to_vec(),
        force,
        jobs,
        cancel: cancel.clone(),
        restore_only,
        executor,
        observer: view
            .clone()
            .map(|v| runner::Observer(v as Arc<dyn runner::RunObserver>)),
    };
    let mut report = runner::run(&mut project, &options, remote);
    if let Some(view) = &view {
        view.close();
    }
    if let Some(bytes) = project.stat_cache.to_json_if_changed() {
        // Only a hint: losing it costs a rehash, never a wrong result.
        let _ = publish::write_atomic(&project.cache.stat_cache_path(), &bytes);
    }
    if let Err(err) = project.lockfile.save(&project.lockfile_path) {
        // The results are cached and published; only the record of them failed. The report
        // still goes out (with `ok: false`), and the error is said once, by `report_run`.
        report.ok = false;
        report.error = Some(format!(
            "cannot write {}: {err}",
            project.config.relative(&project.lockfile_path)
        ));
    }
    report_run(&project, targets, &report, json)
}

fn load(
    path: &std::path::Path,
    overrides: &[String],
    registry: &Registry,
) -> Result<Config, ConfigErrors> {
    Config::load_with(path, overrides, registry)
}

fn resolve_targets(config: &Config, names: &[String]) -> Result<Vec<usize>, UsageError> {
    if names.is_empty() {
        return Ok((0..config.stages.len()).collect());
    }
    names
        .iter()
        .map(|name| {
            config
                .stages
                .iter()
                .position(|s| s.id.as_str() == name)
                .ok_or_else(|| UsageError::UnknownStage {
                    name: name.clone(),
                    config: config.file.display().to_string(),
                    suggestion: suggest(name, config.stage_names()),
                })
        })
        .collect()
}

fn install_interrupt_handler(cancel: &Arc<AtomicBool>) {
    let cancel = cancel.clone();
    let _ = ctrlc::set_handler(move || {
        if cancel.swap(true, Ordering::SeqCst) {
            // Second Ctrl-C: leave now, cancelling any cluster job first. Staging folders are
            // cleaned by the next run.
            crate::executor::slurm::cancel_submitted();
            std::process::exit(130);
        }
        eprintln!("interrupted: stopping the running stages (Ctrl-C again to quit now)");
    });
}

/// `pipeline worker`: the exit status tells the controller whether the result is committed;
/// the error goes to stderr, which Slurm keeps in the job's log.
fn worker(
    spec: Option<&std::path::Path>,
    shard: Option<usize>,
    registry: &Registry,
) -> anyhow::Result<Exit> {
    use std::io::Read as _;
    let text = match spec {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the job spec {}", path.display()))?,
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the job spec from stdin")?;
            text
        }
    };
    let spec = crate::executor::worker::parse_spec(&text)?;
    let shard = match shard {
        Some(shard) => Some(shard),
        None => match std::env::var("SLURM_ARRAY_TASK_ID") {
            Ok(id) => Some(
                id.trim()
                    .parse()
                    .with_context(|| format!("SLURM_ARRAY_TASK_ID is not a number: `{id}`"))?,
            ),
            Err(_) => None,
        },
    };
    crate::executor::worker::run(&spec, registry, shard)
        .with_context(|| format!("stage `{}` failed", spec.stage))?;
    Ok(Exit::Success)
}

/// Writes to stdout; a closed pipe (`pipeline status | head`) is not an error.
fn print_out(text: &str) -> anyhow::Result<Exit> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(Exit::Success),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(Exit::Success),
        Err(err) => Err(err).context("cannot write to stdout"),
    }
}

fn status(project: &Project, selected: &[usize], json: bool) -> anyhow::Result<Exit> {
    let all: Vec<usize> = (0..project.config.stages.len()).collect();
    let evaluations = project.plan(&all, &[]);
    let order: Vec<usize> = project
        .config
        .dag
        .order()
        .iter()
        .copied()
        .filter(|i| selected.contains(i))
        .collect();
    if json {
        let rows: Vec<_> = order
            .iter()
            .filter_map(|&i| evaluations.get(&i).map(|e| (i, e)))
            .map(|(i, e)| {
                let stage = &project.config.stages[i];
                json!({
                    "stage": stage.id.as_str(),
                    "kind": stage.kind.name(),
                    "state": project.state_of(i, e),
                    "reasons": e.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "details": e.reasons,
                })
            })
            .collect();
        return print_out(&format!("{}\n", serde_json::to_string_pretty(&rows)?));
    }
    let width = name_width(project, &order);
    let mut out = String::new();
    for &i in &order {
        let Some(e) = evaluations.get(&i) else {
            continue;
        };
        let stage = &project.config.stages[i];
        let state = project.state_of(i, e);
        let reasons: Vec<String> = e.reasons.iter().map(ToString::to_string).collect();
        let mut line = format!("{:width$}  {state}", stage.id.as_str());
        // "never run: never run" says nothing twice.
        let redundant =
            reasons.len() == 1 && e.reasons[0] == crate::stale_reason::StaleReason::NeverRun;
        if !reasons.is_empty() && !redundant {
            let _ = write!(line, ": {}", reasons.join("; "));
        }
        if e.action() == Action::Restore {
            line.push_str(" (cached result available)");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    print_out(&out)
}

fn name_width(project: &Project, indices: &[usize]) -> usize {
    indices
        .iter()
        .map(|&i| project.config.stages[i].id.as_str().len())
        .max()
        .unwrap_or(5)
        .max(5)
}

fn dry_run_plan(
    project: &Project,
    targets: &[usize],
    force: bool,
    json: bool,
) -> anyhow::Result<Exit> {
    let selected: Vec<usize> = project
        .config
        .dag
        .with_ancestors(targets)
        .into_iter()
        .collect();
    let forced: Vec<usize> = if force { targets.to_vec() } else { Vec::new() };
    let evaluations = project.plan(&selected, &forced);
    let order: Vec<usize> = project
        .config
        .dag
        .order()
        .iter()
        .copied()
        .filter(|i| evaluations.contains_key(i))
        .collect();
    if json {
        let rows: Vec<_> = order
            .iter()
            .map(|i| {
                let e = &evaluations[i];
                json!({
                    "stage": project.config.stages[*i].id.as_str(),
                    "action": e.action(),
                    "reasons": e.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })
            })
            .collect();
        let doc = json!({"ok": true, "dry_run": true, "stages": rows});
        return print_out(&format!("{}\n", serde_json::to_string_pretty(&doc)?));
    }
    let width = name_width(project, &order);
    let mut out = String::new();
    for &i in &order {
        let e = &evaluations[&i];
        let what = e.action();
        let reasons: Vec<String> = e.reasons.iter().map(ToString::to_string).collect();
        let mut line = format!("{:width$}  {what}", project.config.stages[i].id.as_str());
        if !reasons.is_empty() {
            let _ = write!(line, ": {}", reasons.join("; "));
        }
        out.push_str(&line);
        out.push('\n');
    }
    print_out(&out)
}

fn report_run(
    project: &Project,
    targets: &[usize],
    report: &RunReport,
    json: bool,
) -> anyhow::Result<Exit> {
    let exit = if report.interrupted {
        Exit::Interrupted
    } else if report.ok {
        Exit::Success
    } else {
        Exit::StageFailed
    };
    if let Some(error) = &report.error {
        eprintln!("error: {error}");
    }
    for row in &report.stages {
        if row.outcome == Outcome::Failed {
            eprintln!(
                "error: stage `{}` failed: {}",
                row.stage,
                row.error.as_deref().unwrap_or("unknown error")
            );
        }
    }
    // Stages downstream of the targets were left alone; say which are now stale.
    let downstream = project.config.dag.descendants(targets);
    if !downstream.is_empty() {
        let all: Vec<usize> = (0..project.config.stages.len()).collect();
        let evaluations = project.plan(&all, &[]);
        let stale: Vec<&str> = downstream
            .iter()
            .filter(|i| {
                !targets.contains(i)
                    && evaluations
                        .get(i)
                        .is_some_and(|e| e.action() != Action::UpToDate)
            })
            .map(|&i| project.config.stages[i].id.as_str())
            .collect();
        if !stale.is_empty() {
            eprintln!("note: downstream stages left stale: {}", stale.join(", "));
        }
    }
    if json {
        print_out(&format!("{}\n", serde_json::to_string_pretty(report)?))?;
        return Ok(exit);
    }
    let width = report
        .stages
        .iter()
        .map(|s| s.stage.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!("{:width$}  {:10}  {:>8}\n", "stage", "outcome", "seconds");
    for row in &report.stages {
        let label = match (row.outcome, row.source) {
            (Outcome::Restored, Some(RestoreSource::Remote)) => "restored (remote)".to_owned(),
            (outcome, _) => outcome.to_string(),
        };
        let _ = writeln!(
            out,
            "{:width$}  {:10}  {:>8.2}",
            row.stage, label, row.seconds
        );
    }
    if let Some(t) = report.transfers {
        let _ = writeln!(
            out,
            "remote: downloaded {} objects ({} bytes), uploaded {} objects ({} bytes)",
            t.downloaded_objects, t.downloaded_bytes, t.uploaded_objects, t.uploaded_bytes
        );
    }
    print_out(&out)?;
    Ok(exit)
}
