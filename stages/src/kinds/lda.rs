//! `lda`: latent Dirichlet allocation of the genre space with online variational Bayes, as
//! gensim's `LdaModel` does it (Hoffman, Blei and Bach, 2010).
//!
//! Documents are tracks, words are genre names from `genres_all` (`N/A` for an empty list;
//! genres that never occur are not in the vocabulary, as in a gensim `Dictionary`). The
//! parameters and update rules are gensim's: symmetric alpha and eta (1/K), chunks of 2000
//! documents, `passes` over the corpus, rho = (offset + pass + updates / chunksize)^-decay
//! where `updates` counts the documents of the first pass only (gensim's `num_updates`),
//! per-document gamma iterations until the mean change is under `gamma_threshold`, and the
//! sufficient statistics blended into lambda scaled to the corpus size. The E-step of a chunk
//! runs in parallel over fixed sub-batches whose statistics are summed in a fixed order, and
//! every random draw is seeded per document, so results do not depend on the thread count.
//!
//! A track's topic labels are the topics whose probability is at least `minimum_probability`
//! (0.01, gensim's default), as the original analysis used them.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, UInt32Array};
use ndarray::Array2;
use serde_json::json;

use crate::error::{Error, Result};
use crate::io::chart::{line_chart, Series};
use crate::io::metrics::write_metrics;
use crate::io::parquet::{read_matrix, write_columns, write_table};
use crate::io::topic_table::{format_topic, write_topic_table};
use crate::kind::{check_range, InputSpec, OutputSpec, ParamError, Params, Stage, StageIo};
pub use crate::math::lda::LdaParams;
use crate::math::lda::{Document, Lda, BOUND_SAMPLE};

impl Params for LdaParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        check_range("topics", self.topics, 1, 10_000)?;
        check_range("passes", self.passes, 1, 10_000)?;
        check_range("chunksize", self.chunksize, 1, 10_000_000)?;
        check_range("decay", self.decay, 0.5, 1.0)?;
        check_range("offset", self.offset, 0.0, 1e9)?;
        check_range("iterations", self.iterations, 1, 100_000)?;
        check_range("minimum_probability", self.minimum_probability, 0.0, 1.0)
    }
}

/// The LDA stage.
pub struct LdaStage;

impl Stage for LdaStage {
    type Params = LdaParams;
    const KIND: &'static str = "lda";
    const MODULE: &'static str = module_path!();

    fn inputs(_: &Self::Params) -> InputSpec {
        InputSpec::fixed(&["labels"])
    }

    fn outputs(_: &Self::Params) -> Vec<OutputSpec> {
        vec![
            OutputSpec::new("topics", "topics.parquet"),
            OutputSpec::new("lambda", "lambda.parquet"),
            OutputSpec::new("doc_topics", "doc_topics.parquet"),
            OutputSpec::new("labels", "labels_topics.parquet"),
            OutputSpec::new("bound", "bound.parquet"),
            OutputSpec::new("topics_text", "topics.txt"),
            OutputSpec::new("metrics", "metrics.json"),
            OutputSpec::new("figure", "bound.svg"),
        ]
    }

    fn run(params: &Self::Params, io: &StageIo<'_>) -> Result<()> {
        let labels = read_matrix(io.input(0, "labels")?)?;
        // The vocabulary: genres that occur (a gensim Dictionary has no unused words).
        let used: Vec<usize> = (0..labels.columns.len())
            .filter(|&j| labels.values.column(j).iter().any(|v| *v > 0.5))
            .collect();
        let words: Vec<String> = used.iter().map(|&j| labels.columns[j].clone()).collect();
        let corpus: Vec<Document> = labels
            .values
            .rows()
            .into_iter()
            .map(|row| {
                used.iter()
                    .enumerate()
                    .filter(|(_, &j)| row[j] > 0.5)
                    .map(|(w, _)| (w, 1.0))
                    .collect()
            })
            .collect();
        let mut model = Lda::new(params.topics, words.len(), params.seed);
        let bounds = model.fit(&corpus, params, &|| io.check_cancelled())?;
        // One inference pass serves both the final bound and the topic distributions.
        let gammas = model.gammas(&corpus, params, u64::MAX);
        let final_bound = model.bound_with(&corpus, &gammas, 1.0)?;
        let theta = Lda::normalise(gammas);
        write_outputs(
            params,
            io,
            (&labels.track_ids, &words),
            &model,
            &theta,
            (&bounds, final_bound),
        )
    }
}

