//! The contract between the engine and a stage kind.
//!
//! A stage kind is a pure computation: it receives typed parameters, the paths of its inputs
//! and a private folder to write its outputs into. It knows nothing about caching, locks or
//! where its outputs end up. The engine talks to kinds through the object-safe [`StageKind`]
//! trait with parameters as JSON; implementors write the typed [`Stage`] trait instead and
//! wrap it in [`Kind`].
//!
//! Start reading at [`Stage`].

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

include!(concat!(env!("OUT_DIR"), "/module_versions.rs"));

/// One named file a stage writes into its output folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    /// The name other stages use to refer to it (`"pca:scores"` refers to `scores`).
    pub name: String,
    /// The file name inside the stage's output folder.
    pub file: String,
}

impl OutputSpec {
    /// An output called `name`, stored as `file`.
    pub fn new(name: &str, file: &str) -> Self {
        Self {
            name: name.to_owned(),
            file: file.to_owned(),
        }
    }
}

/// The inputs a kind expects, by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    /// The names of the positional inputs, used in messages.
    pub slots: Vec<&'static str>,
    /// Whether any number of further inputs may follow (at least one slot is then required).
    pub variadic: bool,
}

impl InputSpec {
    /// Exactly these inputs, in this order.
    pub fn fixed(slots: &[&'static str]) -> Self {
        Self {
            slots: slots.to_vec(),
            variadic: false,
        }
    }

    /// One or more inputs, all playing the role `slot`.
    pub fn variadic(slot: &'static str) -> Self {
        Self {
            slots: vec![slot],
            variadic: true,
        }
    }

    /// Whether `count` inputs satisfy this spec.
    pub fn accepts(&self, count: usize) -> bool {
        if self.variadic {
            count >= self.slots.len()
        } else {
            count == self.slots.len()
        }
    }
}

/// A parameter that failed validation, by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    /// The key is not a parameter of this kind.
    Unknown {
        /// The key as written.
        key: String,
        /// Every key the kind accepts.
        known: Vec<String>,
    },
    /// The value has the wrong type or is out of range.
    Invalid {
        /// The key as written.
        key: String,
        /// What was expected, as a sentence fragment.
        message: String,
    },
    /// A required key is absent.
    Missing {
        /// The key that must be given.
        key: String,
    },
}

/// What a stage's check knows of one input before any work: its name as declared and, when
/// the file already exists (a file input, or an upstream result published earlier), its path.
#[derive(Debug, Clone)]
pub struct InputInfo {
    /// `stage:output` or a path, as declared.
    pub name: String,
    /// The file, if it exists now.
    pub path: Option<PathBuf>,
}

/// Everything a running stage may touch.
pub struct StageIo<'a> {
    /// The stage's name in the pipeline, for messages.
    pub stage: &'a str,
    /// Input files in declaration order.
    pub inputs: &'a [PathBuf],
    /// Each input's name as declared (`pca:scores`, or a path), for labelling results.
    pub input_names: &'a [String],
    /// A private, empty folder; the stage writes its declared outputs here.
    pub out_dir: &'a Path,
    /// Key-value pairs every Parquet artifact must carry (`pipeline.*`).
    pub provenance: &'a [(String, String)],
    /// The folder holding `pipeline.toml`: where a user's command runs.
    pub project_dir: &'a Path,
    /// Set when the user asked the run to stop.
    pub cancel: &'a AtomicBool,
    /// Where a long stage reports how far it is: a short message (`epoch 3/20 loss 0.024`)
    /// and the share done, 0 to 1. The engine draws it (or not); stages never write to the
    /// terminal themselves.
    pub progress: &'a (dyn Fn(&str, f64) + Sync),
}

