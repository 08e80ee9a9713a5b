//! What the summarising kinds (`evaluate`, `report`) read from their inputs: each upstream
//! stage's outputs, its `pipeline.*` provenance and its `metrics.json`.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::kind::StageIo;

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
            .get(crate::provenance::KIND)
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
            .filter(|e| e.key.starts_with(crate::provenance::PREFIX))
            .map(|e| (e.key, e.value.unwrap_or_default()))
            .collect(),
    )
}
