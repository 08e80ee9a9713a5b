//! How both topic models show their topics: a topic x word Parquet table, and gensim's
//! one-line text form (`0.628*"Experimental" + 0.496*"Electronic" + ...`).

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, UInt32Array};

use crate::error::Result;
use crate::io::parquet::write_table;

/// A topic x word table, as both topic models write it: a `topic` column (1-based) and one
/// column per word.
pub fn write_topic_table(
    path: &std::path::Path,
    words: &[String],
    rows: &[Vec<f64>],
    provenance: &[(String, String)],
) -> Result<()> {
    let mut columns: Vec<(&str, ArrayRef)> = vec![(
        "topic",
        Arc::new(UInt32Array::from_iter_values(1..=rows.len() as u32)) as ArrayRef,
    )];
    for (w, word) in words.iter().enumerate() {
        columns.push((
            word.as_str(),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r[w]))),
        ));
    }
    write_table(path, columns, provenance)
}

/// Formats one topic as gensim does: top `n` words by magnitude, signed, 3 decimals.
pub fn format_topic(weights: &[f64], words: &[String], n: usize) -> String {
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        weights[b]
            .abs()
            .total_cmp(&weights[a].abs())
            .then(a.cmp(&b))
    });
    order
        .iter()
        .take(n)
        .map(|&i| format!("{:.3}*\"{}\"", weights[i], words[i]))
        .collect::<Vec<_>>()
        .join(" + ")
}
