//! The Slurm commands the controller runs (`sbatch`, `squeue`, `sacct`, `scancel`) and the
//! parsing of what they print. One status query covers every job of a run.

use std::io::Write as _;
use std::process::{Command, Stdio};

/// What Slurm says of a job (or of one task of a job array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Waiting, starting, running or finishing: ask again later.
    Active,
    /// Ended with exit code 0.
    Completed,
    /// Ended without a result: the state as Slurm names it (`FAILED`, `TIMEOUT`,
    /// `CANCELLED`, `OUT_OF_MEMORY`, `NODE_FAIL`, ...).
    Ended(String),
}

impl JobState {
    /// Reads a state as `squeue %T` or `sacct State` prints it (`CANCELLED by 0` included).
    pub fn parse(text: &str) -> Self {
        let state = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches('+');
        match state {
            "COMPLETED" => Self::Completed,
            "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "REQUEUED"
            | "REQUEUE_FED" | "REQUEUE_HOLD" | "RESIZING" | "SIGNALING" | "STAGE_OUT"
            | "STOPPED" | "RESV_DEL_HOLD" | "POWER_UP_NODE" | "UPDATE_DB" => Self::Active,
            other => Self::Ended(other.to_owned()),
        }
    }
}

/// One line of a status query: the job id as printed (`123`, `124_3`, `124_[0-7]`) and its
/// state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    /// The job (or array) id.
    pub job: String,
    /// The array task, when the line is about one task.
    pub task: Option<usize>,
    /// Whether the line stands for array tasks that have not started (`124_[0-7]`).
    pub pending_tasks: bool,
    /// The state.
    pub state: JobState,
}

/// Parses `squeue -h -o %i|%T` or `sacct -n -P -X -o JobID,State` output; lines it cannot
/// read are skipped (a warning Slurm printed, a blank line).
pub fn parse_status(output: &str) -> Vec<StatusLine> {
    output
        .lines()
        .filter_map(|line| {
            let (id, state) = line.trim().split_once('|')?;
            let (job, task, pending_tasks) = match id.split_once('_') {
                Some((job, rest)) if rest.starts_with('[') => (job, None, true),
                Some((job, rest)) => (job, Some(rest.parse().ok()?), false),
                None => (id, None, false),
            };
            if job.is_empty() || !job.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            Some(StatusLine {
                job: job.to_owned(),
                task,
                pending_tasks,
                state: JobState::parse(state),
            })
        })
        .collect()
}

/// Reads the id `sbatch --parsable` prints (`123` or `123;cluster`).
pub fn parse_submitted(output: &str) -> Option<String> {
    let line = output.lines().rev().find(|l| !l.trim().is_empty())?;
    let id = line.trim().split(';').next()?;
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_owned())
}

fn run(
    program: &str,
    args: &[String],
    stdin: Option<&str>,
) -> Result<(String, String, bool), String> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| {
        format!("cannot run `{program}` ({e}); is Slurm installed and on the PATH?")
    })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| format!("cannot send the batch script to `{program}`: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("`{program}` did not finish: {e}"))?;
    Ok((
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        output.status.success(),
    ))
}

/// `sbatch --parsable ARGS` with `script` on stdin; returns the job id.
pub fn submit(args: &[String], script: &str) -> Result<String, String> {
    let mut all = vec!["--parsable".to_owned()];
    all.extend(args.iter().cloned());
    let (stdout, stderr, ok) = run("sbatch", &all, Some(script))?;
    if !ok {
        return Err(format!("sbatch refused the job: {}", stderr.trim()));
    }
    parse_submitted(&stdout).ok_or_else(|| format!("sbatch printed no job id: {}", stdout.trim()))
}

/// The state of every job in `jobs` that Slurm still holds (finished ones stay listed for
/// `MinJobAge` seconds): one `squeue` for all of them.
pub fn query(jobs: &[String]) -> Result<Vec<StatusLine>, String> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let args = vec![
        "--noheader".to_owned(),
        "--states=all".to_owned(),
        "--array".to_owned(),
        format!("--jobs={}", jobs.join(",")),
        "--format=%i|%T".to_owned(),
    ];
    let (stdout, stderr, ok) = run("squeue", &args, None)?;
    if !ok {
        // Asked only of jobs Slurm has forgotten, squeue fails; that is an answer, not an error.
        if stderr.contains("Invalid job id") {
            return Ok(Vec::new());
        }
        return Err(format!("squeue failed: {}", stderr.trim()));
    }
    Ok(parse_status(&stdout))
}

/// The final state of `jobs` from Slurm's accounting; `Ok(None)` when accounting is off.
pub fn accounting(jobs: &[String]) -> Result<Option<Vec<StatusLine>>, String> {
    let args = vec![
        "--noheader".to_owned(),
        "--parsable2".to_owned(),
        "--allocations".to_owned(),
        format!("--jobs={}", jobs.join(",")),
        "--format=JobID,State".to_owned(),
    ];
    let (stdout, stderr, ok) = match run("sacct", &args, None) {
        Ok(answer) => answer,
        Err(_) => return Ok(None),
    };
    if !ok || stderr.contains("accounting storage is disabled") {
        return Ok(None);
    }
    Ok(Some(parse_status(&stdout)))
}

/// Cancels every job in `jobs` with one `scancel`.
pub fn cancel(jobs: &[String]) -> Result<(), String> {
    if jobs.is_empty() {
        return Ok(());
    }
    let (_, stderr, ok) = run("scancel", jobs, None)?;
    if ok {
        Ok(())
    } else {
        Err(format!("scancel failed: {}", stderr.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_of_jobs_arrays_and_noise() {
        let lines = parse_status(
            "12|RUNNING\n13_[2-5]|PENDING\n13_0|COMPLETED\n13_1|TIMEOUT\n14|CANCELLED by 0\nsqueue: warning\n\n15|OUT_OF_MEMORY\n",
        );
        assert_eq!(
            lines,
            vec![
                StatusLine {
                    job: "12".into(),
                    task: None,
                    pending_tasks: false,
                    state: JobState::Active
                },
                StatusLine {
                    job: "13".into(),
                    task: None,
                    pending_tasks: true,
                    state: JobState::Active
                },
                StatusLine {
                    job: "13".into(),
                    task: Some(0),
                    pending_tasks: false,
                    state: JobState::Completed
                },
                StatusLine {
                    job: "13".into(),
                    task: Some(1),
                    pending_tasks: false,
                    state: JobState::Ended("TIMEOUT".into())
                },
                StatusLine {
                    job: "14".into(),
                    task: None,
                    pending_tasks: false,
                    state: JobState::Ended("CANCELLED".into())
                },
                StatusLine {
                    job: "15".into(),
                    task: None,
                    pending_tasks: false,
                    state: JobState::Ended("OUT_OF_MEMORY".into())
                },
            ]
        );
    }

    #[test]
    fn submitted_ids_with_and_without_a_cluster() {
        assert_eq!(parse_submitted("123\n"), Some("123".into()));
        assert_eq!(parse_submitted("456;cluster\n"), Some("456".into()));
        assert_eq!(parse_submitted("sbatch: error\n"), None);
    }
}
