//! `evaluate`: collects every model stage's metrics into one `metrics.json` with stable keys
//! (an object keyed by stage name), so CI can diff two runs.
//!
//! Inputs are stage outputs, typically whole stages (`"knn_full:*"`). Each stage's entry
//! holds its kind, cache key and parameters (read from the `pipeline.*` provenance of one
//! of its Parquet outputs) and the fields of its `metrics.json`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Result;
use crate::io::metrics::write_metrics;
use crate::io::stage_results::gather;
use crate::kind::{InputSpec, OutputSpec, Params, Stage, StageIo};

/// Parameters of `evaluate` (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluateParams {}

impl Params for EvaluateParams {}

/// The evaluation stage.
pub struct Evaluate;

impl Stage for Evaluate {
    type Params = EvaluateParams;
    const KIND: &'static str = "evaluate";
    const MODULE: &'static str = module_path!();

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
            if let Some(key) = results.provenance.get(crate::provenance::KEY) {
                entry.insert("key".into(), Value::String(key.clone()));
            }
            if let Some(params) = results.provenance.get(crate::provenance::PARAMS) {
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
