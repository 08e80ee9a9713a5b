//! `evaluate`: collects every model stage's metrics into one `metrics.json` with stable keys
//! (an object keyed by stage name), so CI can diff two runs.
//!
//! Inputs are stage outputs, typically whole stages (`"knn_full:*"`). Each stage's entry
//! holds its kind, cache key and parameters (read from the `pipeline.*` provenance of one
//! of its Parquet outputs) and the fields of its `metrics.json`.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::kind::{InputSpec, OutputSpec, Params, Stage, StageIo};
use crate::metrics::write_metrics;

/// Parameters of `evaluate` (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluateParams {}

impl Params for EvaluateParams {}

/// What one upstream stage handed to `evaluate` or `report`.
#[derive(Debug, Clone, Default)]
pub struct StageResults {
    /// Its outputs by name.
    pub outputs: BTreeMap<String, PathBuf>,
    /// Its `pipeline.*` provenance, from one of its Parquet outputs.
    pub provenance: BTreeMap<String, String>,
    /// Its `metrics.json`, if it has one.
    pub metrics: Option<Value>,
}

impl StageResults {
    /// The stage kind, from provenance.
    pub fn kind(&self) -> &str {
        self.provenance
            .get("pipeline.kind")
            .map_or("", String::as_str)
    }

    /// The output called `name`.
    pub fn output(&self, name: &str) -> Option<&Path> {
        self.outputs.get(name).map(PathBuf::as_path)
    }
}

/// Groups the inputs by upstream stage and reads their provenance and metrics.
pub fn gather(io: &StageIo<'_>) -> Result<BTreeMap<String, StageResults>> {
    let mut stages: BTreeMap<String, StageResults> = BTreeMap::new();
    for (name, path) in io.input_names.iter().zip(io.inputs) {
        let (stage, output) = name
            .split_once(':')
            .unwrap_or((name.as_str(), name.as_str()));
        let entry = stages.entry(stage.to_owned()).or_default();
        entry.outputs.insert(output.to_owned(), path.clone());
        if output == "metrics" {
            let text = std::fs::read_to_string(path).map_err(Error::io("read", path))?;
            let value = serde_json::from_str(&text).map_err(|e| Error::BadFile {
                path: path.clone(),
                message: format!("not valid JSON: {e}"),
            })?;
            entry.metrics = Some(value);
        } else if entry.provenance.is_empty() {
            if let Some(p) = parquet_provenance(path) {
                entry.provenance = p;
            }
        }
    }
    Ok(stages)
}

fn parquet_provenance(path: &Path) -> Option<BTreeMap<String, String>> {
    let file = File::open(path).ok()?;
    let reader = SerializedFileReader::new(file).ok()?;
    let kv = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()?
        .clone();
    Some(
        kv.into_iter()
            .filter(|e| e.key.starts_with("pipeline."))
            .map(|e| (e.key, e.value.unwrap_or_default()))
            .collect(),
    )
}

/// The evaluation stage.
pub struct Evaluate;

impl Stage for Evaluate {
    type Params = EvaluateParams;
    const KIND: &'static str = "evaluate";
    const SOURCES: &'static [&'static str] = &["evaluate.rs", "metrics.rs"];

    fn inputs(_: &Self::Params) -> InputSpec {
        InputSpec::variadic("results")
    }

    fn outputs(_: &Self::Params) -> Vec<OutputSpec> {
        vec![OutputSpec::new("metrics", "metrics.json")]
    }

    fn run(_: &Self::Params, io: &StageIo<'_>) -> Result<()> {
        let stages = gather(io)?;
        let mut all = Map::new();
        for (name, results) in &stages {
            let Some(Value::Object(metrics)) = &results.metrics else {
                continue;
            };
            let mut entry = Map::new();
            entry.insert("kind".into(), Value::String(results.kind().to_owned()));
            if let Some(key) = results.provenance.get("pipeline.key") {
                entry.insert("key".into(), Value::String(key.clone()));
            }
            if let Some(params) = results.provenance.get("pipeline.params") {
                entry.insert(
                    "params".into(),
                    serde_json::from_str(params).unwrap_or(Value::Null),
                );
            }
            for (k, v) in metrics {
                entry.insert(k.clone(), v.clone());
            }
            all.insert(name.clone(), Value::Object(entry));
        }
        write_metrics(&io.output("metrics.json"), &Value::Object(all))
    }
}
