//! `lsi`: latent semantic indexing of the genre space, a truncated SVD of the binary
//! track x genre matrix (from `genres_all`, with `N/A` for an empty list).
//!
//! Computed exactly from the eigendecomposition of the 164 x 164 Gram matrix X^T X
//! (singular values are the square roots of its eigenvalues). Reports the cumulative
//! explained variance correctly, from squared singular values, and, labelled as such, the
//! curve the original analysis plotted: a cumulative sum of unsquared singular values, read
//! one topic late. Topics print as gensim does: `0.628*"Experimental" + 0.496*"Electronic"`.
//! Signs of singular vectors are arbitrary; the largest-magnitude weight is made positive.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, UInt32Array};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::Result;
use crate::io::chart::{line_chart, Series};
use crate::io::metrics::write_metrics;
use crate::io::parquet::{read_matrix, write_table};
use crate::io::topic_table::{format_topic, write_topic_table};
use crate::kind::{check_range, InputSpec, OutputSpec, ParamError, Params, Stage, StageIo};
use crate::math::linalg::{gram, symmetric_eigen};

/// Parameters of `lsi`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LsiParams {
    /// Topics to keep; 0 keeps as many as there are genres (the original).
    pub topics: usize,
    /// The share of variance whose topic count is reported (0.8 as the original).
    pub threshold: f64,
    /// Genres shown per printed topic.
    pub top_words: usize,
    /// How many topics to print.
    pub print_topics: usize,
}

impl Default for LsiParams {
    fn default() -> Self {
        Self {
            topics: 0,
            threshold: 0.8,
            top_words: 10,
            print_topics: 10,
        }
    }
}

impl Params for LsiParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        check_range("threshold", self.threshold, 0.0, 1.0)?;
        check_range("top_words", self.top_words, 1, 1000)?;
        Ok(())
    }
}

/// The LSI stage.
pub struct Lsi;

impl Stage for Lsi {
    type Params = LsiParams;
    const KIND: &'static str = "lsi";
    const MODULE: &'static str = module_path!();

    fn inputs(_: &Self::Params) -> InputSpec {
        InputSpec::fixed(&["labels"])
    }

    fn outputs(_: &Self::Params) -> Vec<OutputSpec> {
        vec![
            OutputSpec::new("singular_values", "singular_values.parquet"),
            OutputSpec::new("topics", "topics.parquet"),
            OutputSpec::new("topics_text", "topics.txt"),
            OutputSpec::new("metrics", "metrics.json"),
            OutputSpec::new("figure", "cumulative_variance.svg"),
        ]
    }

    fn run(params: &Self::Params, io: &StageIo<'_>) -> Result<()> {
        let labels = read_matrix(io.input(0, "labels")?)?;
        let words = labels.columns.clone();
        let g = gram(&labels.values)?;
        let (eigen, vectors) = symmetric_eigen(&g)?;
        let singular: Vec<f64> = eigen.iter().map(|v| v.max(0.0).sqrt()).collect();
        let k = if params.topics == 0 {
            words.len()
        } else {
            params.topics.min(words.len())
        };
        let energy: f64 = singular.iter().map(|s| s * s).sum();
        let total: f64 = singular.iter().sum();
        let cumulative: Vec<f64> = singular
            .iter()
            .scan(0.0, |c, s| {
                *c += s * s;
                Some(*c / energy.max(f64::MIN_POSITIVE))
            })
            .collect();
        // What the original plotted at x = t: the unsquared sum through topic t + 1.
        let unsquared: Vec<f64> = singular
            .iter()
            .scan(0.0, |c, s| {
                *c += s;
                Some(*c / total.max(f64::MIN_POSITIVE))
            })
            .collect();
        let original: Vec<f64> = (0..singular.len())
            .map(|t| unsquared[(t + 1).min(singular.len() - 1)])
            .collect();
        let reach = |curve: &[f64]| {
            curve
                .iter()
                .position(|c| *c >= params.threshold - 1e-12)
                .map_or(curve.len(), |i| i + 1)
        };
        let topics_correct = reach(&cumulative);
        let topics_original = reach(&original);

        write_table(
            &io.output("singular_values.parquet"),
            vec![
                (
                    "topic",
                    Arc::new(UInt32Array::from_iter_values(1..=singular.len() as u32)) as ArrayRef,
                ),
                (
                    "singular_value",
                    Arc::new(Float64Array::from(singular.clone())),
                ),
                (
                    "cumulative_variance",
                    Arc::new(Float64Array::from(cumulative.clone())),
                ),
                (
                    "original_unsquared_off_by_one",
                    Arc::new(Float64Array::from(original.clone())),
                ),
            ],
            io.provenance,
        )?;
        let topic_rows: Vec<Vec<f64>> = (0..k)
            .map(|t| (0..words.len()).map(|w| vectors[[w, t]]).collect())
            .collect();
        write_topic_table(
            &io.output("topics.parquet"),
            &words,
            &topic_rows,
            io.provenance,
        )?;
        let mut text = String::new();
        let mut printed = Vec::new();
        for t in 0..params.print_topics.min(k) {
            let weights: Vec<f64> = (0..words.len()).map(|w| vectors[[w, t]]).collect();
            let line = format_topic(&weights, &words, params.top_words);
            text.push_str(&format!("{}: {line}\n", t + 1));
            printed.push(line);
        }
        std::fs::write(io.output("topics.txt"), text)
            .map_err(crate::error::Error::io("write", &io.output("topics.txt")))?;
        write_metrics(
            &io.output("metrics.json"),
            &json!({
                "threshold": params.threshold,
                "topics_for_threshold": topics_correct,
                "topics_for_threshold_original_method": topics_original,
                "topics": printed,
                "genres": words.len(),
            }),
        )?;
        let points = |c: &[f64]| {
            c.iter()
                .enumerate()
                .map(|(i, v)| ((i + 1) as f64, *v))
                .collect()
        };
        line_chart(
            &io.output("cumulative_variance.svg"),
            &format!(
                "LSI of the genre space: {topics_correct} topics explain {:.0}% of the variance",
                params.threshold * 100.0
            ),
            &[
                Series {
                    name: "squared singular values (correct)".into(),
                    points: points(&cumulative),
                    band: None,
                },
                Series {
                    name: "unsquared, off by one (original)".into(),
                    points: points(&original),
                    band: None,
                },
            ],
            "topics",
            "cumulative share",
            Some((
                params.threshold,
                format!("{:.0}%", params.threshold * 100.0),
            )),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_print_like_gensim() {
        let words: Vec<String> = ["Rock", "Pop", "Jazz"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            format_topic(&[0.2, -0.766, 0.1], &words, 2),
            "-0.766*\"Pop\" + 0.200*\"Rock\""
        );
    }
}
