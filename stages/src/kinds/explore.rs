//! `explore`: what the original analysis looked at before modelling. Genre occurrence
//! counts, the ten most and ten least frequent genres, the histogram of occurrence counts
//! (50 bins) and the distribution of listens, each as a Parquet table and an SVG figure.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray, UInt32Array};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::chart;
use crate::io::parquet::{column_index, read_batches, read_matrix, write_table};
use crate::kind::{check_range, InputSpec, OutputSpec, ParamError, Params, Stage, StageIo};

/// Parameters of `explore`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExploreParams {
    /// How many genres the top and bottom lists show.
    pub top: usize,
    /// Bins of the occurrence histogram.
    pub bins: usize,
}

impl Default for ExploreParams {
    fn default() -> Self {
        Self { top: 10, bins: 50 }
    }
}

impl Params for ExploreParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        check_range("top", self.top, 1, 164)?;
        check_range("bins", self.bins, 1, 10_000)
    }
}

/// The exploration stage.
pub struct Explore;

impl Stage for Explore {
    type Params = ExploreParams;
    const KIND: &'static str = "explore";
    const MODULE: &'static str = module_path!();

    fn inputs(_: &Self::Params) -> InputSpec {
        InputSpec::fixed(&["labels", "tracks"])
    }

    fn outputs(_: &Self::Params) -> Vec<OutputSpec> {
        vec![
            OutputSpec::new("genre_counts", "genre_counts.parquet"),
            OutputSpec::new("top_bottom", "top_bottom.parquet"),
            OutputSpec::new("occurrence_histogram", "occurrence_histogram.parquet"),
            OutputSpec::new("listens", "listens.parquet"),
            OutputSpec::new("top_genres_figure", "top_genres.svg"),
            OutputSpec::new("bottom_genres_figure", "bottom_genres.svg"),
            OutputSpec::new("occurrence_figure", "genre_occurrence.svg"),
            OutputSpec::new("listens_figure", "listens.svg"),
        ]
    }

    fn run(params: &Self::Params, io: &StageIo<'_>) -> Result<()> {
        let labels = read_matrix(io.input(0, "labels")?)?;
        let tracks_path = io.input(1, "tracks")?;
        let counts: Vec<f64> = (0..labels.columns.len())
            .map(|j| labels.values.column(j).sum())
            .collect();
        // Sorted by count, descending; ties by genre order so the result is stable.
        let mut order: Vec<usize> = (0..counts.len()).collect();
        order.sort_by(|&a, &b| counts[b].total_cmp(&counts[a]).then(a.cmp(&b)));
        let names: Vec<&str> = order.iter().map(|&j| labels.columns[j].as_str()).collect();
        let sorted: Vec<i64> = order.iter().map(|&j| counts[j] as i64).collect();
        write_table(
            &io.output("genre_counts.parquet"),
            vec![
                (
                    "genre",
                    Arc::new(StringArray::from(names.clone())) as ArrayRef,
                ),
                ("tracks", Arc::new(Int64Array::from(sorted.clone()))),
                (
                    "share",
                    Arc::new(Float64Array::from_iter_values(
                        sorted
                            .iter()
                            .map(|c| *c as f64 / labels.track_ids.len().max(1) as f64),
                    )),
                ),
            ],
            io.provenance,
        )?;

        let top = params.top.min(names.len());
        let head: Vec<usize> = (0..top).collect();
        let tail: Vec<usize> = (names.len() - top..names.len()).rev().collect();
        let mut which = Vec::new();
        let mut rank = Vec::new();
        let mut genre = Vec::new();
        let mut tracks = Vec::new();
        for (list, label) in [(&head, "top"), (&tail, "bottom")] {
            for (r, &i) in list.iter().enumerate() {
                which.push(label);
                rank.push(r as u32 + 1);
                genre.push(names[i]);
                tracks.push(sorted[i]);
            }
        }
        write_table(
            &io.output("top_bottom.parquet"),
            vec![
                ("list", Arc::new(StringArray::from(which)) as ArrayRef),
                ("rank", Arc::new(UInt32Array::from(rank))),
                ("genre", Arc::new(StringArray::from(genre))),
                ("tracks", Arc::new(Int64Array::from(tracks))),
            ],
            io.provenance,
        )?;
        // A genre of the taxonomy that no track has is named as such: a bar of length zero
        // reads as a drawing error.
        let pick = |idx: &[usize]| -> (Vec<String>, Vec<f64>) {
            (
                idx.iter()
                    .map(|&i| {
                        if sorted[i] == 0 {
                            format!("{} (no tracks)", names[i])
                        } else {
                            names[i].to_owned()
                        }
                    })
                    .collect(),
                idx.iter().map(|&i| sorted[i] as f64).collect(),
            )
        };
        let (l, v) = pick(&head);
        chart::bar_chart(
            &io.output("top_genres.svg"),
            &format!("The {top} most frequent genres"),
            &l,
            &v,
            "tracks",
        )?;
        let (l, v) = pick(&tail);
        chart::bar_chart(
            &io.output("bottom_genres.svg"),
            &format!("The {top} least frequent genres"),
            &l,
            &v,
            "tracks",
        )?;

        let bins = chart::bins(&counts, params.bins);
        write_bins(
            &io.output("occurrence_histogram.parquet"),
            &bins,
            io.provenance,
        )?;
        chart::histogram(
            &io.output("genre_occurrence.svg"),
            "How often genres occur",
            &bins,
            "tracks with the genre",
            "genres",
        )?;

        let listens = read_listens(tracks_path)?;
        let logs: Vec<f64> = listens
            .iter()
            .map(|&l| (l.max(0) as f64 + 1.0).log10())
            .collect();
        let bins = chart::bins(&logs, params.bins);
        write_bins(&io.output("listens.parquet"), &bins, io.provenance)?;
        chart::histogram(
            &io.output("listens.svg"),
            "Listens per track",
            &bins,
            "log10(listens + 1)",
            "tracks",
        )?;
        Ok(())
    }
}

fn write_bins(
    path: &std::path::Path,
    bins: &[(f64, f64, f64)],
    provenance: &[(String, String)],
) -> Result<()> {
    write_table(
        path,
        vec![
            (
                "low",
                Arc::new(Float64Array::from_iter_values(bins.iter().map(|b| b.0))) as ArrayRef,
            ),
            (
                "high",
                Arc::new(Float64Array::from_iter_values(bins.iter().map(|b| b.1))),
            ),
            (
                "count",
                Arc::new(Int64Array::from_iter_values(
                    bins.iter().map(|b| b.2 as i64),
                )),
            ),
        ],
        provenance,
    )
}

fn read_listens(path: &std::path::Path) -> Result<Vec<i64>> {
    let (schema, batches) = read_batches(path)?;
    let index = column_index(&schema, "track.listens", path)?;
    let mut out = Vec::new();
    for batch in batches {
        let column = batch
            .column(index)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| Error::BadFile {
                path: path.to_owned(),
                message: "column `track.listens` is not int64".into(),
            })?;
        out.extend(column.iter().map(|v| v.unwrap_or(0)));
    }
    Ok(out)
}
