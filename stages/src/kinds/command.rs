//! `command`: any program as a stage. The user declares its inputs, the files it writes, the
//! code files and environment variables that decide its result (all part of the key) and
//! free-form `params`; the command runs with `sh -c` in the folder of `pipeline.toml`.
//!
//! Placeholders: `{input.N}` is the path of the N-th input, `{output.NAME}` the path the
//! program must write, `{params}` a JSON file holding `params`; each is substituted shell-quoted.
//! The command runs in a process group of its own with a private, empty `TMPDIR`, stdin closed
//! and its stdout and stderr written to `stdout.log` and `stderr.log` beside its outputs. A
//! request to stop (Ctrl-C) ends the whole group; the group's id is recorded in the staging
//! folder (`.pipeline-pgid`) so the engine can end it after a killed run, and the kernel ends
//! the program itself if the pipeline dies first (`PR_SET_PDEATHSIG`).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::kind::{InputSpec, OutputSpec, ParamError, Params, Stage, StageIo};

/// Where a running command's process group id is recorded (see the module docs).
pub const PGID_FILE: &str = ".pipeline-pgid";
/// The command's captured output streams, beside its outputs.
pub const LOG_FILES: [&str; 2] = ["stdout.log", "stderr.log"];
/// Lines of stderr quoted in a failure's message.
const TAIL_LINES: usize = 12;

/// Parameters of `command`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommandParams {
    /// The command line, run with `sh -c`.
    pub run: String,
    /// Output name -> file name (in the stage's output folder).
    pub outputs: BTreeMap<String, String>,
    /// Files (relative to `pipeline.toml`) whose content is part of the key.
    pub code: Vec<String>,
    /// Environment variables whose values are part of the key.
    pub env: Vec<String>,
    /// Free-form values, part of the key, written to the `{params}` file.
    pub params: Map<String, Value>,
}

impl Params for CommandParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if self.run.trim().is_empty() {
            return Err(ParamError::Missing { key: "run".into() });
        }
        if self.outputs.is_empty() {
            return Err(ParamError::Invalid {
                key: "outputs".into(),
                message: "declare at least one output: outputs = { name = \"file\" }".into(),
            });
        }
        if let Some(name) = self
            .env
            .iter()
            .find(|n| n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(ParamError::Invalid {
                key: "env".into(),
                message: format!("`{name}` is not an environment variable name"),
            });
        }
        Ok(())
    }
}

/// The command stage.
pub struct CommandStage;

/// A placeholder found in the command line.
#[derive(Debug, PartialEq, Eq)]
enum Placeholder {
    Input(usize),
    Output(String),
    Params,
}

/// The placeholders of `run` with their byte ranges; text in other braces is left alone
/// (`awk '{print $1}'` stays as written).
fn placeholders(run: &str) -> Vec<(std::ops::Range<usize>, Placeholder)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(open) = run[from..].find('{').map(|o| from + o) {
        let Some(close) = run[open..].find('}').map(|c| open + c) else {
            break;
        };
        let inner = &run[open + 1..close];
        let placeholder = if inner == "params" {
            Some(Placeholder::Params)
        } else if let Some(n) = inner.strip_prefix("input.") {
            n.parse().ok().map(Placeholder::Input)
        } else {
            inner
                .strip_prefix("output.")
                .map(|n| Placeholder::Output(n.to_owned()))
        };
        match placeholder {
            Some(p) => {
                found.push((open..close + 1, p));
                from = close + 1;
            }
            None => from = open + 1,
        }
    }
    found
}

