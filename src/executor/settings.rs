//! The `[executor]` table: where stages run (`kind = "local"` or `"slurm"`) and, for Slurm,
//! how jobs are submitted and watched.

use std::path::PathBuf;

use super::resources::is_slurm_word;

/// Where stages that must run are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ExecutorKind {
    /// On threads of this process (the default).
    #[default]
    Local,
    /// One Slurm job per stage, run by `pipeline worker` on a cluster node.
    Slurm,
}

/// How workers on cluster nodes exchange inputs and results with the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Exchange {
    /// The cache folder, on a filesystem every node mounts at the same path.
    #[default]
    SharedFolder,
    /// The remote cache (`[cache] remote`): workers download inputs and upload results, and no
    /// folder needs to be shared.
    Remote,
}

/// The validated `[executor]` table.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    /// `kind`.
    pub kind: ExecutorKind,
    /// `partition`: the default partition of every job.
    pub partition: Option<String>,
    /// `account`: `--account` of every job.
    pub account: Option<String>,
    /// `poll_seconds`: time between two status queries (one query covers every job).
    pub poll_seconds: f64,
    /// `sbatch_args`: further arguments for every `sbatch` (`--qos=short`, `--constraint=x`).
    pub sbatch_args: Vec<String>,
    /// `cache`: `"shared"` (default) or `"remote"`.
    pub exchange: Exchange,
    /// `worker`: the `pipeline` binary on the nodes (default: this binary's path).
    pub worker: Option<PathBuf>,
    /// `log_dir`: where Slurm writes each job's output (default `cache/logs/slurm`); must exist
    /// on the nodes.
    pub log_dir: Option<PathBuf>,
    /// `vanished_after_seconds`: how long a job may be unknown to Slurm, without a result,
    /// before its stage fails.
    pub vanished_after_seconds: f64,
}

impl Default for ExecutorSettings {
    fn default() -> Self {
        Self {
            kind: ExecutorKind::Local,
            partition: None,
            account: None,
            poll_seconds: 2.0,
            sbatch_args: Vec::new(),
            exchange: Exchange::SharedFolder,
            worker: None,
            log_dir: None,
            vanished_after_seconds: 120.0,
        }
    }
}

/// The keys `[executor]` accepts.
pub const KEYS: &[&str] = &[
    "kind",
    "partition",
    "account",
    "poll_seconds",
    "sbatch_args",
    "cache",
    "worker",
    "log_dir",
    "vanished_after_seconds",
];

impl ExecutorSettings {
    /// Applies one key of `[executor]`; `root` resolves relative paths. The error says what
    /// was expected.
    pub fn set(
        &mut self,
        key: &str,
        value: &toml::Value,
        root: &std::path::Path,
    ) -> Result<(), String> {
        let text = |what: &str| {
            value
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("expected {what}, got {value}"))
        };
        let seconds = |min: f64| {
            value
                .as_float()
                .or_else(|| value.as_integer().map(|i| i as f64))
                .filter(|s| s.is_finite() && *s >= min && *s <= 86_400.0)
                .ok_or_else(|| format!("expected seconds from {min} to 86400, got {value}"))
        };
        match key {
            "kind" => {
                self.kind = match text("\"local\" or \"slurm\"")?.as_str() {
                    "local" => ExecutorKind::Local,
                    "slurm" => ExecutorKind::Slurm,
                    other => {
                        return Err(format!("expected \"local\" or \"slurm\", got \"{other}\""))
                    }
                }
            }
            "partition" | "account" => {
                let name = text("a name")?;
                if !is_slurm_word(&name) {
                    return Err(format!("expected a Slurm {key} name, got \"{name}\""));
                }
                if key == "partition" {
                    self.partition = Some(name);
                } else {
                    self.account = Some(name);
                }
            }
            "poll_seconds" => self.poll_seconds = seconds(0.05)?,
            "vanished_after_seconds" => self.vanished_after_seconds = seconds(0.0)?,
            "sbatch_args" => {
                let items = value
                    .as_array()
                    .filter(|items| items.iter().all(toml::Value::is_str))
                    .ok_or_else(|| format!("expected a list of strings, got {value}"))?;
                self.sbatch_args = items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect();
                if let Some(bad) = self.sbatch_args.iter().find(|a| !a.starts_with('-')) {
                    return Err(format!(
                        "every sbatch argument must be an option (`--qos=short`), got \"{bad}\""
                    ));
                }
            }
            "cache" => {
                self.exchange = match text("\"shared\" or \"remote\"")?.as_str() {
                    "shared" => Exchange::SharedFolder,
                    "remote" => Exchange::Remote,
                    other => {
                        return Err(format!(
                            "expected \"shared\" or \"remote\", got \"{other}\""
                        ))
                    }
                }
            }
            "worker" => self.worker = Some(root.join(text("the path of the pipeline binary")?)),
            "log_dir" => self.log_dir = Some(root.join(text("a folder")?)),
            other => {
                return Err(format!(
                    "unknown key `{other}` (expected one of {})",
                    KEYS.join(", ")
                ))
            }
        }
        Ok(())
    }
}
