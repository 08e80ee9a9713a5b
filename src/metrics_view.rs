//! `pipeline metrics [--all] [--diff OTHER]`: the evaluate stage's `metrics.json` as a summary
//! that fits a screen (one row per model stage with its headline figures), or with `--all`
//! every value; `--diff` compares either with another run's.
//!
//! For `--all`, metrics are flattened to `stage.name` (arrays to `stage.name[i]`, 1-based, so
//! `knn_full.jaccard_mean[1]` is k = 1, sorted numerically); identity fields (`kind`, `key`,
//! `params`) and text are left out.

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

/// Orders metric names as people read them: `x[2]` before `x[10]`.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(s: &str) -> Vec<Result<u64, &str>> {
        let mut out = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits > 0 {
                out.push(rest[..digits].parse().map_err(|_| &rest[..digits]));
                rest = &rest[digits..];
            } else {
                let text =
                    rest.len() - rest.trim_start_matches(|c: char| !c.is_ascii_digit()).len();
                out.push(Err(&rest[..text]));
                rest = &rest[text..];
            }
        }
        out
    }
    let order = |x: &Result<u64, &str>, y: &Result<u64, &str>| match (x, y) {
        (Ok(a), Ok(b)) => a.cmp(b),
        (Err(a), Err(b)) => a.cmp(b),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
    };
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(&pb) {
        let o = order(x, y);
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

fn sorted_names<'a>(names: impl Iterator<Item = &'a String>) -> Vec<&'a String> {
    let mut names: Vec<&String> = names.collect();
    names.sort_by(|a, b| natural_cmp(a, b));
    names.dedup();
    names
}

/// The table of one run's metrics.
pub(crate) fn render(metrics: &BTreeMap<String, f64>) -> String {
    let width = metrics.keys().map(String::len).max().unwrap_or(6).max(6);
    let mut out = format!("{:width$}  value\n", "metric");
    for name in sorted_names(metrics.keys()) {
        let _ = writeln!(out, "{name:width$}  {}", fmt(metrics[name]));
    }
    out
}

/// One model stage's headline figures.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Headline {
    /// The stage.
    pub(crate) stage: String,
    /// Its kind.
    pub(crate) kind: String,
    /// (label, value) in reading order.
    pub(crate) figures: Vec<(String, f64)>,
}

/// The headline figures of every model stage in `doc`, in its order.
pub(crate) fn headlines(doc: &Value) -> Vec<Headline> {
    let Value::Object(stages) = doc else {
        return Vec::new();
    };
    stages
        .iter()
        .filter_map(|(stage, m)| {
            let kind = m["kind"].as_str().unwrap_or("").to_owned();
            let num = |key: &str| m[key].as_f64();
            let at = |key: &str, i: usize| m[key].get(i).and_then(Value::as_f64);
            let mut figures: Vec<(String, Option<f64>)> = Vec::new();
            match kind.as_str() {
                "knn" => {
                    let best = m["k_best"].as_u64().unwrap_or(1) as usize;
                    let i = m["k"]
                        .as_array()
                        .and_then(|ks| ks.iter().position(|k| k.as_u64() == Some(best as u64)))
                        .unwrap_or(0);
                    figures.push(("best k".into(), Some(best as f64)));
                    figures.push(("jaccard".into(), num("jaccard_best")));
                    figures.push(("at least one right".into(), at("at_least_one_right", i)));
                    figures.push(("micro F1".into(), at("micro_f1", i)));
                }
                "classifier" | "encoded_classifier" => {
                    figures.push(("best threshold".into(), num("threshold_best")));
                    figures.push(("jaccard".into(), num("jaccard_best")));
                    figures.push(("micro F1".into(), num("micro_f1")));
                    figures.push(("macro F1".into(), num("macro_f1")));
                }
                "autoencoder" => figures.push(("R2".into(), num("r2"))),
                "balanced_classifier" => {
                    figures.push(("macro F1".into(), num("macro_f1")));
                    figures.push(("unbalanced".into(), num("macro_f1_unbalanced")));
                    figures.push(("micro F1".into(), num("micro_f1")));
                    figures.push(("unbalanced".into(), num("micro_f1_unbalanced")));
                }
                "popularity" => {
                    for set in ["audio", "audio+metadata", "audio+engagement"] {
                        figures.push((
                            format!("{set} trees R2"),
                            m["models"][format!("{set}/trees")]["r2"].as_f64(),
                        ));
                    }
                }
                "pca" => {
                    figures.push((
                        "components for threshold".into(),
                        num("components_for_threshold"),
                    ));
                    figures.push(("threshold".into(), num("threshold")));
                }
                "lsi" => {
                    figures.push(("topics for threshold".into(), num("topics_for_threshold")));
                    figures.push((
                        "by the original's method".into(),
                        num("topics_for_threshold_original_method"),
                    ));
                }
                "lda" => {
                    figures.push(("per-word bound".into(), num("per_word_bound")));
                    figures.push(("perplexity".into(), num("perplexity")));
                }
                _ => {
                    // A kind without a curated headline: its scalar numbers, as they come.
                    if let Value::Object(fields) = m {
                        for (name, value) in fields {
                            if let Some(v) = value.as_f64() {
                                figures.push((name.clone(), Some(v)));
                            }
                        }
                    }
                }
            }
            let figures: Vec<(String, f64)> = figures
                .into_iter()
                .filter_map(|(label, v)| v.map(|v| (label, v)))
                .collect();
            (!figures.is_empty()).then(|| Headline {
                stage: stage.clone(),
                kind,
                figures,
            })
        })
        .collect()
}