/// `text` quoted for `sh`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// Checks that every placeholder names an input or output that exists.
pub fn check_placeholders(
    params: &CommandParams,
    inputs: usize,
) -> std::result::Result<(), String> {
    for (_, p) in placeholders(&params.run) {
        match p {
            Placeholder::Input(n) if n >= inputs => {
                return Err(format!(
                    "`{{input.{n}}}` names input {n}, but the stage has {inputs} input{} (numbered from 0)",
                    if inputs == 1 { "" } else { "s" }
                ))
            }
            Placeholder::Output(name) if !params.outputs.contains_key(&name) => {
                let known: Vec<&str> = params.outputs.keys().map(String::as_str).collect();
                return Err(format!(
                    "`{{output.{name}}}` names no declared output (outputs: {})",
                    known.join(", ")
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

impl Stage for CommandStage {
    type Params = CommandParams;
    const KIND: &'static str = "command";
    const MODULE: &'static str = module_path!();

    fn inputs(_: &Self::Params) -> InputSpec {
        InputSpec {
            slots: Vec::new(),
            variadic: true,
        }
    }

    fn outputs(params: &Self::Params) -> Vec<OutputSpec> {
        params
            .outputs
            .iter()
            .map(|(name, file)| OutputSpec::new(name, file))
            .collect()
    }

    fn code_files(params: &Self::Params) -> Vec<String> {
        params.code.clone()
    }

    fn env_vars(params: &Self::Params) -> Vec<String> {
        params.env.clone()
    }

    fn check(
        params: &Self::Params,
        inputs: &[crate::kind::InputInfo],
    ) -> std::result::Result<(), ParamError> {
        check_placeholders(params, inputs.len()).map_err(|message| ParamError::Invalid {
            key: "run".into(),
            message,
        })
    }

    fn run(params: &Self::Params, io: &StageIo<'_>) -> Result<()> {
        check_placeholders(params, io.inputs.len()).map_err(|message| Error::BadParam {
            param: "run",
            message,
        })?;
        let params_file = io.out_dir.join(".pipeline-params.json");
        let text = serde_json::to_vec_pretty(&Value::Object(params.params.clone()))
            .map_err(|e| Error::io("write", &params_file)(std::io::Error::other(e)))?;
        std::fs::write(&params_file, text).map_err(Error::io("write", &params_file))?;
        let mut script = String::new();
        let mut last = 0;
        for (range, p) in placeholders(&params.run) {
            script.push_str(&params.run[last..range.start]);
            let path = match p {
                Placeholder::Input(n) => absolute(&io.inputs[n]),
                Placeholder::Output(name) => absolute(&io.output(&params.outputs[&name])),
                Placeholder::Params => absolute(&params_file),
            };
            script.push_str(&shell_quote(&path.to_string_lossy()));
            last = range.end;
        }
        script.push_str(&params.run[last..]);

        let tmp = io.out_dir.join(".pipeline-tmp");
        std::fs::create_dir_all(&tmp).map_err(Error::io("create", &tmp))?;
        let [stdout_log, stderr_log] = LOG_FILES.map(|f| io.output(f));
        let open = |path: &Path| std::fs::File::create(path).map_err(Error::io("create", path));
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(&script)
            .current_dir(io.project_dir)
            .env("TMPDIR", absolute(&tmp))
            .stdin(Stdio::null())
            .stdout(open(&stdout_log)?)
            .stderr(open(&stderr_log)?);
        isolate(&mut command);
        tracing::debug!("{}: sh -c {script}", io.stage);
        let mut child = command
            .spawn()
            .map_err(|e| Error::io("start `sh -c` for", Path::new(&params.run))(e))?;
        let pgid = child.id();
        let pgid_file = io.out_dir.join(PGID_FILE);
        std::fs::write(&pgid_file, pgid.to_string()).map_err(Error::io("write", &pgid_file))?;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(err) => return Err(Error::io("wait for", Path::new(&params.run))(err)),
            }
            if io.check_cancelled().is_err() {
                end_group(pgid, &mut child);
                return Err(Error::Cancelled);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Whatever the program left running in its group ends with it.
        signal_group(pgid, Signal::Kill);
        let _ = std::fs::remove_file(&pgid_file);
        if !status.success() {
            let how = match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => format!("was killed by signal {}", signal_of(&status)),
            };
            return Err(Error::CommandFailed {
                how,
                tail: tail(&stderr_log, TAIL_LINES),
            });
        }
        for (name, file) in &params.outputs {
            if !io.output(file).is_file() {
                return Err(Error::BadParam {
                    param: "outputs",
                    message: format!(
                        "the command exited 0 but did not write output `{name}` ({file}); write it to {{output.{name}}}"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The last `lines` lines of a log file (at most 64 KB of it).
fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut text = String::new();
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_ok() {
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[derive(Clone, Copy)]
enum Signal {
    Term,
    Kill,
}

#[cfg(unix)]
fn isolate(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the closure runs in the child between fork and exec and calls only prctl,
        // which is async-signal-safe; it touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
}

#[cfg(not(unix))]
fn isolate(_: &mut Command) {}

#[cfg(unix)]
fn signal_group(pgid: u32, signal: Signal) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    let number = match signal {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    // SAFETY: kill(2) with a negative pid signals the process group the command leads; it has
    // no memory effects in this process.
    unsafe {
        libc::kill(-pgid, number);
    }
}

#[cfg(not(unix))]
fn signal_group(_: u32, _: Signal) {}

#[cfg(unix)]
fn signal_of(status: &std::process::ExitStatus) -> i32 {
    std::os::unix::process::ExitStatusExt::signal(status).unwrap_or(0)
}

#[cfg(not(unix))]
fn signal_of(_: &std::process::ExitStatus) -> i32 {
    0
}

/// Asks the group to stop, then makes it.
fn end_group(pgid: u32, child: &mut std::process::Child) {
    signal_group(pgid, Signal::Term);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal_group(pgid, Signal::Kill);
    let _ = child.wait();
}

/// Ends the process group recorded in a staging folder left by a killed run, if any.
pub fn end_recorded_group(staging: &Path) {
    if let Some(pgid) = std::fs::read_to_string(staging.join(PGID_FILE))
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .filter(|p| *p > 1)
    {
        signal_group(pgid, Signal::Kill);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_and_other_braces_left_alone() {
        let run = "awk '{print $1}' {input.0} > {output.counts} && cat {params} {nope}";
        let found: Vec<Placeholder> = placeholders(run).into_iter().map(|(_, p)| p).collect();
        assert_eq!(
            found,
            [
                Placeholder::Input(0),
                Placeholder::Output("counts".into()),
                Placeholder::Params
            ]
        );
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn a_placeholder_must_name_an_input_or_output() {
        let mut p = CommandParams {
            run: "cat {input.1} > {output.out}".into(),
            ..CommandParams::default()
        };
        p.outputs.insert("out".into(), "out.txt".into());
        assert_eq!(
            check_placeholders(&p, 1),
            Err("`{input.1}` names input 1, but the stage has 1 input (numbered from 0)".into())
        );
        p.run = "cat {input.0} > {output.result}".into();
        assert_eq!(
            check_placeholders(&p, 1),
            Err("`{output.result}` names no declared output (outputs: out)".into())
        );
    }
}