fn write_outputs(
    p: &LdaParams,
    io: &StageIo<'_>,
    (ids, words): (&[i64], &[String]),
    model: &Lda,
    theta: &[Vec<f64>],
    (bounds, final_bound): (&[f64], f64),
) -> Result<()> {
    let k = model.k;
    let topic_rows: Vec<Vec<f64>> = (0..k).map(|t| model.topic(t)).collect();
    write_topic_table(
        &io.output("topics.parquet"),
        words,
        &topic_rows,
        io.provenance,
    )?;
    // The variational parameters themselves, so the model can be reloaded elsewhere (gensim:
    // `state.sstats = lambda - eta`) or checked against another implementation.
    let lambda = model.lambda();
    let lambda_rows: Vec<Vec<f64>> = lambda.chunks(model.w).map(<[f64]>::to_vec).collect();
    write_topic_table(
        &io.output("lambda.parquet"),
        words,
        &lambda_rows,
        io.provenance,
    )?;

    let names: Vec<String> = (1..=k).map(|t| format!("topic_{t:02}")).collect();
    let dist = Array2::from_shape_fn((ids.len(), k), |(d, t)| theta[d][t]);
    crate::io::parquet::write_matrix(
        &io.output("doc_topics.parquet"),
        ids,
        &names,
        &dist,
        true,
        io.provenance,
    )?;

    let mut fields = vec![arrow_schema::Field::new(
        "track_id",
        arrow_schema::DataType::Int64,
        false,
    )];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(ids.to_vec()))];
    let mut labels_per_track = vec![0u32; ids.len()];
    for (t, name) in names.iter().enumerate() {
        let column: Vec<u8> = theta
            .iter()
            .map(|row| u8::from(row[t] >= p.minimum_probability))
            .collect();
        for (count, v) in labels_per_track.iter_mut().zip(&column) {
            *count += u32::from(*v);
        }
        fields.push(arrow_schema::Field::new(
            name,
            arrow_schema::DataType::UInt8,
            false,
        ));
        arrays.push(Arc::new(arrow_array::UInt8Array::from(column)));
    }
    write_columns(
        &io.output("labels_topics.parquet"),
        Arc::new(arrow_schema::Schema::new(fields)),
        arrays,
        io.provenance,
        true,
    )?;

    let perplexity: Vec<f64> = bounds.iter().map(|b| 2f64.powf(-b)).collect();
    write_table(
        &io.output("bound.parquet"),
        vec![
            (
                "pass",
                Arc::new(UInt32Array::from_iter_values(1..=bounds.len() as u32)) as ArrayRef,
            ),
            (
                "per_word_bound",
                Arc::new(Float64Array::from(bounds.to_vec())),
            ),
            (
                "perplexity",
                Arc::new(Float64Array::from(perplexity.clone())),
            ),
        ],
        io.provenance,
    )?;
    let printed: Vec<String> = topic_rows
        .iter()
        .map(|r| format_topic(r, words, p.top_words))
        .collect();
    let text: String = printed
        .iter()
        .enumerate()
        .map(|(t, l)| format!("{}: {l}\n", t + 1))
        .collect();
    std::fs::write(io.output("topics.txt"), text)
        .map_err(Error::io("write", &io.output("topics.txt")))?;
    let mean_labels =
        labels_per_track.iter().map(|v| f64::from(*v)).sum::<f64>() / ids.len().max(1) as f64;
    write_metrics(
        &io.output("metrics.json"),
        &json!({
            "topics": k,
            "passes": bounds.len(),
            "per_word_bound": final_bound,
            "perplexity": 2f64.powf(-final_bound),
            "per_word_bound_by_pass": bounds,
            "bound_sample_documents": ids.len().min(BOUND_SAMPLE),
            "vocabulary": words.len(),
            "mean_topic_labels_per_track": mean_labels,
            "topics_text": printed,
        }),
    )?;
    line_chart(
        &io.output("bound.svg"),
        "LDA: per-word bound after each pass (higher is better)",
        &[Series {
            name: "per-word bound".into(),
            points: bounds
                .iter()
                .enumerate()
                .map(|(i, b)| ((i + 1) as f64, *b))
                .collect(),
            band: None,
        }],
        "pass",
        "per-word bound",
        None,
    )
}
