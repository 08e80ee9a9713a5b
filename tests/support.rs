//! Shared test helpers: a temporary project, the binary, and small stage kinds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use stages::kind::{InputSpec, OutputSpec, ParamError, StageIo, StageKind};

/// A temporary project folder.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pipeline.toml"), config).unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
        let path = self.file(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.file(rel)).unwrap()
    }

    pub fn pipeline(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_pipeline"))
            .args(args)
            .current_dir(self.path())
            .env("PIPELINE_LOG", "info")
            .output()
            .unwrap()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipeline"));
        cmd.args(args).current_dir(self.path());
        cmd
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A log of what test kinds did, shared between the test and its kinds.
#[derive(Default)]
pub struct Journal {
    pub runs: Mutex<Vec<String>>,
    pub spans: Mutex<Vec<(String, Instant, Instant)>>,
    pub count: AtomicUsize,
    /// Each probing run's stage and the threads that took part in its work.
    pub threads: Mutex<Vec<(String, usize)>>,
}

impl Journal {
    pub fn ran(&self) -> Vec<String> {
        self.runs.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.runs.lock().unwrap().clear();
    }
}

/// A test kind: writes `out.txt` = its `text` param followed by its inputs' contents.
/// `noise` changes the key but not the output; `sleep_ms` makes it slow; `fail` fails it;
/// `probe_threads` records, after the sleep, how many threads take part in its parallel work;
/// `linger_ms` sleeps after that.
pub struct TextKind {
    pub version: String,
    pub journal: Arc<Journal>,
}

impl StageKind for TextKind {
    fn name(&self) -> &str {
        "text"
    }

    fn code_version(&self) -> String {
        self.version.clone()
    }

    fn normalize_params(&self, raw: &Map<String, Value>) -> Result<Value, ParamError> {
        let known = [
            "text",
            "noise",
            "sleep_ms",
            "fail",
            "probe_threads",
            "linger_ms",
        ];
        let mut out = serde_json::json!({"text": "", "noise": 0, "sleep_ms": 0, "fail": false,
            "probe_threads": false, "linger_ms": 0});
        for (key, value) in raw {
            if !known.contains(&key.as_str()) {
                return Err(ParamError::Unknown {
                    key: key.clone(),
                    known: known.iter().map(|s| s.to_string()).collect(),
                });
            }
            out[key] = value.clone();
        }
        Ok(out)
    }

    fn inputs(&self, _: &Value) -> Result<InputSpec, ParamError> {
        Ok(InputSpec {
            slots: vec![],
            variadic: true,
        })
    }

    fn outputs(&self, _: &Value) -> Result<Vec<OutputSpec>, ParamError> {
        Ok(vec![OutputSpec::new("out", "out.txt")])
    }

    fn external_outputs(&self, _: &Value, _: &Path) -> stages::kind::ExternalOutputs {
        Ok(None)
    }

    fn run(&self, params: &Value, io: &StageIo<'_>) -> stages::Result<()> {
        let start = Instant::now();
        self.journal.count.fetch_add(1, Ordering::SeqCst);
        self.journal.runs.lock().unwrap().push(io.stage.to_owned());
        let sleep = params["sleep_ms"].as_u64().unwrap_or(0);
        std::thread::sleep(Duration::from_millis(sleep));
        if params["probe_threads"].as_bool().unwrap_or(false) {
            use rayon::prelude::*;
            let working = (0..200)
                .into_par_iter()
                .map(|_| {
                    std::thread::sleep(Duration::from_millis(1));
                    rayon::current_thread_index()
                })
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            self.journal
                .threads
                .lock()
                .unwrap()
                .push((io.stage.to_owned(), working));
        }
        std::thread::sleep(Duration::from_millis(
            params["linger_ms"].as_u64().unwrap_or(0),
        ));
        if params["fail"].as_bool().unwrap_or(false) {
            return Err(stages::Error::BadParam {
                param: "fail",
                message: "asked to fail".into(),
            });
        }
        let mut text = params["text"].as_str().unwrap_or("").to_owned();
        for input in io.inputs {
            text.push('|');
            text.push_str(&std::fs::read_to_string(input).unwrap());
        }
        std::fs::write(io.output("out.txt"), text).unwrap();
        self.journal
            .spans
            .lock()
            .unwrap()
            .push((io.stage.to_owned(), start, Instant::now()));
        Ok(())
    }
}

/// A fresh key pair from `pipeline keygen`: (public `ed25519:...`, secret `ed25519-secret:...`).
pub fn keygen(p: &Project) -> (String, String) {
    let out = p.pipeline(&["keygen"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let field = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap()
            .to_owned()
    };
    (field("public key"), field("secret key"))
}
