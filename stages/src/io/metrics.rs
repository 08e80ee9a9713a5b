//! Writing a stage's `metrics.json`: the numbers `evaluate` collects and CI diffs.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// Writes `metrics` as pretty JSON with a trailing newline.
pub fn write_metrics(path: &Path, metrics: &Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(metrics).map_err(|e| Error::Numerical {
        what: "encoding metrics",
        message: e.to_string(),
    })?;
    text.push('\n');
    std::fs::write(path, text).map_err(Error::io("write", path))
}

/// Rounds for display in tables and figures; metrics files keep full precision.
pub fn round(value: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (value * f).round() / f
}