impl StageIo<'_> {
    /// The path an output file must be written to.
    pub fn output(&self, file: &str) -> PathBuf {
        self.out_dir.join(file)
    }

    /// The input at `index`, or an error naming the missing slot.
    pub fn input(&self, index: usize, slot: &'static str) -> Result<&Path> {
        self.inputs
            .get(index)
            .map(PathBuf::as_path)
            .ok_or(Error::MissingInput { slot })
    }

    /// Reports progress (see [`StageIo::progress`]).
    pub fn report(&self, message: &str, done: f64) {
        (self.progress)(message, done.clamp(0.0, 1.0));
    }

    /// Returns `Err(Error::Cancelled)` once the user has interrupted the run.
    pub fn check_cancelled(&self) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// Typed parameters: a serde struct with defaults plus range checks.
pub trait Params: Serialize + DeserializeOwned + Default {
    /// Checks values serde cannot (ranges, cross-field rules).
    fn validate(&self) -> std::result::Result<(), ParamError> {
        Ok(())
    }
}

/// A stage kind written with typed parameters.
pub trait Stage: Send + Sync + 'static {
    /// The parameters, with `#[serde(deny_unknown_fields, default)]`.
    type Params: Params;
    /// The kind's name in `pipeline.toml`.
    const KIND: &'static str;
    /// The module that implements the kind: always `module_path!()`. Its code version
    /// covers every file that module transitively imports (derived by `build.rs`).
    const MODULE: &'static str;
    /// The inputs this kind expects.
    fn inputs(params: &Self::Params) -> InputSpec;
    /// The outputs this kind writes.
    fn outputs(params: &Self::Params) -> Vec<OutputSpec>;
    /// Files outside the project that the stage's outputs *are* (a source of real data):
    /// the engine hashes them instead of running the stage. `None` for ordinary stages.
    fn external_outputs(_params: &Self::Params, _base: &Path) -> Option<Vec<(String, PathBuf)>> {
        None
    }
    /// Files (relative to `pipeline.toml`) whose content is part of the key, besides the
    /// inputs: a user command's scripts.
    fn code_files(_params: &Self::Params) -> Vec<String> {
        Vec::new()
    }
    /// Environment variables whose values are part of the key.
    fn env_vars(_params: &Self::Params) -> Vec<String> {
        Vec::new()
    }
    /// Checks the parameters against the inputs before any work (`pipeline check`): a
    /// command's placeholders, a query's tables and columns.
    fn check(_params: &Self::Params, _inputs: &[InputInfo]) -> std::result::Result<(), ParamError> {
        Ok(())
    }
    /// Computes the outputs.
    fn run(params: &Self::Params, io: &StageIo<'_>) -> Result<()>;
    /// Parameters that decide how the work is split, never what it computes (`shards`): the
    /// engine leaves them out of the key, so splitting differently reuses the cached result.
    const SCHEDULING_PARAMS: &'static [&'static str] = &[];
    /// How many independent pieces the work splits into; 1 for a kind that is not sharded.
    /// Above 1, a cluster executor runs [`Stage::run_shard`] once per piece (a job array) and
    /// then [`Stage::merge_shards`]; `run` must give the same bytes by doing the pieces in turn.
    fn shards(_params: &Self::Params) -> usize {
        1
    }
    /// Computes piece `shard` (from 0) into `io.out_dir`, as the single file [`SHARD_FILE`].
    fn run_shard(_params: &Self::Params, _io: &StageIo<'_>, _shard: usize) -> Result<()> {
        Err(not_sharded(Self::KIND))
    }
    /// Writes the declared outputs from every piece's [`SHARD_FILE`], given in shard order.
    fn merge_shards(_params: &Self::Params, _io: &StageIo<'_>, _shards: &[PathBuf]) -> Result<()> {
        Err(not_sharded(Self::KIND))
    }
}

/// The one file a shard of a sharded stage writes (see [`Stage::run_shard`]).
pub const SHARD_FILE: &str = "shard.parquet";

/// Files outside the project that a source stage's outputs are, by output name; `None` for
/// an ordinary stage.
pub type ExternalOutputs = std::result::Result<Option<Vec<(String, PathBuf)>>, ParamError>;