fn short(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    }
}

/// One row per model stage: `stage  kind  label value, label value, ...`.
pub(crate) fn render_summary(rows: &[Headline]) -> String {
    let width = rows.iter().map(|r| r.stage.len()).max().unwrap_or(5).max(5);
    let kind_width = rows.iter().map(|r| r.kind.len()).max().unwrap_or(4).max(4);
    let mut out = format!("{:width$}  {:kind_width$}  headline\n", "stage", "kind");
    for row in rows {
        let figures: Vec<String> = row
            .figures
            .iter()
            .map(|(label, v)| format!("{label} {}", short(*v)))
            .collect();
        let _ = writeln!(
            out,
            "{:width$}  {:kind_width$}  {}",
            row.stage,
            row.kind,
            figures.join(", ")
        );
    }
    out.push_str("(every value: pipeline metrics --all)\n");
    out
}

/// The headline figures that differ between this run and `other`.
pub(crate) fn render_summary_diff(this: &[Headline], other: &[Headline]) -> String {
    let flat = |rows: &[Headline]| -> BTreeMap<String, f64> {
        rows.iter()
            .flat_map(|r| {
                r.figures
                    .iter()
                    .map(move |(label, v)| (format!("{}: {label}", r.stage), *v))
            })
            .collect()
    };
    render_diff(&flat(this), &flat(other))
}

/// The table of differences between this run and `other` (changed, added or removed metrics).
pub(crate) fn render_diff(this: &BTreeMap<String, f64>, other: &BTreeMap<String, f64>) -> String {
    let names = sorted_names(this.keys().chain(other.keys()));
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

    #[test]
    fn list_indices_sort_numerically() {
        let doc = json!({"knn": {"kind": "knn", "jaccard_mean": (1..=11).map(f64::from).collect::<Vec<_>>()}});
        let table = render(&flatten(&doc));
        let rows: Vec<&str> = table
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap_or(""))
            .collect();
        assert_eq!(rows[1], "knn.jaccard_mean[2]");
        assert_eq!(rows[10], "knn.jaccard_mean[11]");
    }

    #[test]
    fn the_summary_has_one_row_per_model_stage() {
        let doc = json!({
            "knn_full": {"kind": "knn", "k": [1, 2], "k_best": 2, "jaccard_best": 0.5,
                         "jaccard_mean": [0.4, 0.5], "at_least_one_right": [0.6, 0.7], "micro_f1": [0.1, 0.2]},
            "autoencoder": {"kind": "autoencoder", "r2": 0.25},
            "pca": {"kind": "pca", "components_for_threshold": 157, "threshold": 0.9},
        });
        assert_eq!(
            render_summary(&headlines(&doc)),
            concat!(
                "stage        kind         headline\n",
                "knn_full     knn          best k 2, jaccard 0.5000, at least one right 0.7000, micro F1 0.2000\n",
                "autoencoder  autoencoder  R2 0.2500\n",
                "pca          pca          components for threshold 157, threshold 0.9000\n",
                "(every value: pipeline metrics --all)\n"
            )
        );
        let mut other = doc.clone();
        other["autoencoder"]["r2"] = json!(0.5);
        let diff = render_summary_diff(&headlines(&doc), &headlines(&other));
        assert!(diff.contains("autoencoder: R2"), "{diff}");
        assert!(diff.ends_with("1 of 7 metrics differ\n"), "{diff}");
    }
}
