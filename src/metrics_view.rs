//! `pipeline metrics [--diff OTHER]`: the evaluate stage's `metrics.json` as a table, or its
//! differences from another run's.
//!
//! Metrics are flattened to `stage.name` (arrays to `stage.name[i]`, 1-based, so
//! `knn_full.jaccard_mean[1]` is k = 1); identity fields (`kind`, `key`, `params`) and text
//! are left out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde_json::Value;

/// Flattened numeric metrics, in a stable order.
pub(crate) fn flatten(doc: &Value) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    if let Value::Object(stages) = doc {
        for (stage, metrics) in stages {
            if let Value::Object(fields) = metrics {
                for (name, value) in fields {
                    if matches!(name.as_str(), "kind" | "key" | "params") {
                        continue;
                    }
                    walk(&format!("{stage}.{name}"), value, &mut out);
                }
            }
        }
    }
    out
}

fn walk(prefix: &str, value: &Value, out: &mut BTreeMap<String, f64>) {
    match value {
        Value::Number(n) => {
            if let Some(v) = n.as_f64() {
                out.insert(prefix.to_owned(), v);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(&format!("{prefix}[{}]", i + 1), item, out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                walk(&format!("{prefix}.{k}"), v, out);
            }
        }
        _ => {}
    }
}

/// Reads a metrics file.
pub(crate) fn load(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}` (run the pipeline first?)", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("`{}` is not valid JSON", path.display()))
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.6}")
    }
}

/// The table of one run's metrics.
pub(crate) fn render(metrics: &BTreeMap<String, f64>) -> String {
    let width = metrics.keys().map(String::len).max().unwrap_or(6).max(6);
    let mut out = format!("{:width$}  value\n", "metric");
    for (name, value) in metrics {
        let _ = writeln!(out, "{name:width$}  {}", fmt(*value));
    }
    out
}

/// The table of differences between this run and `other` (changed, added or removed metrics).
pub(crate) fn render_diff(this: &BTreeMap<String, f64>, other: &BTreeMap<String, f64>) -> String {
    let mut names: Vec<&String> = this.keys().chain(other.keys()).collect();
    names.sort();
    names.dedup();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(6).max(6);
    let mut out = format!(
        "{:width$}  {:>14}  {:>14}  {:>14}\n",
        "metric", "this", "other", "change"
    );
    let mut changed = 0;
    for name in names {
        let (a, b) = (this.get(name), other.get(name));
        if a == b {
            continue;
        }
        changed += 1;
        let show = |v: Option<&f64>| v.map_or_else(|| "-".to_owned(), |v| fmt(*v));
        let change = match (a, b) {
            (Some(a), Some(b)) => format!("{:+.6}", a - b),
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "{name:width$}  {:>14}  {:>14}  {change:>14}",
            show(a),
            show(b)
        );
    }
    let _ = writeln!(
        out,
        "{changed} of {} metrics differ",
        this.len().max(other.len())
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattening_and_diff() {
        let a = json!({"knn": {"kind": "knn", "k_best": 1, "jaccard_mean": [0.5, 0.25], "metric": "l1"}});
        let b = json!({"knn": {"kind": "knn", "k_best": 2, "jaccard_mean": [0.5, 0.30]}});
        let fa = flatten(&a);
        assert_eq!(
            fa.keys().collect::<Vec<_>>(),
            vec!["knn.jaccard_mean[1]", "knn.jaccard_mean[2]", "knn.k_best"]
        );
        let diff = render_diff(&fa, &flatten(&b));
        assert!(diff.contains("knn.k_best"));
        assert!(diff.contains("-0.050000"));
        assert!(!diff.contains("jaccard_mean[1]"));
        assert!(diff.ends_with("2 of 3 metrics differ\n"));
    }
}