/// The object-safe face of a stage kind, with parameters as JSON.
pub trait StageKind: Send + Sync {
    /// The kind's name in `pipeline.toml`.
    fn name(&self) -> &str;
    /// A hash of the code that decides this kind's results.
    fn code_version(&self) -> String;
    /// Validates user parameters and returns them with every default filled in.
    fn normalize_params(&self, raw: &Map<String, Value>) -> std::result::Result<Value, ParamError>;
    /// The inputs the kind expects, given normalised parameters.
    fn inputs(&self, params: &Value) -> std::result::Result<InputSpec, ParamError>;
    /// The outputs the kind writes, given normalised parameters.
    fn outputs(&self, params: &Value) -> std::result::Result<Vec<OutputSpec>, ParamError>;
    /// See [`Stage::external_outputs`]; `base` is the folder holding `pipeline.toml`.
    fn external_outputs(&self, params: &Value, base: &Path) -> ExternalOutputs;
    /// See [`Stage::code_files`].
    fn code_files(&self, _params: &Value) -> Vec<String> {
        Vec::new()
    }
    /// See [`Stage::env_vars`].
    fn env_vars(&self, _params: &Value) -> Vec<String> {
        Vec::new()
    }
    /// See [`Stage::check`].
    fn check(&self, _params: &Value, _inputs: &[InputInfo]) -> std::result::Result<(), ParamError> {
        Ok(())
    }
    /// Runs the stage.
    fn run(&self, params: &Value, io: &StageIo<'_>) -> Result<()>;
    /// See [`Stage::SCHEDULING_PARAMS`].
    fn scheduling_params(&self) -> &'static [&'static str] {
        &[]
    }
    /// See [`Stage::shards`].
    fn shards(&self, _params: &Value) -> usize {
        1
    }
    /// See [`Stage::run_shard`].
    fn run_shard(&self, _params: &Value, _io: &StageIo<'_>, _shard: usize) -> Result<()> {
        Err(not_sharded(self.name()))
    }
    /// See [`Stage::merge_shards`].
    fn merge_shards(&self, _params: &Value, _io: &StageIo<'_>, _shards: &[PathBuf]) -> Result<()> {
        Err(not_sharded(self.name()))
    }
}

fn not_sharded(kind: &str) -> Error {
    Error::BadParam {
        param: "shards",
        message: format!("the `{kind}` kind cannot be sharded"),
    }
}

/// Adapts a typed [`Stage`] to [`StageKind`].
pub struct Kind<S>(PhantomData<S>);

impl<S> Kind<S> {
    /// The adapter for `S`.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<S> Default for Kind<S> {
    fn default() -> Self {
        Self::new()
    }
}

/// The typed form of parameters that `normalize_params` produced. They always deserialize;
/// should they not (a bug), the error says so instead of running with defaults while the key
/// records the user's values.
fn typed<P: Params>(kind: &str, params: &Value) -> std::result::Result<P, ParamError> {
    serde_json::from_value(params.clone()).map_err(|err| ParamError::Invalid {
        key: String::new(),
        message: format!(
            "parameters of `{kind}` do not match their normalised form: {}",
            clean_serde_message(&err.to_string())
        ),
    })
}

/// The code version of the module at `module_path` (as `module_path!()` gives it), from the
/// table `build.rs` embeds.
pub fn module_version(module_path: &str) -> Option<&'static str> {
    let relative = module_path
        .strip_prefix(concat!(env!("CARGO_CRATE_NAME"), "::"))
        .unwrap_or(module_path);
    MODULE_VERSIONS
        .iter()
        .find(|(path, _)| *path == relative)
        .map(|(_, version)| *version)
}

/// Validates `raw` against the typed parameters `P`: unknown keys, wrong types, ranges.
pub fn normalize<P: Params>(raw: &Map<String, Value>) -> std::result::Result<Value, ParamError> {
    let defaults = match serde_json::to_value(P::default()) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    for (key, value) in raw {
        if !defaults.contains_key(key) {
            return Err(ParamError::Unknown {
                key: key.clone(),
                known: defaults.keys().cloned().collect(),
            });
        }
        // Check each key alone so the error names the key that is wrong.
        let mut single = defaults.clone();
        single.insert(key.clone(), value.clone());
        if let Err(err) = serde_json::from_value::<P>(Value::Object(single)) {
            return Err(ParamError::Invalid {
                key: key.clone(),
                message: clean_serde_message(&err.to_string()),
            });
        }
    }
    let mut merged = defaults;
    merged.extend(raw.iter().map(|(k, v)| (k.clone(), v.clone())));
    let parsed: P =
        serde_json::from_value(Value::Object(merged)).map_err(|err| ParamError::Invalid {
            key: String::new(),
            message: clean_serde_message(&err.to_string()),
        })?;
    parsed.validate()?;
    serde_json::to_value(&parsed).map_err(|err| ParamError::Invalid {
        key: String::new(),
        message: err.to_string(),
    })
}

fn clean_serde_message(message: &str) -> String {
    // serde_json appends a position that is meaningless for an in-memory value.
    match message.find(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

impl<S: Stage> StageKind for Kind<S> {
    fn name(&self) -> &str {
        S::KIND
    }

    fn code_version(&self) -> String {
        // A module missing from the table is caught by a test over the whole catalog; the
        // fallback still differs from every real version, so nothing stale is reused.
        module_version(S::MODULE)
            .map_or_else(|| format!("unversioned {}", S::MODULE), str::to_owned)
    }

    fn normalize_params(&self, raw: &Map<String, Value>) -> std::result::Result<Value, ParamError> {
        normalize::<S::Params>(raw)
    }

    fn inputs(&self, params: &Value) -> std::result::Result<InputSpec, ParamError> {
        Ok(S::inputs(&typed(S::KIND, params)?))
    }

    fn outputs(&self, params: &Value) -> std::result::Result<Vec<OutputSpec>, ParamError> {
        Ok(S::outputs(&typed(S::KIND, params)?))
    }

    fn external_outputs(&self, params: &Value, base: &Path) -> ExternalOutputs {
        Ok(S::external_outputs(&typed(S::KIND, params)?, base))
    }

    fn code_files(&self, params: &Value) -> Vec<String> {
        typed(S::KIND, params).map_or_else(|_| Vec::new(), |p| S::code_files(&p))
    }

    fn env_vars(&self, params: &Value) -> Vec<String> {
        typed(S::KIND, params).map_or_else(|_| Vec::new(), |p| S::env_vars(&p))
    }

    fn check(&self, params: &Value, inputs: &[InputInfo]) -> std::result::Result<(), ParamError> {
        S::check(&typed(S::KIND, params)?, inputs)
    }

    fn run(&self, params: &Value, io: &StageIo<'_>) -> Result<()> {
        S::run(&run_params::<S::Params>(S::KIND, params)?, io)
    }

    fn scheduling_params(&self) -> &'static [&'static str] {
        S::SCHEDULING_PARAMS
    }

    fn shards(&self, params: &Value) -> usize {
        typed(S::KIND, params).map_or(1, |p| S::shards(&p))
    }

    fn run_shard(&self, params: &Value, io: &StageIo<'_>, shard: usize) -> Result<()> {
        S::run_shard(&run_params::<S::Params>(S::KIND, params)?, io, shard)
    }

    fn merge_shards(&self, params: &Value, io: &StageIo<'_>, shards: &[PathBuf]) -> Result<()> {
        S::merge_shards(&run_params::<S::Params>(S::KIND, params)?, io, shards)
    }
}

fn run_params<P: Params>(kind: &str, params: &Value) -> Result<P> {
    typed(kind, params).map_err(|err| Error::BadParam {
        param: "(normalised parameters)",
        message: format!("{err:?}"),
    })
}

/// A range check for [`Params::validate`].
pub fn check_range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> std::result::Result<(), ParamError> {
    if value < min || value > max {
        Err(ParamError::Invalid {
            key: key.to_owned(),
            message: format!("must be between {min} and {max}, got {value}"),
        })
    } else {
        Ok(())
    }
}
